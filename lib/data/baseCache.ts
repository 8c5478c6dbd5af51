/**
 * A bounded cache of decoded base images (the deterministic `decodeToBase` result: a file decoded,
 * grey-scaled and resized to size×size, before any augmentation), so that an image seen again in a later
 * epoch is augmented from memory instead of decoded again. Decoding is most of the loader's CPU time: on the
 * demo (32 px JPEGs, batch 32) ~2 ms per image, more than the native train step's share of a 2-core
 * machine, and epochs 2+ of a run read the same files.
 *
 * One cache per thread (each decoder worker holds its own, for as long as its loader lives: one run),
 * least recently used entries dropped first once `maxBytes` is reached. An entry is keyed by the file's
 * absolute path and the decode settings; it is not re-checked against the file on a hit (a stat per image
 * cost a quarter of the cached path's time), so a file replaced while a run reads it keeps its first
 * decoding until the run ends. Entries are shared read-only: augmentation never writes into a base image.
 */

export class BaseImageCache {
  private readonly entries = new Map<string, Float32Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(public maxBytes: number) {}

  /** The key of a file (absolute path) for given decode settings. */
  static keyOf(file: string, settings: string): string {
    return `${file}\u0000${settings}`;
  }

  get(key: string): Float32Array | undefined {
    const v = this.entries.get(key);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key); // re-insert: Map order is the recency order
    this.entries.set(key, v);
    return v;
  }

  set(key: string, v: Float32Array): void {
    if (v.byteLength > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.bytes -= old.byteLength;
      this.entries.delete(key);
    }
    this.evictTo(this.maxBytes - v.byteLength);
    this.entries.set(key, v);
    this.bytes += v.byteLength;
  }

  /** Changes the bound (dropping the oldest entries to meet it). */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.evictTo(maxBytes);
  }

  /** Drops the least recently used entries until at most `bytes` are held. */
  private evictTo(bytes: number): void {
    for (const [k, e] of this.entries) {
      if (this.bytes <= bytes) break;
      this.entries.delete(k);
      this.bytes -= e.byteLength;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get byteLength(): number {
    return this.bytes;
  }
}
