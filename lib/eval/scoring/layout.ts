/**
 * The layout of one bootstrap resample's statistic vector, named instead of hand-computed offsets:
 *
 *   model     L × 4   auroc, auprc, f1, mcc per label
 *   macro     4       their macro means
 *   reader    R × L × 2   f1, mcc per reader and label           (with readers only)
 *   readerMacro  R × 2    each reader's macro f1, mcc
 *   mean      L × 2   reader mean per label
 *   meanMacro 2
 *   delta     L × 2   model − reader mean per label
 *   deltaMacro 2
 */

/** The model's statistics per label, in vector order. */
export const MODEL_STATS = ['auroc', 'auprc', 'f1', 'mcc'] as const;
export type ModelStat = (typeof MODEL_STATS)[number];
/** The readers' statistics (binary reads have no AUROC). */
export type ReaderStat = 'f1' | 'mcc';

const M = MODEL_STATS.length;
const readerIndex = (k: ReaderStat): number => (k === 'f1' ? 0 : 1);

/** Index of every statistic of a resample with `labels` scored labels and `readers` readers. */
export class StatLayout {
  private readonly oMacro: number;
  private readonly oReader: number;
  private readonly oReaderMacro: number;
  private readonly oMean: number;
  private readonly oMeanMacro: number;
  private readonly oDelta: number;
  private readonly oDeltaMacro: number;
  /** Length of the vector. */
  readonly size: number;

  constructor(
    readonly labels: number,
    readonly readers: number,
  ) {
    const L = labels;
    const R = readers;
    this.oMacro = L * M;
    this.oReader = this.oMacro + M;
    this.oReaderMacro = this.oReader + R * L * 2;
    this.oMean = this.oReaderMacro + R * 2;
    this.oMeanMacro = this.oMean + L * 2;
    this.oDelta = this.oMeanMacro + 2;
    this.oDeltaMacro = this.oDelta + L * 2;
    this.size = R > 0 ? this.oDeltaMacro + 2 : this.oReader;
  }

  /** The model's statistic `k` (index into {@link MODEL_STATS}) of label `li`. */
  model(li: number, k: number): number {
    return li * M + k;
  }
  /** Macro mean of the model's statistic `k`. */
  macro(k: number): number {
    return this.oMacro + k;
  }
  reader(ri: number, li: number, k: ReaderStat): number {
    return this.oReader + (ri * this.labels + li) * 2 + readerIndex(k);
  }
  readerMacro(ri: number, k: ReaderStat): number {
    return this.oReaderMacro + ri * 2 + readerIndex(k);
  }
  /** Mean over readers, label `li`. */
  mean(li: number, k: ReaderStat): number {
    return this.oMean + li * 2 + readerIndex(k);
  }
  meanMacro(k: ReaderStat): number {
    return this.oMeanMacro + readerIndex(k);
  }
  /** Model minus reader mean, label `li`. */
  delta(li: number, k: ReaderStat): number {
    return this.oDelta + li * 2 + readerIndex(k);
  }
  deltaMacro(k: ReaderStat): number {
    return this.oDeltaMacro + readerIndex(k);
  }
}
