import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CxrError, isCxrError } from '../../lib/errors';
import {
  encodeSafetensors,
  float32ToBFloat16,
  float32ToFloat16,
  readSafetensors,
  readSafetensorsHeader,
  SAFETENSORS_DTYPE_BYTES,
  SafetensorsDtype,
  SafetensorsInput,
  toFloat32,
  writeSafetensors,
} from '../../lib/util/safetensors';
import { expectCode } from '../helpers/errors';
import { mulberry32 as rng } from '../../lib/util/rng';

/** Bytes of a file built by hand per the format: u64 LE header length, header JSON, data. */
function handMade(header: string | object | Uint8Array, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const h = header instanceof Uint8Array ? Buffer.from(header) : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(lengthOverride ?? BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-st-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('writer output equals the format reference bytes', () => {
    // The bytes the safetensors project's own serialisation test expects for {"test": I32 zeros
    // [2,2]}: length 64 ('@'), the 60-byte JSON header padded with 4 spaces, then 16 zero bytes.
    const json = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    expect(json.length).toBe(60);
    const expected = [64, 0, 0, 0, 0, 0, 0, 0, ...Array.from(json, (c) => c.charCodeAt(0)), 32, 32, 32, 32, ...Array(16).fill(0)];
    const bytes = encodeSafetensors({ test: { dtype: 'I32', shape: [2, 2], data: new Int32Array(4) } });
    expect(Array.from(bytes)).toEqual(expected);
    const back = readSafetensors(Uint8Array.from(expected));
    expect(back.tensors.get('test')).toEqual({ dtype: 'I32', shape: [2, 2], data: new Uint8Array(16) });
  });

  test('reads a hand-made file with metadata and several dtypes', () => {
    const data = new Uint8Array(4 + 2 + 1);
    new DataView(data.buffer).setFloat32(0, 1.5, true);
    new DataView(data.buffer).setUint16(4, 0x3c00, true); // half 1.0
    data[6] = 1;
    const buf = handMade(
      {
        __metadata__: { format: 'pt', note: 'ü' },
        'a.weight': { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        'b.half': { dtype: 'F16', shape: [], data_offsets: [4, 6] },
        flag: { dtype: 'BOOL', shape: [1, 1], data_offsets: [6, 7] },
      },
      data,
    );
    const f = readSafetensors(buf);
    expect(f.metadata).toEqual({ format: 'pt', note: 'ü' });
    expect([...f.tensors.keys()]).toEqual(['a.weight', 'b.half', 'flag']);
    expect(Array.from(toFloat32(f.tensors.get('a.weight')!))).toEqual([1.5]);
    expect(Array.from(toFloat32(f.tensors.get('b.half')!))).toEqual([1]);
    expect(f.tensors.get('b.half')!.shape).toEqual([]);
    expect(Array.from(toFloat32(f.tensors.get('flag')!))).toEqual([1]);
    // Views, not copies.
    expect(f.tensors.get('flag')!.data.buffer).toBe(buf.buffer);
  });

  test('round trip through a file: every dtype, scalars, empty tensors, alignment, metadata', () => {
    const r = rng(1);
    const tensors: Record<string, SafetensorsInput> = {
      'visual.proj': { dtype: 'F32', shape: [3, 5], data: Float32Array.from({ length: 15 }, () => r() - 0.5) },
      f64: { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
      half: { dtype: 'F16', shape: [4], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001]) },
      bf: { dtype: 'BF16', shape: [2], data: Uint16Array.from([0x3f80, 0xc040]) },
      ids: { dtype: 'I64', shape: [1, 3], data: BigInt64Array.from([1n, -2n, 2n ** 40n]) },
      i32: { dtype: 'I32', shape: [2], data: Int32Array.from([-7, 7]) },
      i16: { dtype: 'I16', shape: [1], data: Int16Array.from([-300]) },
      i8: { dtype: 'I8', shape: [3], data: Int8Array.from([-1, 0, 1]) },
      u8: { dtype: 'U8', shape: [1], data: Uint8Array.from([255]) },
      mask: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([0, 1]) },
      scale: { dtype: 'F32', shape: [], data: Float32Array.from([4.6052]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    };
    const file = path.join(dir, 'model.safetensors');
    writeSafetensors(file, tensors, { format: 'cxr-train', config: '{"a":1}' });
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ format: 'cxr-train', config: '{"a":1}' });
    expect(new Set(back.tensors.keys())).toEqual(new Set(Object.keys(tensors)));
    for (const [name, t] of Object.entries(tensors)) {
      const e = back.tensors.get(name)!;
      expect(e.dtype).toBe(t.dtype);
      expect(e.shape).toEqual(t.shape);
      expect(Buffer.from(e.data)).toEqual(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    expect(Array.from(toFloat32(back.tensors.get('half')!))).toEqual([1, -2, 65504, 2 ** -24]);
    expect(Array.from(toFloat32(back.tensors.get('bf')!))).toEqual([1, -3]);
    expect(Array.from(toFloat32(back.tensors.get('ids')!))).toEqual([1, -2, 2 ** 40]);
    expect(Array.from(toFloat32(back.tensors.get('f64')!))).toEqual([Math.fround(Math.PI), -Infinity]);
    expect(toFloat32(back.tensors.get('empty')!).length).toBe(0);
    const header = readSafetensorsHeader(file);
    expect(header.dataStart % 8).toBe(0);
    for (const [name, h] of header.tensors) {
      // Largest element size first keeps every tensor aligned to its element size.
      expect((header.dataStart + h.dataOffsets[0]) % SAFETENSORS_DTYPE_BYTES[h.dtype]).toBe(0);
      expect(h.shape).toEqual(tensors[name].shape);
    }
    expect(header.dataStart + header.dataLength).toBe(fs.statSync(file).size);
    // Overwrite in place (atomic rename over the existing file).
    writeSafetensors(file, { only: { dtype: 'U8', shape: [1], data: Uint8Array.from([9]) } });
    expect([...readSafetensors(file).tensors.keys()]).toEqual(['only']);
  });

  test('half and bfloat16 conversion', () => {
    // Every finite half survives float32 and back bit-exactly.
    const all = new Uint16Array(65536).map((_, i) => i);
    const up = toFloat32({ dtype: 'F16', shape: [65536], data: new Uint8Array(all.buffer) });
    const down = float32ToFloat16(up);
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(up[i])).toBe(true);
      else if (down[i] !== i) throw new Error(`half 0x${i.toString(16)} -> ${up[i]} -> 0x${down[i].toString(16)}`);
    }
    // Round to nearest even, overflow, underflow.
    expect(Array.from(float32ToFloat16(Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 1e-9, -0, 2 ** -25 * 1.5])))).toEqual([0x3c00, 0x3c02, 0x7c00, 0, 0x8000, 0x0001]);
    expect(Array.from(float32ToBFloat16(Float32Array.from([1, -3, 1 + 2 ** -8, 1 + 3 * 2 ** -8])))).toEqual([0x3f80, 0xc040, 0x3f80, 0x3f82]);
    // A Float32Array is accepted for F16/BF16 and converted.
    const bytes = encodeSafetensors({ h: { dtype: 'F16', shape: [2], data: Float32Array.from([0.5, -2]) }, b: { dtype: 'BF16', shape: [1], data: Float32Array.from([1]) } });
    const f = readSafetensors(bytes);
    expect(Array.from(toFloat32(f.tensors.get('h')!))).toEqual([0.5, -2]);
    expect(Array.from(toFloat32(f.tensors.get('b')!))).toEqual([1]);
  });

  test('writer rejects mismatched data', () => {
    expectCode(() => encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: Int32Array.from([1, 2]) } }), 'E_DTYPE');
    expectCode(() => encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.from([1, 2]) } }), 'E_SHAPE');
    expectCode(() => encodeSafetensors({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }), 'E_SHAPE');
    expectCode(() => encodeSafetensors({ w: { dtype: 'F8' as SafetensorsDtype, shape: [1], data: new Uint8Array(1) } }), 'E_DTYPE');
    expectCode(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'E_CONFIG');
    expectCode(() => writeSafetensors(path.join(dir, 'no/such/dir/x.safetensors'), { w: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'E_IO');
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  describe('bad files are E_CHECKPOINT errors that name the tensor', () => {
    const t = (extra: object = {}) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...extra });
    const d8 = new Uint8Array(8);
    const cases: Array<[string, () => Uint8Array, string | null]> = [
      ['empty file', () => new Uint8Array(0), null],
      ['shorter than the length prefix', () => new Uint8Array(5), null],
      ['header length past the end', () => handMade(t(), d8, 10_000n), null],
      ['header length over 100 MB', () => handMade(t(), d8, 200_000_000n), null],
      ['header length near 2^64', () => handMade(t(), d8, 2n ** 64n - 1n), null],
      ['header not UTF-8', () => handMade(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), d8), null],
      ['header not JSON', () => handMade('{"w": ', d8), null],
      ['header a JSON array', () => handMade('[1,2]', d8), null],
      ['header JSON null', () => handMade('null', d8), null],
      ['metadata not an object', () => handMade(t({ __metadata__: ['x'] }), d8), null],
      ['metadata value not a string', () => handMade(t({ __metadata__: { epoch: 3 } }), d8), 'epoch'],
      ['entry not an object', () => handMade({ w: 5 }, d8), 'w'],
      ['unknown dtype', () => handMade({ w: { dtype: 'F8_E4M3', shape: [8], data_offsets: [0, 8] } }, d8), 'w'],
      ['missing dtype', () => handMade({ w: { shape: [2], data_offsets: [0, 8] } }, d8), 'w'],
      ['shape not an array', () => handMade({ w: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, d8), 'w'],
      ['negative dimension', () => handMade({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d8), 'w'],
      ['fractional dimension', () => handMade({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, d8), 'w'],
      ['string dimension', () => handMade({ w: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, d8), 'w'],
      ['huge dimensions', () => handMade({ w: { dtype: 'F32', shape: [2 ** 52, 2 ** 52, 2 ** 52], data_offsets: [0, 8] } }, d8), 'w'],
      ['missing data_offsets', () => handMade({ w: { dtype: 'F32', shape: [2] } }, d8), 'w'],
      ['three offsets', () => handMade({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4, 8] } }, d8), 'w'],
      ['negative offset', () => handMade({ w: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, d8), 'w'],
      ['begin after end', () => handMade({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, d8), 'w'],
      ['end past the buffer', () => handMade({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d8), 'w'],
      ['byte length not shape x size', () => handMade({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8), 'w'],
      ['wrong dtype for the size', () => handMade({ w: { dtype: 'F64', shape: [2], data_offsets: [0, 8] } }, d8), 'w'],
      [
        'overlapping tensors',
        () => handMade({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)),
        'b',
      ],
      ['gap before the first tensor', () => handMade({ late: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d8), 'late'],
      ['gap between tensors', () => handMade({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, b: { dtype: 'U8', shape: [1], data_offsets: [2, 3] } }, new Uint8Array(3)), 'b'],
      ['trailing bytes after the last tensor', () => handMade(t(), new Uint8Array(9)), null],
      ['no tensors but data', () => handMade({}, d8), null],
    ];
    test.each(cases)('%s', (name, make, key) => {
      const e = expectCode(() => readSafetensors(make()), 'E_CHECKPOINT');
      if (name === 'header not UTF-8') expect(e.message).toContain('UTF-8');
      if (key !== null) expect(e.message).toContain(`'${key}'`);
    });

    test('the same checks apply to the header-only reader, and paths', () => {
      const f = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(f, handMade({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8));
      expect(expectCode(() => readSafetensorsHeader(f), 'E_CHECKPOINT').message).toContain("'w'");
      expectCode(() => readSafetensors(f), 'E_CHECKPOINT');
      fs.writeFileSync(f, new Uint8Array(3));
      expectCode(() => readSafetensorsHeader(f), 'E_CHECKPOINT');
      expectCode(() => readSafetensors(path.join(dir, 'missing.safetensors')), 'E_IO');
      expectCode(() => readSafetensorsHeader(path.join(dir, 'missing.safetensors')), 'E_IO');
    });

    test('header padding with spaces and an empty file body are valid', () => {
      expect(readSafetensors(handMade('{}      ')).tensors.size).toBe(0);
      expect(readSafetensors(handMade('{"__metadata__":{}}')).metadata).toEqual({});
      const z = readSafetensors(handMade({ z: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } }));
      expect(z.tensors.get('z')!.data.length).toBe(0);
    });
  });

  test('random mutations: every result is a valid parse or E_CHECKPOINT, nothing else', () => {
    const r = rng(20240601);
    const base = encodeSafetensors(
      {
        'visual.conv1.weight': { dtype: 'F16', shape: [4, 3, 2, 2], data: new Uint16Array(48).map((_, i) => 0x3c00 + i) },
        'text.proj': { dtype: 'F32', shape: [5, 3], data: new Float32Array(15).map((_, i) => i / 7) },
        positions: { dtype: 'I64', shape: [5], data: BigInt64Array.from([0n, 1n, 2n, 3n, 4n]) },
        logit_scale: { dtype: 'F32', shape: [], data: Float32Array.from([4.6]) },
        empty: { dtype: 'BF16', shape: [0], data: new Uint16Array(0) },
      },
      { format: 'pt' },
    );
    const headerLen = Number(Buffer.from(base).readBigUInt64LE(0));
    const digitsAt: number[] = [];
    for (let i = 8; i < 8 + headerLen; i++) if (base[i] >= 0x30 && base[i] <= 0x39) digitsAt.push(i);
    const int = (n: number) => Math.floor(r() * n);
    let parsed = 0;
    let rejected = 0;
    const started = Date.now();
    for (let iter = 0; iter < 4000; iter++) {
      let buf: Uint8Array = Uint8Array.from(base);
      const kind = iter % 8;
      if (kind === 0) {
        for (let k = 1 + int(4); k > 0; k--) buf[int(buf.length)] = int(256);
      } else if (kind === 1) {
        for (let k = 1 + int(3); k > 0; k--) buf[8 + int(headerLen)] = int(256);
      } else if (kind === 2) {
        buf = buf.subarray(0, int(buf.length));
      } else if (kind === 3) {
        const extra = new Uint8Array(1 + int(16)).map(() => int(256));
        buf = Buffer.concat([buf, extra]);
      } else if (kind === 4) {
        const v = r() < 0.5 ? BigInt(int(headerLen * 2 + 16)) : BigInt(int(2 ** 31)) * BigInt(int(2 ** 31));
        Buffer.from(buf.buffer, buf.byteOffset, buf.length).writeBigUInt64LE(v, 0);
      } else if (kind === 5) {
        // Change a number in the header: a shape, an offset, or the header's own padding.
        const at = digitsAt[int(digitsAt.length)];
        buf[at] = r() < 0.8 ? 0x30 + int(10) : '-.e'.charCodeAt(int(3));
      } else if (kind === 6) {
        // Delete or insert a header byte and fix the length prefix so the JSON is what gets tested.
        const at = 8 + int(headerLen);
        const s = Buffer.from(buf);
        const body = r() < 0.5 ? Buffer.concat([s.subarray(8, at), s.subarray(at + 1, 8 + headerLen)]) : Buffer.concat([s.subarray(8, at), Buffer.from([int(128)]), s.subarray(at, 8 + headerLen)]);
        const out = Buffer.concat([Buffer.alloc(8), body, s.subarray(8 + headerLen)]);
        out.writeBigUInt64LE(BigInt(body.length), 0);
        buf = out;
      } else {
        // Several mutations at once.
        for (let k = 0; k < 3; k++) {
          const at = digitsAt[int(digitsAt.length)];
          buf[at] = 0x30 + int(10);
        }
        if (r() < 0.5) buf = buf.subarray(0, buf.length - int(8));
      }
      try {
        const f = readSafetensors(buf);
        parsed++;
        // A successful parse must describe views inside the buffer that tile its data exactly.
        let total = 0;
        for (const [, e] of f.tensors) {
          expect(e.data.buffer).toBe(buf.buffer);
          expect(e.data.byteOffset + e.data.byteLength).toBeLessThanOrEqual(buf.byteOffset + buf.length);
          expect(e.data.byteLength).toBe(e.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[e.dtype]);
          total += e.data.byteLength;
          toFloat32(e);
        }
        const n = Number(Buffer.from(buf.buffer, buf.byteOffset, 8).readBigUInt64LE(0));
        expect(total).toBe(buf.length - 8 - n);
      } catch (e) {
        if (!isCxrError(e, 'E_CHECKPOINT')) throw new Error(`mutation ${iter} (kind ${kind}) threw ${String(e)}`);
        rejected++;
      }
    }
    expect(parsed + rejected).toBe(4000);
    expect(rejected).toBeGreaterThan(1000);
    expect(parsed).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
