/**
 * Procedural frontal chest radiograph ("phantom"). Brightness follows attenuation as on a real film: air
 * black, soft tissue grey, bone and devices white. Anatomy: body outline and shoulders, lungs with
 * vascular markings radiating from the hila, mediastinum, trachea, heart, hemidiaphragms with
 * costophrenic angles, posterior ribs, clavicles, gastric bubble. Findings change the picture the way
 * they do on real films (see each `draw*`); all geometry is in normalised units so the same spec renders
 * consistently at 64, 96, 128 or 256 px.
 */
import { Canvas } from './raster';
import type { CaseSpec, Side, Zone } from './findings';
import type { ChexpertLabel } from '../sample';
import { Rng } from '../../util/rng';

/** Acquisition / display style; the distribution-shift preset changes these. */
export interface RenderStyle {
  /** Multiplies contrast around mid-grey (1 = nominal). */
  contrast: number;
  /** Display gamma applied to [0, 1] intensities (1 = none). */
  gamma: number;
  /** Std of additive quantum-like noise, in [0, 1] intensity units. */
  noise: number;
  /** Box blur radius in pixels applied before noise (0 = sharp). */
  blurPx: number;
  /** Added to every pixel (over/under-exposure). */
  exposure: number;
}

interface LungGeom {
  s: number; // -1 patient right (image left), +1 patient left
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  lateral: number;
  medial: number;
  top: number;
  domeTop: number;
  domeBase: number;
  domeC: number;
  hx: number; // hilum
  hy: number;
}

function smooth01(t: number): number {
  return t <= 0 ? 0 : t >= 1 ? 1 : t * t * (3 - 2 * t);
}

function domeY(g: LungGeom, x: number): number {
  let t = (x - g.domeC) / g.rx;
  t = t * t;
  if (t > 1.4) t = 1.4;
  return g.domeTop + (g.domeBase - g.domeTop) * t;
}

/** Soft lung mask of one side; `scale` < 1 shrinks the lung towards its hilum (collapsed lung). */
function lungMask(W: number, H: number, g: LungGeom, scale = 1, out?: Float32Array): Float32Array {
  const m = out ?? new Float32Array(W * H);
  const cx = g.hx + (g.cx - g.hx) * scale;
  const cy = g.hy + (g.cy - g.hy) * scale;
  const rx = g.rx * scale;
  const ry = g.ry * scale;
  const soft = 1.2 / W;
  const x0 = Math.max(0, Math.floor((cx - rx) * W) - 1);
  const x1 = Math.min(W, Math.ceil((cx + rx) * W) + 2);
  const y0 = Math.max(0, Math.floor((cy - ry) * H) - 1);
  const y1 = Math.min(H, Math.ceil((cy + ry) * H) + 2);
  for (let py = y0; py < y1; py++) {
    const y = (py + 0.5) / H;
    const v = (y - cy) / ry;
    for (let px = x0; px < x1; px++) {
      const x = (px + 0.5) / W;
      const u = (x - cx) / rx;
      const r = Math.sqrt(u * u + v * v);
      const ae = smooth01((1 - r) / (soft / Math.min(rx, ry)) + 0.5);
      if (ae <= 0) continue;
      const dy = domeY(g, x) - y;
      const ad = smooth01(dy / (2 * soft) + 0.5);
      const a = ae * ad;
      const i = py * W + px;
      if (a > m[i]) m[i] = a;
    }
  }
  return m;
}

function zoneY(g: LungGeom, zone: Zone): number {
  const span = g.domeTop - g.top;
  return zone === 'upper' ? g.top + 0.25 * span : zone === 'middle' ? g.top + 0.55 * span : g.top + 0.85 * span;
}

/** An axis-aligned box [x0, y0, x1, y1] in normalised image units (0..1, x to the right, y down). */
export type RegionBox = [number, number, number, number];

/**
 * Where the renderer drew one finding: the union of `boxes`. Recorded for the localised findings only
 * (Edema is bilateral and diffuse, Lung Opacity a summary label, Support Devices many objects).
 */
export interface FindingRegion {
  label: ChexpertLabel;
  boxes: RegionBox[];
  /** What the boxes cover, in words. */
  what: string;
}

