import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { exitIfNothingUseful } from '../outcome';

function list(v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  return String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `cxr-train prepare`: read a dataset with an adapter and write packed shards; `--verify` checks them. */
export const command: CommandModule = {
  command: 'prepare',
  describe: 'Read a dataset (MIMIC-CXR-JPG, CheXpert, CSV, ...) and write packed, checksummed shards; resumable; --verify checks an existing output',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'Shard output directory' })
      .option('verify', { type: 'boolean', default: false, describe: 'Only verify the shards in --out (sizes and SHA-256)' })
      .option('dataset', { type: 'string', default: 'mimic-cxr', describe: 'Adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv' })
      .option('root', { type: 'string', describe: 'Dataset root directory' })
      .option('size', { type: 'number', default: 224, describe: 'Stored image side in pixels' })
      .option('geometry', { choices: ['pad', 'crop', 'stretch'] as const, default: 'pad', describe: "'pad' (CheXzero) or 'crop' (CLIP)" })
      .option('shard-size', { type: 'number', default: 1024, describe: 'Images per shard' })
      .option('concurrency', { type: 'number', default: 4, describe: 'Images decoded concurrently' })
      .option('splits', { type: 'string', describe: 'Keep only these splits (comma-separated: train,validate,test)' })
      .option('views', { type: 'string', describe: 'Keep only these views (e.g. PA,AP)' })
      .option('strict', { type: 'boolean', default: false, describe: 'Any bad row or image is fatal' })
      .option('labeler', { choices: ['chexpert', 'negbio'] as const, default: 'chexpert', describe: 'MIMIC-CXR label file' })
      .option('reports-root', { type: 'string', describe: 'MIMIC-CXR: directory holding the reports files/ tree' })
      .option('uncertain', { choices: ['ones', 'zeros', 'ignore', 'keep'] as const, default: 'keep', describe: 'CheXpert: policy for -1 labels' })
      .option('aggregation', { choices: ['majority', 'any', 'all'] as const, default: 'majority', describe: 'VinDr-CXR: reader aggregation' })
      .option('assign-splits', { type: 'boolean', default: true, describe: 'Give samples without an official split a patient-level split (80/10/10, seeded by --seed)' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of assigned splits' })
      .option('file', { type: 'string', describe: 'csv: index file (.csv, .csv.gz, .jsonl)' })
      .option('image-col', { type: 'string', describe: 'csv: image path column' })
      .option('text-col', { type: 'string', describe: 'csv: report text column' })
      .option('label-cols', { type: 'string', describe: 'csv: comma-separated label columns' })
      .option('patient-col', { type: 'string', describe: 'csv: patient id column' })
      .option('study-col', { type: 'string', describe: 'csv: study id column' })
      .option('id-col', { type: 'string', describe: 'csv: sample id column' })
      .option('view-col', { type: 'string', describe: 'csv: view column' })
      .option('split-col', { type: 'string', describe: 'csv: split column' })
      .option('quiet', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const shards = await import('../../data/shards');
    const out = argv.out as string;
    if (argv.verify) {
      const r = shards.verifyShards(out);
      process.stdout.write(`${r.ok ? 'OK' : 'FAILED'}: ${r.shards} shard(s), ${r.images} image(s)${r.complete ? '' : ' (incomplete: prepare was interrupted; rerun it to finish)'}\n`);
      for (const p of r.problems) process.stdout.write(`  ${p.file}: ${p.message}\n`);
      if (!r.ok) process.exitCode = 1;
      return;
    }
    if (!argv.root) throw new CxrError('E_CONFIG', '--root is required (the dataset directory)');
    const { prepareShards } = await import('../../jobs/prepare');
    const { formatIssues } = await import('../../data/manifest');
    const quiet = argv.quiet as boolean;
    const { manifest, meta, elapsedMs, nothingUseful } = await prepareShards({
      dataset: argv.dataset as string,
      adapterOptions: {
        root: argv.root as string,
        strict: argv.strict as boolean,
        splits: list(argv.splits),
        views: list(argv.views),
        labeler: argv.labeler,
        reportsRoot: argv['reports-root'],
        uncertain: argv.uncertain,
        aggregation: argv.aggregation,
        file: argv.file,
        imageCol: argv['image-col'],
        textCol: argv['text-col'],
        labelCols: list(argv['label-cols']),
        patientCol: argv['patient-col'],
        studyCol: argv['study-col'],
        idCol: argv['id-col'],
        viewCol: argv['view-col'],
        splitCol: argv['split-col'],
      },
      assignSplits: argv['assign-splits'] as boolean,
      seed: argv.seed as number,
      onManifest: (m) => {
        const issues = formatIssues(m.issues);
        if (issues) process.stderr.write(`${argv.dataset as string}: ${issues}\n`);
      },
      outDir: out,
      size: argv.size as number,
      geometry: argv.geometry as 'pad' | 'crop' | 'stretch',
      shardSize: argv['shard-size'] as number,
      concurrency: argv.concurrency as number,
      onShard: quiet ? undefined : (done, total, m) => process.stderr.write(`prepare: shard ${done}/${total} (${m.count} images)\n`),
    });
    const bad = meta.issues.total;
    process.stdout.write(
      `prepared ${meta.count} of ${manifest.samples.length} images (${manifest.dataset}) into ${meta.shards.length} shard(s) of ${meta.size}x${meta.size} at ${out} ` +
        `in ${(elapsedMs / 1000).toFixed(1)} s; ${manifest.issues.total} dataset issue(s), ${bad} image issue(s)\n`,
    );
    if (bad) process.stderr.write(formatIssues(meta.issues) + '\n');
    exitIfNothingUseful('prepare', nothingUseful);
  },
};
