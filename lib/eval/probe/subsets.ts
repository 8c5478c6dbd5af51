/**
 * Label-efficiency subsets of a training split, drawn by patient: a fraction f keeps ⌈f · P⌉ of the P
 * distinct patients (at least one) and every image of those patients, so no patient is half in a subset.
 * The patients are sorted, then permuted with a seeded generator; each fraction takes a prefix of the
 * same permutation, so with one seed the subsets are nested (1 % ⊂ 10 % ⊂ 100 %) and do not depend on
 * the order of the images in the split.
 */
import { CxrError } from '../../errors';
import { hashSeed, permutation } from '../../util/rng';

/** One subset: the rows (image indices into the split, ascending) and its size. */
export interface PatientSubset {
  fraction: number;
  rows: Int32Array;
  patients: number;
}

/** Stream id that keeps the subset draw apart from other uses of the same seed. */
const SUBSET_STREAM = 0x70726f62; // "prob"

/** Checks fractions: numbers in (0, 1], no duplicates (E_CONFIG otherwise). */
export function validateFractions(fractions: readonly number[]): void {
  if (fractions.length === 0) throw new CxrError('E_CONFIG', 'no label fraction given');
  const seen = new Set<number>();
  for (const f of fractions) {
    if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0 || f > 1) {
      throw new CxrError('E_CONFIG', `a label fraction must be in (0, 1] (in percent: (0, 100]), got ${f}`);
    }
    if (seen.has(f)) throw new CxrError('E_CONFIG', `label fraction ${f} is given twice`);
    seen.add(f);
  }
}

/**
 * Patient-level subsets of a split for each fraction.
 * @param patients patient id of each image of the split.
 * @param fractions fractions in (0, 1].
 * @param seed the subset seed (any integer ≥ 0).
 */
export function patientSubsets(patients: readonly string[], fractions: readonly number[], seed: number): PatientSubset[] {
  validateFractions(fractions);
  if (!Number.isInteger(seed) || seed < 0) throw new CxrError('E_CONFIG', `subset seed must be an integer >= 0, got ${seed}`);
  const ids = [...new Set(patients)].sort();
  if (ids.length === 0) throw new CxrError('E_DATA', 'the training split has no images');
  const order = permutation(ids.length, hashSeed(seed, SUBSET_STREAM));
  const rank = new Map<string, number>();
  order.forEach((idx, r) => rank.set(ids[idx], r));
  return fractions.map((fraction) => {
    const k = Math.max(1, Math.ceil(fraction * ids.length - 1e-9));
    const rows: number[] = [];
    for (let i = 0; i < patients.length; i++) if (rank.get(patients[i])! < k) rows.push(i);
    return { fraction, rows: Int32Array.from(rows), patients: k };
  });
}
