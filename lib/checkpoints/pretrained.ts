/**
 * `loadPretrained`: the one entry point from a checkpoint on disk to a ready model and its tokenizer.
 * Detects the format (by content), reads the tensors (safetensors in TypeScript, pickle-based files as
 * data through the native reader), maps the layout onto the internal names, infers the architecture
 * from shapes unless a config is given, loads strictly, and resolves the tokenizer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CxrError } from '../errors';
import { ClipModel, type ModelOptions } from '../models/ClipModel';
import type { ModelConfig } from '../models/config';
import { resolveModelConfig } from '../models/registry';
import { asCxrError, loadNative } from '../native';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer';
import { detectCheckpoint, readZipEntry, zipEntries, type CheckpointFormat, type DetectedCheckpoint } from './detect';
import { scanPickle } from './pickleScan';
import { inferConfig, toInternal, unwrapState, type CheckpointLayout, type StateTensor } from './layouts';
import { readModelFolder, type ModelMeta } from '../models/modelFolder';
import { readSafetensors, toFloat32 } from '../util/safetensors';

/** Options of {@link loadPretrained}. */
export interface LoadPretrainedOptions extends ModelOptions {
  /**
   * true (default): every model tensor must be in the checkpoint and every checkpoint tensor must be used
   * (E_CHECKPOINT naming the first offender). false: load what matches and list the rest in the report.
   * A shape mismatch is always an error.
   */
  strict?: boolean;
  /** Architecture (registry name or config) instead of inferring it from the tensor shapes. */
  config?: string | ModelConfig;
  /**
   * Tokenizer file or folder (vocab.txt, tokenizer.json, vocab.json, bpe_simple_vocab_16e6.txt.gz), a
   * ready tokenizer, or null for none. Default: the one the checkpoint names or has beside it; for CLIP BPE
   * towers the vocabulary shipped with cxr-train.
   */
  tokenizer?: string | TextTokenizer | null;
}

/** What {@link loadPretrained} did. */
export interface PretrainedReport {
  /** The weights file read. */
  source: string;
  format: CheckpointFormat;
  layout: CheckpointLayout;
  /** Wrapper prefix removed (e.g. "state_dict.module."), "" when none. */
  prefix: string;
  /** Stored element types and how many tensors had each (e.g. { F16: 150 }). */
  dtypes: Record<string, number>;
  /** True when the architecture came from tensor shapes (no config given or stored). */
  inferred: boolean;
  config: ModelConfig;
  /** Entries that carry nothing the model uses (position_ids, unused poolers, scalars). */
  ignored: string[];
  /** Entries outside the model (optimizer state, ...) left out. */
  dropped: string[];
  /** strict: false only: model tensors absent from the checkpoint (left at their initial values). */
  missing: string[];
  /** strict: false only: checkpoint tensors the model has no place for. */
  unexpected: string[];
  /** Tokenizer kind and where it came from ("builtin" for the shipped CLIP vocabulary), or null. */
  tokenizer: { kind: 'clip-bpe' | 'wordpiece'; source: string } | null;
  /** Notes for the user (e.g. that a pickle-based file was parsed as data). */
  warnings: string[];
}

/** The tensors of a checkpoint as read from disk, before layout mapping. */
export interface CheckpointTensors {
  detected: DetectedCheckpoint;
  tensors: StateTensor[];
  /** Stored element type per tensor name. */
  dtypes: Map<string, string>;
  /** Own format only: the metadata beside the weights. */
  meta?: ModelMeta;
}

/** Message shown once per pickle-based file (README: "Using pre-trained weights"). */
export const PICKLE_NOTE =
  'is a pickle-based PyTorch file: in Python such files can run code when loaded; cxr-train parses it as data only (tensors, dicts, lists, numbers), never as code';

/**
 * Reads every tensor of a checkpoint (upcast to float32) without building a model.
 * @throws CxrError E_IO, E_CHECKPOINT (unknown, damaged or legacy format; Python objects in a pickle).
 */
