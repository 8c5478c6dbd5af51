/**
 * Training checkpoints: one folder per step under `<outDir>/checkpoints/`,
 *
 * ```
 * step-00000100/
 *   model/            model.safetensors + cxr-model.json (ClipModel.save; loadable with ClipModel.load)
 *   optimizer.bin     the native optimizer state (moments, step counts), for exact resume
 *   trainer.json      step, epoch, position in the epoch, best metric, last metrics, resolved config
 * latest.json         { "step": 100, "dir": "step-00000100" }  (pointer, written last)
 * best.json           { "step": ..., "dir": ..., "metric": ..., "value": ... }
 * ```
 *
 * Atomicity: a checkpoint is written into a hidden temp folder (every file fsynced), which is then
 * renamed to its final name and the parent folder fsynced; `latest.json` is replaced atomically after
 * that. A crash at any point leaves the previous checkpoint and pointer valid; leftover temp folders
 * are ignored by readers and removed by the next successful write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { fsyncDir, writeFileAtomic } from '../util/atomic';
import { checkRunFolder, ensureOutDir } from '../util/paths';
import type { ClipModel } from '../models/ClipModel';
import type { TrainConfig } from './config';

/** Format tag of trainer.json. */
export const CHECKPOINT_FORMAT = 'cxr-train-checkpoint';
/** Version of trainer.json this build writes and reads. */
export const CHECKPOINT_VERSION = 1;

/** Validation metrics of one evaluation. */
export interface EvalMetrics {
  /** Optimizer steps done when evaluated. */
  step: number;
  /** Mean contrastive loss over the validation batches (batch size `eval.batchSize`); NaN when < 2 images. */
  valLoss: number;
  /** Zero-shot AUROC per label (null when the label has one class in the split). */
  auroc: Record<string, number | null>;
  /** Macro mean over labels with both classes present. */
  macroAuroc: number;
  /** Labels left out of the macro mean. */
  skipped: string[];
  /** Validation images scored. */
  n: number;
}

/** The best checkpoint so far by the configured metric. */
export interface BestRecord {
  metric: 'macroAuroc' | 'valLoss';
  value: number;
  step: number;
}

/** Everything besides weights and optimizer that a resume needs (trainer.json). */
export interface TrainerState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** Optimizer steps done. */
  step: number;
  /** Epoch the next step reads from. */
  epoch: number;
  /** Steps already taken from that epoch (the data position: batches are a pure function of seed, epoch, index). */
  stepInEpoch: number;
  /** Pairs trained on so far. */
  samplesSeen: number;
  /** Total steps of the run, as planned when the checkpoint was written. */
  totalSteps: number;
  best: BestRecord | null;
  lastEval: EvalMetrics | null;
  /** Validation before the first step (kept so a resumed run still reports before/after). */
  initialEval?: EvalMetrics | null;
  /**
   * Random state. Every random draw (shuffling, augmentation, sentence choice) is counter-based on
   * (seed, epoch, index), and the native step draws nothing, so the seed and the data position are the
   * whole RNG state.
   */
  rng: { kind: 'counter-based'; seed: number };
  /** The resolved config of the run. */
  config: TrainConfig;
  /** Wall time spent training before this checkpoint, in ms. */
  elapsedMs: number;
  createdAt: string;
}

/** A checkpoint read back. */
export interface LoadedCheckpoint {
  dir: string;
  modelDir: string;
  state: TrainerState;
  optimizer: Buffer;
}

/** Test hooks: simulate a crash at the worst moments. */
export interface CheckpointWriteHooks {
  /** Called after every file is in the temp folder, before the rename makes it visible. */
  beforeRename?: (tmpDir: string) => void;
  /** Called after the rename, before latest.json points at it. */
  beforePointer?: (dir: string) => void;
}

/** Folder name of the checkpoint at `step`. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function io<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CxrError) throw e;
    throw new CxrError('E_IO', `${what}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/**
 * Writes a checkpoint atomically under `root` (the run's `checkpoints/` folder) and points `latest.json`
 * at it. Returns the checkpoint folder.
 */
export function writeCheckpoint(root: string, model: ClipModel, state: TrainerState, hooks: CheckpointWriteHooks = {}): string {
  io(`cannot create ${root}`, () => fs.mkdirSync(root, { recursive: true }));
  const name = checkpointName(state.step);
  const final = path.join(root, name);
  const tmp = path.join(root, `.${name}.tmp-${process.pid}`);
  io(`cannot prepare ${tmp}`, () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
  });
  model.save(path.join(tmp, 'model'), { step: state.step, run: state.config.outDir });
  writeFileAtomic(path.join(tmp, 'optimizer.bin'), model.getOptimizerState());
  // trainer.json last: a folder with trainer.json is complete.
  writeFileAtomic(path.join(tmp, 'trainer.json'), JSON.stringify(state, null, 2) + '\n');
  fsyncDir(path.join(tmp, 'model'));
  fsyncDir(tmp);
  hooks.beforeRename?.(tmp);
  io(`cannot publish checkpoint ${final}`, () => {
    if (fs.existsSync(final)) {
      // Same step written again (e.g. stop right after a resume): swap, then drop the old copy.
      const old = path.join(root, `.${name}.old-${process.pid}`);
      fs.rmSync(old, { recursive: true, force: true });
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      fs.rmSync(old, { recursive: true, force: true });
    } else fs.renameSync(tmp, final);
  });
  fsyncDir(root);
  hooks.beforePointer?.(final);
  writeFileAtomic(path.join(root, 'latest.json'), JSON.stringify({ step: state.step, dir: name }) + '\n');
  removeStaleTemps(root);
  return final;
}

