/** `cxr-train doctor` on this machine: the addon loads, the matmul rate is measured, exit 0. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli';

test('doctor passes on a working install and measures a matmul rate', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-doctor-e2e-'));
  const r = await runCli(['doctor', '--out', dir, '--json']);
  const report = JSON.parse(r.out);
  expect(r.code).toBe(0);
  expect(report.ok).toBe(true);
  const by = (id: string) => report.checks.find((c: { id: string }) => c.id === id);
  expect(by('native')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^libtorch \d+\.\d+/) });
  const gflops = Number(/^([\d.]+) GFLOP\/s/.exec(by('gemm').detail)![1]);
  expect(gflops).toBeGreaterThan(0);
  expect(['ok', 'warn']).toContain(by('blas').status);
  expect(by('sharp').detail).toMatch(/libvips \d+\.\d+/);
  const text = await runCli(['doctor', '--out', dir]);
  expect(text.code).toBe(0);
  expect(text.out).toMatch(/^ok {3}libtorch/m);
  process.stderr.write(text.out);
});
