import path from 'node:path';
import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { withStopSignal } from '../signals';
import { schemaFlags } from '../../train/schema';

/** Short flags → dotted config keys, from the schema table (everything else: `--set key=value`). */
const FLAGS = schemaFlags();

/** Launcher flags: consumed by `--nproc`, not passed on to the workers. */
const LAUNCH_FLAGS = ['nproc', 'nnodes', 'node-rank', 'master'];

/** argv without the launcher's flags (`--nproc 2`, `--nproc=2`). */
export function stripLaunchFlags(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(=.*)?$/.exec(args[i]);
    if (m && LAUNCH_FLAGS.includes(m[1])) {
      if (m[2] === undefined) i++;
      continue;
    }
    out.push(args[i]);
  }
  return out;
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '  n/a ' : v.toFixed(4);
}

/** `cxr-train train`: fine-tune with sentence sampling and the relaxed loss; validate zero-shot; checkpoint; resume. */
export const command: CommandModule = {
  command: 'train',
  describe: 'Fine-tune a CLIP model on image-report pairs (with no config: the embedded synthetic demo job)',
  builder: (y) => {
    let b = y
      .option('config', { type: 'string', describe: 'Run config (YAML or JSON); flags override it' })
      .option('resume', { type: 'string', describe: 'Continue a run exactly: "auto" (newest checkpoint of --out, or start fresh), a checkpoint or a run folder' })
      .option('set', { type: 'string', array: true, describe: 'Override any config key: --set optimizer.weightDecay=0.05 --set data.augment=null' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Validate the config and the data, print the plan, do not train' })
      .option('print-config', { type: 'boolean', default: false, describe: 'Print the resolved config as YAML and exit' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the final result as JSON on stdout' })
      .option('nproc', { type: 'number', describe: 'Data-parallel worker processes on this machine (one per GPU; Gloo between CPU processes)' })
      .option('nnodes', { type: 'number', default: 1, describe: 'Machines in the job (with --nproc)' })
      .option('node-rank', { type: 'number', default: 0, describe: "This machine's index, 0 ... nnodes-1 (with --nproc)" })
      .option('master', { type: 'string', describe: 'ADDR:PORT of node 0, the same on every machine (with --nnodes > 1)' });
    // Values are strings parsed as YAML scalars by overridesToConfig, so flags and files accept the same spellings.
    for (const f of FLAGS) b = b.option(f.flag, { type: 'string', describe: `${f.describe} (${f.path}; default ${JSON.stringify(f.default)})` });
    return b
      .example('$0 train', 'The embedded default run: synthetic data + tiny model, ~75 s on 2 CPU cores, validation AUROC before/after')
      .example('$0 train --config run.yaml --out runs/mimic', 'A configured run')
      .example('$0 train --config run.yaml --out runs/mimic --resume auto', 'Continue it after a crash or Ctrl-C')
      .example('$0 train --steps 1000 --loss clip --text-mode full', 'The CLIP baseline on the synthetic data')
      .example('$0 train --config examples/mimic-cxr.yaml --dry-run', 'Check config and data without training')
      .example('$0 train --config run.yaml --out runs/ddp --nproc 4', 'Data-parallel on 4 GPUs of one machine (batchSize is over all 4)')
      .example('$0 train --config run.yaml --out runs/ddp --nproc 8 --nnodes 2 --node-rank 0 --master 10.0.0.1:29500', 'Node 0 of a 2-machine job (node 1: --node-rank 1)');
  },
  handler: async (argv) => {
    const { DEFAULT_CONFIG, configToYaml, overridesToConfig, readConfigFile, resolveTrainConfig } = await import('../../train/config');
    const { readCheckpoint, resolveResume } = await import('../../train/checkpoints');
    const flags: Record<string, string> = {};
    for (const f of FLAGS) if (argv[f.flag] !== undefined) flags[f.path] = String(argv[f.flag]);
    for (const kv of (argv.set as string[] | undefined) ?? []) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new CxrError('E_CONFIG', `--set wants key=value, got "${kv}"`);
      flags[kv.slice(0, i).trim()] = kv.slice(i + 1);
    }
    const file = argv.config ? readConfigFile(argv.config as string) : undefined;
    const layers = [
      { config: file, source: argv.config as string | undefined },
      { config: overridesToConfig(flags), source: 'flags' },
    ];
    // Resuming without a config continues with the checkpoint's own config (flags still apply).
    let resumeDir: string | null = null;
    let base = DEFAULT_CONFIG;
    if (argv.resume !== undefined) {
      const outGuess = (flags.outDir ?? (file as { outDir?: string } | undefined)?.outDir ?? null) as string | null;
      if (argv.resume === 'auto' && !outGuess) throw new CxrError('E_CONFIG', '--resume auto needs the run folder: pass --out DIR (or outDir in the config)');
      resumeDir = resolveResume(argv.resume as string, outGuess ? path.resolve(outGuess) : null);
      if (resumeDir && !file) base = readCheckpoint(resumeDir).state.config;
    }
    const config = resolveTrainConfig(layers, base);
    if (argv['print-config']) {
      process.stdout.write(configToYaml(config));
      return;
    }
    if (argv['dry-run']) {
      const { planTraining } = await import('../../jobs/train');
      process.stdout.write(formatPlan(await planTraining(config)));
      return;
    }

    const { distributedEnv, launchWorkers } = await import('../../train/distributed');
    if (argv.nproc !== undefined && !distributedEnv()) {
      // The launcher: every worker runs this same command under torchrun's environment.
      const world = (argv.nproc as number) * ((argv.nnodes as number) ?? 1);
      if (Number.isInteger(world) && world > 0 && config.batchSize % world !== 0)
        throw new CxrError('E_CONFIG', `batchSize ${config.batchSize} is the batch over all processes and must be divisible by the ${world} processes`);
      const outDir = path.resolve(config.outDir ?? (await import('../../train/config')).defaultRunDir());
      const args = stripLaunchFlags(process.argv.slice(2));
      if (flags.outDir === undefined) args.push('--out', outDir); // one absolute folder for every rank
      let masterAddr: string | undefined;
      let masterPort: number | undefined;
      if (argv.master !== undefined) {
        const m = /^(.+):(\d+)$/.exec(String(argv.master));
        if (!m) throw new CxrError('E_CONFIG', `--master wants ADDR:PORT, got "${argv.master}"`);
        masterAddr = m[1];
        masterPort = Number(m[2]);
      }
      const r = await launchWorkers({
        nproc: argv.nproc as number,
        nnodes: argv.nnodes as number,
        nodeRank: argv['node-rank'] as number,
        masterAddr,
        masterPort,
        args: [process.argv[1], ...args],
      });
      if (r.failed) {
        const f = r.failed;
        throw new CxrError('E_DIST', `worker rank ${f.rank} (pid ${f.pid}) ${f.signal ? `was killed by ${f.signal}` : `exited with code ${f.code}`}; the job stopped. Resume with: cxr-train train --out ${outDir} --resume auto [--nproc N]`);
      }
      return;
    }
    const worker = distributedEnv();
    const quiet = worker !== null && worker.rank > 0;

    const { Trainer } = await import('../../train/Trainer');
    const { attachReporter } = await import('../../train/reporter');
    const ctrl = new AbortController();
    const trainer = new Trainer(config, { resume: resumeDir ?? undefined, signal: ctrl.signal });
    // Ranks > 0 stay silent: rank 0 speaks for the job (their errors still reach stderr).
    const format = quiet ? 'none' : argv.json && config.log.format === 'auto' ? 'plain' : config.log.format;
    const detach = attachReporter(trainer, { format, everySteps: config.log.everySteps });
    trainer.on('start', (e) => {
      if (config.log.format === 'json' || quiet) return;
      process.stderr.write(
        `cxr-train train: ${e.resumedFrom ? `resuming ${e.resumedFrom} at step ${e.startStep}` : 'new run'} in ${e.outDir}\n` +
          `  model ${config.model.checkpoint ?? config.model.name} on ${e.device} (${(e.parameters.trainable / 1e6).toFixed(2)}M of ${(e.parameters.total / 1e6).toFixed(2)}M parameters trainable)\n` +
          `  data ${config.data.dataset}: ${e.trainPairs} training pairs, ${e.valImages} validation images; ${e.stepsPerEpoch} steps per epoch, ${e.totalSteps} steps\n` +
          (e.worldSize > 1 ? `  data parallel: ${e.worldSize} processes, ${config.batchSize / e.worldSize} pairs each per micro-batch\n` : '') +
          `  loss ${config.loss.kind}${config.loss.kind === 'relaxed' ? ` α=${config.loss.alpha}` : ''}, text ${config.text.mode}/${config.text.sections}, ${config.optimizer.kind} lr ${config.optimizer.lr}, batch ${config.batchSize}×${config.accumSteps}\n` +
          `  resolved config: ${path.join(e.outDir, 'config.yaml')}\n`,
      );
    });
    let result;
    try {
      result = await withStopSignal(
        {
          first: (sig) => `${sig}: finishing this step and writing a checkpoint (${sig} again to quit now)`,
          again: (sig) => `${sig} again: quitting now (the last checkpoint is intact)`,
        },
        (signal) => {
          signal.addEventListener('abort', () => ctrl.abort(), { once: true });
          return trainer.fit();
        },
      );
    } finally {
      detach();
      await trainer.dispose();
    }
    if (quiet) return;
    if (argv.json) {
      process.stdout.write(JSON.stringify(result, (k, v) => (k === 'losses' ? undefined : typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
      return;
    }
    const before = result.initialEval;
    const after = result.finalEval;
    const out: string[] = [];
    if (after) {
      const labels = Object.keys(after.auroc);
      const w = Math.max(...labels.map((l) => l.length), 'macro mean'.length);
      out.push(`zero-shot AUROC on the ${config.data.valSplit} split (${after.n} images):`);
      out.push(`  ${'label'.padEnd(w)}  ${before ? 'before ' : ''} after`);
      for (const l of labels) out.push(`  ${l.padEnd(w)}  ${before ? fmt(before.auroc[l]) + ' ' : ''}${fmt(after.auroc[l])}`);
      out.push(`  ${'macro mean'.padEnd(w)}  ${before ? fmt(before.macroAuroc) + ' ' : ''}${fmt(after.macroAuroc)}`);
      if (after.skipped.length) out.push(`  (not in the mean, one class only in this split: ${after.skipped.join(', ')})`);
      out.push(`validation loss: ${before ? `${fmt(before.valLoss)} → ` : ''}${fmt(after.valLoss)}`);
    }
    if (result.status === 'stopped') {
      out.push(`stopped at step ${result.step}/${result.totalSteps}; checkpoint ${result.lastCheckpoint}`);
      out.push(`continue with: cxr-train train --out ${result.outDir} --resume auto`);
    } else {
      out.push(`trained ${result.totalSteps} steps in ${(result.elapsedMs / 1000).toFixed(1)} s; final model ${result.modelDir}`);
      if (result.best) out.push(`best checkpoint: step ${result.best.step} (${result.best.metric} ${result.best.value.toFixed(4)})`);
      out.push(`metrics: ${path.join(result.outDir, 'metrics.jsonl')}`);
    }
    process.stdout.write(out.join('\n') + '\n');
  },
};

/** The `--dry-run` summary. */
function formatPlan(p: import('../../jobs/train').TrainingPlan): string {
  return (
    [
      'dry run: config and data are valid',
      `  model: ${p.model.description}, image ${p.model.imageSize} px, context ${p.model.contextLength}, tokenizer ${p.model.tokenizer}`,
      `  data: ${p.data.dataset} ${p.data.root ?? ''}: ${p.data.trainPairs} ${p.data.trainSplit} pairs (${p.data.withReport} with a report), ${p.data.valImages} ${p.data.valSplit} images`,
      `  steps per epoch: ${p.stepsPerEpoch}; run: ${p.maxSteps ?? `${p.epochs} epochs = ${p.totalSteps}`} steps`,
      `  prompts: ${p.prompts.name} (${p.prompts.labels} labels)`,
    ].join('\n') + '\n'
  );
}