export async function readCheckpointTensors(pathOrDir: string): Promise<CheckpointTensors> {
  const detected = detectCheckpoint(pathOrDir);
  const dtypes = new Map<string, string>();
  if (detected.format === 'own') {
    const { meta, state } = readModelFolder(detected.dir);
    for (const t of state) dtypes.set(t.name, 'F32');
    return { detected, tensors: state, dtypes, meta };
  }
  if (detected.format === 'torch-legacy')
    throw new CxrError(
      'E_CHECKPOINT',
      `${detected.file}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with torch.save in a recent PyTorch (torch.save(torch.load(f), f2)) or convert it to safetensors`,
      { path: detected.file },
    );
  if (detected.format === 'safetensors') {
    const file = readSafetensors(detected.file);
    const tensors: StateTensor[] = [];
    for (const [name, e] of file.tensors) {
      dtypes.set(name, e.dtype);
      tensors.push({ name, shape: e.shape, data: toFloat32(e) });
    }
    return { detected, tensors, dtypes };
  }
  if (detected.format === 'torch-save') prescanPickle(detected.file);
  let res;
  try {
    res = await loadNative().readTorchFile(path.resolve(detected.file));
  } catch (e) {
    throw asCxrError(e);
  }
  for (const t of res.tensors) dtypes.set(t.name, t.dtype);
  return { detected: { ...detected, format: res.kind }, tensors: res.tensors, dtypes };
}

/** Largest data.pkl pre-scanned (a state dict's pickle is kilobytes to a few megabytes; the tensors are separate records). */
const MAX_SCANNED_PICKLE_BYTES = 256 * 1024 * 1024;

/** Refuses a torch.save archive whose data.pkl expands exponentially through shared references (see pickleScan.ts). */
function prescanPickle(file: string): void {
  const entry = zipEntries(file).find((e) => /^[^/]*\/?data\.pkl$/.test(e.name));
  if (!entry || entry.size > MAX_SCANNED_PICKLE_BYTES) return;
  scanPickle(readZipEntry(file, entry, MAX_SCANNED_PICKLE_BYTES), file);
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

function readJson(file: string): Record<string, any> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CxrError('E_CHECKPOINT', `${file}: not valid JSON (${(e as Error).message})`, { path: file });
  }
}

