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
import http from 'node:http';
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

// ---- 2. DICOM RLE Lossless: offsets past the data, huge declared sizes; serve stays responsive ----------

const RLE = '1.2.840.10008.1.2.5';

/** An RLE frame: a 64-byte header with `offsets`, then `body`. */
function rleFrame(offsets: number[], body: Buffer): Buffer {
  const h = Buffer.alloc(64);
  h.writeUInt32LE(offsets.length, 0);
  offsets.forEach((o, i) => h.writeUInt32LE(o >>> 0, 4 + 4 * i));
  return Buffer.concat([h, body]);
}

/** 16-bit RLE whose second segment offset points 4 GB past the data (segment 0 then "ends" there). */
const farOffsetDicom = () => makeDicom({ rows: 64, cols: 64, pixels: [], bitsAllocated: 16, transferSyntax: RLE, encapsulated: rleFrame([64, 0xfffffff0], Buffer.from([0x81, 7, 0x81, 7])) });

/** 8-bit RLE declaring 10000x10000 over ~1.5 MB of replicate runs (each 2 bytes → 128 pixels). */
function hugeDeclaredDicom(): Buffer {
  const body = Buffer.alloc(1_500_000);
  for (let i = 0; i < body.length; i += 2) body[i] = 0x81; // repeat the next byte 128 times
  return makeDicom({ rows: 10000, cols: 10000, pixels: [], bitsAllocated: 8, transferSyntax: RLE, encapsulated: rleFrame([64], body) });
}

