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
 * are ignored by readers and removed by the next successful write (and a failed write removes its own).
 *
 * Integrity: trainer.json, written last, lists the SHA-256 of every other file (`files`). Reading a
 * checkpoint re-hashes them (E_CHECKPOINT naming the file on a mismatch); `--resume auto` and a run
 * folder fall back to the newest intact checkpoint with a warning naming the damaged ones. Checkpoints
 * written before `files` existed load without the check, with a note.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { fsyncDir, removeStaleAtomicTemps, writeFileAtomic } from '../util/atomic';
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
  /** With `eval.retrieval`: image↔report retrieval on the validation split (recall keys "1", "5", "10"). */
  retrieval?: ValidationRetrieval;
}

/** Retrieval numbers of a validation (see docs/evaluation.md, image–report retrieval). */
export interface ValidationRetrieval {
  imageToText: { recall: Record<string, number>; meanRank: number; medianRank: number };
  textToImage: { recall: Record<string, number>; meanRank: number; medianRank: number };
  /** Images with a usable report text, and distinct texts. */
  images: number;
  texts: number;
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
  /** `loss.alpha: {quantile}`: the running α after the last step (absent before the first step or for other losses). */
  relaxAlpha?: number | null;
  /** The resolved config of the run. */
  config: TrainConfig;
  /** Wall time spent training before this checkpoint, in ms. */
  elapsedMs: number;
  createdAt: string;
  /** libtorch intra-op threads the run used: results are bit-exact only with the same count. */
  threads?: number;
  /** SHA-256 (hex) of every file of the checkpoint but trainer.json, by path relative to the folder. */
  files?: Record<string, string>;
}

