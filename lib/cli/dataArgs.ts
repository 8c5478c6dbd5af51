/**
 * The dataset flags of the commands that open a labelled dataset by adapter (`eval`, `probe`): which
 * adapter and root, and the adapter options, parsed into the `{ dataset, adapterOptions }` pair that
 * lib/data/sources opens.
 */
import type { Argv } from 'yargs';
import { CxrError } from '../errors';
import { opts, withOptions } from './options';

/** The parsed dataset flags. */
export interface DatasetArgs {
  dataset?: string;
  root?: string;
  views?: string;
  labeler?: string;
  'reports-root'?: string;
  uncertain?: string;
  aggregation?: string;
  csv?: string;
  'image-col'?: string;
  'label-cols'?: string;
  'patient-col'?: string;
  'id-col'?: string;
  'split-col'?: string;
  'view-col'?: string;
}

/** A comma-separated list flag (undefined when absent or empty). */
export const list = (v: string | undefined): string[] | undefined =>
  v === undefined || v === '' ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);

/** Adds the dataset flags to a command; `oldFile` also accepts `--file`, the old spelling of `--csv` (eval had it). */
export function withDatasetOptions<T>(y: Argv<T>, { oldFile = false } = {}): Argv<T> {
  return withOptions(y, [
    opts.dataset({ describe: 'Adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv, or shards (a prepare output); default csv with --csv' }),
    opts.root({ describe: 'Dataset root (for shards: the shard folder; csv: default the CSV\'s folder)' }),
    opts.views({ describe: 'Adapter: keep only these views (e.g. PA,AP)' }),
    opts.csv({ describe: 'csv: index file (implies --dataset csv)', ...(oldFile ? { old: ['file'] } : {}) }),
    opts.imageCol(),
    opts.labelCols(),
    opts.patientCol(),
    opts.idCol(),
    opts.splitCol(),
    opts.viewCol(),
  ])
    .option('labeler', { type: 'string', describe: 'mimic-cxr: chexpert or negbio labels' })
    .option('reports-root', { type: 'string', describe: 'mimic-cxr: folder of the reports files/ tree' })
    .option('uncertain', { type: 'string', describe: 'chexpert: policy for -1 labels (keep = masked in scoring)' })
    .option('aggregation', { type: 'string', describe: 'vindr-cxr: reader aggregation' }) as Argv<T>;
}

/**
 * The adapter and its options from the dataset flags.
 * @throws CxrError E_CONFIG when no dataset is named, `--csv` goes with another adapter, or `--root` is missing.
 */
export function datasetFromArgs(argv: DatasetArgs): { dataset: string; adapterOptions: { root: string } & Record<string, unknown> } {
  const dataset = argv.dataset ?? (argv.csv !== undefined ? 'csv' : undefined);
  if (dataset === undefined) throw new CxrError('E_CONFIG', 'name the data: --dataset NAME --root DIR, or --csv FILE');
  if (argv.csv !== undefined && dataset !== 'csv') throw new CxrError('E_CONFIG', `--csv is the index of --dataset csv, not of ${dataset}`);
  if (!argv.root && dataset !== 'csv') throw new CxrError('E_CONFIG', `--root is required (the ${dataset === 'shards' ? 'shard folder' : 'dataset directory'})`);
  const adapterOptions: { root: string } & Record<string, unknown> = { root: argv.root ?? '' };
  const put = (k: string, v: unknown): void => {
    if (v !== undefined) adapterOptions[k] = v;
  };
  put('views', list(argv.views));
  put('labeler', argv.labeler);
  put('reportsRoot', argv['reports-root']);
  put('uncertain', argv.uncertain);
  put('aggregation', argv.aggregation);
  put('file', argv.csv);
  put('imageCol', argv['image-col']);
  put('labelCols', list(argv['label-cols']));
  put('patientCol', argv['patient-col']);
  put('idCol', argv['id-col']);
  put('splitCol', argv['split-col']);
  put('viewCol', argv['view-col']);
  return { dataset, adapterOptions };
}
