/**
 * Lazy loading of TensorFlow.js and backend selection. Nothing in this package imports `@tensorflow/*`
 * at module load time: the packages are optional dependencies, so the rest of cxr-train must work
 * without them, and only a caller of the tfjs variant pays their load time (~0.5 s).
 */
import { CxrError } from '../errors';

/** The `@tensorflow/tfjs` module (or `@tensorflow/tfjs-node`, which re-exports the same API). */
export type Tf = typeof import('@tensorflow/tfjs');

/**
 * A TensorFlow.js backend:
 * - `wasm`: `@tensorflow/tfjs-backend-wasm`, SIMD, one thread in Node; the default.
 * - `cpu`: the pure-JavaScript backend of `@tensorflow/tfjs` (about 20x slower than wasm; small models only).
 * - `tensorflow`: `@tensorflow/tfjs-node` (libtensorflow), used only when that package is installed.
 * - `auto`: `tensorflow` when tfjs-node is installed, else `wasm`, else `cpu`.
 */
export type TfBackendName = 'wasm' | 'cpu' | 'tensorflow' | 'auto';

let tf: Tf | null = null;
let nodeLoaded = false;

/**
 * Module resolution used by the detection functions. Internal: tests replace `resolve` to simulate a
 * machine without the optional packages.
 */
export const tfjsResolver = {
  // A name held in a variable keeps tsc and bundlers from resolving optional packages statically.
  resolve: (name: string): string => require.resolve(name),
};

function tryResolve(name: string): string | null {
  try {
    return tfjsResolver.resolve(name);
  } catch {
    return null;
  }
}

/** True when `@tensorflow/tfjs` can be loaded (installed as an optional dependency). */
export function tfjsAvailable(): boolean {
  return tryResolve('@tensorflow/tfjs') !== null;
}

/**
 * True when `@tensorflow/tfjs-node` resolves. It is detected, never required statically: its install
 * script downloads libtensorflow, which fails on machines without internet access.
 */
export function tfjsNodeAvailable(): boolean {
  return tryResolve('@tensorflow/tfjs-node') !== null;
}

/** True when `@tensorflow/tfjs-backend-wasm` resolves. */
export function tfjsWasmAvailable(): boolean {
  return tryResolve('@tensorflow/tfjs-backend-wasm') !== null;
}

/**
 * Returns the TensorFlow.js module, loading it on first use. Throws CxrError('E_UNSUPPORTED') with the
 * install command when `@tensorflow/tfjs` is not installed.
 */
export function loadTf(): Tf {
  if (tf) return tf;
  const name = '@tensorflow/tfjs';
  if (!tryResolve(name)) {
    throw new CxrError(
      'E_UNSUPPORTED',
      'the TensorFlow.js variant needs the optional dependencies @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm; ' +
        'install them with `npm install @tensorflow/tfjs@4 @tensorflow/tfjs-backend-wasm@4` (the native trainer does not need them)',
    );
  }
  try {
    tf = require(name) as Tf;
  } catch (e) {
    throw new CxrError('E_UNSUPPORTED', `@tensorflow/tfjs is installed but could not be loaded: ${(e as Error).message}`, undefined, {
      cause: e,
    });
  }
  return tf;
}

function loadNodeBackend(): void {
  if (nodeLoaded) return;
  const name = '@tensorflow/tfjs-node';
  if (!tryResolve(name)) {
    throw new CxrError(
      'E_UNSUPPORTED',
      'backend "tensorflow" needs @tensorflow/tfjs-node, which is not installed (its install script downloads ' +
        'libtensorflow from storage.googleapis.com); use backend "wasm" or "cpu"',
    );
  }
  try {
    // tfjs-node registers the "tensorflow" backend on the @tensorflow/tfjs-core instance it resolves.
    require(name);
    nodeLoaded = true;
  } catch (e) {
    throw new CxrError('E_UNSUPPORTED', `@tensorflow/tfjs-node is installed but could not be loaded: ${(e as Error).message}`, undefined, {
      cause: e,
    });
  }
}

/** Resolves `auto` to a concrete backend name without loading anything heavy. */
export function resolveBackendName(name: TfBackendName = 'auto'): Exclude<TfBackendName, 'auto'> {
  if (name !== 'auto' && name !== 'wasm' && name !== 'cpu' && name !== 'tensorflow')
    throw new CxrError('E_CONFIG', `tfjs backend must be "wasm", "cpu", "tensorflow" or "auto", got "${String(name)}"`);
  if (name !== 'auto') return name;
  if (tfjsNodeAvailable()) return 'tensorflow';
  if (tfjsWasmAvailable()) return 'wasm';
  return 'cpu';
}

/**
 * Loads TensorFlow.js and makes `backend` the active one (TensorFlow.js has one active backend per
 * process; tensors created under another backend are moved on first use, which is slow but correct).
 * Returns the module and the backend actually selected.
 */
export async function useBackend(backend: TfBackendName = 'auto'): Promise<{ tf: Tf; backend: Exclude<TfBackendName, 'auto'> }> {
  const name = resolveBackendName(backend);
  const t = loadTf();
  if (name === 'wasm') {
    if (!tfjsWasmAvailable())
      throw new CxrError('E_UNSUPPORTED', 'backend "wasm" needs @tensorflow/tfjs-backend-wasm: `npm install @tensorflow/tfjs-backend-wasm@4`');
    require('@tensorflow/tfjs-backend-wasm');
  } else if (name === 'tensorflow') {
    loadNodeBackend();
  }
  if (t.getBackend() !== name) {
    let ok: boolean;
    try {
      ok = await t.setBackend(name);
    } catch (e) {
      throw new CxrError('E_UNSUPPORTED', `tfjs backend "${name}" failed to initialise: ${(e as Error).message}`, undefined, { cause: e });
    }
    if (!ok) throw new CxrError('E_UNSUPPORTED', `tfjs backend "${name}" failed to initialise`);
  }
  if (name === 'cpu') {
    // The cpu backend prints an "install tfjs-node" banner on its first tensor; whether tfjs-node is used
    // is decided (and documented) here, so the banner is switched off.
    const b = t.backend() as unknown as { firstUse?: boolean };
    if (b && typeof b.firstUse === 'boolean') b.firstUse = false;
  }
  return { tf: t, backend: name };
}
