import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';

let counter = 0;

/** Names of the writer's temp files: `.<name>.<pid>.<n>.tmp` (pid and counter of the writing process). */
export const ATOMIC_TEMP_PATTERN = /^\..+\.(\d+)\.\d+\.tmp$/;

function tempName(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files the atomic writer left in `dir` when its process died mid-write (a kill, a crash):
 * only names of {@link ATOMIC_TEMP_PATTERN} whose writer process is gone. Returns the removed paths.
 * A missing folder is not an error.
 */
export function removeStaleAtomicTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const f of names) {
    const m = ATOMIC_TEMP_PATTERN.exec(f);
    if (!m || alive(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(dir, f), { force: true });
      removed.push(path.join(dir, f));
    } catch {
      /* best effort: a leftover is harmless to readers */
    }
  }
  return removed;
}

/**
 * Writes `data` to `file` so that readers see either the old content or the complete new content, never a
 * partial file, even if the process dies mid-write: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. The temp file is removed on failure.
 *
 * @param file destination path (its directory must exist)
 * @param data UTF-8 text, bytes, or a list (or any iterable) of byte chunks written in order; an iterable
 *   that throws aborts the write and leaves neither the temp file nor a changed target
 * @throws CxrError E_IO when any step fails
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[] | Iterable<Uint8Array>): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = tempName(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const c of chunks) writeAll(fd, c);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* may not exist */
    }
    throw new CxrError('E_IO', `cannot write ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  fsyncDir(dir);
}

/** Async variant of {@link writeFileAtomic} with the same guarantees. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = tempName(file);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'w');
    await fh.writeFile(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw new CxrError('E_IO', `cannot write ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  fsyncDir(dir);
}

/** Fsyncs a folder so that a rename in it is durable (best effort: some file systems refuse). */
export function fsyncDir(dir: string): void {
  // Directory fsync makes the rename durable; some file systems refuse it, which is not worth failing for.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** writeSync may write less than asked (large buffers): loop until every byte is out. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, Math.min(bytes.byteLength - off, 1 << 30));
}
