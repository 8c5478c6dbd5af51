import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_CONFIG,
  configToYaml,
  defaultRunDir,
  mergeConfig,
  overridesToConfig,
  readConfigFile,
  resolveTrainConfig,
  resumeConflicts,
  validateTrainConfig,
  TRAIN_SCHEMA,
} from '../../../lib/train/config';
import { DEFAULT_SAMPLER_OPTIONS } from '../../../lib/text/sentenceSampler';
import { CxrError } from '../../../lib/errors';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-train-config-'));
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as CxrError).code;
  }
  return undefined;
}

describe('train config', () => {
  test('defaults are valid and describe the embedded default job', () => {
    const c = resolveTrainConfig([]);
    expect(c).toEqual(DEFAULT_CONFIG);
    expect(c.model.name).toBe('test-vit');
    expect(c.data.dataset).toBe('synthetic');
    // The CLIP loss: the relaxation sweep found no form that helps (docs/results.md); relaxed is opt-in.
    expect(c.loss.kind).toBe('clip');
    expect(c.text.mode).toBe('uniform');
  });

  test('every default has a one-line reason in the schema table', () => {
    const entries = Object.entries(TRAIN_SCHEMA);
    expect(entries.length).toBeGreaterThan(40);
    for (const [, spec] of entries) expect(spec.reason).toMatch(/^\S[^\n]*$/);
  });

  test('defaults → file → flags: later layers win, untouched keys keep defaults', () => {
    const dir = tmp();
    const file = path.join(dir, 'run.yaml');
    fs.writeFileSync(file, 'optimizer:\n  lr: 2.0e-4\n  kind: sgd\nloss:\n  kind: clip\nbatchSize: 16\n');
    const c = resolveTrainConfig([
      { config: readConfigFile(file), source: file },
      { config: overridesToConfig({ 'optimizer.lr': '5e-5', 'data.augment': 'null', maxSteps: '7', 'freeze.image': 'true' }), source: 'flags' },
    ]);
    expect(c.optimizer.lr).toBe(5e-5);
    expect(c.optimizer.kind).toBe('sgd');
    expect(c.optimizer.weightDecay).toBe(DEFAULT_CONFIG.optimizer.weightDecay);
    expect(c.loss.kind).toBe('clip');
    expect(c.batchSize).toBe(16);
    expect(c.maxSteps).toBe(7);
    expect(c.data.augment).toBeNull();
    expect(c.freeze.image).toBe(true);
    expect(c.freeze.text).toBe(false);
  });

  test('JSON config files work too', () => {
    const file = path.join(tmp(), 'run.json');
    fs.writeFileSync(file, JSON.stringify({ text: { mode: 'k', k: 2 }, seed: 3 }));
    const c = resolveTrainConfig([{ config: readConfigFile(file), source: file }]);
    expect(c.text).toMatchObject({ mode: 'k', k: 2 });
    expect(c.seed).toBe(3);
  });

  test('unknown keys are named, at any depth', () => {
    expect(() => mergeConfig(DEFAULT_CONFIG, { optimiser: {} }, 'run.yaml')).toThrow(/unknown key "optimiser"/);
    expect(() => mergeConfig(DEFAULT_CONFIG, { optimizer: { lrr: 1 } }, 'run.yaml')).toThrow(/run\.yaml: unknown key "optimizer\.lrr"/);
    expect(codeOf(() => mergeConfig(DEFAULT_CONFIG, { data: { synthetic: { nn: 1 } } }))).toBe('E_CONFIG');
    // Free-form sections accept their own keys; augment keys are still checked by validation.
    expect(mergeConfig(DEFAULT_CONFIG, { data: { options: { views: ['PA'] } } }).data.options).toEqual({ views: ['PA'] });
    expect(() => resolveTrainConfig([{ config: { data: { augment: { rotate: 3 } } } }])).toThrow(/data\.augment\.rotate/);
  });

  test('validation names the field and the expectation', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ loss: { alpha: 0 } }, /"loss\.alpha" must be a number in \(0, 1\]/],
      [{ loss: { kind: 'siglip' } }, /"loss\.kind" must be one of/],
      [{ batchSize: 0 }, /"batchSize" must be an integer >= 1/],
      [{ batchSize: 1, accumSteps: 1 }, /at least 2/],
      [{ maxSteps: null, epochs: null }, /"maxSteps" or "epochs" must be set/],
      [{ text: { mode: 'k', k: null } }, /"text\.k"/],
      [{ freeze: { image: true, text: true } }, /nothing left to train/],
      [{ freeze: { image: 0 } }, /"freeze\.image"/],
      [{ device: 'gpu' }, /"device"/],
      [{ device: 'cpu', precision: 'bf16' }, /bf16 is a CUDA option/],
      [{ data: { dataset: 'mimic-cxr' } }, /"data\.root" is required/],
      [{ data: { valSplit: 'train' } }, /must differ/],
      [{ checkpoint: { keepBestBy: 'auc' } }, /keepBestBy/],
      [{ optimizer: { betas: [0.9] } }, /betas/],
      [{ model: { logitScale: 0 } }, /model\.logitScale/],
      [{ model: { logitScale: 150 } }, /model\.logitScale/],
      [{ loss: { kind: 'relaxed', alpha: { quantile: 0.5, freezeAfter: 0 } } }, /freezeAfter/],
      [{ loss: { kind: 'relaxed', alpha: { quantile: 0.5, momentum: 1.2 } } }, /momentum/],
      // A relaxation setting with the CLIP loss would be ignored: refused, naming the fix.
      [{ loss: { alpha: 0.5 } }, /loss\.kind is "clip".*--loss relaxed/],
      [{ loss: { kind: 'clip', variant: 'margin' } }, /loss\.variant/],
    ];
    for (const [over, re] of bad) {
      let err: unknown;
      try {
        resolveTrainConfig([{ config: over }]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CxrError);
      expect((err as CxrError).code).toBe('E_CONFIG');
      expect((err as Error).message).toMatch(re);
    }
  });

  test('a non-mapping where a section is expected is an error, not a silent replace', () => {
    expect(() => mergeConfig(DEFAULT_CONFIG, { optimizer: 3 })).toThrow(/"optimizer" must be a mapping/);
    expect(() => mergeConfig(DEFAULT_CONFIG, [1, 2])).toThrow(/must be an object/);
  });

  test('malformed files: E_PARSE; missing files: E_IO', () => {
    const dir = tmp();
    const y = path.join(dir, 'bad.yaml');
    fs.writeFileSync(y, 'optimizer: [unclosed\n');
    expect(codeOf(() => readConfigFile(y))).toBe('E_PARSE');
    const j = path.join(dir, 'bad.json');
    fs.writeFileSync(j, '{ "a": ');
    expect(codeOf(() => readConfigFile(j))).toBe('E_PARSE');
    expect(codeOf(() => readConfigFile(path.join(dir, 'none.yaml')))).toBe('E_IO');
  });

  test('flag values parse like YAML scalars', () => {
    const o = overridesToConfig({ a: '1e-4', 'b.c': 'true', 'b.d': 'null', e: '[0.8, 1]', f: 'impression', g: 'findings+impression' }) as Record<string, unknown>;
    expect(o).toEqual({ a: 1e-4, b: { c: true, d: null }, e: [0.8, 1], f: 'impression', g: 'findings+impression' });
  });

  test('the printed YAML round-trips to the same config', () => {
    const c = resolveTrainConfig([{ config: { loss: { kind: 'relaxed', alpha: 0.7 }, outDir: '/tmp/x' } }]);
    // The default config printed and read back (every loss key present, kind clip) is accepted as well.
    const d = path.join(tmp(), 'd.yaml');
    fs.writeFileSync(d, configToYaml(resolveTrainConfig([])));
    expect(resolveTrainConfig([{ config: readConfigFile(d) }])).toEqual(DEFAULT_CONFIG);
    const file = path.join(tmp(), 'c.yaml');
    fs.writeFileSync(file, configToYaml(c));
    expect(resolveTrainConfig([{ config: readConfigFile(file) }])).toEqual(c);
  });

  test('resume conflicts list the locked fields that changed, and only those', () => {
    const a = resolveTrainConfig([]);
    const b = resolveTrainConfig([{ config: { maxSteps: 900, eval: { everySteps: 7 }, threads: 1, outDir: '/x' } }]);
    expect(resumeConflicts(a, b)).toEqual([]);
    const c = resolveTrainConfig([{ config: { optimizer: { lr: 1 }, batchSize: 8, text: { mode: 'full' } } }]);
    expect(resumeConflicts(a, c)).toEqual(['text', 'optimizer', 'batchSize']);
  });

  test('default run folders are dated and distinct per second', () => {
    expect(defaultRunDir(new Date(2024, 0, 2, 3, 4, 5))).toBe(path.join('runs', '20240102-030405'));
  });

  test('validateTrainConfig accepts the defaults unchanged', () => {
    expect(validateTrainConfig(JSON.parse(JSON.stringify(DEFAULT_CONFIG)))).toEqual(DEFAULT_CONFIG);
  });
});

