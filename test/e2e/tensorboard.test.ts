/**
 * `train --log-to tensorboard` on the tiny synthetic setup: the event files hold what metrics.jsonl holds
 * (same tags, steps and values, to float32), read back by an independent decoder; a resumed run adds a file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli';
import { eventFiles, readEventFile, scalarsOf } from '../helpers/tfevents';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-tb-e2e-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const FAST = ['--batch-size', '8', '--threads', '1', '--log', 'none', '--eval-every', '3', '--set', 'data.synthetic.n=100', '--set', 'eval.batchSize=32'];

/** metrics.jsonl as the scalars the TensorBoard log should hold. */
function expectedScalars(dir: string): Map<string, Array<[number, number]>> {
  const m = new Map<string, Array<[number, number]>>();
  const add = (tag: string, step: number, v: unknown) => {
    if (typeof v !== 'number') return; // null in metrics.jsonl: NaN, left out of TensorBoard
    if (!m.has(tag)) m.set(tag, []);
    m.get(tag)!.push([step, Math.fround(v)]);
  };
  for (const line of fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
    const e = JSON.parse(line);
    if (e.event === 'step') for (const [k, v] of Object.entries(e)) if (!['event', 'time', 'step', 'totalSteps'].includes(k)) add(`train/${k}`, e.step, v);
    if (e.event === 'eval') {
      add('val/loss', e.step, e.valLoss);
      add('val/macroAuroc', e.step, e.macroAuroc);
      for (const [l, v] of Object.entries(e.auroc)) add(`val/auroc/${l}`, e.step, v);
    }
  }
  return m;
}

test('train --log-to jsonl,tensorboard writes event files equal to metrics.jsonl; resume appends a new file', async () => {
  const dir = path.join(tmpRoot, 'run');
  const r1 = await runCli(['train', '--out', dir, '--steps', '6', '--log-to', 'jsonl,tensorboard', ...FAST]);
  expect(r1.code).toBe(0);
  const tbDir = path.join(dir, 'tensorboard');
  let files = eventFiles(tbDir);
  expect(files).toHaveLength(1);
  expect(path.basename(files[0])).toMatch(/^events\.out\.tfevents\.\d+\..+\.\d+\.cxr-train/);

  const first = readEventFile(files[0]);
  expect(first[0].file_version).toBe('brain.Event:2');
  const text = first.flatMap((e) => e.summary?.value ?? []).filter((v) => v.tag === 'config');
  expect(text).toHaveLength(1);
  expect(text[0].metadata?.plugin_data?.plugin_name).toBe('text');
  const yamlText = fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8');
  expect(text[0].tensor!.string_val![0].replace(/^ {4}/gm, '')).toBe(yamlText.trimEnd());

  const r2 = await runCli(['train', '--out', dir, '--resume', 'auto', '--steps', '9', '--log-to', '[jsonl, tensorboard]', ...FAST]);
  expect(r2.code).toBe(0);
  files = eventFiles(tbDir);
  expect(files).toHaveLength(2);

  const got = scalarsOf(files.flatMap((f) => readEventFile(f)));
  const want = expectedScalars(dir);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [tag, points] of want) expect({ tag, points: got.get(tag) }).toEqual({ tag, points });
  expect(want.get('train/loss')!.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(want.get('val/macroAuroc')!.map(([s]) => s)).toEqual([0, 3, 6, 9]);
  expect([...want.keys()].some((t) => t.startsWith('val/auroc/'))).toBe(true);
});

test('without tensorboard in log.to no event file is written', async () => {
  const dir = path.join(tmpRoot, 'plain');
  expect((await runCli(['train', '--out', dir, '--steps', '2', ...FAST])).code).toBe(0);
  expect(fs.existsSync(path.join(dir, 'tensorboard'))).toBe(false);
  expect(fs.existsSync(path.join(dir, 'metrics.jsonl'))).toBe(true);
});

test('train --log tensorboard (as open_clip users type it) writes the event files and keeps console lines', async () => {
  const dir = path.join(tmpRoot, 'flag');
  const r = await runCli(['train', '--out', dir, '--steps', '2', '--log', 'plain,tensorboard', ...FAST.filter((a, i) => a !== '--log' && FAST[i - 1] !== '--log')]);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(/step 2\/2/);
  const files = eventFiles(path.join(dir, 'tensorboard'));
  expect(files).toHaveLength(1);
  expect(scalarsOf(readEventFile(files[0])).get('train/loss')!.map(([s]) => s)).toEqual([1, 2]);
  expect(fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8')).toMatch(/format: plain\n\s+everySteps: 10\n\s+to:\n\s+- jsonl\n\s+- tensorboard/);
});
