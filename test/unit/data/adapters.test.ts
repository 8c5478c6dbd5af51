import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { generateSynthetic } from '../../../lib/data/synthetic';
import type { SyntheticDataset } from '../../../lib/data/synthetic';
import { mimicCxrAdapter } from '../../../lib/data/adapters/mimicCxr';
import { csvAdapter } from '../../../lib/data/adapters/csv';
import { parseCsv } from '../../../lib/data/csv';
import { CHEXPERT_LABELS } from '../../../lib/data/sample';
import { readManifest, writeManifest, resolveInside } from '../../../lib/data/manifest';

let dir: string;
let ds: SyntheticDataset;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-adapt-'));
  ds = await generateSynthetic({ n: 30, seed: 21, size: 32, outDir: dir });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function copyDir(src: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-adapt-copy-'));
  fs.cpSync(src, d, { recursive: true });
  return d;
}

function sameLabels(a: Record<string, number>, b: Record<string, number>): void {
  for (const l of CHEXPERT_LABELS) {
    if (Number.isNaN(b[l])) expect(a[l]).toBeNaN();
    else expect(a[l]).toBe(b[l]);
  }
}

describe('CSV parsing', () => {
  test('quotes, doubled quotes, embedded commas and newlines, CRLF, BOM', () => {
    const rows = parseCsv('\ufeffa,b,c\r\n1,"x, y","he said ""hi""\nnext line"\r\n2,,\n');
    expect(rows).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', 'he said "hi"\nnext line'],
      ['2', '', ''],
    ]);
    expect(() => parseCsv('a\n"open')).toThrow(expect.objectContaining({ code: 'E_PARSE' }));
  });
  test('resolveInside refuses paths that escape the root', () => {
    expect(resolveInside('/data/x', 'files/a.jpg')).toBe('/data/x/files/a.jpg');
    expect(resolveInside('/data/x', '../y/a.jpg')).toBeUndefined();
    expect(resolveInside('/data/x', '/etc/passwd')).toBeUndefined();
    expect(resolveInside('/data/x', 'a/../../x2/b.jpg')).toBeUndefined();
  });
});

describe('MIMIC-CXR-JPG adapter', () => {
  test('reads the layout the synthetic generator writes, field for field', async () => {
    const m = await mimicCxrAdapter.load({ root: dir });
    expect(m.issues.total).toBe(0);
    expect(m.labelNames).toEqual([...CHEXPERT_LABELS]);
    expect(m.samples).toHaveLength(30);
    const byId = new Map(m.samples.map((s) => [s.id, s]));
    for (const g of ds.samples) {
      const s = byId.get(g.id)!;
      expect(s).toBeDefined();
      expect(s.imagePath).toBe(g.imagePath);
      expect(s.patientId).toBe(g.patientId);
      expect(s.studyId).toBe(g.studyId);
      expect(s.split).toBe(g.split);
      expect(s.view).toBe(g.view);
      expect(s.report).toBe(g.report);
      sameLabels(s.labels, g.labels);
      expect(fs.existsSync(path.join(m.root, s.imagePath))).toBe(true);
    }
    const frontalPA = await mimicCxrAdapter.load({ root: dir, views: ['PA'], splits: ['train'] });
    expect(frontalPA.samples.length).toBe(ds.samples.filter((s) => s.view === 'PA' && s.split === 'train').length);
    expect(frontalPA.samples.every((s) => s.view === 'PA' && s.split === 'train')).toBe(true);
  });

  test('gzip CSVs and a separate reports root, like the real release', async () => {
    const d = copyDir(dir);
    for (const n of ['split', 'metadata', 'chexpert']) {
      const f = path.join(d, `mimic-cxr-2.0.0-${n}.csv`);
      fs.writeFileSync(f + '.gz', zlib.gzipSync(fs.readFileSync(f)));
      fs.unlinkSync(f);
    }
    const rep = path.join(d, 'mimic-cxr-reports');
    for (const s of ds.samples) {
      const rel = `files/p${s.patientId.slice(0, 2)}/p${s.patientId}/s${s.studyId}.txt`;
      fs.mkdirSync(path.dirname(path.join(rep, rel)), { recursive: true });
      fs.renameSync(path.join(d, rel), path.join(rep, rel));
    }
    const m = await mimicCxrAdapter.load({ root: d, reportsRoot: rep });
    expect(m.issues.total).toBe(0);
    expect(m.samples.map((s) => s.report)).toEqual(ds.samples.map((s) => s.report));
    const noRep = await mimicCxrAdapter.load({ root: d });
    expect(noRep.issues.byKind['missing-report']).toBe(30);
    fs.rmSync(d, { recursive: true, force: true });
  });

  test('bad rows, missing files, bad labels and duplicates are counted and named; strict is fatal', async () => {
    const d = copyDir(dir);
    const splitF = path.join(d, 'mimic-cxr-2.0.0-split.csv');
    const lines = fs.readFileSync(splitF, 'utf8').trim().split('\n');
    lines.push(lines[1]); // duplicate dicom id
    lines.push('zz-not-hex,5,6,train'); // bad id
    lines.push(lines[2].replace(/,(train|validate|test)$/, ',holdout')); // unknown split
    fs.writeFileSync(splitF, lines.join('\n') + '\n');
    fs.unlinkSync(path.join(d, ds.samples[3].imagePath));
    const labF = path.join(d, 'mimic-cxr-2.0.0-chexpert.csv');
    const lab = fs.readFileSync(labF, 'utf8').trim().split('\n');
    const cells = lab[1].split(',');
    cells[2] = 'maybe';
    lab[1] = cells.join(',');
    fs.writeFileSync(labF, lab.join('\n') + '\n');
    const m = await mimicCxrAdapter.load({ root: d });
    expect(m.issues.byKind['duplicate-id']).toBe(1);
    expect(m.issues.byKind['bad-row']).toBe(2);
    expect(m.issues.byKind['missing-file']).toBe(1);
    expect(m.issues.byKind['bad-label']).toBe(1);
    expect(m.samples).toHaveLength(29);
    expect(m.issues.examples.some((e) => e.message.includes(ds.samples[3].imagePath))).toBe(true);
    await expect(mimicCxrAdapter.load({ root: d, strict: true })).rejects.toMatchObject({ code: 'E_DATA' });
    fs.rmSync(d, { recursive: true, force: true });
  });

  test('missing index files are E_IO', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-empty-'));
    await expect(mimicCxrAdapter.load({ root: d })).rejects.toMatchObject({ code: 'E_IO' });
    fs.rmSync(d, { recursive: true, force: true });
  });
});

