import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { ClipTokenizer, CLIP_END_ID, CLIP_START_ID, loadTokenizer } from '../../lib/text/tokenizer';
import { expectCode } from '../helpers/errors';
import { mulberry32 as rng } from '../../lib/util/rng';

const ROOT = path.resolve(__dirname, '../..');
const BPE = path.join(ROOT, 'assets/clip-bpe/bpe_simple_vocab_16e6.txt.gz');
const REFERENCE = path.join(ROOT, 'test/fixtures/openai-clip-tiny-vit/reference.json');
const EXPECTED = path.join(ROOT, 'test/fixtures/tokenizer/clip_expected.json');

interface Case {
  name: string;
  text: string;
  ids: number[];
}
const expected = JSON.parse(fs.readFileSync(EXPECTED, 'utf8')) as { cases: Case[] };
const caseText = (name: string): string => {
  const c = expected.cases.find((x) => x.name === name);
  if (!c) throw new Error(`fixture case ${name} missing`);
  return c.text;
};

/**
 * A second, deliberately naive CLIP BPE written for this test: a hand-written character-class
 * scanner instead of the regex, string concatenation for bytes, and merges applied by searching
 * the whole word for the best-ranked adjacent pair each round. It reads the vocabulary file itself.
 */
class NaiveClip {
  private ranks = new Map<string, number>();
  /** token → id, built here from the file (also used to write HF vocab.json files). */
  readonly ids = new Map<string, number>();
  private byteChar: string[] = [];
  constructor(file: string) {
    const lines = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8').split('\n').slice(1, 48895);
    const printable: number[] = [];
    for (let b = 0; b < 256; b++) if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) printable.push(b);
    const order = [...printable];
    let k = 0;
    for (let b = 0; b < 256; b++) {
      if (printable.includes(b)) this.byteChar[b] = String.fromCharCode(b);
      else {
        this.byteChar[b] = String.fromCharCode(256 + k++);
        order.push(b);
      }
    }
    const tokens: string[] = order.map((b) => this.byteChar[b]);
    for (const b of order) tokens.push(this.byteChar[b] + '</w>');
    lines.forEach((l, i) => {
      const [a, b] = l.split(' ');
      this.ranks.set(`${a}\u0000${b}`, i);
      tokens.push(a + b);
    });
    tokens.push('<|startoftext|>', '<|endoftext|>');
    tokens.forEach((t, i) => this.ids.set(t, i));
  }
  private isWs(ch: string): boolean {
    return '\t\n\v\f\r \u0085\u00a0\u1680\u2028\u2029\u202f\u205f\u3000'.includes(ch) || (ch >= '\u2000' && ch <= '\u200a');
  }
  private pieces(text: string): string[] {
    const chars = Array.from(text);
    const out: string[] = [];
    let i = 0;
    const isL = (c: string) => /^\p{L}$/u.test(c);
    const isN = (c: string) => /^\p{N}$/u.test(c);
    while (i < chars.length) {
      const rest = chars.slice(i).join('');
      const special = ['<|startoftext|>', '<|endoftext|>'].find((s) => rest.startsWith(s));
      const contraction = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].find((s) => rest.startsWith(s));
      if (special) {
        out.push(special);
        i += special.length;
      } else if (contraction) {
        out.push(contraction);
        i += contraction.length;
      } else if (isL(chars[i])) {
        let j = i;
        while (j < chars.length && isL(chars[j])) j++;
        out.push(chars.slice(i, j).join(''));
        i = j;
      } else if (isN(chars[i])) {
        out.push(chars[i++]);
      } else if (!this.isWs(chars[i])) {
        let j = i;
        while (j < chars.length && !this.isWs(chars[j]) && !isL(chars[j]) && !isN(chars[j])) j++;
        out.push(chars.slice(i, j).join(''));
        i = j;
      } else {
        i++;
      }
    }
    return out;
  }
  encode(text: string): number[] {
    // Only for texts without HTML references or edge whitespace (the generator below makes none).
    const clean = text.split(/[\t\n\v\f\r \u00a0]+/).filter((w) => w !== '').join(' ').toLowerCase();
    const out: number[] = [];
    for (const p of this.pieces(clean)) {
      if (p === '<|startoftext|>' || p === '<|endoftext|>') {
        out.push(this.ids.get(p) as number);
        continue;
      }
      let word = [...Buffer.from(p, 'utf8')].map((b) => this.byteChar[b]);
      word[word.length - 1] += '</w>';
      for (;;) {
        let best: [number, number] | null = null;
        for (let i = 0; i + 1 < word.length; i++) {
          const r = this.ranks.get(`${word[i]}\u0000${word[i + 1]}`);
          if (r !== undefined && (best === null || r < best[0])) best = [r, i];
        }
        if (best === null) break;
        const a = word[best[1]];
        const b = word[best[1] + 1];
        const merged: string[] = [];
        for (let i = 0; i < word.length; i++) {
          if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
            merged.push(a + b);
            i++;
          } else merged.push(word[i]);
        }
        word = merged;
      }
      for (const w of word) out.push(this.ids.get(w) as number);
    }
    return out;
  }
}

