/**
 * The CLIP model in TensorFlow.js: a second, independent implementation of the native model
 * (native/src/core/model.cc) for comparison and cross-checking. Same parameter names (OpenAI CLIP
 * layout), same math (pre-LN residual blocks, fused in-projection attention, QuickGELU, class token,
 * ln_pre/ln_post, causal mask, end-of-text pooling at the highest id), same loss and the same AdamW
 * (torch::optim::AdamW: decoupled decay, the same no-decay group, logit scale clamped to [0, ln 100]).
 * Supported: ViT image tower + causal text tower. ModifiedResNet and BERT towers are E_UNSUPPORTED here.
 */
import type { Scalar, Tensor } from '@tensorflow/tfjs';
import { CxrError } from '../errors';
import { assertFiniteTensors, readModelFolder } from '../models/modelFolder';
import type { LossOptions } from '../models/ClipModel';
import type { ModelConfig } from '../models/config';
import { OPTIMIZER_DEFAULTS } from '../models/defaults';
import { resolveModelConfig } from '../models/registry';
import type { NamedTensor, StepResult } from '../types';
import { useBackend, type Tf, type TfBackendName } from './backend';
import { resolveTfLoss, tfContrastiveLossTensor } from './loss';
import { tfOps, type TfActivation, type TfOps } from './ops';

/** Options of `TfClipModel.create` / `TfClipModel.load`. */
export interface TfModelOptions {
  /** TensorFlow.js backend; default "auto" (tfjs-node when installed, else wasm). */
  backend?: TfBackendName;
  /** Seed of the random initialisation (ignored when weights are loaded). Default 0. */
  seed?: number;
}

/** AdamW settings; the defaults are the native ones (lib/models/ClipModel.ts `configureOptimizer`). */
export interface TfOptimizerOptions {
  /** Decoupled weight decay, never applied to biases, norms, embeddings, the logit scale or 1-D tensors. Default 0.2. */
  weightDecay?: number;
  /** Default [0.9, 0.98]. */
  betas?: [number, number];
  /** Default 1e-6. */
  eps?: number;
  /**
   * Where the Adam moments live: "js" (Float32Arrays outside the tensor heap, update in JavaScript) or
   * "tensor" (tfjs tensors, update with tfjs ops). Default: "js" on wasm, whose 4 GiB heap cannot hold
   * ViT-B/32's weights, gradients and two moments at once; "tensor" on the other backends.
   */
  moments?: 'js' | 'tensor';
}

/** Options of one tfjs train step (the same fields as the native `StepOptions`). */
export interface TfStepOptions {
  /** Learning rate of this step. */
  lr: number;
  /** Clip the global gradient norm to this value; 0 or absent: no clipping (the norm is still reported). */
  clipGradNorm?: number;
  loss?: LossOptions;
}

/** Result of one tfjs train step: the fields of the native step result that a single process has. */
export type TfStepResult = Pick<StepResult, 'loss' | 'gradNorm' | 'logitScale' | 'msForward' | 'msBackward' | 'msOptimizer' | 'msTotal' | 'batch'>;

/** A batch: images N×3×S×S float32 and token ids N×L int32 (as for the native `trainStep`). */
export interface TfTrainBatch {
  images: Float32Array;
  tokenIds: Int32Array;
  n: number;
  length: number;
}

interface ParamSpec {
  name: string;
  shape: number[];
  /** Initialisation: normal(std), uniform(±bound), ones, zeros or a constant. */
  init: { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'ones' } | { kind: 'zeros' } | { kind: 'const'; value: number };
}

/** Keys of OpenAI CLIP state dicts that are metadata or derived buffers, not parameters. */
const IGNORED_KEYS = new Set(['attn_mask', 'input_resolution', 'context_length', 'vocab_size']);

/** The native no-decay rule (native/src/core/engine.cc `no_decay`). */
export function noWeightDecay(name: string, shape: number[]): boolean {
  return (
    shape.length < 2 ||
    name.includes('embedding') ||
    name.includes('logit_scale') ||
    name.endsWith('.bias') ||
    name.includes('ln_') ||
    name.includes('LayerNorm') ||
    name.includes('.bn')
  );
}

