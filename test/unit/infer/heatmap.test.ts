import sharp from 'sharp';
import { blendOverlay, colorMapRgba, normalizeMap, renderOverlayPng, viridis } from '../../../lib/infer/heatmap';
import { resolveSaliencyLabels } from '../../../lib/infer/saliency';

describe('heatmap rendering', () => {
  test('viridis: matplotlib end points and mid point, monotone luminance', () => {
    expect(viridis(0)).toEqual([68, 1, 84]);
    expect(viridis(1)).toEqual([253, 231, 37]);
    expect(viridis(0.5)).toEqual([38, 130, 142]);
    expect(viridis(NaN)).toEqual([68, 1, 84]);
    expect(viridis(7)).toEqual([253, 231, 37]);
    const lum = (c: number[]) => 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    for (let t = 0; t < 1; t += 0.01) expect(lum(viridis(t + 0.01))).toBeGreaterThan(lum(viridis(t)));
  });

  test('maps are scaled by their maximum; an all-zero map stays zero; NaN is E_NUMERIC', () => {
    expect(Array.from(normalizeMap(new Float32Array([0, 2, 4])))).toEqual([0, 0.5, 1]);
    expect(Array.from(normalizeMap(new Float32Array(3)))).toEqual([0, 0, 0]);
    expect(() => normalizeMap(new Float32Array([1, NaN]))).toThrow(expect.objectContaining({ code: 'E_NUMERIC' }));
  });

  test('blend: opacity 0 is the grey image, opacity 1 the colour map', () => {
    const grey = new Float32Array([0, 0.5, 1, 0.25]);
    const map = new Float32Array([0, 1, 2, 4]);
    const g = blendOverlay(grey, map, 2, 0);
    expect(Array.from(g.subarray(0, 6))).toEqual([0, 0, 0, 128, 128, 128]);
    const c = blendOverlay(grey, map, 2, 1);
    expect(Array.from(c.subarray(9, 12))).toEqual([253, 231, 37]);
    expect(Array.from(colorMapRgba(map, 2).subarray(12, 16))).toEqual([253, 231, 37, 255]);
    expect(() => blendOverlay(grey, new Float32Array(3), 2)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => blendOverlay(grey, map, 2, 1.5)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });

  test('the overlay PNG has the requested size and colour where the map is high', async () => {
    const S = 32;
    const grey = new Float32Array(S * S).fill(0.5);
    const map = new Float32Array(S * S);
    for (let y = 0; y < 8; y++) for (let x = 24; x < 32; x++) map[y * S + x] = 1; // top-right corner hot
    const png = await renderOverlayPng({ grey, map, size: S, label: 'Pleural Effusion <&>', probability: 0.8123, outSize: 256 });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([256, 256]);
    // Inside the hot corner (below the title bar): yellow-green (red and green high, blue low).
    const at = (x: number, y: number) => Array.from(data.subarray((y * 256 + x) * info.channels, (y * 256 + x) * info.channels + 3));
    const hot = at(240, 50);
    expect(hot[1]).toBeGreaterThan(150);
    expect(hot[2]).toBeLessThan(100);
    // A cold spot is grey mixed with viridis' dark purple: blue above green.
    const cold = at(60, 150);
    expect(cold[2]).toBeGreaterThan(cold[1]);
  });

  test('labels: all by default, prompt-set order, unknown names are E_CONFIG', () => {
    const known = ['Atelectasis', 'Cardiomegaly', 'Pleural Effusion'];
    expect(resolveSaliencyLabels(known)).toEqual(known);
    expect(resolveSaliencyLabels(known, ['Pleural Effusion', ' Atelectasis'])).toEqual(['Atelectasis', 'Pleural Effusion']);
    expect(() => resolveSaliencyLabels(known, ['Effusion'])).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
