/**
 * The shared setting of the eval end-to-end tests: a small synthetic MIMIC-CXR-JPG layout (100 images of
 * 32 px, reports included) and two untrained test-vit folders, in a temporary folder removed after the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSynthetic } from '../../lib/data/synthetic';
import { ClipModel } from '../../lib/models/ClipModel';

/** Registers beforeAll/afterAll hooks and returns the paths they fill. */
export function tinyEvalSetup(prefix: string): { tmp: string; ds: string; modelA: string; modelB: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const paths = { tmp, ds: path.join(tmp, 'ds'), modelA: path.join(tmp, 'model-a'), modelB: path.join(tmp, 'model-b') };
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  beforeAll(async () => {
    await generateSynthetic({ n: 100, size: 32, seed: 5, outDir: paths.ds });
    for (const [dir, seed] of [[paths.modelA, 1], [paths.modelB, 2]] as const) {
      const m = ClipModel.create('test-vit', { device: 'cpu', seed });
      m.save(dir);
      m.dispose();
    }
  });
  return paths;
}
