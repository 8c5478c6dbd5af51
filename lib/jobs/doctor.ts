/**
 * The install check (`cxr-train doctor`) as a library function: one result per thing users trip over
 * (the addon and its libtorch, the BLAS and a measured matmul rate, CUDA / cuDNN, threads, sharp/libvips,
 * Gloo/NCCL, write access to the run folder), each with the fix when it fails. The checks never throw:
 * an addon that does not load is a failed check naming the cause, and the checks that need it are skipped.
 * What they read from the machine can be injected ({@link DoctorProbes}), so tests can stage a broken one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CxrError } from '../errors';
import { capabilities, physicalCores } from '../native';
import { contrastiveLoss } from '../models/loss';
import { defaultRunDir } from '../train/config';

/** How a check came out. `fail` only for required checks; `warn` works but is slow or limited. */
export type DoctorStatus = 'ok' | 'warn' | 'fail' | 'info' | 'skip';

/** One check. */
export interface DoctorCheck {
  /** Stable id (for --json readers): native, libtorch-path, blas, gemm, cuda, threads, sharp, distributed, run-folder. */
  id: string;
  /** Short name for people. */
  name: string;
  status: DoctorStatus;
  /** A failing required check makes the install unusable (exit 1). */
  required: boolean;
  /** What was found. */
  detail: string;
  /** What to do, when the status is warn or fail. */
  fix?: string;
}

/** What {@link runDoctor} returns. */
export interface DoctorReport {
  /** True when every required check passed. */
  ok: boolean;
  checks: DoctorCheck[];
}

/** What the checks read from the machine; each can be replaced (tests). */
export interface DoctorProbes {
  /** The addon's capabilities (loads it; throws E_NATIVE_LOAD when it cannot). */
  capabilities: () => ReturnType<typeof capabilities>;
  /** Where Debian's `libblas.so.3` alternative points (null: no such alternative, e.g. not Debian). */
  blasAlternative: () => string | null;
  /** One native call doing {@link gemmFlops} of matmul at this size; the caller times it. */
  gemm: (size: GemmSize) => void;
  /** Physical cores. */
  cores: () => number;
  /** sharp's and libvips' versions (throws when sharp does not load). */
  sharpVersions: () => { sharp: string; vips: string };
  /** Environment variables (LIBTORCH, CXR_THREADS, OMP_WAIT_POLICY). */
  env: NodeJS.ProcessEnv;
}

/** The matmul of the rate check: B×D embeddings, 6·B²·D flops per call (see {@link gemmFlops}). */
export interface GemmSize {
  batch: number;
  dim: number;
}

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  /** The run folder whose write access is checked. Default: the parent of the default run folder (`runs`). */
  runDir?: string;
  /** Seconds the matmul rate is measured for. Default 1. */
  gemmSeconds?: number;
  /** Replace what is read from the machine (tests). */
  probes?: Partial<DoctorProbes>;
}

/** Debian's alternative of the BLAS libtorch links. */
export const DEBIAN_BLAS_ALTERNATIVE = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';
/** The fix of a reference BLAS: the OpenMP OpenBLAS switches the alternative system-wide, no rebuild. */
export const OPENBLAS_FIX = 'apt-get install libopenblas0-openmp (as root; switches libblas.so.3 to OpenBLAS, 15-25x faster, no rebuild)';
/**
 * Below this the rate is worth a warning: the reference BLAS does ~5.5 GFLOP/s on a bare matmul
 * (docs/benchmarks), less through the loss call; OpenBLAS measured 11-18 GFLOP/s through it on 2 heavily
 * loaded cores.
 */
const SLOW_GFLOPS = 8;
const GEMM_SIZE: GemmSize = { batch: 512, dim: 1024 };

/**
 * Flops of one native contrastive-loss call on B×D embeddings: its three B×D·D×B matmuls (the logits
 * U·Vᵀ and the two gradients G·V, Gᵀ·U) at 2·B²·D each. The softmax and normalisation are not counted,
 * so the rate is a slight underestimate of the GEMM rate.
 */
export function gemmFlops(s: GemmSize): number {
  return 6 * s.batch * s.batch * s.dim;
}

