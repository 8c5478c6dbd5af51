/**
 * Patient-level splits: every image of a patient lands in the same split, so a model is never tested
 * on a patient it was trained on.
 */
import { CxrError } from '../errors';
import { hashSeed, hashString } from '../util/rng';
import type { Sample, Split } from './sample';

/** Options of {@link assignPatientSplits}. */
export interface PatientSplitOptions {
  /** Fractions of patients for train / validate / test. Default [0.8, 0.1, 0.1]. */
  fractions?: [number, number, number];
  /** Seed. Default 0. */
  seed?: number;
  /** Replace official splits too (default false: only samples without a split are assigned). */
  override?: boolean;
}

/**
 * Assigns a split to each sample by hashing its patient id with the seed: stable when samples are
 * added or removed, identical for all images of a patient. Returns new sample objects.
 */
export function assignPatientSplits(samples: Sample[], opts: PatientSplitOptions = {}): Sample[] {
  const f = opts.fractions ?? [0.8, 0.1, 0.1];
  const total = f[0] + f[1] + f[2];
  if (f.some((v) => !(v >= 0)) || !(total > 0)) throw new CxrError('E_CONFIG', `split fractions must be non-negative with a positive sum, got ${f.join(',')}`);
  const seed = opts.seed ?? 0;
  return samples.map((s) => {
    if (s.split && !opts.override) return s;
    const u = hashSeed(seed, hashString(s.patientId)) / 4294967296;
    const split: Split = u < f[0] / total ? 'train' : u < (f[0] + f[1]) / total ? 'validate' : 'test';
    return { ...s, split };
  });
}

/** Patients that appear in more than one split (empty when the splits are patient-disjoint). */
export function patientLeaks(samples: Sample[]): { patientId: string; splits: Split[] }[] {
  const m = new Map<string, Set<Split>>();
  for (const s of samples) {
    if (!s.split) continue;
    let set = m.get(s.patientId);
    if (!set) m.set(s.patientId, (set = new Set()));
    set.add(s.split);
  }
  return [...m.entries()].filter(([, v]) => v.size > 1).map(([patientId, v]) => ({ patientId, splits: [...v].sort() }));
}

/** Sample counts per split (samples without a split are counted under 'none'). */
export function splitCounts(samples: Sample[]): Record<Split | 'none', number> {
  const c: Record<Split | 'none', number> = { train: 0, validate: 0, test: 0, none: 0 };
  for (const s of samples) c[s.split ?? 'none']++;
  return c;
}
