import fs from 'node:fs';
import path from 'node:path';
import { FLAT_CONFIG_DIR, FLAT_CONFIG_MODELS, flatModelConfig, flatRegistryConfigs } from '../../lib/models/flatConfig';
import { resolveModelConfig } from '../../lib/models/registry';

// The flat model configs that native/bench/step_bench reads on machines without Node are generated from
// the registry (scripts/bench-model-configs.js); the committed copies must be what the registry gives now.
const dir = path.join(__dirname, '..', '..', FLAT_CONFIG_DIR);

function parse(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

describe('flat model configs for native tools', () => {
  const generated = flatRegistryConfigs();

  test.each(Object.keys(generated))('committed %s equals the regenerated file', (file) => {
    const p = path.join(dir, file);
    expect(fs.existsSync(p)).toBe(true);
    expect(fs.readFileSync(p, 'utf8')).toBe(generated[file]);
  });

  test('the folder holds only generated files', () => {
    const cfgs = fs.readdirSync(dir).filter((f) => f.endsWith('.cfg')).sort();
    expect(cfgs).toEqual(Object.keys(generated).sort());
  });

  test('every value round-trips to the completed registry config', () => {
    for (const [name, file] of Object.entries(FLAT_CONFIG_MODELS)) {
      const cfg = resolveModelConfig(name);
      const flat = parse(generated[file]);
      expect(Number(flat.get('embedDim'))).toBe(cfg.embedDim);
      expect(Number(flat.get('logitScaleInit'))).toBe(cfg.logitScaleInit);
      for (const tower of ['vision', 'text'] as const) {
        const o = cfg[tower] as unknown as Record<string, unknown>;
        for (const [k, v] of Object.entries(o)) {
          const s = flat.get(`${tower}.${k}`);
          expect(s).toBeDefined();
          if (Array.isArray(v)) expect(s!.split(',').map(Number)).toEqual(v);
          else if (typeof v === 'number') expect(Number(s)).toBe(v);
          else expect(s).toBe(String(v));
        }
      }
      // Nothing beyond the native fields (name and tokenizer are not architecture).
      expect(flat.size).toBe(2 + Object.keys(cfg.vision).length + Object.keys(cfg.text).length);
    }
  });

  test('a value the flat format cannot hold is refused', () => {
    const cfg = resolveModelConfig('test-vit');
    expect(() => flatModelConfig({ ...cfg, text: { ...cfg.text, pooling: 'a b' as 'cls' } })).toThrow(/cannot hold/);
  });
});
