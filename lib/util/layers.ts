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

/** True when `o` has `k` as its own key; never an inherited name such as `constructor` or `__proto__`. */
export function hasOwnKey(o: object, k: string): boolean {
  return Object.hasOwn(o, k);
}

/** Sets `o[k]` as an own data property (so a `__proto__` key is a key, never the prototype). */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function mergeLoose(a: unknown, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = isPlainObject(a) ? { ...a } : {};
  for (const [k, v] of Object.entries(b)) {
    const cur = hasOwnKey(out, k) ? out[k] : undefined;
    setOwn(out, k, isPlainObject(v) && isPlainObject(cur) ? mergeLoose(cur, v) : cloneJson(v));
  }
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
      // Own keys only: `constructor`, `toString`, `__proto__` ... are inherited by every object, not options.
      if (!hasOwnKey(dst, k)) {
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

/**
 * Most values a YAML document may expand to (aliases counted once per use). A config or prompt file has
 * hundreds; an alias bomb (each level a list of the previous one, several times) has billions, and
 * expanding it (a deep copy, JSON) would take seconds and gigabytes.
 */
export const MAX_YAML_VALUES = 1_000_000;

/**
 * Counts the values `root` expands to when every shared reference is copied out, converting each object
 * once (memoised), so the count itself is linear in the parsed document. Throws E_PARSE past `limit` or on a
 * cycle (a recursive alias), which no config can hold.
 */
export function checkExpandedSize(root: unknown, what: string, limit = MAX_YAML_VALUES): number {
  const sizes = new Map<object, number>();
  const open = new Set<object>();
  const refuse = (msg: string): never => {
    throw new CxrError('E_PARSE', `${what}: ${msg}`);
  };
  const size = (v: unknown): number => {
    if (typeof v !== 'object' || v === null) return 1;
    const known = sizes.get(v);
    if (known !== undefined) return known;
    if (open.has(v)) refuse('a YAML alias refers to itself (a cycle); configs must be trees');
    open.add(v);
    let n = 1;
    for (const c of Array.isArray(v) ? v : Object.values(v)) {
      n += size(c);
      if (n > limit) refuse(`expands to more than ${limit} values (YAML aliases nested inside each other?); refused`);
    }
    open.delete(v);
    sizes.set(v, n);
    return n;
  };
  return size(root);
}

/** Parses YAML text as data, refusing documents that expand past {@link MAX_YAML_VALUES} (E_PARSE). */
export function loadYamlData(text: string, what: string): unknown {
  let v: unknown;
  try {
    v = yaml.load(text);
  } catch (e) {
    throw new CxrError('E_PARSE', `${what}: ${(e as Error).message.split('\n')[0]}`, undefined, { cause: e });
  }
  checkExpandedSize(v, what);
  return v;
}

/** Reads a config file: YAML (.yaml/.yml) or JSON; E_IO when unreadable, E_PARSE when malformed; empty → `{}`. */
export function readLayerFile(file: string, what = 'config'): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { path: file });
  }
  if (/\.ya?ml$/i.test(file)) {
    try {
      return loadYamlData(text, `${what} ${file}`) ?? {};
    } catch (e) {
      throw new CxrError('E_PARSE', (e as Error).message, { path: file });
    }
  }
  try {
    return JSON.parse(text) ?? {};
  } catch (e) {
    throw new CxrError('E_PARSE', `${what} ${file}: ${(e as Error).message.split('\n')[0]}`, { path: file });
  }
}
