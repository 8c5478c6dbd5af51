/**
 * Console reporting of a {@link Trainer}'s events: a progress bar with ETA, pairs/s and loss on a TTY,
 * plain lines otherwise (log files, CI), or JSON lines for programs. The run folder's log files
 * (metrics.jsonl, TensorBoard event files: `log.to`) are written by the trainer itself, whatever is chosen here.
 */
import cliProgress from 'cli-progress';
import type { LogSection } from './config';
import type { StepEvent, Trainer, TrainerEvents } from './Trainer';
import type { EvalMetrics } from './checkpoints';

/** Options of {@link attachReporter}. */
export interface ReporterOptions {
  format: LogSection['format'];
  /** Plain/JSON step lines every N steps. Default 10. */
  everySteps?: number;
  /** Where people's lines go. Default process.stderr (stdout stays clean for results). */
  human?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Where JSON lines go. Default process.stdout. */
  json?: NodeJS.WritableStream;
}

/** "1h02m", "3m05s", "42s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** The loss statistics of a step: positive similarities (median [10 %, 90 %]), mean negative, and the share of positives the relaxation changed at its threshold. */
export function relaxText(e: StepEvent): string {
  const a = Number.isFinite(e.relaxAlpha) ? e.relaxAlpha.toFixed(3) : '∞';
  return `s+ ${e.posSimQ50.toFixed(2)} [${e.posSimQ10.toFixed(2)}, ${e.posSimQ90.toFixed(2)}] s- ${e.negSimMean.toFixed(2)} | relaxed ${(100 * e.relaxEngaged).toFixed(0)}% @ ${a}`;
}

/** One line per evaluation: step, validation loss, macro AUROC. */
export function formatEval(e: EvalMetrics): string {
  const loss = Number.isFinite(e.valLoss) ? e.valLoss.toFixed(4) : 'n/a';
  const auc = Number.isFinite(e.macroAuroc) ? e.macroAuroc.toFixed(4) : 'n/a';
  const rt = e.retrieval ? ` | retrieval R@1/5/10 image→text ${[1, 5, 10].map((k) => (100 * (e.retrieval!.imageToText.recall[k] ?? NaN)).toFixed(1)).join('/')}%` : '';
  return `eval @ step ${e.step}: val loss ${loss} | zero-shot macro AUROC ${auc} over ${Object.keys(e.auroc).length - e.skipped.length} labels (${e.n} images)${rt}`;
}

/** Subscribes console output to the trainer's events; returns a function that detaches it. */
export function attachReporter(trainer: Trainer, opts: ReporterOptions): () => void {
  const human = opts.human ?? process.stderr;
  const jsonOut = opts.json ?? process.stdout;
  const every = opts.everySteps ?? 10;
  const format = opts.format === 'auto' ? (human.isTTY ? 'bar' : 'plain') : opts.format;
  const subs: Array<() => void> = [];
  const on = <K extends keyof TrainerEvents>(ev: K, fn: (e: TrainerEvents[K]) => void) => {
    trainer.on(ev, fn);
    subs.push(() => trainer.off(ev, fn));
  };
  const detach = () => {
    for (const off of subs) off();
  };
  if (format === 'none') {
    // Warnings (a damaged checkpoint skipped, a resume that is not bit-exact) are never silenced.
    on('message', (e) => {
      if (e.level === 'warn') human.write(`cxr-train: warning: ${e.text}\n`);
    });
    return detach;
  }

  if (format === 'json') {
    for (const ev of ['start', 'step', 'eval', 'checkpoint', 'end', 'message'] as const) {
      on(ev, (e) => {
        if (ev === 'step' && (e as TrainerEvents['step']).step % every !== 0) return;
        jsonOut.write(JSON.stringify({ event: ev, ...e }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n');
      });
    }
    return detach;
  }

  const line = (s: string) => human.write(s + '\n');
  let t0 = Date.now();
  let startStep = 0;
  let bar: cliProgress.MultiBar | null = null;
  let single: cliProgress.SingleBar | null = null;
  let lossEma = NaN;
  const say = (s: string) => (bar ? bar.log(s + '\n') : line(s));

  on('start', (e) => {
    t0 = Date.now();
    startStep = e.startStep;
    if (format === 'bar') {
      bar = new cliProgress.MultiBar(
        {
          stream: human as NodeJS.WritableStream as never,
          format: ' {bar} {value}/{total} | loss {loss} | {ips} pairs/s | lr {lr} | ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      single = bar.create(e.totalSteps, e.startStep, { loss: '-', ips: '-', lr: '-' });
    }
  });
  on('message', (e) => say(e.text));
  on('step', (e) => {
    lossEma = Number.isNaN(lossEma) ? e.loss : 0.9 * lossEma + 0.1 * e.loss;
    if (single) {
      single.update(e.step, { loss: lossEma.toFixed(4), ips: e.imagesPerSec.toFixed(0), lr: e.lr.toExponential(2) });
      return;
    }
    if (e.step % every !== 0 && e.step !== e.totalSteps) return;
    const done = e.step - startStep;
    const eta = done > 0 ? ((Date.now() - t0) / done) * (e.totalSteps - e.step) : NaN;
    line(`step ${e.step}/${e.totalSteps} | epoch ${e.epoch} | loss ${e.loss.toFixed(4)} (avg ${lossEma.toFixed(4)}) | ${relaxText(e)} | lr ${e.lr.toExponential(2)} | ${e.imagesPerSec.toFixed(0)} pairs/s | ETA ${formatDuration(eta)}`);
  });
  on('eval', (e) => say(formatEval(e)));
  on('checkpoint', (e) => say(`checkpoint (${e.reason}) @ step ${e.step}: ${e.dir}`));
  on('end', () => {
    if (bar) bar.stop();
    bar = null;
    single = null;
  });
  return () => {
    if (bar) bar.stop();
    detach();
  };
}
