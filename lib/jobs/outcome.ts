/**
 * The exit-code policy of jobs that process many inputs (README "Exit codes"): a job that ran to its end
 * but produced nothing useful (every image skipped, every row bad) reports why in its result, and the CLI
 * exits with {@link EXIT_NOTHING_USEFUL}, so that a script never takes an empty result for a success.
 */

/** Exit status of a command whose job produced nothing useful (the same as an error: 1). */
export const EXIT_NOTHING_USEFUL = 1;

/**
 * A job's verdict on its own output: null when at least one input gave a result, else one line saying why
 * nothing did (e.g. "nothing produced: all 3 images were skipped").
 * @param produced inputs that gave a result
 * @param tried inputs tried
 * @param what the inputs, plural (e.g. "images", "rows")
 */
export function nothingUseful(produced: number, tried: number, what: string): string | null {
  if (produced > 0) return null;
  return tried === 0 ? `nothing produced: no ${what} to process` : `nothing produced: all ${tried} ${what} were skipped`;
}
