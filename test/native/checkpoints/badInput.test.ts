/**
 * Untrusted checkpoints: truncated or damaged files, headers that lie, wrong dtypes, Python objects in a
 * pickle, tokenizers that do not fit: each is a clear coded error, never a crash.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClipModel } from '../../../lib/models/ClipModel';
import { loadPretrained } from '../../../lib/checkpoints/pretrained';
import { detectCheckpoint, zipEntryNames } from '../../../lib/checkpoints/detect';
import { embedWithCheckpoint, readRawImages, readTextsArg } from '../../../lib/jobs/embed';
import { encodeSafetensors, writeSafetensors } from '../../../lib/util/safetensors';
import { main } from '../../../lib/cli/index';
import { FIXTURES, rng, tmpDir, writeState, writeVocab } from './helpers';

const dir = tmpDir('bad');

function vitState(): ReturnType<ClipModel['getState']> {
  const m = ClipModel.create('test-vit', { device: 'cpu' });
  const s = m.getState();
  m.dispose();
  return s;
}

describe('pickle-based files', () => {
  test('legacy non-zip torch.save: E_CHECKPOINT advising to re-save', async () => {
    await expect(loadPretrained(path.join(FIXTURES, 'legacy.pt'))).rejects.toMatchObject({ code: 'E_CHECKPOINT', message: expect.stringMatching(/re-save/) });
  });

  test('a pickle holding a Python object is refused, not executed', async () => {
    await expect(loadPretrained(path.join(FIXTURES, 'python-object.pt'))).rejects.toMatchObject({
      code: 'E_CHECKPOINT',
      message: expect.stringMatching(/unsupported object '__main__\.NotData'/),
    });
  });

  test('truncated archives at many lengths: E_CHECKPOINT (never a crash)', async () => {
    const bytes = fs.readFileSync(path.join(FIXTURES, 'openai-state-dict.pt'));
    for (const frac of [0.05, 0.3, 0.6, 0.9, 0.999]) {
      const f = path.join(dir, `trunc-${frac}.pt`);
      fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length * frac)));
      await expect(loadPretrained(f, { tokenizer: null })).rejects.toMatchObject({ code: 'E_CHECKPOINT' });
    }
  });

  test('a damaged record header is E_CHECKPOINT', async () => {
    const bytes = Buffer.from(fs.readFileSync(path.join(FIXTURES, 'openai-state-dict.pt')));
    const at = bytes.indexOf('openai-state-dict/data/3');
    expect(at).toBeGreaterThan(30);
    expect(bytes.readUInt32LE(at - 30)).toBe(0x04034b50);
    bytes[at - 30] ^= 0xff; // the local file header signature of a tensor record
    const f = path.join(dir, 'crc.pt');
    fs.writeFileSync(f, bytes);
    await expect(loadPretrained(f, { tokenizer: null })).rejects.toMatchObject({ code: 'E_CHECKPOINT' });
  });

  test('zip directory scan is bounds-checked', () => {
    const f = path.join(dir, 'zipgarbage.pt');
    const r = rng(9);
    fs.writeFileSync(f, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.from(Array.from({ length: 3000 }, () => Math.floor((r() + 1) * 127)))]));
    expect(() => zipEntryNames(f)).toThrow(expect.objectContaining({ code: 'E_CHECKPOINT' }));
    expect(() => detectCheckpoint(f)).toThrow(expect.objectContaining({ code: 'E_CHECKPOINT' }));
  });

  test('random bytes and empty files: unrecognised format', async () => {
    const f = path.join(dir, 'random.bin');
    fs.writeFileSync(f, Buffer.from('hello, this is not a checkpoint at all'));
    await expect(loadPretrained(f)).rejects.toMatchObject({ code: 'E_CHECKPOINT', message: expect.stringMatching(/unrecognised/) });
    const e = path.join(dir, 'empty.pt');
    fs.writeFileSync(e, '');
    await expect(loadPretrained(e)).rejects.toMatchObject({ code: 'E_CHECKPOINT' });
    await expect(loadPretrained(path.join(dir, 'missing.pt'))).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('safetensors', () => {
  test('truncated file and a header that lies about offsets', async () => {
    const bytes = encodeSafetensors(Object.fromEntries(vitState().map((t) => [t.name, { dtype: 'F32' as const, shape: t.shape, data: t.data }])));
    const f = path.join(dir, 'trunc.safetensors');
    fs.writeFileSync(f, bytes.subarray(0, bytes.length - 100));
    await expect(loadPretrained(f)).rejects.toMatchObject({ code: 'E_CHECKPOINT' });
    const n = Number(Buffer.from(bytes.subarray(0, 8)).readBigUInt64LE(0));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
    const first = Object.keys(header).find((k) => k !== '__metadata__')!;
    header[first].data_offsets = [0, 1e12];
    let h = Buffer.from(JSON.stringify(header));
    h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const g = path.join(dir, 'lying.safetensors');
    fs.writeFileSync(g, Buffer.concat([len, h, Buffer.from(bytes.subarray(8 + n))]));
    await expect(loadPretrained(g)).rejects.toMatchObject({ code: 'E_CHECKPOINT', message: expect.stringContaining(first) });
  });

  test('an integer dtype on a weight is E_CHECKPOINT naming the tensor', async () => {
    const state = vitState();
    const f = path.join(dir, 'dtype.safetensors');
    writeSafetensors(
      f,
      Object.fromEntries(
        state.map((t) =>
          t.name === 'visual.proj'
            ? [t.name, { dtype: 'I32' as const, shape: t.shape, data: Int32Array.from(t.data, (x) => Math.round(x)) }]
            : [t.name, { dtype: 'F32' as const, shape: t.shape, data: t.data }],
        ),
      ),
    );
    await expect(loadPretrained(f)).rejects.toMatchObject({ code: 'E_CHECKPOINT', message: expect.stringMatching(/"visual\.proj" has dtype I32/) });
  });

  test('random mutations of a small checkpoint: a result or a coded error, never a crash', async () => {
    const state = vitState().filter((t) => !t.name.startsWith('token_embedding')).slice(0, 6);
    const bytes = encodeSafetensors(Object.fromEntries(state.map((t) => [t.name, { dtype: 'F32' as const, shape: t.shape, data: t.data }])));
    const r = rng(42);
    const codes = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const m = Buffer.from(bytes);
      for (let k = 0; k < 1 + (i % 5); k++) m[Math.floor(((r() + 1) / 2) * Math.min(m.length, 1200))] = Math.floor(((r() + 1) / 2) * 256);
      const f = path.join(dir, `mut${i}.safetensors`);
      fs.writeFileSync(f, m);
      try {
        const { model } = await loadPretrained(f, { strict: false, tokenizer: null, config: 'test-vit' });
        model.dispose();
        codes.add('ok');
      } catch (e) {
        expect((e as { code?: string }).code).toMatch(/^E_(CHECKPOINT|IO|SHAPE|DTYPE|TOKENIZER|CONFIG)$/);
        codes.add((e as { code: string }).code);
      }
    }
    expect(codes.has('E_CHECKPOINT')).toBe(true);
  });
});

describe('tokenizers and inputs', () => {
  test('a tokenizer whose vocabulary does not fit the model: E_TOKENIZER', async () => {
    const model = ClipModel.create('test-bert', { device: 'cpu' });
    const f = path.join(dir, 'bert.safetensors');
    writeState(f, model.getState());
    model.dispose();
    const vocab = path.join(dir, 'vocab-500.txt');
    writeVocab(vocab, 500);
    await expect(loadPretrained(f, { config: 'test-bert', tokenizer: vocab })).rejects.toMatchObject({ code: 'E_TOKENIZER' });
    // A BERT tower with no tokenizer at hand must say what to give.
    await expect(loadPretrained(f, { config: 'test-bert' })).rejects.toMatchObject({ code: 'E_TOKENIZER', message: expect.stringMatching(/--tokenizer/) });
    // The PyTorch fixture has 128 token ids: the shipped CLIP vocabulary (49408) does not fit.
    await expect(loadPretrained(path.join(FIXTURES, 'openai-state-dict.pt'))).rejects.toMatchObject({ code: 'E_TOKENIZER' });
  });

  test('a text longer than the context is truncated with the end token last, and counted', async () => {
    const model = ClipModel.create('test-vit', { device: 'cpu' });
    const f = path.join(dir, 'vit.safetensors');
    writeState(f, model.getState());
    model.dispose();
    const long = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    const warnings: string[] = [];
    const { output } = await embedWithCheckpoint(f, { texts: ['short', long], onWarning: (w) => warnings.push(w) });
    expect(output.truncated).toBe(1);
    expect(output.token_ids![1]).toHaveLength(32);
    expect(output.token_ids![1][31]).toBe(49407);
    expect(warnings.join(' ')).toMatch(/truncated/);
  });

  test('--images-raw of the wrong size or shape, --texts JSON of the wrong shape', async () => {
    const f = path.join(dir, 'img.f32');
    fs.writeFileSync(f, Buffer.alloc(4 * 3 * 32 * 32));
    expect(() => readRawImages(f, '2,3,32,32')).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => readRawImages(f, '1,3,32')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    const j = path.join(dir, 'texts.json');
    fs.writeFileSync(j, JSON.stringify({ a: 1 }));
    expect(() => readTextsArg([j])).toThrow(expect.objectContaining({ code: 'E_PARSE' }));
    expect(readTextsArg(['no effusion', 'edema'])).toEqual(['no effusion', 'edema']);
    const model = ClipModel.create('test-vit', { device: 'cpu' });
    const ck = path.join(dir, 'vit2.safetensors');
    writeState(ck, model.getState());
    model.dispose();
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await main(['embed', '--checkpoint', ck, '--images-raw', f, '--image-shape', '1,3,16,64', '--out', path.join(dir, 'o.json')]);
      expect(code).toBe(1);
      expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(/E_SHAPE/);
    } finally {
      err.mockRestore();
    }
  });
});
