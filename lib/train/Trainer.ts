/**
 * The training loop. `fit()` reads top to bottom (principle 9):
 *
 *   set up (data, model, tokenizer, sentence sampler, prompts; resume) → validate once →
 *   for each step: next batch (sentences drawn per (seed, epoch, index), tokenised) → lr from the pure
 *   schedule → one native trainStep → events/logs → validate every N → checkpoint every N / on a new
 *   best / on stop → final model.
 *
 * Every random choice is a pure function of (seed, epoch, index), and the native step draws nothing, so
 * the checkpoint (weights + optimizer state + step + data position) is the whole state: a resumed run
 * computes exactly what an uninterrupted one would.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { CxrError, isCxrError } from '../errors';
import { DataLoader } from '../data/DataLoader';
import type { Batch } from '../data/DataLoader';
import { concatImageBatches, type ImageBatch } from '../data/images';
import { ClipModel } from '../models/ClipModel';
import type { StepResult } from '../types';
import { isModelFolder } from '../models/modelFolder';
import { resolveModelConfig } from '../models/registry';
import { loadPretrained } from '../checkpoints/pretrained';
import { loadTokenizer } from '../text/tokenizer';
import type { TextTokenizer } from '../text/tokenizer';
import { SentenceSampler } from '../text/sentenceSampler';
import type { PreparedReport } from '../text/sentenceSampler';
import { loadPromptSet } from '../text/prompts';
import type { PromptSet } from '../text/prompts';
import { ZeroShotClassifier } from '../eval/zeroShot';
import { scoreSplit } from '../eval/scoreSplit';
import { checkRetrievalInputs, RetrievalEvaluation } from '../eval/retrievalEval';
import type { ZeroShotEncoder } from '../eval/zeroShot';
import { alignPromptLabels, modelEncoder } from '../eval/modelEncoder';
import { macroMean, perLabelAuroc } from '../eval/metrics';
import { writeFileAtomic } from '../util/atomic';
import { ensureOutDir } from '../util/paths';
import { configToYaml, defaultRunDir, resumeConflicts, validateTrainConfig } from './config';
import type { TrainConfig } from './config';
import { lrAt, stepLoss } from './schedule';
import { buildRunData } from './data';
import { limitSource } from '../data/sources';
import type { RunData } from './data';
import { freezePrefixes } from './freeze';
import { TensorBoardLog } from './tensorboard';
import { distributedEnv } from './distributed';
import type { DistEnv } from './distributed';
import { capabilities } from '../native';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  isCheckpointDir,
  pruneCheckpoints,
  readCheckpoint,
  removeRunTemps,
  resolveResumeChoice,
  writeBestPointer,
  writeCheckpoint,
} from './checkpoints';
import type { BestRecord, CheckpointWriteHooks, EvalMetrics, TrainerState, ValidationRetrieval } from './checkpoints';

/** Emitted before the first step. */
export interface StartEvent {
  config: TrainConfig;
  outDir: string;
  totalSteps: number;
  /** Step the run starts at (> 0 when resumed). */
  startStep: number;
  resumedFrom: string | null;
  trainPairs: number;
  valImages: number;
  stepsPerEpoch: number;
  parameters: { total: number; trainable: number };
  device: string;
  /** Data parallelism: this process's rank and the number of processes (0 and 1 alone). */
  rank: number;
  worldSize: number;
}

/** Emitted after every optimizer step. */
export interface StepEvent {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  logitScale: number;
  /** Pairs in this step over all processes (micro-batches × batch size, less any image that failed to load). */
  batch: number;
  /** Pairs per second over this step, data wait included. */
  imagesPerSec: number;
  /** Time of the native step and of waiting for data, ms. */
  msStep: number;
  msData: number;
  /** Distributed: ms of the step spent waiting on other processes (all-gather, all-reduce); 0 alone. */
  msComm: number;
  /** Loss statistics of the step (see {@link StepResult}): how often the relaxation engaged, the threshold, the similarities. */
  relaxEngaged: number;
  relaxAlpha: number;
  posSimMean: number;
  posSimQ10: number;
  posSimQ50: number;
  posSimQ90: number;
  negSimMean: number;
}

/** Emitted after a checkpoint is written. */
export interface CheckpointEvent {
  step: number;
  dir: string;
  reason: 'periodic' | 'best' | 'end' | 'stop';
  best: BestRecord | null;
  removed: string[];
}

