/** Step 1 of scoring: parse and check the cells, resolve the columns, align every table on the truth's ids. */
import { CxrError } from '../../errors';
import type { CsvTable } from '../../util/csv';
import type { ScoreOptions, ScoreTablesInput } from './types';

const MISSING = new Set(['', 'nan', 'na', 'n/a', 'null', 'none']);

function parseTruthCell(v: string, src: string, row: number, col: string): number {
  const t = v.trim();
  if (MISSING.has(t.toLowerCase())) return NaN;
  const x = Number(t);
  if (x === 1 || x === 0 || x === -1) return x;
  throw new CxrError('E_DATA', `${src}: row ${row + 1}, label ${JSON.stringify(col)}: truth ${JSON.stringify(v)} is not 1, 0, -1 (uncertain) or empty (missing)`, {
    source: src,
    row: row + 1,
    label: col,
  });
}

function parseScoreCell(v: string, src: string, row: number, col: string, binary: boolean): number {
  const t = v.trim();
  const x = t === '' ? NaN : Number(t);
  if (Number.isNaN(x)) {
    throw new CxrError('E_DATA', `${src}: row ${row + 1}, label ${JSON.stringify(col)}: prediction ${JSON.stringify(v)} is missing or not a number (NaN)`, {
      source: src,
      row: row + 1,
      label: col,
    });
  }
  if (!binary && !(x >= 0 && x <= 1)) {
    // Thresholds and calibration are probabilities: an infinite or out-of-range score is a broken input
    // (logits or a unit mix-up), not a score to rank silently.
    throw new CxrError('E_DATA', `${src}: row ${row + 1}, label ${JSON.stringify(col)}: prediction ${JSON.stringify(v)} is not a probability in [0, 1]`, {
      source: src,
      row: row + 1,
      label: col,
    });
  }
  if (binary && x !== 0 && x !== 1) {
    throw new CxrError(
      'E_DATA',
      `${src}: row ${row + 1}, label ${JSON.stringify(col)}: binary read ${JSON.stringify(v)} is not 0 or 1${x < 0 || x > 1 ? ' (outside [0, 1])' : ''}`,
      { source: src, row: row + 1, label: col },
    );
  }
  return x;
}

export function columnIndex(t: CsvTable, name: string, what: string): number {
  const i = t.header.indexOf(name);
  if (i < 0) {
    throw new CxrError('E_DATA', `${t.source}: missing ${what} column ${JSON.stringify(name)} (columns: ${t.header.join(', ')})`, {
      source: t.source,
      column: name,
    });
  }
  return i;
}

/** Maps ids to row numbers; duplicate or empty ids are `E_DATA`. */
export function indexIds(t: CsvTable, idIdx: number): Map<string, number> {
  const m = new Map<string, number>();
  t.rows.forEach((r, i) => {
    const id = r[idIdx].trim();
    if (id === '') throw new CxrError('E_DATA', `${t.source}: row ${i + 1} has an empty id`, { source: t.source, row: i + 1 });
    if (m.has(id)) throw new CxrError('E_DATA', `${t.source}: id ${JSON.stringify(id)} appears twice (rows ${m.get(id)! + 1} and ${i + 1})`, { source: t.source, id });
    m.set(id, i);
  });
  return m;
}

