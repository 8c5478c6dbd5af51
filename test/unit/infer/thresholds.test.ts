/**
 * Thresholds JSON (fitted on validation, read by predict/serve), the temperature option and the
 * prompt/dataset label alignment shared by the trainer and `eval`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fitThresholds, readThresholds, writeThresholds, THRESHOLDS_FORMAT } from '../../../lib/eval/thresholds';
import type { ThresholdsFile } from '../../../lib/eval/thresholds';
import { selectThreshold } from '../../../lib/eval/metrics';
import { alignPromptLabels, parseTemperature } from '../../../lib/eval/modelEncoder';
import { loadPromptSet } from '../../../lib/text/prompts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-thr-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('fitThresholds', () => {
  test('per label, the threshold selectThreshold picks on that column; one-class labels skipped with a reason', () => {
    // 6 rows × 3 labels; label C has only negatives (plus an uncertain and a missing row, masked).
    const y = [1, 0, 0, 0, 1, 0, 1, 1, -1, 0, 0, 0, 1, 0, 0, 0, 1, NaN];
    const p = [0.9, 0.2, 0.1, 0.3, 0.8, 0.5, 0.6, 0.7, 0.4, 0.2, 0.1, 0.3, 0.4, 0.9, 0.6, 0.1, 0.35, 0.2];
    const r = fitThresholds(['A', 'B', 'C'], Float64Array.from(y), p, 'mcc');
    for (const [j, l] of ['A', 'B'].entries()) {
      const col = (a: number[]) => Float64Array.from({ length: 6 }, (_, i) => a[i * 3 + j]);
      expect(r.labels[l]).toBe(selectThreshold(col(y), col(p), 'mcc')!.threshold);
    }
    expect(r.labels.C).toBeUndefined();
    expect(r.skipped).toEqual([{ label: 'C', reason: expect.stringMatching(/one class in the validation split \(0 positive, 4 negative\)/) }]);
  });

  test('mismatched shapes are E_SHAPE', () => {
    expect(() => fitThresholds(['A', 'B'], new Float64Array(4), new Float32Array(6))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});

describe('thresholds file', () => {
  test('round trip; wrong format, bad JSON and non-numeric thresholds are E_PARSE; a missing file is E_IO', () => {
    const f = path.join(tmp, 't.json');
    const t: ThresholdsFile = { format: THRESHOLDS_FORMAT, version: 1, criterion: 'mcc', split: 'validate', checkpointHashes: ['h'], prompts: { name: 'p', hash: 'x' }, temperature: 1, labels: { Edema: 0.42 } };
    writeThresholds(f, t);
    expect(readThresholds(f)).toEqual(t);
    fs.writeFileSync(f, JSON.stringify({ labels: { Edema: 0.4 } }));
    expect(() => readThresholds(f)).toThrow(expect.objectContaining({ code: 'E_PARSE', message: expect.stringMatching(/not a cxr-train thresholds file/) }));
    fs.writeFileSync(f, '{');
    expect(() => readThresholds(f)).toThrow(expect.objectContaining({ code: 'E_PARSE' }));
    fs.writeFileSync(f, JSON.stringify({ ...t, labels: { Edema: 'high' } }));
    expect(() => readThresholds(f)).toThrow(expect.objectContaining({ code: 'E_PARSE', message: expect.stringMatching(/Edema/) }));
    expect(() => readThresholds(path.join(tmp, 'none.json'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });
});

describe('parseTemperature', () => {
  test('logit-scale, positive numbers, nothing; anything else is E_CONFIG', () => {
    expect(parseTemperature('logit-scale')).toBe('logit-scale');
    expect(parseTemperature('50')).toBe(50);
    expect(parseTemperature(undefined)).toBeUndefined();
    for (const bad of ['0', '-1', 'hot', 'NaN']) expect(() => parseTemperature(bad)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('alignPromptLabels', () => {
  test('ChestX-ray14 names meet the chexzero prompts through the label map; labels without prompts are listed', () => {
    const ps = loadPromptSet('chexzero');
    const a = alignPromptLabels(ps, 'chestx-ray14', ['Effusion', 'Cardiomegaly', 'Emphysema', 'Pneumothorax']);
    expect(a.used.map((l) => l.label)).toEqual(['Cardiomegaly', 'Pleural Effusion', 'Pneumothorax']);
    expect(a.datasetName.get('Pleural Effusion')).toBe('Effusion');
    expect(a.unmatched).toEqual(['Emphysema']);
  });

  test('a dataset sharing no label is E_CONFIG naming its labels', () => {
    expect(() => alignPromptLabels(loadPromptSet('chexzero'), 'synthetic', ['Foo', 'Bar'])).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringMatching(/Foo, Bar/) }));
  });
});
