/**
 * Hostile flag values: each must end, within seconds, in E_CONFIG (exit code 2) naming the flag, with no
 * stack trace and nothing written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli';

const CASES: Array<[string, string[], RegExp]> = [
  ['predict --workers -3', ['predict', '--checkpoint', 'm', '--images', 'a.png', '--out', 'OUT/p.csv', '--workers', '-3'], /--workers must be an integer >= 0, got -3/],
  ['eval --workers 1.5', ['eval', '--checkpoint', 'm', '--dataset', 'shards', '--root', 'r', '--out', 'OUT', '--workers', '1.5'], /--workers must be an integer >= 0, got 1\.5/],
  ['predict --batch-size 0', ['predict', '--checkpoint', 'm', '--images', 'a.png', '--out', 'OUT/p.csv', '--batch-size', '0'], /--batch-size must be an integer >= 1/],
  ['prepare --concurrency 0', ['prepare', '--csv', 'i.csv', '--image-col', 'p', '--out', 'OUT', '--concurrency', '0'], /--concurrency must be an integer >= 1, got 0/],
  ['prepare --shard-size 0', ['prepare', '--csv', 'i.csv', '--image-col', 'p', '--out', 'OUT', '--shard-size', '0'], /--shard-size must be an integer >= 1/],
  ['prepare --image-size 2', ['prepare', '--csv', 'i.csv', '--image-col', 'p', '--out', 'OUT', '--image-size', '2'], /--image-size must be an integer >= 8/],
  ['prepare --size abc (old spelling)', ['prepare', '--csv', 'i.csv', '--image-col', 'p', '--out', 'OUT', '--size', 'abc'], /--image-size must be an integer >= 8, got NaN/],
  ['score --threshold 2', ['score', '--truth', 't.csv', '--pred', 'p.csv', '--threshold', '2', '--out', 'OUT'], /--threshold must be a number in \[0, 1\], got 2/],
  ['score --bootstrap -1', ['score', '--truth', 't.csv', '--pred', 'p.csv', '--bootstrap', '-1'], /--bootstrap must be an integer >= 0, got -1/],
  ['eval --threshold -0.1', ['eval', '--checkpoint', 'm', '--dataset', 'shards', '--root', 'r', '--out', 'OUT', '--threshold', '-0.1'], /--threshold must be a number in \[0, 1\]/],
  ['synth --quality 500', ['synth', '--out', 'OUT', '--n', '10', '--quality', '500'], /--quality must be an integer in \[1, 100\], got 500/],
  ['synth --quality 0', ['synth', '--out', 'OUT', '--n', '10', '--quality', '0'], /--quality must be an integer in \[1, 100\], got 0/],
  ['synth --split-fractions 0.5,1.5,0', ['synth', '--out', 'OUT', '--n', '10', '--split-fractions', '0.5,1.5,0'], /--split-fractions .* each in \[0, 1\] \(1\.5 is not\)/],
  ['synth --split-fractions -0.1,0.6,0.5', ['synth', '--out', 'OUT', '--n', '10', '--split-fractions=-0.1,0.6,0.5'], /--split-fractions .* each in \[0, 1\]/],
  ['synth --split-fractions 0,0,0', ['synth', '--out', 'OUT', '--n', '10', '--split-fractions', '0,0,0'], /--split-fractions .* a positive sum/],
  ['synth --split-fractions 0.8,0.2', ['synth', '--out', 'OUT', '--n', '10', '--split-fractions', '0.8,0.2'], /--split-fractions .* three numbers/],
  ['synth --n 0', ['synth', '--out', 'OUT', '--n', '0'], /--n must be an integer >= 1/],
  ['synth --finding-strength 3', ['synth', '--out', 'OUT', '--n', '10', '--finding-strength', '3'], /--finding-strength must be a number in \(0, 2\]/],
  ['synth --seed -1', ['synth', '--out', 'OUT', '--n', '10', '--seed', '-1'], /--seed must be an integer >= 0/],
  ['serve --port 70000', ['serve', '--checkpoint', 'm', '--port', '70000'], /--port must be an integer in \[0, 65535\]/],
  ['serve --max-upload-mb 0', ['serve', '--checkpoint', 'm', '--max-upload-mb', '0'], /--max-upload-mb must be a positive number/],
  ['embed --device gpu', ['embed', '--checkpoint', 'm', '--texts', 'x', '--out', 'OUT/e.json', '--device', 'gpu'], /--device must be "auto", "cpu" or "cuda:N", got "gpu"/],
  ['demo --threads 0', ['demo', '--out', 'OUT', '--threads', '0'], /--threads must be an integer >= 1/],
  ['report --limit -1', ['report', '--csv', 'r.csv', '--limit', '-1'], /--limit must be an integer >= 0/],
  ['train --nproc 0', ['train', '--out', 'OUT', '--nproc', '0'], /--nproc must be an integer >= 1/],
  ['train --workers -1 (the config schema)', ['train', '--out', 'OUT', '--workers', '-1', '--dry-run'], /"data\.workers" must be an integer >= 0/],
  ['an unknown flag', ['synth', '--out', 'OUT', '--qualty', '50'], /Unknown flag --qualty \(did you mean --quality\?\)/],
];

describe('hostile flag values', () => {
  // Loads (and transpiles) the commands once, so that the timings below are the CLI's, not jest's.
  beforeAll(async () => {
    await runCli(['models', '--jsn']);
  });

  test.each(CASES)('%s: E_CONFIG naming the flag, no stack, nothing written', async (_name, args, want) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-opt-'));
    const out = path.join(dir, 'out');
    try {
      const t0 = Date.now();
      const r = await runCli(args.map((a) => a.replace(/^OUT/, out)));
      expect(Date.now() - t0).toBeLessThan(10000);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^cxr-train: E_CONFIG: /m);
      expect(r.err).toMatch(want);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.out).toBe('');
      expect(fs.existsSync(out)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
