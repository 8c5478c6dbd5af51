import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { readCsvRows } from '../../util/csv';
import { opts, withOptions } from '../options';
import { parseOpenIXml, parseReport, parseReportColumns, type ParsedReport } from '../../text/reportParser';
import { DEFAULT_SAMPLER_OPTIONS, SentenceSampler, type SamplingMode, type SectionChoice } from '../../text/sentenceSampler';

/** What `report` prints for one report (the --json shape). */
export interface ReportAudit {
  /** Parsed sections in report order. */
  sections: Array<{ name: string; header: string | null; text: string }>;
  /** The sentences training draws from (chosen sections, cleaned, filtered), in report order. */
  sentences: Array<{ section: string; text: string }>;
  /** `--sample` training texts: sample j is what the model sees at epoch j for this report. */
  samples: string[];
}

interface ReportArgs {
  file?: string;
  json: boolean;
  sample: number;
  seed: number;
  mode: SamplingMode;
  k?: number;
  sections: SectionChoice;
  format: 'auto' | 'text' | 'xml';
  csv?: string;
  column?: string;
  limit?: number;
  'drop-comparison': boolean;
  'drop-duplicates': boolean;
  semicolons: boolean;
}

/** Builds the audit of one parsed report: its sections, the sampler's sentences, and `n` samples. */
export function auditReport(parsed: ParsedReport, sampler: SentenceSampler, n: number, index: number): ReportAudit {
  const prepared = sampler.prepare(parsed);
  const samples: string[] = [];
  for (let e = 0; e < n; e++) samples.push(sampler.sample(prepared, { epoch: e, index }));
  return {
    sections: parsed.sections.map((s) => ({ name: s.name, header: s.header, text: s.text })),
    sentences: prepared.sentences.map((t, i) => ({ section: prepared.sentenceSections[i], text: t })),
    samples,
  };
}

function formatAudit(a: ReportAudit, sampler: SentenceSampler): string {
  const o = sampler.options;
  const lines: string[] = [];
  lines.push('Sections:');
  if (a.sections.length === 0) lines.push('  (none: the report is empty)');
  for (const s of a.sections) {
    lines.push(`  [${s.name}]${s.header !== null ? ` ${s.header}` : ''}`);
    if (s.text.length === 0) lines.push('    (empty)');
    for (const l of s.text.split('\n')) if (l.length > 0) lines.push(`    ${l}`);
  }
  lines.push(`Sentences (${o.sections}):`);
  if (a.sentences.length === 0) lines.push(`  (none: samples use the fallback text ${JSON.stringify(o.fallbackText)})`);
  a.sentences.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. [${s.section}] ${s.text}`));
  if (a.samples.length > 0) {
    lines.push(`Samples (mode ${o.mode}${o.mode === 'k' ? ` k=${o.k}` : ''}, seed ${o.seed}):`);
    a.samples.forEach((s, e) => lines.push(`  epoch ${e}: ${s}`));
  }
  return lines.join('\n') + '\n';
}

async function write(s: string): Promise<void> {
  if (!process.stdout.write(s)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
}

function readInput(file: string | undefined): string {
  if (file === undefined || file === '-' || file === '') {
    if (process.stdin.isTTY) throw new CxrError('E_CONFIG', 'name a report file, or pipe a report into `cxr-train report -`');
    try {
      return fs.readFileSync(0, 'utf8');
    } catch (e) {
      throw new CxrError('E_IO', `cannot read the report from standard input: ${(e as Error).message}`);
    }
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read report file ${file}: ${(e as Error).message}`, { path: file });
  }
}

const SECTION_COLUMN = /^(section_)?(findings|impression|end_of_impression|summary|indication|clinical_history|history|comparison|technique|procedure_comments)$/i;

async function runCsv(argv: ReportArgs, sampler: SentenceSampler): Promise<void> {
  const file = argv.csv as string;
  let mode: 'column' | 'sections' | null = null;
  let colIndex = -1;
  let rowIndex = 0;
  for await (const { header, row } of readCsvRows(file)) {
    if (mode === null) {
      if (argv.column !== undefined) {
        colIndex = header.indexOf(argv.column);
        if (colIndex < 0) colIndex = header.findIndex((h) => h.toLowerCase() === (argv.column as string).toLowerCase());
        if (colIndex < 0) throw new CxrError('E_DATA', `CSV file ${file} has no column "${argv.column}" (columns: ${header.join(', ')})`, { path: file });
        mode = 'column';
      } else if (header.some((h) => SECTION_COLUMN.test(h))) mode = 'sections';
      else {
        colIndex = header.findIndex((h) => h.toLowerCase() === 'report');
        if (colIndex < 0) throw new CxrError('E_CONFIG', `name the report column of ${file} with --column (columns: ${header.join(', ')})`);
        mode = 'column';
      }
    }
    if (argv.limit !== undefined && rowIndex >= argv.limit) break;
    let parsed: ParsedReport;
    if (mode === 'column') parsed = parseReport(row[colIndex] ?? '');
    else {
      const cols: Record<string, string | undefined> = {};
      header.forEach((h, i) => (cols[h] = row[i]));
      parsed = parseReportColumns(cols);
    }
    const audit = auditReport(parsed, sampler, argv.sample, rowIndex);
    if (argv.json) await write(JSON.stringify({ row: rowIndex, ...audit }) + '\n');
    else await write(`=== row ${rowIndex} ===\n` + formatAudit(audit, sampler));
    rowIndex++;
  }
  if (!argv.json) {
    const st = sampler.stats();
    process.stderr.write(`${rowIndex} reports; ${st.emptyReports} without usable sentences; ${st.sectionFallbacks} used the report body for lack of ${sampler.options.sections}\n`);
  }
}

