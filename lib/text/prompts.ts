/**
 * Zero-shot prompt sets and dataset label maps. Both are data (JSON beside this file, or a user's
 * JSON/YAML file): a prompt set names, per pathology, positive and negative prompts; a label map
 * turns a dataset's label names into canonical ones so prompts and metrics line up across datasets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError, isCxrError } from '../errors';
import { loadYamlData } from '../util/layers';
import chexzeroJson from './prompts/chexzero.json';
import chexpertSynonymsJson from './prompts/chexpert-synonyms.json';
import chestxray14Json from './prompts/chestxray14.json';
import labelMapsJson from './prompts/labelmaps.json';

/** Prompts of one label, resolved (templates expanded, case applied). */
export interface LabelPrompts {
  /** Canonical label name, e.g. "Pleural Effusion". */
  label: string;
  /** Prompts meaning the finding is present (at least one). */
  positive: string[];
  /** Prompts meaning the finding is absent (at least one). */
  negative: string[];
}

/** A resolved prompt set. */
export interface PromptSet {
  /** Set name ("chexzero", or the file's `name`, or the file's base name). */
  name: string;
  /** One entry per label, in file order. */
  labels: LabelPrompts[];
}

/**
 * The file format of a prompt set (JSON, or YAML with a .yaml/.yml extension):
 * ```json
 * { "name": "mine", "templates": { "positive": ["{label}"], "negative": ["no {label}"] }, "lowercase": true,
 *   "labels": [ { "label": "Pleural Effusion", "synonyms": ["effusion"] },
 *               { "label": "No Finding", "positive": ["no acute cardiopulmonary process"], "negative": ["acute cardiopulmonary process"] } ] }
 * ```
 * A label's prompts are its own `positive`/`negative` lists when given, else every template applied to
 * the label and each synonym. `{label}` is the only placeholder.
 */
export interface PromptSetFile {
  /** Set name. Optional in a user file (defaults to the file's base name). */
  name?: string;
  /** Free text. */
  description?: string;
  /** Templates with "{label}", used for labels without their own lists. */
  templates?: { positive?: string[]; negative?: string[] };
  /** Lower-case every prompt (CheXzero does). Default false. */
  lowercase?: boolean;
  /** The labels, at least one. */
  labels: Array<{ label: string; synonyms?: string[]; positive?: string[]; negative?: string[] }>;
}

const BUILTIN: Record<string, unknown> = {
  chexzero: chexzeroJson,
  'chexpert-synonyms': chexpertSynonymsJson,
  chestxray14: chestxray14Json,
};

/** Names of the built-in prompt sets. */
export function listPromptSets(): string[] {
  return Object.keys(BUILTIN);
}

/** The default prompt set's name (CheXzero's protocol, METHOD.md §4). */
export const DEFAULT_PROMPT_SET = 'chexzero';

function fail(source: string, field: string, msg: string): never {
  throw new CxrError('E_CONFIG', `prompt set ${source}: ${field} ${msg}`, { source, field });
}

function stringList(source: string, field: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0) fail(source, field, 'must be a non-empty array of strings');
  return v.map((s, i) => {
    if (typeof s !== 'string' || s.trim().length === 0) fail(source, `${field}[${i}]`, `must be a non-empty string, got ${JSON.stringify(s)}`);
    return s.trim();
  });
}

/** Checks that a template has "{label}" and no other `{...}` placeholder. */
function checkTemplate(source: string, field: string, t: string): void {
  const holes: string[] = t.match(/\{[^}]*\}/g) ?? [];
  if (!holes.includes('{label}')) fail(source, field, `must contain "{label}", got ${JSON.stringify(t)}`);
  for (const h of holes) if (h !== '{label}') fail(source, field, `has unknown placeholder ${h} (only {label} is allowed)`);
}

function checkNoPlaceholder(source: string, field: string, p: string): void {
  if (/[{}]/.test(p)) fail(source, field, `is a literal prompt and may not contain { or }, got ${JSON.stringify(p)}`);
}

const TOP_KEYS = new Set(['name', 'description', 'templates', 'lowercase', 'labels', '$schema']);
const LABEL_KEYS = new Set(['label', 'synonyms', 'positive', 'negative', 'description']);

/**
 * Validates a prompt-set object (as read from a file) and resolves it. Errors name the bad field,
 * e.g. `prompt set my.json: labels[2].negative[0] must be a non-empty string`.
 *
 * @param obj the parsed file content
 * @param source a name for messages (a file path or a set name)
 * @throws CxrError E_CONFIG for any invalid or unknown field, a duplicate label, or a template without "{label}"
 */