describe('2. DICOM RLE Lossless', () => {
  test('a segment offset past the data is refused at once (E_DATA), from a file of a few hundred bytes', async () => {
    const buf = farOffsetDicom();
    expect(buf.length).toBeLessThan(600);
    const e = await rejectsFast(() => decodeImage(buf), 'E_DATA', 500);
    expect(e.message).toMatch(/RLE segment 0 spans bytes .* outside the/);
  });

  test('a 1.5 MB file declaring 10000x10000 is refused before its output is allocated (E_DATA)', async () => {
    const buf = hugeDeclaredDicom();
    const before = process.memoryUsage().arrayBuffers;
    const e = await rejectsFast(() => decodeImage(buf), 'E_DATA', 1000);
    expect(e.message).toMatch(/too few for 10000x10000 pixels/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });

  test('a declared size over the decode budget is refused on the header (E_DATA, the limit named)', async () => {
    const buf = makeDicom({ rows: 300, cols: 300, pixels: new Uint16Array(90000) });
    const e = await rejectsFast(() => decodeImage(buf, { maxPixels: 50000 }), 'E_DATA', 500);
    expect(e.message).toMatch(/300x300 exceeds the pixel limit \(50000 pixels\)/);
  });

  describe('serve', () => {
    let server: RunningServer;
    /**
     * /api/info answers within 200 ms (the median of the answers) and never waits for a decode (every answer
     * < 1 s; before, one hostile upload blocked the event loop for 66 s). On a quiet machine every answer
     * takes a few ms; the median absorbs the scheduling delays of a loaded shared machine, where the idle
     * test process's own event-loop delay reaches ~200 ms.
     */
    const answersFast = (times: number[]) => {
      const sorted = [...times].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      if (median >= 200 || sorted[sorted.length - 1] >= 1000) throw new Error(`/api/info took ${times.join(', ')} ms`);
    };
    const info = async (): Promise<number> => {
      const t0 = Date.now();
      const r = await fetch(`${server.url}api/info`);
      expect(r.status).toBe(200);
      await r.json();
      return Date.now() - t0;
    };
    const post = (body: Uint8Array) => fetch(`${server.url}api/predict`, { method: 'POST', headers: { 'Content-Type': 'application/dicom' }, body });
    /** Posts `body`; `sent` resolves once the client has written it all (the timing below is the server's, not the upload's). */
    const postRaw = (body: Buffer) => {
      let onSent!: () => void;
      const sent = new Promise<void>((r) => (onSent = r));
      const response = new Promise<{ status: number; json: { error?: { code: string }; image?: { width: number } } }>((resolve, reject) => {
        const req = http.request(`${server.url}api/predict`, { method: 'POST', headers: { 'Content-Type': 'application/dicom', 'Content-Length': body.length } }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(body, onSent);
      });
      return { sent, response };
    };

    beforeAll(async () => {
      const dir = path.join(tmp, 'serve-model');
      const m = ClipModel.create('test-vit', { device: 'cpu', seed: 3 });
      m.save(dir);
      m.dispose();
      server = await startServer({ checkpoint: dir, port: 0, device: 'cpu', maxUploadBytes: 32 * 1024 * 1024, maxDecodeBytes: 256 * 1024 * 1024 });
      await info(); // warm
    }, 120000);
    afterAll(async () => server?.close());

    test('hostile RLE uploads get 422 E_DATA fast while /api/info answers within 200 ms', async () => {
      const huge = hugeDeclaredDicom();
      const uploads = [postRaw(farOffsetDicom()), postRaw(huge), postRaw(huge), postRaw(huge)];
      await Promise.all(uploads.map((u) => u.sent));
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push(await info());
      const rs = await Promise.all(uploads.map((u) => u.response));
      expect(rs.map((r) => r.status)).toEqual([422, 422, 422, 422]);
      for (const r of rs) expect(r.json.error?.code).toBe('E_DATA');
      answersFast(times);
      expect(server.app.server.listening).toBe(true);
    });

    test('a large valid DICOM is decoded off the event loop: /api/info keeps answering within 200 ms', async () => {
      const side = 2500;
      const px = new Uint16Array(side * side);
      for (let i = 0; i < px.length; i++) px[i] = (i * 7) & 0xfff;
      const big = makeDicom({ rows: side, cols: side, pixels: px, bitsStored: 12 });
      const up = postRaw(big);
      await up.sent;
      const times: number[] = [];
      let done = false;
      void up.response.then(() => (done = true));
      while (!done && times.length < 50) {
        times.push(await info());
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = await up.response;
      expect(r.status).toBe(200);
      expect(r.json.image?.width).toBe(side);
      expect(times.length).toBeGreaterThan(0);
      answersFast(times);
    });

    test('an upload over the decode budget gets 422 naming the limit', async () => {
      const side = 5000; // 25 megapixels x 14 bytes > 256 MiB
      const r = await post(makeDicom({ rows: side, cols: side, pixels: [], bitsAllocated: 8, transferSyntax: RLE, encapsulated: rleFrame([64], Buffer.alloc(400_000, 0x81)) }));
      expect(r.status).toBe(422);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/exceeds the pixel limit/);
    });
  });
});

// ---- 3. count-like options past the machine ----------------------------------------------------------

describe('3. thread and count bounds', () => {
  const resolve = (o: Record<string, string>) => () => resolveTrainConfig([{ config: overridesToConfig(o), source: 'flags' }]);

  test('threads above the available cores are refused with E_CONFIG naming the limit', async () => {
    const e = await rejectsFast(resolve({ threads: '100000' }), 'E_CONFIG', 500);
    expect(e.message).toContain(`"threads" must be at most ${availableCores()} (the cores available to this process)`);
    expect(() => resolve({ threads: String(availableCores()) })()).not.toThrow();
    // The native entry of every command (ZeroShotModel, ClipModel options) is bounded too.
    expect(() => ClipModel.create('test-vit', { device: 'cpu', threads: 100000 })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringMatching(/at most/) }));
  });

  test('workers, batch sizes, image and synthetic sizes have upper bounds', () => {
    for (const [k, v] of [
      ['data.workers', '100000'],
      ['batchSize', '10000000'],
      ['accumSteps', '100000'],
      ['eval.batchSize', '1000000'],
      ['data.imageSize', '100000'],
      ['data.synthetic.n', '100000000'],
      ['data.synthetic.size', '100000'],
    ])
      expect(resolve({ [k]: v })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining(`"${k}" must be at most`) }));
    expect(resolve({ 'data.synthetic.n': '1000000', 'data.synthetic.size': '1024' })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringMatching(/synthetic pixels/) }));
    expect(CONFIG_BOUNDS.batch.max).toBe(65536);
  });

  test('train --threads 100000 ends at once with E_CONFIG (exit 2), nothing written', async () => {
    const out = path.join(tmp, 'threads-run');
    const err = await cliFails(['train', '--threads', '100000', '--out', out], 'E_CONFIG', 2);
    expect(err).toMatch(/at most \d+/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

// ---- 4. --out / --resume naming a file ---------------------------------------------------------------

describe('4. output and run folders that are files', () => {
  const file = path.join(tmp, 'a-file.txt');
  beforeAll(() => fs.writeFileSync(file, 'not a folder\n'));
  afterEach(() => expect(fs.readFileSync(file, 'utf8')).toBe('not a folder\n'));

  test('train --out FILE and --out FILE/sub: E_IO naming it', async () => {
    expect(await cliFails(['train', '--out', file, '--steps', '1'], 'E_IO')).toContain('is a file, not a folder');
    expect(await cliFails(['train', '--out', path.join(file, 'sub'), '--steps', '1'], 'E_IO')).toContain('is a file, so no folder can be made below it');
    expect(() => resolveRun({ overrides: { outDir: file } })).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });

  test('train --resume FILE: E_IO, not ENOTDIR', async () => {
    const out = path.join(tmp, 'resume-run');
    expect(await cliFails(['train', '--resume', file, '--out', out], 'E_IO')).toContain('is a file, not a run folder or checkpoint folder');
    expect(await cliFails(['train', '--resume', 'auto', '--out', file], 'E_IO')).toContain('is a file');
    expect(fs.existsSync(out)).toBe(false);
  });

  test('prepare --out FILE and convert --out FILE: E_IO', async () => {
    expect(await cliFails(['prepare', '--dataset', 'csv', '--root', tmp, '--csv', 'x.csv', '--image-col', 'p', '--out', file], 'E_IO')).toContain('is a file');
    const model = path.join(tmp, 'conv-model');
    const m = ClipModel.create('test-vit', { device: 'cpu', seed: 1 });
    m.save(model);
    m.dispose();
    expect(await cliFails(['convert', '--checkpoint', model, '--out', file], 'E_IO')).toContain('is a file');
    expect(await cliFails(['convert', '--checkpoint', model, '--out', path.join(file, 'm')], 'E_IO')).toContain('no folder can be made');
  });

  test('demo --out FILE: E_IO', async () => {
    expect(await cliFails(['demo', '--out', file], 'E_IO')).toContain('is a file');
  });
});

// ---- 5. YAML alias bomb nested under data.options -----------------------------------------------------

/** Nine levels of nine aliases each: 9^9 (387 million) values from ~1 KB. */
function aliasBomb(indent: string): string {
  const lines = [`${indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]`];
  for (let i = 1; i <= 8; i++) lines.push(`${indent}l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]`);
  return lines.join('\n') + '\n';
}

describe('5. YAML alias bomb', () => {
  test('nested under data.options: E_PARSE at once (exit 2), as at the top level', async () => {
    const nested = path.join(tmp, 'bomb-nested.yaml');
    fs.writeFileSync(nested, `data:\n  options:\n${aliasBomb('    ')}`);
    const top = path.join(tmp, 'bomb-top.yaml');
    fs.writeFileSync(top, aliasBomb(''));
    for (const f of [nested, top]) {
      const e = await rejectsFast(() => readConfigFile(f), 'E_PARSE', 1000);
      expect(e.message).toMatch(/expands to more than 1000000 values/);
    }
    const out = path.join(tmp, 'bomb-run');
    expect(await cliFails(['train', '--config', nested, '--out', out], 'E_PARSE', 2)).toMatch(/YAML aliases/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a recursive alias is refused too, and ordinary aliases still work', async () => {
    const cyc = path.join(tmp, 'cycle.yaml');
    fs.writeFileSync(cyc, 'data:\n  options: &a\n    self: *a\n');
    await rejectsFast(() => readConfigFile(cyc), 'E_PARSE', 1000);
    const ok = path.join(tmp, 'aliases.yaml');
    fs.writeFileSync(ok, 'data:\n  options:\n    views: &v [PA, AP]\n    again: *v\n');
    const c = resolveTrainConfig([{ config: readConfigFile(ok), source: ok }]);
    expect(c.data.options).toEqual({ views: ['PA', 'AP'], again: ['PA', 'AP'] });
  });
});

// ---- 6. config keys that are Object.prototype names ---------------------------------------------------

describe('6. prototype names as config keys', () => {
  const NAMES = ['constructor', 'hasOwnProperty', 'toString', 'valueOf', '__proto__'];

  test.each(NAMES)('%s is an unknown key at the top level and nested (E_CONFIG), in files and flags', async (k) => {
    for (const [i, json] of [`{"${k}": 1}`, `{"optimizer": {"${k}": {"lr": 5}}}`, `{"data": {"synthetic": {"${k}": 3}}}`].entries()) {
      const f = path.join(tmp, `proto-${k}-${i}.json`);
      fs.writeFileSync(f, json);
      const e = await rejectsFast(() => resolveTrainConfig([{ config: readConfigFile(f), source: f }]), 'E_CONFIG', 500);
      expect(e.message).toMatch(new RegExp(`unknown key "(optimizer\\.|data\\.synthetic\\.)?${k.replace(/_/g, '_')}"`));
    }
    expect(() => resolveTrainConfig([{ config: overridesToConfig({ [`${k}.polluted`]: '1' }), source: 'flags' }])).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => resolveTrainConfig([{ config: overridesToConfig({ [k]: '1' }), source: 'flags' }])).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await cliFails(['train', '--set', `${k}=1`, '--out', path.join(tmp, 'proto-run')], 'E_CONFIG', 2)).toContain(`unknown key "${k}"`);
  });
});

// ---- 7. score: probabilities and thresholds ----------------------------------------------------------

describe('7. score inputs', () => {
  const truth = path.join(tmp, 'truth.csv');
  beforeAll(() => fs.writeFileSync(truth, 'id,A\na,1\nb,0\nc,1\nd,0\n'));

  test.each([
    ['1.5', 'outside [0, 1]'],
    ['-0.1', 'below 0'],
    ['NaN', 'NaN'],
    ['Infinity', 'infinite'],
    ['-Infinity', 'infinite'],
  ])('a prediction of %s (%s) is E_DATA naming the row', async (v) => {
    const pred = path.join(tmp, `pred-${v}.csv`);
    fs.writeFileSync(pred, `id,A\na,0.9\nb,0.1\nc,${v}\nd,0.2\n`);
    const e = await rejectsFast(() => scoreTables({ truth: readCsvTable(truth), pred: readCsvTable(pred) }, { bootstrap: 0 }), 'E_DATA', 500);
    expect(e.message).toContain('row 3, label "A"');
    expect(await cliFails(['score', '--truth', truth, '--pred', pred, '--bootstrap', '0'], 'E_DATA')).toContain('row 3');
  });

  test('--threshold outside [0, 1] is E_CONFIG in the library and the CLI', async () => {
    const pred = path.join(tmp, 'pred-ok.csv');
    fs.writeFileSync(pred, 'id,A\na,0.9\nb,0.1\nc,0.8\nd,0.2\n');
    for (const t of [2, -0.5, Number.NaN])
      await rejectsFast(() => scoreTables({ truth: readCsvTable(truth), pred: readCsvTable(pred) }, { bootstrap: 0, threshold: t }), 'E_CONFIG', 500);
    expect(await cliFails(['score', '--truth', truth, '--pred', pred, '--threshold', '2', '--bootstrap', '0'], 'E_CONFIG', 2)).toMatch(/threshold must be a (probability|number) in \[0, 1\]/);
    const ok = await runCli(['score', '--truth', truth, '--pred', pred, '--threshold', '1', '--bootstrap', '0', '--json']);
    expect(ok.code).toBe(0);
  });
});

// ---- 8. exit codes when nothing useful was produced -------------------------------------------------

describe('8. nothing useful → exit 1', () => {
  test('predict with every image skipped exits 1 with one line, and writes no CSV', async () => {
    const model = path.join(tmp, 'pred-model');
    const m = ClipModel.create('test-vit', { device: 'cpu', seed: 2 });
    m.save(model);
    m.dispose();
    const bad = [path.join(tmp, 'bad1.png'), path.join(tmp, 'bad2.png')];
    for (const b of bad) fs.writeFileSync(b, 'not an image');
    const out = path.join(tmp, 'nothing.csv');
    const r = await runCli(['predict', '--checkpoint', model, '--images', ...bad, '--out', out, '--device', 'cpu', '--workers', '0']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('cxr-train predict: nothing produced: all 2 images were skipped');
    expect(fs.existsSync(out)).toBe(false);
    // One good image is a success.
    const good = path.join(tmp, 'good.png');
    fs.writeFileSync(good, await sharp(Buffer.alloc(40 * 40, 90), { raw: { width: 40, height: 40, channels: 1 } }).png().toBuffer());
    const ok = await runCli(['predict', '--checkpoint', model, '--images', good, ...bad, '--out', out, '--device', 'cpu', '--workers', '0']);
    expect(ok.code).toBe(0);
    expect(fs.existsSync(out)).toBe(true);
  });

  test('prepare with every row bad exits 1 and leaves no output folder', async () => {
    const root = path.join(tmp, 'bad-dataset');
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'index.csv'), 'path,text\nmissing1.png,no effusion\nmissing2.png,effusion\n');
    const out = path.join(tmp, 'bad-shards');
    const r = await runCli(['prepare', '--dataset', 'csv', '--root', root, '--csv', 'index.csv', '--image-col', 'path', '--text-col', 'text', '--out', out, '--image-size', '16', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cxr-train prepare: nothing produced/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
