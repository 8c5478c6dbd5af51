/**
 * Hostile CSV indexes for `prepare --dataset csv` and `report --csv`: symbolic links out of the root,
 * Latin-1 text, long rows, a header without rows, a gzip that expands to gigabytes, an unterminated
 * quote. Every input is generated here, small.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { csvAdapter } from '../../lib/data/adapters/csv';
import { readText, readTable } from '../../lib/data/csv';
import { IssueLog } from '../../lib/data/manifest';
import { readCsvRows, readCsvTable, MAX_TEXT_BYTES } from '../../lib/util/csv';
import { expectCode, rejectsWith } from '../helpers/errors';
import { runCli } from '../helpers/cli';
import { makePng } from '../unit/data/helpers';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-csv-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;

/** A dataset root with `k` small PNGs (img0.png ...) and the given index file. */
function dataset(index: string | Buffer, name = 'index.csv', k = 3): string {
  const root = path.join(tmpRoot, `root-${n++}`);
  fs.mkdirSync(root, { recursive: true });
  for (let i = 0; i < k; i++) fs.writeFileSync(path.join(root, `img${i}.png`), makePng(16, 16, Array.from({ length: 256 }, (_, p) => (p * (i + 3)) % 256), 8));
  fs.writeFileSync(path.join(root, name), index);
  return root;
}

function prepareArgs(root: string, file = 'index.csv'): string[] {
  return ['prepare', '--dataset', 'csv', '--root', root, '--csv', file, '--image-col', 'image', '--text-col', 'report', '--out', path.join(root, 'out'), '--image-size', '16', '--quiet'];
}

describe('prepare --dataset csv', () => {
  test('a symbolic link inside the root that points outside it is not read (outside-root)', async () => {
    const outside = path.join(tmpRoot, `secret-${n++}.png`);
    fs.writeFileSync(outside, makePng(16, 16, new Array(256).fill(200), 8));
    const root = dataset('image,report\nimg0.png,Normal.\nlink.png,Secret.\n');
    fs.symlinkSync(outside, path.join(root, 'link.png'));
    // A link that stays inside the root is fine.
    fs.symlinkSync(path.join(root, 'img1.png'), path.join(root, 'inner.png'));
    fs.appendFileSync(path.join(root, 'index.csv'), 'inner.png,Inner.\n');
    const m = await csvAdapter.load({ root, file: 'index.csv', imageCol: 'image', textCol: 'report' });
    expect(m.samples.map((s) => s.imagePath)).toEqual(['img0.png', 'inner.png']);
    expect(m.issues.byKind['outside-root']).toBe(1);
    expect(m.issues.examples[0]).toMatchObject({ kind: 'outside-root', where: 'index.csv:3' });
    const r = await runCli(prepareArgs(root));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/prepared 2 of 2 images/);
    expect(r.err).toContain('[outside-root] index.csv:3');
  });

  test('Latin-1 text is counted as bad-encoding with the count and the first row, in the summary', async () => {
    const latin1 = Buffer.concat([
      Buffer.from('image,report\nimg0.png,Normal.\nimg1.png,'),
      Buffer.from('Opacit\xe9 basale.\n', 'latin1'),
      Buffer.from('img2.png,'),
      Buffer.from('Epanchement pleural \xe0 droite.\n', 'latin1'),
    ]);
    const root = dataset(latin1);
    const m = await csvAdapter.load({ root, file: 'index.csv', imageCol: 'image', textCol: 'report' });
    expect(m.issues.byKind['bad-encoding']).toBe(2);
    expect(m.issues.examples[0]).toMatchObject({ kind: 'bad-encoding', where: 'index.csv:3' });
    const r = await runCli(prepareArgs(root));
    expect(r.code).toBe(0);
    expect(r.out).toContain('2 dataset issue(s)');
    expect(r.err).toContain('2 issue(s) (bad-encoding: 2)');
    expect(r.err).toContain('[bad-encoding] index.csv:3: not valid UTF-8');
    // Valid UTF-8 (even with a real U+FFFD in it) is not flagged.
    const ok = dataset('image,report\nimg0.png,Opacité \uFFFD.\n', 'index.csv', 1);
    expect((await csvAdapter.load({ root: ok, file: 'index.csv', imageCol: 'image' })).issues.total).toBe(0);
  });

  test('Latin-1 in a JSONL index is counted the same way', async () => {
    const root = dataset(Buffer.concat([Buffer.from('{"image":"img0.png","report":"'), Buffer.from('caf\xe9', 'latin1'), Buffer.from('"}\n{"image":"img1.png"}\n')]), 'index.jsonl');
    const m = await csvAdapter.load({ root, file: 'index.jsonl', imageCol: 'image' });
    expect(m.issues.byKind['bad-encoding']).toBe(1);
    expect(m.issues.examples[0].where).toBe('index.jsonl:1');
  });

  test('a row longer than the header is counted (extra-cells, its line named); strict makes it E_DATA', async () => {
    const root = dataset('image,report\nimg0.png,Normal.\nimg1.png,Small,effusion.,extra\n"img2.png","multi\nline"\n');
    const m = await csvAdapter.load({ root, file: 'index.csv', imageCol: 'image', textCol: 'report' });
    expect(m.samples).toHaveLength(3);
    expect(m.samples[1].report).toBe('Small');
    expect(m.issues.byKind['extra-cells']).toBe(1);
    expect(m.issues.examples[0]).toMatchObject({ where: 'index.csv:3', message: '4 cells, the header has 2: the last 2 were ignored' });
    await rejectsWith(csvAdapter.load({ root, file: 'index.csv', imageCol: 'image', textCol: 'report', strict: true }), 'E_DATA');
    const r = await runCli(prepareArgs(root));
    expect(r.err).toContain('[extra-cells] index.csv:3: 4 cells, the header has 2');
  });

  test('a header-only CSV is E_DATA ("no rows")', async () => {
    const root = dataset('image,report\n');
    const e = await rejectsWith(csvAdapter.load({ root, file: 'index.csv', imageCol: 'image' }), 'E_DATA');
    expect(e.message).toContain('no rows');
    const r = await runCli(prepareArgs(root));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^cxr-train: E_DATA: .*index\.csv: no rows/);
    const empty = dataset('', 'index.jsonl');
    await rejectsWith(csvAdapter.load({ root: empty, file: 'index.jsonl', imageCol: 'image' }), 'E_DATA');
  });

  test('a .csv.gz that expands past the limit is E_DATA naming the limit (no string-length crash)', async () => {
    // Nine gzip members of 64 MiB of spaces each: 576 MiB expanded, about 0.6 MiB on disk.
    const member = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20), { level: 9 });
    const bomb = Buffer.concat([zlib.gzipSync(Buffer.from('image,report\nimg0.png,')), ...new Array(9).fill(member)]);
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const root = dataset(bomb, 'index.csv.gz');
    const r = await runCli(prepareArgs(root, 'index.csv.gz'));
    expect(r.code).toBe(1);
    expect(r.err).toContain(`E_DATA: ${path.join(root, 'index.csv.gz')} decompresses to more than the limit of ${MAX_TEXT_BYTES} bytes`);
    // The same bound, small, at the library level; and an uncompressed file over it.
    const small = path.join(root, 'small.gz');
    fs.writeFileSync(small, zlib.gzipSync(Buffer.alloc(4096, 0x41)));
    expect(expectCode(() => readText(small, { maxBytes: 1000 }), 'E_DATA').message).toContain('limit of 1000 bytes');
    expect(readText(small, { maxBytes: 4096 })).toHaveLength(4096);
    expect(expectCode(() => readTable(path.join(root, 'img0.png'), { maxBytes: 10 }), 'E_DATA').message).toContain('over the limit of 10 bytes');
  }, 60000);
});