/** Tokenizer files of one kind in a folder, or undefined. */
function tokenizerIn(dir: string, kind: 'clip-bpe' | 'wordpiece'): string | undefined {
  const has = (n: string) => fs.existsSync(path.join(dir, n));
  if (kind === 'wordpiece') return has('tokenizer.json') || has('vocab.txt') ? dir : undefined;
  if ((has('vocab.json') && has('merges.txt')) || has('bpe_simple_vocab_16e6.txt.gz') || has('bpe_simple_vocab_16e6.txt')) return dir;
  if (has('tokenizer.json')) {
    // A folder can hold a BERT tokenizer.json beside CLIP weights only by mistake; check its model type.
    try {
      const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
      if (tj?.model?.type === 'BPE') return dir;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function resolveTokenizer(
  config: ModelConfig,
  ck: CheckpointTensors,
  opt: LoadPretrainedOptions['tokenizer'],
): { tokenizer: TextTokenizer | null; ref: PretrainedReport['tokenizer'] } {
  const kind = config.tokenizer ?? (config.text.type === 'bert' ? 'wordpiece' : 'clip-bpe');
  if (opt === null) return { tokenizer: null, ref: null };
  let tok: TextTokenizer;
  let source: string;
  if (opt !== undefined && typeof opt !== 'string') {
    tok = opt;
    source = 'given';
  } else {
    let p: string | undefined = opt;
    if (p === undefined && ck.meta?.tokenizer.file) p = path.join(ck.detected.dir, ck.meta.tokenizer.file);
    if (p === undefined) p = tokenizerIn(ck.detected.dir, kind);
    if (p === undefined && kind === 'wordpiece')
      throw new CxrError(
        'E_TOKENIZER',
        `the checkpoint has a BERT text tower: give its tokenizer (--tokenizer vocab.txt or tokenizer.json); none was found beside ${ck.detected.file}`,
      );
    tok = loadTokenizer({ kind, ...(p === undefined ? {} : { path: p }), contextLength: config.text.contextLength });
    source = p ?? 'builtin';
  }
  if (tok.kind !== kind)
    throw new CxrError('E_TOKENIZER', `the model's text tower needs a ${kind} tokenizer, got ${tok.kind} (${source})`);
  tok.assertVocabSize(config.text.vocabSize);
  return { tokenizer: tok, ref: { kind, source } };
}

/**
 * Loads a pre-trained CLIP checkpoint (any supported format and layout) into a {@link ClipModel}, with the
 * tokenizer its text tower was trained with.
 * @param pathOrDir a weights file (.pt, .bin, .safetensors) or a folder (own format, Hugging Face, open_clip).
 * @returns the model (dispose it when done), the tokenizer (null when `tokenizer: null`) and a report.
 * @throws CxrError E_IO, E_CHECKPOINT (format, missing/unexpected key or shape mismatch, named),
 *   E_TOKENIZER (no tokenizer, or one whose vocabulary does not fit the model), E_CONFIG.
 */
export async function loadPretrained(
  pathOrDir: string,
  options: LoadPretrainedOptions = {},
): Promise<{ model: ClipModel; tokenizer: TextTokenizer | null; report: PretrainedReport }> {
  const strict = options.strict ?? true;
  const ck = await readCheckpointTensors(pathOrDir);
  const { detected } = ck;
  const warnings: string[] = [];
  if (detected.format === 'torch-save' || detected.format === 'torchscript') warnings.push(`${detected.file} ${PICKLE_NOTE}`);

  const unwrapped = unwrapState(ck.tensors, detected.file);
  const layout: CheckpointLayout = ck.meta ? 'internal' : unwrapped.layout;
  const mapped = toInternal(layout, unwrapped.tensors);
  const keptNames = new Set(unwrapped.tensors.map((t) => t.name));
  for (const [name, dt] of ck.dtypes) {
    const local = name.startsWith(unwrapped.prefix) ? name.slice(unwrapped.prefix.length) : name;
    if (!keptNames.has(local) || FLOAT_DTYPES.has(dt) || mapped.ignored.includes(local)) continue;
    throw new CxrError('E_CHECKPOINT', `tensor "${name}" has dtype ${dt}; model weights must be floating point (F32, F16, BF16, F64)`);
  }

  let config: ModelConfig;
  let inferred = false;
  if (options.config !== undefined) config = resolveModelConfig(options.config);
  else if (ck.meta) config = ck.meta.config;
  else {
    config = inferConfig(layout, mapped.tensors, {
      ...(detected.hfConfig && layout === 'hf-clip' ? { hfConfig: readJson(detected.hfConfig) } : {}),
      ...(detected.openClipConfig ? { openClipConfig: readJson(detected.openClipConfig) } : {}),
    });
    inferred = true;
  }
  const { tokenizer, ref } = resolveTokenizer(config, ck, options.tokenizer);

  const { strict: _s, config: _c, tokenizer: _t, ...modelOptions } = options;
  const model = ClipModel.create(config, modelOptions);
  let rep: { missing: string[]; unexpected: string[] };
  try {
    rep = model.loadState(mapped.tensors, strict);
  } catch (e) {
    model.dispose();
    const err = asCxrError(e);
    if (err.code === 'E_CHECKPOINT')
      throw new CxrError('E_CHECKPOINT', `${detected.file} (${layout} layout): ${err.message}`, { path: detected.file, layout });
    throw err;
  }
  const dtypes: Record<string, number> = {};
  for (const dt of ck.dtypes.values()) dtypes[dt] = (dtypes[dt] ?? 0) + 1;
  const report: PretrainedReport = {
    source: detected.file,
    format: detected.format,
    layout,
    prefix: unwrapped.prefix,
    dtypes,
    inferred,
    config,
    ignored: mapped.ignored,
    dropped: unwrapped.dropped,
    missing: rep.missing,
    unexpected: rep.unexpected,
    tokenizer: ref,
    warnings,
  };
  return { model, tokenizer, report };
}
