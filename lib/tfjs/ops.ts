/**
 * Building blocks of the TensorFlow.js model, written around the wasm backend's gaps
 * (../shared/design/BUILD-NOTES.md §4): matMul with `transposeA/B` is 7-20x slower than the plain
 * kernel, so every matmul here is plain and its gradient uses explicit transposes; there is no
 * UnsortedSegmentSum kernel (the gradient of `gather`), so row gathers scatter their gradient with
 * ScatterNd; there is no Conv2DBackpropFilter, so the patch embedding is a reshape + matmul (model.ts).
 */
import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from './backend';

/** Activation of the MLPs: OpenAI's QuickGELU or the exact (erf) GELU. */
export type TfActivation = 'quick_gelu' | 'gelu';

/** The ops of one loaded tfjs module (kept per module so that nothing loads tfjs at import time). */
export interface TfOps {
  tf: Tf;
  /** a @ b for rank-2 (M×K · K×N) or rank-3 batched (B×M×K · B×K×N) tensors; plain kernels both ways. */
  mm(a: Tensor, b: Tensor): Tensor;
  /** x @ W^T + b with W in PyTorch's (out, in) layout; x is (M, in). W must be a parameter (created outside the gradient scope). */
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor;
  /** LayerNorm over the last axis. */
  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor;
  act(x: Tensor, kind: TfActivation): Tensor;
  /** Rows `idx` of a rank-2 table; the gradient is scattered back with ScatterNd (duplicates add up). */
  gatherRows(table: Tensor, idx: Int32Array): Tensor;
  /** a @ b where `a` is a constant (input data): no gradient is computed for it. */
  mmConstA(a: Tensor, b: Tensor): Tensor;
}

const cache = new WeakMap<Tf, TfOps>();

/** Returns the ops bound to a tfjs module (built once per module). */
export function tfOps(tf: Tf): TfOps {
  const hit = cache.get(tf);
  if (hit) return hit;
  const perm = (t: Tensor): number[] => (t.rank === 3 ? [0, 2, 1] : [1, 0]);
  const mmGrad = tf.customGrad((...args) => {
    const [a, b, save] = args as [Tensor, Tensor, (t: Tensor[]) => void];
    save([a, b]);
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sa, sb] = saved;
        return [tf.matMul(dy, tf.transpose(sb, perm(sb))), tf.matMul(tf.transpose(sa, perm(sa)), dy)];
      },
    };
  });
  // x @ Wᵀ with W (out, in), W a parameter. W is referenced, not saved: `save` clones, and the wasm
  // backend's clone (Identity) copies the data, which put a second copy of every weight matrix in the
  // 4 GiB wasm heap for the whole backward pass. Parameters are created outside the forward tidy, so the
  // reference stays valid. dx = dy @ W needs no transpose at all.
  const linearGrad = tf.customGrad((...args) => {
    const [x, w, save] = args as [Tensor, Tensor, (t: Tensor[]) => void];
    save([x]);
    return {
      // tidy: the transposed copy is freed at once instead of at the end of the whole forward pass.
      value: tf.tidy(() => tf.matMul(x, tf.transpose(w))),
      gradFunc: (dy: Tensor, saved: Tensor[]) => [tf.matMul(dy, w), tf.tidy(() => tf.matMul(tf.transpose(dy), saved[0]))],
    };
  });
  const ops: TfOps = {
    tf,
    mm: (a, b) => mmGrad(a, b),
    mmConstA(a, b) {
      // Tensors captured by a closure are disposed by the forward tidy of tf.grads; `save` keeps them.
      const f = tf.customGrad((...args) => {
        const [bb, save] = args as [Tensor, (t: Tensor[]) => void];
        save([a]);
        return {
          value: tf.matMul(a, bb),
          gradFunc: (dy: Tensor, saved: Tensor[]) => tf.matMul(tf.transpose(saved[0], perm(saved[0])), dy),
        };
      });
      return f(b);
    },
    linear(x, w, b) {
      const y = linearGrad(x, w);
      return b ? tf.add(y, b) : y;
    },
    layerNorm(x, w, b, eps) {
      const mean = tf.mean(x, -1, true);
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), -1, true);
      return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
    },
    act(x, kind) {
      if (kind === 'quick_gelu') return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    },
    gatherRows(table, idx) {
      const rows = table.shape[0];
      const cols = table.shape[1] as number;
      const f = tf.customGrad((...args) => {
        const [t, save] = args as [Tensor, (t: Tensor[]) => void];
        const indices = tf.tensor1d(idx, 'int32');
        save([indices]);
        return {
          value: tf.gather(t, indices),
          gradFunc: (dy: Tensor, saved: Tensor[]) => tf.scatterND(tf.reshape(saved[0], [idx.length, 1]), dy, [rows, cols]),
        };
      });
      return f(table);
    },
  };
  cache.set(tf, ops);
  return ops;
}