describe('one strict CSV parser for every reader', () => {
  const unterminated = 'id,report\n1,"Heart normal.\n2,"Lungs clear."\n3,"No effusion."\n';

  test('report --csv refuses an unterminated quote with E_PARSE (no merged report), like prepare', async () => {
    const root = dataset(unterminated.replace('id,report', 'image,report').replace(/\n(\d),/g, (_m, d) => `\nimg${Number(d) - 1}.png,`));
    const f = path.join(root, 'reports.csv');
    fs.writeFileSync(f, unterminated);
    const rep = await runCli(['report', '--csv', f, '--json']);
    expect(rep.code).toBe(2);
    expect(rep.err).toMatch(/^cxr-train: E_PARSE: CSV file .*reports\.csv: line 3: unexpected character after closing quote/);
    expect(rep.out).toBe('');
    const prep = await runCli(prepareArgs(root));
    expect(prep.code).toBe(2);
    expect(prep.err).toMatch(/E_PARSE: .*index\.csv: line 3: unexpected character after closing quote/);
    expectCode(() => readCsvTable(f), 'E_PARSE');
  });

  test('a quote never closed is E_PARSE naming its line in every reader', async () => {
    const f = path.join(tmpRoot, `u-${n++}.csv`);
    fs.writeFileSync(f, 'id,report\n1,ok\n2,"never closed\n3,x\n');
    await rejectsWith((async () => {
      for await (const _ of readCsvRows(f)) void _;
    })(), 'E_PARSE');
    expect(expectCode(() => readCsvTable(f), 'E_PARSE').message).toContain('line 3: unterminated quoted field');
    expect(expectCode(() => readTable(f, { log: new IssueLog() }), 'E_PARSE').message).toContain('line 3');
  });

  test('report --csv names the line of a row with the wrong field count', async () => {
    const f = path.join(tmpRoot, `w-${n++}.csv`);
    fs.writeFileSync(f, 'id,report\n1,ok\n2,"two\nlines"\n3,x,extra\n');
    const rep = await runCli(['report', '--csv', f, '--column', 'report', '--json']);
    expect(rep.code).toBe(2);
    expect(rep.err).toContain('data row 3 (line 5) has 3 fields, the header has 2');
  });
});
