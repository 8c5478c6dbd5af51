import type { Manifest } from '../manifest';

/** Options every adapter accepts. */
export interface BaseAdapterOptions {
  /** Dataset root directory (image paths in the manifest are relative to it; csv: '' for the index file's folder). */
  root: string;
  /** Make any data issue fatal (E_DATA) instead of counted. Default false. */
  strict?: boolean;
  /** Check that every image file exists (a stat per image). Default true. */
  checkFiles?: boolean;
  /** How many issues are kept by name for the report. Default 10. */
  maxExamples?: number;
}

/** A dataset adapter: reads one official layout into a {@link Manifest}. */
export interface DatasetAdapter<O extends BaseAdapterOptions = BaseAdapterOptions> {
  /** Registry name, e.g. 'mimic-cxr'. */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** Reads the dataset. Throws E_IO/E_PARSE for unusable index files, E_DATA in strict mode. */
  load(opts: O): Promise<Manifest>;
}
