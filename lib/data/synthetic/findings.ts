/**
 * What a synthetic study shows: the label state of each CheXpert observation and the geometry the
 * phantom renders for it. Labels are drawn first, from latent "clinical context" factors (heart failure,
 * intensive care, infection, cancer, trauma) so that findings co-occur the way they do in MIMIC-CXR
 * (cardiomegaly with edema and effusion, devices with atelectasis, ...); the picture and the report are
 * then both derived from the same spec, so they always agree.
 */
import type { ChexpertLabel } from '../sample';
import { CHEXPERT_LABELS } from '../sample';
import { Rng } from '../../util/rng';

/** How a label appears in a study: shown and stated, shown and hedged, stated absent, or not mentioned. */
export type FindingState = 'positive' | 'uncertain' | 'negative' | 'unmentioned';

/** Patient side. Radiographic convention: the patient's right is on the image's left. */
export type Side = 'right' | 'left';

/** Lung zone. */
export type Zone = 'upper' | 'middle' | 'lower';

/** Support device kinds the phantom can draw. */
export type DeviceKind = 'ett' | 'ngt' | 'cvc' | 'pacemaker' | 'sternotomy' | 'ecg';

/** Ordinal severity used for sizes and report adjectives. */
export type Severity = 'mild' | 'moderate' | 'severe';

/** Everything the phantom renderer and the report writer need about one study. */
export interface CaseSpec {
  /** State of each of the 14 CheXpert labels. */
  states: Record<ChexpertLabel, FindingState>;
  view: 'PA' | 'AP';
  /** Cardiothoracic ratio (heart width / thoracic width); > 0.55 reads as cardiomegaly. */
  ctr: number;
  cardiomegalySeverity: Severity;
  /** Upper mediastinal half-width in image units. */
  mediastinumHalfWidth: number;
  effusion: { sides: Side[]; severity: Severity } | null;
  edema: { severity: Severity } | null;
  consolidation: { side: Side; zone: Zone; radius: number } | null;
  atelectasis: { side: Side; zone: 'middle' | 'lower'; volumeLoss: number } | null;
  pneumothorax: { side: Side; severity: Severity } | null;
  lesion: { kind: 'nodule' | 'mass'; side: Side; zone: Zone; radius: number } | null;
  pleuralOther: { side: Side } | null;
  fracture: { side: Side; rib: number } | null;
  devices: DeviceKind[];
  /** Rendering strength multiplier for hedged findings (< 1: subtler picture). */
  uncertainScale: number;
  /** Global finding strength (1 = default; < 1 makes every finding subtler, for harder benchmarks). */
  strength: number;
}

/** Prevalence knobs; the defaults roughly follow MIMIC-CXR with rare labels raised so they can be learned. */
export interface PrevalenceOptions {
  /** Multiplies every finding probability (1 = defaults). */
  scale?: number;
}

function clamp01(p: number): number {
  return p < 0 ? 0 : p > 0.97 ? 0.97 : p;
}

/** Draws positive / uncertain / negative-mentioned / unmentioned for one label. */
function drawState(rng: Rng, pPresent: number, pUncertain: number, pMentionNeg: number): FindingState {
  if (rng.bernoulli(clamp01(pPresent))) return rng.bernoulli(pUncertain) ? 'uncertain' : 'positive';
  return rng.bernoulli(pMentionNeg) ? 'negative' : 'unmentioned';
}

const SEV: Severity[] = ['mild', 'moderate', 'severe'];

/**
 * Samples one study's spec. `ctrShift` moves the cardiothoracic ratio of every study (the distribution
 * shift preset uses it).
 */