/**
 * `cxr-train report FILE|- [--json] [--sample N --seed S --mode M]`, or `--csv FILE [--column COL]`:
 * audit how reports are parsed, split and sampled before training.
 */
export const command: CommandModule<object, ReportArgs> = {
  command: 'report [file]',
  describe: 'Show how a report (or every report of a CSV) is parsed into sections, split into sentences and sampled',
  builder: (y: Argv<object>) =>
    withOptions(y.positional('file', { type: 'string', describe: 'report file (free text or Open-I XML); "-" or nothing reads standard input' }), [
      opts.json({ describe: 'JSON on stdout (JSON lines with --csv)' }),
      opts.seed({ default: 0, describe: 'sampling seed' }),
      opts.csv({ describe: 'audit every report of this CSV file (JSON lines with --json)' }),
      { name: 'sample', meaning: 'sampled training texts shown per report', spec: { type: 'number', default: 3, describe: 'number of sampled training texts to show (sample j = epoch j)' }, bound: { integer: true, min: 0 } },
      { name: 'limit', meaning: 'stop after this many reports', spec: { type: 'number', describe: 'with --csv: stop after this many reports' }, bound: { integer: true, min: 0 } },
      { name: 'k', meaning: 'sentences per sample with --mode k', spec: { type: 'number', describe: 'sentences per sample with --mode k' }, bound: { integer: true, min: 1 } },
    ])
      .option('mode', { choices: ['uniform', 'k', 'one', 'full'] as const, default: DEFAULT_SAMPLER_OPTIONS.mode as SamplingMode, describe: 'sampling mode' })
      .option('sections', {
        choices: ['findings+impression', 'impression', 'findings', 'all'] as const,
        default: DEFAULT_SAMPLER_OPTIONS.sections as SectionChoice,
        describe: 'sections to sample from',
      })
      .option('format', { choices: ['auto', 'text', 'xml'] as const, default: 'auto' as const, describe: 'input format of FILE (auto: XML when it has <AbstractText>)' })
      .option('column', { type: 'string', describe: 'CSV column with the report text (default: section columns, else "report")' })
      .option('drop-comparison', { type: 'boolean', default: DEFAULT_SAMPLER_OPTIONS.dropComparisonOnly, describe: 'drop sentences that only compare with prior studies (training: text.dropComparisonOnly)' })
      .option('drop-duplicates', { type: 'boolean', default: DEFAULT_SAMPLER_OPTIONS.dropDuplicates, describe: 'drop repeated sentences (training: text.dropDuplicates)' })
      .option('semicolons', { type: 'boolean', default: DEFAULT_SAMPLER_OPTIONS.semicolons, describe: 'also split sentences at semicolons (training: text.semicolons)' })
      .example('$0 report report.txt --sample 3', 'Sections, sentences and three sampled training texts of one report')
      .example('$0 report --csv reports.csv --column text --json', 'Every report of a CSV, as JSON lines') as unknown as Argv<ReportArgs>,
  handler: async (argv) => {
    const sampler = new SentenceSampler({
      mode: argv.mode,
      k: argv.k,
      sections: argv.sections,
      seed: argv.seed,
      dropComparisonOnly: argv['drop-comparison'],
      dropDuplicates: argv['drop-duplicates'],
      semicolons: argv.semicolons,
    });
    if (argv.csv !== undefined) {
      if (argv.file !== undefined) throw new CxrError('E_CONFIG', 'give either a report FILE or --csv FILE, not both');
      await runCsv(argv, sampler);
      return;
    }
    if (argv.column !== undefined) throw new CxrError('E_CONFIG', '--column needs --csv');
    const text = readInput(argv.file);
    const xml = argv.format === 'xml' || (argv.format === 'auto' && text.indexOf('<AbstractText') >= 0);
    const parsed = xml ? parseOpenIXml(text) : parseReport(text);
    const audit = auditReport(parsed, sampler, argv.sample, 0);
    if (argv.json) await write(JSON.stringify(audit, null, 2) + '\n');
    else await write(formatAudit(audit, sampler));
  },
};
