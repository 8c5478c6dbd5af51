/** Maps a job's "nothing useful" verdict (lib/jobs/outcome.ts) to the CLI's exit code and one line on stderr. */
import { EXIT_NOTHING_USEFUL } from '../jobs/outcome';

/** When `nothingUseful` is set: prints it as one line and makes the command exit with 1. */
export function exitIfNothingUseful(command: string, nothingUseful: string | null): void {
  if (nothingUseful === null) return;
  process.stderr.write(`cxr-train ${command}: ${nothingUseful}\n`);
  process.exitCode = EXIT_NOTHING_USEFUL;
}
