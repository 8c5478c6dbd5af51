import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chexpertAdapter, applyUncertainty } from '../../../lib/data/adapters/chexpert';
import { chestXray14Adapter, CXR14_LABELS } from '../../../lib/data/adapters/chestxray14';
import { padchestAdapter, parsePadchestLabels } from '../../../lib/data/adapters/padchest';
import { vindrCxrAdapter } from '../../../lib/data/adapters/vindrCxr';
import { openIAdapter } from '../../../lib/data/adapters/openI';
import { getAdapter, listAdapters } from '../../../lib/data/adapters';
import { CHEXPERT_LABELS } from '../../../lib/data/sample';
import { decodeImage } from '../../../lib/data/images';
import { makeDicom, makePng } from './helpers';

const tmps: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-ad2-'));
  tmps.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmps) fs.rmSync(d, { recursive: true, force: true });
});
function put(root: string, rel: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), data);
}
const png = () => makePng(4, 4, new Array(16).fill(100), 8);

test('registry lists every adapter and refuses unknown names', () => {
  const names = listAdapters().map((a) => a.name);
  expect(names).toEqual(expect.arrayContaining(['mimic-cxr', 'chexpert', 'chestx-ray14', 'padchest', 'vindr-cxr', 'openi', 'csv']));
  expect(() => getAdapter('nope')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
});

describe('CheXpert', () => {
  const header = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', ...CHEXPERT_LABELS].join(',');
  const row = (p: string, fl: string, appa: string, vals: Record<string, string>) => [p, 'Female', '68', fl, appa, ...CHEXPERT_LABELS.map((l) => vals[l] ?? '')].join(',');
  function build(): string {
    const root = tmp();
    const d = 'CheXpert-v1.0-small';
    put(root, 'train/patient00001/study1/view1_frontal.jpg', png());
    put(root, 'train/patient00001/study1/view2_lateral.jpg', png());
    put(root, 'train/patient00002/study1/view1_frontal.jpg', png());
    put(root, 'valid/patient64541/study1/view1_frontal.jpg', png());
    put(
      root,
      'train.csv',
      [
        header,
        row(`${d}/train/patient00001/study1/view1_frontal.jpg`, 'Frontal', 'AP', { Cardiomegaly: '1.0', Edema: '-1.0', 'No Finding': '' }),
        row(`${d}/train/patient00001/study1/view2_lateral.jpg`, 'Lateral', '', { Cardiomegaly: '1.0', Edema: '-1.0' }),
        row(`${d}/train/patient00002/study1/view1_frontal.jpg`, 'Frontal', 'PA', { 'No Finding': '1.0', Atelectasis: 'yes' }),
        row(`${d}/train/patient00003/study1/view1_frontal.jpg`, 'Frontal', 'PA', {}),
        row(`${d}/../../etc/patient00004/study1/x.jpg`, 'Frontal', 'PA', {}),
      ].join('\n'),
    );
    put(root, 'valid.csv', [header, row(`${d}/valid/patient64541/study1/view1_frontal.jpg`, 'Frontal', 'AP', { Edema: '0.0', 'Pleural Effusion': '1.0' })].join('\n'));
    put(root, 'df_chexpert_plus.csv', 'path_to_image,section_findings,section_impression,report\n' + 'train/patient00001/study1/view1_frontal.jpg,"Heart is enlarged.","Cardiomegaly.",\n');
    return root;
  }

  test('official CSVs, views, splits, reports, issues', async () => {
    const root = build();
    const m = await chexpertAdapter.load({ root, reportsCsv: 'df_chexpert_plus.csv' });
    expect(m.samples.map((s) => [s.patientId, s.studyId, s.view, s.split])).toEqual([
      ['patient00001', 'patient00001/study1', 'AP', 'train'],
      ['patient00001', 'patient00001/study1', 'LATERAL', 'train'],
      ['patient00002', 'patient00002/study1', 'PA', 'train'],
      ['patient64541', 'patient64541/study1', 'AP', 'validate'],
    ]);
    expect(m.samples[0].labels.Cardiomegaly).toBe(1);
    expect(m.samples[0].labels.Edema).toBe(-1);
    expect(m.samples[0].labels['No Finding']).toBeNaN();
    expect(m.samples[0].report).toBe('FINDINGS: Heart is enlarged.\nIMPRESSION: Cardiomegaly.');
    expect(m.samples[0].meta).toMatchObject({ sex: 'Female', age: 68 });
    expect(m.issues.byKind).toEqual({ 'bad-label': 1, 'missing-file': 1, 'bad-row': 1 });
    const frontal = await chexpertAdapter.load({ root, views: ['FRONTAL'], splits: ['train'] });
    expect(frontal.samples.map((s) => s.view)).toEqual(['AP', 'PA']);
    await expect(chexpertAdapter.load({ root, strict: true })).rejects.toMatchObject({ code: 'E_DATA' });
  });

  test('uncertainty policies', async () => {
    const root = build();
    const ones = await chexpertAdapter.load({ root, uncertain: 'ones' });
    expect(ones.samples[0].labels.Edema).toBe(1);
    const zeros = await chexpertAdapter.load({ root, uncertain: 'zeros' });
    expect(zeros.samples[0].labels.Edema).toBe(0);
    const ign = await chexpertAdapter.load({ root, uncertain: 'ignore' });
    expect(ign.samples[0].labels.Edema).toBeNaN();
    const mixed = await chexpertAdapter.load({ root, uncertain: 'zeros', uncertainPerLabel: { Edema: 'ones' } });
    expect(mixed.samples[0].labels.Edema).toBe(1);
    expect(applyUncertainty(0, 'ones')).toBe(0);
    expect(applyUncertainty(-1, 'keep')).toBe(-1);
  });
});

test('ChestX-ray14: Data_Entry CSV, official lists, images_0XX folders', async () => {
  const root = tmp();
  put(root, 'images_001/images/00000001_000.png', png());
  put(root, 'images_001/images/00000001_001.png', png());
  put(root, 'images_002/images/00000002_000.png', png());
  put(
    root,
    'Data_Entry_2017_v2020.csv',
    [
      'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]',
      '00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,2682,2749,0.143,0.143',
      '00000001_001.png,No Finding,1,1,58,M,PA,2894,2729,0.143,0.143',
      '00000002_000.png,Hernia|Unicorn,0,2,81,F,AP,2500,2048,0.168,0.168',
      '00000003_000.png,No Finding,0,3,20,F,PA,2500,2048,0.168,0.168',
    ].join('\n'),
  );
  put(root, 'train_val_list.txt', '00000001_000.png\n00000001_001.png\n');
  put(root, 'test_list.txt', '00000002_000.png\n00000003_000.png\n');
  const m = await chestXray14Adapter.load({ root });
  expect(m.labelNames).toEqual([...CXR14_LABELS, 'No Finding']);
  expect(m.samples.map((s) => s.imagePath)).toEqual(['images_001/images/00000001_000.png', 'images_001/images/00000001_001.png', 'images_002/images/00000002_000.png']);
  expect(m.samples[0].labels).toMatchObject({ Cardiomegaly: 1, Effusion: 1, Hernia: 0, 'No Finding': 0 });
  expect(m.samples[1].labels['No Finding']).toBe(1);
  expect(m.samples.map((s) => s.split)).toEqual(['train', 'train', 'test']);
  expect(m.samples[2].view).toBe('AP');
  expect(m.issues.byKind).toEqual({ 'bad-label': 1, 'missing-file': 1 });
  const test = await chestXray14Adapter.load({ root, splits: ['test'] });
  expect(test.samples).toHaveLength(1);
});

test('PadChest: label lists, Spanish reports, 16-bit PNGs under ImageDir', async () => {
  const root = tmp();
  put(root, '0/a.png', makePng(3, 3, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 65535], 16));
  put(root, '1/b.png', png());
  put(root, '1/c.png', png());
  const hdr = 'ImageID,ImageDir,StudyID,PatientID,Projection,Report,Labels';
  put(
    root,
    'PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv',
    [hdr, `a.png,0,s1,p1,PA,"cardiomegalia leve, sin derrame","['cardiomegaly', ' pleural effusion']"`, `b.png,1,s2,p2,L,normal,['normal']`, `c.png,1,s3,p3,PA,x,nolist`, `d.png,../..,s4,p4,PA,x,['normal']`].join('\n'),
  );
  expect(parsePadchestLabels("['a', 'b c']")).toEqual(['a', 'b c']);
  expect(parsePadchestLabels('[]')).toEqual([]);
  const m = await padchestAdapter.load({ root });
  expect(m.labelNames).toEqual(['cardiomegaly', 'normal', 'pleural effusion']);
  expect(m.samples).toHaveLength(2);
  expect(m.samples[0]).toMatchObject({ id: 'a.png', imagePath: '0/a.png', patientId: 'p1', studyId: 's1', view: 'PA', report: 'cardiomegalia leve, sin derrame' });
  expect(m.samples[0].labels).toEqual({ cardiomegaly: 1, normal: 0, 'pleural effusion': 1 });
  expect(m.issues.byKind).toEqual({ 'bad-label': 1, 'outside-root': 1 });
  const img = await decodeImage(path.join(root, m.samples[0].imagePath));
  expect(img.data[1]).toBeCloseTo(1000 / 65535, 6);
});