/** How `fit()` ended. */
export interface FitResult {
  status: 'completed' | 'stopped';
  step: number;
  totalSteps: number;
  /** Validation before the first step (null when `eval.atStart` is false). */
  initialEval: EvalMetrics | null;
  finalEval: EvalMetrics | null;
  best: BestRecord | null;
  lastCheckpoint: string | null;
  /** Final weights (`ClipModel.load`-able). */
  modelDir: string | null;
  /** Losses of the steps run in this call, in order (for tests and plots; metrics.jsonl has them all). */
  losses: number[];
  elapsedMs: number;
  outDir: string;
}

/** Typed events of {@link Trainer}. */
export interface TrainerEvents {
  start: StartEvent;
  step: StepEvent;
  eval: EvalMetrics;
  checkpoint: CheckpointEvent;
  end: FitResult;
  /** Human-readable notes (resume, warnings). */
  message: { level: 'info' | 'warn'; text: string };
}

/** Options of {@link Trainer} besides the config. */
export interface TrainerOptions {
  /** `auto` (resume the newest checkpoint of outDir if any), a checkpoint folder or a run folder. */
  resume?: string;
  /** Abort → the current step finishes, a checkpoint is written, `fit()` resolves with status 'stopped'. */
  signal?: AbortSignal;
  /** Write metrics.jsonl in the run folder (when `log.to` lists jsonl). Default true. */
  metricsFile?: boolean;
  /** Crash-simulation hooks for checkpoint writes (tests). */
  checkpointHooks?: CheckpointWriteHooks;
  /** Stop after this many steps of this call (tests: "kill" a run at step k). */
  stopAfterSteps?: number;
  /**
   * Your own sources instead of `config.data` (e.g. in-memory samples). The config's data section is then
   * only used for image preparation; a resumed run must be given the same data.
   */
  data?: RunData;
}

/** A batch ready for the native step. */
interface StepBatch {
  images: ImageBatch;
  tokenIds: Int32Array;
  n: number;
  length: number;
  epoch: number;
  /** Index of this step within its epoch. */
  stepInEpoch: number;
  msData: number;
}

/**
 * Fine-tunes a CLIP model on image-report pairs with sentence sampling and the (relaxed) contrastive loss,
 * validating zero-shot and checkpointing as configured.
 *
 * ```ts
 * const trainer = new Trainer(resolveTrainConfig([{ config: { maxSteps: 100 } }]));
 * trainer.on('step', (e) => console.log(e.step, e.loss));
 * const result = await trainer.fit();
 * trainer.dispose();
 * ```
 */
export class Trainer {
  /** The resolved config (outDir filled in on `fit()`). */
  readonly config: TrainConfig;
  private readonly opts: TrainerOptions;
  private readonly emitter = new EventEmitter();
  private modelRef: ClipModel | null = null;
  private tokenizer: TextTokenizer | null = null;
  private sampler: SentenceSampler | null = null;
  private prompts: PromptSet | null = null;
  private data: RunData | null = null;
  private trainLoader: DataLoader | null = null;
  private valLoader: DataLoader | null = null;
  private readonly prepared = new Map<number, PreparedReport>();
  private readonly preparedVal = new Map<number, PreparedReport>();
  private state!: TrainerState;
  private stepsPerEpoch = 0;
  private lastCheckpoint: string | null = null;
  private lastCheckpointStep = -1;
  private metricsPath: string | null = null;
  private tensorboard: TensorBoardLog | null = null;
  private dist: DistEnv | null = null;

  /** Rank 0, or the only process: the one that writes logs, checkpoints and the final model. */
  get isMain(): boolean {
    return !this.dist || this.dist.rank === 0;
  }

  constructor(config: TrainConfig, opts: TrainerOptions = {}) {
    this.config = validateTrainConfig(JSON.parse(JSON.stringify(config)) as TrainConfig);
    this.opts = opts;
  }

