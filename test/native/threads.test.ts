/**
 * The thread count set with setThreads is the one every later native call runs with, on whichever libuv
 * worker thread it lands: libtorch keeps the count per OS thread (initialised on a thread's first op),
 * so without the binding re-applying it a worker that ran under an earlier count keeps that count, and
 * identical calls give results that differ in the last bits.
 */
import { createModel } from '../../lib/models/ClipModel';
import { capabilities, setThreads } from '../../lib/native';
import { availableCores } from '../../lib/util/limits';
import { images } from '../helpers/inputs';

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

(availableCores() >= 2 ? test : test.skip)('a later setThreads reaches every worker thread: identical calls stay bit-identical', async () => {
  const before = capabilities().threads;
  const models = [0, 1, 2, 3].map(() => createModel('test-vit', { device: 'cpu', seed: 5 }));
  try {
    const x = images(16, 32, 3);
    setThreads(1);
    const one = bits(await models[0].encodeImages(x));
    // Several calls at once land on several libuv threads, which all start running torch at 2 threads.
    setThreads(2);
    const two = await Promise.all(models.flatMap((m) => [m.encodeImages(x)]));
    for (let r = 0; r < 3; r++) await Promise.all(models.map((m) => m.encodeImages(x)));
    setThreads(1);
    const again = [];
    for (let r = 0; r < 3; r++) again.push(...(await Promise.all(models.map((m) => m.encodeImages(x)))));
    for (const a of again) expect(bits(a)).toBe(one);
    // Informative: whether 2 threads change the last bits of this model here (when they do, the check
    // above is the one that would catch a worker still at 2).
    process.stdout.write(`2 threads ${bits(two[0]) === one ? 'give the same bits' : 'change the last bits'} on this machine\n`);
  } finally {
    for (const m of models) m.dispose();
    setThreads(before);
  }
});

test("setThreads sizes OpenBLAS's own pool too (the pthread build ignores libtorch's count)", () => {
  const before = capabilities().threads;
  try {
    for (const n of [1, 2, 1]) {
      setThreads(n);
      const caps = capabilities();
      expect(caps.threads).toBe(n);
      // -1: a BLAS that does not report a pool (reference BLAS, MKL); OpenBLAS always does.
      if (/OpenBLAS/.test(caps.blas)) expect(caps.blasThreads).toBe(n);
      else expect(caps.blasThreads).toBe(-1);
    }
  } finally {
    setThreads(before);
  }
});
