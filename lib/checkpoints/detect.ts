/**
 * Checkpoint format detection by content, never by file extension: `.pt` and `.bin` name zip archives,
 * TorchScript archives and legacy pickles alike.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { CxrError } from '../errors';
import { isModelFolder, MODEL_META_FILE, MODEL_WEIGHTS_FILE } from '../models/modelFolder';

/**
 * What a checkpoint file is:
 * - `own`: the project's folder format (`model.safetensors` + `cxr-model.json`);
 * - `safetensors`: a safetensors file (Hugging Face, open_clip);
 * - `torch-save`: a `torch.save` zip archive (state dict, possibly wrapped);
 * - `torchscript`: a TorchScript zip archive (OpenAI's original `ViT-B-32.pt` etc.);
 * - `torch-legacy`: the pre-1.6 non-zip pickle format (rejected with advice).
 */
export type CheckpointFormat = 'own' | 'safetensors' | 'torch-save' | 'torchscript' | 'torch-legacy';

/** A detected checkpoint. */
export interface DetectedCheckpoint {
  format: CheckpointFormat;
  /** The weights file (for `own`, the folder's `model.safetensors`). */
  file: string;
  /** The folder holding the checkpoint (where config.json / tokenizer files are looked for). */
  dir: string;
  /** Hugging Face `config.json` beside the weights, when present. */
  hfConfig?: string;
  /** open_clip `open_clip_config.json` beside the weights, when present. */
  openClipConfig?: string;
}

/** Weight file names looked for, in order, when a folder is given. */
export const WEIGHT_FILE_NAMES = [
  'model.safetensors',
  'open_clip_model.safetensors',
  'open_clip_pytorch_model.bin',
  'pytorch_model.bin',
];

function readHead(file: string, n: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new CxrError('E_IO', `cannot open checkpoint '${file}': ${(e as Error).message}`, { path: file });
  }
  try {
    const b = Buffer.alloc(n);
    const got = fs.readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/** One entry of a zip archive's central directory. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

/**
 * The entries of a zip archive, from its central directory (zip64 included). Bounds-checked: a damaged
 * archive gives E_CHECKPOINT, never an out-of-range read.
 */
export function zipEntries(file: string): ZipEntry[] {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const bad = (what: string): never => {
      throw new CxrError('E_CHECKPOINT', `${file}: damaged or truncated zip archive (${what})`, { path: file });
    };
    const tailLen = Math.min(size, 65557);
    const tail = Buffer.alloc(tailLen);
    fs.readSync(fd, tail, 0, tailLen, size - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) bad('no end-of-central-directory record');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || cdSize === 0xffffffff || count === 0xffff) {
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) bad('zip64 locator missing');
      const z64 = Number(tail.readBigUInt64LE(loc + 8));
      if (!(z64 >= 0 && z64 + 56 <= size)) bad('zip64 record out of range');
      const rec = Buffer.alloc(56);
      fs.readSync(fd, rec, 0, 56, z64);
      if (rec.readUInt32LE(0) !== 0x06064b50) bad('zip64 record signature');
      count = Number(rec.readBigUInt64LE(32));
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
    }
    if (!(cdOffset >= 0 && cdSize >= 0 && cdOffset + cdSize <= size && cdSize <= 256 * 1024 * 1024)) bad('central directory out of range');
    const cd = Buffer.alloc(cdSize);
    fs.readSync(fd, cd, 0, cdSize, cdOffset);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) bad('central directory entry');
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      if (p + 46 + nameLen + extraLen > cd.length) bad('entry name out of range');
      const e: ZipEntry = {
        name: cd.toString('utf8', p + 46, p + 46 + nameLen),
        method: cd.readUInt16LE(p + 10),
        compressedSize: cd.readUInt32LE(p + 20),
        size: cd.readUInt32LE(p + 24),
        localOffset: cd.readUInt32LE(p + 42),
      };
      // zip64 extra field (id 1): the 64-bit values of the fields set to 0xffffffff, in this order.
      for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; ) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (id === 1) {
          let q = x + 4;
          const next = (): number => {
            if (q + 8 > x + 4 + len || q + 8 > cd.length) bad('zip64 extra field');
            const v = Number(cd.readBigUInt64LE(q));
            q += 8;
            return v;
          };
          if (e.size === 0xffffffff) e.size = next();
          if (e.compressedSize === 0xffffffff) e.compressedSize = next();
          if (e.localOffset === 0xffffffff) e.localOffset = next();
        }
        x += 4 + len;
      }
      entries.push(e);
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  } finally {
    fs.closeSync(fd);
  }
}

