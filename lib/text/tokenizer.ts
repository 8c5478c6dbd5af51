/**
 * Tokenizers for the text towers cxr-train can train: OpenAI CLIP byte-level BPE and BERT
 * WordPiece, behind one {@link TextTokenizer} interface.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CxrError } from '../errors';
import { ClipTokenizer } from './tokenizers/clipBpe';
import { isDirectory } from './tokenizers/files';
import { WordPieceTokenizer } from './tokenizers/wordpiece';
import type { TextTokenizer } from './tokenizers/types';

export type { TextTokenizer, TokenBatch } from './tokenizers/types';
export { ClipTokenizer, CLIP_CONTEXT_LENGTH, CLIP_END_ID, CLIP_START_ID, CLIP_VOCAB_SIZE } from './tokenizers/clipBpe';
export type { ClipTokenizerOptions } from './tokenizers/clipBpe';
export { WordPieceTokenizer } from './tokenizers/wordpiece';
export type { WordPieceOptions } from './tokenizers/wordpiece';

/** Which tokenizer to load, and from where. */
export interface TokenizerSpec {
  /** `'clip-bpe'` for OpenAI CLIP / open_clip / CheXzero text towers, `'wordpiece'` for BERT towers. */
  kind: 'clip-bpe' | 'wordpiece';
  /**
   * A file or a directory.
   * - clip-bpe: `bpe_simple_vocab_16e6.txt[.gz]`, a Hugging Face `tokenizer.json`, a `vocab.json`
   *   (with `merges.txt` beside it), or a directory holding one of those. Default: the vocabulary
   *   shipped with cxr-train.
   * - wordpiece (required): `vocab.txt`, a `tokenizer.json`, or a directory holding one.
   */
  path?: string;
  /** Default row length of `encodeBatch` (the model's context length). Default 77 (CLIP) / 512 (BERT). */
  contextLength?: number;
  /** WordPiece only: lower-case (uncased BERT). Default true for vocab.txt; tokenizer.json says itself. */
  lowercase?: boolean;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/**
 * Load a tokenizer from a {@link TokenizerSpec}.
 * @throws CxrError `E_TOKENIZER` for a missing or invalid file, `E_CONFIG` for an unknown kind.
 */
export function loadTokenizer(spec: TokenizerSpec): TextTokenizer {
  if (!spec || typeof spec !== 'object') throw new CxrError('E_CONFIG', 'loadTokenizer expects { kind, path? }');
  const p = spec.path;
  if (spec.kind === 'clip-bpe') {
    const options = spec.contextLength === undefined ? {} : { contextLength: spec.contextLength };
    if (p === undefined) return ClipTokenizer.fromBpeFile(undefined, options);
    if (isDirectory(p)) {
      const tj = path.join(p, 'tokenizer.json');
      if (exists(tj)) return ClipTokenizer.fromHuggingFace(tj, options);
      const vj = path.join(p, 'vocab.json');
      const mt = path.join(p, 'merges.txt');
      if (exists(vj) && exists(mt)) return ClipTokenizer.fromHuggingFace({ vocabJson: vj, mergesTxt: mt }, options);
      for (const name of ['bpe_simple_vocab_16e6.txt.gz', 'bpe_simple_vocab_16e6.txt']) {
        if (exists(path.join(p, name))) return ClipTokenizer.fromBpeFile(path.join(p, name), options);
      }
      throw new CxrError('E_TOKENIZER', `no CLIP tokenizer in directory '${p}' (looked for tokenizer.json, vocab.json + merges.txt, bpe_simple_vocab_16e6.txt.gz)`, { path: p });
    }
    if (path.basename(p) === 'vocab.json') {
      return ClipTokenizer.fromHuggingFace({ vocabJson: p, mergesTxt: path.join(path.dirname(p), 'merges.txt') }, options);
    }
    if (p.endsWith('.json')) return ClipTokenizer.fromHuggingFace(p, options);
    return ClipTokenizer.fromBpeFile(p, options);
  }
  if (spec.kind === 'wordpiece') {
    if (p === undefined) throw new CxrError('E_TOKENIZER', 'a WordPiece tokenizer needs a path (vocab.txt, tokenizer.json or their directory)');
    const options = {
      ...(spec.contextLength === undefined ? {} : { contextLength: spec.contextLength }),
      ...(spec.lowercase === undefined ? {} : { lowercase: spec.lowercase }),
    };
    if (isDirectory(p)) {
      const tj = path.join(p, 'tokenizer.json');
      if (exists(tj)) return WordPieceTokenizer.fromHuggingFace(tj, options);
      const vt = path.join(p, 'vocab.txt');
      if (exists(vt)) return WordPieceTokenizer.fromVocabFile(vt, options);
      throw new CxrError('E_TOKENIZER', `no WordPiece tokenizer in directory '${p}' (looked for tokenizer.json, vocab.txt)`, { path: p });
    }
    if (p.endsWith('.json')) return WordPieceTokenizer.fromHuggingFace(p, options);
    return WordPieceTokenizer.fromVocabFile(p, options);
  }
  throw new CxrError('E_CONFIG', `unknown tokenizer kind '${String((spec as { kind?: unknown }).kind)}' (expected 'clip-bpe' or 'wordpiece')`);
}
