import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { scoreCsv, withoutCurves } from '../../eval/score';
import type { CiBounds, DeltaResult, ScoreResult } from '../../eval/score';
import { writeReportCard } from '../../eval/reportCard';
import type { ThresholdCriterion } from '../../eval/metrics';
import { opts, withOptions } from '../options';

interface ScoreArgs {
  truth: string;
  pred: string;
  'val-truth'?: string;
  'val-pred'?: string;
  labels?: string;
  'id-col'?: string;
  'patient-col'?: string;
  binary: boolean;
  bootstrap: number;
  seed: number;
  threshold: number;
  'threshold-metric': ThresholdCriterion;
  readers?: string;
  json: boolean;
  out?: string;
}

const splitList = (s: string | undefined): string[] | undefined =>
  s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== '');

const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '   —' : x.toFixed(3));
const ci = (c?: CiBounds): string => (c ? ` (${f3(c.lo)}-${f3(c.hi)})` : '');
const delta = (d: DeltaResult): string =>
  `${d.delta === null ? '—' : (d.delta >= 0 ? '+' : '') + d.delta.toFixed(3)}${d.n > 0 ? ` (${f3(d.lo)}, ${f3(d.hi)}) p=${d.p === null ? '—' : d.p < 0.001 ? '<0.001' : d.p.toFixed(3)}` : ''}`;

