/**
 * A tiny float rasteriser for the synthetic radiographs. Coordinates are normalised to [0, 1] (x right,
 * y down) so a phantom looks the same at any resolution; every primitive touches only its bounding box,
 * which keeps a 128 px image at well under a millisecond of drawing.
 */

/** A single-channel float image. */
export class Canvas {
  readonly data: Float32Array;
  constructor(
    readonly width: number,
    readonly height: number,
    fill = 0,
  ) {
    this.data = new Float32Array(width * height);
    if (fill !== 0) this.data.fill(fill);
  }

  /** Pixel bounds [x0, x1) × [y0, y1) of a normalised box, clipped to the image. */
  private box(cx: number, cy: number, rx: number, ry: number): [number, number, number, number] {
    const W = this.width;
    const H = this.height;
    return [
      Math.max(0, Math.floor((cx - rx) * W)),
      Math.min(W, Math.ceil((cx + rx) * W) + 1),
      Math.max(0, Math.floor((cy - ry) * H)),
      Math.min(H, Math.ceil((cy + ry) * H) + 1),
    ];
  }

  /**
   * Soft-edged filled ellipse (optionally rotated by `angle` radians). mode 'add' adds `value·alpha`,
   * 'over' blends towards `value` with alpha, 'max' keeps the larger of alpha·value and the pixel, 'mul'
   * multiplies by (1 - alpha·(1-value)).
   */
  ellipse(
    cx: number,
    cy: number,
    rx: number,
    ry: number,
    value: number,
    mode: 'add' | 'over' | 'max' | 'mul' = 'over',
    angle = 0,
    edgePx = 1,
  ): void {
    const W = this.width;
    const H = this.height;
    const r = Math.max(rx, ry);
    const [x0, x1, y0, y1] = this.box(cx, cy, r, r);
    const ca = Math.cos(angle);
    const sa = Math.sin(angle);
    // Soft edge width in normalised radius units, so anti-aliasing is ~edgePx pixels wide at any size.
    const soft = (edgePx / W) / Math.max(1e-6, Math.min(rx, ry));
    const d = this.data;
    for (let py = y0; py < y1; py++) {
      const y = (py + 0.5) / H - cy;
      for (let px = x0; px < x1; px++) {
        const x = (px + 0.5) / W - cx;
        const u = (x * ca + y * sa) / rx;
        const v = (-x * sa + y * ca) / ry;
        const rr = Math.sqrt(u * u + v * v);
        if (rr >= 1 + soft) continue;
        const a = rr <= 1 - soft ? 1 : (1 + soft - rr) / (2 * soft);
        const i = py * W + px;
        apply(d, i, value, a, mode);
      }
    }
  }

  /** Isotropic or anisotropic gaussian blob added with peak `amp` (negative darkens). */
  gaussian(cx: number, cy: number, sx: number, sy: number, amp: number, mask?: Float32Array): void {
    const W = this.width;
    const H = this.height;
    const [x0, x1, y0, y1] = this.box(cx, cy, 3 * sx, 3 * sy);
    const d = this.data;
    const ix = 1 / (2 * sx * sx);
    const iy = 1 / (2 * sy * sy);
    for (let py = y0; py < y1; py++) {
      const y = (py + 0.5) / H - cy;
      const gy = Math.exp(-y * y * iy);
      for (let px = x0; px < x1; px++) {
        const x = (px + 0.5) / W - cx;
        const i = py * W + px;
        const g = amp * gy * Math.exp(-x * x * ix);
        d[i] += mask ? g * mask[i] : g;
      }
    }
  }