/** Row of `other` for each row of `ref`, requiring identical id sets (clear `E_DATA` otherwise). */
export function alignRows(ref: CsvTable, refIds: Map<string, number>, other: CsvTable, idCol: string): Int32Array {
  const otherIds = indexIds(other, columnIndex(other, idCol, 'id'));
  const missing: string[] = [];
  const extra: string[] = [];
  const map = new Int32Array(ref.rows.length);
  for (const [id, i] of refIds) {
    const j = otherIds.get(id);
    if (j === undefined) missing.push(id);
    else map[i] = j;
  }
  for (const id of otherIds.keys()) if (!refIds.has(id)) extra.push(id);
  if (missing.length || extra.length) {
    const show = (a: string[]): string => a.slice(0, 5).map((x) => JSON.stringify(x)).join(', ') + (a.length > 5 ? ', ...' : '');
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} id(s) of ${ref.source} missing from ${other.source} (${show(missing)})`);
    if (extra.length) parts.push(`${extra.length} id(s) in ${other.source} not in ${ref.source} (${show(extra)})`);
    throw new CxrError('E_DATA', `mismatched ids: ${parts.join('; ')}`, { missing: missing.length, extra: extra.length });
  }
  return map;
}

export function truthColumn(t: CsvTable, label: string): Float64Array {
  const c = columnIndex(t, label, 'label');
  return Float64Array.from(t.rows, (r, i) => parseTruthCell(r[c], t.source, i, label));
}

export function scoreColumn(t: CsvTable, label: string, align: Int32Array, binary: boolean, what: string): Float64Array {
  const i = t.header.indexOf(label);
  if (i < 0) {
    throw new CxrError('E_DATA', `${t.source}: missing label ${JSON.stringify(label)} in ${what} (columns: ${t.header.join(', ')})`, {
      source: t.source,
      label,
    });
  }
  const out = new Float64Array(align.length);
  for (let k = 0; k < align.length; k++) out[k] = parseScoreCell(t.rows[align[k]][i], t.source, align[k], label, binary);
  return out;
}

/** Resolves the id and patient columns and the label list of a truth table. */
export function resolveColumns(truth: CsvTable, opts: ScoreOptions): { idCol: string; patientCol: string | null; labels: string[] } {
  const idCol = opts.idCol ?? (truth.header.includes('id') ? 'id' : truth.header[0]);
  columnIndex(truth, idCol, 'id');
  let patientCol: string | null = null;
  if (opts.patientCol !== undefined) {
    columnIndex(truth, opts.patientCol, 'patient');
    patientCol = opts.patientCol;
  } else if (truth.header.includes('patient_id') && idCol !== 'patient_id') patientCol = 'patient_id';
  else if (truth.header.includes('patient') && idCol !== 'patient') patientCol = 'patient';
  let labels: string[];
  if (opts.labels && opts.labels.length) {
    labels = opts.labels.map((l) => l.trim()).filter((l) => l !== '');
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup !== undefined) throw new CxrError('E_CONFIG', `label ${JSON.stringify(dup)} is listed twice`);
    for (const l of labels) {
      if (!truth.header.includes(l)) {
        throw new CxrError('E_DATA', `${truth.source}: missing label ${JSON.stringify(l)} in the truth (columns: ${truth.header.join(', ')})`, {
          source: truth.source,
          label: l,
        });
      }
    }
  } else labels = truth.header.filter((h) => h !== idCol && h !== patientCol);
  if (labels.length === 0) throw new CxrError('E_DATA', `${truth.source}: no label columns besides the id column`, { source: truth.source });
  return { idCol, patientCol, labels };
}

/** Truth, predictions, validation and reader tables aligned on the truth's ids. */
export interface AlignedInputs {
  idCol: string;
  patientCol: string | null;
  /** Labels to score, in order. */
  labels: string[];
  /** Row of the predictions for each truth row. */
  predAlign: Int32Array;
  /** Row of the validation predictions for each validation truth row; null without validation files. */
  valAlign: Int32Array | null;
  /** Row of each reader's table for each truth row. */
  readerAligns: Int32Array[];
}

/**
 * Resolves the columns and aligns every table on the truth's ids (the validation predictions on the
 * validation truth's). E_DATA for empty tables, missing columns, and duplicate, empty or mismatched ids.
 */
export function alignInputs(input: ScoreTablesInput, opts: ScoreOptions): AlignedInputs {
  const { truth, pred } = input;
  if (truth.rows.length === 0) throw new CxrError('E_DATA', `${truth.source}: no data rows`, { source: truth.source });
  const { idCol, patientCol, labels } = resolveColumns(truth, opts);
  const truthIds = indexIds(truth, columnIndex(truth, idCol, 'id'));
  const predAlign = alignRows(truth, truthIds, pred, idCol);

  let valAlign: Int32Array | null = null;
  if (input.valTruth && input.valPred) {
    const vt = input.valTruth;
    if (vt.rows.length === 0) throw new CxrError('E_DATA', `${vt.source}: no data rows`, { source: vt.source });
    columnIndex(vt, idCol, 'id');
    valAlign = alignRows(vt, indexIds(vt, columnIndex(vt, idCol, 'id')), input.valPred, idCol);
  }
  const readerAligns = (input.readers ?? []).map((r) => alignRows(truth, truthIds, r.table, idCol));
  return { idCol, patientCol, labels, predAlign, valAlign, readerAligns };
}
