/**
 * The ids of recently tokenised texts. A training step counts each sampled text's tokens (to fit the
 * context length) and then encodes the same text; with this memo the second call is a lookup. Bounded:
 * cleared when full (a run draws new sentence combinations all the time, so old entries rarely return).
 */
export class TextIdsCache {
  private readonly map = new Map<string, readonly number[]>();

  constructor(private readonly limit = 1024) {}

  /** The ids of `text`: cached, else `compute(text)` (kept). Callers must not change the array. */
  get(text: string, compute: (text: string) => number[]): readonly number[] {
    const hit = this.map.get(text);
    if (hit !== undefined) return hit;
    const ids = compute(text);
    if (this.map.size >= this.limit) this.map.clear();
    this.map.set(text, ids);
    return ids;
  }
}