function removeStaleTemps(root: string): void {
  for (const f of fs.readdirSync(root)) {
    if (/^\.step-\d+\.(tmp|old)-\d+$/.test(f)) fs.rmSync(path.join(root, f), { recursive: true, force: true });
  }
}

/** Records the best checkpoint (best.json, atomic). */
export function writeBestPointer(root: string, best: BestRecord): void {
  writeFileAtomic(path.join(root, 'best.json'), JSON.stringify({ ...best, dir: checkpointName(best.step) }) + '\n');
}

/** Reads best.json, or null. */
export function readBestPointer(root: string): (BestRecord & { dir: string }) | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'best.json'), 'utf8')) as BestRecord & { dir: string };
  } catch {
    return null;
  }
}

/** True when `dir` is a complete checkpoint folder. */
export function isCheckpointDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'trainer.json')) && fs.existsSync(path.join(dir, 'optimizer.bin')) && fs.existsSync(path.join(dir, 'model', 'cxr-model.json'));
}

/** Complete checkpoint folders under `root`, by increasing step. */
export function listCheckpoints(root: string): Array<{ step: number; dir: string }> {
  if (!fs.existsSync(root)) return [];
  const out: Array<{ step: number; dir: string }> = [];
  for (const f of fs.readdirSync(root)) {
    const m = /^step-(\d+)$/.exec(f);
    if (m && isCheckpointDir(path.join(root, f))) out.push({ step: Number(m[1]), dir: path.join(root, f) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * The newest complete checkpoint under `root`: the one latest.json names when it is complete, else the
 * highest complete `step-*` folder (latest.json may lag by one if a crash hit between rename and pointer).
 */
export function findLatestCheckpoint(root: string): string | null {
  const all = listCheckpoints(root);
  if (all.length === 0) return null;
  let pointed: string | null = null;
  try {
    const p = JSON.parse(fs.readFileSync(path.join(root, 'latest.json'), 'utf8')) as { dir?: string };
    if (p.dir && isCheckpointDir(path.join(root, p.dir))) pointed = path.join(root, p.dir);
  } catch {
    /* missing or unreadable pointer: fall back to the scan */
  }
  const newest = all[all.length - 1].dir;
  if (pointed && path.basename(pointed) >= path.basename(newest)) return pointed;
  return newest;
}

/** Reads a checkpoint folder (E_CHECKPOINT when incomplete or of another format). */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  if (!isCheckpointDir(dir)) {
    throw new CxrError('E_CHECKPOINT', `${dir} is not a complete training checkpoint (needs trainer.json, optimizer.bin, model/)`, { path: dir });
  }
  let state: TrainerState;
  try {
    state = JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')) as TrainerState;
  } catch (e) {
    throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: ${(e as Error).message}`, { path: dir });
  }
  if (state.format !== CHECKPOINT_FORMAT) throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: format is not "${CHECKPOINT_FORMAT}"`);
  if (!(state.version >= 1 && state.version <= CHECKPOINT_VERSION))
    throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: unsupported version ${state.version} (this build reads ${CHECKPOINT_VERSION})`);
  // JSON has no NaN: restore the numeric fields that may hold it.
  if (state.lastEval) {
    state.lastEval.valLoss = state.lastEval.valLoss ?? NaN;
    state.lastEval.macroAuroc = state.lastEval.macroAuroc ?? NaN;
  }
  const optimizer = io(`cannot read ${dir}/optimizer.bin`, () => fs.readFileSync(path.join(dir, 'optimizer.bin')));
  return { dir, modelDir: path.join(dir, 'model'), state, optimizer };
}

/**
 * Deletes periodic checkpoints beyond the newest `keepLast`, never the ones in `protect` (the best, the
 * one being resumed from).
 */
export function pruneCheckpoints(root: string, keepLast: number, protect: Set<number>): string[] {
  const all = listCheckpoints(root);
  const removed: string[] = [];
  for (const c of all.slice(0, Math.max(0, all.length - keepLast))) {
    if (protect.has(c.step)) continue;
    fs.rmSync(c.dir, { recursive: true, force: true });
    removed.push(c.dir);
  }
  return removed;
}

/**
 * Resolves a `--resume` value: `auto` → the newest checkpoint of the run folder, or null to start fresh;
 * a checkpoint folder → itself; a run folder → its newest checkpoint. E_CHECKPOINT when nothing is there,
 * E_IO when the path (or the run folder of `auto`) is a file.
 */
export function resolveResume(spec: string, outDir: string | null): string | null {
  if (spec === 'auto') return outDir ? findLatestCheckpoint(path.join(ensureOutDir(outDir, 'outDir'), 'checkpoints')) : null;
  const abs = checkRunFolder(spec, '--resume');
  if (isCheckpointDir(abs)) return abs;
  for (const root of [path.join(abs, 'checkpoints'), abs]) {
    const found = findLatestCheckpoint(root);
    if (found) return found;
  }
  throw new CxrError('E_CHECKPOINT', `--resume ${spec}: no complete checkpoint there (expected a step-* folder or a run folder with checkpoints/)`, { path: abs });
}
