import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CxrError, ErrorCode } from '../errors';
import { availableCores } from '../util/limits';
import type { CpuCacheStats, NativeAddon, NativeCapabilities } from './binding';

let addon: NativeAddon | undefined;
let addonPath: string | undefined;
let threadsSet = false;

const KNOWN_CODES = new Set<string>([
  'E_SHAPE', 'E_DTYPE', 'E_DEVICE', 'E_OOM', 'E_DISPOSED', 'E_BUSY', 'E_CONFIG', 'E_TORCH', 'E_NUMERIC', 'E_DIST', 'E_IO',
  'E_CHECKPOINT', 'E_INTERNAL',
]);

/** Converts an error thrown by the addon (an Error with `code`) into a CxrError; passes CxrErrors through. */
export function asCxrError(e: unknown): CxrError {
  if (e instanceof CxrError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' && KNOWN_CODES.has(err.code) ? (err.code as ErrorCode) : 'E_INTERNAL';
  return new CxrError(code, String(err?.message ?? e), undefined, { cause: e });
}

/** Physical cores (hyper-thread siblings counted once), the default thread count. */
export function physicalCores(): number {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    let phys = '0';
    for (const line of info.split('\n')) {
      const m = /^(physical id|core id)\s*:\s*(\d+)/.exec(line);
      if (!m) continue;
      if (m[1] === 'physical id') phys = m[2];
      else cores.add(`${phys}:${m[2]}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    /* not Linux: fall through */
  }
  return Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
}

function candidates(): string[] {
  const root = path.resolve(__dirname, '..', '..');
  const list = [path.join(root, 'build', 'Release', 'cxr_native.node'), path.join(root, 'build', 'Debug', 'cxr_native.node')];
  if (process.env.CXR_NATIVE_PATH) list.unshift(path.resolve(process.env.CXR_NATIVE_PATH));
  return list;
}

/**
 * Loads the addon once per process (module state only caches the `require`; native state is per
 * environment). Sets OMP_WAIT_POLICY=passive first unless the user set it: with libgomp's default active
 * spinning, 2 threads can be 2-3x slower than 1 on shared cores.
 */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'passive';
  // Read by the native core when the first model is built; a value it cannot read would fall back to the
  // default silently, so it is checked here.
  const cacheMb = process.env.CXR_CPU_CACHE_MB;
  if (cacheMb !== undefined && !/^\s*\d+(\.\d+)?$/.test(cacheMb)) {
    throw new CxrError('E_CONFIG', `CXR_CPU_CACHE_MB must be a number of MiB >= 0 (0 turns the CPU block cache off), got ${JSON.stringify(cacheMb)}`);
  }
  const tried: string[] = [];
  for (const p of candidates()) {
    if (!fs.existsSync(p)) {
      tried.push(`${p} (not built)`);
      continue;
    }
    try {
      addon = require(p) as NativeAddon;
      addonPath = p;
      break;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message.split('\n')[0]})`);
    }
  }
  if (!addon) {
    throw new CxrError(
      'E_NATIVE_LOAD',
      `the cxr-train native addon could not be loaded. Tried:\n  ${tried.join('\n  ')}\n` +
        'Fix: run `npm run setup` (installs libtorch with apt when missing and builds), or `npm run build:native` ' +
        'with LIBTORCH=/path/to/libtorch for another libtorch; if libtorch libraries are not found at run time, ' +
        'add their folder to LD_LIBRARY_PATH.',
    );
  }
  // CXR_THREADS is a hint from the environment: capped at the cores rather than refused at load.
  if (!threadsSet) setThreads(Math.max(1, Math.min(Math.floor(Number(process.env.CXR_THREADS)) || physicalCores(), availableCores())));
  return addon;
}

/**
 * Sets libtorch's intra-op thread count, and OpenBLAS's own pool to the same count, for every later native
 * call (1 .. the available cores, else E_CONFIG).
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new CxrError('E_CONFIG', `threads must be an integer >= 1, got ${n}`);
  const max = availableCores();
  if (n > max) throw new CxrError('E_CONFIG', `threads must be at most ${max} (the cores available to this process), got ${n}`, { max });
  const a = addon ?? loadNative();
  a.setNumThreads(n);
  threadsSet = true;
}

/** What this build can do and what is available now (principle 7). */
export function capabilities(): NativeCapabilities & { addonPath: string } {
  const a = loadNative();
  return { ...a.capabilities(), addonPath: addonPath ?? '' };
}

/**
 * Live native handles and the bytes reported to V8 (both return to 0 when every model is disposed), and the
 * CPU block cache's counters ({@link CpuCacheStats}).
 */
export function nativeStats(): { liveModels: number; externalBytes: number; cpuCache: CpuCacheStats } {
  return loadNative().stats();
}

/**
 * Gives the CPU blocks the native core keeps for reuse back to the system (e.g. a long-lived process after
 * training, before serving). Blocks in use are untouched; the next steps refill the cache.
 */
export function releaseCpuCache(): void {
  loadNative().releaseCpuCache();
}

/** Rejects from a native worker with a libtorch ('torch') or std ('std') exception: checks the error mapping. */
export async function nativeSelfTest(kind: 'torch' | 'std'): Promise<void> {
  try {
    await loadNative().selfTest(kind);
  } catch (e) {
    throw asCxrError(e);
  }
}