function table(rows: string[][]): string {
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => (r[j] ?? '').length)));
  return rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(w[j]) : c.padStart(w[j]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** Human-readable summary of a score result. */
export function formatScoreText(r: ScoreResult): string {
  const binary = r.settings.binary;
  const head = ['label', 'n', 'pos', ...(binary ? [] : ['AUROC', 'AUPRC']), 'F1', 'MCC', 'threshold', 'source'];
  const rows = [head];
  for (const [l, s] of Object.entries(r.labels)) {
    rows.push([
      l,
      String(s.n),
      String(s.nPos),
      ...(binary ? [] : [f3(s.auroc) + ci(s.ci?.auroc), f3(s.auprc) + ci(s.ci?.auprc)]),
      f3(s.f1) + ci(s.ci?.f1),
      f3(s.mcc) + ci(s.ci?.mcc),
      String(+s.threshold.toPrecision(4)),
      s.thresholdSource,
    ]);
  }
  const m = r.macro;
  rows.push([
    `macro (${m.labels.length})`,
    '',
    '',
    ...(binary ? [] : [f3(m.auroc) + ci(m.ci?.auroc), f3(m.auprc) + ci(m.ci?.auprc)]),
    f3(m.f1) + ci(m.ci?.f1),
    f3(m.mcc) + ci(m.ci?.mcc),
    '',
    '',
  ]);
  let out = table(rows);
  if (r.bootstrap) out += `${Math.round(r.bootstrap.level * 100)}% CIs: ${r.bootstrap.resamples} bootstrap resamples by ${r.bootstrap.unit} (${r.bootstrap.nUnits}), seed ${r.bootstrap.seed}\n`;
  for (const s of r.skipped) out += `skipped ${s.label}: ${s.reason}\n`;
  for (const w of r.warnings) out += `note: ${w}\n`;
  if (r.readers) {
    const rd = r.readers;
    out += '\nmodel vs readers (F1 | MCC; delta = model - reader mean, paired bootstrap)\n';
    const rr = [['label', 'model', ...rd.readers.map((x) => x.name), 'reader mean', 'delta F1', 'model', ...rd.readers.map((x) => x.name), 'reader mean', 'delta MCC']];
    for (const l of Object.keys(r.labels)) {
      rr.push([
        l,
        f3(r.labels[l].f1),
        ...rd.readers.map((x) => f3(x.labels[l]?.f1)),
        f3(rd.mean.labels[l].f1),
        delta(rd.comparison.labels[l].f1),
        f3(r.labels[l].mcc),
        ...rd.readers.map((x) => f3(x.labels[l]?.mcc)),
        f3(rd.mean.labels[l].mcc),
        delta(rd.comparison.labels[l].mcc),
      ]);
    }
    rr.push([
      'macro',
      f3(m.f1),
      ...rd.readers.map((x) => f3(x.macro.f1)),
      f3(rd.mean.macro.f1),
      delta(rd.comparison.macro.f1),
      f3(m.mcc),
      ...rd.readers.map((x) => f3(x.macro.mcc)),
      f3(rd.mean.macro.mcc),
      delta(rd.comparison.macro.mcc),
    ]);
    out += table(rr);
  }
  return out;
}

/**
 * `cxr-train score`: scores any predictions (ours or another model's) against a truth CSV, with thresholds
 * fitted on validation files when given, bootstrap CIs, macro means, an optional radiologist comparison and
 * an optional report card.
 */
export const command: CommandModule<object, ScoreArgs> = {
  command: 'score',
  describe: 'Score predictions against ground truth: AUROC/AUPRC/F1/MCC with bootstrap CIs, readers, report card',
  builder: (y) =>
    withOptions(y, [
      opts.idCol({ describe: 'Id column in every file (default: "id" if present, else the first truth column)' }),
      opts.patientCol({ describe: 'Patient column of the truth for the cluster bootstrap (default: patient_id or patient if present)' }),
      opts.bootstrap({ default: 1000 }),
      opts.seed({ default: 0, describe: 'Bootstrap seed' }),
      opts.threshold({ default: 0.5, describe: 'Threshold when there is no validation split, in [0, 1]' }),
      opts.thresholdMetric(),
      opts.json({ describe: 'Print the scores as JSON on stdout instead of a table' }),
      opts.out({ describe: 'Write the report card (report.json, report.html) in this folder', old: ['out-dir'] }),
    ])
      .option('truth', { type: 'string', demandOption: true, describe: 'Truth CSV: id, [patient_id], one column per label (1, 0, -1 uncertain, empty missing)' })
      .option('pred', { type: 'string', demandOption: true, describe: 'Predictions CSV: id and one score column per label' })
      .option('val-truth', { type: 'string', describe: 'Validation truth CSV: thresholds are fitted there and frozen' })
      .option('val-pred', { type: 'string', describe: 'Validation predictions CSV' })
      .option('labels', { type: 'string', describe: 'Comma-separated labels to score (default: every truth column but id/patient)' })
      .option('binary', { type: 'boolean', default: false, describe: 'Predictions are 0/1 reads (no AUROC/AUPRC)' })
      .option('readers', { type: 'string', describe: 'Comma-separated CSVs of radiologist 0/1 reads on the same ids' })
      .example('$0 score --truth test_truth.csv --pred test_pred.csv --val-truth val_truth.csv --val-pred val_pred.csv --out card/', 'Thresholds fitted on validation, CIs, a report card')
      .example('$0 score --truth truth.csv --pred other_model.csv --readers r1.csv,r2.csv --json', 'Another model against radiologists, as JSON') as never,
  handler: async (argv) => {
    if ((argv['val-truth'] === undefined) !== (argv['val-pred'] === undefined)) {
      throw new CxrError('E_CONFIG', '--val-truth and --val-pred go together');
    }
    const readers = splitList(argv.readers);
    const labels = splitList(argv.labels);
    if (argv.labels !== undefined && (!labels || labels.length === 0)) throw new CxrError('E_CONFIG', '--labels is empty');
    const result = scoreCsv(
      {
        truth: argv.truth,
        pred: argv.pred,
        ...(argv['val-truth'] ? { valTruth: argv['val-truth'], valPred: argv['val-pred'] } : {}),
        ...(readers && readers.length ? { readers } : {}),
      },
      {
        ...(labels ? { labels } : {}),
        ...(argv['id-col'] ? { idCol: argv['id-col'] } : {}),
        ...(argv['patient-col'] ? { patientCol: argv['patient-col'] } : {}),
        binary: argv.binary,
        bootstrap: argv.bootstrap,
        seed: argv.seed,
        threshold: argv.threshold,
        thresholdCriterion: argv['threshold-metric'],
      },
    );
    let written: { json: string; html: string } | undefined;
    if (argv.out) {
      written = writeReportCard(argv.out, result, {
        title: 'cxr-train score',
        ...(argv['val-truth'] ? { thresholdSplit: `validation (${argv['val-truth']})` } : {}),
        testSplit: argv.truth,
        config: {
          command: 'score',
          truth: argv.truth,
          pred: argv.pred,
          valTruth: argv['val-truth'] ?? null,
          valPred: argv['val-pred'] ?? null,
          labels: labels ?? null,
          binary: argv.binary,
          bootstrap: argv.bootstrap,
          seed: argv.seed,
          threshold: argv.threshold,
          thresholdMetric: argv['threshold-metric'],
          readers: readers ?? [],
        },
      });
    }
    if (argv.json) process.stdout.write(JSON.stringify(withoutCurves(result), null, 2) + '\n');
    else {
      process.stdout.write(formatScoreText(result));
      if (written) process.stdout.write(`report card: ${written.html}\n`);
    }
  },
};