  /**
   * Thick anti-aliased segment from (x0,y0) to (x1,y1); `width` is the full width in normalised units
   * (at least ~1 px is drawn so thin lines survive downsampling).
   */
  line(
    ax: number,
    ay: number,
    bx: number,
    by: number,
    width: number,
    value: number,
    mode: 'add' | 'over' | 'max' | 'mul' = 'add',
    mask?: Float32Array,
  ): void {
    const W = this.width;
    const H = this.height;
    const hw = Math.max(width / 2, 0.5 / W);
    const [x0, x1, y0, y1] = this.box((ax + bx) / 2, (ay + by) / 2, Math.abs(bx - ax) / 2 + hw + 1 / W, Math.abs(by - ay) / 2 + hw + 1 / H);
    const dx = bx - ax;
    const dy = by - ay;
    const len2 = dx * dx + dy * dy || 1e-12;
    const soft = 0.7 / W;
    const d = this.data;
    for (let py = y0; py < y1; py++) {
      const y = (py + 0.5) / H;
      for (let px = x0; px < x1; px++) {
        const x = (px + 0.5) / W;
        let t = ((x - ax) * dx + (y - ay) * dy) / len2;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = ax + t * dx - x;
        const ey = ay + t * dy - y;
        const dist = Math.sqrt(ex * ex + ey * ey);
        if (dist >= hw + soft) continue;
        let a = dist <= hw - soft ? 1 : (hw + soft - dist) / (2 * soft);
        const i = py * W + px;
        if (mask) a *= mask[i];
        apply(d, i, value, a, mode);
      }
    }
  }

  /** A polyline through `pts` (flat [x0,y0,x1,y1,...]). */
  polyline(pts: number[], width: number, value: number, mode: 'add' | 'over' | 'max' | 'mul' = 'add', mask?: Float32Array): void {
    for (let k = 0; k + 3 < pts.length; k += 2) this.line(pts[k], pts[k + 1], pts[k + 2], pts[k + 3], width, value, mode, mask);
  }

  /** Quadratic Bézier from a through control c to b, drawn as `steps` segments. */
  curve(ax: number, ay: number, cx: number, cy: number, bx: number, by: number, width: number, value: number, mode: 'add' | 'over' | 'max' | 'mul' = 'add', mask?: Float32Array, steps = 12): void {
    const pts: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const t = s / steps;
      const u = 1 - t;
      pts.push(u * u * ax + 2 * u * t * cx + t * t * bx, u * u * ay + 2 * u * t * cy + t * t * by);
    }
    this.polyline(pts, width, value, mode, mask);
  }

  /** Axis-aligned soft rectangle, blended 'over'. */
  rect(x0n: number, y0n: number, x1n: number, y1n: number, value: number): void {
    const W = this.width;
    const H = this.height;
    const x0 = Math.max(0, Math.round(x0n * W));
    const x1 = Math.min(W, Math.round(x1n * W));
    const y0 = Math.max(0, Math.round(y0n * H));
    const y1 = Math.min(H, Math.round(y1n * H));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) this.data[py * W + px] = value;
  }

  /** Separable box blur of radius r pixels (r=0 is a no-op); used to soften noise and layers. */
  boxBlur(r: number): void {
    if (r <= 0) return;
    boxBlur(this.data, this.width, this.height, r);
  }
}

function apply(d: Float32Array, i: number, value: number, a: number, mode: 'add' | 'over' | 'max' | 'mul'): void {
  switch (mode) {
    case 'add':
      d[i] += value * a;
      break;
    case 'over':
      d[i] += (value - d[i]) * a;
      break;
    case 'max': {
      const v = value * a;
      if (v > d[i]) d[i] = v;
      break;
    }
    case 'mul':
      d[i] *= 1 - a * (1 - value);
      break;
  }
}

/** In-place separable box blur with clamped edges. */
export function boxBlur(d: Float32Array, W: number, H: number, r: number): void {
  const tmp = new Float32Array(Math.max(W, H));
  const n = 2 * r + 1;
  for (let y = 0; y < H; y++) {
    const row = y * W;
    let s = 0;
    for (let k = -r; k <= r; k++) s += d[row + Math.min(W - 1, Math.max(0, k))];
    for (let x = 0; x < W; x++) {
      tmp[x] = s / n;
      s += d[row + Math.min(W - 1, x + r + 1)] - d[row + Math.max(0, x - r)];
    }
    for (let x = 0; x < W; x++) d[row + x] = tmp[x];
  }
  for (let x = 0; x < W; x++) {
    let s = 0;
    for (let k = -r; k <= r; k++) s += d[Math.min(H - 1, Math.max(0, k)) * W + x];
    for (let y = 0; y < H; y++) {
      tmp[y] = s / n;
      s += d[Math.min(H - 1, y + r + 1) * W + x] - d[Math.max(0, y - r) * W + x];
    }
    for (let y = 0; y < H; y++) d[y * W + x] = tmp[y];
  }
}