test('VinDr-CXR: DICOM, reader aggregation majority / any / all', async () => {
  const root = tmp();
  put(root, 'train/img1.dicom', makeDicom({ rows: 2, cols: 2, pixels: [0, 1, 2, 3], photometric: 'MONOCHROME1' }));
  put(root, 'test/img2.dicom', makeDicom({ rows: 2, cols: 2, pixels: [0, 1, 2, 3] }));
  put(root, 'annotations/image_labels_train.csv', ['image_id,rad_id,Cardiomegaly,Nodule/Mass,No finding', 'img1,R1,1,1,0', 'img1,R2,1,0,0', 'img1,R3,0,0,1', 'img9,R1,0,0,1', 'img1,R4,2,0,0'].join('\n'));
  put(root, 'annotations/image_labels_test.csv', ['image_id,Cardiomegaly,Nodule/Mass,No finding', 'img2,0,1,0'].join('\n'));
  const maj = await vindrCxrAdapter.load({ root });
  expect(maj.labelNames).toEqual(['Cardiomegaly', 'Nodule/Mass', 'No finding']);
  expect(maj.samples.map((s) => [s.id, s.split, s.imagePath])).toEqual([
    ['img1', 'train', 'train/img1.dicom'],
    ['img2', 'test', 'test/img2.dicom'],
  ]);
  expect(maj.samples[0].labels).toEqual({ Cardiomegaly: 1, 'Nodule/Mass': 0, 'No finding': 0 });
  expect(maj.samples[0].meta).toMatchObject({ nReaders: 3 });
  expect(maj.issues.byKind).toEqual({ 'bad-label': 1, 'missing-file': 1 });
  const any = await vindrCxrAdapter.load({ root, aggregation: 'any' });
  expect(any.samples[0].labels).toEqual({ Cardiomegaly: 1, 'Nodule/Mass': 1, 'No finding': 1 });
  const all = await vindrCxrAdapter.load({ root, aggregation: 'all' });
  expect(all.samples[0].labels).toEqual({ Cardiomegaly: 0, 'Nodule/Mass': 0, 'No finding': 0 });
  const img = await decodeImage(path.join(root, maj.samples[0].imagePath));
  expect(img.data[0]).toBe(1); // MONOCHROME1 inverted
});