  /** Subscribes to an event. */
  on<K extends keyof TrainerEvents>(event: K, fn: (e: TrainerEvents[K]) => void): this {
    this.emitter.on(event, fn);
    return this;
  }
  /** Unsubscribes. */
  off<K extends keyof TrainerEvents>(event: K, fn: (e: TrainerEvents[K]) => void): this {
    this.emitter.off(event, fn);
    return this;
  }
  private emit<K extends keyof TrainerEvents>(event: K, e: TrainerEvents[K]): void {
    if (this.metricsPath) {
      fs.appendFileSync(this.metricsPath, JSON.stringify({ event, time: new Date().toISOString(), ...(e as object) }, jsonSafe) + '\n');
    }
    const tb = this.tensorboard;
    if (tb) {
      if (event === 'start') tb.start(this.config, (e as StartEvent).startStep);
      else if (event === 'step') tb.step(e as StepEvent);
      else if (event === 'eval') tb.eval(e as EvalMetrics);
      else if (event === 'checkpoint' || event === 'end') tb.flush();
    }
    this.emitter.emit(event, e);
  }

  /** The model (available after `fit()` or `setup()`). */
  get model(): ClipModel {
    if (!this.modelRef) throw new CxrError('E_CONFIG', 'the trainer is not set up yet: call setup() or fit() first');
    return this.modelRef;
  }

  /** Optimizer steps done. */
  get step(): number {
    return this.state?.step ?? 0;
  }

  /** The run folder. */
  get outDir(): string {
    return this.config.outDir!;
  }

  // ------------------------------------------------------------------------------------------------
  // Set-up

