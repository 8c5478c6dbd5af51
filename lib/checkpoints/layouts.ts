/**
 * Key layouts of public CLIP checkpoints and their mapping onto the internal (OpenAI) names, plus the
 * architecture inferred from tensor shapes alone (as OpenAI's `build_model` does), and the inverse
 * mappings (internal → Hugging Face / open_clip) used by tests and by anyone exporting weights.
 */
import { CxrError } from '../errors';
import { validateModelConfig, type ModelConfig } from '../models/config';
import type { NamedTensor } from '../types';

/**
 * - `openai`: OpenAI CLIP / CheXzero / open_clip OpenAI-layout (`visual.*`, `transformer.*`, ...);
 * - `hf-clip`: Hugging Face `CLIPModel` (`vision_model.*`, `text_model.*`, `visual_projection`, ...);
 * - `open-clip-hf`: open_clip with a timm ViT and a Hugging Face BERT (BiomedCLIP: `visual.trunk.*`,
 *   `visual.head.proj`, `text.transformer.*`, `text.proj.*`);
 * - `internal`: this project's names (the own format; OpenAI names plus `text.*` for BERT towers).
 */
export type CheckpointLayout = 'openai' | 'hf-clip' | 'open-clip-hf' | 'internal';

/** A tensor by name with its shape and float32 values. */
export type StateTensor = NamedTensor;

/** Names that identify a layout; the prefix before one of them is a wrapper to strip. */
const MARKERS: Array<[string, CheckpointLayout]> = [
  ['vision_model.embeddings.patch_embedding.weight', 'hf-clip'],
  ['visual.trunk.patch_embed.proj.weight', 'open-clip-hf'],
  ['visual.conv1.weight', 'openai'],
  ['visual.layer1.0.conv1.weight', 'openai'],
];

/** Wrapper prefixes that may sit before the model's own names (checkpoint dicts, DataParallel). */
const WRAPPER = /^((state_dict|model|model_state_dict|module|state|ema|net)\.)*$/;

/** Result of {@link unwrapState}. */
export interface UnwrappedState {
  layout: CheckpointLayout;
  tensors: StateTensor[];
  /** The prefix that was removed ("" when none), e.g. "state_dict.module.". */
  prefix: string;
  /** Entries outside the model (optimizer state, EMA copies, ...), left out. */
  dropped: string[];
}

/**
 * Finds the model inside a checkpoint's flattened tensors: strips `{"state_dict": ...}` / `{"model": ...}`
 * wrappers and DataParallel's `module.` prefix, and names the layout. E_CHECKPOINT when no known layout
 * is found.
 */
export function unwrapState(tensors: StateTensor[], source = 'checkpoint'): UnwrappedState {
  const names = tensors.map((t) => t.name);
  const isBertText = names.some((n) => /(^|\.)text\.embeddings\.word_embeddings\.weight$/.test(n));
  for (const [marker, layout] of MARKERS) {
    for (const n of names) {
      if (n !== marker && !n.endsWith('.' + marker)) continue;
      const prefix = n.slice(0, n.length - marker.length);
      if (!WRAPPER.test(prefix)) continue;
      const kept: StateTensor[] = [];
      const dropped: string[] = [];
      for (const t of tensors) {
        if (t.name.startsWith(prefix)) kept.push(prefix ? { ...t, name: t.name.slice(prefix.length) } : t);
        else dropped.push(t.name);
      }
      // The own format stores BERT towers under `text.` with OpenAI image names: that is `internal`.
      const lay = layout === 'openai' && isBertText ? 'internal' : layout;
      return { layout: lay, tensors: kept, prefix, dropped };
    }
  }
  throw new CxrError(
    'E_CHECKPOINT',
    `${source}: no CLIP model found (none of ${MARKERS.map((m) => m[0]).join(', ')}; first keys: ${names.slice(0, 5).join(', ')})`,
  );
}

function transpose2d(t: StateTensor, name: string): StateTensor {
  if (t.shape.length !== 2) throw new CxrError('E_CHECKPOINT', `tensor "${t.name}" should be 2-D, has shape [${t.shape}]`);
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { name, shape: [c, r], data: out };
}

