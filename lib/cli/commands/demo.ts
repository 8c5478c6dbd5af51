import type { CommandModule } from 'yargs';
import type { CiBounds } from '../../eval/score';
import { DEMO_DEFAULTS, defaultDemoDir, f4, runDemo, type DemoResult } from '../../jobs/demo';
import { withStopSignal } from '../signals';
import { opts, withOptions } from '../options';

/** The text summary printed at the end. */
export function formatDemoText(d: DemoResult): string {
  const t = d.test;
  const names = Object.keys(t.labels);
  const w = Math.max(...names.map((l) => l.length), 'macro mean'.length);
  const ci = (c: CiBounds | null) => (c && c.lo !== null && c.hi !== null ? ` [${c.lo.toFixed(3)}, ${c.hi.toFixed(3)}]` : '');
  const out: string[] = [];
  out.push(`zero-shot AUROC on the held-out test split (${t.images} images; 95% CI by patient bootstrap):`);
  out.push(`  ${'label'.padEnd(w)}  untrained  trained`);
  for (const l of names) {
    const x = t.labels[l];
    out.push(`  ${l.padEnd(w)}  ${f4(x.untrainedAuroc).padStart(9)}  ${x.auroc === null ? 'n/a (one class only in test)' : x.auroc.toFixed(4) + ci(x.ci)}`);
  }
  out.push(`  ${'macro mean'.padEnd(w)}  ${f4(t.untrainedMacroAuroc).padStart(9)}  ${f4(t.macroAuroc)}${ci(t.macroAurocCi)}`);
  const tr = d.training;
  out.push(
    `${d.status === 'stopped' ? 'stopped after' : 'trained'} ${tr.steps} steps in ${(tr.elapsedMs / 1000).toFixed(1)} s; evaluated the ${tr.evaluated.by} checkpoint (step ${tr.evaluated.step}, validation macro AUROC ${f4(tr.evaluated.valMacroAuroc)})`,
  );
  out.push(`report card: ${t.reportCard}`);
  out.push(`untrained report card: ${t.untrainedReportCard}`);
  out.push(`data: ${d.data.dir}; run: ${tr.runDir}; splits (no overlap): ${d.splits.file}`);
  out.push(`total ${(d.elapsedMs / 1000).toFixed(1)} s`);
  return out.join('\n') + '\n';
}

interface DemoArgs {
  out?: string;
  steps?: number;
  n?: number;
  lr?: number;
  alpha?: number;
  'finding-strength'?: number;
  seed?: number;
  'eval-every'?: number;
  bootstrap?: number;
  device: string;
  threads?: number;
  json: boolean;
  quiet: boolean;
  'log-to'?: string;
  pixels?: 'float32' | 'uint8';
}

/** `cxr-train demo`: synthetic data → fine-tune test-vit → zero-shot evaluation on the held-out test split. */
export const command: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'The main job in one command: generate synthetic X-rays + reports, fine-tune a small model (about 1.5 minutes on 2 CPU cores), zero-shot AUROC on a held-out test split',
  builder: (y) =>
    withOptions(y, [
      opts.out({ describe: 'Output folder (default runs/demo-<date>-<time>): data/, run/, eval/, eval-untrained/, splits.json' }),
      opts.n({ describe: `Synthetic images to generate (default ${DEMO_DEFAULTS.n})` }),
      opts.findingStrength({ describe: `Finding visibility of the synthetic data in (0, 2] (default ${DEMO_DEFAULTS.findingStrength}; 0.5 = subtle)` }),
      opts.seed({ describe: `Seed of data, weights and training (default ${DEMO_DEFAULTS.seed})` }),
      opts.bootstrap({ describe: `Bootstrap resamples for the test CIs (default ${DEMO_DEFAULTS.bootstrap}; 0: none)` }),
      opts.device({ default: 'auto' }),
      opts.threads(),
      opts.json({ describe: 'Print one JSON object with the result on stdout (progress stays on stderr)' }),
      opts.quiet(),
    ])
      .option('steps', { type: 'number', describe: `Optimizer steps (default ${DEMO_DEFAULTS.steps}, ~70 s of training on 2 CPU cores)` })
      .option('lr', { type: 'number', describe: `Peak learning rate (default ${DEMO_DEFAULTS.lr})` })
      .option('alpha', { type: 'number', describe: `Train with the relaxed loss at threshold α in (0, 1] (default: the CLIP loss, the training default; docs/ablation.md)` })
      .option('eval-every', { type: 'number', describe: `Validate and maybe keep a new best checkpoint every N steps (default ${DEMO_DEFAULTS.evalEvery})` })
      .option('pixels', { type: 'string', choices: ['float32', 'uint8'], describe: 'Training batches: float32, or uint8 normalised on the device (as train --pixels)' })
      .option('log-to', { type: 'string', describe: 'Files the training run logs to, as train --log-to: jsonl, tensorboard (run/tensorboard/), e.g. jsonl,tensorboard' })
      .example('$0 demo', 'Everything with the defaults: about 1.5 minutes on 2 CPU cores, ends with per-label AUROC and the report card path')
      .example('$0 demo --steps 200 --out runs/quick-demo', 'A quicker, weaker run in a chosen folder')
      .example('$0 demo --alpha 0.3 --json > demo.json', 'The relaxed loss at α = 0.3, result as JSON') as never,
  handler: async (argv) => {
    const d = await withStopSignal(
      {
        first: (sig) => `${sig}: stopping training after this step, then evaluating the checkpoint so far (${sig} again to quit now)`,
        again: (sig) => `${sig} again: quitting now`,
      },
      (signal) =>
        runDemo({
          outDir: argv.out ?? defaultDemoDir(),
          steps: argv.steps,
          n: argv.n,
          lr: argv.lr,
          alpha: argv.alpha,
          findingStrength: argv['finding-strength'],
          seed: argv.seed,
          evalEvery: argv['eval-every'],
          bootstrap: argv.bootstrap,
          device: argv.device,
          threads: argv.threads ?? null,
          log: argv.quiet ? 'none' : argv.json ? 'plain' : 'auto',
          logTo: argv['log-to'],
          pixels: argv.pixels,
          onStage: argv.quiet ? () => undefined : (s) => process.stderr.write(s + '\n'),
          signal,
        }),
    );
    process.stdout.write(argv.json ? JSON.stringify(d, null, 2) + '\n' : formatDemoText(d));
  },
};
