/**
 * MIMIC-CXR-style free-text reports for synthetic studies. Every CheXpert label whose state is not
 * "unmentioned" gets its own FINDINGS sentence (positive, hedged or negated), with laterality and
 * severity taken from the rendered spec so that text and picture agree. Phrasing, sentence order, filler
 * sentences and line wrapping vary as they do in real reports; IMPRESSION restates the main findings.
 */
import type { CaseSpec, FindingState, Severity, Side, Zone, DeviceKind } from './findings';
import type { ChexpertLabel } from '../sample';
import { Rng } from '../../util/rng';

type Fill = Record<string, string>;

function fill(t: string, f: Fill): string {
  return t.replace(/\{(\w+)\}/g, (_, k: string) => f[k] ?? '');
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Intensity words for cardiomegaly and edema, size words for effusion and pneumothorax.
const SEV_ADJ: Record<Severity, string[]> = { mild: ['mild'], moderate: ['moderate'], severe: ['severe', 'marked'] };
const SIZE_ADJ: Record<Severity, string[]> = { mild: ['small'], moderate: ['moderate', 'moderate-sized'], severe: ['large'] };
const SEV_ADV: Record<Severity, string> = { mild: 'mildly', moderate: 'moderately', severe: 'severely' };

function lobe(side: Side, zone: Zone): string {
  if (side === 'right') return zone === 'upper' ? 'right upper lobe' : zone === 'middle' ? 'right middle lobe' : 'right lower lobe';
  return zone === 'upper' ? 'left upper lobe' : zone === 'middle' ? 'lingula' : 'left lower lobe';
}
function zoneWord(zone: Zone): string {
  return zone === 'upper' ? 'upper' : zone === 'middle' ? 'mid' : 'lower';
}
function ordinal(n: number): string {
  const s = n === 1 ? 'st' : n === 2 ? 'nd' : n === 3 ? 'rd' : 'th';
  return `${n}${s}`;
}

const T: Partial<Record<ChexpertLabel, Partial<Record<FindingState, string[]>>>> = {
  Cardiomegaly: {
    positive: ['The heart is {adv} enlarged.', '{Adj} cardiomegaly.', 'There is {adj} enlargement of the cardiac silhouette.', 'Cardiomegaly is {adj}.', 'The cardiac silhouette is {adv} enlarged.'],
    uncertain: ['The heart size is top normal to possibly mildly enlarged.', 'Possible mild cardiomegaly.', 'The cardiac silhouette may be mildly enlarged, although this could be accentuated by technique.'],
    negative: ['Heart size is normal.', 'The cardiac silhouette is within normal limits.', 'No cardiomegaly.', 'Normal heart size.', 'The heart is not enlarged.'],
  },
  'Enlarged Cardiomediastinum': {
    positive: ['The mediastinum is widened.', 'The superior mediastinum is widened.', 'Widening of the upper mediastinal contour is noted.'],
    uncertain: ['The mediastinal contour may be slightly widened.', 'Possible mediastinal widening, which could be due to technique.'],
    negative: ['The mediastinal contours are normal.', 'Mediastinal and hilar contours are unremarkable.', 'The mediastinum is not widened.'],
  },
  Edema: {
    positive: ['{Adj} pulmonary edema.', 'There is {adj} interstitial pulmonary edema with perihilar haziness.', 'Perihilar haziness and vascular indistinctness are consistent with {adj} pulmonary edema.', 'Findings are compatible with {adj} pulmonary edema.'],
    uncertain: ['Mild vascular congestion, cannot exclude early pulmonary edema.', 'Perihilar haziness may reflect mild edema.', 'Possible mild pulmonary edema.'],
    negative: ['No pulmonary edema.', 'There is no evidence of pulmonary edema.', 'No pulmonary edema is seen.'],
  },
  Consolidation: {
    positive: ['Focal consolidation in the {lobe}.', 'There is a dense opacity in the {lobe} consistent with consolidation.', '{Lobe} consolidation is present.', 'Airspace consolidation is seen in the {lobe}.'],
    uncertain: ['Patchy opacity in the {lobe} could represent consolidation.', 'Possible consolidation in the {lobe}.', 'Ill-defined opacity in the {side} {zone} lung, cannot exclude consolidation.'],
    negative: ['No focal consolidation.', 'There is no focal consolidation.', 'No consolidation is seen.', 'The lungs are without focal consolidation.'],
  },
  Pneumonia: {
    positive: ['Findings are consistent with pneumonia.', 'This is compatible with {lobe} pneumonia.', 'The appearance represents pneumonia.'],
    uncertain: ['This could represent pneumonia in the appropriate clinical setting.', 'Pneumonia cannot be excluded.', 'This may reflect aspiration or pneumonia.', 'Findings are concerning for pneumonia.'],
    negative: ['No evidence of pneumonia.', 'No findings to suggest pneumonia.', 'There is no radiographic evidence of pneumonia.'],
  },
  Atelectasis: {
    positive: ['Linear opacity at the {side} lung base is consistent with atelectasis.', '{Side} basilar atelectasis.', 'Plate-like atelectasis in the {side} {zone} lung.', 'There is {side} lower lobe atelectasis with mild volume loss.'],
    uncertain: ['{Side} basilar opacity may reflect atelectasis.', 'Possible subsegmental atelectasis at the {side} base.', 'Streaky {side} basilar opacity, which could be atelectasis.'],
    negative: ['No atelectasis.', 'There is no atelectasis.'],
  },
  Pneumothorax: {
    positive: ['There is a {adj} {side} pneumothorax.', '{Adj} {side} apical pneumothorax.', 'A {adj} {side}-sided pneumothorax is present with a visible pleural line.'],
    uncertain: ['Possible tiny {side} apical pneumothorax.', 'A small {side} pneumothorax cannot be excluded.', 'Questionable {side} apical pneumothorax.'],
    negative: ['No pneumothorax.', 'There is no pneumothorax.', 'No evidence of pneumothorax.', 'No pneumothorax is seen.'],
  },
  'Pleural Effusion': {
    positive: ['{Adj} {sides} pleural {effusion}.', 'There {is} {a}{adj} {sides} pleural {effusion}.', '{Adj} {sides} pleural {effusion} with adjacent basilar opacity.', 'Layering {sides} pleural {effusion}, {adj} in size.'],
    uncertain: ['Possible small {sides} pleural {effusion}.', 'Blunting of the {sides} costophrenic {angle} may reflect a trace {effusion}.', 'A small {sides} {effusion} cannot be excluded.'],
    negative: ['No pleural effusion.', 'There is no pleural effusion.', 'No pleural effusions.', 'No pleural effusion is seen.'],
  },
  'Lung Lesion': {
    positive: ['A {mm} mm nodule is seen in the {side} {zone} lung.', 'There is a {side} {zone} lung nodule measuring {mm} mm.', 'Rounded nodular opacity in the {side} {zone} lung, {mm} mm.'],
    uncertain: ['Possible nodule in the {side} {zone} lung; CT is recommended for further evaluation.', 'Questionable {side} {zone} lung nodule.', 'A nodular opacity in the {side} {zone} lung cannot be excluded.'],
    negative: ['No suspicious pulmonary nodules.', 'No lung nodules or masses.'],
  },
  'Pleural Other': {
    positive: ['{Side} pleural thickening is noted.', 'There is {side} lateral pleural thickening.', 'Stable {side} pleural thickening.'],
    uncertain: ['Possible {side} pleural thickening.', 'Questionable {side} pleural thickening.'],
    negative: ['No pleural thickening.'],
  },
  Fracture: {
    positive: ['An acute fracture of the {side} {rib} rib is noted.', '{Side} {rib} posterior rib fracture.', 'There is a healing fracture of the {side} {rib} rib.'],
    uncertain: ['Possible nondisplaced fracture of the {side} {rib} rib.', 'A subtle {side} {rib} rib fracture cannot be excluded.'],
    negative: ['No acute osseous abnormality.', 'No displaced fracture is seen.', 'No acute rib fracture.'],
  },
  'Lung Opacity': {
    negative: ['The lungs are clear.', 'Lungs are well expanded and clear.', 'No focal opacity.'],
  },
};

const MASS_POS = ['A {cm} cm mass is seen in the {lobe}.', 'There is a {side} {zone} lung mass measuring {cm} cm.', 'Lobulated mass in the {lobe}, {cm} cm.'];

const DEVICES: Record<DeviceKind, string[]> = {
  ett: ['Endotracheal tube terminates {n} cm above the carina.', 'The endotracheal tube is in standard position.', 'An endotracheal tube is in place with its tip {n} cm above the carina.'],
  ngt: ['Enteric tube courses below the diaphragm with tip in the stomach.', 'A nasogastric tube is seen extending into the stomach.'],
  cvc: ['Right internal jugular central venous catheter terminates in the mid SVC.', 'Right-sided central line tip projects over the SVC.'],
  pacemaker: ['Left chest wall pacemaker with lead terminating in the right ventricle.', 'A cardiac pacing device is present with leads in expected position.'],
  sternotomy: ['Median sternotomy wires are intact.', 'The patient is status post median sternotomy.'],
  ecg: ['Monitoring leads overlie the chest.', 'EKG leads are noted.'],
};

const IMPRESSION_PHRASE: Partial<Record<ChexpertLabel, { positive: string[]; uncertain: string[] }>> = {
  Cardiomegaly: { positive: ['{adj} cardiomegaly', 'enlarged heart'], uncertain: ['possible mild cardiomegaly'] },
  'Enlarged Cardiomediastinum': { positive: ['widened mediastinum'], uncertain: ['possible mediastinal widening'] },
  Edema: { positive: ['{adj} pulmonary edema'], uncertain: ['possible mild pulmonary edema'] },
  Consolidation: { positive: ['{lobe} consolidation'], uncertain: ['possible {lobe} consolidation'] },
  Pneumonia: { positive: ['pneumonia'], uncertain: ['possible pneumonia'] },
  Atelectasis: { positive: ['{side} basilar atelectasis'], uncertain: ['possible {side} basilar atelectasis'] },
  Pneumothorax: { positive: ['{adj} {side} pneumothorax'], uncertain: ['possible small {side} pneumothorax'] },
  'Pleural Effusion': { positive: ['{adj} {sides} pleural {effusion}'], uncertain: ['possible small {sides} pleural {effusion}'] },
  'Lung Lesion': { positive: ['{side} lung {kind}'], uncertain: ['possible {side} lung nodule'] },
  'Pleural Other': { positive: ['{side} pleural thickening'], uncertain: ['possible {side} pleural thickening'] },
  Fracture: { positive: ['{side} {rib} rib fracture'], uncertain: ['possible {side} rib fracture'] },
};

const FILLERS = [
  'Comparison is made to the prior study.',
  'The patient is slightly rotated.',
  'Degenerative changes of the thoracic spine are noted.',
  'The visualized upper abdomen is unremarkable.',
  'Low lung volumes.',
  'Calcification of the aortic knob is noted.',
];

const GROUPS: ChexpertLabel[][] = [
  ['Support Devices'],
  ['Consolidation', 'Pneumonia', 'Edema', 'Atelectasis', 'Lung Lesion', 'Lung Opacity'],
  ['Pleural Effusion', 'Pneumothorax', 'Pleural Other'],
  ['Cardiomegaly', 'Enlarged Cardiomediastinum'],
  ['Fracture'],
];

/** Words that fill a template for `label`, derived from the spec so text and picture agree. */
function fillFor(label: ChexpertLabel, spec: CaseSpec, rng: Rng): Fill {
  const f: Fill = {};
  const setSide = (s: Side) => {
    f.side = s;
    f.Side = cap(s);
  };
  const setSev = (s: Severity, words = SEV_ADJ) => {
    f.adj = rng.pick(words[s]);
    f.Adj = cap(f.adj);
    f.adv = SEV_ADV[s];
  };
  switch (label) {
    case 'Cardiomegaly':
      setSev(spec.cardiomegalySeverity);
      break;
    case 'Edema':
      if (spec.edema) setSev(spec.edema.severity);
      break;
    case 'Consolidation':
    case 'Pneumonia':
      if (spec.consolidation) {
        setSide(spec.consolidation.side);
        f.zone = zoneWord(spec.consolidation.zone);
        f.lobe = lobe(spec.consolidation.side, spec.consolidation.zone);
        f.Lobe = cap(f.lobe);
      }
      break;
    case 'Atelectasis':
      if (spec.atelectasis) {
        setSide(spec.atelectasis.side);
        f.zone = zoneWord(spec.atelectasis.zone);
      }
      break;
    case 'Pneumothorax':
      if (spec.pneumothorax) {
        setSide(spec.pneumothorax.side);
        setSev(spec.pneumothorax.severity, SIZE_ADJ);
      }
      break;
    case 'Pleural Effusion':
      if (spec.effusion) {
        const both = spec.effusion.sides.length === 2;
        f.sides = both ? 'bilateral' : spec.effusion.sides[0];
        f.effusion = both ? 'effusions' : 'effusion';
        f.angle = both ? 'angles' : 'angle';
        setSev(spec.effusion.severity, SIZE_ADJ);
        f.is = both ? 'are' : 'is';
        f.a = both ? '' : 'a ';
      }
      break;
    case 'Lung Lesion':
      if (spec.lesion) {
        setSide(spec.lesion.side);
        f.zone = zoneWord(spec.lesion.zone);
        f.lobe = lobe(spec.lesion.side, spec.lesion.zone);
        f.kind = spec.lesion.kind;
        // The image is ~35 cm wide, so one normalised unit is ~350 mm.
        f.mm = String(Math.round((spec.lesion.radius * 2 * 350) / 1));
        f.cm = ((spec.lesion.radius * 2 * 35) / 1).toFixed(1);
      }
      break;
    case 'Pleural Other':
      if (spec.pleuralOther) setSide(spec.pleuralOther.side);
      break;
    case 'Fracture':
      if (spec.fracture) {
        setSide(spec.fracture.side);
        f.rib = ordinal(spec.fracture.rib + 2);
      }
      break;
    default:
      break;
  }
  return f;
}

/** FINDINGS sentences for one label (support devices give one per device). */
function sentencesFor(label: ChexpertLabel, spec: CaseSpec, rng: Rng): string[] {
  const st = spec.states[label];
  if (st === 'unmentioned' || label === 'No Finding') return [];
  if (label === 'Support Devices') {
    return spec.devices.map((d) => fill(rng.pick(DEVICES[d]), { n: String(3 + rng.int(3)) }));
  }
  let templates = T[label]?.[st];
  if (label === 'Lung Lesion' && st === 'positive' && spec.lesion?.kind === 'mass') templates = MASS_POS;
  if (!templates || templates.length === 0) return [];
  return [fill(rng.pick(templates), fillFor(label, spec, rng))];
}

function wrap(text: string, width: number): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur.length > 0 && cur.length + 1 + w.length > width) {
      lines.push(' ' + cur);
      cur = w;
    } else cur = cur ? cur + ' ' + w : w;
  }
  if (cur) lines.push(' ' + cur);
  return lines.join('\n');
}