export function sampleCase(rng: Rng, opts: { ctrShift?: number; prevalence?: PrevalenceOptions; strength?: number } = {}): CaseSpec {
  const strength = opts.strength ?? 1;
  const k = opts.prevalence?.scale ?? 1;
  const chf = rng.bernoulli(0.22);
  const icu = rng.bernoulli(0.28);
  const infect = rng.bernoulli(0.2);
  const onc = rng.bernoulli(0.07);
  const trauma = rng.bernoulli(0.05);
  const f = (b: boolean) => (b ? 1 : 0);

  const s = {} as Record<ChexpertLabel, FindingState>;
  s['Cardiomegaly'] = drawState(rng, k * (0.08 + 0.5 * f(chf)), 0.08, 0.6);
  s['Edema'] = drawState(rng, k * (0.03 + 0.42 * f(chf)), 0.15, 0.45);
  s['Pleural Effusion'] = drawState(rng, k * (0.07 + 0.38 * f(chf) + 0.2 * f(icu) + 0.1 * f(infect)), 0.1, 0.8);
  s['Consolidation'] = drawState(rng, k * (0.02 + 0.55 * f(infect)), 0.15, 0.55);
  s['Atelectasis'] = drawState(rng, k * (0.08 + 0.28 * f(icu) + (s['Pleural Effusion'] === 'positive' ? 0.12 : 0)), 0.2, 0.15);
  s['Pneumothorax'] = drawState(rng, k * (0.03 + 0.08 * f(icu) + 0.35 * f(trauma)), 0.06, 0.85);
  s['Lung Lesion'] = drawState(rng, k * (0.02 + 0.7 * f(onc)), 0.15, 0.1);
  s['Enlarged Cardiomediastinum'] = drawState(rng, k * (0.02 + 0.12 * f(chf)), 0.25, 0.35);
  s['Pleural Other'] = drawState(rng, k * 0.03, 0.1, 0.05);
  s['Fracture'] = drawState(rng, k * (0.015 + 0.5 * f(trauma)), 0.1, 0.25);
  s['Support Devices'] = drawState(rng, k * (0.05 + 0.8 * f(icu)), 0, 0);

  // Pneumonia is a clinical reading of an opacity: usually hedged, sometimes stated, rarely alone.
  const cons = s['Consolidation'];
  if (cons === 'positive' || cons === 'uncertain') {
    const r = rng.next();
    s['Pneumonia'] = r < 0.35 ? 'positive' : r < 0.8 ? 'uncertain' : 'unmentioned';
  } else {
    s['Pneumonia'] = rng.bernoulli(0.3) ? 'negative' : 'unmentioned';
  }

  // Lung Opacity summarises the parenchymal opacities (as the CheXpert labeler's mention rules do).
  const opac = [s['Edema'], s['Consolidation'], s['Atelectasis'], s['Pneumonia']];
  if (opac.includes('positive')) s['Lung Opacity'] = 'positive';
  else if (opac.includes('uncertain')) s['Lung Opacity'] = 'uncertain';
  else s['Lung Opacity'] = rng.bernoulli(0.55) ? 'negative' : 'unmentioned';

  const pathologic = CHEXPERT_LABELS.filter((l) => l !== 'No Finding' && l !== 'Support Devices');
  const anyFinding = pathologic.some((l) => s[l] === 'positive' || s[l] === 'uncertain');
  s['No Finding'] = anyFinding ? 'unmentioned' : 'positive';

  const present = (l: ChexpertLabel) => s[l] === 'positive' || s[l] === 'uncertain';
  const side = (): Side => (rng.bernoulli(0.5) ? 'right' : 'left');
  const sev = (w: number[] = [0.45, 0.35, 0.2]): Severity => SEV[rng.weighted(w)];

  const cardioSev = sev([0.5, 0.35, 0.15]);
  const ctrShift = opts.ctrShift ?? 0;
  let ctr: number;
  if (present('Cardiomegaly')) {
    const base = cardioSev === 'mild' ? 0.56 : cardioSev === 'moderate' ? 0.61 : 0.66;
    ctr = base + rng.uniform(-0.015, 0.025);
    ctr = 0.45 + (ctr - 0.45) * strength;
  } else {
    ctr = Math.min(0.52, rng.normal(0.44, 0.03));
  }
  ctr += ctrShift;

  const devices: DeviceKind[] = [];
  if (present('Support Devices')) {
    const all: DeviceKind[] = ['ett', 'ngt', 'cvc', 'pacemaker', 'sternotomy', 'ecg'];
    const w = [0.3, 0.2, 0.35, 0.1, 0.08, 0.12];
    const nDev = 1 + rng.weighted([0.55, 0.32, 0.13]);
    while (devices.length < nDev) {
      const d = all[rng.weighted(w)];
      if (!devices.includes(d)) devices.push(d);
    }
    // The canonical order keeps report sentences stable for a given set.
    devices.sort((a, b) => all.indexOf(a) - all.indexOf(b));
  }

  const effSides: Side[] = rng.bernoulli(0.45) ? ['right', 'left'] : [side()];
  const zoneOf = (): Zone => (['upper', 'middle', 'lower'] as Zone[])[rng.weighted([0.25, 0.25, 0.5])];
  const lesionKind = rng.bernoulli(0.6) ? 'nodule' : 'mass';

  return {
    states: s,
    view: icu || devices.length > 0 ? (rng.bernoulli(0.85) ? 'AP' : 'PA') : rng.bernoulli(0.15) ? 'AP' : 'PA',
    ctr,
    cardiomegalySeverity: cardioSev,
    mediastinumHalfWidth: present('Enlarged Cardiomediastinum') ? 0.07 + (rng.uniform(0.115, 0.14) - 0.07) * strength : rng.uniform(0.062, 0.078),
    effusion: present('Pleural Effusion') ? { sides: effSides, severity: sev() } : null,
    edema: present('Edema') ? { severity: sev([0.4, 0.4, 0.2]) } : null,
    consolidation: present('Consolidation') ? { side: side(), zone: zoneOf(), radius: rng.uniform(0.06, 0.1) } : null,
    atelectasis: present('Atelectasis') ? { side: side(), zone: rng.bernoulli(0.75) ? 'lower' : 'middle', volumeLoss: rng.uniform(0.02, 0.05) } : null,
    pneumothorax: present('Pneumothorax') ? { side: side(), severity: sev([0.45, 0.35, 0.2]) } : null,
    lesion: present('Lung Lesion')
      ? { kind: lesionKind, side: side(), zone: (['upper', 'middle', 'lower'] as Zone[])[rng.int(3)], radius: lesionKind === 'nodule' ? rng.uniform(0.026, 0.038) : rng.uniform(0.055, 0.08) }
      : null,
    pleuralOther: present('Pleural Other') ? { side: side() } : null,
    fracture: present('Fracture') ? { side: side(), rib: 3 + rng.int(5) } : null,
    devices,
    uncertainScale: rng.uniform(0.45, 0.65),
    strength,
  };
}

/** The label value of a state: 1, -1, 0 or NaN (unmentioned). */
export function stateToLabel(st: FindingState): number {
  return st === 'positive' ? 1 : st === 'uncertain' ? -1 : st === 'negative' ? 0 : NaN;
}
