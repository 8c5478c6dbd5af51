/**
 * Freezing: turns `freeze: { image, text }` into the name prefixes `ClipModel.freeze` takes. A number N
 * freezes a tower's stem (embeddings, patch/conv stem) and all its blocks but the last N; its head
 * (final norm, pooling, projection) stays trainable, like open_clip's `lock_*_unlocked_*` options.
 */
import { CxrError } from '../errors';
import type { FreezeSection } from './config';

/** Parameter names of the image tower start with this. */
const IMAGE_PREFIX = 'visual.';

/** Block key of a parameter name (ViT/causal `resblocks.K.`, BERT `layer.K.`, ResNet `layerS.K.`), or null. */
export function blockKey(name: string): { key: string; order: number[] } | null {
  let m = /^(.*?resblocks\.(\d+)\.)/.exec(name);
  if (m) return { key: m[1], order: [Number(m[2])] };
  m = /^(.*?\.layer\.(\d+)\.)/.exec(name);
  if (m) return { key: m[1], order: [Number(m[2])] };
  m = /^(visual\.layer(\d+)\.(\d+)\.)/.exec(name);
  if (m) return { key: m[1], order: [Number(m[2]), Number(m[3])] };
  return null;
}

/** Head parameters (kept trainable with a partial freeze): final norms, pooling, projections. */
function isHead(name: string): boolean {
  return /(^|\.)(ln_post|ln_final|attnpool|pooler)\b|^visual\.proj$|^text_projection$|^text\.proj\b/.test(name);
}

/**
 * Prefixes to freeze for `freeze`, given the model's parameter names (from `getState()`).
 * `logit_scale` is never frozen.
 */
export function freezePrefixes(names: readonly string[], freeze: FreezeSection): string[] {
  const out: string[] = [];
  for (const tower of ['image', 'text'] as const) {
    const spec = freeze[tower];
    if (spec === false) continue;
    const mine = names.filter((n) => n !== 'logit_scale' && (tower === 'image') === n.startsWith(IMAGE_PREFIX));
    if (spec === true) {
      out.push(...mine);
      continue;
    }
    const blocks = new Map<string, number[]>();
    for (const n of mine) {
      const b = blockKey(n);
      if (b) blocks.set(b.key, b.order);
    }
    const ordered = [...blocks.entries()].sort((a, b) => a[1][0] - b[1][0] || (a[1][1] ?? 0) - (b[1][1] ?? 0)).map((e) => e[0]);
    if (ordered.length === 0) throw new CxrError('E_CONFIG', `freeze.${tower}: the ${tower} tower has no blocks to count`);
    if (spec > ordered.length) throw new CxrError('E_CONFIG', `freeze.${tower} = ${spec} but the ${tower} tower has only ${ordered.length} blocks`);
    const frozenBlocks = new Set(ordered.slice(0, ordered.length - spec));
    out.push(...frozenBlocks);
    for (const n of mine) if (!blockKey(n) && !isHead(n)) out.push(n);
  }
  return out;
}