/** Names of the entries of a zip archive (see {@link zipEntries}). */
export function zipEntryNames(file: string): string[] {
  return zipEntries(file).map((e) => e.name);
}

/**
 * The bytes of one zip entry (stored or deflated), at most `maxBytes` uncompressed.
 * @throws CxrError E_CHECKPOINT when the entry is out of range, larger than `maxBytes` or not inflatable.
 */
export function readZipEntry(file: string, e: ZipEntry, maxBytes: number): Buffer {
  const bad = (what: string): never => {
    throw new CxrError('E_CHECKPOINT', `${file}: damaged or truncated zip archive (${e.name}: ${what})`, { path: file });
  };
  if (e.size > maxBytes) bad(`${e.size} bytes, more than the ${maxBytes} read here`);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(30);
    if (e.localOffset + 30 > size || fs.readSync(fd, head, 0, 30, e.localOffset) !== 30 || head.readUInt32LE(0) !== 0x04034b50) bad('local header');
    const start = e.localOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (start + e.compressedSize > size) bad('data out of range');
    const raw = Buffer.alloc(e.compressedSize);
    fs.readSync(fd, raw, 0, e.compressedSize, start);
    if (e.method === 0) return raw;
    if (e.method !== 8) bad(`compression method ${e.method}`);
    try {
      return zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, maxBytes) });
    } catch (err) {
      return bad(`cannot inflate (${(err as Error).message})`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function detectFile(file: string): CheckpointFormat {
  const head = readHead(file, 16);
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 3 && head[3] === 4) {
    const names = zipEntryNames(file);
    // torch.save puts everything under one top folder: <name>/data.pkl, <name>/data/0, ...
    const rel = names.map((n) => n.slice(n.indexOf('/') + 1));
    if (rel.includes('constants.pkl') || rel.some((n) => n.startsWith('code/'))) return 'torchscript';
    if (rel.includes('data.pkl')) return 'torch-save';
    throw new CxrError('E_CHECKPOINT', `${file}: a zip archive that is not a PyTorch checkpoint (no data.pkl)`, { path: file });
  }
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'torch-legacy';
  if (head.length >= 9) {
    const n = head.readBigUInt64LE(0);
    if (n > 1n && head[8] === 0x7b /* '{' */) return 'safetensors';
  }
  throw new CxrError(
    'E_CHECKPOINT',
    `${file}: unrecognised checkpoint format (expected safetensors, a torch.save zip archive, a TorchScript archive or a cxr-train model folder)`,
    { path: file },
  );
}

/**
 * Detects the checkpoint at `pathOrDir`: a file, or a folder holding the project's format, a Hugging Face
 * model (model.safetensors / pytorch_model.bin + config.json) or an open_clip model.
 * @throws CxrError E_IO (missing path), E_CHECKPOINT (nothing usable, unknown format).
 */
export function detectCheckpoint(pathOrDir: string): DetectedCheckpoint {
  let st: fs.Stats;
  try {
    st = fs.statSync(pathOrDir);
  } catch (e) {
    throw new CxrError('E_IO', `checkpoint '${pathOrDir}' not found: ${(e as Error).message}`, { path: pathOrDir });
  }
  let file = pathOrDir;
  let dir = path.dirname(pathOrDir);
  if (st.isDirectory()) {
    dir = pathOrDir;
    if (isModelFolder(pathOrDir)) return { format: 'own', file: path.join(pathOrDir, MODEL_WEIGHTS_FILE), dir };
    const found = WEIGHT_FILE_NAMES.map((n) => path.join(pathOrDir, n)).find((p) => fs.existsSync(p));
    if (!found)
      throw new CxrError(
        'E_CHECKPOINT',
        `no checkpoint in folder '${pathOrDir}' (looked for ${MODEL_META_FILE} + ${MODEL_WEIGHTS_FILE}, ${WEIGHT_FILE_NAMES.join(', ')})`,
        { path: pathOrDir },
      );
    file = found;
  } else if (path.basename(pathOrDir) === MODEL_WEIGHTS_FILE && isModelFolder(dir)) {
    return { format: 'own', file: pathOrDir, dir };
  }
  const out: DetectedCheckpoint = { format: detectFile(file), file, dir };
  const hf = path.join(dir, 'config.json');
  if (fs.existsSync(hf)) out.hfConfig = hf;
  const oc = path.join(dir, 'open_clip_config.json');
  if (fs.existsSync(oc)) out.openClipConfig = oc;
  return out;
}
