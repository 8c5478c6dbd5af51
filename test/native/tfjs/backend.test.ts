import { loadTf, resolveBackendName, tfjsNodeAvailable, tfjsResolver, useBackend } from '../../../lib/tfjs/backend';
import { createModel } from '../../../lib/models/ClipModel';
import { TfClipModel } from '../../../lib/tfjs/model';
import { images, maxAbsDiff } from './helpers';

describe('tfjs backends', () => {
  it('wasm is available and selected by "auto" when tfjs-node is absent', async () => {
    const { tf, backend } = await useBackend('wasm');
    expect(backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(resolveBackendName('auto')).toBe(tfjsNodeAvailable() ? 'tensorflow' : 'wasm');
  });

  it('rejects unknown backend names with E_CONFIG', () => {
    expect(() => resolveBackendName('webgpu' as never)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });

  it('the pure-JS cpu backend gives the same embeddings as native (test-vit)', async () => {
    const native = createModel('test-vit', { device: 'cpu', seed: 2 });
    const tfm = await TfClipModel.fromState(native.config, native.getState(), { backend: 'cpu' });
    try {
      const x = images(2, 32, 4);
      const a = await native.encodeImages(x);
      const b = await tfm.encodeImages(x);
      expect(tfm.backend).toBe('cpu');
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    } finally {
      tfm.dispose();
      native.dispose();
      await useBackend('wasm');
    }
  });

  const nodeIt = tfjsNodeAvailable() ? it : it.skip;
  if (!tfjsNodeAvailable()) {
    console.info('tfjs: @tensorflow/tfjs-node is not installed; the "tensorflow" backend parity test is skipped');
  }
  nodeIt('tfjs-node ("tensorflow" backend) gives the same embeddings as native (test-vit)', async () => {
    const native = createModel('test-vit', { device: 'cpu', seed: 2 });
    const tfm = await TfClipModel.fromState(native.config, native.getState(), { backend: 'tensorflow' });
    try {
      const x = images(2, 32, 4);
      expect(maxAbsDiff(await native.encodeImages(x), await tfm.encodeImages(x))).toBeLessThan(1e-4);
    } finally {
      tfm.dispose();
      native.dispose();
      await useBackend('wasm');
    }
  });

  it('backend "tensorflow" without tfjs-node is E_UNSUPPORTED', async () => {
    if (tfjsNodeAvailable()) return;
    await expect(useBackend('tensorflow')).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('tfjs-node') });
  });

  it('without @tensorflow/tfjs installed the variant fails with E_UNSUPPORTED and the install command', () => {
    const real = tfjsResolver.resolve;
    jest.isolateModules(() => {
      // A fresh copy of the module (nothing loaded yet) that cannot resolve any @tensorflow package.
      const fresh = require('../../../lib/tfjs/backend') as typeof import('../../../lib/tfjs/backend');
      fresh.tfjsResolver.resolve = (name: string) => {
        if (name.startsWith('@tensorflow/')) throw new Error(`Cannot find module '${name}'`);
        return real(name);
      };
      expect(fresh.tfjsAvailable()).toBe(false);
      expect(() => fresh.loadTf()).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED', message: expect.stringContaining('npm install @tensorflow/tfjs') }));
      expect(fresh.resolveBackendName('auto')).toBe('cpu');
    });
    // The real module is untouched.
    expect(loadTf().version_core).toMatch(/^4\./);
  });
});
