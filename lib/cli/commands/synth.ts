import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import type { Split } from '../../data/sample';
import { boundProblem, opts, withOptions } from '../options';

/** `--split-fractions`: three numbers, each in [0, 1], with a positive sum (they are normalised by it). */
export function parseSplitFractions(s: string): [number, number, number] {
  const parts = String(s).split(',');
  const fr = parts.map((x) => (x.trim() === '' ? NaN : Number(x)));
  const bad = fr.findIndex((v) => boundProblem(v, { min: 0, max: 1 }) !== undefined);
  if (fr.length !== 3 || bad >= 0 || fr[0] + fr[1] + fr[2] <= 0) {
    const why = fr.length !== 3 ? 'three numbers' : bad >= 0 ? `each in [0, 1] (${parts[bad].trim() || 'an empty one'} is not)` : 'a positive sum';
    throw new CxrError('E_CONFIG', `--split-fractions wants three comma-separated fractions train,validate,test, each in [0, 1], with a positive sum; got '${s}' (needs ${why})`, { flag: 'split-fractions' });
  }
  return fr as [number, number, number];
}

/** `cxr-train synth`: write a synthetic chest X-ray dataset in the MIMIC-CXR-JPG layout. */
export const command: CommandModule = {
  command: 'synth',
  describe: 'Generate a synthetic chest X-ray dataset (images, reports, CheXpert labels) in the MIMIC-CXR-JPG layout',
  builder: (y) =>
    withOptions(y, [
      opts.out({ demandOption: true, describe: 'Output directory' }),
      opts.n({ default: 1000, describe: 'Number of images (one per study)' }),
      opts.seed({ default: 0, describe: 'Seed; the same seed writes bit-identical files' }),
      opts.imageSize({ default: 128, describe: 'Image side in pixels (16 ... 4096)' }),
      opts.findingStrength({ default: 1, describe: 'Finding visibility in (0, 2] (1 = default; 0.5 = subtle, harder benchmark)' }),
      { name: 'quality', meaning: 'JPEG quality of written images, 1 ... 100', spec: { type: 'number', default: 92, describe: 'JPEG quality (1 ... 100)' }, bound: { integer: true, min: 1, max: 100 } },
      opts.json({ describe: 'Print the counts and the folder as JSON on stdout' }),
      opts.quiet(),
    ])
      .option('shift', { choices: ['none', 'mild', 'strong'] as const, default: 'none', describe: 'Distribution-shift preset (contrast, noise, blur, heart size)' })
      .option('shift-splits', { type: 'string', default: 'test', describe: 'Comma-separated splits the shift applies to' })
      .option('split-fractions', { type: 'string', default: '0.8,0.1,0.1', describe: 'Patient fractions train,validate,test (each in [0, 1], normalised by their sum)' })
      .option('gzip', { type: 'boolean', default: false, describe: 'Write the CSVs as .csv.gz like the real release' })
      .example('$0 synth --out data/synth --n 2000 --seed 1 --image-size 128', 'A 2000-image dataset (about 13 s on 2 CPU cores)')
      .example('$0 synth --out data/shifted --n 500 --shift strong --shift-splits test', 'A test split under a strong distribution shift'),
  handler: async (argv) => {
    const { generateSynthetic } = await import('../../data/synthetic');
    const fr = parseSplitFractions(String(argv['split-fractions']));
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
      size: argv['image-size'] as number,
      shift: argv.shift as 'none' | 'mild' | 'strong',
      shiftSplits: shiftSplits as Split[],
      splitFractions: fr,
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
    const elapsedMs = Date.now() - t0;
    if (argv.json) {
      process.stdout.write(JSON.stringify({ out: ds.outDir, images: ds.samples.length, patients, splits: counts, imageSize: ds.size, seed: ds.seed, elapsedMs }, null, 2) + '\n');
      return;
    }
    process.stdout.write(
      `wrote ${ds.samples.length} images (${patients} patients; train ${counts.train}, validate ${counts.validate}, test ${counts.test}) ` +
        `${ds.size}x${ds.size} to ${ds.outDir} in ${(elapsedMs / 1000).toFixed(1)} s\n`,
    );
  },
};