function clampBox(b: RegionBox): RegionBox {
  const c = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  return [c(Math.min(b[0], b[2])), c(Math.min(b[1], b[3])), c(Math.max(b[0], b[2])), c(Math.max(b[1], b[3]))];
}

/** The bounding box of an ellipse of radii (rx, ry) rotated by `angle`. */
function ellipseBox(cx: number, cy: number, rx: number, ry: number, angle = 0): RegionBox {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const hx = Math.sqrt(rx * rx * c * c + ry * ry * s * s);
  const hy = Math.sqrt(rx * rx * s * s + ry * ry * c * c);
  return [cx - hx, cy - hy, cx + hx, cy + hy];
}

/** The bounding box of points (flat [x, y, ...]) grown by `pad`. */
function pointsBox(pts: number[], pad: number): RegionBox {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let k = 0; k + 1 < pts.length; k += 2) {
    x0 = Math.min(x0, pts[k]);
    x1 = Math.max(x1, pts[k]);
    y0 = Math.min(y0, pts[k + 1]);
    y1 = Math.max(y1, pts[k + 1]);
  }
  return [x0 - pad, y0 - pad, x1 + pad, y1 + pad];
}

/** The bounding box of the pixels of a layer at or above `level`, or null when there is none. */
function layerBox(data: Float32Array, W: number, H: number, level: number): RegionBox | null {
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let py = 0; py < H; py++) {
    for (let px = 0; px < W; px++) {
      if (data[py * W + px] < level) continue;
      if (px < x0) x0 = px;
      if (px > x1) x1 = px;
      if (py < y0) y0 = py;
      if (py > y1) y1 = py;
    }
  }
  return x1 < 0 ? null : [x0 / W, y0 / H, (x1 + 1) / W, (y1 + 1) / H];
}

/**
 * Renders `spec` at `size`×`size` pixels, values in [0, 1]. `rng` supplies the patient-to-patient
 * variation (habitus, inspiration, positioning, markings) and the noise; `style` the acquisition.
 * When `regions` is given, the region of every localised finding drawn is appended to it; recording
 * reads values the renderer computes anyway and draws nothing from `rng`, so the picture is the same
 * with or without it.
 */
