/**
 * L2-regularised binary logistic regression, the objective of scikit-learn's
 * `LogisticRegression(penalty='l2', C, solver='lbfgs')`, solved with L-BFGS in TypeScript:
 *
 *   minimise  (1/n) Σᵢ log(1 + exp(−ỹᵢ (xᵢ·w + b)))  +  ‖w‖² / (2 C n)      (ỹ = ±1)
 *
 * which is sklearn's objective divided by C·n (sklearn ≥ 1.1 scales it the same way, so `tol` means the
 * same): the intercept b is not penalised, and the solver stops when the largest absolute gradient entry
 * is at most `tol` (scipy's `gtol`, which sklearn passes its `tol` to).
 *
 * Features may be standardised on the fly, `(x − center) / scale` (sklearn's StandardScaler before the
 * fit), without copying the matrix: the model is solved in the standardised space and {@link
 * rawLinear} gives the equivalent weights on the raw features. Rows can be a subset of the matrix.
 */
import { CxrError } from '../../errors';

/** Features: `n × d` row-major values (float32 is enough: sums are accumulated in double). */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  n: number;
  d: number;
}

/** Per-feature standardisation `(x − center) / scale`. */
export interface Standardization {
  center: Float64Array;
  scale: Float64Array;
}

/** Options of {@link fitLogistic}. */
export interface LogisticFitOptions {
  /** Inverse regularisation strength (sklearn's C), > 0. */
  C: number;
  /** Stop when max |gradient| ≤ tol (of the objective above). Default 1e-6. */
  tol?: number;
  /** Iteration limit. Default 1000. */
  maxIter?: number;
  /** L-BFGS memory. Default 10 (scipy's). */
  memory?: number;
  /** Rows of the matrix to fit on (default all). */
  rows?: Int32Array;
  /** Standardisation applied to the features before the fit (default none). */
  standardize?: Standardization;
  /** Starting point (a warm start, e.g. the fit of the previous C); the optimum does not depend on it. */
  init?: { coef: Float64Array; intercept: number };
}

/** A fitted model, in the (possibly standardised) feature space it was fitted in. */
export interface LogisticModel {
  coef: Float64Array;
  intercept: number;
  /** L-BFGS iterations used. */
  iterations: number;
  /** Whether max |gradient| ≤ tol was reached (false: iteration limit or no further progress possible). */
  converged: boolean;
  /** max |gradient| at the solution. */
  gradMax: number;
  /** Objective value at the solution. */
  objective: number;
}

/** log(1 + exp(z)), stable for any z. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/** 1 / (1 + exp(−z)), stable for any z. */
export function logistic(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** Weights and intercept on the raw features equivalent to a model fitted on standardised ones. */
export function rawLinear(coef: Float64Array, intercept: number, st?: Standardization): { w: Float64Array; b: number } {
  if (!st) return { w: coef, b: intercept };
  const w = new Float64Array(coef.length);
  let b = intercept;
  for (let k = 0; k < coef.length; k++) {
    w[k] = coef[k] / st.scale[k];
    b -= st.center[k] * w[k];
  }
  return { w, b };
}

/** Decision values x·w + b (raw features) of the given rows (default all). */
export function decisionValues(X: FeatureMatrix, w: Float64Array, b: number, rows?: Int32Array): Float64Array {
  const m = rows ? rows.length : X.n;
  const out = new Float64Array(m);
  const { data, d } = X;
  for (let i = 0; i < m; i++) {
    const o = (rows ? rows[i] : i) * d;
    let z = b;
    for (let k = 0; k < d; k++) z += data[o + k] * w[k];
    out[i] = z;
  }
  return out;
}

/**
 * Mean and population standard deviation (ddof 0) of each feature over `rows`, as sklearn's
 * StandardScaler: a feature with zero variance gets scale 1.
 */
export function standardization(X: FeatureMatrix, rows?: Int32Array): Standardization {
  const { data, d } = X;
  const m = rows ? rows.length : X.n;
  if (m < 1) throw new CxrError('E_DATA', 'standardisation needs at least one row');
  const center = new Float64Array(d);
  const scale = new Float64Array(d);
  for (let i = 0; i < m; i++) {
    const o = (rows ? rows[i] : i) * d;
    for (let k = 0; k < d; k++) center[k] += data[o + k];
  }
  for (let k = 0; k < d; k++) center[k] /= m;
  for (let i = 0; i < m; i++) {
    const o = (rows ? rows[i] : i) * d;
    for (let k = 0; k < d; k++) {
      const v = data[o + k] - center[k];
      scale[k] += v * v;
    }
  }
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(scale[k] / m);
    // StandardScaler's `_handle_zeros_in_scale`: (near-)constant features are centred, not scaled.
    scale[k] = s < 10 * Number.EPSILON * Math.max(1, Math.abs(center[k])) ? 1 : s;
  }
  return { center, scale };
}

