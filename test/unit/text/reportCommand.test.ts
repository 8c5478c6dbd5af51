import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCsvRows } from '../../../lib/util/csv';
import { runCli as run } from '../../helpers/cli';


const fixtures = path.resolve(__dirname, '../../fixtures/reports');


describe('cxr-train report', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'report-cmd-'));
  });

  it('prints sections, sentences and samples of a report file as JSON', async () => {
    const r = await run(['report', path.join(fixtures, 'mimic-numbered-impression.txt'), '--json', '--sample', '4', '--seed', '3']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.sections.map((s: { name: string }) => s.name)).toEqual(['indication', 'comparison', 'findings', 'impression']);
    expect(j.sentences).toHaveLength(7);
    expect(j.sentences[4]).toEqual({ section: 'impression', text: 'Endotracheal tube in standard position.' });
    expect(j.samples).toHaveLength(4);
    const all = j.sentences.map((s: { text: string }) => s.text);
    for (const s of j.samples) expect(all.some((t: string) => s.startsWith(t))).toBe(true);
    const again = JSON.parse((await run(['report', path.join(fixtures, 'mimic-numbered-impression.txt'), '--json', '--sample', '4', '--seed', '3'])).out);
    expect(again.samples).toEqual(j.samples);
  });

  it('prints a readable text audit, and reads Open-I XML', async () => {
    const r = await run(['report', path.join(fixtures, 'openi-1.xml'), '--mode', 'one', '--sample', '2']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Sections:\n  \[comparison\] COMPARISON\n    None\./);
    expect(r.out).toMatch(/\[impression\] No acute cardiopulmonary process\./);
    expect(r.out).toMatch(/Samples \(mode one, seed 0\):\n  epoch 0: .+\n  epoch 1: .+\n/);
  });

  it('audits a CSV column as JSON lines, one per row', async () => {
    const csv = path.join(dir, 'r.csv');
    fs.writeFileSync(csv, 'id,text\r\n1,"FINDINGS: Heart normal. Lungs clear.\r\nIMPRESSION: Normal."\r\n2,"cardiomegalia . derrame ""leve"""\r\n3,\r\n');
    const r = await run(['report', '--csv', csv, '--column', 'text', '--json', '--sample', '1']);
    expect(r.code).toBe(0);
    const rows = r.out.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => x.row)).toEqual([0, 1, 2]);
    expect(rows[0].sentences.map((s: { text: string }) => s.text)).toEqual(['Heart normal.', 'Lungs clear.', 'Normal.']);
    expect(rows[1].sentences.map((s: { text: string }) => s.text)).toEqual(['cardiomegalia.', 'derrame "leve"']);
    expect(rows[2].samples).toEqual(['chest radiograph']);
  });

  it('uses section columns of a CheXpert-Plus style CSV without --column', async () => {
    const csv = path.join(dir, 'plus.csv');
    fs.writeFileSync(csv, 'path_to_image,section_findings,section_impression\na.jpg,Clear lungs.,Normal study.\n');
    const r = await run(['report', '--csv', csv, '--json', '--sample', '0', '--sections', 'impression']);
    expect(JSON.parse(r.out)).toMatchObject({ row: 0, sentences: [{ section: 'impression', text: 'Normal study.' }], samples: [] });
  });

  it('fails clearly on a missing column, a missing file and a bad option', async () => {
    const csv = path.join(dir, 'm.csv');
    fs.writeFileSync(csv, 'id,report\n1,x\n');
    let r = await run(['report', '--csv', csv, '--column', 'findings']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/E_DATA: CSV file .* has no column "findings" \(columns: id, report\)/);
    r = await run(['report', path.join(dir, 'nope.txt')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/E_IO: cannot read report file/);
    r = await run(['report', path.join(fixtures, 'empty.txt'), '--mode', 'k']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/E_CONFIG: sampler k/);
    const unclosed = path.join(dir, 'u.csv');
    fs.writeFileSync(unclosed, 'report\n"never closed\n');
    r = await run(['report', '--csv', unclosed]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/E_PARSE: .*never closed/);
  });
});

describe('readCsvRows', () => {
  it('handles quotes split across stream chunks', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csv-'));
    const f = path.join(dir, 'big.csv');
    // Fields long enough to cross the 64 KiB read chunk with escaped quotes near the boundary.
    const cell = 'a""b'.repeat(20000);
    fs.writeFileSync(f, `x,y\n"${cell}",2\n3,"${cell}"\n`);
    const rows: Array<Array<string | undefined>> = [];
    for await (const r of readCsvRows(f)) rows.push(r.row);
    expect(rows).toHaveLength(2);
    expect(rows[0][0]).toBe('a"b'.repeat(20000));
    expect(rows[0][1]).toBe('2');
    expect(rows[1][1]).toBe('a"b'.repeat(20000));
  });
});
