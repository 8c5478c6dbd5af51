/**
 * A structural pre-scan of a torch.save archive's `data.pkl`, run before the native data-only reader.
 *
 * Why: pickle's memo lets one object be referenced any number of times (MEMOIZE / BINPUT, then BINGET), so a
 * 1 KB file can describe a tree whose expanded form has billions of nodes: each level a list holding the
 * previous level several times. The native reader builds the shared objects once, but flattening them into
 * named tensors walks every path, which is exponential in the depth. This scan mirrors the reader's opcodes
 * on shapes only (containers, tensors as leaves, no data), counts the entries the flattening would visit with
 * a memo per (object, depth), so each shared object is counted once, and refuses the file when the count
 * (or the items copied while building) passes a budget. The scan is linear in the pickle's size.
 *
 * It never decides what the native reader accepts: on an opcode or layout it does not mirror it stops and
 * lets the native reader give its precise error.
 */
import { CxrError } from '../errors';

/** Most entries the flattening of a checkpoint's object tree may visit: far above any state dict (ViT-L/14: ~600 tensors). */
export const MAX_PICKLE_ENTRIES = 1_000_000;

/** Depth past which the native flattening stops (checkpoint_io.cc `flatten`). */
const FLATTEN_DEPTH = 64;

interface Node {
  /** 'd' dict (items: key, value, ...), 'l' list, 't' tuple, 'T' tensor, 's' string, 'g' global, 'i' int, 'o' other scalar. */
  k: 'd' | 'l' | 't' | 'T' | 's' | 'g' | 'i' | 'o';
  items?: Node[];
  s?: string;
  /** Visits of the flattening from this node, by depth (memo). */
  memo?: Map<number, number>;
}

class Stop extends Error {}

/** What {@link scanPickle} found. */
export interface PickleScan {
  /** Entries the flattening visits (capped just past the budget), or null when the scan stopped early. */
  entries: number | null;
}

/**
 * Scans `data.pkl` bytes. Throws E_CHECKPOINT when the object tree expands past `limit` entries (or building
 * it copies more than `limit` items); otherwise returns the count.
 */