describe('ClipTokenizer', () => {
  let tok: ClipTokenizer;
  beforeAll(() => {
    tok = ClipTokenizer.fromBpeFile(BPE);
  });

  test('vocabulary shape and special ids', () => {
    expect(tok.vocabSize).toBe(49408);
    expect(tok.startId).toBe(CLIP_START_ID);
    expect(tok.endId).toBe(CLIP_END_ID);
    expect(tok.contextLength).toBe(77);
    expect(tok.kind).toBe('clip-bpe');
  });

  test('equals the OpenAI reference fixture token ids exactly', () => {
    const ref = JSON.parse(fs.readFileSync(REFERENCE, 'utf8')) as { texts: string[]; token_ids: number[][] };
    const b = tok.encodeBatch(ref.texts, 77);
    expect(b.batch).toBe(ref.texts.length);
    expect(b.length).toBe(77);
    expect(b.truncated).toBe(0);
    const rows = ref.texts.map((_, i) => Array.from(b.ids.subarray(i * 77, (i + 1) * 77)));
    expect(rows).toEqual(ref.token_ids);
  });

  test('equals the independent Python implementation on tricky text', () => {
    expect(expected.cases.length).toBeGreaterThanOrEqual(25);
    const mismatched = expected.cases.filter((c) => JSON.stringify(tok.encode(c.text)) !== JSON.stringify(c.ids)).map((c) => c.name);
    expect(mismatched).toEqual([]);
    // Spot checks that the fixture says what we think it says.
    const words800 = caseText('800-word report').split(' ').length;
    expect(words800).toBeGreaterThanOrEqual(800);
    expect(caseText('crlf')).toContain('\r\n');
  });

  test('spot values: digits split, placeholders, units', () => {
    // Each digit is its own token; '.' alone is the byte symbol '.</w>' (id 256 + 13).
    expect(tok.encode('2.5')).toEqual([tok.encode('2')[0], 269, tok.encode('5')[0]]);
    expect(tok.encode('2.5 cm')).toHaveLength(4);
    // A run of underscores stays one pre-token.
    expect(tok.encode('___')).toEqual(tok.encode(' ___ '));
    expect(tok.encode('NO Pleural')).toEqual(tok.encode('no pleural'));
    expect(tok.encode('a &amp; b')).toEqual(tok.encode('a & b'));
    expect(tok.encode('a &amp;amp; b')).toEqual(tok.encode('a & b')); // unescaped twice
    expect(tok.encode('x\r\n\r\ny')).toEqual(tok.encode('x y'));
  });

  test('agrees with a naive re-implementation on random report-like text', () => {
    const naive = new NaiveClip(BPE);
    const r = rng(7);
    const alphabet = ['lung', 'Effusion', 'cm', 'x', '2', '3.5', '___', '...', '!!', '-', '/', "'s", "'ll", 'é', 'ü', '肺', '😀', 'Ⅳ', '(', ')', ':', ';', ',', 'T8', 'mm²', '°', '±'];
    for (let n = 0; n < 300; n++) {
      let text = '';
      const words = 1 + Math.floor(r() * 40);
      for (let w = 0; w < words; w++) {
        text += alphabet[Math.floor(r() * alphabet.length)];
        const gap = r();
        text += gap < 0.5 ? ' ' : gap < 0.6 ? '\n' : gap < 0.65 ? '\t ' : '';
      }
      expect(tok.encode(text)).toEqual(naive.encode(text.trim()));
    }
  });

  test('truncation keeps the end token last and counts truncated texts', () => {
    const long = caseText('800-word report');
    const bpe = tok.encode(long);
    expect(bpe.length).toBeGreaterThan(75);
    const b = tok.encodeBatch([long, 'short'], 77);
    expect(b.truncated).toBe(1);
    const row = Array.from(b.ids.subarray(0, 77));
    expect(row).toEqual([CLIP_START_ID, ...bpe.slice(0, 75), CLIP_END_ID]);
    expect(Array.from(b.ids.subarray(77, 80))).toEqual([CLIP_START_ID, ...tok.encode('short'), CLIP_END_ID]);
    // Exactly 75 BPE ids fit without truncation.
    const fit = bpe.slice(0, 75);
    expect(fit.length).toBe(75);
    expect(tok.countTokens(long)).toBe(bpe.length + 2);
    const small = tok.encodeBatch(['no pleural effusion'], 4);
    expect(Array.from(small.ids)).toEqual([CLIP_START_ID, 871, 926, CLIP_END_ID]);
    expect(small.truncated).toBe(1);
    expect(Array.from(tok.encodeBatch([''], 2).ids)).toEqual([CLIP_START_ID, CLIP_END_ID]);
    expectCode(() => tok.encodeBatch(['x'], 1), 'E_CONFIG');
  });

  test('zero padding and row-major layout', () => {
    const b = tok.encodeBatch(['a', 'b c'], 8);
    expect(b.ids).toBeInstanceOf(Int32Array);
    expect(b.ids.length).toBe(16);
    expect(Array.from(b.ids.subarray(0, 8))).toEqual([CLIP_START_ID, ...tok.encode('a'), CLIP_END_ID, 0, 0, 0, 0, 0]);
    expect(b.attentionMask).toBeUndefined();
  });

  test('cached texts and words give the same ids as a cold tokenizer, and a caller cannot change the cache', () => {
    const texts = ['Mild cardiomegaly. No pleural effusion.', 'mild   CARDIOMEGALY', 'No pleural effusion.', 'Mild cardiomegaly. No pleural effusion.'];
    const cold = texts.map((t) => ClipTokenizer.fromBpeFile(BPE).encode(t));
    // Counting first (as the sentence sampler does) then encoding the same text.
    expect(texts.map((t) => tok.countTokens(t))).toEqual(cold.map((c) => c.length + 2));
    expect(texts.map((t) => tok.encode(t))).toEqual(cold);
    const mine = tok.encode(texts[0]);
    mine[0] = -1;
    mine.push(7);
    expect(tok.encode(texts[0])).toEqual(cold[0]);
    const row = tok.encodeBatch([texts[0]], 77).ids;
    expect(Array.from(row.subarray(1, 1 + cold[0].length))).toEqual(cold[0]);
  });

  test('decode inverts encode up to cleaning', () => {
    expect(tok.decode(tok.encode('No pleural effusion.'))).toBe('no pleural effusion . ');
    expect(tok.decode(tok.encode('café 肺 😀'))).toBe('café 肺 😀 ');
    const row = tok.encodeBatch(['mild cardiomegaly'], 10).ids;
    expect(tok.decode(row, { skipSpecialTokens: true })).toBe('mild cardiomegaly ');
    expectCode(() => tok.decode([49408]), 'E_TOKENIZER');
  });

  test('the default vocabulary is the packaged one', () => {
    const d = ClipTokenizer.fromBpeFile();
    expect(d.source).toBe(BPE);
    expect(d.encode('atelectasis')).toEqual(tok.encode('atelectasis'));
  });

  test('vocabulary size assertion', () => {
    expect(() => tok.assertVocabSize(49408)).not.toThrow();
    const e = expectCode(() => tok.assertVocabSize(30522), 'E_TOKENIZER');
    expect(e.message).toContain('30522');
  });

  describe('Hugging Face files', () => {
    let dir: string;
    let merges: string[];
    let vocab: Record<string, number>;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-tok-'));
      merges = zlib.gunzipSync(fs.readFileSync(BPE)).toString('utf8').split('\n').slice(1, 48895);
      vocab = {};
      // HF's vocab.json lists the same token → id table the reference builds; take it from the
      // naive implementation so the file does not come from the code under test.
      for (const [t, id] of new NaiveClip(BPE).ids) vocab[t] = id;
      expect(Object.keys(vocab).length).toBe(49408);
      fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
      fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n' + merges.join('\n') + '\n');
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(hfClipTokenizerJson(vocab, merges)));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('tokenizer.json and vocab.json + merges.txt give the reference ids', () => {
      const a = ClipTokenizer.fromHuggingFace(path.join(dir, 'tokenizer.json'));
      const b = ClipTokenizer.fromHuggingFace({ vocabJson: path.join(dir, 'vocab.json'), mergesTxt: path.join(dir, 'merges.txt') });
      expect(a.vocabSize).toBe(49408);
      for (const c of expected.cases) {
        expect(a.encode(c.text)).toEqual(c.ids);
        expect(b.encode(c.text)).toEqual(c.ids);
      }
      const viaDir = loadTokenizer({ kind: 'clip-bpe', path: dir });
      expect(viaDir.kind).toBe('clip-bpe');
      expect(viaDir.countTokens('no pleural effusion')).toBe(7); // no, pl, eural, eff, usion + start/end
    });

    test('@huggingface/tokenizers agrees on ordinary report text (cross-check)', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: new (j: unknown, c: unknown) => { encode(t: string, o: unknown): { ids: number[] } } };
      const hf = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')), {});
      const plain = ['ascii sentence', 'numbers with units', 'placeholders', 'punctuation runs', 'contractions', 'cjk', 'emoji', 'crlf', '800-word report', '800-word report 2', 'digits', 'mixed case'];
      for (const name of plain) {
        const c = expected.cases.find((x) => x.name === name) as Case;
        expect(hf.encode(c.text, { add_special_tokens: false }).ids).toEqual(c.ids);
      }
    });
  });

  describe('bad input', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-tokbad-'));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('missing file', () => {
      const e = expectCode(() => ClipTokenizer.fromBpeFile(path.join(dir, 'nope.txt.gz')), 'E_TOKENIZER');
      expect(e.message).toContain('nope.txt.gz');
    });
    test('too few merges', () => {
      const f = path.join(dir, 'short.txt');
      fs.writeFileSync(f, '#version\na b\nc d\n');
      expectCode(() => ClipTokenizer.fromBpeFile(f), 'E_TOKENIZER');
    });
    test('corrupt gzip', () => {
      const f = path.join(dir, 'bad.gz');
      fs.writeFileSync(f, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5]));
      expectCode(() => ClipTokenizer.fromBpeFile(f), 'E_TOKENIZER');
    });
    test('malformed merge line', () => {
      const lines = zlib.gunzipSync(fs.readFileSync(BPE)).toString('utf8').split('\n');
      lines[10] = 'onlyone';
      const f = path.join(dir, 'malformed.txt');
      fs.writeFileSync(f, lines.join('\n'));
      const e = expectCode(() => ClipTokenizer.fromBpeFile(f), 'E_TOKENIZER');
      expect(e.message).toContain('line 11');
    });
    test('invalid tokenizer.json', () => {
      const f = path.join(dir, 'tokenizer.json');
      fs.writeFileSync(f, '{ not json');
      expectCode(() => ClipTokenizer.fromHuggingFace(f), 'E_TOKENIZER');
      fs.writeFileSync(f, JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
      expectCode(() => ClipTokenizer.fromHuggingFace(f), 'E_TOKENIZER');
      fs.writeFileSync(f, JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }));
      expectCode(() => ClipTokenizer.fromHuggingFace(f), 'E_TOKENIZER');
    });
    test('non-string input and unknown kind', () => {
      const t = ClipTokenizer.fromBpeFile(BPE);
      expectCode(() => t.encode(42 as unknown as string), 'E_TOKENIZER');
      expectCode(() => t.encodeBatch([null as unknown as string]), 'E_TOKENIZER');
      expectCode(() => loadTokenizer({ kind: 'sentencepiece' as 'clip-bpe' }), 'E_CONFIG');
      expectCode(() => loadTokenizer({ kind: 'clip-bpe', path: dir }), 'E_TOKENIZER');
    });
  });
});

/** The tokenizer.json layout Hugging Face publishes for openai/clip-vit-* models. */
function hfClipTokenizerJson(vocab: Record<string, number>, merges: string[]): unknown {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(49406, '<|startoftext|>'), special(49407, '<|endoftext|>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 49407], cls: ['<|startoftext|>', 49406], trim_offsets: false, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '', end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}