export function promptSetFromObject(obj: unknown, source: string): PromptSet {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail(source, 'the file', 'must hold an object with a "labels" array');
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.has(k)) fail(source, `"${k}"`, `is not a known field (allowed: ${[...TOP_KEYS].join(', ')})`);
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.trim() === '')) fail(source, 'name', 'must be a non-empty string');
  if (o.description !== undefined && typeof o.description !== 'string') fail(source, 'description', 'must be a string');
  if (o.lowercase !== undefined && typeof o.lowercase !== 'boolean') fail(source, 'lowercase', 'must be true or false');
  const lower = o.lowercase === true;
  let tPos: string[] | undefined;
  let tNeg: string[] | undefined;
  if (o.templates !== undefined) {
    if (typeof o.templates !== 'object' || o.templates === null || Array.isArray(o.templates)) fail(source, 'templates', 'must be an object with "positive" and/or "negative" arrays');
    const t = o.templates as Record<string, unknown>;
    for (const k of Object.keys(t)) if (k !== 'positive' && k !== 'negative') fail(source, `templates.${k}`, 'is not a known field (allowed: positive, negative)');
    if (t.positive !== undefined) {
      tPos = stringList(source, 'templates.positive', t.positive);
      tPos.forEach((x, i) => checkTemplate(source, `templates.positive[${i}]`, x));
    }
    if (t.negative !== undefined) {
      tNeg = stringList(source, 'templates.negative', t.negative);
      tNeg.forEach((x, i) => checkTemplate(source, `templates.negative[${i}]`, x));
    }
  }
  if (!Array.isArray(o.labels) || o.labels.length === 0) fail(source, 'labels', 'must be a non-empty array');
  const seen = new Map<string, number>();
  const labels: LabelPrompts[] = [];
  const fmt = (s: string) => (lower ? s.toLowerCase() : s);
  (o.labels as unknown[]).forEach((entry, i) => {
    const at = `labels[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(source, at, 'must be an object with a "label" string');
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!LABEL_KEYS.has(k)) fail(source, `${at}.${k}`, `is not a known field (allowed: ${[...LABEL_KEYS].join(', ')})`);
    if (typeof e.label !== 'string' || e.label.trim() === '') fail(source, `${at}.label`, 'must be a non-empty string');
    const label = e.label.trim();
    const key = label.toLowerCase();
    if (seen.has(key)) fail(source, `${at}.label`, `repeats "${label}" (first at labels[${seen.get(key)}])`);
    seen.set(key, i);
    const names = [label, ...(e.synonyms === undefined ? [] : stringList(source, `${at}.synonyms`, e.synonyms))];
    const side = (which: 'positive' | 'negative', templates: string[] | undefined): string[] => {
      if (e[which] !== undefined) {
        const list = stringList(source, `${at}.${which}`, e[which]);
        list.forEach((p, j) => checkNoPlaceholder(source, `${at}.${which}[${j}]`, p));
        return list.map(fmt);
      }
      if (!templates) fail(source, `${at}.${which}`, `is missing and there is no templates.${which} to build it from`);
      const out: string[] = [];
      for (const t of templates) for (const nm of names) out.push(fmt(t.split('{label}').join(nm)));
      return [...new Set(out)];
    };
    const positive = side('positive', tPos);
    const negative = side('negative', tNeg);
    const clash = positive.find((p) => negative.includes(p));
    if (clash !== undefined) fail(source, at, `has "${clash}" as both a positive and a negative prompt`);
    labels.push({ label, positive, negative });
  });
  const name = typeof o.name === 'string' ? o.name.trim() : path.basename(source).replace(/\.(json|ya?ml)$/i, '');
  return { name, labels };
}

/**
 * Loads a prompt set: a built-in name (default 'chexzero'; see {@link listPromptSets}) or the path of
 * a JSON or YAML file in the {@link PromptSetFile} format.
 *
 * @throws CxrError E_CONFIG for an unknown name, an unreadable or invalid file (the message names the field)
 */
export function loadPromptSet(nameOrPath: string = DEFAULT_PROMPT_SET): PromptSet {
  if (Object.prototype.hasOwnProperty.call(BUILTIN, nameOrPath)) return promptSetFromObject(BUILTIN[nameOrPath], nameOrPath);
  let raw: string;
  try {
    raw = fs.readFileSync(nameOrPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CxrError('E_CONFIG', `unknown prompt set "${nameOrPath}": not a built-in set (${listPromptSets().join(', ')}) and no such file`);
    }
    throw new CxrError('E_CONFIG', `cannot read prompt set file ${nameOrPath}: ${(e as Error).message}`, undefined, { cause: e });
  }
  let obj: unknown;
  try {
    obj = /\.ya?ml$/i.test(nameOrPath) ? loadYamlData(raw, `prompt set ${nameOrPath}`) : JSON.parse(raw);
  } catch (e) {
    if (isCxrError(e)) throw e;
    throw new CxrError('E_CONFIG', `prompt set ${nameOrPath} is not valid ${/\.ya?ml$/i.test(nameOrPath) ? 'YAML' : 'JSON'}: ${(e as Error).message}`, undefined, { cause: e });
  }
  return promptSetFromObject(obj, nameOrPath);
}

/**
 * The prompts of one label of a set (label compared case-insensitively, after {@link canonicalLabel}
 * style spacing: "pleural_effusion" finds "Pleural Effusion").
 *
 * @throws CxrError E_CONFIG when the set has no such label
 */
export function promptsFor(set: PromptSet, label: string): LabelPrompts {
  const key = labelKey(label);
  const hit = set.labels.find((l) => labelKey(l.label) === key);
  if (!hit) throw new CxrError('E_CONFIG', `prompt set ${set.name} has no label "${label}" (it has: ${set.labels.map((l) => l.label).join(', ')})`);
  return hit;
}

// ---------------------------------------------------------------------------------------------
// Label maps

/** Lower case, "_" and "-" and runs of spaces as one space, trimmed. */
function labelKey(name: string): string {
  return name.toLowerCase().replace(/[_\s-]+/g, ' ').trim();
}
/** Dataset key: lower case letters and digits only ("ChestX-ray14" → "chestxray14"). */
function datasetKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

interface LabelMapsFile {
  aliases: Record<string, string>;
  maps: Record<string, Record<string, string>>;
}
const LABEL_MAPS: Map<string, Map<string, string>> = (() => {
  const file = labelMapsJson as LabelMapsFile;
  const out = new Map<string, Map<string, string>>();
  for (const [ds, m] of Object.entries(file.maps)) out.set(ds, new Map(Object.entries(m).map(([k, v]) => [labelKey(k), v])));
  return out;
})();
const DATASET_ALIASES: Map<string, string> = new Map(Object.entries((labelMapsJson as LabelMapsFile).aliases));

/** Dataset names {@link canonicalLabel} knows (aliases such as "mimic", "nih", "vindr-cxr" also work). */
export function labelMapDatasets(): string[] {
  return [...LABEL_MAPS.keys()];
}

/**
 * Canonical name of a dataset's label: ChestX-ray14 "Effusion" → "Pleural Effusion",
 * "Pleural_Thickening" → "Pleural Thickening"; PadChest "normal" → "No Finding"; VinDr "Pulmonary
 * fibrosis" → "Fibrosis"; CheXpert/MIMIC names map to themselves. Names compare case-insensitively with
 * "_" and "-" read as spaces. A name the map does not list is returned with "_" turned into spaces and
 * trimmed (so a dataset's extra labels still get a usable name), unless `strict` is set.
 *
 * @param dataset chexpert, mimic, chestxray14 (cxr14, nih), padchest, vindr (vindr-cxr); case and punctuation ignored
 * @param name the dataset's label name
 * @throws CxrError E_CONFIG for an unknown dataset, or an unlisted name with `strict: true`
 */
export function canonicalLabel(dataset: string, name: string, opts: { strict?: boolean } = {}): string {
  const dk = datasetKey(dataset);
  const ds = DATASET_ALIASES.get(dk) ?? dk;
  const map = LABEL_MAPS.get(ds);
  if (!map) throw new CxrError('E_CONFIG', `no label map for dataset "${dataset}" (known: ${[...LABEL_MAPS.keys(), ...DATASET_ALIASES.keys()].join(', ')})`);
  const hit = map.get(labelKey(name));
  if (hit !== undefined) return hit;
  if (opts.strict) throw new CxrError('E_CONFIG', `label "${name}" is not in the ${ds} label map`);
  return name.replace(/_/g, ' ').replace(/\s+/g, ' ').trim();
}
