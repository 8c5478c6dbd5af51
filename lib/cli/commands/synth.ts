import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import type { Split } from '../../data/sample';

/** `cxr-train synth`: write a synthetic chest X-ray dataset in the MIMIC-CXR-JPG layout. */
export const command: CommandModule = {
  command: 'synth',
  describe: 'Generate a synthetic chest X-ray dataset (images, reports, CheXpert labels) in the MIMIC-CXR-JPG layout',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory' })
      .option('n', { type: 'number', default: 1000, describe: 'Number of images (one per study)' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed; the same seed writes bit-identical files' })
      .option('size', { type: 'number', default: 128, describe: 'Image side in pixels' })
      .option('shift', { choices: ['none', 'mild', 'strong'] as const, default: 'none', describe: 'Distribution-shift preset (contrast, noise, blur, heart size)' })
      .option('shift-splits', { type: 'string', default: 'test', describe: 'Comma-separated splits the shift applies to' })
      .option('split-fractions', { type: 'string', default: '0.8,0.1,0.1', describe: 'Patient fractions train,validate,test' })
      .option('finding-strength', { type: 'number', default: 1, describe: 'Finding visibility (1 = default; 0.5 = subtle, harder benchmark)' })
      .option('gzip', { type: 'boolean', default: false, describe: 'Write the CSVs as .csv.gz like the real release' })
      .option('quality', { type: 'number', default: 92, describe: 'JPEG quality' })
      .option('quiet', { type: 'boolean', default: false, describe: 'No progress output' }),
  handler: async (argv) => {
    const { generateSynthetic } = await import('../../data/synthetic');
    const fr = String(argv['split-fractions']).split(',').map(Number);
    if (fr.length !== 3 || fr.some((v) => !Number.isFinite(v) || v < 0) || fr[0] + fr[1] + fr[2] <= 0) {
      throw new CxrError('E_CONFIG', `--split-fractions wants three non-negative numbers, got '${argv['split-fractions']}'`);
    }
    const shiftSplits = String(argv['shift-splits'])
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const s of shiftSplits) if (!['train', 'validate', 'test'].includes(s)) throw new CxrError('E_CONFIG', `unknown split '${s}' in --shift-splits`);
    const t0 = Date.now();
    const quiet = argv.quiet as boolean;
    let lastPct = -1;
    const ds = await generateSynthetic({
      n: argv.n as number,
      seed: argv.seed as number,
      size: argv.size as number,
      shift: argv.shift as 'none' | 'mild' | 'strong',
      shiftSplits: shiftSplits as Split[],
      splitFractions: fr as [number, number, number],
      gzip: argv.gzip as boolean,
      findingStrength: argv['finding-strength'] as number,
      jpegQuality: argv.quality as number,
      outDir: argv.out as string,
      onProgress: quiet
        ? undefined
        : (done, total) => {
            const pct = Math.floor((100 * done) / total);
            if (process.stderr.isTTY && pct !== lastPct) {
              lastPct = pct;
              process.stderr.write(`\rsynth: ${done}/${total}`);
            }
          },
    });
    if (!quiet && process.stderr.isTTY) process.stderr.write('\n');
    const counts: Record<string, number> = { train: 0, validate: 0, test: 0 };
    for (const s of ds.samples) counts[s.split ?? 'train']++;
    const patients = new Set(ds.samples.map((s) => s.patientId)).size;
    process.stdout.write(
      `wrote ${ds.samples.length} images (${patients} patients; train ${counts.train}, validate ${counts.validate}, test ${counts.test}) ` +
        `${ds.size}x${ds.size} to ${ds.outDir} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  },
};