function defaultProbes(): DoctorProbes {
  let u: Float32Array | null = null;
  let v: Float32Array | null = null;
  return {
    capabilities,
    blasAlternative: () => {
      try {
        return fs.realpathSync(DEBIAN_BLAS_ALTERNATIVE);
      } catch {
        return null;
      }
    },
    gemm: (s) => {
      const n = s.batch * s.dim;
      if (!u || u.length !== n) {
        u = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
        v = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
      }
      contrastiveLoss(u, v!, s.batch, s.dim, Math.log(10), { kind: 'clip' });
    },
    cores: physicalCores,
    sharpVersions: () => {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const v = (require('sharp') as { versions: { sharp?: string; vips: string } }).versions;
      return { sharp: v.sharp ?? '?', vips: v.vips };
    },
    env: process.env,
  };
}

/**
 * The fix of Debian's pthread OpenBLAS behind libblas.so.3 (it wins the alternative when both builds are
 * installed): its idle threads spin, and a 2-thread step ran ~20 % slower than with the OpenMP build.
 */
export const OPENMP_BLAS_FIX =
  'npm run setup, or as root: update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 (no rebuild)';

/** True when the BLAS is OpenBLAS's pthread build (its config string lacks USE_OPENMP). */
export function isPthreadOpenBlas(blasName: string): boolean {
  return /^OpenBLAS/i.test(blasName) && !/USE_OPENMP/.test(blasName);
}

/** True when a BLAS name or library path is Debian's slow reference BLAS rather than OpenBLAS, BLIS or MKL. */
export function isReferenceBlas(blasName: string, alternative: string | null): boolean {
  if (/reference/i.test(blasName)) return true;
  if (/openblas|blis|mkl/i.test(blasName)) return false;
  // The addon names OpenBLAS when it is loaded; otherwise the alternative tells: .../blas/libblas.so.3 is libblas3.
  return alternative !== null && /\/blas\/libblas\.so/.test(alternative);
}

const firstLine = (s: string) => s.split('\n')[0];

/**
 * Runs every check. Never throws for a broken install: that is what the report says.
 *
 * @example
 * const r = await runDoctor();
 * for (const c of r.checks) console.log(c.status, c.name, c.detail, c.fix ?? '');
 */
