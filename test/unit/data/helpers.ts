/** Test helpers: tiny DICOM and PNG writers so fixtures are built by the tests, not shipped. */
import zlib from 'node:zlib';

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

type El = { group: number; element: number; vr: string; value: Buffer; undefinedLength?: boolean };

function pad(b: Buffer, vr: string): Buffer {
  if (b.length % 2 === 0) return b;
  return Buffer.concat([b, Buffer.from([vr === 'UI' || vr === 'OB' || vr === 'OW' ? 0 : 0x20])]);
}

function encodeExplicit(e: El): Buffer {
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(e.vr);
  const v = e.undefinedLength ? e.value : pad(e.value, e.vr);
  const len = e.undefinedLength ? 0xffffffff : v.length;
  const head = long ? Buffer.concat([u16(e.group), u16(e.element), Buffer.from(e.vr, 'ascii'), Buffer.alloc(2), u32(len)]) : Buffer.concat([u16(e.group), u16(e.element), Buffer.from(e.vr, 'ascii'), u16(len)]);
  return Buffer.concat([head, v]);
}

function encodeImplicit(e: El): Buffer {
  const v = e.undefinedLength ? e.value : pad(e.value, e.vr);
  return Buffer.concat([u16(e.group), u16(e.element), u32(e.undefinedLength ? 0xffffffff : v.length), v]);
}

/** Options of {@link makeDicom}. */
export interface DicomSpec {
  rows: number;
  cols: number;
  /** Pixel values (stored values, before rescale). */
  pixels: number[] | Uint8Array | Uint16Array;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  signed?: boolean;
  photometric?: 'MONOCHROME1' | 'MONOCHROME2';
  slope?: number;
  intercept?: number;
  windowCenter?: number;
  windowWidth?: number;
  transferSyntax?: string;
  /** Encapsulated frame bytes (JPEG or RLE) instead of native pixels. */
  encapsulated?: Buffer;
  /** Cut the file to this many bytes. */
  truncateTo?: number;
}

/** Writes a DICOM Part 10 file in memory. */
export function makeDicom(s: DicomSpec): Buffer {
  const ts = s.transferSyntax ?? '1.2.840.10008.1.2.1';
  const str = (g: number, e: number, vr: string, v: string): El => ({ group: g, element: e, vr, value: Buffer.from(v, 'ascii') });
  const us = (g: number, e: number, v: number): El => ({ group: g, element: e, vr: 'US', value: u16(v) });
  const metaBody = Buffer.concat([encodeExplicit({ group: 2, element: 1, vr: 'OB', value: Buffer.from([0, 1]) }), encodeExplicit(str(2, 2, 'UI', '1.2.840.10008.5.1.4.1.1.1.1')), encodeExplicit(str(2, 3, 'UI', '1.2.3.4.5')), encodeExplicit(str(2, 0x10, 'UI', ts))]);
  const meta = Buffer.concat([encodeExplicit({ group: 2, element: 0, vr: 'UL', value: u32(metaBody.length) }), metaBody]);
  const bits = s.bitsAllocated ?? 16;
  const els: El[] = [
    str(8, 0x60, 'CS', 'DX'),
    us(0x28, 2, 1),
    str(0x28, 4, 'CS', s.photometric ?? 'MONOCHROME2'),
    us(0x28, 0x10, s.rows),
    us(0x28, 0x11, s.cols),
    us(0x28, 0x100, bits),
    us(0x28, 0x101, s.bitsStored ?? bits),
    us(0x28, 0x102, (s.bitsStored ?? bits) - 1),
    us(0x28, 0x103, s.signed ? 1 : 0),
  ];
  if (s.windowCenter !== undefined) els.push(str(0x28, 0x1050, 'DS', String(s.windowCenter)));
  if (s.windowWidth !== undefined) els.push(str(0x28, 0x1051, 'DS', String(s.windowWidth)));
  if (s.intercept !== undefined) els.push(str(0x28, 0x1052, 'DS', String(s.intercept)));
  if (s.slope !== undefined) els.push(str(0x28, 0x1053, 'DS', String(s.slope)));
  if (s.encapsulated) {
    const frag = pad(s.encapsulated, 'OB');
    const items = Buffer.concat([u16(0xfffe), u16(0xe000), u32(0), u16(0xfffe), u16(0xe000), u32(frag.length), frag, u16(0xfffe), u16(0xe0dd), u32(0)]);
    els.push({ group: 0x7fe0, element: 0x10, vr: 'OB', value: items, undefinedLength: true });
  } else {
    const n = s.rows * s.cols;
    const px = Buffer.alloc(n * (bits / 8));
    for (let i = 0; i < n; i++) {
      const v = s.pixels[i];
      if (bits === 8) px[i] = v & 0xff;
      else px.writeUInt16LE(v & 0xffff, 2 * i);
    }
    els.push({ group: 0x7fe0, element: 0x10, vr: bits === 8 ? 'OB' : 'OW', value: px });
  }
  const enc = ts === '1.2.840.10008.1.2' ? encodeImplicit : encodeExplicit;
  const body = Buffer.concat(els.map(enc));
  const out = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'ascii'), meta, body]);
  return s.truncateTo !== undefined ? out.subarray(0, s.truncateTo) : out;
}

/** RLE Lossless frame of 8-bit pixels using literal runs only (valid PackBits). */
export function rleFrame8(pixels: Uint8Array): Buffer {
  const seg: number[] = [];
  for (let i = 0; i < pixels.length; i += 128) {
    const chunk = pixels.subarray(i, i + 128);
    seg.push(chunk.length - 1, ...chunk);
  }
  const header = Buffer.alloc(64);
  header.writeUInt32LE(1, 0);
  header.writeUInt32LE(64, 4);
  return Buffer.concat([header, Buffer.from(seg)]);
}

function chunk(type: string, data: Buffer): Buffer {
  const t = Buffer.from(type, 'ascii');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE((zlib as unknown as { crc32(b: Buffer): number }).crc32(Buffer.concat([t, data])) >>> 0);
  return Buffer.concat([len, t, data, crc]);
}

/** A grayscale PNG (8 or 16 bit) from row-major values. `fakeSize` writes a header claiming another size. */
export function makePng(width: number, height: number, values: ArrayLike<number>, depth: 8 | 16, fakeSize?: [number, number]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(fakeSize ? fakeSize[0] : width, 0);
  ihdr.writeUInt32BE(fakeSize ? fakeSize[1] : height, 4);
  ihdr[8] = depth;
  ihdr[9] = 0; // grayscale
  const bpp = depth / 8;
  const raw = Buffer.alloc(height * (1 + width * bpp));
  for (let y = 0; y < height; y++) {
    const o = y * (1 + width * bpp);
    raw[o] = 0;
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x];
      if (depth === 8) raw[o + 1 + x] = v;
      else raw.writeUInt16BE(v, o + 1 + 2 * x);
    }
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
