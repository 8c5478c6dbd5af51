import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { opts, withOptions } from '../options';
import { exitIfNothingUseful } from '../outcome';

function list(v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  return String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `cxr-train prepare`: read a dataset with an adapter and write packed shards; `--verify DIR` checks them. */
export const command: CommandModule = {
  command: 'prepare [dir]',
  describe: 'Read a dataset (MIMIC-CXR-JPG, CheXpert, CSV, ...) and write packed, checksummed shards; resumable; --verify DIR checks an existing output',
  builder: (y) =>
    withOptions(y.positional('dir', { type: 'string', describe: 'With --verify: the shard folder to check' }), [
      opts.out({ describe: 'Shard output directory' }),
      opts.json({ describe: 'Print the result (or the --verify report) as JSON on stdout' }),
      opts.dataset({ describe: 'Adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv (default mimic-cxr; csv with --csv)' }),
      opts.root({ describe: 'Dataset root directory (csv: default the CSV\'s folder)' }),
      opts.csv({ describe: 'csv: index file (.csv, .csv.gz, .jsonl); implies --dataset csv', old: ['file'] }),
      opts.imageSize({ default: 224, describe: 'Stored image side in pixels' }),
      opts.geometry({ describe: "'pad' (CheXzero) or 'crop' (CLIP)" }),
      opts.concurrency({ default: 4 }),
      opts.views(),
      opts.seed({ default: 0, describe: 'Seed of assigned splits' }),
      opts.imageCol(),
      opts.textCol(),
      opts.labelCols(),
      opts.patientCol(),
      opts.studyCol(),
      opts.idCol(),
      opts.viewCol(),
      opts.splitCol(),
      opts.quiet(),
      { name: 'shard-size', meaning: 'images per shard', spec: { type: 'number', default: 1024, describe: 'Images per shard' }, bound: { integer: true, min: 1 } },
    ])
      .option('verify', { type: 'boolean', default: false, describe: 'Only verify the shards in DIR (sizes and SHA-256)' })
      .option('splits', { type: 'string', describe: 'Keep only these splits (comma-separated: train,validate,test)' })
      .option('strict', { type: 'boolean', default: false, describe: 'Any bad row or image is fatal' })
      .option('labeler', { choices: ['chexpert', 'negbio'] as const, default: 'chexpert', describe: 'MIMIC-CXR label file' })
      .option('reports-root', { type: 'string', describe: 'MIMIC-CXR: directory holding the reports files/ tree' })
      .option('uncertain', { choices: ['ones', 'zeros', 'ignore', 'keep'] as const, default: 'keep', describe: 'CheXpert: policy for -1 labels' })
      .option('aggregation', { choices: ['majority', 'any', 'all'] as const, default: 'majority', describe: 'VinDr-CXR: reader aggregation' })
      .option('assign-splits', { type: 'boolean', default: true, describe: 'Give samples without an official split a patient-level split (80/10/10, seeded by --seed)' })
      .example('$0 prepare --dataset mimic-cxr --root data/mimic-cxr-jpg --out data/shards --image-size 224', 'Pack MIMIC-CXR-JPG into 224 px shards (rerun to resume)')
      .example('$0 prepare --csv index.csv --image-col path --text-col report --out data/shards', 'Pack a hand-made CSV index (paths relative to the CSV)')
      .example('$0 prepare --verify data/shards', 'Check sizes and checksums of existing shards'),
  handler: async (argv) => {
    const shards = await import('../../data/shards');
    const json = argv.json as boolean;
    if (argv.verify) {
      const dir = (argv.dir as string | undefined) ?? (argv.out as string | undefined);
      if (dir === undefined) throw new CxrError('E_CONFIG', 'name the shard folder to check: cxr-train prepare --verify DIR');
      if (argv.dir !== undefined && argv.out !== undefined && argv.dir !== argv.out) throw new CxrError('E_CONFIG', `--verify checks one folder: got ${argv.dir as string} and --out ${argv.out as string}`);
      const r = shards.verifyShards(dir);
      if (json) process.stdout.write(JSON.stringify({ dir, ...r }, null, 2) + '\n');
      else {
        process.stdout.write(`${r.ok ? 'OK' : 'FAILED'}: ${r.shards} shard(s), ${r.images} image(s)${r.complete ? '' : ' (incomplete: prepare was interrupted; rerun it to finish)'}\n`);
        for (const p of r.problems) process.stdout.write(`  ${p.file}: ${p.message}\n`);
      }
      if (!r.ok) process.exitCode = 1;
      return;
    }
    if (argv.dir !== undefined) throw new CxrError('E_CONFIG', `a folder argument goes with --verify; to write shards give --out ${argv.dir as string}`);
    const out = argv.out as string | undefined;
    if (out === undefined) throw new CxrError('E_CONFIG', '--out is required (the shard output directory)');
    const csv = argv.csv as string | undefined;
    const dataset = (argv.dataset as string | undefined) ?? (csv !== undefined ? 'csv' : 'mimic-cxr');
    if (csv !== undefined && dataset !== 'csv') throw new CxrError('E_CONFIG', `--csv is the index of --dataset csv, not of ${dataset}`);
    if (!argv.root && dataset !== 'csv') throw new CxrError('E_CONFIG', '--root is required (the dataset directory)');
    const { prepareShards } = await import('../../jobs/prepare');
    const { formatIssues } = await import('../../data/manifest');
    const quiet = argv.quiet as boolean;
    const { manifest, meta, elapsedMs, nothingUseful } = await prepareShards({
      dataset,
      adapterOptions: {
        root: (argv.root as string | undefined) ?? '',
        strict: argv.strict as boolean,
        splits: list(argv.splits),
        views: list(argv.views),
        labeler: argv.labeler,
        reportsRoot: argv['reports-root'],
        uncertain: argv.uncertain,
        aggregation: argv.aggregation,
        file: csv,
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
        if (issues) process.stderr.write(`${dataset}: ${issues}\n`);
      },
      outDir: out,
      size: argv['image-size'] as number,
      geometry: argv.geometry as 'pad' | 'crop' | 'stretch',
      shardSize: argv['shard-size'] as number,
      concurrency: argv.concurrency as number,
      onShard: quiet ? undefined : (done, total, m) => process.stderr.write(`prepare: shard ${done}/${total} (${m.count} images)\n`),
    });
    const bad = meta.issues.total;
    if (json) {
      process.stdout.write(
        JSON.stringify({ dataset: manifest.dataset, out, images: meta.count, samples: manifest.samples.length, shards: meta.shards.length, imageSize: meta.size, elapsedMs, datasetIssues: manifest.issues, imageIssues: meta.issues }, null, 2) + '\n',
      );
      return;
    }
    process.stdout.write(
      `prepared ${meta.count} of ${manifest.samples.length} images (${manifest.dataset}) into ${meta.shards.length} shard(s) of ${meta.size}x${meta.size} at ${out} ` +
        `in ${(elapsedMs / 1000).toFixed(1)} s; ${manifest.issues.total} dataset issue(s), ${bad} image issue(s)\n`,
    );
    if (bad) process.stderr.write(formatIssues(meta.issues) + '\n');
    exitIfNothingUseful('prepare', nothingUseful);
  },
};
