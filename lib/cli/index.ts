import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { CxrError } from '../errors';

/**
 * Every file in ./commands exports `command: CommandModule`; they are discovered at start-up so that a
 * new command is one new file.
 */
function loadCommands(): CommandModule[] {
  const dir = path.join(__dirname, 'commands');
  const out: CommandModule[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    if (!/\.(js|ts)$/.test(f) || f.endsWith('.d.ts') || /\.map$/.test(f)) continue;
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(path.join(dir, f)) as { command?: CommandModule };
    if (mod.command) out.push(mod.command);
  }
  return out;
}

/** Runs the CLI with `argv` (without node and script) and resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let y = yargs(argv)
    .scriptName('cxr-train')
    .usage('$0 <command> [options]')
    .strict()
    .demandCommand(1, 'Name a command; `cxr-train --help` lists them.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new CxrError('E_CONFIG', msg);
    });
  for (const c of loadCommands()) y = y.command(c);
  try {
    await y.parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CxrError) {
      process.stderr.write(`cxr-train: ${e.code}: ${e.message}\n`);
      return e.code === 'E_CONFIG' || e.code === 'E_PARSE' ? 2 : 1;
    }
    throw e;
  }
}
