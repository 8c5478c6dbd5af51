/**
 * The command reference of docs/cli.md, generated from the commands' own yargs definitions: each builder
 * runs against a recorder that keeps its positionals, options and examples. `scripts/cli-doc.js` writes
 * the generated parts between their markers; a unit test fails when docs/cli.md is out of date.
 */
import type { CommandModule, Options, PositionalOptions } from 'yargs';
import { loadCommands } from './index';
import { opts, type CliOption } from './options';

/** What one command defines. */
export interface CommandDoc {
  /** The command string, e.g. `prepare [dir]`. */
  command: string;
  describe: string;
  positionals: Array<{ name: string; spec: PositionalOptions }>;
  /** Visible options in definition order. */
  options: Array<{ name: string; spec: Options }>;
  /** Old spellings → the flag they now mean. */
  old: Array<{ old: string; flag: string }>;
  examples: Array<{ cmd: string; text: string }>;
}

/** Runs a command's builder against a recorder. */
export function describeCommand(c: CommandModule): CommandDoc {
  const doc: CommandDoc = { command: String(c.command), describe: String(c.describe ?? ''), positionals: [], options: [], old: [], examples: [] };
  const proxy: unknown = new Proxy(
    {},
    {
      get(_t, prop) {
        if (prop === 'option' || prop === 'options')
          return (name: string, spec: Options = {}) => {
            const m = typeof spec.describe === 'string' ? /^old spelling of --(.+)$/.exec(spec.describe) : null;
            if (m) doc.old.push({ old: name, flag: m[1] });
            else if (!spec.hidden) doc.options.push({ name, spec });
            return proxy;
          };
        if (prop === 'positional')
          return (name: string, spec: PositionalOptions = {}) => {
            doc.positionals.push({ name, spec });
            return proxy;
          };
        if (prop === 'example')
          return (cmd: string, text: string) => {
            doc.examples.push({ cmd, text });
            return proxy;
          };
        return () => proxy;
      },
    },
  );
  if (typeof c.builder === 'function') (c.builder as (y: unknown) => unknown)(proxy);
  return doc;
}

const name = (c: CommandDoc): string => c.command.split(' ')[0];
const cell = (s: unknown): string => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const typeOf = (s: Options | PositionalOptions): string =>
  s.choices ? (s.choices as unknown[]).map(String).join(' \\| ') : `${s.type ?? 'string'}${(s as Options).array ? ' ...' : ''}`;

/** Every command's definitions, in the CLI's order. */
export function commandDocs(): CommandDoc[] {
  return loadCommands().map(describeCommand);
}

/** The shared vocabulary: flag, meaning, commands using it, old spellings. */
export function vocabularyTable(docs: CommandDoc[] = commandDocs()): string {
  const rows = ['| flag | meaning | commands | old spellings (still accepted, with a note) |', '|---|---|---|---|'];
  for (const make of Object.values(opts)) {
    const o: CliOption = make();
    const users = docs.filter((d) => d.options.some((x) => x.name === o.name)).map(name);
    if (users.length === 0) continue;
    const old = new Map<string, string[]>();
    for (const d of docs) for (const x of d.old) if (x.flag === o.name) old.set(x.old, [...(old.get(x.old) ?? []), name(d)]);
    const oldCell = [...old].map(([k, cmds]) => `\`--${k}\` (${cmds.join(', ')})`).join(', ');
    rows.push(`| \`--${o.name}\` | ${cell(o.meaning)} | ${users.join(', ')} | ${oldCell} |`);
  }
  return rows.join('\n') + '\n';
}

/** One section per command: its positionals and flags as a table, then its examples. */
export function commandsReference(docs: CommandDoc[] = commandDocs()): string {
  const out: string[] = [];
  for (const d of docs) {
    out.push(`### \`cxr-train ${d.command}\``, '', cell(d.describe), '');
    out.push('| flag | type | default | description |', '|---|---|---|---|');
    for (const p of d.positionals) out.push(`| \`${p.name}\` (positional) | ${typeOf(p.spec)} | | ${cell(p.spec.describe ?? '')} |`);
    for (const o of d.options) {
      const dflt = o.spec.default === undefined ? '' : `\`${JSON.stringify(o.spec.default)}\``;
      out.push(`| \`--${o.name}\`${o.spec.demandOption ? ' (required)' : ''} | ${typeOf(o.spec)} | ${dflt} | ${cell(o.spec.describe ?? '')} |`);
    }
    if (d.old.length) out.push('', `Old spellings: ${d.old.map((x) => `\`--${x.old}\` → \`--${x.flag}\``).join(', ')}.`);
    if (d.examples.length) {
      out.push('', '```sh');
      for (const e of d.examples) out.push(`${e.cmd.replace(/^\$0/, 'cxr-train')}    # ${e.text}`);
      out.push('```');
    }
    out.push('');
  }
  return out.join('\n');
}

/** Replaces the generated parts of docs/cli.md (between `<!-- cli-doc:NAME -->` and `<!-- /cli-doc:NAME -->`). */
export function updateCliDoc(text: string, docs: CommandDoc[] = commandDocs()): string {
  const parts: Record<string, string> = { vocabulary: vocabularyTable(docs), commands: commandsReference(docs) };
  let out = text;
  for (const [k, v] of Object.entries(parts)) {
    const re = new RegExp(`(<!-- cli-doc:${k} -->\\n)[\\s\\S]*?(<!-- /cli-doc:${k} -->)`);
    if (!re.test(out)) throw new Error(`docs/cli.md: no <!-- cli-doc:${k} --> ... <!-- /cli-doc:${k} --> markers`);
    out = out.replace(re, (_m, a: string, b: string) => `${a}\n${v}\n${b}`);
  }
  return out;
}
