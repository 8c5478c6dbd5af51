import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';

let counter = 0;

/**
 * Writes `data` to `file` so that readers see either the old content or the complete new content, never a
 * partial file, even if the process dies mid-write: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. The temp file is removed on failure.
 *
 * @param file destination path (its directory must exist)
 * @param data UTF-8 text, bytes, or a list of byte chunks written in order
 * @throws CxrError E_IO when any step fails
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
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
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
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
