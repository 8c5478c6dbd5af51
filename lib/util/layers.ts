/**
 * Config layering, the one way: a complete base merged key by key with partial layers (defaults → file →
 * flags), unknown keys rejected with their full dotted path so that a typo never silently falls back to a
 * default. The training config and the ablation config both resolve through {@link mergeLayer}.
 */
import fs from 'node:fs';
import yaml from 'js-yaml';
import { CxrError } from '../errors';

/** True for a plain object (not an array, not null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON-safe deep copy. */
export function cloneJson<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** How {@link mergeLayer} treats particular dotted keys. */
export interface MergeRules {
  /** Free-form objects: replaced whole, never merged key by key nor checked for unknown keys. */
  opaque?: ReadonlySet<string>;
  /** Objects merged deeply without checking keys (validated elsewhere, e.g. by another config's resolver). */
  loose?: ReadonlySet<string>;
}

function mergeLoose(a: unknown, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = isPlainObject(a) ? { ...a } : {};
  for (const [k, v] of Object.entries(b)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeLoose(out[k], v) : cloneJson(v);
  return out;
}

/**
 * Merges the partial `layer` into a copy of `base`. E_CONFIG names the source and the full key of an
 * unknown key, or of a value that should be a mapping and is not.
 */
export function mergeLayer<T>(base: T, layer: unknown, source: string, rules: MergeRules = {}): T {
  if (layer === undefined || layer === null) return cloneJson(base);
  if (!isPlainObject(layer)) throw new CxrError('E_CONFIG', `${source}: the config must be an object (key: value mapping)`);
  const walk = (dst: Record<string, unknown>, src: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(src)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (!(k in dst)) {
        throw new CxrError('E_CONFIG', `${source}: unknown key "${key}" (known at this level: ${Object.keys(dst).join(', ')})`, { key });
      }
      if (v === undefined) continue;
      const cur = dst[k];
      if (rules.loose?.has(key)) {
        if (!isPlainObject(v)) throw new CxrError('E_CONFIG', `${source}: "${key}" must be a mapping`, { key });
        dst[k] = mergeLoose(cur, v);
      } else if (isPlainObject(cur) && !rules.opaque?.has(key)) {
        if (!isPlainObject(v)) throw new CxrError('E_CONFIG', `${source}: "${key}" must be a mapping of ${Object.keys(cur).join(', ')}`, { key });
        walk(cur, v, key);
      } else dst[k] = cloneJson(v);
    }
  };
  const out = cloneJson(base) as unknown as Record<string, unknown>;
  walk(out, layer, '');
  return out as unknown as T;
}

/** Reads a config file: YAML (.yaml/.yml) or JSON; E_IO when unreadable, E_PARSE when malformed; empty → `{}`. */
export function readLayerFile(file: string, what = 'config'): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { path: file });
  }
  try {
    return (/\.ya?ml$/i.test(file) ? yaml.load(text) : JSON.parse(text)) ?? {};
  } catch (e) {
    throw new CxrError('E_PARSE', `${what} ${file}: ${(e as Error).message.split('\n')[0]}`, { path: file });
  }
}