describe('generic CSV / JSONL adapter', () => {
  test('named columns, quoted multi-line reports, issues for bad input', async () => {
    const s = ds.samples;
    const q = (v: string) => `"${v.replace(/"/g, '""')}"`;
    const rows = [
      'path,report,Edema,Cardiomegaly,pid,split',
      `${s[0].imagePath},${q('Heart, normal.\nNo "edema".')},0,1,P1,train`,
      `${s[1].imagePath},,1,,P1,train`,
      `${s[2].imagePath},x,-1,0,P2,valid`,
      `../outside.jpg,x,1,0,P3,train`,
      `${s[3].imagePath},x,maybe,0,P3,train`,
      `files/p10/nope.jpg,x,1,0,P4,train`,
      `${s[0].imagePath},dup,1,1,P1,train`,
      `${s[4].imagePath},x,true,false,P5,test`,
    ];
    fs.writeFileSync(path.join(dir, 'index.csv'), rows.join('\n'));
    const m = await csvAdapter.load({ root: dir, file: 'index.csv', imageCol: 'path', textCol: 'report', labelCols: ['Edema', 'Cardiomegaly'], patientCol: 'pid', splitCol: 'split' });
    expect(m.labelNames).toEqual(['Edema', 'Cardiomegaly']);
    expect(m.issues.byKind).toEqual({ 'outside-root': 1, 'bad-label': 1, 'missing-file': 1, 'duplicate-id': 1 });
    expect(m.samples.map((x) => x.patientId)).toEqual(['P1', 'P1', 'P2', 'P3', 'P5']);
    expect(m.samples[0].report).toBe('Heart, normal.\nNo "edema".');
    expect(m.samples[0].labels).toEqual({ Edema: 0, Cardiomegaly: 1 });
    expect(m.samples[1].labels.Cardiomegaly).toBeNaN();
    expect(m.samples[1].report).toBeUndefined();
    expect(m.samples[2].split).toBe('validate');
    expect(m.samples[3].labels.Edema).toBeNaN();
    expect(m.samples[4].labels).toEqual({ Edema: 1, Cardiomegaly: 0 });
    await expect(csvAdapter.load({ root: dir, file: 'index.csv', imageCol: 'path', labelCols: ['Edema'], strict: true })).rejects.toMatchObject({ code: 'E_DATA' });
    await expect(csvAdapter.load({ root: dir, file: 'index.csv', imageCol: 'nocol' })).rejects.toMatchObject({ code: 'E_CONFIG' });
  });

  test('JSONL input and manifest round trip', async () => {
    const s = ds.samples;
    const lines = [JSON.stringify({ img: s[0].imagePath, text: s[0].report, Edema: 1, patient: 'A' }), 'not json', JSON.stringify({ img: s[1].imagePath, text: 'ok', Edema: null, patient: 'B' })];
    fs.writeFileSync(path.join(dir, 'index.jsonl'), lines.join('\n'));
    const m = await csvAdapter.load({ root: dir, file: 'index.jsonl', imageCol: 'img', textCol: 'text', labelCols: ['Edema'], patientCol: 'patient' });
    expect(m.samples).toHaveLength(2);
    expect(m.issues.byKind['bad-row']).toBe(1);
    expect(m.samples[0].report).toBe(s[0].report);
    expect(m.samples[1].labels.Edema).toBeNaN();
    const f = path.join(dir, 'm.jsonl');
    writeManifest(f, m);
    const back = readManifest(f);
    expect(back.samples).toHaveLength(2);
    expect(back.samples[1].labels.Edema).toBeNaN();
    expect(back.samples[0].labels.Edema).toBe(1);
    expect(back.samples[0].report).toBe(s[0].report);
    expect(back.issues.total).toBe(1);
    expect(fs.readdirSync(dir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
  });
});
