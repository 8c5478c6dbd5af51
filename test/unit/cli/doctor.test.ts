/**
 * `cxr-train doctor`: the checks with staged machines (probes injected: a reference BLAS, an addon that
 * does not load, LIBTORCH pointing nowhere, an unwritable run folder), and the command with the native
 * loader made to fail (E_NATIVE_LOAD): it names the problem and the fix and exits 1, never crashes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CxrError } from '../../../lib/errors';
import { isReferenceBlas, runDoctor, type DoctorProbes } from '../../../lib/jobs/doctor';
import { formatDoctor } from '../../../lib/cli/commands/doctor';
import { runCli } from '../../helpers/cli';

const LOAD_FAILURE = new CxrError(
  'E_NATIVE_LOAD',
  'the cxr-train native addon could not be loaded. Tried:\n  /x/build/Release/cxr_native.node (libtorch_cpu.so: cannot open shared object file)\n' +
    'Fix: run `npm run setup` (installs libtorch with apt when missing and builds), or `npm run build:native` with LIBTORCH=/path/to/libtorch for another libtorch.',
);

// The command's own loader fails as it does when libtorch is missing at run time.
jest.mock('../../../lib/native', () => {
  const actual = jest.requireActual('../../../lib/native');
  const fail = () => {
    throw LOAD_FAILURE;
  };
  return { ...actual, loadNative: fail, capabilities: fail };
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-doctor-'));

const CAPS = {
  torchVersion: '1.13.0',
  cuda: { built: false, kernels: false, available: false, devices: 0, cudnn: false },
  fusedAttention: false,
  distributed: { gloo: true, nccl: false },
  threads: 2,
  interopThreads: 1,
  blas: 'OpenBLAS 0.3.21 USE_OPENMP',
  blasThreads: 2,
  parallelInfo: '',
  addonPath: '/x/build/Release/cxr_native.node',
};

function probes(over: Partial<DoctorProbes> = {}): Partial<DoctorProbes> {
  return {
    capabilities: () => CAPS,
    blasAlternative: () => '/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3',
    gemm: () => undefined,
    cores: () => 2,
    sharpVersions: () => ({ sharp: '0.35.5', vips: '8.18.7' }),
    env: {},
    ...over,
  };
}

const byId = (r: Awaited<ReturnType<typeof runDoctor>>, id: string) => r.checks.find((c) => c.id === id)!;

test('a healthy install: every check ok, CUDA is information on a CPU machine', async () => {
  const r = await runDoctor({ runDir: tmp(), gemmSeconds: 0.01, probes: probes() });
  expect(r.ok).toBe(true);
  expect(r.checks.map((c) => c.id)).toEqual(['native', 'blas', 'gemm', 'cuda', 'threads', 'sharp', 'distributed', 'run-folder']);
  expect(byId(r, 'native').detail).toMatch(/libtorch 1\.13\.0/);
  expect(byId(r, 'cuda').status).toBe('info');
  expect(byId(r, 'gemm').detail).toMatch(/GFLOP\/s fp32 on 2 thread\(s\).*512×1024×512 matmuls/);
  expect(byId(r, 'sharp').detail).toBe('sharp 0.35.5, libvips 8.18.7');
  const text = formatDoctor(r, true);
  expect(text.split('\n')[0]).toMatch(/^✓ libtorch/);
  expect(text).toMatch(/all required checks passed/);
  expect(formatDoctor(r, false).split('\n')[0]).toMatch(/^ok {3}libtorch/);
});

test("Debian's reference BLAS is a warning with the apt fix, found by name or by the libblas.so.3 alternative", async () => {
  for (const p of [
    { blas: 'reference BLAS (slow: install libopenblas0-openmp)', alt: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3' },
    { blas: 'unknown', alt: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3' },
  ]) {
    let t = 0;
    const r = await runDoctor({
      runDir: tmp(),
      gemmSeconds: 0.01,
      probes: probes({ capabilities: () => ({ ...CAPS, blas: p.blas }), blasAlternative: () => p.alt, gemm: () => void (t += 1) }),
    });
    expect(r.ok).toBe(true); // slow, not broken
    const blas = byId(r, 'blas');
    expect(blas.status).toBe('warn');
    expect(blas.detail).toMatch(/reference BLAS, 15-25x slower/);
    expect(blas.fix).toMatch(/apt-get install libopenblas0-openmp/);
    expect(formatDoctor(r, false)).toMatch(/^WARN BLAS .*\n\s+fix: apt-get install libopenblas0-openmp/m);
  }
  expect(isReferenceBlas('OpenBLAS 0.3.21', '/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3')).toBe(false);
  expect(isReferenceBlas('unknown', null)).toBe(false);
});

test('an addon that does not load is a failed check with its cause and fix; the checks needing it are skipped', async () => {
  const r = await runDoctor({
    runDir: tmp(),
    probes: probes({ capabilities: () => { throw LOAD_FAILURE; }, env: { LIBTORCH: '/nowhere/libtorch' } }),
  });
  expect(r.ok).toBe(false);
  const n = byId(r, 'native');
  expect(n.status).toBe('fail');
  expect(n.detail).toMatch(/E_NATIVE_LOAD.*libtorch_cpu\.so: cannot open shared object file/);
  expect(n.fix).toMatch(/LIBTORCH=\/nowhere\/libtorch has no lib\/ folder/);
  expect(n.fix).toMatch(/npm run setup/);
  for (const id of ['blas', 'gemm', 'cuda', 'threads', 'distributed']) expect(byId(r, id).status).toBe('skip');
  expect(byId(r, 'sharp').status).toBe('ok');
  expect(formatDoctor(r, true)).toMatch(/^✗ libtorch .*\n\s+fix: /m);
});

test('more threads than cores, no Gloo, CUDA built without a GPU: warnings with fixes, still usable', async () => {
  const r = await runDoctor({
    runDir: tmp(),
    gemmSeconds: 0.01,
    probes: probes({
      capabilities: () => ({ ...CAPS, threads: 8, distributed: { gloo: false, nccl: false }, cuda: { ...CAPS.cuda, built: true } }),
      cores: () => 2,
    }),
  });
  expect(r.ok).toBe(true);
  expect(byId(r, 'threads')).toMatchObject({ status: 'warn', fix: expect.stringMatching(/CXR_THREADS=2/) });
  expect(byId(r, 'distributed')).toMatchObject({ status: 'warn', fix: expect.stringMatching(/libgloo-dev/) });
  expect(byId(r, 'cuda')).toMatchObject({ status: 'warn', fix: expect.stringMatching(/nvidia-smi/) });
});

test("OpenBLAS's pthread build behind libblas.so.3 is a warning with the update-alternatives fix", async () => {
  const r = await runDoctor({
    runDir: tmp(),
    gemmSeconds: 0.01,
    probes: probes({
      capabilities: () => ({ ...CAPS, blas: 'OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64' }),
      blasAlternative: () => '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3',
    }),
  });
  expect(r.ok).toBe(true);
  expect(byId(r, 'blas')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/pthread build/), fix: expect.stringMatching(/update-alternatives --set .*openblas-openmp/) });
});

test("an OpenBLAS pool that is not the libtorch thread count (an addon built before setThreads sized it) is a warning", async () => {
  const r = await runDoctor({ runDir: tmp(), gemmSeconds: 0.01, probes: probes({ capabilities: () => ({ ...CAPS, threads: 1, blasThreads: 2 }) }) });
  expect(r.ok).toBe(true);
  expect(byId(r, 'threads')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/1 libtorch thread\(s\), OpenBLAS pool 2/), fix: expect.stringMatching(/build:native/) });
  // A BLAS that does not say its pool (-1) is not judged.
  const other = await runDoctor({ runDir: tmp(), gemmSeconds: 0.01, probes: probes({ capabilities: () => ({ ...CAPS, threads: 1, blasThreads: -1, blas: 'MKL' }) }) });
  expect(byId(other, 'threads').status).toBe('ok');
});

test('sharp that does not load and a run folder that cannot be written are required failures', async () => {
  const file = path.join(tmp(), 'a-file');
  fs.writeFileSync(file, '');
  const r = await runDoctor({
    runDir: path.join(file, 'runs'),
    gemmSeconds: 0.01,
    probes: probes({ sharpVersions: () => { throw new Error('Could not load the "sharp" module'); } }),
  });
  expect(r.ok).toBe(false);
  expect(byId(r, 'sharp')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/npm rebuild sharp/) });
  expect(byId(r, 'run-folder')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/is not a folder/) });
  // A folder that does not exist yet is fine when its parent is writable.
  const fresh = path.join(tmp(), 'runs', 'new');
  const ok = await runDoctor({ runDir: fresh, gemmSeconds: 0.01, probes: probes() });
  expect(byId(ok, 'run-folder')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/will be created/) });
  expect(fs.existsSync(fresh)).toBe(false);
});

test('CLI: with the addon failing to load, doctor names the problem and the fix and exits 1 (text and --json)', async () => {
  const dir = tmp();
  const r = await runCli(['doctor', '--out', dir]);
  expect(r.code).toBe(1);
  expect(r.out).toMatch(/^FAIL libtorch .*E_NATIVE_LOAD/m);
  expect(r.out).toMatch(/fix: run `npm run setup`/);
  expect(r.out).toMatch(/^ok {3}run folder/m);
  expect(r.out).toMatch(/1 required check failed/);
  const j = await runCli(['doctor', '--out', dir, '--json']);
  expect(j.code).toBe(1);
  const report = JSON.parse(j.out);
  expect(report.ok).toBe(false);
  expect(report.checks[0]).toMatchObject({ id: 'native', status: 'fail', required: true });
});
