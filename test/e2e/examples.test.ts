import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../../lib/cli/index';

const root = path.resolve(__dirname, '../..');

describe('examples', () => {
  it('examples/finetune.js trains with the Trainer API and reports its events (needs `npm run build`)', () => {
    expect(fs.existsSync(path.join(root, 'dist/index.js'))).toBe(true);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-example-'));
    try {
      const p = spawnSync(process.execPath, [path.join(root, 'examples/finetune.js'), '20', out], { encoding: 'utf8', cwd: root });
      expect(p.stderr).not.toMatch(/Error/);
      expect(p.status).toBe(0);
      expect(p.stdout).toMatch(/step \d+: loss/);
      expect(p.stdout).toMatch(/eval at step \d+: macro AUROC/);
      const last = JSON.parse(p.stdout.trim().split('\n').pop() as string);
      expect(last.status).toBe('completed');
      expect(last.steps).toBe(20);
      expect(fs.existsSync(path.join(last.model, 'model.safetensors'))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('examples/mimic-cxr.yaml is a valid config: --dry-run checks it against a MIMIC-layout dataset', async () => {
    const { generateSynthetic } = await import('../../lib/data/synthetic');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-mimic-'));
    try {
      await generateSynthetic({ n: 40, seed: 3, size: 64, outDir: path.join(dir, 'mimic') });
      const writes: string[] = [];
      const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
        writes.push(String(s));
        return true;
      });
      let code: number;
      try {
        code = await main([
          'train', '--config', path.join(root, 'examples/mimic-cxr.yaml'), '--dry-run', '--out', path.join(dir, 'run'),
          '--set', 'model.checkpoint=null', '--set', 'model.name=test-vit', '--set', `data.root=${path.join(dir, 'mimic')}`,
          '--set', `data.options={reportsRoot: ${path.join(dir, 'mimic')}}`, '--set', 'device=cpu', '--set', 'precision=fp32',
          '--set', 'data.workers=0', '--set', 'batchSize=4',
        ]);
      } finally {
        spy.mockRestore();
      }
      expect(code).toBe(0);
      expect(writes.join('')).toMatch(/dry run/i);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
