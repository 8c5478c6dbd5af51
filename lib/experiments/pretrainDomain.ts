/**
 * A second, unrelated image-text domain for the ablation's "general-domain" pre-training: procedural
 * pictures of a few shapes on textured backgrounds, each with a caption of one sentence per object. A
 * small CLIP trained on it learns generic contrastive image-text alignment (shapes, sizes, brightness,
 * positions) but never sees anything like a chest radiograph or a radiology word, which is the situation
 * of the paper's general-domain CLIP before fine-tuning.
 */
import { CxrError } from '../errors';
import { Rng, hashSeed } from '../util/rng';
import type { MemorySource } from '../data/DataLoader';
import type { Sample, Split } from '../data/sample';
import type { PromptSetFile } from '../text/prompts';

/** Shapes the generator draws; also the label names of the domain's zero-shot check. */
export const SHAPE_LABELS = ['circle', 'square', 'triangle', 'ring', 'cross'] as const;
/** A shape kind. */
export type ShapeKind = (typeof SHAPE_LABELS)[number];

/** Options of {@link generateShapes}. */
export interface ShapesOptions {
  /** Number of pictures. */
  n: number;
  /** Side in pixels (square). */
  size: number;
  /** Seed; the same seed gives identical pictures and captions. */
  seed: number;
  /** Fraction of pictures in the validation split (the rest is train). Default 0.1. */
  valFraction?: number;
}

/** One drawn object. */
interface Obj {
  kind: ShapeKind;
  cx: number;
  cy: number;
  r: number;
  bright: boolean;
}

const POS_WORD = (cx: number, cy: number): string => {
  const v = cy < 0.38 ? 'upper' : cy > 0.62 ? 'lower' : 'middle';
  const h = cx < 0.38 ? 'left' : cx > 0.62 ? 'right' : 'center';
  return v === 'middle' && h === 'center' ? 'center' : v === 'middle' ? `${h} side` : h === 'center' ? `${v} part` : `${v} ${h}`;
};

function inside(o: Obj, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  switch (o.kind) {
    case 'circle':
      return dx * dx + dy * dy <= o.r * o.r;
    case 'square':
      return Math.abs(dx) <= o.r * 0.85 && Math.abs(dy) <= o.r * 0.85;
    case 'triangle': {
      // Apex up: |dx| shrinks linearly from the base (dy = r) to the apex (dy = -r).
      if (dy < -o.r || dy > o.r) return false;
      return Math.abs(dx) <= ((dy + o.r) / (2 * o.r)) * o.r;
    }
    case 'ring': {
      const d = Math.sqrt(dx * dx + dy * dy);
      return d <= o.r && d >= o.r * 0.55;
    }
    case 'cross':
      return (Math.abs(dx) <= o.r * 0.3 && Math.abs(dy) <= o.r) || (Math.abs(dy) <= o.r * 0.3 && Math.abs(dx) <= o.r);
    default:
      return false;
  }
}

/** Renders one picture and writes its caption. Pure function of (seed, index, size). */
function drawOne(seed: number, index: number, size: number): { image: Float32Array; caption: string; present: Set<ShapeKind> } {
  const rng = new Rng(hashSeed(seed, 0x5a9e, index));
  const texture = (['plain', 'striped', 'grainy'] as const)[rng.int(3)];
  const base = rng.uniform(0.3, 0.5);
  const nObj = 1 + rng.weighted([0.35, 0.4, 0.25]);
  const objs: Obj[] = [];
  for (let k = 0; k < nObj; k++) {
    const big = rng.bernoulli(0.5);
    const r = big ? rng.uniform(0.17, 0.23) : rng.uniform(0.09, 0.13);
    objs.push({ kind: SHAPE_LABELS[rng.int(SHAPE_LABELS.length)], cx: rng.uniform(r, 1 - r), cy: rng.uniform(r, 1 - r), r, bright: rng.bernoulli(0.6) });
  }
  const img = new Float32Array(size * size);
  const stripeFreq = rng.uniform(5, 8);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x + 0.5) / size;
      const v = (y + 0.5) / size;
      let p = base;
      if (texture === 'striped') p += 0.08 * Math.sin(2 * Math.PI * stripeFreq * (u + v));
      else if (texture === 'grainy') p += rng.uniform(-0.08, 0.08);
      for (const o of objs) if (inside(o, u, v)) p = o.bright ? 0.9 : 0.08;
      p += rng.normal(0, 0.02);
      img[y * size + x] = p < 0 ? 0 : p > 1 ? 1 : p;
    }
  }
  const sentences = objs.map((o) => {
    const sz = o.r > 0.15 ? 'large' : 'small';
    const tone = o.bright ? 'bright' : 'dark';
    const form = rng.int(3);
    const where = POS_WORD(o.cx, o.cy);
    if (form === 0) return `A ${sz} ${tone} ${o.kind} in the ${where}.`;
    if (form === 1) return `There is a ${tone} ${o.kind} in the ${where}.`;
    return `The ${where} shows a ${sz} ${o.kind}.`;
  });
  sentences.push(texture === 'plain' ? 'The background is plain.' : `The background is ${texture}.`);
  return { image: img, caption: sentences.join(' '), present: new Set(objs.map((o) => o.kind)) };
}

/**
 * Generates the shapes domain in memory: train and validation {@link MemorySource}s whose samples carry
 * the caption as `report` and shape presence labels (1/0) for a zero-shot sanity check.
 */
export function generateShapes(opts: ShapesOptions): { train: MemorySource; val: MemorySource; labelNames: string[] } {
  if (!Number.isInteger(opts.n) || opts.n < 20) throw new CxrError('E_CONFIG', `shapes n must be an integer >= 20, got ${opts.n}`);
  if (!Number.isInteger(opts.size) || opts.size < 16) throw new CxrError('E_CONFIG', `shapes size must be an integer >= 16, got ${opts.size}`);
  const valFraction = opts.valFraction ?? 0.1;
  const nVal = Math.max(10, Math.round(opts.n * valFraction));
  const plane = opts.size * opts.size;
  const parts: Record<'train' | 'validate', { samples: Sample[]; images: Float32Array[] }> = { train: { samples: [], images: [] }, validate: { samples: [], images: [] } };
  for (let i = 0; i < opts.n; i++) {
    const d = drawOne(opts.seed, i, opts.size);
    const split: Split = i < opts.n - nVal ? 'train' : 'validate';
    const labels: Record<string, number> = {};
    for (const l of SHAPE_LABELS) labels[l] = d.present.has(l) ? 1 : 0;
    parts[split as 'train' | 'validate'].samples.push({ id: `shape-${opts.seed}-${i}`, imagePath: '', report: d.caption, labels, patientId: `shape-${i}`, studyId: `shape-${i}`, split });
    parts[split as 'train' | 'validate'].images.push(d.image);
  }
  const pack = (p: { samples: Sample[]; images: Float32Array[] }): MemorySource => {
    const pixels = new Float32Array(p.images.length * plane);
    p.images.forEach((im, k) => pixels.set(im, k * plane));
    return { samples: p.samples, pixels, width: opts.size, height: opts.size };
  };
  return { train: pack(parts.train), val: pack(parts.validate), labelNames: [...SHAPE_LABELS] };
}

/** The zero-shot prompt set of the shapes domain ("a circle" vs "no circle"), as a prompt-set file object. */
export function shapesPromptSet(): PromptSetFile {
  return {
    name: 'shapes',
    description: 'Zero-shot check of the shapes pre-training domain',
    templates: { positive: ['a {label}'], negative: ['no {label}'] },
    labels: SHAPE_LABELS.map((label) => ({ label })),
  };
}
