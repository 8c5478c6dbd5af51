import path from 'node:path';
import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { withStopSignal } from '../signals';
import { schemaFlags } from '../../train/schema';
import { opts, withOptions } from '../options';

/** Short flags → dotted config keys, from the schema table (everything else: `--set key=value`). */
const FLAGS = schemaFlags();

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '  n/a ' : v.toFixed(4);
}

/** `cxr-train train`: fine-tune with sentence sampling and the relaxed loss; validate zero-shot; checkpoint; resume. */
export const command: CommandModule = {
  command: 'train',
  describe: 'Fine-tune a CLIP model on image-report pairs (with no config: the embedded synthetic demo job)',
  builder: (y) => {
    let b = withOptions(y, [
      opts.json({ describe: 'Print the final result as JSON on stdout' }),
      { name: 'nproc', meaning: 'data-parallel worker processes on this machine', spec: { type: 'number', describe: 'Data-parallel worker processes on this machine (one per GPU; Gloo between CPU processes)' }, bound: { integer: true, min: 1 } },
      { name: 'nnodes', meaning: 'machines in a data-parallel job', spec: { type: 'number', default: 1, describe: 'Machines in the job (with --nproc)' }, bound: { integer: true, min: 1 } },
      { name: 'node-rank', meaning: "this machine's index in a data-parallel job", spec: { type: 'number', default: 0, describe: "This machine's index, 0 ... nnodes-1 (with --nproc)" }, bound: { integer: true, min: 0 } },
    ])
      .option('config', { type: 'string', describe: 'Run config (YAML or JSON); flags override it' })
      .option('resume', { type: 'string', describe: 'Continue a run exactly: "auto" (newest checkpoint of --out, or start fresh), a checkpoint or a run folder' })
      .option('set', { type: 'string', array: true, describe: 'Override any config key: --set optimizer.weightDecay=0.05 --set data.augment=null' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Validate the config and the data, print the plan, do not train' })
      .option('print-config', { type: 'boolean', default: false, describe: 'Print the resolved config as YAML and exit' })
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
    const { configToYaml } = await import('../../train/config');
    const { launchTraining, planTraining, resolveRun } = await import('../../jobs/train');
    const flags: Record<string, string> = Object.create(null); // `--set __proto__=1` is a key (refused), not a prototype
    for (const f of FLAGS) if (argv[f.flag] !== undefined) flags[f.path] = String(argv[f.flag]);
    for (const kv of (argv.set as string[] | undefined) ?? []) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new CxrError('E_CONFIG', `--set wants key=value, got "${kv}"`);
      flags[kv.slice(0, i).trim()] = kv.slice(i + 1);
    }
    const { config, resumeDir } = resolveRun({
      configFile: argv.config as string | undefined,
      overrides: flags,
      resume: argv.resume as string | undefined,
    });
    if (argv['print-config']) {
      process.stdout.write(configToYaml(config));
      return;
    }
    if (argv['dry-run']) {
      process.stdout.write(formatPlan(await planTraining(config)));
      return;
    }

    const { distributedEnv } = await import('../../train/distributed');
    if (argv.nproc !== undefined && !distributedEnv()) {
      // The launcher: every worker runs this same command under torchrun's environment.
      await launchTraining(config, {
        nproc: argv.nproc as number,
        nnodes: argv.nnodes as number,
        nodeRank: argv['node-rank'] as number,
        master: argv.master as string | undefined,
        script: process.argv[1],
        args: process.argv.slice(2),
        outGiven: flags.outDir !== undefined,
      });
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
