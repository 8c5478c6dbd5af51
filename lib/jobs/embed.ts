/**
 * What the `embed` and `convert` commands do, as functions: embeddings of a checkpoint as JSON-ready
 * arrays, and conversion of any supported checkpoint into the project's own format.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CxrError } from '../errors';
import { loadImage, type Geometry } from '../data/images';
import { writeFileAtomic } from '../util/atomic';
import { loadPretrained, type LoadPretrainedOptions, type PretrainedReport } from '../checkpoints/pretrained';
import { MODEL_META_FILE, type ModelMeta } from '../models/modelFolder';
import { ensureOutDir } from '../util/paths';

/** Images already normalised, N×3×S×S float32. */
export interface RawImages {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** Output of `cxr-train embed` (the JSON written to --out). */
export interface EmbedOutput {
  /** Token ids of each text, padded to the context length. */
  token_ids?: number[][];
  /** Projected, un-normalised image embeddings (N×D). */
  image_embeds?: number[][];
  /** Projected, un-normalised text embeddings (T×D). */
  text_embeds?: number[][];
  /** exp of the stored logit scale parameter. */
  logit_scale: number;
  /** logit_scale × cosine similarity of each image with each text (when both are given). */
  logits_per_image?: number[][];
  /** Texts longer than the context length that were truncated (end token kept last). */
  truncated?: number;
}

/** Options of {@link embedWithCheckpoint}. */
export interface EmbedOptions extends LoadPretrainedOptions {
  texts?: string[];
  rawImages?: RawImages;
  /** Image files (PNG, JPEG, DICOM) for the image pipeline. */
  imageFiles?: string[];
  /** Geometry of the image pipeline. Default 'pad'. */
  geometry?: Geometry;
  /** Normalisation of the image pipeline. Default 'clip'. */
  normalize?: 'clip' | 'chexzero';
  /** Receives each warning of the load (e.g. the pickle note). */
  onWarning?: (w: string) => void;
}

let pickleWarned = false;
/** Writes a load warning to stderr, pickle notes only once per process. */
export function pickleWarningOnce(w: string): void {
  if (w.includes('pickle-based')) {
    if (pickleWarned) return;
    pickleWarned = true;
  }
  process.stderr.write(`cxr-train: note: ${w}\n`);
}

/**
 * Reads `--texts`: one existing `.json` file (an array of strings, or `{ "texts": [...] }`) or the texts.
 * @throws CxrError E_PARSE for a JSON file of another shape.
 */
export function readTextsArg(args: string[]): string[] {
  if (args.length === 1 && args[0].endsWith('.json') && fs.existsSync(args[0])) {
    let v: unknown;
    try {
      v = JSON.parse(fs.readFileSync(args[0], 'utf8'));
    } catch (e) {
      throw new CxrError('E_PARSE', `${args[0]}: not valid JSON (${(e as Error).message})`);
    }
    const arr = Array.isArray(v) ? v : (v as { texts?: unknown })?.texts;
    if (!Array.isArray(arr) || !arr.every((s) => typeof s === 'string'))
      throw new CxrError('E_PARSE', `${args[0]}: expected a JSON array of strings (or { "texts": [...] })`);
    return arr as string[];
  }
  return args.map(String);
}

/**
 * Reads `--images-raw FILE --image-shape N,C,H,W` (little-endian float32).
 * @throws CxrError E_CONFIG (bad shape), E_IO, E_SHAPE (file size does not match the shape).
 */
export function readRawImages(file: string, shapeArg: string): RawImages {
  const dims = shapeArg.split(',').map((s) => Number(s.trim()));
  if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new CxrError('E_CONFIG', `--image-shape must be four positive integers N,C,H,W, got "${shapeArg}"`);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== n * 4)
    throw new CxrError('E_SHAPE', `${file} holds ${buf.length} bytes, but shape ${dims.join('x')} float32 needs ${n * 4}`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(i * 4);
  return { data, shape: dims as [number, number, number, number] };
}

function rows(flat: Float32Array, d: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += d) out.push(Array.from(flat.subarray(i, i + d)));
  return out;
}

/**
 * Loads a checkpoint and embeds texts and images: the `cxr-train embed` command as a function.
 * @throws CxrError as {@link loadPretrained}, plus E_SHAPE for images of the wrong size.
 */