export function renderCase(spec: CaseSpec, size: number, rng: Rng, style: RenderStyle, regions?: FindingRegion[]): Float32Array {
  const drawn = (label: ChexpertLabel, boxes: RegionBox[], what: string) => {
    if (regions && boxes.length) regions.push({ label, boxes: boxes.map(clampBox), what });
  };
  const present = (label: ChexpertLabel) => spec.states[label] === 'positive' || spec.states[label] === 'uncertain';
  const W = size;
  const H = size;
  const c = new Canvas(W, H, 0.03);
  const dx = rng.uniform(-0.02, 0.02);
  const dy = rng.uniform(-0.02, 0.02);
  const insp = rng.uniform(-0.03, 0.03);
  const span = rng.uniform(0.355, 0.395);
  const mid = 0.5 + dx;
  const uScale = spec.uncertainScale;
  const strength = (label: keyof CaseSpec['states']) => (spec.states[label] === 'uncertain' ? uScale : 1) * spec.strength;

  // Body, shoulders and neck (soft tissue).
  c.ellipse(mid, 0.66 + dy, span + rng.uniform(0.07, 0.11), 0.62, 0.44, 'over', 0, 2);
  c.ellipse(mid - 0.3, 0.13 + dy, 0.22, 0.1, 0.42, 'over', -0.25, 2);
  c.ellipse(mid + 0.3, 0.13 + dy, 0.22, 0.1, 0.42, 'over', 0.25, 2);
  c.rect(mid - 0.08, 0, mid + 0.08, 0.2 + dy, 0.44);

  const geoms: LungGeom[] = [-1, 1].map((s) => {
    const lateral = mid + s * span;
    const medial = mid + s * 0.03;
    const top = 0.12 + dy + rng.uniform(-0.01, 0.01);
    const domeBase = 0.82 + dy + insp + rng.uniform(-0.01, 0.01);
    const domeTop = (s < 0 ? 0.69 : 0.715) + dy + insp;
    const cx = (lateral + medial) / 2;
    const rx = Math.abs(lateral - medial) / 2 + 0.015;
    return {
      s,
      cx,
      cy: (top + domeBase) / 2 + 0.05,
      rx,
      ry: (domeBase - top) / 2 + 0.06,
      lateral,
      medial,
      top,
      domeTop,
      domeBase,
      domeC: cx - s * 0.02,
      hx: mid + s * 0.1,
      hy: 0.45 + dy,
    };
  });
  const gOf = (side: Side) => (side === 'right' ? geoms[0] : geoms[1]);

  // Volume loss: atelectasis pulls the hemidiaphragm up on its side.
  if (spec.atelectasis) {
    const g = gOf(spec.atelectasis.side);
    const vl = spec.atelectasis.volumeLoss * strength('Atelectasis');
    g.domeTop -= vl;
    g.domeBase -= vl;
  }

  const masks = geoms.map((g) => lungMask(W, H, g));
  const lung = new Float32Array(W * H);
  const m0 = masks[0];
  const m1 = masks[1];
  for (let i = 0; i < lung.length; i++) lung[i] = m0[i] > m1[i] ? m0[i] : m1[i];

  // Pneumothorax: the lung collapses towards its hilum; outside it no markings, a little darker.
  const keep = new Float32Array(W * H).fill(1);
  let ptxCollapsed: Float32Array | null = null;
  let ptxGeom: LungGeom | null = null;
  let ptxScale = 1;
  if (spec.pneumothorax) {
    const g = gOf(spec.pneumothorax.side);
    const sev = spec.pneumothorax.severity;
    ptxScale = 1 - (sev === 'mild' ? 0.17 : sev === 'moderate' ? 0.27 : 0.4) * (spec.states['Pneumothorax'] === 'uncertain' ? 0.7 : 1) * Math.min(1, spec.strength);
    ptxCollapsed = lungMask(W, H, g, ptxScale);
    ptxGeom = g;
    const m = masks[g.s < 0 ? 0 : 1];
    const k = Math.min(1, spec.strength);
    for (let i = 0; i < keep.length; i++) keep[i] = 1 - k * m[i] * (1 - ptxCollapsed[i]);
  }

  // Aerated lung.
  const d = c.data;
  for (let i = 0; i < d.length; i++) {
    const py = Math.floor(i / W);
    const grad = 0.04 * (1 - py / H); // apices overlap more soft tissue
    d[i] -= lung[i] * (0.29 - grad) + (1 - keep[i]) * 0.06 * spec.strength;
  }

  // Vascular markings: tapering branches from each hilum, visible only in aerated, non-collapsed lung.
  const markMask = new Float32Array(W * H);
  for (let i = 0; i < markMask.length; i++) markMask[i] = lung[i] * keep[i];
  const edemaBoost = spec.edema ? 1 + 0.5 * strength('Edema') : 1;
  for (const g of geoms) {
    const nb = 9;
    for (let b = 0; b < nb; b++) {
      const ang = (-0.75 + (1.55 * b) / (nb - 1)) * Math.PI * 0.5 + rng.uniform(-0.12, 0.12); // up → down
      let x = g.hx;
      let y = g.hy;
      const dirx = g.s * Math.cos(ang);
      const diry = Math.sin(ang);
      const len = rng.uniform(0.17, 0.27);
      const steps = 5;
      let w = 0.009;
      for (let k = 0; k < steps; k++) {
        const nx = x + (dirx * len) / steps + rng.uniform(-0.01, 0.01);
        const ny = y + (diry * len) / steps + rng.uniform(-0.01, 0.01);
        c.line(x, y, nx, ny, w, 0.05 * edemaBoost, 'add', markMask);
        if (k === 2 && rng.bernoulli(0.7)) {
          const ba = ang + g.s * rng.uniform(-0.6, 0.6);
          c.line(nx, ny, nx + g.s * Math.cos(ba) * 0.07, ny + Math.sin(ba) * 0.07, w * 0.6, 0.04 * edemaBoost, 'add', markMask);
        }
        x = nx;
        y = ny;
        w *= 0.8;
      }
    }
    c.gaussian(g.hx, g.hy, 0.03, 0.045, 0.1, lung);
  }

  // Posterior ribs: arcs from the spine laterally and downwards; anterior ribs are left out.
  const ribTop = 0.14 + dy;
  const ribGap = 0.064;
  const ribY: number[] = [];
  for (let r = 0; r < 10; r++) ribY.push(ribTop + r * ribGap);
  for (const g of geoms) {
    for (const y of ribY) {
      const ax = mid + g.s * 0.04;
      const bx = g.lateral + g.s * 0.02;
      c.curve(ax, y, (ax + bx) / 2, y - 0.06, bx, y + 0.08, 0.016, 0.055, 'add');
    }
  }

  // Mediastinum, spine, trachea, aortic knob.
  const mw = spec.mediastinumHalfWidth;
  c.ellipse(mid, 0.36 + dy, mw, 0.26, 0.52, 'over', 0, 1.5);
  if (present('Enlarged Cardiomediastinum')) drawn('Enlarged Cardiomediastinum', [ellipseBox(mid, 0.36 + dy, mw, 0.26)], 'the upper mediastinum');
  c.line(mid, 0.0, mid, 0.95, 0.06, 0.06, 'add');
  c.line(mid, 0.04, mid, 0.33 + dy, 0.024, -0.14, 'add');
  c.line(mid, 0.33 + dy, mid - 0.045, 0.39 + dy, 0.017, -0.1, 'add');
  c.line(mid, 0.33 + dy, mid + 0.05, 0.385 + dy, 0.017, -0.1, 'add');
  c.ellipse(mid + mw * 0.8, 0.29 + dy, 0.032, 0.028, 0.54, 'over', 0, 1.2);

  // Heart: width = CTR × thoracic width, two thirds to the patient's left, resting on the diaphragm.
  const ctr = spec.ctr * (spec.view === 'AP' ? 1.05 : 1);
  const heartW = ctr * 2 * span;
  const hrx = heartW / 2;
  const hry = Math.min(0.2, hrx * 0.78);
  const hcx = mid + 0.13 * heartW;
  const hcy = (geoms[0].domeTop + geoms[1].domeTop) / 2 - hry * 0.35 + 0.02;
  c.ellipse(hcx, hcy, hrx, hry, 0.55, 'over', -0.2, 1.5);
  if (present('Cardiomegaly')) drawn('Cardiomegaly', [ellipseBox(hcx, hcy, hrx, hry, -0.2)], "the heart's outline");

  // Clavicles and the gastric bubble under the left hemidiaphragm.
  c.line(mid - 0.03, 0.17 + dy, mid - 0.3, 0.1 + dy, 0.022, 0.13, 'add');
  c.line(mid + 0.03, 0.17 + dy, mid + 0.3, 0.1 + dy, 0.022, 0.13, 'add');
  if (spec.view === 'PA' || rng.bernoulli(0.5)) c.ellipse(geoms[1].cx, geoms[1].domeTop + 0.06, 0.04, 0.022, -0.12, 'add');

  // Opacities are drawn into a separate layer and added masked by the lungs, so they stay intrapulmonary.
  const op = new Canvas(W, H, 0);
  if (spec.edema) {
    const k = (spec.edema.severity === 'mild' ? 0.12 : spec.edema.severity === 'moderate' ? 0.18 : 0.25) * strength('Edema');
    for (const g of geoms) {
      op.gaussian(g.hx + g.s * 0.03, g.hy + 0.02, 0.1, 0.14, k);
      for (let j = 0; j < 5; j++) {
        const y = g.domeTop - 0.02 - j * 0.025;
        const x = g.lateral - g.s * 0.01;
        op.line(x, y, x - g.s * 0.05, y, 0.005, 0.09 * strength('Edema'), 'add');
      }
    }
  }
  if (spec.consolidation) {
    const g = gOf(spec.consolidation.side);
    const cy = zoneY(g, spec.consolidation.zone);
    const cx = g.cx + g.s * 0.02;
    const R = spec.consolidation.radius;
    const blob = new Canvas(W, H, 0);
    for (let j = 0; j < 7; j++) blob.ellipse(cx + rng.uniform(-R, R) * 0.6, cy + rng.uniform(-R, R) * 0.5, R * rng.uniform(0.45, 0.7), R * rng.uniform(0.35, 0.6), 1, 'max', rng.uniform(0, 3), 2.5);
    blob.boxBlur(Math.max(1, Math.round(W / 96)));
    const box = layerBox(blob.data, W, H, 0.5);
    if (box) {
      drawn('Consolidation', [box], 'the consolidation blob');
      if (present('Pneumonia')) drawn('Pneumonia', [box], 'the consolidation blob (the picture of pneumonia)');
    }
    const k = 0.3 * strength('Consolidation');
    for (let i = 0; i < d.length; i++) op.data[i] += k * blob.data[i];
    // Air bronchograms: dark branching lucencies inside the opacity.
    for (let j = 0; j < 2; j++) op.line(cx - g.s * R * 0.6, cy + rng.uniform(-0.02, 0.02), cx + g.s * R * 0.5, cy + rng.uniform(-0.04, 0.04), 0.006, -0.09 * strength('Consolidation'), 'add', blob.data);
  }
  if (spec.atelectasis) {
    const g = gOf(spec.atelectasis.side);
    const y = spec.atelectasis.zone === 'lower' ? g.domeTop - 0.06 : g.hy + 0.06;
    const tilt = rng.uniform(-0.03, 0.03);
    op.line(g.lateral - g.s * 0.04, y + tilt, g.medial + g.s * 0.05, y - tilt, 0.022, 0.17 * strength('Atelectasis'), 'add');
    drawn('Atelectasis', [pointsBox([g.lateral - g.s * 0.04, y + tilt, g.medial + g.s * 0.05, y - tilt], 0.011)], 'the band of collapsed lung');
  }
  if (spec.lesion) {
    const g = gOf(spec.lesion.side);
    const cy = zoneY(g, spec.lesion.zone) + rng.uniform(-0.03, 0.03);
    const cx = g.cx + g.s * rng.uniform(-0.03, 0.04);
    const R = spec.lesion.radius;
    const k = 0.3 * strength('Lung Lesion');
    if (spec.lesion.kind === 'nodule') {
      const ry = R * rng.uniform(0.85, 1);
      op.ellipse(cx, cy, R, ry, k, 'add', 0, 1.2);
      drawn('Lung Lesion', [ellipseBox(cx, cy, R, ry)], 'the nodule');
    } else {
      const blob = new Canvas(W, H, 0);
      blob.ellipse(cx, cy, R, R * 0.85, 1, 'max', rng.uniform(0, 3), 1.5);
      for (let j = 0; j < 3; j++) blob.ellipse(cx + rng.uniform(-R, R) * 0.5, cy + rng.uniform(-R, R) * 0.5, R * 0.55, R * 0.5, 1, 'max', 0, 1.5);
      for (let i = 0; i < d.length; i++) op.data[i] += k * blob.data[i];
      const box = layerBox(blob.data, W, H, 0.5);
      if (box) drawn('Lung Lesion', [box], 'the mass');
    }
  }
  for (let i = 0; i < d.length; i++) d[i] += op.data[i] * (0.35 + 0.65 * lung[i]);

  // Pneumothorax pleural line: the visceral pleura of the collapsed lung, a thin white curve.
  if (ptxGeom && ptxCollapsed) {
    const g = ptxGeom;
    const cx = g.hx + (g.cx - g.hx) * ptxScale;
    const cy = g.hy + (g.cy - g.hy) * ptxScale;
    const rx = g.rx * ptxScale;
    const ry = g.ry * ptxScale;
    const pts: number[] = [];
    for (let a = -Math.PI; a <= 0.15 * Math.PI; a += Math.PI / 24) {
      const ang = g.s < 0 ? Math.PI - a : a;
      pts.push(cx + rx * Math.cos(ang), cy + ry * Math.sin(ang));
    }
    const inside = masks[g.s < 0 ? 0 : 1];
    c.polyline(pts, 0.005, 0.14 * strength('Pneumothorax'), 'add', inside);
    // The pleural line and the air between it and the chest wall: the lung's extent down to the line's ends.
    const lineBox = pointsBox(pts, 0.0025);
    drawn('Pneumothorax', [[Math.min(lineBox[0], g.cx - g.rx), Math.min(lineBox[1], g.cy - g.ry), Math.max(lineBox[2], g.cx + g.rx), lineBox[3]]], 'the pleural line and the air outside it');
  }

  // Pleural effusion: dependent fluid fills the base with a meniscus rising laterally, blunting the
  // costophrenic angle and effacing the hemidiaphragm.
  if (spec.effusion) {
    const frac = (spec.effusion.severity === 'mild' ? 0.14 : spec.effusion.severity === 'moderate' ? 0.27 : 0.42) * (spec.states['Pleural Effusion'] === 'uncertain' ? 0.6 : 1) * spec.strength;
    const boxes: RegionBox[] = [];
    for (const side of spec.effusion.sides) {
      const g = gOf(side);
      const m = masks[g.s < 0 ? 0 : 1];
      const lungH = g.domeBase - g.top;
      const level = g.domeBase - frac * lungH;
      // The fluid: from the meniscus' top at the chest wall down to the lung's lowest point (the
      // costophrenic angle), across the lung.
      const bottom = Math.min(g.cy + g.ry, g.domeTop + 1.4 * (g.domeBase - g.domeTop));
      boxes.push([Math.min(g.lateral, g.medial), level - 0.09, Math.max(g.lateral, g.medial), bottom]);
      const x0 = Math.max(0, Math.floor(Math.min(g.lateral, g.medial) * W) - 3);
      const x1 = Math.min(W, Math.ceil(Math.max(g.lateral, g.medial) * W) + 3);
      for (let px = x0; px < x1; px++) {
        const x = (px + 0.5) / W;
        const lat = Math.max(0, Math.min(1, (x - g.medial) / (g.lateral - g.medial)));
        const top = level - 0.07 * lat * lat - 0.02;
        for (let py = Math.max(0, Math.floor(top * H) - 3); py < H; py++) {
          const y = (py + 0.5) / H;
          const a = smooth01((y - top) / 0.05);
          if (a <= 0) continue;
          const i = py * W + px;
          d[i] += (0.46 - d[i]) * a * m[i] * 0.95;
        }
      }
    }
    drawn('Pleural Effusion', boxes, 'the fluid at the lung base and costophrenic angle');
  }

  if (spec.pleuralOther) {
    const g = gOf(spec.pleuralOther.side);
    const x = g.lateral - g.s * 0.012;
    c.curve(x, g.top + 0.1, x - g.s * 0.03, g.hy, x, g.domeTop - 0.05, 0.02, 0.2 * strength('Pleural Other'), 'add', lung);
    drawn('Pleural Other', [pointsBox([x, g.top + 0.1, x - g.s * 0.03, g.hy, x, g.domeTop - 0.05], 0.01)], 'the pleural thickening along the chest wall');
  }

  if (spec.fracture) {
    const g = gOf(spec.fracture.side);
    const y = ribY[spec.fracture.rib] + 0.035;
    const x = g.lateral - g.s * 0.05;
    c.gaussian(x, y, 0.018, 0.013, 0.3 * strength('Fracture'));
    drawn('Fracture', [[x - 0.036, y - 0.026, x + 0.036, y + 0.026]], 'the callus on the rib (2 sigma)');
    c.line(x - 0.004, y - 0.02, x + 0.004, y + 0.02, 0.006, -0.12, 'add');
  }

  drawDevices(c, spec, rng, mid, dy, hcx, hcy, geoms);

  // Acquisition: contrast, exposure, blur, noise, gamma.
  if (style.blurPx > 0) c.boxBlur(style.blurPx);
  // Noise from a fixed table of normal deviates indexed by the seeded stream: Box-Muller per pixel
  // dominated the render time. A display-gamma lookup table replaces Math.pow for the same reason.
  const table = normalTable();
  const noiseField = new Canvas(W, H, 0);
  const nf = noiseField.data;
  let off = rng.int(NORMAL_TABLE_SIZE);
  const stride = 1 + 2 * rng.int(1000);
  for (let i = 0; i < d.length; i++) {
    nf[i] = table[off];
    off = (off + stride) & (NORMAL_TABLE_SIZE - 1);
  }
  // Film grain is a few pixels wide at 128 px and above; below that it is pixel-sized.
  const grain = W >= 128 ? 1 : 0;
  noiseField.boxBlur(grain);
  const lut = gammaLut(style.gamma);
  const lutMax = lut.length - 1;
  const white = style.noise * 0.5;
  const corr = style.noise * (grain ? 1.7 : 0.57);
  const off2 = rng.int(NORMAL_TABLE_SIZE);
  for (let i = 0; i < d.length; i++) {
    let v = (d[i] - 0.3) * style.contrast + 0.3 + style.exposure;
    v += corr * nf[i] + white * table[(off2 + i * 7919) & (NORMAL_TABLE_SIZE - 1)];
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    // Then stretch to roughly the full display range like a windowed film.
    const g = lut[Math.round(v * lutMax)] * 1.35;
    d[i] = g > 1 ? 1 : g;
  }
  return d;
}