export function scanPickle(buf: Uint8Array, file: string, limit = MAX_PICKLE_ENTRIES): PickleScan {
  const refuse = (what: string): never => {
    throw new CxrError(
      'E_CHECKPOINT',
      `${file}: data.pkl ${what} (more than ${limit}); its objects share references many levels deep (a crafted file?), refused before reading`,
      { path: file, limit },
    );
  };
  let p = 0;
  const n = buf.length;
  const stack: Node[] = [];
  const marks: number[] = [];
  const memo: Node[] = [];
  let copied = 0;
  const need = (k: number) => {
    if (p + k > n) throw new Stop();
  };
  const u8 = () => {
    need(1);
    return buf[p++];
  };
  const u16 = () => {
    need(2);
    const v = buf[p] | (buf[p + 1] << 8);
    p += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16)) + buf[p + 3] * 0x1000000;
    p += 4;
    return v;
  };
  const u64 = () => {
    const lo = u32();
    const hi = u32();
    if (hi > 0x1fffff) throw new Stop();
    return hi * 2 ** 32 + lo;
  };
  const str = (len: number): string => {
    need(len);
    const s = Buffer.from(buf.buffer, buf.byteOffset + p, len).toString('utf8');
    p += len;
    return s;
  };
  const skip = (len: number) => {
    need(len);
    p += len;
  };
  const line = (): string => {
    let q = p;
    while (q < n && buf[q] !== 0x0a) q++;
    if (q >= n) throw new Stop();
    const s = Buffer.from(buf.buffer, buf.byteOffset + p, q - p).toString('utf8');
    p = q + 1;
    return s;
  };
  const push = (v: Node) => stack.push(v);
  const pop = (): Node => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw new Stop();
    return stack.pop()!;
  };
  const top = (): Node => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw new Stop();
    return stack[stack.length - 1];
  };
  const popMark = (): Node[] => {
    const m = marks.pop();
    if (m === undefined || m > stack.length) throw new Stop();
    return stack.splice(m);
  };
  const addItems = (into: Node, kind: 'd' | 'l', items: Node[]) => {
    if (into.k !== kind || (kind === 'd' && items.length % 2)) throw new Stop();
    copied += items.length;
    if (copied > limit) refuse('builds more items than a checkpoint holds');
    for (const it of items) into.items!.push(it);
  };
  const memoPut = (id: number) => {
    if (id > memo.length + 1024) throw new Stop();
    memo[id] = top();
  };
  const memoGet = (id: number): Node => {
    const v = memo[id];
    if (!v) throw new Stop();
    return v;
  };
  const scalar = (k: Node['k'] = 'o'): Node => ({ k });

  try {
    for (;;) {
      const op = u8();
      if (op === 0x2e) break; // STOP
      switch (op) {
        case 0x80: skip(1); break; // PROTO
        case 0x95: skip(8); break; // FRAME
        case 0x28: marks.push(stack.length); break; // MARK
        case 0x7d: push({ k: 'd', items: [] }); break; // EMPTY_DICT
        case 0x5d: push({ k: 'l', items: [] }); break; // EMPTY_LIST
        case 0x29: push({ k: 't', items: [] }); break; // EMPTY_TUPLE
        case 0x4e: case 0x88: case 0x89: push(scalar()); break; // NONE, NEWTRUE, NEWFALSE
        case 0x4b: skip(1); push(scalar('i')); break; // BININT1
        case 0x4d: skip(2); push(scalar('i')); break; // BININT2
        case 0x4a: skip(4); push(scalar('i')); break; // BININT
        case 0x8a: skip(u8()); push(scalar('i')); break; // LONG1
        case 0x47: skip(8); push(scalar()); break; // BINFLOAT
        case 0x58: push({ k: 's', s: str(u32()) }); break; // BINUNICODE
        case 0x8c: push({ k: 's', s: str(u8()) }); break; // SHORT_BINUNICODE
        case 0x8d: push({ k: 's', s: str(u64()) }); break; // BINUNICODE8
        case 0x43: skip(u8()); push(scalar()); break; // SHORT_BINBYTES
        case 0x42: skip(u32()); push(scalar()); break; // BINBYTES
        case 0x71: memoPut(u8()); break; // BINPUT
        case 0x72: memoPut(u32()); break; // LONG_BINPUT
        case 0x94: memoPut(memo.length); break; // MEMOIZE
        case 0x68: push(memoGet(u8())); break; // BINGET
        case 0x6a: push(memoGet(u32())); break; // LONG_BINGET
        case 0x74: push({ k: 't', items: popMark() }); break; // TUPLE
        case 0x85: push({ k: 't', items: [pop()] }); break; // TUPLE1
        case 0x86: { const b = pop(); const a = pop(); push({ k: 't', items: [a, b] }); break; } // TUPLE2
        case 0x87: { const c = pop(); const b = pop(); const a = pop(); push({ k: 't', items: [a, b, c] }); break; } // TUPLE3
        case 0x6c: push({ k: 'l', items: popMark() }); break; // LIST
        case 0x64: { const d: Node = { k: 'd', items: [] }; addItems(d, 'd', popMark()); push(d); break; } // DICT
        case 0x73: { const v = pop(); const k = pop(); addItems(top(), 'd', [k, v]); break; } // SETITEM
        case 0x75: { const items = popMark(); addItems(top(), 'd', items); break; } // SETITEMS
        case 0x61: { const v = pop(); addItems(top(), 'l', [v]); break; } // APPEND
        case 0x65: { const items = popMark(); addItems(top(), 'l', items); break; } // APPENDS
        case 0x30: pop(); break; // POP
        case 0x31: popMark(); break; // POP_MARK
        case 0x63: { const mod = line(); const name = line(); push({ k: 'g', s: `${mod}.${name}` }); break; } // GLOBAL
        case 0x93: { const name = pop(); const mod = pop(); push({ k: 'g', s: `${mod.s}.${name.s}` }); break; } // STACK_GLOBAL
        case 0x52: { // REDUCE
          const args = pop();
          const fn = pop();
          const a = args.items ?? [];
          if (fn.s === 'collections.OrderedDict') {
            const d: Node = { k: 'd', items: [] };
            const pairs = a[0]?.items ?? [];
            const kv: Node[] = [];
            for (const pair of pairs) kv.push(pair.items?.[0] ?? scalar(), pair.items?.[1] ?? scalar());
            addItems(d, 'd', kv);
            push(d);
          } else if (fn.s === 'torch._utils._rebuild_parameter' || fn.s === 'torch._utils._rebuild_parameter_with_state') push(a[0] ?? scalar('T'));
          else push(scalar('T')); // a tensor record (anything else the native reader refuses)
          break;
        }
        case 0x81: pop(); pop(); push({ k: 'd', items: [] }); break; // NEWOBJ (OrderedDict())
        case 0x62: pop(); top(); break; // BUILD
        case 0x51: pop(); push(scalar('T')); break; // BINPERSID: a storage
        default:
          throw new Stop();
      }
    }
  } catch (e) {
    if (e instanceof Stop) return { entries: null };
    throw e;
  }
  if (stack.length !== 1) return { entries: null };

  // Visits of the native flattening, memoised per (node, depth): each shared node is counted once per depth.
  const visits = (v: Node, depth: number): number => {
    if (depth > FLATTEN_DEPTH || !v.items || (v.k !== 'd' && v.k !== 'l' && v.k !== 't')) return 1;
    const known = v.memo?.get(depth);
    if (known !== undefined) return known;
    let c = 1;
    const items = v.items;
    if (v.k === 'd') {
      for (let i = 0; i + 1 < items.length; i += 2) {
        const key = items[i];
        if ((key.k === 's' && key.s) || key.k === 'i') c += visits(items[i + 1], depth + 1);
        if (c > limit) break;
      }
    } else {
      for (const it of items) {
        c += visits(it, depth + 1);
        if (c > limit) break;
      }
    }
    c = Math.min(c, limit + 1);
    (v.memo ??= new Map()).set(depth, c);
    return c;
  };
  const entries = visits(stack[0], 0);
  if (entries > limit) refuse('expands to more entries than a checkpoint holds');
  return { entries };
}