export async function embedWithCheckpoint(checkpoint: string, opts: EmbedOptions): Promise<{ output: EmbedOutput; report: PretrainedReport }> {
  const { texts, rawImages, imageFiles, geometry, normalize, onWarning, ...loadOpts } = opts;
  const { model, tokenizer, report } = await loadPretrained(checkpoint, loadOpts);
  for (const w of report.warnings) onWarning?.(w);
  try {
    const S = model.imageSize;
    const D = model.embedDim;
    const state = model.getState().find((t) => t.name === 'logit_scale');
    const output: EmbedOutput = { logit_scale: state ? Math.exp(state.data[0]) : NaN };
    let images: Float32Array | undefined;
    let n = 0;
    if (rawImages) {
      const [N, C, H, W] = rawImages.shape;
      if (C !== 3 || H !== S || W !== S)
        throw new CxrError('E_SHAPE', `--image-shape ${rawImages.shape.join(',')} does not fit the model: expected N,3,${S},${S}`);
      images = rawImages.data;
      n = N;
    } else if (imageFiles && imageFiles.length) {
      n = imageFiles.length;
      images = new Float32Array(n * 3 * S * S);
      for (let i = 0; i < n; i++) {
        const img = await loadImage(imageFiles[i], { size: S, geometry: geometry ?? 'pad', normalize: normalize ?? 'clip' });
        images.set(img, i * 3 * S * S);
      }
    }
    if (images) output.image_embeds = rows(await model.encodeImages(images, { n }), D);
    if (texts && texts.length) {
      if (!tokenizer) throw new CxrError('E_TOKENIZER', 'texts need a tokenizer (tokenizer: null was given)');
      const batch = tokenizer.encodeBatch(texts, model.contextLength);
      output.token_ids = rows(Float32Array.from(batch.ids), batch.length).map((r) => r.map((x) => Math.round(x)));
      output.text_embeds = rows(await model.encodeTokenIds(batch.ids, batch.batch, batch.length), D);
      if (batch.truncated) {
        output.truncated = batch.truncated;
        onWarning?.(`${batch.truncated} text(s) longer than the context length (${batch.length} tokens) were truncated`);
      }
    }
    if (output.image_embeds && output.text_embeds) {
      const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      const ti = output.text_embeds.map((t) => t.map((x) => x / norm(t)));
      output.logits_per_image = output.image_embeds.map((im) => {
        const ni = norm(im);
        return ti.map((t) => output.logit_scale * t.reduce((s, x, k) => s + (x * im[k]) / ni, 0));
      });
    }
    return { output, report };
  } finally {
    model.dispose();
  }
}

/** Options of {@link convertCheckpoint}. */
export interface ConvertOptions extends LoadPretrainedOptions {
  onWarning?: (w: string) => void;
}

/**
 * Converts any supported checkpoint into the project's own format in `outDir` (weights float32, config,
 * tokenizer files copied beside them, provenance). Loading `outDir` back gives identical outputs.
 */
export async function convertCheckpoint(checkpoint: string, outDir: string, opts: ConvertOptions = {}): Promise<PretrainedReport> {
  const { onWarning, ...loadOpts } = opts;
  // Before the (slow) load: an output path that is a file is refused at once.
  ensureOutDir(outDir, '--out');
  const { model, report } = await loadPretrained(checkpoint, { ...loadOpts, device: 'cpu' });
  for (const w of report.warnings) onWarning?.(w);
  try {
    model.save(outDir, {
      source: path.resolve(report.source),
      format: report.format,
      layout: report.layout,
      inferred: report.inferred,
      dtypes: report.dtypes,
      ...(report.missing.length || report.unexpected.length ? { missing: report.missing, unexpected: report.unexpected } : {}),
    });
  } finally {
    model.dispose();
  }
  const src = report.tokenizer?.source;
  if (src && src !== 'builtin' && src !== 'given') {
    const file = copyTokenizer(src, outDir, report.tokenizer!.kind);
    if (file) {
      const metaPath = path.join(outDir, MODEL_META_FILE);
      const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as ModelMeta;
      meta.tokenizer = { kind: report.tokenizer!.kind, file };
      writeFileAtomic(metaPath, JSON.stringify(meta, null, 2) + '\n');
    }
  }
  return report;
}

/** Copies the tokenizer file(s) into `outDir`; returns the name the metadata should reference. */
function copyTokenizer(src: string, outDir: string, kind: 'clip-bpe' | 'wordpiece'): string | undefined {
  const isDir = fs.statSync(src).isDirectory();
  const candidates = isDir
    ? kind === 'wordpiece'
      ? ['tokenizer.json', 'vocab.txt']
      : ['tokenizer.json', 'vocab.json', 'bpe_simple_vocab_16e6.txt.gz', 'bpe_simple_vocab_16e6.txt']
    : [path.basename(src)];
  const dir = isDir ? src : path.dirname(src);
  const name = candidates.find((c) => fs.existsSync(path.join(dir, c)));
  if (!name) return undefined;
  fs.copyFileSync(path.join(dir, name), path.join(outDir, name));
  if (name === 'vocab.json' && fs.existsSync(path.join(dir, 'merges.txt'))) fs.copyFileSync(path.join(dir, 'merges.txt'), path.join(outDir, 'merges.txt'));
  return name;
}
