/**
 * The trainer's TensorBoard log (`log.to: [tensorboard]`): the events of metrics.jsonl as TensorBoard
 * summaries in `<run>/tensorboard/`, one event file per run or resumed attempt (TensorBoard merges them).
 *
 * Tags: `train/<field>` for every number of a step event (loss, lr, gradNorm, logitScale, imagesPerSec,
 * batch, msStep, msData, msComm and whatever a step reports later, e.g. relaxation statistics), at the
 * step; `val/loss`, `val/macroAuroc` and `val/auroc/<label>` for every evaluation; the resolved config as
 * the text summary `config` (YAML) at the start step. Values metrics.jsonl writes as null (NaN: a label
 * with one class only) are left out.
 */
import path from 'node:path';
import { TensorBoardWriter } from '../util/tensorboard';
import type { EvalMetrics } from './checkpoints';
import type { StepEvent } from './Trainer';
import { configToYaml, type TrainConfig } from './config';

/** The run folder's sub-folder of event files. */
export const TENSORBOARD_DIR = 'tensorboard';

/** Step-event fields that are positions, not measurements. */
const NOT_SCALARS = new Set(['step', 'totalSteps']);

/** Writes a run's events to a new event file in `<outDir>/tensorboard`. */
export class TensorBoardLog {
  private readonly writer: TensorBoardWriter;

  constructor(outDir: string) {
    this.writer = new TensorBoardWriter(path.join(outDir, TENSORBOARD_DIR));
  }

  /** The event file. */
  get file(): string {
    return this.writer.file;
  }

  /** The resolved config as text, at the step the run starts from. */
  start(config: TrainConfig, step: number): void {
    // Indented: TensorBoard renders text as Markdown, where 4 spaces make a code block.
    const text = configToYaml(config)
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
    this.writer.addText('config', text, step);
  }

  /** Every number of a step event, as `train/<field>`. */
  step(e: StepEvent): void {
    const vals: Record<string, number> = {};
    for (const [k, v] of Object.entries(e)) if (typeof v === 'number' && !NOT_SCALARS.has(k)) vals[`train/${k}`] = v;
    this.writer.addScalars(vals, e.step);
  }

  /** Validation loss, macro AUROC and AUROC per label. */
  eval(m: EvalMetrics): void {
    const vals: Record<string, number> = { 'val/loss': m.valLoss, 'val/macroAuroc': m.macroAuroc };
    for (const [label, v] of Object.entries(m.auroc)) if (typeof v === 'number') vals[`val/auroc/${label}`] = v;
    this.writer.addScalars(vals, m.step);
  }

  /** Writes what is buffered. */
  flush(): void {
    this.writer.flush();
  }

  /** Flushes and closes the file. Idempotent. */
  close(): void {
    this.writer.close();
  }
}
