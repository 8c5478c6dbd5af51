import { CxrError } from '../../../lib/errors';
import { DEFAULT_CONFIG, validateTrainConfig, type TrainConfig } from '../../../lib/train/config';
import { OPAQUE_PATHS, TRAIN_SCHEMA, getPath, schemaDefaults, schemaEntries, schemaFlags } from '../../../lib/train/schema';
import { OPTIMIZER_DEFAULTS } from '../../../lib/models/defaults';
import { DEFAULT_SAMPLER_OPTIONS } from '../../../lib/text/sentenceSampler';
import { command as trainCommand } from '../../../lib/cli/commands/train';
import yargs from 'yargs';

function configError(f: () => unknown): CxrError {
  try {
    f();
  } catch (e) {
    return e as CxrError;
  }
  throw new Error('expected an error');
}

describe('training config schema', () => {
  test('every entry has a one-line reason and a description', () => {
    for (const [path, spec] of schemaEntries()) {
      expect(`${path}: ${spec.reason}`).toMatch(/^\S+: \S[^\n]*$/);
      expect(spec.describe.length).toBeGreaterThan(3);
    }
  });

  test('the defaults are the table, nested, and they validate', () => {
    const d = schemaDefaults();
    expect(d).toEqual(DEFAULT_CONFIG);
    for (const [path, spec] of schemaEntries()) expect(getPath(d, path)).toEqual(spec.default);
    expect(() => validateTrainConfig(schemaDefaults() as TrainConfig)).not.toThrow();
    expect(OPAQUE_PATHS).toEqual(new Set(['data.options', 'data.augment']));
  });

  test('shared defaults come from their one place', () => {
    expect(DEFAULT_CONFIG.optimizer.lr).toBe(OPTIMIZER_DEFAULTS.lr);
    expect(DEFAULT_CONFIG.optimizer.weightDecay).toBe(OPTIMIZER_DEFAULTS.weightDecay);
    expect(DEFAULT_CONFIG.optimizer.betas).toEqual(OPTIMIZER_DEFAULTS.betas);
    expect(DEFAULT_CONFIG.text.mode).toBe(DEFAULT_SAMPLER_OPTIONS.mode);
    expect(DEFAULT_CONFIG.text.fallbackText).toBe(DEFAULT_SAMPLER_OPTIONS.fallbackText);
  });

  test.each([
    ['optimizer.lr', -1],
    ['loss.kind', 'siglip'],
    ['data.synthetic.n', 3],
    ['text.dropDuplicates', 'yes'],
    ['checkpoint.keepBestBy', 'auroc'],
    ['distributed.bucketMb', 0],
    ['device', 'tpu'],
  ])('a bad %s names its path (E_CONFIG)', (path, value) => {
    const c = schemaDefaults() as unknown as Record<string, Record<string, unknown>>;
    const parts = path.split('.');
    let node: Record<string, unknown> = c;
    for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
    node[parts[parts.length - 1]] = value;
    const e = configError(() => validateTrainConfig(c as unknown as TrainConfig));
    expect(e.code).toBe('E_CONFIG');
    expect(e.message).toContain(`"${path}"`);
  });

  test('a bad element names its sub-path', () => {
    const c = schemaDefaults() as TrainConfig;
    c.optimizer.betas = [0.9, 2];
    expect(configError(() => validateTrainConfig(c)).message).toContain('"optimizer.betas[1]"');
    const d = schemaDefaults() as TrainConfig;
    (d.data.augment as Record<string, unknown>).flip = true;
    expect(configError(() => validateTrainConfig(d)).message).toContain('"data.augment.flip"');
  });

  test('the train command builds its config flags from the table', () => {
    const flags = schemaFlags();
    const names = flags.map((f) => f.flag);
    expect(new Set(names).size).toBe(names.length);
    for (const f of ['out', 'model', 'steps', 'lr', 'loss', 'alpha', 'text-mode', 'drop-comparison', 'backend', 'eval-every']) expect(names).toContain(f);
    expect(flags.find((f) => f.flag === 'lr')?.path).toBe('optimizer.lr');
    expect(flags.find((f) => f.flag === 'steps')?.path).toBe('maxSteps');
    for (const f of flags) expect(TRAIN_SCHEMA[f.path].flag).toBe(f.flag);
    const y = yargs([]);
    (trainCommand.builder as (y: unknown) => unknown)(y);
    const keys = Object.keys((y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key);
    for (const f of names) expect(keys).toContain(f);
  });
});
