import fs from 'node:fs';
import path from 'node:path';
import { commandDocs, updateCliDoc, vocabularyTable } from '../../../lib/cli/doc';

describe('docs/cli.md', () => {
  const file = path.resolve(__dirname, '../../../docs/cli.md');

  test('is up to date with the commands (regenerate: node scripts/cli-doc.js)', () => {
    const text = fs.readFileSync(file, 'utf8');
    expect(updateCliDoc(text)).toBe(text);
  });

  test('documents every command, the shared vocabulary and the exit codes pointer', () => {
    const text = fs.readFileSync(file, 'utf8');
    for (const d of commandDocs()) expect(text).toContain(`### \`cxr-train ${d.command}\``);
    expect(text).toMatch(/^## Exit codes\n\n.*README.*Exit codes/m);
    const vocab = vocabularyTable();
    expect(vocab).toMatch(/^\| `--csv` \| .* \| `--file` \(eval, prepare\) \|$/m);
    expect(vocab).toMatch(/^\| `--image-size` \| .* \| prepare, synth, train \| `--size` \(prepare, synth\) \|$/m);
    expect(vocab).toMatch(/^\| `--out` \| .* \| `--out-dir` \(score\) \|$/m);
  });

  test('the README links it', () => {
    expect(fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8')).toContain('(docs/cli.md)');
  });
});