test('Open-I: XML reports with sections, MeSH labels and images', async () => {
  const root = tmp();
  const xml = (uid: string, findings: string, impression: string, major: string[], imgs: string[]) => `<?xml version="1.0" encoding="utf-8"?>
<eCitation><meta type="rr"/><uId id="${uid}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Cough &amp; fever</AbstractText>
<AbstractText Label="FINDINGS">${findings}</AbstractText>
<AbstractText Label="IMPRESSION">${impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>${major.map((m) => `<major>${m}</major>`).join('')}<automatic>noise</automatic></MeSH>
${imgs.map((i) => `<parentImage id="${i}"><figureId>F1</figureId></parentImage>`).join('\n')}
</eCitation>`;
  put(root, 'ecgen-radiology/1.xml', xml('CXR1', 'The heart is normal in size.', 'Normal chest x-&gt;ray.', ['normal'], ['CXR1_1_IM-0001-3001', 'CXR1_1_IM-0001-4001']));
  put(root, 'ecgen-radiology/2.xml', xml('CXR2', 'Cardiomegaly.', 'Enlarged heart.', ['Cardiomegaly/mild', 'Opacity/lung/base/left'], ['CXR2_1_IM-0652-1001', 'CXR2_1_IM-0652-2001']));
  for (const i of ['CXR1_1_IM-0001-3001', 'CXR1_1_IM-0001-4001', 'CXR2_1_IM-0652-1001']) put(root, `NLMCXR_png/${i}.png`, png());
  const m = await openIAdapter.load({ root });
  expect(m.labelNames).toEqual(['Cardiomegaly', 'Opacity', 'normal']);
  expect(m.samples.map((s) => s.id)).toEqual(['CXR1_1_IM-0001-3001', 'CXR1_1_IM-0001-4001', 'CXR2_1_IM-0652-1001']);
  expect(m.samples[0].report).toBe('FINDINGS: The heart is normal in size.\nIMPRESSION: Normal chest x->ray.');
  expect(m.samples[0].patientId).toBe('CXR1');
  expect(m.samples[2].labels).toEqual({ Cardiomegaly: 1, Opacity: 1, normal: 0 });
  expect(m.issues.byKind).toEqual({ 'missing-file': 1 });
});