  /**
   * Prepares data, model, tokenizer, sampler and prompts, and restores a checkpoint when resuming.
   * Called by `fit()`; call it yourself to `evaluate()` without training.
   */
  async setup(): Promise<void> {
    if (this.modelRef) return;
    const c = this.config;
    this.dist = distributedEnv();
    const dist = this.dist;
    if (dist) {
      if (c.outDir === null) throw new CxrError('E_CONFIG', 'a distributed run needs outDir (--out): every rank must use the same run folder');
      if (c.batchSize % dist.worldSize !== 0)
        throw new CxrError('E_CONFIG', `batchSize ${c.batchSize} is the batch over all processes and must be divisible by the ${dist.worldSize} processes`);
    }
    if (c.outDir === null) c.outDir = defaultRunDir();
    c.outDir = ensureOutDir(c.outDir, 'outDir');
    const ckptRoot = path.join(c.outDir, 'checkpoints');
    const choice = this.opts.resume ? resolveResumeChoice(this.opts.resume, c.outDir) : { dir: null, warnings: [] };
    const resumeDir = choice.dir;
    for (const w of choice.warnings) this.emit('message', { level: 'warn', text: w });
    if (!resumeDir && fs.existsSync(ckptRoot) && fs.readdirSync(ckptRoot).some((f) => /^step-\d+$/.test(f))) {
      throw new CxrError('E_CONFIG', `${c.outDir} already holds checkpoints of a run; pass --resume auto to continue it, or choose another outDir`);
    }
    ensureOutDir(c.outDir, 'outDir', { create: true });
    // What a killed or failed writer left (a half-written model file, a checkpoint temp folder) is garbage.
    if (this.isMain) removeRunTemps(c.outDir);
    const logTo: readonly string[] = c.log.to;
    this.metricsPath = this.opts.metricsFile === false || !this.isMain || !logTo.includes('jsonl') ? null : path.join(c.outDir, 'metrics.jsonl');

    // Data.
    this.data = this.opts.data ? { ...this.opts.data, val: limitSource(this.opts.data.val, c.eval.maxSamples) } : await buildRunData(c);
    if (c.eval.retrieval) checkRetrievalInputs(c.data.valSplit, this.data.val.samples, [], { kx200Labels: null });
    const model = await this.createModel(resumeDir);
    this.modelRef = model;
    const imageSize = c.data.imageSize ?? model.imageSize;
    if (imageSize !== model.imageSize) throw new CxrError('E_CONFIG', `data.imageSize ${imageSize} differs from the model's input size ${model.imageSize}`);
    const image = { size: imageSize, geometry: c.data.geometry, normalize: c.data.normalize };
    this.trainLoader = new DataLoader(this.data.train, {
      batchSize: dist ? c.batchSize / dist.worldSize : c.batchSize,
      shard: dist ? { rank: dist.rank, count: dist.worldSize } : undefined,
      image: { ...image, augment: c.data.augment },
      pixels: c.data.pixels,
      shuffle: true,
      seed: c.seed,
      dropLast: true,
      workers: c.data.workers,
      cacheMB: c.data.cacheMB,
    });
    this.valLoader = new DataLoader(this.data.val, { batchSize: c.eval.batchSize, image, shuffle: false, workers: c.data.workers, cacheMB: c.data.cacheMB });
    this.stepsPerEpoch = Math.floor(this.trainLoader.batchesPerEpoch / c.accumSteps);
    if (this.stepsPerEpoch < 1) {
      throw new CxrError('E_DATA', `the ${c.data.trainSplit} split has ${this.trainLoader.length} pairs: fewer than one step of batchSize ${c.batchSize} × accumSteps ${c.accumSteps}`);
    }

    // Text.
    const kind = model.config.tokenizer ?? (model.config.text.type === 'bert' ? 'wordpiece' : 'clip-bpe');
    this.tokenizer = loadTokenizer({ kind, path: c.model.tokenizer ?? undefined, contextLength: model.contextLength });
    this.tokenizer.assertVocabSize(model.config.text.vocabSize);
    const tok = this.tokenizer;
    this.sampler = new SentenceSampler({
      mode: c.text.mode,
      k: c.text.k ?? undefined,
      sections: c.text.sections,
      seed: c.seed,
      fallbackText: c.text.fallbackText,
      dropComparisonOnly: c.text.dropComparisonOnly,
      dropDuplicates: c.text.dropDuplicates,
      semicolons: c.text.semicolons,
      sectionFallback: c.text.sectionFallback,
      removePlaceholders: c.text.removePlaceholders,
      contextLength: model.contextLength,
      countTokens: (t) => tok.countTokens(t),
    });
    this.prompts = loadPromptSet(c.eval.promptSet);

    // State (fresh, or from the checkpoint).
    const totalSteps = c.maxSteps ?? c.epochs! * this.stepsPerEpoch;
    this.state = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step: 0,
      epoch: 0,
      stepInEpoch: 0,
      samplesSeen: 0,
      totalSteps,
      best: null,
      lastEval: null,
      rng: { kind: 'counter-based', seed: c.seed },
      config: c,
      elapsedMs: 0,
      createdAt: new Date().toISOString(),
      threads: capabilities().threads,
    };
    if (resumeDir) {
      const ck = readCheckpoint(resumeDir);
      const conflicts = resumeConflicts(ck.state.config, c);
      if (conflicts.length) {
        throw new CxrError('E_CONFIG', `cannot resume ${resumeDir}: these settings differ from the checkpoint's: ${conflicts.join(', ')} (resume with the saved config, changing only steps, eval, checkpoint, logging or threads)`, { conflicts });
      }
      model.loadOptimizerState(ck.optimizer);
      for (const n of ck.notes) this.emit('message', { level: 'warn', text: n });
      const threads = capabilities().threads;
      if (ck.state.threads !== undefined && ck.state.threads !== threads)
        this.emit('message', {
          level: 'warn',
          text: `the checkpoint was trained with ${ck.state.threads} libtorch thread(s), this run uses ${threads}: the resumed run is not bit-exact (float sums change order); pass --threads ${ck.state.threads} for identical results`,
        });
      const { files: _files, ...saved } = ck.state;
      this.state = { ...saved, config: c, totalSteps, threads };
      this.lastCheckpoint = resumeDir;
      this.lastCheckpointStep = ck.state.step;
      this.emit('message', { level: 'info', text: `resumed from ${resumeDir} at step ${ck.state.step} (epoch ${ck.state.epoch}, step ${ck.state.stepInEpoch} of the epoch)` });
    }
    this.resumedFrom = resumeDir;
    if (dist) {
      const backend = await model.initDistributed({
        rank: dist.rank,
        worldSize: dist.worldSize,
        masterAddr: dist.masterAddr,
        masterPort: dist.masterPort,
        backend: c.distributed.backend,
        timeoutMs: Math.round(c.distributed.timeoutSec * 1000),
        bucketMb: c.distributed.bucketMb,
        ifname: dist.ifname,
      });
      // Identical starting weights whatever each rank loaded or initialised.
      await model.broadcastState();
      this.emit('message', { level: 'info', text: `rank ${dist.rank} of ${dist.worldSize} (${backend}): ${c.batchSize / dist.worldSize} pairs per micro-batch of ${c.batchSize}` });
    }
    if (this.isMain) writeFileAtomic(path.join(c.outDir, 'config.yaml'), configToYaml(c));
    // One new event file per attempt (a resumed run adds one beside the earlier ones), once set-up succeeded.
    if (this.isMain && logTo.includes('tensorboard')) this.tensorboard = new TensorBoardLog(c.outDir);
  }

  private resumedFrom: string | null = null;

  /**
   * Model from the resume checkpoint, a pre-trained checkpoint (any format loadPretrained reads: OpenAI,
   * Hugging Face, open_clip/BiomedCLIP, own folder), or the registry; then freezing and optimizer.
   */
  private async createModel(resumeDir: string | null): Promise<ClipModel> {
    const c = this.config;
    const mo = { device: this.deviceOf(c.device), precision: c.precision, seed: c.seed, threads: c.threads ?? undefined };
    let model: ClipModel;
    const src = resumeDir ? path.join(resumeDir, 'model') : c.model.checkpoint;
    if (src) {
      const dir = isCheckpointDir(src) ? path.join(src, 'model') : src;
      if (isModelFolder(dir)) model = ClipModel.load(dir, mo);
      else {
        const loaded = await loadPretrained(dir, { ...mo, tokenizer: null });
        model = loaded.model;
        for (const w of loaded.report.warnings ?? []) this.emit('message', { level: 'warn', text: w });
      }
    } else {
      // model.logitScale: a from-scratch model whose scale starts elsewhere than the registry's 1/0.07.
      const ls = c.model.logitScale;
      model = ClipModel.create(ls === null ? c.model.name : { ...resolveModelConfig(c.model.name), logitScaleInit: Math.log(ls) }, mo);
    }
    try {
      const prefixes = freezePrefixes(model.getState().map((t) => t.name), c.freeze);
      if (prefixes.length) model.freeze(prefixes);
      const o = c.optimizer;
      model.configureOptimizer({ kind: o.kind, lr: o.lr, weightDecay: o.weightDecay, betas: o.betas, eps: o.eps, momentum: o.momentum });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Distributed on GPUs: each process of a machine takes the GPU of its LOCAL_RANK. */
  private deviceOf(device: string): string {
    const d = this.dist;
    if (!d || device === 'cpu') return device;
    if (device === 'auto' && !capabilities().cuda.available) return device;
    return `cuda:${d.localRank}`;
  }

  // ------------------------------------------------------------------------------------------------
  // The loop

  /** Trains until `maxSteps` / `epochs`, an abort, or an error. See the module comment for the order of things. */
  async fit(): Promise<FitResult> {
    const t0 = Date.now();
    await this.setup();
    const c = this.config;
    const model = this.model;
    const s = this.state;
    const startElapsed = s.elapsedMs;
    const losses: number[] = [];
    this.emitStart();

    if (s.step === 0 && c.eval.atStart) s.initialEval = await this.validate();

    const batches = this.stepBatches(s.epoch, s.stepInEpoch);
    let next = batches.next();
    let status: FitResult['status'] = 'completed';
    let stepsThisCall = 0;
    try {
      while (s.step < s.totalSteps) {
        let stop = this.opts.signal?.aborted === true || (this.opts.stopAfterSteps !== undefined && stepsThisCall >= this.opts.stopAfterSteps);
        // Every rank stops at the same step (a rank alone would leave the others waiting in a collective).
        if (this.dist) stop = await model.distAny(stop).catch((e) => Promise.reject(this.distFailed(e)));
        if (stop) {
          status = 'stopped';
          break;
        }
        const r = await next;
        if (r.done) throw new CxrError('E_INTERNAL', 'the batch stream ended early');
        const b = r.value;
        const lr = lrAt(s.step, { lr: c.optimizer.lr, warmupSteps: c.schedule.warmupSteps, totalSteps: s.totalSteps, minLrRatio: c.schedule.minLrRatio });
        const tStep = Date.now();
        const loss = stepLoss(c.loss, s.relaxAlpha ?? null, s.step);
        const pending = model.trainStep(b, { lr, clipGradNorm: c.clipGradNorm, loss, microBatch: c.accumSteps > 1 ? c.batchSize : 0 });
        // Prepare the next batch (augment, sample sentences, tokenise) while the native step runs.
        next = s.step + 1 < s.totalSteps ? batches.next() : Promise.resolve({ done: true, value: undefined });
        next.catch(() => undefined);
        let res: StepResult;
        try {
          res = await pending;
        } catch (e) {
          if (isCxrError(e, 'E_NUMERIC')) throw this.diverged(e);
          throw this.distFailed(e);
        }
        const msStep = Date.now() - tStep;
        s.step++;
        stepsThisCall++;
        s.epoch = b.epoch;
        s.stepInEpoch = b.stepInEpoch + 1;
        const pairs = res.worldSize > 1 ? res.batch : b.n;
        s.samplesSeen += pairs;
        // The running α of `loss.alpha: {quantile}` is state: checkpointed, so a resumed run continues it.
        if (res.relaxBatchQuantile !== null) s.relaxAlpha = res.relaxAlpha;
        losses.push(res.loss);
        this.emit('step', {
          step: s.step,
          totalSteps: s.totalSteps,
          epoch: b.epoch,
          loss: res.loss,
          lr,
          gradNorm: res.gradNorm,
          logitScale: res.logitScale,
          batch: pairs,
          imagesPerSec: (1000 * pairs) / Math.max(1, msStep + b.msData),
          msStep,
          msData: b.msData,
          msComm: res.msComm,
          relaxEngaged: res.relaxEngaged,
          relaxAlpha: res.relaxAlpha,
          posSimMean: res.posSimMean,
          posSimQ10: res.posSimQ10,
          posSimQ50: res.posSimQ50,
          posSimQ90: res.posSimQ90,
          negSimMean: res.negSimMean,
        });

        const last = s.step === s.totalSteps;
        let newBest = false;
        if ((c.eval.everySteps > 0 && s.step % c.eval.everySteps === 0) || last) newBest = this.noteEval(await this.validate());
        if (newBest) this.checkpoint('best', t0, startElapsed);
        else if (c.checkpoint.everySteps > 0 && s.step % c.checkpoint.everySteps === 0 && !last) this.checkpoint('periodic', t0, startElapsed);
      }
      if (this.lastCheckpointStep !== s.step) {
        this.checkpoint(status === 'stopped' ? 'stop' : 'end', t0, startElapsed);
      }
    } finally {
      await batches.return(undefined).catch(() => undefined);
    }

    let modelDir: string | null = null;
    if (status === 'completed') {
      modelDir = path.join(c.outDir!, 'model');
      if (this.isMain) model.save(modelDir, { step: s.step, run: c.outDir, config: 'config.yaml' });
    }
    // No rank leaves before rank 0 has written everything.
    if (this.dist) await model.distBarrier().catch((e) => Promise.reject(this.distFailed(e)));
    const result: FitResult = {
      status,
      step: s.step,
      totalSteps: s.totalSteps,
      initialEval: s.initialEval ?? null,
      finalEval: s.lastEval,
      best: s.best,
      lastCheckpoint: this.lastCheckpoint,
      modelDir,
      losses,
      elapsedMs: startElapsed + (Date.now() - t0),
      outDir: c.outDir!,
    };
    if (this.isMain) writeFileAtomic(path.join(c.outDir!, 'summary.json'), JSON.stringify({ ...result, losses: undefined }, jsonSafe, 2) + '\n');
    this.emit('end', result);
    return result;
  }

  private emitStart(): void {
    const m = this.model;
    this.emit('start', {
      config: this.config,
      outDir: this.config.outDir!,
      totalSteps: this.state.totalSteps,
      startStep: this.state.step,
      resumedFrom: this.resumedFrom,
      trainPairs: this.trainLoader!.length,
      valImages: this.valLoader!.length,
      stepsPerEpoch: this.stepsPerEpoch,
      parameters: { total: m.parameterCount(false), trainable: m.parameterCount(true) },
      device: m.device,
      rank: this.dist?.rank ?? 0,
      worldSize: this.dist?.worldSize ?? 1,
    });
  }

  /** The NaN/Inf stop: the native step refused to update, so the last checkpoint is the last good state. */
  private diverged(e: CxrError): CxrError {
    const where = this.lastCheckpoint ? `the last good checkpoint is ${this.lastCheckpoint}` : 'no checkpoint was written yet';
    return new CxrError('E_NUMERIC', `training diverged at step ${this.state.step + 1}: ${e.message}. ${where}; resume from it with a lower optimizer.lr or stronger clipGradNorm`, { step: this.state.step + 1, lastCheckpoint: this.lastCheckpoint }, { cause: e });
  }

  /** A failed collective: say where the run can be picked up again. */
  private distFailed(e: unknown): unknown {
    if (!isCxrError(e, 'E_DIST')) return e;
    const where = this.lastCheckpoint ? `the last checkpoint is ${this.lastCheckpoint}` : 'no checkpoint was written yet';
    return new CxrError('E_DIST', `${e.message} Training stopped at step ${this.state.step}; ${where}; resume with --resume auto (with the same or another number of processes)`, { step: this.state.step, lastCheckpoint: this.lastCheckpoint }, { cause: e });
  }

  /**
   * Batches of optimizer steps from (epoch, stepInEpoch) on, forever: `accumSteps` loader micro-batches
   * concatenated, each pair's text drawn by the sampler for (epoch, dataset index) and tokenised.
   */
  private async *stepBatches(epoch: number, skipSteps: number): AsyncGenerator<StepBatch, void, undefined> {
    const c = this.config;
    const loader = this.trainLoader!;
    for (;; epoch++, skipSteps = 0) {
      let group: Batch[] = [];
      let stepInEpoch = 0;
      let tWait = Date.now();
      let produced = 0;
      for await (const b of loader.epoch(epoch)) {
        group.push(b);
        if (group.length < c.accumSteps) continue;
        const micro = group;
        group = [];
        if (stepInEpoch < skipSteps) {
          // Resuming inside an epoch: these steps were already trained on.
          stepInEpoch++;
          continue;
        }
        const sb = this.assemble(micro, epoch, stepInEpoch++, Date.now() - tWait);
        produced++;
        yield sb;
        tWait = Date.now();
      }
      if (produced === 0 && skipSteps === 0) throw new CxrError('E_DATA', `epoch ${epoch} produced no batch (every image failed to load?)`);
    }
  }

  /** Concatenates micro-batches and draws + tokenises their texts. */
  private assemble(micro: Batch[], epoch: number, stepInEpoch: number, msWait: number): StepBatch {
    const t = Date.now();
    const n = micro.reduce((a, b) => a + b.n, 0);
    const images = concatImageBatches(micro.map((b) => b.images));
    const texts: string[] = [];
    for (const b of micro) b.indices.forEach((idx, i) => texts.push(this.textFor(idx, b.samples[i].report, epoch, this.prepared)));
    const tok = this.tokenizer!.encodeBatch(texts, this.model.contextLength);
    return { images, tokenIds: tok.ids, n, length: tok.length, epoch, stepInEpoch, msData: msWait + (Date.now() - t) };
  }

  private textFor(index: number, report: string | undefined, epoch: number, cache: Map<number, PreparedReport>): string {
    let p = cache.get(index);
    if (!p) {
      p = this.sampler!.prepare(report ?? '');
      cache.set(index, p);
    }
    return this.sampler!.sample(p, { epoch, index });
  }

  // ------------------------------------------------------------------------------------------------
  // Validation

  /** Records an evaluation, updates the best; true when it is a new best. */
  private noteEval(m: EvalMetrics): boolean {
    const s = this.state;
    s.lastEval = m;
    const by = this.config.checkpoint.keepBestBy;
    if (!by) return false;
    const v = by === 'macroAuroc' ? m.macroAuroc : m.valLoss;
    if (!Number.isFinite(v)) return false;
    const better = !s.best || (by === 'macroAuroc' ? v > s.best.value : v < s.best.value);
    if (better) s.best = { metric: by, value: v, step: s.step };
    return better;
  }

  private async validate(): Promise<EvalMetrics> {
    const m = await this.evaluate();
    this.emit('eval', m);
    return m;
  }

  /** A {@link ZeroShotEncoder} over the current weights (the id changes with every step, so no stale cache). */
  encoder(): ZeroShotEncoder {
    return modelEncoder(this.model, this.tokenizer!, `${this.config.outDir}@${this.step}`);
  }

  /**
   * Zero-shot probabilities on the validation split: `labels`, `probs` (n × labels, row-major) and the
   * truth (1, 0, -1 uncertain, NaN missing) aligned with them; plus the validation loss.
   */
  async zeroShot(): Promise<{ labels: string[]; probs: Float32Array; truth: Float64Array; n: number; valLoss: number; retrieval?: ValidationRetrieval }> {
    await this.setup();
    const model = this.model;
    const prompts = this.prompts!;
    const data = this.data!;
    // Prompt labels against dataset labels, through the dataset's label map when it has one.
    const { used, datasetName: canon } = alignPromptLabels(prompts, data.dataset, data.labelNames);
    // One image encode per validation batch, as the loader delivers it.
    const clf = new ZeroShotClassifier(this.encoder(), { name: prompts.name, labels: used }, { cache: new Map(), imageBatchSize: this.config.eval.batchSize });
    const truth: number[] = [];
    let lossSum = 0;
    let lossN = 0;
    const scored = await scoreSplit(clf, this.valLoader!, {
      keepEmbeddings: this.config.eval.retrieval,
      onBatch: async (b) => {
        for (const smp of b.samples) for (const l of used) truth.push(smp.labels[canon.get(l.label)!] ?? NaN);
        if (b.n >= 2) {
          // Validation texts: sampled as at epoch 0, the same every evaluation.
          const texts = b.indices.map((idx, i) => this.textFor(idx, b.samples[i].report, 0, this.preparedVal));
          const tok = this.tokenizer!.encodeBatch(texts, model.contextLength);
          lossSum += b.n * (await model.evalLoss({ images: b.images, tokenIds: tok.ids, n: b.n, length: tok.length }, stepLoss(this.config.loss, this.state.relaxAlpha ?? null, this.state.step)));
          lossN += b.n;
        }
      },
    });
    const probs = scored.probs;
    const n = scored.indices.length;
    const labels = used.map((l) => l.label);
    let retrieval: ValidationRetrieval | undefined;
    if (this.config.eval.retrieval) {
      // Image↔report retrieval from the same pass's embeddings; the report text as `eval --retrieval` forms it, from the run's sections.
      const samples = scored.indices.map((i) => this.valLoader!.samples[i]);
      const tok = this.tokenizer!;
      const ev = new RetrievalEvaluation(this.config.data.valSplit, this.valLoader!.samples, labels, canon, { sections: this.config.text.sections, kx200Labels: null });
      await ev.addMember({ checkpoint: `step ${this.step}`, samples, embeddings: scored.embeddings!, classifier: clf, countTokens: (t) => tok.countTokens(t), contextLength: model.contextLength });
      const r = ev.finish();
      const dir = (d: NonNullable<typeof r.scores.imageToText>) => ({ recall: d.recall, meanRank: d.meanRank, medianRank: d.medianRank });
      retrieval = { imageToText: dir(r.scores.imageToText!), textToImage: dir(r.scores.textToImage!), images: r.images.withText, texts: r.texts.distinct };
    }
    return { labels, probs, truth: Float64Array.from(truth), n, valLoss: lossN ? lossSum / lossN : NaN, ...(retrieval ? { retrieval } : {}) };
  }

  /** Validation loss and zero-shot AUROC per label and macro mean on the validation split. */
  async evaluate(): Promise<EvalMetrics> {
    const z = await this.zeroShot();
    const per = perLabelAuroc(z.labels, z.truth, z.probs);
    const mm = macroMean(per);
    return { step: this.step, valLoss: z.valLoss, auroc: per, macroAuroc: mm.mean, skipped: mm.skipped, n: z.n, ...(z.retrieval ? { retrieval: z.retrieval } : {}) };
  }

  // ------------------------------------------------------------------------------------------------
  // Checkpoints

  private checkpoint(reason: CheckpointEvent['reason'], t0: number, startElapsed: number): void {
    const c = this.config;
    const s = this.state;
    s.elapsedMs = startElapsed + (Date.now() - t0);
    s.createdAt = new Date().toISOString();
    const root = path.join(c.outDir!, 'checkpoints');
    if (!this.isMain) {
      // Rank 0 writes it; the others only keep count (they resume from rank 0's folders).
      this.lastCheckpointStep = s.step;
      return;
    }
    const dir = writeCheckpoint(root, this.model, s, this.opts.checkpointHooks);
    this.lastCheckpoint = dir;
    this.lastCheckpointStep = s.step;
    if (s.best && s.best.step === s.step) writeBestPointer(root, s.best);
    const protect = new Set<number>([s.step]);
    if (s.best) protect.add(s.best.step);
    const removed = pruneCheckpoints(root, c.checkpoint.keepLast, protect);
    this.emit('checkpoint', { step: s.step, dir, reason, best: s.best, removed });
  }

  /** Releases the model and the loaders' threads. Idempotent. */
  async dispose(): Promise<void> {
    await this.trainLoader?.close();
    await this.valLoader?.close();
    this.modelRef?.dispose();
    this.modelRef = null;
    this.tensorboard?.close();
    this.tensorboard = null;
  }
}

/** JSON replacer: NaN/Infinity as null (JSON has neither), typed arrays skipped. */
function jsonSafe(_k: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return null;
  if (ArrayBuffer.isView(v)) return undefined;
  return v;
}