function concat0(parts: StateTensor[], name: string): StateTensor {
  const rest = parts[0].shape.slice(1);
  for (const p of parts)
    if (p.shape.slice(1).join(',') !== rest.join(','))
      throw new CxrError('E_CHECKPOINT', `tensor "${p.name}" has shape [${p.shape}], unlike "${parts[0].name}" [${parts[0].shape}]`);
  const len = parts.reduce((s, p) => s + p.data.length, 0);
  const data = new Float32Array(len);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { name, shape: [parts.reduce((s, p) => s + p.shape[0], 0), ...rest], data };
}

function reshape(t: StateTensor, name: string, shape: number[]): StateTensor {
  if (shape.reduce((a, b) => a * b, 1) !== t.data.length)
    throw new CxrError('E_CHECKPOINT', `tensor "${t.name}" has shape [${t.shape}], expected ${shape.reduce((a, b) => a * b, 1)} values`);
  return { name, shape, data: t.data };
}

/** Result of {@link toInternal}. */
export interface MappedState {
  tensors: StateTensor[];
  /** Known entries that carry no weights the model uses (position_ids, unused poolers, scalars). */
  ignored: string[];
}

const OPENAI_IGNORED = new Set(['input_resolution', 'context_length', 'vocab_size', 'attn_mask']);