function transformerSpecs(prefix: string, width: number, layers: number, mlpRatio: number): ParamSpec[] {
  // OpenAI CLIP's text-transformer initialisation, used by the native core for every transformer.
  const attnStd = width ** -0.5;
  const projStd = attnStd * (2 * layers) ** -0.5;
  const fcStd = (2 * width) ** -0.5;
  const hidden = Math.round(width * mlpRatio);
  const out: ParamSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `${prefix}.resblocks.${i}.`;
    out.push(
      { name: p + 'attn.in_proj_weight', shape: [3 * width, width], init: { kind: 'normal', std: attnStd } },
      { name: p + 'attn.in_proj_bias', shape: [3 * width], init: { kind: 'zeros' } },
      { name: p + 'attn.out_proj.weight', shape: [width, width], init: { kind: 'normal', std: projStd } },
      { name: p + 'attn.out_proj.bias', shape: [width], init: { kind: 'zeros' } },
      { name: p + 'ln_1.weight', shape: [width], init: { kind: 'ones' } },
      { name: p + 'ln_1.bias', shape: [width], init: { kind: 'zeros' } },
      { name: p + 'mlp.c_fc.weight', shape: [hidden, width], init: { kind: 'normal', std: fcStd } },
      { name: p + 'mlp.c_fc.bias', shape: [hidden], init: { kind: 'zeros' } },
      { name: p + 'mlp.c_proj.weight', shape: [width, hidden], init: { kind: 'normal', std: projStd } },
      { name: p + 'mlp.c_proj.bias', shape: [width], init: { kind: 'zeros' } },
      { name: p + 'ln_2.weight', shape: [width], init: { kind: 'ones' } },
      { name: p + 'ln_2.bias', shape: [width], init: { kind: 'zeros' } },
    );
  }
  return out;
}

/** Names, shapes and initialisations of every parameter of a ViT + causal-text config (OpenAI layout). */
export function tfParameterSpecs(config: ModelConfig): ParamSpec[] {
  const v = config.vision;
  const t = config.text;
  if (v.type !== 'vit')
    throw new CxrError('E_UNSUPPORTED', `the tfjs variant implements the ViT image tower only, not "${v.type}" (use the native model)`);
  if (t.type !== 'causal')
    throw new CxrError('E_UNSUPPORTED', `the tfjs variant implements the causal (CLIP) text tower only, not "${t.type}" (use the native model)`);
  const W = v.width as number;
  const p = v.patchSize as number;
  const g = v.imageSize / p;
  const E = config.embedDim;
  const scale = W ** -0.5;
  const fanIn = 3 * p * p;
  return [
    { name: 'visual.class_embedding', shape: [W], init: { kind: 'normal', std: scale } },
    { name: 'visual.positional_embedding', shape: [g * g + 1, W], init: { kind: 'normal', std: scale } },
    { name: 'visual.proj', shape: [W, E], init: { kind: 'normal', std: scale } },
    { name: 'visual.conv1.weight', shape: [W, 3, p, p], init: { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) } },
    { name: 'visual.ln_pre.weight', shape: [W], init: { kind: 'ones' } },
    { name: 'visual.ln_pre.bias', shape: [W], init: { kind: 'zeros' } },
    ...transformerSpecs('visual.transformer', W, v.layers as number, v.mlpRatio ?? 4),
    { name: 'visual.ln_post.weight', shape: [W], init: { kind: 'ones' } },
    { name: 'visual.ln_post.bias', shape: [W], init: { kind: 'zeros' } },
    { name: 'token_embedding.weight', shape: [t.vocabSize, t.width], init: { kind: 'normal', std: 0.02 } },
    { name: 'positional_embedding', shape: [t.contextLength, t.width], init: { kind: 'normal', std: 0.01 } },
    ...transformerSpecs('transformer', t.width, t.layers, t.mlpRatio ?? 4),
    { name: 'ln_final.weight', shape: [t.width], init: { kind: 'ones' } },
    { name: 'ln_final.bias', shape: [t.width], init: { kind: 'zeros' } },
    { name: 'text_projection', shape: [t.width, E], init: { kind: 'normal', std: t.width ** -0.5 } },
    { name: 'logit_scale', shape: [], init: { kind: 'const', value: config.logitScaleInit ?? Math.log(1 / 0.07) } },
  ];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * A CLIP model (ViT + causal text tower) in TensorFlow.js with its AdamW state. Weights are tfjs tensors
 * of the backend that was active at creation. Call `dispose()` when done.
 */