const INDICATIONS = ['shortness of breath', 'cough and fever', 'chest pain', 'evaluate for pneumonia', 'line placement', 'hypoxia', 'fall, evaluate for fracture', 'preoperative evaluation', 'CHF exacerbation', 'intubated, evaluate tube position'];

/** The report text and the FINDINGS sentences in order (the latter for tests and sentence-level use). */
export interface SyntheticReport {
  text: string;
  findings: string[];
  impression: string[];
}

/** Writes a MIMIC-style report for `spec`. */
export function writeReport(spec: CaseSpec, rng: Rng): SyntheticReport {
  const groups = GROUPS.map((g) => [...g]);
  if (rng.bernoulli(0.5)) {
    rng.shuffle(groups);
    for (const g of groups) rng.shuffle(g);
  }
  const findings: string[] = [];
  for (const g of groups) for (const label of g) findings.push(...sentencesFor(label, spec, rng));
  if (rng.bernoulli(0.3)) findings.splice(rng.int(findings.length + 1), 0, rng.pick(FILLERS));
  if (findings.length === 0) findings.push(rng.pick(['The lungs are clear.', 'Normal chest radiograph.']));

  const impression: string[] = [];
  const phrases: string[] = [];
  for (const g of GROUPS) {
    for (const label of g) {
      const st = spec.states[label];
      const p = IMPRESSION_PHRASE[label];
      if (!p || (st !== 'positive' && st !== 'uncertain')) continue;
      phrases.push(fill(rng.pick(p[st]), fillFor(label, spec, rng)));
    }
  }
  if (phrases.length === 0) {
    impression.push(rng.pick(['No acute cardiopulmonary process.', 'No acute intrathoracic abnormality.', 'Normal chest radiograph.', 'No acute cardiopulmonary abnormality.']));
  } else {
    for (let i = 0; i < phrases.length; i += 2) {
      const pair = phrases.slice(i, i + 2);
      impression.push(cap(pair.join(pair.length === 2 ? (rng.bernoulli(0.5) ? ' and ' : ' with ') : '')) + '.');
    }
    if (spec.states['Pneumothorax'] === 'negative' && spec.devices.length > 0 && rng.bernoulli(0.5)) impression.push('No pneumothorax.');
  }
  if (spec.devices.length > 0 && rng.bernoulli(0.4)) impression.unshift('Support devices in standard position.');

  const exam = spec.view === 'AP' ? 'CHEST (PORTABLE AP)' : 'CHEST (PA AND LAT)';
  const technique = spec.view === 'AP' ? 'Portable AP upright view of the chest.' : 'PA and lateral views of the chest.';
  const numbered = impression.length > 1 && rng.bernoulli(0.3);
  const impText = numbered ? impression.map((s, i) => wrap(`${i + 1}. ${s}`, 70)).join('\n') : wrap(impression.join(' '), 70);
  const text = [
    '                                 FINAL REPORT',
    ` EXAMINATION:  ${exam}`,
    '',
    ` INDICATION:  ___-year-old ${rng.pick(['man', 'woman'])} with ${rng.pick(INDICATIONS)}.`,
    '',
    ` TECHNIQUE:  ${technique}`,
    '',
    ` COMPARISON:  ${rng.pick(['___', 'None.', 'Chest radiograph from ___.'])}`,
    '',
    ' FINDINGS:',
    ' ',
    wrap(findings.join(' '), 70),
    ' ',
    ' IMPRESSION:',
    ' ',
    impText,
    '',
  ].join('\n');
  return { text, findings, impression };
}
