// The "newc" cpio format (070701) that the Linux kernel unpacks as an initramfs, as pure functions:
// an entry becomes its header bytes and padding. Reading source files and writing the archive is
// image.ts's job. Headers carry fixed owners (root) and a zero mtime, so the same inputs always give
// the same bytes, which is what lets the image cache key on content.
//
// Format (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header of
// "070701" and 13 eight-digit hex fields, the NUL-terminated name, padding to 4 bytes, the data,
// padding to 4 bytes. The archive ends with an entry named "TRAILER!!!". Several archives may be
// concatenated; the kernel unpacks them in order.
import { PeerpodError } from '../../src/errors.js';

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; size: number; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const MAX_U32 = 0xffff_ffff;
export const CPIO_TRAILER = 'TRAILER!!!';

function hex8(n: number, field: string, path: string): string {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U32) {
    throw new PeerpodError('EINVAL', `cpio ${field} of ${path} out of range: ${n}`, { op: 'cpio', field });
  }
  return n.toString(16).padStart(8, '0');
}

/** Bytes of zero padding that bring `n` to a multiple of 4. */
export function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function checkPath(path: string): void {
  // Archive paths are relative to the new root; the kernel refuses nothing, so we do.
  if (path === '' || path.startsWith('/') || path.split('/').some((p) => p === '..' || p === '')) {
    throw new PeerpodError('EINVAL', `cpio path ${JSON.stringify(path)} must be relative, without empty or ".." parts`, {
      op: 'cpio',
      field: 'path',
    });
  }
}

/**
 * Header, name and name padding of one entry; `ino` must be unique within the archive. For a file,
 * the caller then writes `size` bytes of data and `pad4(size)` zero bytes; for a symlink, the data
 * (the target) is included here already.
 */
export function cpioEntryHead(entry: CpioEntry, ino: number): Buffer {
  if (entry.path !== CPIO_TRAILER) checkPath(entry.path);
  let mode: number;
  let size = 0;
  let rdevMajor = 0;
  let rdevMinor = 0;
  let data: Buffer | null = null;
  switch (entry.kind) {
    case 'dir':
      mode = S_IFDIR | (entry.mode ?? 0o755);
      break;
    case 'file':
      mode = S_IFREG | (entry.mode ?? 0o644);
      size = entry.size;
      break;
    case 'symlink':
      mode = S_IFLNK | 0o777;
      data = Buffer.from(entry.target, 'utf8');
      size = data.length;
      break;
    case 'chardev':
      mode = S_IFCHR | (entry.mode ?? 0o600);
      rdevMajor = entry.major;
      rdevMinor = entry.minor;
      break;
  }
  const name = Buffer.from(`${entry.path}\0`, 'utf8');
  const p = entry.path;
  const header =
    '070701' +
    [
      hex8(ino, 'ino', p),
      hex8(mode, 'mode', p),
      hex8(0, 'uid', p),
      hex8(0, 'gid', p),
      hex8(entry.kind === 'dir' ? 2 : 1, 'nlink', p),
      hex8(0, 'mtime', p),
      hex8(size, 'filesize', p),
      hex8(0, 'devmajor', p),
      hex8(0, 'devminor', p),
      hex8(rdevMajor, 'rdevmajor', p),
      hex8(rdevMinor, 'rdevminor', p),
      hex8(name.length, 'namesize', p),
      hex8(0, 'check', p),
    ].join('');
  const parts: Buffer[] = [Buffer.from(header, 'ascii'), name, Buffer.alloc(pad4(110 + name.length))];
  if (data !== null) parts.push(data, Buffer.alloc(pad4(data.length)));
  return Buffer.concat(parts);
}

/** The closing entry of an archive. */
export function cpioTrailer(): Buffer {
  return cpioEntryHead({ kind: 'file', path: CPIO_TRAILER, size: 0, mode: 0 }, 0);
}

/** Every parent folder of `paths`, parents first, so an archive can list them before their content. */
export function parentDirs(paths: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}