export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const p: DoctorProbes = { ...defaultProbes(), ...opts.probes };
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);
  const libtorchEnv = p.env.LIBTORCH;
  const libtorchMissing = libtorchEnv !== undefined && libtorchEnv !== '' && !fs.existsSync(path.join(libtorchEnv, 'lib'));

  // 1. The addon and its libtorch.
  let caps: ReturnType<typeof capabilities> | null = null;
  try {
    caps = p.capabilities();
    add({
      id: 'native',
      name: 'libtorch',
      status: 'ok',
      required: true,
      detail: `libtorch ${caps.torchVersion}, addon ${caps.addonPath || '(loaded)'}, attention ${caps.fusedAttention ? 'fused (scaled_dot_product_attention)' : 'explicit (libtorch < 2.0)'}`,
    });
  } catch (e) {
    const code = e instanceof CxrError ? e.code : 'E_NATIVE_LOAD';
    const msg = (e as Error).message ?? String(e);
    const fix = msg.includes('Fix:') ? msg.slice(msg.indexOf('Fix:') + 4).trim() : 'run `npm run setup` (installs libtorch with apt when missing and builds the addon)';
    add({
      id: 'native',
      name: 'libtorch',
      status: 'fail',
      required: true,
      detail: `the native addon does not load (${code}): ${firstLine(msg)}${msg.includes('Tried:') ? ' ' + msg.split('\n').slice(1).filter((l) => l.startsWith('  ')).map((l) => l.trim()).join('; ') : ''}`,
      fix: libtorchMissing
        ? `LIBTORCH=${libtorchEnv} has no lib/ folder: point it at an unpacked libtorch (the folder holding lib/ and share/cmake/Torch) or unset it to use Debian's libtorch-dev, then \`npm run build:native\`; ${fix}`
        : fix,
    });
  }
  if (libtorchMissing && caps) {
    add({
      id: 'libtorch-path',
      name: 'LIBTORCH',
      status: 'warn',
      required: false,
      detail: `LIBTORCH=${libtorchEnv} does not exist (the loaded addon was built against another libtorch)`,
      fix: 'unset LIBTORCH, or point it at an unpacked libtorch before `npm run build:native`',
    });
  }

  // 2. BLAS and a measured matmul rate.
  const skipped = (id: string, name: string) => add({ id, name, status: 'skip', required: false, detail: 'skipped: the addon did not load' });
  if (caps) {
    const alt = p.blasAlternative();
    const ref = isReferenceBlas(caps.blas, alt);
    const pthread = !ref && isPthreadOpenBlas(caps.blas);
    const note = ref ? ': the reference BLAS, 15-25x slower than OpenBLAS' : pthread ? ": OpenBLAS's pthread build, whose idle threads spin (2-thread steps ~20 % slower than with its OpenMP build)" : '';
    add({
      id: 'blas',
      name: 'BLAS',
      status: ref || pthread ? 'warn' : 'ok',
      required: false,
      detail: `${caps.blas}${alt ? ` (libblas.so.3 → ${alt})` : ''}${note}`,
      ...(ref ? { fix: OPENBLAS_FIX } : pthread ? { fix: OPENMP_BLAS_FIX } : {}),
    });
    try {
      const seconds = opts.gemmSeconds ?? 1;
      p.gemm(GEMM_SIZE); // warm-up: first-call allocations and thread start-up
      // The fastest call of the second counts: other processes on shared cores only ever slow calls down.
      let calls = 0;
      let best = Infinity;
      const t0 = process.hrtime.bigint();
      let el = 0;
      do {
        const t = process.hrtime.bigint();
        p.gemm(GEMM_SIZE);
        best = Math.min(best, Math.max(1e-9, Number(process.hrtime.bigint() - t) / 1e9));
        calls++;
        el = Number(process.hrtime.bigint() - t0) / 1e9;
      } while (el < seconds);
      const gflops = gemmFlops(GEMM_SIZE) / best / 1e9;
      const slow = gflops < SLOW_GFLOPS;
      add({
        id: 'gemm',
        name: 'matmul rate',
        status: slow ? 'warn' : 'ok',
        required: false,
        detail: `${gflops.toFixed(1)} GFLOP/s fp32 on ${caps.threads} thread(s): the fastest of ${calls} native contrastive-loss calls on ${GEMM_SIZE.batch}×${GEMM_SIZE.dim} embeddings in ${el.toFixed(1)} s, counting only their three ${GEMM_SIZE.batch}×${GEMM_SIZE.dim}×${GEMM_SIZE.batch} matmuls`,
        ...(slow ? { fix: ref ? OPENBLAS_FIX : 'other processes may be using the cores; check the thread count (CXR_THREADS) and the BLAS' } : {}),
      });
    } catch (e) {
      add({ id: 'gemm', name: 'matmul rate', status: 'warn', required: false, detail: `the measurement failed: ${firstLine((e as Error).message)}` });
    }
  } else {
    skipped('blas', 'BLAS');
    skipped('gemm', 'matmul rate');
  }

  // 3. CUDA / cuDNN: information on a CPU machine, a warning when built in but unusable.
  if (caps) {
    const c = caps.cuda;
    if (!c.built) add({ id: 'cuda', name: 'CUDA', status: 'info', required: false, detail: 'CPU build of libtorch (no CUDA); training runs on the CPU' });
    else if (!c.available)
      add({
        id: 'cuda',
        name: 'CUDA',
        status: 'warn',
        required: false,
        detail: 'libtorch has CUDA but no GPU is available',
        fix: 'check the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES',
      });
    else
      add({
        id: 'cuda',
        name: 'CUDA',
        status: 'ok',
        required: false,
        detail: `${c.devices} GPU(s), cuDNN ${c.cudnn ? 'yes' : 'no'}, cxr-train CUDA kernels ${c.kernels ? 'built' : 'not built (CXR_WITH_CUDA=1 npm run build:native)'}`,
      });
  } else skipped('cuda', 'CUDA');

  // 4. Threads against cores.
  if (caps) {
    const cores = p.cores();
    const over = caps.threads > cores;
    const wait = p.env.OMP_WAIT_POLICY;
    // OpenBLAS keeps its own pool; setThreads sizes it with libtorch's count (-1: the BLAS does not say).
    const blasOff = caps.blasThreads > 0 && caps.blasThreads !== caps.threads;
    const blas = caps.blasThreads > 0 ? `, OpenBLAS pool ${caps.blasThreads}` : '';
    add({
      id: 'threads',
      name: 'threads',
      status: over || blasOff ? 'warn' : 'ok',
      required: false,
      detail: `${caps.threads} libtorch thread(s)${blas} on ${cores} physical core(s)${p.env.CXR_THREADS ? ` (CXR_THREADS=${p.env.CXR_THREADS})` : ''}, OMP_WAIT_POLICY=${wait ?? 'passive (set by cxr-train)'}`,
      ...(over
        ? { fix: `more threads than cores slows every step: CXR_THREADS=${cores} (or --threads ${cores})` }
        : blasOff
          ? { fix: `the BLAS runs ${caps.blasThreads} threads for ${caps.threads} libtorch thread(s): rebuild the addon (npm run build:native)` }
          : {}),
    });
  } else skipped('threads', 'threads');

  // 5. Images: sharp and its libvips.
  try {
    const v = p.sharpVersions();
    add({ id: 'sharp', name: 'sharp', status: 'ok', required: true, detail: `sharp ${v.sharp}, libvips ${v.vips}` });
  } catch (e) {
    add({
      id: 'sharp',
      name: 'sharp',
      status: 'fail',
      required: true,
      detail: `sharp does not load: ${firstLine((e as Error).message)}`,
      fix: 'npm rebuild sharp (or `npm install --include=optional sharp` so that its prebuilt libvips for this platform is installed)',
    });
  }

  // 6. Distributed backends.
  if (caps) {
    const b = (['gloo', 'nccl'] as const).filter((k) => caps!.distributed[k]);
    add({
      id: 'distributed',
      name: 'Gloo/NCCL',
      status: caps.distributed.gloo ? 'ok' : 'warn',
      required: false,
      detail: b.length ? `compiled in: ${b.join(', ')}${caps.distributed.nccl ? '' : ' (NCCL needs a CUDA libtorch)'}` : 'none: multi-process training (--nproc) is unavailable',
      ...(caps.distributed.gloo ? {} : { fix: 'apt-get install libgloo-dev, then `npm run build:native` (Gloo, for several CPU processes)' }),
    });
  } else skipped('distributed', 'Gloo/NCCL');

  // 7. Write access to the run folder.
  const runDir = path.resolve(opts.runDir ?? path.dirname(defaultRunDir()));
  add(checkWritable(runDir));

  return { ok: checks.every((c) => !c.required || c.status !== 'fail'), checks };
}

/** Write access to `dir` (or, when it does not exist yet, to the folder it would be created in). */
function checkWritable(dir: string): DoctorCheck {
  const base = { id: 'run-folder', name: 'run folder', required: true } as const;
  let at = dir;
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  try {
    if (!fs.statSync(at).isDirectory()) throw new Error(`${at} is not a folder`);
    if (at === dir) {
      const probe = path.join(dir, `.cxr-doctor-${process.pid}-${Date.now()}`);
      fs.writeFileSync(probe, '');
      fs.rmSync(probe);
    } else fs.accessSync(at, fs.constants.W_OK);
    return { ...base, status: 'ok', detail: at === dir ? `${dir} is writable` : `${dir} does not exist yet; ${at} is writable (it will be created)` };
  } catch (e) {
    return {
      ...base,
      status: 'fail',
      detail: `cannot write in ${at}: ${firstLine((e as Error).message)}`,
      fix: `run from a folder you can write to, fix the permissions of ${at}, or pass --out DIR to the jobs (os tmp: ${os.tmpdir()})`,
    };
  }
}
