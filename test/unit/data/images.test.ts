import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { decodeImage, decodeToBase, finishImage, loadImage, normalizeCoefficients, preprocessGray, toBase, drawAugment, CLIP_MEAN, CLIP_STD, CHEXZERO_MEAN, CHEXZERO_STD } from '../../../lib/data/images';
import { makeDicom, makePng, rleFrame8 } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-img-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('decode', () => {
  test('16-bit PNG keeps 16-bit precision; 8-bit PNG and JPEG decode to [0,1]', async () => {
    const vals = [0, 1, 256, 65535, 30000, 12345];
    const img = await decodeImage(makePng(3, 2, vals, 16));
    expect(img.width).toBe(3);
    expect(img.height).toBe(2);
    vals.forEach((v, i) => expect(img.data[i]).toBeCloseTo(v / 65535, 6));
    // Values 1 and 256 differ in 16-bit but would collapse to the same 8-bit value.
    expect(img.data[1]).not.toBe(img.data[2]);
    const p8 = await decodeImage(makePng(2, 2, [0, 64, 128, 255], 8));
    expect(Array.from(p8.data)).toEqual([0, 64 / 255, 128 / 255, 1].map((v) => Math.fround(v)));
    const raw = Buffer.alloc(32 * 32, 200);
    const jpg = await sharp(raw, { raw: { width: 32, height: 32, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
    const f = path.join(tmp, 'a.jpg');
    fs.writeFileSync(f, jpg);
    const j = await decodeImage(f);
    expect(j.width).toBe(32);
    expect(Math.abs(j.data[100] - 200 / 255)).toBeLessThan(0.02);
    // RGB input becomes one grey channel.
    const rgb = await sharp(Buffer.alloc(8 * 8 * 3, 100), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
    const g = await decodeImage(rgb);
    expect(g.data.length).toBe(64);
  });

  test('corrupt, truncated, empty and oversized files are E_DATA; a missing file is E_IO', async () => {
    const jpg = await sharp(Buffer.alloc(64 * 64, 90), { raw: { width: 64, height: 64, channels: 1 } }).jpeg().toBuffer();
    const cases: [string, Buffer][] = [
      ['zero.jpg', Buffer.alloc(0)],
      ['trunc.jpg', jpg.subarray(0, Math.floor(jpg.length / 2))],
      ['garbage.png', Buffer.from('this is not an image at all, just text')],
      ['huge.png', makePng(4, 4, new Array(16).fill(0), 8, [20000, 20000])],
    ];
    for (const [name, buf] of cases) {
      const f = path.join(tmp, name);
      fs.writeFileSync(f, buf);
      await expect(decodeImage(f)).rejects.toMatchObject({ code: 'E_DATA' });
      await expect(decodeToBase(f, 16)).rejects.toMatchObject({ code: 'E_DATA' });
    }
    await expect(decodeImage(path.join(tmp, 'huge.png'))).rejects.toThrow(/pixel limit/i);
    await expect(decodeImage(path.join(tmp, 'nope.jpg'))).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('DICOM', () => {
  test('16-bit MONOCHROME2 without a window uses the full range', async () => {
    const px = [100, 200, 300, 1100];
    const img = await decodeImage(makeDicom({ rows: 2, cols: 2, pixels: px }));
    expect(Array.from(img.data)).toEqual([0, 0.1, 0.2, 1].map(Math.fround));
  });

  test('MONOCHROME1 is inverted after rescale slope/intercept and the file window', async () => {
    // stored 0..3 → modality = 2*v - 10 → -10, -8, -6, -4; window centre -7, width 5 (DICOM linear VOI).
    const buf = makeDicom({ rows: 1, cols: 4, pixels: [0, 1, 2, 3], photometric: 'MONOCHROME1', slope: 2, intercept: -10, windowCenter: -7, windowWidth: 5, bitsStored: 12 });
    const img = await decodeImage(buf);
    const voi = (x: number) => (x <= -7.5 - 2 ? 0 : x > -7.5 + 2 ? 1 : (x + 7.5) / 4 + 0.5);
    [-10, -8, -6, -4].forEach((x, i) => expect(img.data[i]).toBeCloseTo(1 - voi(x), 6));
    const full = await decodeImage(buf, { dicomWindow: 'full' });
    [1, 2 / 3, 1 / 3, 0].forEach((v, i) => expect(full.data[i]).toBeCloseTo(v, 6));
  });

  test('signed pixels, implicit VR, 8-bit RLE and JPEG baseline frames', async () => {
    const signed = await decodeImage(makeDicom({ rows: 1, cols: 3, pixels: [0xffff, 0, 1], signed: true }));
    expect(Array.from(signed.data)).toEqual([0, 0.5, 1]);
    const implicit = await decodeImage(makeDicom({ rows: 1, cols: 2, pixels: [5, 15], transferSyntax: '1.2.840.10008.1.2' }));
    expect(Array.from(implicit.data)).toEqual([0, 1]);
    const px = new Uint8Array(200).map((_, i) => i);
    const rle = await decodeImage(makeDicom({ rows: 10, cols: 20, pixels: [], bitsAllocated: 8, transferSyntax: '1.2.840.10008.1.2.5', encapsulated: rleFrame8(px) }));
    expect(Array.from(rle.data)).toEqual(Array.from(px).map((v) => Math.fround(v / 199)));
    const jpg = await sharp(Buffer.alloc(16 * 16, 180), { raw: { width: 16, height: 16, channels: 1 } }).jpeg({ quality: 100 }).toBuffer();
    const j = await decodeImage(makeDicom({ rows: 16, cols: 16, pixels: [], bitsAllocated: 8, transferSyntax: '1.2.840.10008.1.2.4.50', encapsulated: jpg, windowCenter: 128, windowWidth: 256 }));
    expect(j.width).toBe(16);
    expect(Math.abs(j.data[40] - (180 - 127.5) / 255 - 0.5)).toBeLessThan(0.02);
  });

  test('unsupported transfer syntaxes are E_UNSUPPORTED_DICOM; truncated pixel data is E_DATA', async () => {
    await expect(decodeImage(makeDicom({ rows: 4, cols: 4, pixels: [], transferSyntax: '1.2.840.10008.1.2.4.90', encapsulated: Buffer.alloc(20) }))).rejects.toMatchObject({ code: 'E_UNSUPPORTED_DICOM' });
    const full = makeDicom({ rows: 8, cols: 8, pixels: new Array(64).fill(7) });
    await expect(decodeImage(makeDicom({ rows: 8, cols: 8, pixels: new Array(64).fill(7), truncateTo: full.length - 40 }))).rejects.toMatchObject({ code: 'E_DATA' });
    const bad = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([2, 0, 0x10, 0, 0x55, 0x49, 0xff, 0xff])]);
    await expect(decodeImage(bad)).rejects.toMatchObject({ code: 'E_DATA' });
  });
});

describe('geometry, normalisation, augmentation', () => {
  test("'pad' keeps the aspect ratio and zero-pads; 'crop' centre-crops the shorter side", async () => {
    const w = 40;
    const h = 20;
    const ones = { data: new Float32Array(w * h).fill(1), width: w, height: h };
    const pad = toBase(ones, 16, 'pad');
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) expect(pad[y * 16 + x]).toBeCloseTo(y >= 4 && y < 12 ? 1 : 0, 5);
    const halves = new Float32Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) halves[y * w + x] = x < 20 ? 0 : 1;
    const crop = toBase({ data: halves, width: w, height: h }, 10, 'crop');
    for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) expect(crop[y * 10 + x]).toBeCloseTo(x < 5 ? 0 : 1, 5);
    // libvips path gives the same geometry for files.
    const png = makePng(w, h, Array.from(halves, (v) => v * 255), 8);
    const vpad = await decodeToBase(png, 16, 'pad');
    expect(vpad[0]).toBeCloseTo(0, 2);
    expect(vpad[8 * 16 + 14]).toBeCloseTo(1, 1);
    expect(vpad[2 * 16 + 14]).toBeCloseTo(0, 2);
    const vcrop = await decodeToBase(png, 10, 'crop');
    expect(vcrop[5 * 10 + 1]).toBeCloseTo(0, 1);
    expect(vcrop[5 * 10 + 8]).toBeCloseTo(1, 1);
  });

  test('normalisation presets and 3 identical channels in CHW', () => {
    const base = new Float32Array(4).fill(0.5);
    const clip = finishImage(base, { size: 2, normalize: 'clip' });
    expect(clip.length).toBe(12);
    for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) expect(clip[c * 4 + i]).toBeCloseTo((0.5 - CLIP_MEAN[c]) / CLIP_STD[c], 5);
    const cz = finishImage(base, { size: 2, normalize: 'chexzero' });
    for (let i = 0; i < 12; i++) expect(cz[i]).toBeCloseTo((127.5 - CHEXZERO_MEAN) / CHEXZERO_STD, 5);
    const custom = normalizeCoefficients({ mean: [128], std: [64], scale: 255 });
    expect(0.5 * custom.scale[0] + custom.offset[0]).toBeCloseTo((127.5 - 128) / 64, 6);
    expect(() => normalizeCoefficients({ mean: [0.5], std: [0] })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    const none = finishImage(base, { size: 2, normalize: 'none' });
    expect(Array.from(none)).toEqual(new Array(12).fill(0.5));
  });

  test('augmentations are seeded, never flip by default, and leave images in range', () => {
    const S = 32;
    const img = new Float32Array(S * S);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) img[y * S + x] = x < S / 4 ? 1 : 0.2; // bright left band
    const aug = { scale: [0.6, 1] as [number, number], rotateDeg: 10, translate: 0.05, brightness: 0.2, contrast: 0.2 };
    const opts = { size: S, normalize: 'none' as const, augment: aug };
    const a1 = finishImage(img, opts, 1234);
    const a2 = finishImage(img, opts, 1234);
    const b = finishImage(img, opts, 99);
    expect(Buffer.from(a1.buffer).equals(Buffer.from(a2.buffer))).toBe(true);
    expect(Buffer.from(a1.buffer).equals(Buffer.from(b.buffer))).toBe(false);
    for (const v of a1) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    // Over many seeds the bright band stays on the left: no horizontal flips.
    let brighterLeft = 0;
    for (let s = 0; s < 40; s++) {
      const o = finishImage(img, { ...opts, augment: { ...aug, brightness: 0, contrast: 0 } }, s);
      let left = 0;
      let right = 0;
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S / 2; x++) {
          left += o[y * S + x];
          right += o[y * S + S - 1 - x];
        }
      // A crop can miss the band entirely (equal halves) but never mirrors it to the right.
      expect(left).toBeGreaterThanOrEqual(right);
      if (left > right) brighterLeft++;
      expect(drawAugment(aug, s).flip).toBe(false);
    }
    expect(brighterLeft).toBeGreaterThan(25);
    const withFlip = Array.from({ length: 40 }, (_, s) => drawAugment({ hflip: true }, s).flip);
    expect(withFlip.some((f) => f) && withFlip.some((f) => !f)).toBe(true);
    const d = drawAugment(aug, 5);
    expect(d.cropW * d.cropH).toBeGreaterThanOrEqual(0.6 * 0.999 - 0.25); // clipped to the image when the ratio pushes a side past 1
    expect(Math.abs(d.angle)).toBeLessThanOrEqual((10 * Math.PI) / 180);
    // No augmentation: identical to the plain transform.
    const plain = finishImage(img, { size: S, normalize: 'none' });
    expect(Array.from(plain)).toEqual(Array.from(finishImage(img, { size: S, normalize: 'none', augment: {} }, 7)));
  });

  test('loadImage and preprocessGray produce CHW of the requested size', async () => {
    const f = path.join(tmp, 'b.png');
    fs.writeFileSync(f, makePng(50, 30, new Array(1500).fill(128), 8));
    const t = await loadImage(f, { size: 24, geometry: 'crop', normalize: 'none' });
    expect(t.length).toBe(3 * 24 * 24);
    expect(t[24 * 12 + 12]).toBeCloseTo(128 / 255, 2);
    const out = new Float32Array(2 * 3 * 8 * 8);
    preprocessGray({ data: new Float32Array(16 * 16).fill(0.25), width: 16, height: 16 }, { size: 8, normalize: 'none' }, 0, out, 3 * 64);
    expect(out[0]).toBe(0);
    expect(out[3 * 64]).toBeCloseTo(0.25, 6);
  });
});
