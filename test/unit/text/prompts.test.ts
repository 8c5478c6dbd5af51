import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCxrError } from '../../../lib/errors';
import { canonicalLabel, listPromptSets, loadPromptSet, promptSetFromObject, promptsFor } from '../../../lib/text/prompts';

const CHEXPERT14 = [
  'Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Enlarged Cardiomediastinum', 'Fracture', 'Lung Lesion',
  'Lung Opacity', 'No Finding', 'Pleural Effusion', 'Pleural Other', 'Pneumonia', 'Pneumothorax', 'Support Devices',
];

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isCxrError(e, 'E_CONFIG')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected an E_CONFIG error');
}

describe('prompt sets', () => {
  it('defaults to CheXzero: "{label}" / "no {label}" in lower case over the 14 CheXpert labels', () => {
    const set = loadPromptSet();
    expect(set.name).toBe('chexzero');
    expect(set.labels.map((l) => l.label).sort()).toEqual([...CHEXPERT14].sort());
    expect(promptsFor(set, 'Pleural Effusion')).toEqual({ label: 'Pleural Effusion', positive: ['pleural effusion'], negative: ['no pleural effusion'] });
    expect(promptsFor(set, 'pleural_effusion').label).toBe('Pleural Effusion');
  });

  it('never builds "no no finding"', () => {
    for (const name of listPromptSets()) {
      const nf = promptsFor(loadPromptSet(name), 'No Finding');
      for (const p of [...nf.positive, ...nf.negative]) expect(p.toLowerCase()).not.toMatch(/no no finding/);
      expect(nf.positive.length).toBeGreaterThan(0);
      expect(nf.negative.length).toBeGreaterThan(0);
    }
  });

  it('expands templates over synonyms in the synonyms set', () => {
    const pe = promptsFor(loadPromptSet('chexpert-synonyms'), 'Pleural Effusion');
    expect(pe.positive).toContain('effusion');
    expect(pe.positive).toContain('there is pleural fluid');
    expect(pe.negative).toContain('no evidence of effusion');
    expect(new Set(pe.positive).size).toBe(pe.positive.length);
  });

  it('loads a user JSON or YAML file and names the set after the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prompts-'));
    const j = path.join(dir, 'mine.json');
    fs.writeFileSync(j, JSON.stringify({ templates: { positive: ['{label} is present'], negative: ['{label} is absent'] }, labels: [{ label: 'Edema' }] }));
    expect(loadPromptSet(j)).toEqual({ name: 'mine', labels: [{ label: 'Edema', positive: ['Edema is present'], negative: ['Edema is absent'] }] });
    const y = path.join(dir, 'y.yaml');
    fs.writeFileSync(y, 'name: yset\nlowercase: true\nlabels:\n  - label: Mass\n    positive: [Lung MASS]\n    negative: [no mass]\n');
    expect(loadPromptSet(y)).toEqual({ name: 'yset', labels: [{ label: 'Mass', positive: ['lung mass'], negative: ['no mass'] }] });
    fs.writeFileSync(j, '{ not json');
    expect(configError(() => loadPromptSet(j))).toMatch(/not valid JSON/);
  });

  it('validates files with errors that name the bad field', () => {
    const v = (o: unknown) => configError(() => promptSetFromObject(o, 'f.json'));
    expect(v([])).toMatch(/labels/);
    expect(v({ labels: [] })).toMatch(/labels must be a non-empty array/);
    expect(v({ labels: [{ label: 'A' }] })).toMatch(/labels\[0\]\.positive is missing/);
    expect(v({ templates: { positive: ['there is'] }, labels: [{ label: 'A' }] })).toMatch(/templates\.positive\[0\] must contain "\{label\}"/);
    expect(v({ templates: { positive: ['{lable}'] }, labels: [{ label: 'A' }] })).toMatch(/must contain/);
    expect(v({ templates: { positive: ['{label} {x}'], negative: ['no {label}'] }, labels: [{ label: 'A' }] })).toMatch(/unknown placeholder \{x\}/);
    expect(v({ labels: [{ label: 'A', positive: ['a'], negative: [''] }] })).toMatch(/labels\[0\]\.negative\[0\] must be a non-empty string/);
    expect(v({ labels: [{ label: 'A', positive: ['a'], negative: ['b'] }, { label: 'a', positive: ['a'], negative: ['b'] }] })).toMatch(/labels\[1\]\.label repeats "a"/);
    expect(v({ labels: [{ label: 'A', positive: ['a'], negative: ['b'], synonym: ['x'] }] })).toMatch(/labels\[0\]\.synonym is not a known field/);
    expect(v({ label: [] })).toMatch(/"label" is not a known field/);
    expect(v({ lowercase: 'yes', labels: [{ label: 'A', positive: ['a'], negative: ['b'] }] })).toMatch(/lowercase must be true or false/);
    expect(v({ labels: [{ label: 'A', positive: ['a'], negative: ['a'] }] })).toMatch(/both a positive and a negative/);
  });

  it('rejects an unknown name that is not a file', () => {
    expect(configError(() => loadPromptSet('no-such-set'))).toMatch(/unknown prompt set "no-such-set".*chexzero/);
    expect(configError(() => promptsFor(loadPromptSet(), 'Hernia'))).toMatch(/has no label "Hernia"/);
  });
});

describe('canonicalLabel', () => {
  it('maps dataset label names to canonical names', () => {
    expect(canonicalLabel('ChestX-ray14', 'Effusion')).toBe('Pleural Effusion');
    expect(canonicalLabel('nih', 'Pleural_Thickening')).toBe('Pleural Thickening');
    expect(canonicalLabel('padchest', 'normal')).toBe('No Finding');
    expect(canonicalLabel('padchest', 'pleural effusion')).toBe('Pleural Effusion');
    expect(canonicalLabel('VinDr-CXR', 'Pleural effusion')).toBe('Pleural Effusion');
    expect(canonicalLabel('vindr', 'No finding')).toBe('No Finding');
    expect(canonicalLabel('vindr', 'Pulmonary fibrosis')).toBe('Fibrosis');
    for (const l of CHEXPERT14) {
      expect(canonicalLabel('chexpert', l)).toBe(l);
      expect(canonicalLabel('MIMIC-CXR', l.toLowerCase())).toBe(l);
    }
  });

  it('every CheXpert canonical name of another dataset has a chexzero prompt when it is a CheXpert label', () => {
    const set = loadPromptSet();
    for (const ds of ['chestxray14', 'padchest', 'vindr']) {
      for (const l of ['Effusion', 'pleural effusion', 'Pleural effusion', 'Cardiomegaly', 'cardiomegaly']) {
        const c = canonicalLabel(ds, l);
        if (CHEXPERT14.includes(c)) expect(() => promptsFor(set, c)).not.toThrow();
      }
    }
  });

  it('passes unlisted names through, or rejects them when strict, and rejects unknown datasets', () => {
    expect(canonicalLabel('vindr', 'Some_new  label')).toBe('Some new label');
    expect(configError(() => canonicalLabel('vindr', 'Some new label', { strict: true }))).toMatch(/not in the vindr label map/);
    expect(configError(() => canonicalLabel('imagenet', 'cat'))).toMatch(/no label map for dataset "imagenet"/);
  });
});
