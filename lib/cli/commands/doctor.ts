import type { CommandModule } from 'yargs';
import type { DoctorCheck, DoctorReport } from '../../jobs/doctor';
import { opts, withOptions } from '../options';

const MARK: Record<DoctorCheck['status'], [string, string]> = {
  ok: ['✓', 'ok  '],
  warn: ['!', 'WARN'],
  fail: ['✗', 'FAIL'],
  info: ['·', 'info'],
  skip: ['-', 'skip'],
};

/** One line per check (✓/✗ on a terminal, ok/FAIL otherwise), the fix indented under a warning or failure. */
export function formatDoctor(r: DoctorReport, tty: boolean): string {
  const w = Math.max(...r.checks.map((c) => c.name.length));
  const out: string[] = [];
  for (const c of r.checks) {
    out.push(`${MARK[c.status][tty ? 0 : 1]} ${c.name.padEnd(w)}  ${c.detail}`);
    if (c.fix && (c.status === 'fail' || c.status === 'warn')) out.push(`  ${' '.repeat(tty ? 1 : 4)}${' '.repeat(w)}  fix: ${c.fix}`);
  }
  const failed = r.checks.filter((c) => c.required && c.status === 'fail').length;
  const warned = r.checks.filter((c) => c.status === 'warn').length;
  out.push(r.ok ? `all required checks passed${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}` : `${failed} required check${failed > 1 ? 's' : ''} failed`);
  return out.join('\n') + '\n';
}

/** `cxr-train doctor`: checks the install (addon, libtorch, BLAS speed, CUDA, threads, sharp, Gloo/NCCL, run folder). */
export const command: CommandModule = {
  command: 'doctor',
  describe: 'Check the install: libtorch, BLAS and a matmul rate, CUDA/cuDNN, threads, sharp/libvips, Gloo/NCCL, run folder; with fixes',
  builder: (y) =>
    withOptions(y, [opts.json({ describe: 'Print the checks as JSON' }), opts.out({ describe: 'Run folder whose write access is checked (default runs/)' })])
      .example('$0 doctor', 'One line per check, with the fix under any that fails')
      .example('$0 doctor --json --out /data/runs', 'The checks as JSON, write access checked in /data/runs'),
  handler: async (argv) => {
    const { runDoctor } = await import('../../jobs/doctor');
    const r = await runDoctor({ runDir: argv.out as string | undefined });
    process.stdout.write(argv.json ? JSON.stringify(r, null, 2) + '\n' : formatDoctor(r, process.stdout.isTTY === true));
    process.exitCode = r.ok ? 0 : 1;
  },
};
