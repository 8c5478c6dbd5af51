import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { runCli } from '../../helpers/cli';
import { loadCommands } from '../../../lib/cli/index';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-vocab-'));

/** `--help` text (yargs prints it with console.log). */
async function help(args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
  try {
    const r = await runCli(args);
    return { code: r.code, text: lines.join('\n') + r.out };
  } finally {
    log.mockRestore();
  }
}

/** A CSV index in `dir/sub/` with image paths relative to it. */
async function csvDataset(dir: string): Promise<string> {
  const sub = path.join(dir, 'sub');
  fs.mkdirSync(path.join(sub, 'img'), { recursive: true });
  const rows = ['path,report,patient'];
  for (let i = 0; i < 6; i++) {
    const px = Buffer.alloc(20 * 20, (i * 37) % 255);
    await sharp(px, { raw: { width: 20, height: 20, channels: 1 } }).png().toFile(path.join(sub, 'img', `x${i}.png`));
    rows.push(`img/x${i}.png,Finding ${i}.,p${i % 3}`);
  }
  fs.writeFileSync(path.join(sub, 'index.csv'), rows.join('\n') + '\n');
  return path.join(sub, 'index.csv');
}

describe('one CLI vocabulary', () => {
  test('every command ends its --help with examples', async () => {
    const names = loadCommands().map((c) => String(c.command).split(' ')[0]);
    expect(names.length).toBeGreaterThan(10);
    for (const n of names) {
      const h = await help([n, '--help']);
      expect(h.code).toBe(0);
      const ex = h.text.lastIndexOf('Examples:');
      expect({ n, examples: ex > 0 && ex > h.text.lastIndexOf('Options:') }).toEqual({ n, examples: true });
      expect(h.text.slice(ex)).toContain(`cxr-train ${n}`);
      // Old spellings stay out of the help.
      expect(h.text).not.toMatch(/old spelling/);
    }
  });

  test('an unknown flag is named once, with the nearest valid flag, as E_CONFIG (exit 2)', async () => {
    for (const [args, want] of [
      [['synth', '--imgsize', '64'], 'Unknown flag --imgsize (did you mean --image-size?)'],
      [['prepare', '--image-siz', '64'], 'Unknown flag --image-siz (did you mean --image-size?)'],
      [['train', '--imgsize', '64'], 'Unknown flag --imgsize (did you mean --image-size?)'],
      [['predict', '--chekpoint', 'x'], 'Unknown flag --chekpoint (did you mean --checkpoint?)'],
      [['info', '--jsn'], 'Unknown flag --jsn (did you mean --json?)'],
    ] as const) {
      const r = await runCli([...args]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`E_CONFIG: ${want}`);
      expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.err).not.toMatch(/imgSize|imageSiz\b/);
      expect(r.out).toBe('');
    }
  });

  test('a stray argument is named as such', async () => {
    const r = await runCli(['synth', 'extra', '--out', path.join(os.tmpdir(), 'never-written')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/E_CONFIG: Unexpected argument "extra"/);
  });

  test('synth: --image-size, old --size with a note, --json alone on stdout', async () => {
    const d = tmp();
    try {
      const a = await runCli(['synth', '--out', path.join(d, 'a'), '--n', '10', '--image-size', '16', '--json', '--quiet']);
      expect(a.code).toBe(0);
      expect(a.err).toBe('');
      expect(JSON.parse(a.out)).toMatchObject({ images: 10, imageSize: 16 });
      const b = await runCli(['synth', '--out', path.join(d, 'b'), '--n', '10', '--size', '16', '--json', '--quiet']);
      expect(b.code).toBe(0);
      expect(JSON.parse(b.out).imageSize).toBe(16);
      expect(b.err).toBe('cxr-train: note: --size is now --image-size (the old spelling goes in the next release)\n');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  test('prepare --csv without --root reads paths relative to the CSV; --verify DIR; old --file and --verify --out', async () => {
    const d = tmp();
    try {
      const csv = await csvDataset(d);
      const out = path.join(d, 'shards');
      const p = await runCli(['prepare', '--csv', csv, '--image-col', 'path', '--text-col', 'report', '--patient-col', 'patient', '--out', out, '--image-size', '16', '--json', '--quiet']);
      expect(p.err).toBe('');
      expect(p.code).toBe(0);
      expect(JSON.parse(p.out)).toMatchObject({ dataset: 'csv', images: 6, imageSize: 16 });
      const v = await runCli(['prepare', '--verify', out, '--json']);
      expect(v.code).toBe(0);
      expect(JSON.parse(v.out)).toMatchObject({ ok: true, images: 6 });
      const t = await runCli(['prepare', '--verify', out]);
      expect(t.out).toMatch(/^OK: 1 shard\(s\), 6 image\(s\)/);
      const old = await runCli(['prepare', '--verify', '--out', out]);
      expect(old.code).toBe(0);
      expect(old.out).toMatch(/^OK/);
      const out2 = path.join(d, 'shards2');
      const f = await runCli(['prepare', '--dataset', 'csv', '--file', csv, '--image-col', 'path', '--out', out2, '--size', '16', '--quiet']);
      expect(f.code).toBe(0);
      expect(f.err).toContain('--file is now --csv');
      expect(f.err).toContain('--size is now --image-size');
      expect(f.out).toMatch(/prepared 6 of 6 images \(csv\) into 1 shard\(s\) of 16x16/);
      const none = await runCli(['prepare', '--verify']);
      expect(none.code).toBe(2);
      expect(none.err).toMatch(/E_CONFIG: name the shard folder to check/);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  test('score: --out writes the report card (old --out-dir still does)', async () => {
    const fx = (f: string): string => path.resolve(__dirname, '../../fixtures/eval', f);
    const d = tmp();
    try {
      const r = await runCli(['score', '--truth', fx('truth.csv'), '--pred', fx('pred.csv'), '--bootstrap', '0', '--out', path.join(d, 'a'), '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out).labels).toBeDefined();
      expect(fs.existsSync(path.join(d, 'a', 'report.html'))).toBe(true);
      const o = await runCli(['score', '--truth', fx('truth.csv'), '--pred', fx('pred.csv'), '--bootstrap', '0', '--out-dir', path.join(d, 'b')]);
      expect(o.code).toBe(0);
      expect(o.err).toContain('--out-dir is now --out');
      expect(fs.existsSync(path.join(d, 'b', 'report.html'))).toBe(true);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  test('eval accepts --csv (old --file) without --root', async () => {
    const r = await runCli(['eval', '--checkpoint', path.join(os.tmpdir(), 'no-such-model'), '--file', 'index.csv', '--image-col', 'path', '--out', path.join(os.tmpdir(), 'no-such-eval')]);
    expect(r.err).toContain('--file is now --csv');
    expect(r.err).not.toMatch(/Unknown flag|--root is required|name the data/);
  });

  test('models --json is JSON alone', async () => {
    const r = await runCli(['models', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).map((m: { name: string }) => m.name)).toContain('test-vit');
  });
});
