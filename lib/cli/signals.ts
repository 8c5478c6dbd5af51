/** The one SIGINT/SIGTERM helper of the CLI: the first signal asks the job to stop, a second one quits. */

/** What the user reads on each signal. */
export interface StopMessages {
  /** Printed on the first SIGINT/SIGTERM, before the job's signal is aborted. */
  first: (sig: NodeJS.Signals) => string;
  /** Printed on a second signal, before exiting with code 130. Without it, later signals repeat `first`. */
  again?: (sig: NodeJS.Signals) => string;
}

/**
 * Runs `job` with an AbortSignal that SIGINT or SIGTERM aborts (the job finishes its current step and
 * stops cleanly); with `again`, a second signal exits the process at once (code 130). The handlers are
 * removed when the job settles.
 */
export async function withStopSignal<T>(messages: StopMessages, job: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctrl = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1 && messages.again) {
      process.stderr.write(`\ncxr-train: ${messages.again(sig)}\n`);
      process.exit(130);
    }
    process.stderr.write(`\ncxr-train: ${messages.first(sig)}\n`);
    ctrl.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await job(ctrl.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
