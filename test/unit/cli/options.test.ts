import { boundProblem, checkValue, editDistance, nearestFlag, opts, unknownArgumentsMessage, unknownFlag } from '../../../lib/cli/options';

describe('shared option definitions', () => {
  test('bounds: integers, ranges, and what the message says', () => {
    expect(boundProblem(3, { integer: true, min: 0 })).toBeUndefined();
    expect(boundProblem(-3, { integer: true, min: 0 })).toBe('must be an integer >= 0, got -3');
    expect(boundProblem(1.5, { integer: true, min: 0 })).toBe('must be an integer >= 0, got 1.5');
    expect(boundProblem(2, { min: 0, max: 1 })).toBe('must be a number in [0, 1], got 2');
    expect(boundProblem(0, { min: 0, max: 1 })).toBeUndefined();
    expect(boundProblem(1, { min: 0, max: 1 })).toBeUndefined();
    expect(boundProblem(NaN, { min: 0 })).toMatch(/must be a number >= 0, got NaN/);
    expect(boundProblem('abc', { integer: true })).toBe('must be an integer, got "abc"');
  });

  test('checkValue throws E_CONFIG naming the flag', () => {
    expect(() => checkValue(opts.workers(), -3)).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: '--workers must be an integer >= 0, got -3' }));
    expect(() => checkValue(opts.concurrency(), 0)).toThrow(/--concurrency must be an integer >= 1, got 0/);
    expect(() => checkValue(opts.threshold(), 2)).toThrow(/--threshold must be a number in \[0, 1\], got 2/);
    expect(() => checkValue(opts.threads(), 0)).toThrow(/--threads must be an integer >= 1/);
    expect(() => checkValue(opts.imageSize(), 4)).toThrow(/--image-size must be an integer >= 8/);
    expect(() => checkValue(opts.device(), 'gpu')).toThrow(/--device must be "auto", "cpu" or "cuda:N"/);
    expect(() => checkValue(opts.findingStrength(), 0)).toThrow(/--finding-strength must be a number in \(0, 2\]/);
    for (const [o, v] of [[opts.workers(), 0], [opts.seed(), 7], [opts.device(), 'cuda:1'], [opts.bootstrap(), 0], [opts.batchSize(), 1]] as const) expect(() => checkValue(o, v)).not.toThrow();
    expect(() => checkValue(opts.workers(), undefined)).not.toThrow();
  });

  test('old spellings and overrides', () => {
    expect(opts.imageSize().old).toEqual(['size']);
    expect(opts.csv().old).toBeUndefined();
    expect(opts.csv({ old: ['file'] }).old).toEqual(['file']);
    const o = opts.out({ demandOption: true, describe: 'x' });
    expect(o.spec).toMatchObject({ type: 'string', demandOption: true, describe: 'x' });
    expect(o.name).toBe('out');
  });
});

describe('unknown flags', () => {
  const valid = ['out', 'n', 'seed', 'image-size', 'quality', 'json', 'quiet', 'help'];
  test('edit distance and the nearest flag', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(nearestFlag('imgsize', valid)).toBe('image-size');
    expect(nearestFlag('imageSiz', valid)).toBe('image-size');
    expect(nearestFlag('jsn', valid)).toBe('json');
    expect(nearestFlag('completely-different', valid)).toBeUndefined();
  });

  test('unknownFlag names the flag once, as typed, with a suggestion', () => {
    const known = [...valid, 'size', 'h'];
    expect(unknownFlag(['synth', '--imgsize', '3'], known, valid)).toBe('Unknown flag --imgsize (did you mean --image-size?); `--help` lists the flags');
    expect(unknownFlag(['synth', '--imageSize', '3'], known, valid)).toBeUndefined();
    expect(unknownFlag(['synth', '--image-size=3', '--no-quiet', '--size', '4', '-h'], known, valid)).toBeUndefined();
    expect(unknownFlag(['synth', '--seed', '-3'], known, valid)).toBeUndefined();
    expect(unknownFlag(['synth', '--', '--whatever'], known, valid)).toBeUndefined();
    // Old spellings are accepted but never suggested.
    expect(unknownFlag(['synth', '--sise', '3'], known, valid)).toMatch(/^Unknown flag --sise/);
    expect(unknownFlag(['synth', '--sise', '3'], known, valid)).not.toMatch(/did you mean --size\?/);
  });

  test("yargs' list (kebab and camelCase forms) becomes one message per flag", () => {
    const m = unknownArgumentsMessage(['img-size', 'imgSize', 'extra'], ['synth', '--img-size', '3', 'extra'], valid);
    expect(m).toBe('Unknown flag --img-size (did you mean --image-size?); Unexpected argument "extra"; `--help` lists the flags');
  });
});
