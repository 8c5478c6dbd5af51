import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { withStopSignal } from '../signals';
import { opts, withOptions } from '../options';

/**
 * `cxr-train experiment ablation`: the paper's ablation (four settings × seeds) with confidence intervals.
 * `cxr-train experiment pointing`: the pointing game of the demo model's saliency maps on synthetic findings.
 */
export const command: CommandModule = {
  command: 'experiment <name>',
  describe: 'Run a documented experiment (ablation: CLIP vs + sentence sampling vs + relaxation vs both; pointing: do saliency maps point at the drawn findings)',
  builder: (y) =>
    withOptions(y.positional('name', { type: 'string', choices: ['ablation', 'pointing'], describe: 'Experiment to run' }), [
      opts.out({ describe: 'Experiment folder (outDir); re-running with the same config continues it' }),
      opts.checkpoint({ describe: 'ablation: start from this model / CLIP checkpoint instead of pre-training on the shapes domain; pointing: the model to explain on the --demo data (default: the demo\'s checkpoint)' }),
      opts.json({ describe: 'Print results.json on stdout at the end' }),
      opts.device({ default: 'auto', describe: 'pointing: "auto", "cpu" or "cuda:N" (ablation: its config\'s device)' }),
      opts.threads({ describe: 'pointing: libtorch threads (ablation: its config\'s threads)' }),
    ])
      .option('config', { type: 'string', describe: 'Experiment config (YAML or JSON) over the defaults; its `finetune` section is a training config' })
      .option('quick', { type: 'boolean', default: false, describe: 'Tiny preset (about a minute): checks the pipeline, proves nothing' })
      .option('seeds', { type: 'string', describe: 'Comma-separated fine-tuning seeds, e.g. 0,1,2' })
      .option('alphas', { type: 'string', describe: 'Comma-separated fixed α of the relaxed settings ("" for none; more than one value in all: a sweep)' })
      .option('quantiles', { type: 'string', describe: 'Comma-separated q of the adaptive threshold (α = running q-quantile of the positive similarities) to sweep' })
      .option('quantile-hold', { type: 'string', describe: 'Quantile forms: hold α after this many fine-tuning steps, or "none" to let it run (default 30)' })
      .option('margins', { type: 'string', describe: 'Comma-separated margins m of the margin form to sweep' })
      .option('settings', { type: 'string', describe: 'Comma-separated settings to run, baseline first: clip, sampling, relaxed, both' })
      .option('results-md', { type: 'string', describe: 'Also write the results markdown here (e.g. docs/results.md)' })
      .option('print-config', { type: 'boolean', default: false, describe: 'Print the resolved experiment config as YAML and exit' })
      .option('demo', { type: 'string', describe: 'pointing: a finished `cxr-train demo` folder to reuse (its data and checkpoint) instead of fine-tuning here' })
      .option('doc', { type: 'string', describe: 'pointing: also write the table into this markdown file between its markers (e.g. docs/inference.md)' })
      .option('log-to', { type: 'string', describe: "Files every run logs to, as train --log-to (finetune.log.to): jsonl, tensorboard (each run's tensorboard/)" })
      .example('$0 experiment ablation', 'The default experiment (~15 min on 2 CPU cores), in runs/ablation')
      .example('$0 experiment ablation --quick --out /tmp/abl', 'The pipeline in about a minute')
      .example('$0 experiment ablation --settings clip,sampling,both --alphas 0.3,0.5,0.8 --quantiles 0.5 --margins 0.1 --seeds 0,1,2,3,4', 'A relaxation sweep with sampling on, against the baseline and sampling alone')
      .example('$0 experiment ablation --config examples/ablation-mimic.yaml', 'MIMIC-CXR with a real CLIP checkpoint')
      .example('$0 experiment pointing --out runs/pointing --doc docs/inference.md', 'Fine-tune the demo model, play the pointing game, update the docs table')
      .example('$0 experiment pointing --demo runs/demo-20260101-120000 --out runs/pointing', 'The pointing game of a finished demo'),
  handler: async (argv) => {
    if (argv.name === 'pointing') {
      const { runPointing } = await import('../../jobs/pointing');
      const res = await runPointing({
        outDir: (argv.out as string | undefined) ?? 'runs/pointing',
        ...(argv.demo !== undefined ? { demoDir: argv.demo as string } : {}),
        ...(argv.checkpoint !== undefined ? { checkpoint: argv.checkpoint as string } : {}),
        ...(argv.quick ? { demo: { n: 600, steps: 60, evalEvery: 0, bootstrap: 0 } } : {}),
        device: argv.device as string,
        ...(argv.threads !== undefined ? { threads: argv.threads as number } : {}),
        ...(argv.doc !== undefined ? { doc: argv.doc as string } : {}),
        commandLine: ['cxr-train', ...process.argv.slice(2)].join(' '),
        onStage: (l) => process.stderr.write(l + '\n'),
      });
      process.stdout.write(argv.json ? JSON.stringify(res, null, 2) + '\n' : res.markdown);
      return;
    }
    const { readAblationConfigFile, resolveAblationConfig } = await import('../../experiments/ablation/config');
    const { runAblation } = await import('../../jobs/ablation');
    const list = (s: string, what: string): number[] => {
      if (s.trim() === '') return [];
      const v = s.split(',').map((x) => Number(x.trim()));
      if (v.some((x) => !Number.isFinite(x))) throw new CxrError('E_CONFIG', `--${what} wants comma-separated numbers, got "${s}"`);
      return v;
    };
    const flags: Record<string, unknown> = {};
    if (argv.out !== undefined) flags.outDir = argv.out;
    if (argv.seeds !== undefined) flags.seeds = list(String(argv.seeds), 'seeds');
    if (argv.alphas !== undefined) flags.alphas = list(String(argv.alphas), 'alphas');
    if (argv.quantiles !== undefined) flags.quantiles = list(String(argv.quantiles), 'quantiles');
    if (argv.margins !== undefined) flags.margins = list(String(argv.margins), 'margins');
    if (argv['quantile-hold'] !== undefined) flags.quantileFreezeAfter = String(argv['quantile-hold']) === 'none' ? null : Number(argv['quantile-hold']);
    if (argv.settings !== undefined) flags.settings = String(argv.settings).split(',').map((x) => x.trim());
    if (argv.checkpoint !== undefined) flags.pretrain = { checkpoint: argv.checkpoint };
    if (argv['log-to'] !== undefined) flags.finetune = { log: { to: argv['log-to'] } };
    const file = argv.config ? readAblationConfigFile(argv.config as string) : undefined;
    const config = resolveAblationConfig(
      [
        { config: file, source: argv.config as string | undefined },
        { config: flags, source: 'flags' },
      ],
      { quick: argv.quick as boolean },
    );
    if (argv['print-config']) {
      const yaml = await import('js-yaml');
      process.stdout.write(yaml.dump(config, { lineWidth: 120, noRefs: true }));
      return;
    }
    await withStopSignal({ first: () => 'stopping after this step; re-run the same command to continue' }, async (signal) => {
      const out = await runAblation(config, {
        log: (l) => process.stderr.write(`ablation: ${l}\n`),
        signal,
        markdownCopy: argv['results-md'] as string | undefined,
        commandLine: ['cxr-train', ...process.argv.slice(2)].join(' '),
      });
      if (out.status === 'stopped') {
        process.stderr.write(`ablation: stopped; ${out.ran.length} run(s) finished now. Re-run the same command to continue.\n`);
        process.exitCode = 130;
        return;
      }
      process.stderr.write(`ablation: done (${out.ran.length} run(s) now, ${out.skipped.length} already done). Results: ${out.outDir}/results.md\n`);
      if (argv.json) process.stdout.write(JSON.stringify(out.results, null, 2) + '\n');
      else process.stdout.write(require('node:fs').readFileSync(require('node:path').join(out.outDir, 'results.md'), 'utf8'));
    });
  },
};