describe('text cleaning options (the ones `cxr-train report` audits)', () => {
  it('are training options with the sampler defaults, settable from files and flags', () => {
    for (const k of ['dropComparisonOnly', 'dropDuplicates', 'semicolons', 'sectionFallback', 'removePlaceholders'] as const) {
      expect(DEFAULT_CONFIG.text[k]).toBe(DEFAULT_SAMPLER_OPTIONS[k]);
    }
    const c = resolveTrainConfig([{ config: overridesToConfig({ 'text.dropDuplicates': 'true', 'text.semicolons': 'true' }), source: 'flags' }]);
    expect(c.text.dropDuplicates).toBe(true);
    expect(c.text.semicolons).toBe(true);
    expect(c.text.dropComparisonOnly).toBe(false);
  });

  it('are validated with their path', () => {
    expect(() => resolveTrainConfig([{ config: { text: { dropComparisonOnly: 'yes' } } }])).toThrow(/"text\.dropComparisonOnly" must be true or false/);
  });

  it('do not block resuming a checkpoint written before they existed', () => {
    const now = resolveTrainConfig([]);
    const old = JSON.parse(JSON.stringify(now));
    delete old.text.dropDuplicates;
    delete old.text.semicolons;
    expect(resumeConflicts(old, now)).toEqual([]);
    expect(resumeConflicts(old, resolveTrainConfig([{ config: { text: { semicolons: true } } }]))).toEqual(['text']);
  });
});