/**
 * Fits the model on `rows` of `X` with 0/1 targets `y` (indexed like the rows of X).
 * @throws CxrError E_CONFIG (bad C, tol or iteration limit), E_SHAPE (sizes), E_DATA (one class only,
 *   a target other than 0/1, non-finite features).
 */
export function fitLogistic(X: FeatureMatrix, y: ArrayLike<number>, opts: LogisticFitOptions): LogisticModel {
  const { C } = opts;
  const tol = opts.tol ?? 1e-6;
  const maxIter = opts.maxIter ?? 1000;
  const mem = opts.memory ?? 10;
  if (!(Number.isFinite(C) && C > 0)) throw new CxrError('E_CONFIG', `C must be a positive number, got ${C}`);
  if (!(tol > 0)) throw new CxrError('E_CONFIG', `tol must be positive, got ${tol}`);
  if (!Number.isInteger(maxIter) || maxIter < 1) throw new CxrError('E_CONFIG', `maxIter must be a positive integer, got ${maxIter}`);
  const { data, d } = X;
  if (data.length !== X.n * d) throw new CxrError('E_SHAPE', `feature matrix holds ${data.length} values, not ${X.n} × ${d}`);
  if (y.length !== X.n) throw new CxrError('E_SHAPE', `${y.length} targets for ${X.n} rows`);
  const rows = opts.rows ?? Int32Array.from({ length: X.n }, (_, i) => i);
  const n = rows.length;
  let nPos = 0;
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (r < 0 || r >= X.n) throw new CxrError('E_SHAPE', `row ${r} outside the ${X.n} rows`);
    const t = y[r];
    if (t === 1) nPos++;
    else if (t !== 0) throw new CxrError('E_DATA', `target of row ${r} is ${t}, not 0 or 1`);
  }
  if (nPos === 0 || nPos === n) throw new CxrError('E_DATA', `logistic regression needs both classes, got ${nPos} positive(s) of ${n}`);
  const st = opts.standardize;
  const invCn = 1 / (C * n);
  const P = d + 1; // parameters: w (d), then b

  // Objective and gradient at theta (w then b), in the standardised space.
  const resid = new Float64Array(n);
  const acc = new Float64Array(d);
  const evaluate = (theta: Float64Array, grad: Float64Array): number => {
    const { w, b } = rawLinear(theta.subarray(0, d) as Float64Array, theta[d], st);
    let loss = 0;
    let rsum = 0;
    acc.fill(0);
    for (let i = 0; i < n; i++) {
      const o = rows[i] * d;
      let z = b;
      for (let k = 0; k < d; k++) z += data[o + k] * w[k];
      if (!Number.isFinite(z)) throw new CxrError('E_DATA', `non-finite decision value at row ${rows[i]} (non-finite features?)`);
      const t = y[rows[i]];
      loss += t === 1 ? softplus(-z) : softplus(z);
      const r = logistic(z) - t;
      resid[i] = r;
      rsum += r;
      for (let k = 0; k < d; k++) acc[k] += r * data[o + k];
    }
    let reg = 0;
    for (let k = 0; k < d; k++) {
      const wk = theta[k];
      reg += wk * wk;
      // d/dw_k of the loss: Σ r_i (x_ik − c_k) / s_k.
      const gk = st ? (acc[k] - st.center[k] * rsum) / st.scale[k] : acc[k];
      grad[k] = gk / n + wk * invCn;
    }
    grad[d] = rsum / n;
    return loss / n + 0.5 * reg * invCn;
  };

  const theta = new Float64Array(P);
  if (opts.init) {
    if (opts.init.coef.length !== d) throw new CxrError('E_SHAPE', `initial coef has ${opts.init.coef.length} entries, not ${d}`);
    theta.set(opts.init.coef);
    theta[d] = opts.init.intercept;
  }
  const g = new Float64Array(P);
  let f = evaluate(theta, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(mem);
  const dir = new Float64Array(P);
  const thetaNew = new Float64Array(P);
  const gNew = new Float64Array(P);
  const gmax = (v: Float64Array): number => {
    let m = 0;
    for (let k = 0; k < P; k++) m = Math.max(m, Math.abs(v[k]));
    return m;
  };
  let it = 0;
  let gm = gmax(g);
  let converged = gm <= tol;
  while (!converged && it < maxIter) {
    // Two-loop recursion: dir = −H g.
    for (let k = 0; k < P; k++) dir[k] = -g[k];
    for (let j = S.length - 1; j >= 0; j--) {
      let a = 0;
      for (let k = 0; k < P; k++) a += S[j][k] * dir[k];
      a *= rho[j];
      alpha[j] = a;
      for (let k = 0; k < P; k++) dir[k] -= a * Y[j][k];
    }
    if (S.length) {
      const j = S.length - 1;
      let sy = 0;
      let yy = 0;
      for (let k = 0; k < P; k++) {
        sy += S[j][k] * Y[j][k];
        yy += Y[j][k] * Y[j][k];
      }
      const gamma = sy / yy;
      for (let k = 0; k < P; k++) dir[k] *= gamma;
    } else {
      // First step: a unit-length move along −g (scipy's choice too).
      const gn = Math.sqrt(g.reduce((s, v) => s + v * v, 0));
      for (let k = 0; k < P; k++) dir[k] /= gn;
    }
    for (let j = 0; j < S.length; j++) {
      let bta = 0;
      for (let k = 0; k < P; k++) bta += Y[j][k] * dir[k];
      bta *= rho[j];
      for (let k = 0; k < P; k++) dir[k] += S[j][k] * (alpha[j] - bta);
    }
    let slope = 0;
    for (let k = 0; k < P; k++) slope += g[k] * dir[k];
    if (!(slope < 0)) {
      // Not a descent direction (round-off near the optimum): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let k = 0; k < P; k++) dir[k] = -g[k];
      slope = -g.reduce((s, v) => s + v * v, 0);
    }
    // Backtracking (Armijo) line search; the objective is strictly convex, so curvature (s·y > 0) holds.
    let step = 1;
    let fNew = NaN;
    let ok = false;
    for (let ls = 0; ls < 60; ls++) {
      for (let k = 0; k < P; k++) thetaNew[k] = theta[k] + step * dir[k];
      fNew = evaluate(thetaNew, gNew);
      if (fNew <= f + 1e-4 * step * slope) {
        ok = true;
        break;
      }
      // Near the optimum the objective changes less than its rounding error and Armijo's test cannot
      // tell; the directional derivative still can: on a convex function, |φ'(step)| < |φ'(0)| means the
      // step did not overshoot (this lets tol go far below sqrt(machine epsilon)).
      if (Math.abs(fNew - f) <= 1e-12 * Math.max(1, Math.abs(f))) {
        let dNew = 0;
        for (let k = 0; k < P; k++) dNew += gNew[k] * dir[k];
        if (Math.abs(dNew) <= 0.9 * Math.abs(slope)) {
          ok = true;
          break;
        }
      }
      step *= 0.5;
    }
    if (!ok) break; // no decrease is possible in floating point: as converged as it gets
    const s = new Float64Array(P);
    const yv = new Float64Array(P);
    let sy = 0;
    for (let k = 0; k < P; k++) {
      s[k] = thetaNew[k] - theta[k];
      yv[k] = gNew[k] - g[k];
      sy += s[k] * yv[k];
    }
    theta.set(thetaNew);
    g.set(gNew);
    f = fNew;
    it++;
    if (sy > 1e-300) {
      if (S.length === mem) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
    gm = gmax(g);
    converged = gm <= tol;
    // The step changed nothing: floating point has run out.
    if (!converged && s.every((v) => v === 0)) break;
  }
  return { coef: theta.slice(0, d), intercept: theta[d], iterations: it, converged, gradMax: gm, objective: f };
}
