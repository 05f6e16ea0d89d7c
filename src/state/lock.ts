// One process at a time on a state folder: the sidecar for its whole life, `wgctl --direct` (or a
// wgctl that falls back to working directly) for one command. Two writers on one folder would
// race on records, keys and VNIs, and each would take the other's devices for strays.
//
// The lock is a file, <state>/lock, holding the holder's pid, the start time of that pid (from
// /proc/<pid>/stat, so a reused pid is not mistaken for the holder), its command and since when.
// It is created whole and at once (link of a finished temp file: no reader ever sees half of it).
// A lock whose process is gone, a zombie, or another process with the same pid is stale and is
// taken over. Without native addons there is no flock(2); the one race left (two processes taking
// over the same stale lock at the same moment) is narrowed by moving the stale file aside and
// checking that it is the one judged stale. Processes sharing a state folder must share /proc
// (one pid namespace), as they share /run.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError } from '../errors.js';
import { isLiveProcess, processStartTime } from '../process-identity.js';

export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot. */
  startTime: string;
  command: string;
  since: string;
}

export interface AcquireOptions {
  /** What the holder is, for whoever finds the lock held: "wgctl setup", "peerpod-wg-sidecar". */
  command: string;
  /** How long to wait for a live holder. Default 0: fail at once, naming it. */
  waitMs?: number;
  pollMs?: number;
}

export const LOCK_FILE = 'lock';

function parseHolder(text: string): LockHolder | null {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || typeof v.startTime !== 'string') return null;
    return { pid: v.pid, startTime: v.startTime, command: String(v.command ?? '?'), since: String(v.since ?? '?') };
  } catch {
    return null;
  }
}

function alive(h: LockHolder): Promise<boolean> {
  return isLiveProcess(h.pid, { startTime: h.startTime });
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} (${h.command}) since ${h.since}`;
}

export class StateLock {
  private constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {}

  /** Take the lock on `stateDir`, waiting up to `waitMs` for a live holder; fail naming it. */
  static async acquire(stateDir: string, opts: AcquireOptions): Promise<StateLock> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const path = join(stateDir, LOCK_FILE);
    const startTime = await processStartTime(process.pid);
    if (startTime === null) throw new PeerpodError('ESTATE', 'cannot read our own start time from /proc', { op: 'lock' });
    const me: LockHolder = { pid: process.pid, startTime, command: opts.command, since: new Date().toISOString() };
    const deadline = Date.now() + (opts.waitMs ?? 0);
    for (;;) {
      const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, JSON.stringify(me) + '\n', { mode: 0o600 });
      try {
        await link(tmp, path);
        return new StateLock(path, me);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new PeerpodError('ESTATE', `cannot create the lock ${path}`, { op: 'lock' }, e);
        }
      } finally {
        await rm(tmp, { force: true });
      }
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text === null) continue; // released meanwhile
      const holder = parseHolder(text);
      if (holder === null || !(await alive(holder))) {
        await takeOver(path, text);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new PeerpodError(
          'ESTATE',
          `the state folder ${stateDir} is in use by ${describeHolder(holder)}` +
            (opts.waitMs ? `; waited ${opts.waitMs} ms` : '') +
            ': only one sidecar or direct wgctl may work on it at a time',
          { op: 'lock', holder: holder.pid },
        );
      }
      await sleep(opts.pollMs ?? 50);
    }
  }

  /** Give the lock up, if it is still ours. */
  async release(): Promise<void> {
    const text = await readFile(this.path, 'utf8').catch(() => null);
    if (this.#ours(text)) await rm(this.path, { force: true });
  }

  /** The same, for a process 'exit' handler (where nothing asynchronous runs any more). */
  releaseSync(): void {
    let text: string | null = null;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return;
    }
    if (this.#ours(text)) rmSync(this.path, { force: true });
  }

  #ours(text: string | null): boolean {
    const h = text === null ? null : parseHolder(text);
    return h !== null && h.pid === this.holder.pid && h.startTime === this.holder.startTime;
  }
}

/** Remove a stale lock whose text was `stale`, unless someone replaced it since. */
async function takeOver(path: string, stale: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else took it over first
  }
  const moved = await readFile(aside, 'utf8').catch(() => null);
  // We moved a fresh lock that replaced the stale one meanwhile: put it back.
  if (moved !== stale) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}