function drawDevices(c: Canvas, spec: CaseSpec, rng: Rng, mid: number, dy: number, hcx: number, hcy: number, geoms: LungGeom[]): void {
  const v = 0.74;
  for (const dev of spec.devices) {
    switch (dev) {
      case 'ett': {
        const tip = 0.25 + dy + rng.uniform(-0.03, 0.03);
        c.line(mid + 0.004, 0, mid + 0.004, tip, 0.013, v, 'max');
        c.line(mid + 0.009, 0, mid + 0.009, tip, 0.004, v + 0.1, 'max');
        break;
      }
      case 'ngt': {
        const gy = geoms[1].domeTop + 0.08;
        c.polyline([mid - 0.01, 0, mid - 0.012, 0.4, mid + 0.02, geoms[1].domeTop - 0.02, mid + 0.12, gy], 0.008, v, 'max');
        break;
      }
      case 'cvc':
        c.curve(mid - 0.26, 0.13 + dy, mid - 0.1, 0.16 + dy, mid - 0.035, 0.36 + dy + rng.uniform(-0.03, 0.03), 0.007, v, 'max');
        break;
      case 'pacemaker': {
        const gx = mid + 0.24;
        const gy = 0.17 + dy;
        c.ellipse(gx, gy, 0.045, 0.032, v + 0.15, 'max', 0.2, 1);
        c.curve(gx - 0.03, gy, mid + 0.02, 0.2 + dy, hcx - 0.02, hcy + 0.03, 0.006, v, 'max');
        break;
      }
      case 'sternotomy':
        for (let k = 0; k < 5; k++) c.ellipse(mid + 0.005, 0.3 + dy + k * 0.055, 0.014, 0.007, v + 0.15, 'max', 0, 1);
        break;
      case 'ecg':
        for (let k = 0; k < 3; k++) {
          const x = rng.uniform(0.2, 0.8);
          const y = rng.uniform(0.15, 0.6);
          c.ellipse(x, y, 0.016, 0.016, v, 'max', 0, 1);
          c.line(x, y, x + rng.uniform(-0.2, 0.2), y - 0.3, 0.004, v - 0.1, 'max');
        }
        break;
    }
  }
}

const NORMAL_TABLE_SIZE = 1 << 16;
let normalCache: Float32Array | null = null;

/** 65536 standard normal deviates from a fixed seed (same on every machine and run). */
function normalTable(): Float32Array {
  if (normalCache) return normalCache;
  const r = new Rng(0x6e6f697a);
  const t = new Float32Array(NORMAL_TABLE_SIZE);
  for (let i = 0; i < t.length; i++) t[i] = r.normal();
  normalCache = t;
  return t;
}

const lutCache = new Map<number, Float32Array>();

function gammaLut(gamma: number): Float32Array {
  const key = Math.round(gamma * 1000);
  let lut = lutCache.get(key);
  if (!lut) {
    lut = new Float32Array(4096);
    const g = key / 1000;
    for (let i = 0; i < lut.length; i++) lut[i] = Math.pow(i / (lut.length - 1), g);
    if (lutCache.size > 512) lutCache.clear();
    lutCache.set(key, lut);
  }
  return lut;
}
