import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadTokenizer, WordPieceTokenizer } from '../../lib/text/tokenizer';
import { expectCode } from '../helpers/errors';

// A small vocabulary written for these tests; ids are line numbers.
const VOCAB = [
  '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', // 0-4
  'the', 'lung', '##s', 'are', 'clear', // 5-9
  'no', 'pl', '##eur', '##al', 'eff', // 10-14
  '##usion', '.', ',', 'un', '##want', // 15-19
  '##ed', 'run', '##ning', 'running', '肺', // 20-24
  '炎', 'cafe', 'café', '2', '5', // 25-29
  '_', '$', '-', '«', '»', // 30-34
  'The', 'a', '##a', 'x', // 35-38
];
const id = (t: string): number => {
  const i = VOCAB.indexOf(t);
  if (i < 0) throw new Error(t);
  return i;
};

describe('WordPieceTokenizer', () => {
  let dir: string;
  let vocabFile: string;
  let uncased: WordPieceTokenizer;
  let cased: WordPieceTokenizer;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-wp-'));
    vocabFile = path.join(dir, 'vocab.txt');
    fs.writeFileSync(vocabFile, VOCAB.join('\n') + '\n');
    uncased = WordPieceTokenizer.fromVocabFile(vocabFile);
    cased = WordPieceTokenizer.fromVocabFile(vocabFile, { lowercase: false });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('special ids and size from the vocabulary', () => {
    expect(uncased.vocabSize).toBe(VOCAB.length);
    expect([uncased.padId, uncased.unkId, uncased.clsId, uncased.sepId]).toEqual([0, 1, 2, 3]);
    expect(uncased.kind).toBe('wordpiece');
    expect(uncased.lowercase).toBe(true);
    expect(uncased.stripAccents).toBe(true);
  });

  test('hand-worked uncased cases', () => {
    expect(uncased.tokenize('The lungs are clear.')).toEqual(['the', 'lung', '##s', 'are', 'clear', '.']);
    expect(uncased.tokenize('Pleural effusion')).toEqual(['pl', '##eur', '##al', 'eff', '##usion']);
    // Longest match first: "running" is in the vocabulary whole, "unwanted" is not.
    expect(uncased.tokenize('unwanted running')).toEqual(['un', '##want', '##ed', 'running']);
    // Accents stripped after lower-casing: café → cafe.
    expect(uncased.tokenize('CAFÉ Café')).toEqual(['cafe', 'cafe']);
    // CJK ideographs become words of their own even without spaces.
    expect(uncased.tokenize('肺炎')).toEqual(['肺', '炎']);
    // Numbers split on the dot (punctuation); unknown words are [UNK] as a whole.
    expect(uncased.tokenize('2.5 cm')).toEqual(['2', '.', '5', '[UNK]']);
    // An unknown tail makes the whole word [UNK], not a partial match.
    expect(uncased.tokenize('lungx')).toEqual(['[UNK]']);
    // Every ASCII non-alphanumeric is punctuation, so "___" is three tokens, "$5" two.
    expect(uncased.tokenize('___ $5 a-a')).toEqual(['_', '_', '_', '$', '5', 'a', '-', 'a']);
    expect(uncased.tokenize('«x»')).toEqual(['«', 'x', '»']);
    expect(uncased.encode('the lungs')).toEqual([id('the'), id('lung'), id('##s')]);
  });

  test('a repeated text is served from the text cache: same ids, and a caller cannot change them', () => {
    const cold = WordPieceTokenizer.fromVocabFile(vocabFile).encode('The lungs are clear.');
    expect(uncased.countTokens('The lungs are clear.')).toBe(cold.length + 2);
    const mine = uncased.encode('The lungs are clear.');
    expect(mine).toEqual(cold);
    mine[0] = -1;
    expect(uncased.encode('The lungs are clear.')).toEqual(cold);
    expect(Array.from(uncased.encodeBatch(['The lungs are clear.'], 16).ids.subarray(1, 1 + cold.length))).toEqual(cold);
  });

  test('cleaning: control and format characters removed, Unicode spaces split', () => {
    expect(uncased.tokenize('lu\u0000ng lu\u200bng lu\ufffdng')).toEqual(['lung', 'lung', 'lung']);
    expect(uncased.tokenize('the\u00a0lung\u3000are\r\nclear\u2028no')).toEqual(['the', 'lung', 'are', 'clear', 'no']);
  });

  test('max 100 characters per word', () => {
    expect(uncased.tokenize('a'.repeat(100))).toEqual(['a', ...Array(99).fill('##a')]);
    expect(uncased.tokenize('a'.repeat(101))).toEqual(['[UNK]']);
  });

  test('cased: no lower-casing, no accent stripping', () => {
    expect(cased.tokenize('The the café Café')).toEqual(['The', 'the', 'café', '[UNK]']);
    expect(cased.tokenize('THE')).toEqual(['[UNK]']);
    const keepAccents = WordPieceTokenizer.fromVocabFile(vocabFile, { lowercase: true, stripAccents: false });
    expect(keepAccents.tokenize('CAFÉ')).toEqual(['café']);
  });

  test('special tokens written in the text stay whole', () => {
    expect(uncased.encode('[CLS] the[SEP]lung [MASK]')).toEqual([2, id('the'), 3, id('lung'), 4]);
    // Lower-case spellings are ordinary text: '[' 'cls' ']' (none in this vocabulary).
    expect(uncased.tokenize('[cls]')).toEqual(['[UNK]', '[UNK]', '[UNK]']);
  });

  test('encodeBatch: [CLS] ... [SEP] [PAD], attention mask, truncation keeps [SEP]', () => {
    const b = uncased.encodeBatch(['the lungs are clear', 'no'], 6);
    expect(b.batch).toBe(2);
    expect(b.length).toBe(6);
    expect(b.ids).toBeInstanceOf(Int32Array);
    expect(b.attentionMask).toBeInstanceOf(Uint8Array);
    // "the lung ##s are clear" is 5 pieces; 4 fit between [CLS] and [SEP].
    expect(Array.from(b.ids.subarray(0, 6))).toEqual([2, id('the'), id('lung'), id('##s'), id('are'), 3]);
    expect(Array.from(b.ids.subarray(6))).toEqual([2, id('no'), 3, 0, 0, 0]);
    expect(Array.from(b.attentionMask as Uint8Array)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    expect(b.truncated).toBe(1);
    expect(uncased.countTokens('the lungs are clear')).toBe(7);
    const d = uncased.encodeBatch(['no'], undefined);
    expect(d.length).toBe(512);
    expectCode(() => uncased.encodeBatch(['no'], 1), 'E_CONFIG');
  });

  test('decode glues ## pieces and drops specials', () => {
    const b = uncased.encodeBatch(['Pleural effusion, unwanted.'], 16);
    expect(uncased.decode(b.ids)).toBe('pleural effusion , unwanted .');
    expect(uncased.decode([2, 5, 3], { skipSpecialTokens: false })).toBe('[CLS] the [SEP]');
    expectCode(() => uncased.decode([999]), 'E_TOKENIZER');
  });

  test('tokenizer.json (BertNormalizer) and agreement with @huggingface/tokenizers', () => {
    const vocab: Record<string, number> = {};
    VOCAB.forEach((t, i) => (vocab[t] = i));
    const json = {
      version: '1.0',
      added_tokens: [0, 1, 2, 3, 4].map((i) => ({ id: i, content: VOCAB[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    };
    const f = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(f, JSON.stringify(json));
    const t = WordPieceTokenizer.fromHuggingFace(f);
    expect(t.lowercase).toBe(true);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: new (j: unknown, c: unknown) => { encode(t: string, o: unknown): { ids: number[] } } };
    const hf = new Tokenizer(json, {});
    const texts = ['The lungs are clear.', 'Pleural effusion, unwanted running', 'CAFÉ 肺炎 2.5 cm', '___ $5 a-a «x»', 'lungx the\u00a0lung', 'a'.repeat(101)];
    for (const text of texts) expect(t.encode(text)).toEqual(hf.encode(text, { add_special_tokens: false }).ids);
    // Cased via the normaliser flag.
    fs.writeFileSync(f, JSON.stringify({ ...json, normalizer: { ...json.normalizer, lowercase: false } }));
    const c = WordPieceTokenizer.fromHuggingFace(f);
    expect(c.tokenize('The café')).toEqual(['The', 'café']);
    // Directory lookup prefers tokenizer.json.
    const viaDir = loadTokenizer({ kind: 'wordpiece', path: dir });
    expect(viaDir.kind).toBe('wordpiece');
    expect((viaDir as WordPieceTokenizer).lowercase).toBe(false);
  });

  test('loadTokenizer and bad input', () => {
    const t = loadTokenizer({ kind: 'wordpiece', path: vocabFile, contextLength: 32, lowercase: false });
    expect(t.encodeBatch(['The']).length).toBe(32);
    expect((t as WordPieceTokenizer).lowercase).toBe(false);
    expectCode(() => loadTokenizer({ kind: 'wordpiece' }), 'E_TOKENIZER');
    expectCode(() => loadTokenizer({ kind: 'wordpiece', path: path.join(dir, 'missing.txt') }), 'E_TOKENIZER');
    const crlf = path.join(dir, 'crlf.txt');
    fs.writeFileSync(crlf, VOCAB.join('\r\n') + '\r\n');
    expect(WordPieceTokenizer.fromVocabFile(crlf).encode('The lungs')).toEqual(uncased.encode('The lungs'));
    const noCls = path.join(dir, 'nocls.txt');
    fs.writeFileSync(noCls, '[PAD]\n[UNK]\n[SEP]\nthe\n');
    const e = expectCode(() => WordPieceTokenizer.fromVocabFile(noCls), 'E_TOKENIZER');
    expect(e.message).toContain('[CLS]');
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    expectCode(() => WordPieceTokenizer.fromVocabFile(empty), 'E_TOKENIZER');
    const bpeJson = path.join(dir, 'bpe.json');
    fs.writeFileSync(bpeJson, JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] } }));
    expectCode(() => WordPieceTokenizer.fromHuggingFace(bpeJson), 'E_TOKENIZER');
    expect(() => uncased.assertVocabSize(VOCAB.length)).not.toThrow();
    expectCode(() => uncased.assertVocabSize(30522), 'E_TOKENIZER');
  });
});