export class TfClipModel {
  readonly config: ModelConfig;
  /** The tfjs backend the model runs on ("wasm", "cpu" or "tensorflow"). */
  readonly backend: 'wasm' | 'cpu' | 'tensorflow';
  readonly #tf: Tf;
  readonly #ops: TfOps;
  readonly #specs: ParamSpec[];
  #params = new Map<string, Tensor>();
  #m = new Map<string, Tensor>();
  #v = new Map<string, Tensor>();
  #mJs = new Map<string, Float32Array>();
  #vJs = new Map<string, Float32Array>();
  #step = 0;
  #opt: Required<Omit<TfOptimizerOptions, 'moments'>> = { weightDecay: 0.2, betas: [0.9, 0.98], eps: 1e-6 };
  #moments: 'js' | 'tensor';
  #frozen: string[] = [];
  #mask = new Map<number, Tensor>();
  #disposed = false;

  private constructor(config: ModelConfig, tf: Tf, backend: 'wasm' | 'cpu' | 'tensorflow', specs: ParamSpec[]) {
    this.config = config;
    this.#tf = tf;
    this.#ops = tfOps(tf);
    this.backend = backend;
    this.#specs = specs;
    this.#moments = backend === 'wasm' ? 'js' : 'tensor';
  }

  /**
   * Builds a model from a registry name ("test-vit", "ViT-B/32", ...) or a config, with fresh random
   * weights (the native initialisation scheme; not the same numbers as the native model).
   */
  static async create(nameOrConfig: string | ModelConfig, options: TfModelOptions = {}): Promise<TfClipModel> {
    const model = await TfClipModel.#build(nameOrConfig, options);
    model.#initMissing(options.seed ?? 0);
    return model;
  }