/** Maps a checkpoint's tensors (already unwrapped) onto the internal names. */
export function toInternal(layout: CheckpointLayout, tensors: StateTensor[]): MappedState {
  const ignored: string[] = [];
  const out: StateTensor[] = [];
  if (layout === 'openai' || layout === 'internal') {
    for (const t of tensors) {
      if (OPENAI_IGNORED.has(t.name) || t.name.endsWith('.num_batches_tracked') || t.name.endsWith('position_ids')) ignored.push(t.name);
      else if (t.name.startsWith('text.transformer.pooler.')) ignored.push(t.name);
      // open_clip's HF text encoder beside an OpenAI-layout image tower
      else if (t.name.startsWith('text.transformer.')) out.push({ ...t, name: 'text.' + t.name.slice('text.transformer.'.length) });
      else out.push(t);
    }
    return { tensors: out, ignored };
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  const take = (n: string): StateTensor | undefined => {
    const t = byName.get(n);
    if (t) used.add(n);
    return t;
  };
  const put = (t: StateTensor | undefined, name: string) => {
    if (t) out.push({ ...t, name });
  };
  const layerIndices = (re: RegExp): number[] =>
    [...new Set(tensors.map((t) => re.exec(t.name)?.[1]).filter((x): x is string => x !== undefined).map(Number))].sort((a, b) => a - b);

  if (layout === 'hf-clip') {
    const towers: Array<[string, string]> = [
      ['vision_model.encoder.layers.', 'visual.transformer.resblocks.'],
      ['text_model.encoder.layers.', 'transformer.resblocks.'],
    ];
    for (const [src, dst] of towers) {
      const esc = src.replace(/\./g, '\\.');
      for (const i of layerIndices(new RegExp(`^${esc}(\\d+)\\.`))) {
        const s = `${src}${i}.`;
        const d = `${dst}${i}.`;
        for (const kind of ['weight', 'bias']) {
          const q = take(`${s}self_attn.q_proj.${kind}`);
          const k = take(`${s}self_attn.k_proj.${kind}`);
          const v = take(`${s}self_attn.v_proj.${kind}`);
          if (q && k && v) out.push(concat0([q, k, v], `${d}attn.in_proj_${kind}`));
          else if (q || k || v) throw new CxrError('E_CHECKPOINT', `layer ${s}: q/k/v projection ${kind}s must all be present`);
          put(take(`${s}self_attn.out_proj.${kind}`), `${d}attn.out_proj.${kind}`);
          put(take(`${s}layer_norm1.${kind}`), `${d}ln_1.${kind}`);
          put(take(`${s}layer_norm2.${kind}`), `${d}ln_2.${kind}`);
          put(take(`${s}mlp.fc1.${kind}`), `${d}mlp.c_fc.${kind}`);
          put(take(`${s}mlp.fc2.${kind}`), `${d}mlp.c_proj.${kind}`);
        }
      }
    }
    put(take('vision_model.embeddings.class_embedding'), 'visual.class_embedding');
    put(take('vision_model.embeddings.patch_embedding.weight'), 'visual.conv1.weight');
    put(take('vision_model.embeddings.position_embedding.weight'), 'visual.positional_embedding');
    for (const kind of ['weight', 'bias']) {
      put(take(`vision_model.pre_layrnorm.${kind}`), `visual.ln_pre.${kind}`);
      put(take(`vision_model.post_layernorm.${kind}`), `visual.ln_post.${kind}`);
      put(take(`text_model.final_layer_norm.${kind}`), `ln_final.${kind}`);
    }
    const vp = take('visual_projection.weight');
    if (vp) out.push(transpose2d(vp, 'visual.proj'));
    const tp = take('text_projection.weight');
    if (tp) out.push(transpose2d(tp, 'text_projection'));
    put(take('text_model.embeddings.token_embedding.weight'), 'token_embedding.weight');
    put(take('text_model.embeddings.position_embedding.weight'), 'positional_embedding');
    put(take('logit_scale'), 'logit_scale');
  } else if (layout === 'open-clip-hf') {
    for (const i of layerIndices(/^visual\.trunk\.blocks\.(\d+)\./)) {
      const s = `visual.trunk.blocks.${i}.`;
      const d = `visual.transformer.resblocks.${i}.`;
      for (const kind of ['weight', 'bias']) {
        put(take(`${s}norm1.${kind}`), `${d}ln_1.${kind}`);
        put(take(`${s}norm2.${kind}`), `${d}ln_2.${kind}`);
        put(take(`${s}attn.qkv.${kind}`), `${d}attn.in_proj_${kind}`);
        put(take(`${s}attn.proj.${kind}`), `${d}attn.out_proj.${kind}`);
        put(take(`${s}mlp.fc1.${kind}`), `${d}mlp.c_fc.${kind}`);
        put(take(`${s}mlp.fc2.${kind}`), `${d}mlp.c_proj.${kind}`);
      }
    }
    const cls = take('visual.trunk.cls_token');
    if (cls) out.push(reshape(cls, 'visual.class_embedding', [cls.shape[cls.shape.length - 1]]));
    const pos = take('visual.trunk.pos_embed');
    if (pos) out.push(reshape(pos, 'visual.positional_embedding', pos.shape.slice(-2)));
    put(take('visual.trunk.patch_embed.proj.weight'), 'visual.conv1.weight');
    put(take('visual.trunk.patch_embed.proj.bias'), 'visual.conv1.bias');
    for (const kind of ['weight', 'bias']) {
      put(take(`visual.trunk.norm_pre.${kind}`), `visual.ln_pre.${kind}`);
      put(take(`visual.trunk.norm.${kind}`), `visual.ln_post.${kind}`);
    }
    const hp = take('visual.head.proj.weight');
    if (hp) out.push(transpose2d(hp, 'visual.proj'));
    if (byName.has('visual.head.proj.bias'))
      throw new CxrError('E_CHECKPOINT', 'tensor "visual.head.proj.bias": image projections with a bias are not supported');
    for (const t of tensors) {
      if (t.name.startsWith('text.transformer.pooler.') || t.name.endsWith('position_ids')) {
        used.add(t.name);
        ignored.push(t.name);
      } else if (t.name.startsWith('text.transformer.')) {
        used.add(t.name);
        out.push({ ...t, name: 'text.' + t.name.slice('text.transformer.'.length) });
      } else if (t.name.startsWith('text.proj.')) {
        used.add(t.name);
        out.push(t);
      }
    }
    put(take('logit_scale'), 'logit_scale');
  }
  // Unknown names pass through unchanged: loadState reports them as unexpected (strict: an error naming them).
  for (const t of tensors) {
    if (used.has(t.name)) continue;
    if (t.name.endsWith('position_ids') || t.name.endsWith('.num_batches_tracked')) ignored.push(t.name);
    else out.push(t);
  }
  return { tensors: out, ignored };
}

/** Hints for {@link inferConfig} from files beside the weights. */
export interface InferHints {
  /** Parsed Hugging Face config.json (CLIPModel). */
  hfConfig?: Record<string, any>;
  /** Parsed open_clip_config.json. */
  openClipConfig?: Record<string, any>;
}

function actOf(name: unknown): 'quick_gelu' | 'gelu' | undefined {
  if (name === 'quick_gelu') return 'quick_gelu';
  if (typeof name === 'string' && name.startsWith('gelu')) return 'gelu';
  return undefined;
}

/**
 * Infers the architecture from internal-name tensor shapes (OpenAI's `build_model` rules: heads = width/64,
 * embed_dim = text_projection.shape[1], context length = positional_embedding.shape[0], ...), refined by
 * config files when present. E_CHECKPOINT names the tensor a rule needed and did not find.
 */
export function inferConfig(layout: CheckpointLayout, tensors: StateTensor[], hints: InferHints = {}): ModelConfig {
  const by = new Map(tensors.map((t) => [t.name, t]));
  const shape = (n: string): number[] => {
    const t = by.get(n);
    if (!t) throw new CxrError('E_CHECKPOINT', `cannot infer the architecture: tensor "${n}" is missing`);
    return t.shape;
  };
  const count = (re: RegExp): number => new Set(tensors.map((t) => re.exec(t.name)?.[1]).filter((x) => x !== undefined)).size;
  const heads = (width: number, what: string, given?: number): number => {
    const h = given ?? Math.max(1, Math.round(width / 64));
    if (width % h !== 0) throw new CxrError('E_CHECKPOINT', `cannot infer ${what} heads: width ${width} is not a multiple of ${h}`);
    return h;
  };
  const hv = hints.hfConfig?.vision_config ?? {};
  const ht = hints.hfConfig?.text_config ?? {};
  const oc = hints.openClipConfig?.model_cfg ?? {};

  let vision: ModelConfig['vision'];
  let embedDim: number;
  if (by.has('visual.conv1.weight') && !by.has('visual.layer1.0.conv1.weight')) {
    const [width, , patch] = shape('visual.conv1.weight');
    const grid = Math.round(Math.sqrt(shape('visual.positional_embedding')[0] - 1));
    const layers = count(/^visual\.transformer\.resblocks\.(\d+)\./);
    const mlp = by.get('visual.transformer.resblocks.0.mlp.c_fc.weight');
    const timm = layout === 'open-clip-hf';
    vision = {
      type: 'vit',
      imageSize: patch * grid,
      patchSize: patch,
      width,
      layers,
      heads: heads(width, 'vision', hv.num_attention_heads),
      ...(mlp ? { mlpRatio: mlp.shape[0] / width } : {}),
      act: timm ? 'gelu' : actOf(hv.hidden_act) ?? 'quick_gelu',
      ...(by.has('visual.conv1.bias') ? { patchBias: true } : {}),
      ...(by.has('visual.ln_pre.weight') ? {} : { lnPre: false }),
      ...(timm ? { layerNormEps: 1e-6 } : hv.layer_norm_eps ? { layerNormEps: hv.layer_norm_eps } : {}),
    };
    embedDim = shape('visual.proj')[1];
  } else if (by.has('visual.layer1.0.conv1.weight')) {
    const stages = count(/^visual\.layer(\d+)\./);
    const resnetLayers = Array.from({ length: stages }, (_, s) => count(new RegExp(`^visual\\.layer${s + 1}\\.(\\d+)\\.`)));
    const resnetWidth = shape('visual.layer1.0.conv1.weight')[0];
    const outWidth = Math.round(Math.sqrt(shape('visual.attnpool.positional_embedding')[0] - 1));
    vision = {
      type: 'resnet',
      imageSize: outWidth * 2 ** (stages + 1),
      resnetLayers,
      resnetWidth,
      attnPoolHeads: (resnetWidth * 32) / 64,
    };
    embedDim = shape('visual.attnpool.c_proj.weight')[0];
  } else {
    throw new CxrError('E_CHECKPOINT', 'cannot infer the architecture: no image tower (visual.conv1.weight or visual.layer1.*)');
  }

  let text: ModelConfig['text'];
  let tokenizer: ModelConfig['tokenizer'];
  if (by.has('text.embeddings.word_embeddings.weight')) {
    const [vocabSize, width] = shape('text.embeddings.word_embeddings.weight');
    const maxPosition = shape('text.embeddings.position_embeddings.weight')[0];
    const mlpProj = by.has('text.proj.0.weight');
    const ctx = oc.text_cfg?.context_length ?? Math.min(256, maxPosition);
    text = {
      type: 'bert',
      vocabSize,
      contextLength: ctx,
      width,
      layers: count(/^text\.encoder\.layer\.(\d+)\./),
      heads: heads(width, 'text'),
      act: 'gelu',
      intermediateSize: shape('text.encoder.layer.0.intermediate.dense.weight')[0],
      maxPosition,
      typeVocabSize: shape('text.embeddings.token_type_embeddings.weight')[0],
      padId: 0,
      pooling: oc.text_cfg?.pooler_type === 'mean_pooler' ? 'mean' : 'cls',
      layerNormEps: 1e-12,
      ...(mlpProj ? { proj: 'mlp' as const, projHidden: shape('text.proj.0.weight')[0] } : {}),
    };
    const projOut = mlpProj ? shape('text.proj.2.weight')[0] : shape('text.proj.weight')[0];
    if (projOut !== embedDim)
      throw new CxrError('E_CHECKPOINT', `text projection gives ${projOut} dims but the image tower ${embedDim}`);
    tokenizer = 'wordpiece';
  } else {
    const [vocabSize, width] = shape('token_embedding.weight');
    const mlp = by.get('transformer.resblocks.0.mlp.c_fc.weight');
    text = {
      type: 'causal',
      vocabSize,
      contextLength: shape('positional_embedding')[0],
      width,
      layers: count(/^transformer\.resblocks\.(\d+)\./),
      heads: heads(width, 'text', ht.num_attention_heads),
      ...(mlp ? { mlpRatio: mlp.shape[0] / width } : {}),
      act: actOf(ht.hidden_act) ?? 'quick_gelu',
    };
    const tp = shape('text_projection');
    if (tp[1] !== embedDim) throw new CxrError('E_CHECKPOINT', `text_projection gives ${tp[1]} dims but the image tower ${embedDim}`);
    tokenizer = 'clip-bpe';
  }
  return validateModelConfig({ embedDim, vision, text, tokenizer });
}

/**
 * The inverse mapping: internal tensors written with another layout's names and layouts (q/k/v split,
 * projections transposed, ...). For tests, and to hand weights to Hugging Face or open_clip code.
 */
export function fromInternal(layout: 'openai' | 'hf-clip' | 'open-clip-hf', tensors: StateTensor[]): StateTensor[] {
  if (layout === 'openai') return tensors.filter((t) => !t.name.startsWith('text.'));
  const out: StateTensor[] = [];
  const split3 = (t: StateTensor, names: string[]) => {
    const n = t.shape[0] / 3;
    const per = t.data.length / 3;
    names.forEach((name, i) => out.push({ name, shape: [n, ...t.shape.slice(1)], data: t.data.slice(i * per, (i + 1) * per) }));
  };
  for (const t of tensors) {
    const n = t.name;
    let m: RegExpExecArray | null;
    if (layout === 'hf-clip') {
      if ((m = /^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\.(.*)$/.exec(n))) {
        const base = `${m[1].startsWith('visual') ? 'vision_model' : 'text_model'}.encoder.layers.${m[2]}.`;
        const rest = m[3];
        const kind = rest.endsWith('weight') ? 'weight' : 'bias';
        if (rest.startsWith('attn.in_proj_')) split3(t, ['q', 'k', 'v'].map((x) => `${base}self_attn.${x}_proj.${kind}`));
        else {
          const map: Record<string, string> = {
            'attn.out_proj': 'self_attn.out_proj',
            ln_1: 'layer_norm1',
            ln_2: 'layer_norm2',
            'mlp.c_fc': 'mlp.fc1',
            'mlp.c_proj': 'mlp.fc2',
          };
          const mod = rest.slice(0, rest.length - kind.length - 1);
          out.push({ ...t, name: `${base}${map[mod] ?? mod}.${kind}` });
        }
        continue;
      }
      const direct: Record<string, string> = {
        'visual.class_embedding': 'vision_model.embeddings.class_embedding',
        'visual.conv1.weight': 'vision_model.embeddings.patch_embedding.weight',
        'visual.positional_embedding': 'vision_model.embeddings.position_embedding.weight',
        'visual.ln_pre.weight': 'vision_model.pre_layrnorm.weight',
        'visual.ln_pre.bias': 'vision_model.pre_layrnorm.bias',
        'visual.ln_post.weight': 'vision_model.post_layernorm.weight',
        'visual.ln_post.bias': 'vision_model.post_layernorm.bias',
        'token_embedding.weight': 'text_model.embeddings.token_embedding.weight',
        positional_embedding: 'text_model.embeddings.position_embedding.weight',
        'ln_final.weight': 'text_model.final_layer_norm.weight',
        'ln_final.bias': 'text_model.final_layer_norm.bias',
        logit_scale: 'logit_scale',
      };
      if (n === 'visual.proj') out.push(transpose2d(t, 'visual_projection.weight'));
      else if (n === 'text_projection') out.push(transpose2d(t, 'text_projection.weight'));
      else if (direct[n]) out.push({ ...t, name: direct[n] });
      else throw new CxrError('E_CONFIG', `tensor "${n}" has no Hugging Face CLIPModel name (only ViT + causal text towers map)`);
    } else {
      if ((m = /^visual\.transformer\.resblocks\.(\d+)\.(.*)$/.exec(n))) {
        const map: Record<string, string> = {
          'attn.in_proj_weight': 'attn.qkv.weight',
          'attn.in_proj_bias': 'attn.qkv.bias',
          'attn.out_proj.weight': 'attn.proj.weight',
          'attn.out_proj.bias': 'attn.proj.bias',
          'ln_1.weight': 'norm1.weight',
          'ln_1.bias': 'norm1.bias',
          'ln_2.weight': 'norm2.weight',
          'ln_2.bias': 'norm2.bias',
          'mlp.c_fc.weight': 'mlp.fc1.weight',
          'mlp.c_fc.bias': 'mlp.fc1.bias',
          'mlp.c_proj.weight': 'mlp.fc2.weight',
          'mlp.c_proj.bias': 'mlp.fc2.bias',
        };
        out.push({ ...t, name: `visual.trunk.blocks.${m[1]}.${map[m[2]] ?? m[2]}` });
      } else if (n === 'visual.class_embedding') out.push(reshape(t, 'visual.trunk.cls_token', [1, 1, t.shape[0]]));
      else if (n === 'visual.positional_embedding') out.push(reshape(t, 'visual.trunk.pos_embed', [1, ...t.shape]));
      else if (n === 'visual.conv1.weight') out.push({ ...t, name: 'visual.trunk.patch_embed.proj.weight' });
      else if (n === 'visual.conv1.bias') out.push({ ...t, name: 'visual.trunk.patch_embed.proj.bias' });
      else if (n.startsWith('visual.ln_pre.')) out.push({ ...t, name: 'visual.trunk.norm_pre.' + n.slice(14) });
      else if (n.startsWith('visual.ln_post.')) out.push({ ...t, name: 'visual.trunk.norm.' + n.slice(15) });
      else if (n === 'visual.proj') out.push(transpose2d(t, 'visual.head.proj.weight'));
      else if (n.startsWith('text.proj')) out.push(t);
      else if (n.startsWith('text.')) out.push({ ...t, name: 'text.transformer.' + n.slice(5) });
      else if (n === 'logit_scale') out.push(t);
      else throw new CxrError('E_CONFIG', `tensor "${n}" has no open_clip timm/HF name (only ViT + BERT towers map)`);
    }
  }
  return out;
}

/** A Hugging Face CLIPModel `config.json` for a ViT + causal-text internal config (inverse of the reader). */
export function hfClipConfigJson(c: ModelConfig): Record<string, unknown> {
  if (c.vision.type !== 'vit' || c.text.type !== 'causal') throw new CxrError('E_CONFIG', 'Hugging Face CLIPModel needs a ViT image tower and a causal text tower');
  const w = c.vision.width ?? 768;
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: c.embedDim,
    logit_scale_init_value: c.logitScaleInit ?? Math.log(1 / 0.07),
    vision_config: {
      hidden_size: w,
      image_size: c.vision.imageSize,
      patch_size: c.vision.patchSize,
      num_hidden_layers: c.vision.layers,
      num_attention_heads: c.vision.heads,
      intermediate_size: Math.round(w * (c.vision.mlpRatio ?? 4)),
      hidden_act: c.vision.act ?? 'quick_gelu',
      layer_norm_eps: 1e-5,
    },
    text_config: {
      hidden_size: c.text.width,
      vocab_size: c.text.vocabSize,
      max_position_embeddings: c.text.contextLength,
      num_hidden_layers: c.text.layers,
      num_attention_heads: c.text.heads,
      intermediate_size: Math.round(c.text.width * (c.text.mlpRatio ?? 4)),
      hidden_act: c.text.act ?? 'quick_gelu',
      layer_norm_eps: 1e-5,
    },
  };
}
