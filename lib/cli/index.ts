import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { CxrError } from '../errors';
import { unknownArgumentsMessage, unknownFlag } from './options';

/**
 * Every file in ./commands exports `command: CommandModule`; they are discovered at start-up so that a
 * new command is one new file.
 */
export function loadCommands(): CommandModule[] {
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
  // The CLI's one strictness handler. A middleware sees the command's yargs instance before yargs'
  // validation and refuses the first unknown flag, named as typed, with the command's nearest valid flag
  // (yargs would list it under two spellings, after any missing required flag); what yargs still finds
  // unknown (stray arguments) gets the same message from .fail(). Both are E_CONFIG (exit code 2).
  let current: { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]>; hiddenOptions: string[] } } | null = null;
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
    // Help and version print and return (the caller exits), so that the CLI also runs in process.
    .exitProcess(false)
    .middleware(((_argv: unknown, inst: unknown) => {
      current = inst as typeof current;
      const o = current!.getOptions();
      const hidden = new Set(o.hiddenOptions);
      const keys = Object.keys(o.key);
      const known = [...keys, ...Object.keys(o.alias), ...Object.values(o.alias).flat()];
      const flag = unknownFlag(argv, known, keys.filter((k) => !hidden.has(k)));
      if (flag) throw new CxrError('E_CONFIG', flag);
    }) as never, true)
    .fail((msg, err) => {
      if (err && !(msg && /^Unknown arguments?: /.test(msg))) throw err;
      const unknown = msg ? /^Unknown arguments?: (.*)$/s.exec(msg) : null;
      if (unknown) {
        const o = current?.getOptions();
        const hidden = new Set(o?.hiddenOptions ?? []);
        const valid = o ? Object.keys(o.key).filter((k) => !hidden.has(k)) : [];
        throw new CxrError('E_CONFIG', unknownArgumentsMessage(unknown[1].split(', '), argv, valid));
      }
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
