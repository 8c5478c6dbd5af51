/** The token ids of a batch of texts, padded to one length. */
export interface TokenBatch {
  /** `batch * length` token ids, row-major, padded with the tokenizer's padding id. */
  ids: Int32Array;
  /**
   * `batch * length`, 1 for a real token and 0 for padding. WordPiece (BERT) towers need it; CLIP
   * BPE leaves it out because the CLIP text transformer pools at the end token instead.
   */
  attentionMask?: Uint8Array;
  /** Number of texts (rows). */
  batch: number;
  /** Tokens per row. */
  length: number;
  /** How many texts were longer than `length` and were cut (the end/[SEP] token is kept last). */
  truncated: number;
}

/** What every tokenizer offers to the rest of cxr-train (training, zero-shot prompts, `embed`). */
export interface TextTokenizer {
  /** `'clip-bpe'` (OpenAI CLIP byte-level BPE) or `'wordpiece'` (BERT). */
  readonly kind: 'clip-bpe' | 'wordpiece';
  /** Number of ids in the vocabulary (the text model's embedding table must have this many rows). */
  readonly vocabSize: number;
  /**
   * Tokenise a batch: start/[CLS] token, the text's tokens, end/[SEP] token, padding to `length`.
   * Texts that do not fit are truncated with the end token kept last, and counted in `truncated`.
   */
  encodeBatch(texts: readonly string[], length?: number): TokenBatch;
  /** Tokens `text` needs including the start and end tokens (compare with the context length). */
  countTokens(text: string): number;
  /**
   * Throw `E_TOKENIZER` unless the model's vocabulary size `n` matches this tokenizer's.
   * @param n rows of the text model's token embedding.
   */
  assertVocabSize(n: number): void;
}