/** A checkpoint read back. */
export interface LoadedCheckpoint {
  dir: string;
  modelDir: string;
  state: TrainerState;
  optimizer: Buffer;
  /** Notes for the user (e.g. an older checkpoint without checksums). */
  notes: string[];
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
  try {
    model.save(path.join(tmp, 'model'), { step: state.step, run: state.config.outDir });
    const optimizer = model.getOptimizerState();
    writeFileAtomic(path.join(tmp, 'optimizer.bin'), optimizer);
    // Hashes of what is on disk (the model files read back), so a checkpoint vouches for its own bytes.
    const files: Record<string, string> = {};
    for (const f of CHECKPOINT_MODEL_FILES) files[f] = hashFile(path.join(tmp, f));
    files['optimizer.bin'] = crypto.createHash('sha256').update(optimizer).digest('hex');
    // trainer.json last: a folder with trainer.json is complete.
    writeFileAtomic(path.join(tmp, 'trainer.json'), JSON.stringify({ ...state, files }, null, 2) + '\n');
    fsyncDir(path.join(tmp, 'model'));
    fsyncDir(tmp);
    hooks.beforeRename?.(tmp);
  } catch (e) {
    // A failed write (a full disk, a read-only folder) leaves nothing behind.
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
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

/** Model files of a checkpoint (relative to its folder) covered by the checksums. */
const CHECKPOINT_MODEL_FILES = ['model/model.safetensors', 'model/cxr-model.json'];

/** SHA-256 (hex) of a file, read in chunks. */
function hashFile(file: string): string {
  return io(`cannot read ${file}`, () => {
    const h = crypto.createHash('sha256');
    const chunk = Buffer.allocUnsafe(1 << 22);
    const fd = fs.openSync(file, 'r');
    try {
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.byteLength, null);
        if (n === 0) break;
        h.update(chunk.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
    return h.digest('hex');
  });
}

/** Pattern of checkpoint temp folders (`.step-N.tmp-PID`, `.step-N.old-PID`). */
const CHECKPOINT_TEMP_PATTERN = /^\.step-\d+\.(tmp|old)-(\d+)$/;

function removeStaleTemps(root: string): void {
  for (const f of fs.readdirSync(root)) {
    if (CHECKPOINT_TEMP_PATTERN.test(f)) fs.rmSync(path.join(root, f), { recursive: true, force: true });
  }
}

/**
 * Removes what killed or failed writers left in a run folder before a run starts or resumes: checkpoint
 * temp folders of other processes and the atomic writer's temp files (run folder, `model/`,
 * `checkpoints/`). Returns the removed paths.
 */
export function removeRunTemps(outDir: string): string[] {
  const removed: string[] = [];
  const root = path.join(outDir, 'checkpoints');
  try {
    for (const f of fs.readdirSync(root)) {
      const m = CHECKPOINT_TEMP_PATTERN.exec(f);
      if (!m || Number(m[2]) === process.pid) continue;
      fs.rmSync(path.join(root, f), { recursive: true, force: true });
      removed.push(path.join(root, f));
    }
  } catch {
    /* no checkpoints yet */
  }
  for (const d of [outDir, path.join(outDir, 'model'), root]) removed.push(...removeStaleAtomicTemps(d));
  return removed;
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

/** Parses and checks trainer.json (E_CHECKPOINT when unreadable or of another format). */
function readState(dir: string): TrainerState {
  let state: TrainerState;
  try {
    state = JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')) as TrainerState;
  } catch (e) {
    throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: ${(e as Error).message}`, { path: dir });
  }
  if (state === null || typeof state !== 'object' || state.format !== CHECKPOINT_FORMAT)
    throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: format is not "${CHECKPOINT_FORMAT}"`, { path: dir });
  if (!(state.version >= 1 && state.version <= CHECKPOINT_VERSION))
    throw new CxrError('E_CHECKPOINT', `${dir}/trainer.json: unsupported version ${state.version} (this build reads ${CHECKPOINT_VERSION})`, { path: dir });
  return state;
}

/** Note for a checkpoint written before checksums. */
const NO_CHECKSUM_NOTE = 'has no checksums (written by an older cxr-train): its files were not verified';

/** Checks the files of a checkpoint against the checksums in its trainer.json (E_CHECKPOINT naming the file). */
function verifyFiles(dir: string, state: TrainerState, optimizer?: Buffer): void {
  const key = intactKey(dir, state);
  if (intact.has(key)) return;
  for (const [rel, want] of Object.entries(state.files ?? {})) {
    const full = path.join(dir, rel);
    if (!fs.existsSync(full)) throw new CxrError('E_CHECKPOINT', `${full} is missing`, { path: full });
    const got = rel === 'optimizer.bin' && optimizer ? crypto.createHash('sha256').update(optimizer).digest('hex') : hashFile(full);
    if (got !== want) throw new CxrError('E_CHECKPOINT', `${full}: checksum mismatch (the file is damaged)`, { path: full });
  }
  if (state.files) intact.add(key);
}

/** Checkpoints this process has verified, keyed by their files' names, sizes and times (hash once). */
const intact = new Set<string>();

function intactKey(dir: string, state: TrainerState): string {
  const parts = [dir];
  for (const rel of ['trainer.json', ...Object.keys(state.files ?? {})]) {
    try {
      const st = fs.statSync(path.join(dir, rel));
      parts.push(`${rel}:${st.size}:${st.mtimeMs}`);
    } catch {
      parts.push(`${rel}:-`);
    }
  }
  return parts.join('\0');
}

/**
 * Why `dir` cannot be resumed from (incomplete, unreadable trainer.json, a file failing its checksum), or
 * null when it is intact. Hashes every file once.
 */
export function checkpointProblem(dir: string): string | null {
  if (!isCheckpointDir(dir)) return 'incomplete (needs trainer.json, optimizer.bin, model/)';
  try {
    verifyFiles(dir, readState(dir));
    return null;
  } catch (e) {
    if (e instanceof CxrError) return e.message.startsWith(dir) ? e.message.slice(dir.length).replace(/^[/\\]/, '') : e.message;
    throw e;
  }
}

/**
 * Reads a checkpoint folder, verifying every file against its checksums.
 * @throws CxrError E_CHECKPOINT when incomplete, of another format, or damaged (naming the file)
 */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  if (!isCheckpointDir(dir)) {
    throw new CxrError('E_CHECKPOINT', `${dir} is not a complete training checkpoint (needs trainer.json, optimizer.bin, model/)`, { path: dir });
  }
  const state = readState(dir);
  // JSON has no NaN: restore the numeric fields that may hold it.
  if (state.lastEval) {
    state.lastEval.valLoss = state.lastEval.valLoss ?? NaN;
    state.lastEval.macroAuroc = state.lastEval.macroAuroc ?? NaN;
  }
  const optimizer = io(`cannot read ${dir}/optimizer.bin`, () => fs.readFileSync(path.join(dir, 'optimizer.bin')));
  verifyFiles(dir, state, optimizer);
  const notes = state.files ? [] : [`checkpoint ${dir} ${NO_CHECKSUM_NOTE}`];
  return { dir, modelDir: path.join(dir, 'model'), state, optimizer, notes };
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

/** A resolved `--resume`: the checkpoint and the warnings about damaged newer ones that were skipped. */
export interface ResumeChoice {
  /** The checkpoint to continue from; null: start fresh (`auto` in a folder without checkpoints). */
  dir: string | null;
  /** One line per damaged checkpoint passed over, naming it and the reason. */
  warnings: string[];
}

/** `step-*` folders under `root` (complete or not), newest first. */
function stepFolders(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((f) => /^step-\d+$/.test(f))
    .sort()
    .reverse()
    .map((f) => path.join(root, f));
}

/** The newest intact checkpoint under `root`, newer damaged ones as warnings; E_CHECKPOINT when all are damaged. */
function newestIntact(root: string): ResumeChoice {
  const warnings: string[] = [];
  const problems: string[] = [];
  for (const dir of stepFolders(root)) {
    const p = checkpointProblem(dir);
    if (p === null) {
      if (warnings.length) warnings[warnings.length - 1] += `; resuming from ${path.basename(dir)}, the newest intact one`;
      return { dir, warnings };
    }
    problems.push(`${path.basename(dir)}: ${p}`);
    warnings.push(`checkpoint ${dir} is damaged and was skipped: ${p}`);
  }
  if (problems.length) throw new CxrError('E_CHECKPOINT', `${root}: no intact checkpoint to resume from (${problems.join('; ')})`, { path: root, problems });
  return { dir: null, warnings };
}

/**
 * Resolves a `--resume` value: `auto` → the newest intact checkpoint of the run folder, or null to start
 * fresh; a checkpoint folder → itself (E_CHECKPOINT when damaged: a named checkpoint is never swapped for
 * another); a run folder → its newest intact checkpoint. Damaged newer checkpoints are passed over with
 * a warning each. E_CHECKPOINT when nothing intact is there; E_IO when the path (or the run folder of
 * `auto`) is a file.
 */
export function resolveResumeChoice(spec: string, outDir: string | null): ResumeChoice {
  if (spec === 'auto') return outDir ? newestIntact(path.join(ensureOutDir(outDir, 'outDir'), 'checkpoints')) : { dir: null, warnings: [] };
  const abs = checkRunFolder(spec, '--resume');
  if (isCheckpointDir(abs) || (/^step-\d+$/.test(path.basename(abs)) && fs.existsSync(abs))) {
    const p = checkpointProblem(abs);
    if (p !== null) throw new CxrError('E_CHECKPOINT', `--resume ${spec}: the checkpoint is damaged: ${p}`, { path: abs });
    // Say so when newer checkpoints beside it are damaged (a fallback chosen by the caller, e.g. `train --resume auto`).
    const warnings: string[] = [];
    for (const d of stepFolders(path.dirname(abs))) {
      if (path.basename(d) <= path.basename(abs)) break;
      const q = checkpointProblem(d);
      if (q !== null) warnings.push(`checkpoint ${d} is damaged and was skipped: ${q}; resuming from ${path.basename(abs)}, the newest intact one`);
    }
    return { dir: abs, warnings };
  }
  for (const root of [path.join(abs, 'checkpoints'), abs]) {
    const found = newestIntact(root);
    if (found.dir) return found;
  }
  throw new CxrError('E_CHECKPOINT', `--resume ${spec}: no complete checkpoint there (expected a step-* folder or a run folder with checkpoints/)`, { path: abs });
}

/** {@link resolveResumeChoice} without the warnings: the checkpoint folder or null. */
export function resolveResume(spec: string, outDir: string | null): string | null {
  return resolveResumeChoice(spec, outDir).dir;
}
