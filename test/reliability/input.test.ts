/**
 * Hostile inputs, generated here (small): each must end in a coded error (or be handled) within seconds,
 * through the library and through the CLI as a user runs it, with nothing left behind.
 *
 *   1. a pickle whose objects share memo references many levels deep (convert, embed, predict)
 *   2. RLE Lossless DICOMs with segment offsets past the data or a huge declared size; `serve` stays responsive
 *   3. count-like options past the machine (train --threads 100000, workers, batch sizes)
 *   4. --out / --resume naming a file (train, prepare, convert)
 *   5. a YAML alias bomb nested under data.options
 *   6. config keys that are Object.prototype names (constructor, __proto__, ...)
 *   7. score: probabilities outside [0, 1], NaN, Infinity; --threshold outside [0, 1]
 *   8. exit codes: predict with every image skipped, prepare with every row bad
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { runCli } from '../helpers/cli';
import { CxrError } from '../../lib/errors';
import { readCheckpointTensors } from '../../lib/checkpoints/pretrained';
import { scanPickle } from '../../lib/checkpoints/pickleScan';
import { decodeImage } from '../../lib/data/images';
import { ClipModel } from '../../lib/models/ClipModel';
import { startServer } from '../../lib/infer/server';
import type { RunningServer } from '../../lib/infer/server';
import { resolveTrainConfig, readConfigFile, overridesToConfig, CONFIG_BOUNDS } from '../../lib/train/config';
import { resolveRun } from '../../lib/jobs/train';
import { scoreTables } from '../../lib/eval/score';
import { readCsvTable } from '../../lib/util/csv';
import { availableCores } from '../../lib/util/limits';
import { makeDicom } from '../unit/data/helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-input-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// ts-jest compiles each command's modules on first use (seconds on a loaded machine): warm them up untimed,
// so that the 5 s bounds below time the inputs, not the compiler.
beforeAll(async () => {
  const none = path.join(tmp, 'none');
  for (const args of [
    ['convert', '--checkpoint', none, '--out', path.join(tmp, 'w1')],
    ['embed', '--checkpoint', none, '--texts', 'x', '--out', path.join(tmp, 'w2.json')],
    ['predict', '--checkpoint', none, '--images', none, '--out', path.join(tmp, 'w3.csv'), '--quiet'],
    ['train', '--config', path.join(tmp, 'none.yaml')],
    ['prepare', '--dataset', 'csv', '--root', none, '--out', path.join(tmp, 'w4')],
    ['score', '--truth', none, '--pred', none],
  ])
    await runCli(args);
}, 120000);

/** Awaits `fn`, expects a CxrError with `code` within `ms`, and returns it. */
async function rejectsFast(fn: () => unknown, code: string, ms = 5000): Promise<CxrError> {
  const t0 = Date.now();
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  const took = Date.now() - t0;
  expect(err).toBeInstanceOf(CxrError);
  expect((err as CxrError).code).toBe(code);
  expect(took).toBeLessThan(ms);
  return err as CxrError;
}

/** Runs the CLI in process; expects a coded one-line error and an end within 5 s. */
async function cliFails(args: string[], code: string, exit = 1): Promise<string> {
  const t0 = Date.now();
  const r = await runCli(args);
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(r.code).toBe(exit);
  expect(r.err).toContain(`cxr-train: ${code}:`);
  expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  return r.err;
}

const listing = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

// ---- 1. pickle: shared memo references many levels deep ------------------------------------------------

/** A stored (uncompressed) zip archive, as torch.save writes: `archive/<name>` records. */
function zipStored(files: Array<[string, Buffer]>): Buffer {
  const crc = (b: Buffer) => (zlib as unknown as { crc32(b: Buffer): number }).crc32(b) >>> 0;
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = Buffer.from(name, 'utf8');
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt32LE(crc(data), 14);
    h.writeUInt32LE(data.length, 18);
    h.writeUInt32LE(data.length, 22);
    h.writeUInt16LE(n.length, 26);
    locals.push(h, n, data);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt32LE(crc(data), 16);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(n.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/**
 * A pickle of `levels` lists, each holding the previous one `fanout` times through the memo
 * (BINPUT, then BINGET): `fanout^levels` paths over `levels` objects.
 */
function sharedPickle(levels: number, fanout: number): Buffer {
  const b: number[] = [0x80, 2];
  for (let i = 0; i <= levels; i++) {
    b.push(0x5d); // EMPTY_LIST
    if (i > 0) {
      b.push(0x28); // MARK
      for (let k = 0; k < fanout; k++) b.push(0x68, i - 1); // BINGET level i-1
      b.push(0x65); // APPENDS
    }
    b.push(0x71, i, 0x30); // BINPUT i, POP
  }
  b.push(0x68, levels, 0x2e); // BINGET top, STOP
  return Buffer.from(b);
}

function torchZip(file: string, pkl: Buffer): string {
  fs.writeFileSync(file, zipStored([['archive/data.pkl', pkl], ['archive/version', Buffer.from('3\n')]]));
  return file;
}

describe('1. pickle with shared references many levels deep', () => {
  const evil = () => torchZip(path.join(tmp, 'shared.pt'), sharedPickle(40, 10));

  test('the generated pickle is small; the pre-scan refuses it at once (E_CHECKPOINT)', async () => {
    const pkl = sharedPickle(40, 10);
    expect(pkl.length).toBeLessThan(1500);
    const t0 = Date.now();
    expect(() => scanPickle(pkl, 'x.pt')).toThrow(expect.objectContaining({ code: 'E_CHECKPOINT', message: expect.stringMatching(/share references/) }));
    expect(Date.now() - t0).toBeLessThan(500);
    // A few shared levels are an ordinary tree: counted once per object, accepted by the scan.
    expect(scanPickle(sharedPickle(3, 3), 'y.pt').entries).toBe(1 + 3 + 9 + 27);
  });

  test('readCheckpointTensors refuses it in well under 5 s', async () => {
    const e = await rejectsFast(() => readCheckpointTensors(evil()), 'E_CHECKPOINT', 2000);
    expect(e.message).toMatch(/share references many levels deep/);
  });

  test('convert, embed and predict refuse it through the CLI, leaving no output', async () => {
    const f = evil();
    const out = path.join(tmp, 'conv-out');
    await cliFails(['convert', '--checkpoint', f, '--out', out], 'E_CHECKPOINT');
    expect(fs.existsSync(out)).toBe(false);
    const emb = path.join(tmp, 'emb.json');
    await cliFails(['embed', '--checkpoint', f, '--texts', 'no effusion', '--out', emb], 'E_CHECKPOINT');
    expect(fs.existsSync(emb)).toBe(false);
    const png = path.join(tmp, 'one.png');
    fs.writeFileSync(png, await sharp(Buffer.alloc(32 * 32, 128), { raw: { width: 32, height: 32, channels: 1 } }).png().toBuffer());
    const csv = path.join(tmp, 'pred.csv');
    await cliFails(['predict', '--checkpoint', f, '--images', png, '--out', csv, '--device', 'cpu', '--quiet'], 'E_CHECKPOINT');
    expect(fs.existsSync(csv)).toBe(false);
  });
});