  static async #build(nameOrConfig: string | ModelConfig, options: TfModelOptions): Promise<TfClipModel> {
    const config = resolveModelConfig(nameOrConfig);
    const specs = tfParameterSpecs(config);
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0) throw new CxrError('E_CONFIG', `seed must be an integer >= 0, got ${seed}`);
    const { tf, backend } = await useBackend(options.backend ?? 'auto');
    return new TfClipModel(config, tf, backend, specs);
  }

  /** Randomly initialises the parameters that hold no tensor yet (all of them for a fresh model). */
  #initMissing(seed: number): void {
    const tf = this.#tf;
    this.#specs.forEach((s, i) => {
      if (this.#params.has(s.name)) return;
      const init = s.init;
      let t: Tensor;
      if (init.kind === 'normal') t = tf.randomNormal(s.shape, 0, init.std, 'float32', seed * 1000 + i);
      else if (init.kind === 'uniform') t = tf.randomUniform(s.shape, -init.bound, init.bound, 'float32', seed * 1000 + i);
      else if (init.kind === 'ones') t = tf.ones(s.shape);
      else if (init.kind === 'zeros') t = tf.zeros(s.shape);
      else t = tf.fill(s.shape, init.value);
      this.#params.set(s.name, t);
    });
  }

  /**
   * Builds a model for `config` and loads `state` (a list of {name, shape, data}: `ClipModel.getState()`,
   * an OpenAI-layout state read by the checkpoint code, or the own format's tensors). strict (default):
   * a missing or unexpected tensor is E_CHECKPOINT; otherwise missing ones are randomly initialised.
   */
  static async fromState(nameOrConfig: string | ModelConfig, state: NamedTensor[], options: TfModelOptions & { strict?: boolean } = {}): Promise<TfClipModel> {
    const model = await TfClipModel.#build(nameOrConfig, options);
    try {
      model.loadState(state, options.strict ?? true);
      model.#initMissing(options.seed ?? 0);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Loads a model saved by `ClipModel.save` (the project's own format: model.safetensors + cxr-model.json). */
  static async load(dir: string, options: TfModelOptions = {}): Promise<TfClipModel> {
    const { meta, state } = readModelFolder(dir);
    return TfClipModel.fromState(meta.config, state, { ...options, strict: true });
  }

  get imageSize(): number {
    return this.config.vision.imageSize;
  }
  get contextLength(): number {
    return this.config.text.contextLength;
  }
  get embedDim(): number {
    return this.config.embedDim;
  }
  get disposed(): boolean {
    return this.#disposed;
  }

  #check(): void {
    if (this.#disposed) throw new CxrError('E_DISPOSED', 'this tfjs model was disposed');
  }

  #p(name: string, over?: Map<string, Tensor>): Tensor {
    const t = over?.get(name) ?? this.#params.get(name);
    if (!t) throw new CxrError('E_INTERNAL', `tfjs model has no parameter "${name}"`);
    return t;
  }

  /**
   * Copies tensors in by name (float32 data; shapes must match, else E_CHECKPOINT). Returns the names
   * that were missing from `tensors` and those the model does not have. OpenAI metadata entries
   * (input_resolution, context_length, vocab_size) and the attn_mask buffer are skipped, as natively.
   */
  loadState(tensors: NamedTensor[], strict = true): { missing: string[]; unexpected: string[] } {
    this.#check();
    assertFiniteTensors(tensors);
    const tf = this.#tf;
    const byName = new Map(this.#specs.map((s) => [s.name, s]));
    const unexpected: string[] = [];
    const seen = new Map<string, NamedTensor>();
    for (const t of tensors) {
      if (IGNORED_KEYS.has(t.name)) continue;
      const spec = byName.get(t.name);
      if (!spec) {
        unexpected.push(t.name);
        continue;
      }
      if (!sameShape(t.shape, spec.shape))
        throw new CxrError('E_CHECKPOINT', `tensor "${t.name}" has shape [${t.shape.join(', ')}] but the model expects [${spec.shape.join(', ')}]`);
      if (t.data.length !== numel(spec.shape))
        throw new CxrError('E_CHECKPOINT', `tensor "${t.name}" holds ${t.data.length} values, its shape needs ${numel(spec.shape)}`);
      seen.set(t.name, t);
    }
    const missing = this.#specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      let m = 'state does not match the model:';
      if (missing.length) m += ` missing ${missing.length} (first: ${missing[0]})`;
      if (unexpected.length) m += ` unexpected ${unexpected.length} (first: ${unexpected[0]})`;
      throw new CxrError('E_CHECKPOINT', m, { missing, unexpected });
    }
    for (const [name, t] of seen) {
      // A Float32Array of another realm (the addon's arrays inside jest's vm) fails instanceof and would send
      // tfjs down its element-by-element path; a bulk copy into this realm is fast.
      const data = t.data instanceof Float32Array ? t.data : new Float32Array(t.data as ArrayLike<number>);
      this.#params.get(name)?.dispose();
      this.#params.set(name, tf.tensor(data, byName.get(name)!.shape, 'float32'));
    }
    return { missing, unexpected };
  }

  /** Parameters as float32 copies with OpenAI CLIP key names (the native `getState` layout). */
  getState(): NamedTensor[] {
    this.#check();
    return this.#specs.map((s) => ({ name: s.name, shape: [...s.shape], data: this.#p(s.name).dataSync() as Float32Array }));
  }

  /** Number of parameters (all, or only the trainable ones). */
  parameterCount(trainableOnly = false): number {
    return this.#specs.filter((s) => !trainableOnly || !this.#isFrozen(s.name)).reduce((a, s) => a + numel(s.shape), 0);
  }

  /** Freezes parameters by tower ("image", "text") or name prefix; an empty list unfreezes all (as the native `freeze`). */
  freeze(parts: Array<'image' | 'text' | string>): void {
    const text = ['token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.', 'text_projection'];
    this.#frozen = parts.flatMap((p) => (p === 'image' ? ['visual.'] : p === 'text' ? text : [p]));
  }

  #isFrozen(name: string): boolean {
    return this.#frozen.some((p) => name.startsWith(p));
  }

  // ---------------------------------------------------------------------------------------------
  // Forward

  #causalMask(L: number): Tensor {
    let m = this.#mask.get(L);
    if (!m) {
      // A large negative rather than -inf: exp underflows to exactly 0 either way, and no backend sees inf - inf.
      const a = new Float32Array(L * L);
      for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) a[i * L + j] = -1e9;
      m = this.#tf.keep(this.#tf.tensor2d(a, [L, L]));
      this.#mask.set(L, m);
    }
    return m;
  }

  /** Pre-LN residual blocks on x (N·L × W, row-major by sample). */
  #transformer(x: Tensor, prefix: string, N: number, L: number, layers: number, heads: number, act: TfActivation, mask: Tensor | null, P: Map<string, Tensor> | undefined): Tensor {
    const tf = this.#tf;
    const { linear, layerNorm, mm } = this.#ops;
    const W = x.shape[1] as number;
    const hd = W / heads;
    const p = (n: string) => this.#p(n, P);
    for (let i = 0; i < layers; i++) {
      const b = `${prefix}.resblocks.${i}.`;
      const h1 = layerNorm(x, p(b + 'ln_1.weight'), p(b + 'ln_1.bias'), 1e-5);
      const [q, k, v] = tf.split(linear(h1, p(b + 'attn.in_proj_weight'), p(b + 'attn.in_proj_bias')), 3, 1);
      const qh = tf.mul(tf.reshape(tf.transpose(tf.reshape(q, [N, L, heads, hd]), [0, 2, 1, 3]), [N * heads, L, hd]), hd ** -0.5);
      const kt = tf.reshape(tf.transpose(tf.reshape(k, [N, L, heads, hd]), [0, 2, 3, 1]), [N * heads, hd, L]);
      const vh = tf.reshape(tf.transpose(tf.reshape(v, [N, L, heads, hd]), [0, 2, 1, 3]), [N * heads, L, hd]);
      let att = mm(qh, kt);
      if (mask) att = tf.add(att, mask);
      att = tf.softmax(att);
      const o = tf.reshape(tf.transpose(tf.reshape(mm(att, vh), [N, heads, L, hd]), [0, 2, 1, 3]), [N * L, W]);
      x = tf.add(x, linear(o, p(b + 'attn.out_proj.weight'), p(b + 'attn.out_proj.bias')));
      const h2 = layerNorm(x, p(b + 'ln_2.weight'), p(b + 'ln_2.bias'), 1e-5);
      const f = this.#ops.act(linear(h2, p(b + 'mlp.c_fc.weight'), p(b + 'mlp.c_fc.bias')), act);
      x = tf.add(x, linear(f, p(b + 'mlp.c_proj.weight'), p(b + 'mlp.c_proj.bias')));
    }
    return x;
  }

  /** Image embeddings (N×D tensor), projected, un-normalised. `P` overrides parameters (for gradients). */
  #encodeImage(images: Tensor, P?: Map<string, Tensor>): Tensor {
    const tf = this.#tf;
    const { mm, mmConstA, layerNorm } = this.#ops;
    const v = this.config.vision;
    const p = (n: string) => this.#p(n, P);
    const N = images.shape[0];
    const ps = v.patchSize as number;
    const W = v.width as number;
    const g = v.imageSize / ps;
    // conv1 (stride = kernel = patch) as a matmul: no Conv2DBackpropFilter in wasm, and the patch matrix is
    // constant input data, so no gradient is computed for it.
    const patches = tf.reshape(tf.transpose(tf.reshape(images, [N, 3, g, ps, g, ps]), [0, 2, 4, 1, 3, 5]), [N * g * g, 3 * ps * ps]);
    const wConv = tf.transpose(tf.reshape(p('visual.conv1.weight'), [W, 3 * ps * ps]));
    const tokensX = tf.reshape(mmConstA(patches, wConv), [N, g * g, W]);
    const cls = tf.tile(tf.reshape(p('visual.class_embedding'), [1, 1, W]), [N, 1, 1]);
    let x = tf.add(tf.concat([cls, tokensX], 1), p('visual.positional_embedding'));
    const L = g * g + 1;
    x = layerNorm(tf.reshape(x, [N * L, W]), p('visual.ln_pre.weight'), p('visual.ln_pre.bias'), 1e-5);
    x = this.#transformer(x, 'visual.transformer', N, L, v.layers as number, v.heads as number, v.act ?? 'quick_gelu', null, P);
    const x0 = tf.reshape(tf.slice(tf.reshape(x, [N, L, W]), [0, 0, 0], [N, 1, W]), [N, W]);
    return mm(layerNorm(x0, p('visual.ln_post.weight'), p('visual.ln_post.bias'), 1e-5), p('visual.proj'));
  }

  /** Text embeddings (N×D tensor) of ids (N×L), pooled at the end-of-text token (the highest id). */
  #encodeText(ids: Int32Array, N: number, L: number, P?: Map<string, Tensor>): Tensor {
    const tf = this.#tf;
    const { mm, layerNorm, gatherRows } = this.#ops;
    const t = this.config.text;
    const p = (n: string) => this.#p(n, P);
    const W = t.width;
    let x = gatherRows(p('token_embedding.weight'), ids);
    const pos = tf.slice(p('positional_embedding'), [0, 0], [L, W]);
    x = tf.reshape(tf.add(tf.reshape(x, [N, L, W]), pos), [N * L, W]);
    x = this.#transformer(x, 'transformer', N, L, t.layers, t.heads, t.act ?? 'quick_gelu', this.#causalMask(L), P);
    const eot = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      let best = 0;
      for (let j = 1; j < L; j++) if (ids[i * L + j] > ids[i * L + best]) best = j;
      eot[i] = i * L + best;
    }
    // LayerNorm is per row, so pooling first and normalising the N pooled rows equals ln_final on all tokens.
    const pooled = layerNorm(gatherRows(x, eot), p('ln_final.weight'), p('ln_final.bias'), 1e-5);
    return mm(pooled, p('text_projection'));
  }

  #imageTensor(images: Float32Array, n?: number): Tensor {
    if (!(images instanceof Float32Array)) throw new CxrError('E_DTYPE', 'images must be a Float32Array (N×3×S×S)');
    const S = this.imageSize;
    const per = 3 * S * S;
    const count = n ?? images.length / per;
    if (!Number.isInteger(count) || count < 1 || count * per !== images.length)
      throw new CxrError('E_SHAPE', `images must hold N×3×${S}×${S} float32 values (${per} per image); got ${images.length} values`);
    for (let i = 0; i < images.length; i++)
      if (!Number.isFinite(images[i])) throw new CxrError('E_NUMERIC', 'images contain NaN or Inf');
    return this.#tf.tensor4d(images, [count, 3, S, S]);
  }

  #checkIds(ids: Int32Array, n: number, L: number): void {
    if (!(ids instanceof Int32Array)) throw new CxrError('E_DTYPE', 'token ids must be an Int32Array (N×L)');
    if (!Number.isInteger(n) || !Number.isInteger(L) || n < 1 || L < 1 || ids.length !== n * L)
      throw new CxrError('E_SHAPE', `token ids must hold N×L = ${n}×${L} values, got ${ids.length}`);
    if (L > this.contextLength) throw new CxrError('E_SHAPE', `token sequence length ${L} must be in 1..${this.contextLength}`);
    const V = this.config.text.vocabSize;
    for (let i = 0; i < ids.length; i++)
      if (ids[i] < 0 || ids[i] >= V) throw new CxrError('E_SHAPE', `token id out of the vocabulary: ids must be in [0, ${V}), got ${ids[i]}`);
  }

  async #ensureBackend(): Promise<void> {
    if (this.#tf.getBackend() !== this.backend) await useBackend(this.backend);
  }

  /** Image embeddings (N×D, row-major), projected; un-normalised unless `normalize`. */
  async encodeImages(images: Float32Array, opts: { n?: number; normalize?: boolean } = {}): Promise<Float32Array> {
    this.#check();
    await this.#ensureBackend();
    const tf = this.#tf;
    const out = tf.tidy(() => {
      const u = this.#encodeImage(this.#imageTensor(images, opts.n));
      return opts.normalize ? tf.div(u, tf.maximum(tf.norm(u, 2, 1, true), 1e-12)) : u;
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  /** Text embeddings (N×D) of token ids (N×L, padded), projected; un-normalised unless `normalize`. */
  async encodeTokenIds(ids: Int32Array, n: number, length: number, opts: { normalize?: boolean } = {}): Promise<Float32Array> {
    this.#check();
    this.#checkIds(ids, n, length);
    await this.#ensureBackend();
    const tf = this.#tf;
    const out = tf.tidy(() => {
      const v = this.#encodeText(ids, n, length);
      return opts.normalize ? tf.div(v, tf.maximum(tf.norm(v, 2, 1, true), 1e-12)) : v;
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  /** Sets the AdamW hyper-parameters (omitted ones: OPTIMIZER_DEFAULTS); the moments and step count restart. */
  configureOptimizer(o: TfOptimizerOptions = {}): void {
    this.#check();
    const opt = { weightDecay: o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay, betas: o.betas ?? OPTIMIZER_DEFAULTS.betas, eps: o.eps ?? OPTIMIZER_DEFAULTS.eps };
    const [b1, b2] = opt.betas;
    if (!(opt.weightDecay >= 0 && b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1 && opt.eps > 0))
      throw new CxrError('E_CONFIG', 'adamw needs weightDecay >= 0, 0 <= beta1, beta2 < 1 and eps > 0');
    if (o.moments !== undefined && o.moments !== 'js' && o.moments !== 'tensor')
      throw new CxrError('E_CONFIG', `moments must be "js" or "tensor", got "${String(o.moments)}"`);
    this.#opt = opt;
    this.#moments = o.moments ?? (this.backend === 'wasm' ? 'js' : 'tensor');
    this.#resetMoments();
  }

  #resetMoments(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
    this.#mJs.clear();
    this.#vJs.clear();
    this.#step = 0;
  }

  /** Contrastive loss of a batch without updating the model. */
  async evalLoss(batch: TfTrainBatch, loss?: LossOptions): Promise<number> {
    this.#check();
    this.#checkIds(batch.tokenIds, batch.n, batch.length);
    const cfg = resolveTfLoss(loss);
    await this.#ensureBackend();
    const tf = this.#tf;
    const out = tf.tidy(() =>
      tfContrastiveLossTensor(tf, this.#encodeImage(this.#imageTensor(batch.images, batch.n)), this.#encodeText(batch.tokenIds, batch.n, batch.length), this.#p('logit_scale'), cfg),
    );
    const v = (await out.data())[0];
    out.dispose();
    return v;
  }

  /**
   * One training step: forward both towers, the loss, backward, optional gradient clipping, AdamW
   * (torch::optim::AdamW semantics, decoupled decay on the decay group only) and the logit-scale clamp
   * to [0, ln 100]. The same contract as the native `ClipModel.trainStep`.
   */
  async trainStep(batch: TfTrainBatch, opts: TfStepOptions): Promise<TfStepResult> {
    this.#check();
    const t0 = performance.now();
    const { n, length } = batch;
    this.#checkIds(batch.tokenIds, n, length);
    if (n < 2) throw new CxrError('E_SHAPE', `the contrastive loss needs a batch of at least 2 pairs, got ${n}`);
    if (!(typeof opts.lr === 'number' && Number.isFinite(opts.lr) && opts.lr >= 0))
      throw new CxrError('E_CONFIG', `lr must be a finite number >= 0, got ${opts.lr}`);
    const lossCfg = resolveTfLoss(opts.loss);
    const clip = opts.clipGradNorm ?? 0;
    const trainable = this.#specs.filter((s) => !this.#isFrozen(s.name));
    if (trainable.length === 0) throw new CxrError('E_CONFIG', 'every parameter is frozen: nothing to train');
    await this.#ensureBackend();
    const tf = this.#tf;
    const images = this.#imageTensor(batch.images, n);
    let msForward = 0;
    let tB = 0;
    const { lossT, grads } = tf.tidy(() => {
      const f = (...xs: Tensor[]): Scalar => {
        const P = new Map(trainable.map((s, i) => [s.name, xs[i]]));
        const u = this.#encodeImage(images, P);
        const v = this.#encodeText(batch.tokenIds, n, length, P);
        const l = tfContrastiveLossTensor(tf, u, v, this.#p('logit_scale', P), lossCfg);
        // Synchronous backends (wasm, cpu) have finished the forward by now.
        msForward = performance.now() - t0;
        tB = performance.now();
        return l;
      };
      const { value, grads: g } = tf.valueAndGrads(f)(trainable.map((s) => this.#p(s.name)));
      return { lossT: value, grads: g };
    });
    images.dispose();
    const lossValue = (await lossT.data())[0];
    lossT.dispose();
    const msBackward = performance.now() - tB;
    if (!Number.isFinite(lossValue)) {
      grads.forEach((g) => g.dispose());
      throw new CxrError('E_NUMERIC', `the loss is not finite (${lossValue}); weights were not updated. Lower the learning rate or check the inputs`);
    }
    const t2 = performance.now();
    // One tidy per gradient: squaring them all in one scope would hold a second copy of every gradient.
    const sq = tf.tidy(() => tf.addN(grads.map((g) => tf.tidy(() => tf.sum(tf.square(g))))));
    const gradNorm = Math.sqrt((await sq.data())[0]);
    sq.dispose();
    if (!Number.isFinite(gradNorm)) {
      grads.forEach((g) => g.dispose());
      throw new CxrError('E_NUMERIC', 'the gradient norm is not finite; weights were not updated');
    }
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const coef = clip > 0 ? Math.min(1, clip / (gradNorm + 1e-6)) : 1;
    this.#step += 1;
    const { weightDecay, betas, eps } = this.#opt;
    const [b1, b2] = betas;
    const bc1 = 1 - b1 ** this.#step;
    const bc2 = 1 - b2 ** this.#step;
    const stepSize = opts.lr / bc1;
    const lr = opts.lr;
    const decayFactor = (s: ParamSpec) => (weightDecay !== 0 && !noWeightDecay(s.name, s.shape) ? 1 - lr * weightDecay : 1);
    trainable.forEach((s, i) => {
      const g0 = grads[i];
      if (this.#moments === 'js') {
        // torch::optim::AdamW, element by element, with the moments outside the tensor heap.
        const g = g0.dataSync() as Float32Array;
        // slice(): the cpu backend's dataSync returns the tensor's own storage; the update must not write into it.
        const p = (this.#p(s.name).dataSync() as Float32Array).slice();
        let m = this.#mJs.get(s.name);
        let v = this.#vJs.get(s.name);
        if (!m || !v) {
          m = new Float32Array(p.length);
          v = new Float32Array(p.length);
          this.#mJs.set(s.name, m);
          this.#vJs.set(s.name, v);
        }
        const dec = decayFactor(s);
        const sbc2 = Math.sqrt(bc2);
        for (let j = 0; j < p.length; j++) {
          const gj = g[j] * coef;
          m[j] = b1 * m[j] + (1 - b1) * gj;
          v[j] = b2 * v[j] + (1 - b2) * gj * gj;
          p[j] = p[j] * dec - (stepSize * m[j]) / (Math.sqrt(v[j]) / sbc2 + eps);
        }
        if (s.name === 'logit_scale') p[0] = Math.min(Math.max(p[0], 0), Math.log(100)); // scale <= 100, as CLIP
        g0.dispose();
        this.#params.get(s.name)?.dispose();
        this.#params.set(s.name, tf.tensor(p, s.shape, 'float32'));
        return;
      }
      const old = [this.#p(s.name), this.#m.get(s.name), this.#v.get(s.name)];
      const [p, m, v] = tf.tidy(() => {
        const g = coef < 1 ? tf.mul(g0, coef) : g0;
        const dec = decayFactor(s);
        let p: Tensor = dec !== 1 ? tf.mul(this.#p(s.name), dec) : this.#p(s.name);
        const m0 = this.#m.get(s.name);
        const v0 = this.#v.get(s.name);
        const m = m0 ? tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1)) : tf.mul(g, 1 - b1);
        const v = v0 ? tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2)) : tf.mul(tf.square(g), 1 - b2);
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps);
        p = tf.sub(p, tf.mul(tf.div(m, denom), stepSize));
        if (s.name === 'logit_scale') p = tf.clipByValue(p, 0, Math.log(100)); // scale <= 100, as CLIP
        return [p, m, v];
      });
      this.#params.set(s.name, p);
      this.#m.set(s.name, m);
      this.#v.set(s.name, v);
      old.forEach((t) => t?.dispose());
      g0.dispose();
    });
    const logitScale = Math.exp((await this.#p('logit_scale').data())[0]);
    const msOptimizer = performance.now() - t2;
    return { loss: lossValue, gradNorm, logitScale, msForward, msBackward, msOptimizer, msTotal: performance.now() - t0, batch: n };
  }

  /** Releases every tensor of the model. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of [...this.#params.values(), ...this.#m.values(), ...this.#v.values(), ...this.#mask.values()]) t.dispose();
    this.#params.clear();
    this.#m.clear();
    this.#v.clear();
    this.#mJs.clear();
    this.#vJs.clear();
    this.#mask.clear();
  }
}
