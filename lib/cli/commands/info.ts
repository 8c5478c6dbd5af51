import type { CommandModule } from 'yargs';
import { opts, withOptions } from '../options';

/** `cxr-train info`: what this build can do (native backend, libtorch, CUDA, threads). */
export const command: CommandModule = {
  command: 'info',
  describe: 'Print the native backend capabilities (libtorch version, CUDA, distributed backends, threads, BLAS)',
  builder: (y) =>
    withOptions(y, [opts.json({ describe: 'Print the capabilities as JSON on stdout' })])
      .example('$0 info', 'libtorch version, CUDA, attention path, BLAS, threads')
      .example('$0 info --json', 'The same as JSON (capabilities())'),
  handler: async (argv) => {
    const { capabilities } = await import('../../native');
    const caps = capabilities();
    if (argv.json) process.stdout.write(JSON.stringify(caps, null, 2) + '\n');
    else {
      process.stdout.write(`libtorch ${caps.torchVersion}\n`);
      process.stdout.write(
        `CUDA built: ${caps.cuda.built}, available: ${caps.cuda.available}, devices: ${caps.cuda.devices}, cuDNN: ${caps.cuda.cudnn}\n`,
      );
      process.stdout.write(
        `attention: ${caps.fusedAttention ? 'fused (at::scaled_dot_product_attention)' : 'explicit (libtorch < 2.0 has no fused kernel)'}\n`,
      );
      const backends = (['gloo', 'nccl'] as const).filter((b) => caps.distributed[b]);
      process.stdout.write(`distributed backends: ${backends.length ? backends.join(', ') : 'none (install libgloo-dev and rebuild for CPU)'}\n`);
      process.stdout.write(`threads: ${caps.threads}\nBLAS: ${caps.blas}\naddon: ${caps.addonPath}\n`);
    }
  },
};
