/**
 * The TensorBoard event-file writer, read back by an independent decoder (test/helpers/tfevents.ts:
 * bit-by-bit CRC32C, protobufjs with TensorBoard's message definitions).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TensorBoardWriter, crc32c, maskedCrc32c } from '../../../lib/util/tensorboard';
import { TensorBoardLog } from '../../../lib/train/tensorboard';
import { DEFAULT_CONFIG, configToYaml, overridesToConfig, resolveTrainConfig } from '../../../lib/train/config';
import { crc32cBitwise, eventFiles, readEventFile, scalarsOf } from '../../helpers/tfevents';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-tb-'));

describe('CRC32C', () => {
  test('matches the standard check value and a bitwise implementation', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32cBitwise(Buffer.from('123456789'))).toBe(0xe3069283);
    const rnd = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919 + 13) & 0xff));
    for (const n of [0, 1, 7, 8, 63, 1000]) expect(crc32c(rnd.subarray(0, n))).toBe(crc32cBitwise(rnd.subarray(0, n)));
  });
  test('masked value is the rotation plus the TFRecord constant, as an unsigned 32-bit number', () => {
    const b = Buffer.from('tfrecord');
    const c = crc32cBitwise(b);
    expect(maskedCrc32c(b)).toBe((((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0);
  });
});

describe('TensorBoardWriter', () => {
  test('writes file_version first, then scalars and a text summary that decode with TensorBoard protos', () => {
    const dir = tmp();
    let t = 1_700_000_000_000;
    const w = new TensorBoardWriter(dir, { now: () => (t += 10) });
    expect(path.basename(w.file)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.1700000000\\.${os.hostname().replace(/\./g, '\\.')}\\.${process.pid}\\.cxr-train$`));
    w.addText('config', 'lr: 0.001\nbatch: 32', 0);
    w.addScalar('train/loss', 0.6931, 1);
    w.addScalars({ 'train/lr': 1e-4, 'train/gradNorm': 2.5, 'val/auroc/Pleural Effusion': NaN }, 2);
    w.addScalar('train/loss', 0.5, 3_000_000_000);
    w.close();
    w.close();
    const ev = readEventFile(w.file);
    expect(ev[0].file_version).toBe('brain.Event:2');
    expect(ev[0].wall_time).toBeCloseTo(1_700_000_000.02, 3);
    const text = ev[1].summary!.value[0];
    expect(text.tag).toBe('config');
    expect(text.metadata?.plugin_data?.plugin_name).toBe('text');
    expect(text.tensor?.dtype).toBe('DT_STRING');
    expect(text.tensor?.string_val).toEqual(['lr: 0.001\nbatch: 32']);
    const s = scalarsOf(ev);
    expect(s.get('train/loss')).toEqual([[1, Math.fround(0.6931)], [3_000_000_000, 0.5]]);
    expect(s.get('train/lr')).toEqual([[2, Math.fround(1e-4)]]);
    expect(s.get('train/gradNorm')).toEqual([[2, 2.5]]);
    expect(s.has('val/auroc/Pleural Effusion')).toBe(false);
    expect(() => w.addScalar('x', 1, 1)).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });

  test('buffers writes and flushes on a timer, on flush() and on close()', async () => {
    const dir = tmp();
    const w = new TensorBoardWriter(dir, { flushMs: 50 });
    const size0 = fs.statSync(w.file).size;
    w.addScalar('a', 1, 1);
    expect(fs.statSync(w.file).size).toBe(size0);
    await new Promise((r) => setTimeout(r, 150));
    expect(fs.statSync(w.file).size).toBeGreaterThan(size0);
    w.addScalar('a', 2, 2);
    w.flush();
    expect(scalarsOf(readEventFile(w.file)).get('a')).toEqual([[1, 1], [2, 2]]);
    w.close();
  });

  test('a second writer in the same second gets its own file; both are read', () => {
    const dir = tmp();
    const now = () => 1_700_000_000_000;
    const a = new TensorBoardWriter(dir, { now });
    const b = new TensorBoardWriter(dir, { now });
    expect(a.file).not.toBe(b.file);
    a.addScalar('x', 1, 1);
    b.addScalar('x', 2, 2);
    a.close();
    b.close();
    const files = eventFiles(dir);
    expect(files).toHaveLength(2);
    expect(files.flatMap((f) => scalarsOf(readEventFile(f)).get('x')!)).toEqual([[1, 1], [2, 2]]);
  });

  test('a write that fails half-way (disk full) is E_IO, and the next flush completes the file without repeating bytes', () => {
    const w = new TensorBoardWriter(tmp());
    for (let i = 1; i <= 50; i++) w.addScalar('x', i, i);
    const real = fs.writeSync;
    let calls = 0;
    const spy = jest.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buf: Buffer, off: number, len: number) => {
      if (++calls === 1) return real(fd, buf, off, Math.floor(len / 3));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    }) as never);
    try {
      expect(() => w.flush()).toThrow(expect.objectContaining({ code: 'E_IO' }));
    } finally {
      spy.mockRestore();
    }
    w.close();
    expect(scalarsOf(readEventFile(w.file)).get('x')!.map(([s]) => s)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  test('a folder that cannot be created is E_IO', () => {
    const file = path.join(tmp(), 'a-file');
    fs.writeFileSync(file, '');
    expect(() => new TensorBoardWriter(path.join(file, 'tb'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });
});

describe('TensorBoardLog (the trainer events as summaries)', () => {
  test('config text, every number of a step event, validation loss, macro and per-label AUROC', () => {
    const out = tmp();
    const log = new TensorBoardLog(out);
    const config = resolveTrainConfig([{ config: { log: { to: ['jsonl', 'tensorboard'] } } }]);
    log.start(config, 0);
    log.eval({ step: 0, valLoss: 2.1, auroc: { Edema: 0.5, Effusion: null }, macroAuroc: 0.5, skipped: ['Effusion'], n: 10 });
    const relax = { relaxEngaged: 0.25, relaxAlpha: 0.5, posSimMean: 0.3, posSimQ10: 0.2, posSimQ50: 0.3, posSimQ90: 0.4, negSimMean: 0.05 };
    log.step({ step: 1, totalSteps: 10, epoch: 0, loss: 2.0, lr: 1e-3, gradNorm: 1.5, logitScale: 14.3, batch: 8, imagesPerSec: 100, msStep: 5, msData: 1, msComm: 0, ...relax });
    log.close();
    expect(path.dirname(log.file)).toBe(path.join(out, 'tensorboard'));
    const ev = readEventFile(log.file);
    const text = ev[1].summary!.value[0];
    expect(text.tag).toBe('config');
    expect(text.tensor!.string_val![0]).toBe(configToYaml(config).trimEnd().split('\n').map((l) => `    ${l}`).join('\n'));
    const s = scalarsOf(ev);
    expect([...s.keys()].sort()).toEqual(
      ['train/batch', 'train/epoch', 'train/gradNorm', 'train/imagesPerSec', 'train/logitScale', 'train/loss', 'train/lr', 'train/msComm', 'train/msData', 'train/msStep', 'val/auroc/Edema', 'val/loss', 'val/macroAuroc', ...Object.keys(relax).map((k) => `train/${k}`)].sort(),
    );
    // The loss statistics of the step reach TensorBoard like every other number.
    expect(s.get('train/relaxEngaged')).toEqual([[1, Math.fround(0.25)]]);
    expect(s.get('train/logitScale')).toEqual([[1, Math.fround(14.3)]]);
    expect(s.get('val/loss')).toEqual([[0, Math.fround(2.1)]]);
  });
});

describe('config log.to', () => {
  test('defaults to jsonl; a comma list or a YAML list selects tensorboard; unknown sinks are E_CONFIG naming the path', () => {
    expect(DEFAULT_CONFIG.log.to).toEqual(['jsonl']);
    expect(resolveTrainConfig([{ config: { log: { to: 'jsonl, tensorboard' } } }]).log.to).toEqual(['jsonl', 'tensorboard']);
    expect(resolveTrainConfig([{ config: { log: { to: ['tensorboard'] } } }]).log.to).toEqual(['tensorboard']);
    // `log: [jsonl, tensorboard]` is short for log.to (the console format keeps its value).
    const short = resolveTrainConfig([{ config: { log: { format: 'plain' } } }, { config: { log: ['jsonl', 'tensorboard'] } }]);
    expect(short.log).toMatchObject({ format: 'plain', to: ['jsonl', 'tensorboard'] });
    // `--log tensorboard` (where the console format goes) adds the file and keeps the console format.
    const flag = (v: string) => resolveTrainConfig([{ config: overridesToConfig({ 'log.format': v }) }]).log;
    expect(flag('tensorboard')).toEqual({ ...DEFAULT_CONFIG.log, format: 'auto', to: ['jsonl', 'tensorboard'] });
    expect(flag('plain,tensorboard')).toMatchObject({ format: 'plain', to: ['jsonl', 'tensorboard'] });
    expect(flag('plain')).toMatchObject({ format: 'plain', to: ['jsonl'] });
    expect(() => flag('plain,json')).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('log.format') }));
    expect(() => resolveTrainConfig([{ config: { log: { to: ['wandb'] } } }])).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('log.to[0]') }));
  });
});
