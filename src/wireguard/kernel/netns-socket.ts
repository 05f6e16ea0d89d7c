// The setns window: run one synchronous function with this process's main thread inside another
// network namespace, and come back. A socket made inside the window (netlink's createNetlink makes
// its socket synchronously in its constructor) belongs to that netns for good, while the process,
// its event loop and every other thread stay where they are. This is how the kernel backend reaches
// a WireGuard device after it moved into a pod netns: generic netlink resolves a device name in the
// netns of the socket (DESIGN.md §7, docs/podvm.md "Reaching a moved device").
//
// libc's setns(2) is called through koffi (MIT, prebuilt), loaded on the first window only, so
// processes that never reach into a pod netns never load it. The traps, and how they are avoided:
//   - libuv's thread pool starts lazily: a pool thread born during a window would live in the pod
//     netns for good. The pool is warmed (one async fs call) before the first window.
//   - only synchronous work happens inside the window: `fn` must not await.
//   - setns affects the calling thread only; the main thread goes back before the window returns.
//     If going back fails the process is in an unknown netns, and it exits (code 70) so that its
//     supervisor starts it afresh rather than let it act on the wrong namespace.
// Which sockets to open, and caching them, is the caller's job (./backend.ts).
import { closeSync, openSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PeerpodError } from '../../errors.js';

const CLONE_NEWNET = 0x40000000;

type SetnsFn = (fd: number, nstype: number) => number;

let setnsFn: Promise<SetnsFn> | null = null;

/** koffi's setns, loaded once; the thread pool is warmed on the way. */
function loadSetns(): Promise<SetnsFn> {
  setnsFn ??= (async () => {
    // Warm libuv's pool before any window: its threads must be born in our own netns.
    await stat('/');
    let mod: unknown;
    try {
      mod = await import('koffi');
    } catch (e) {
      throw new PeerpodError('EBACKEND', 'cannot load koffi (needed to open a socket inside a pod netns)', { op: 'setns' }, e);
    }
    const koffi = ((mod as { default?: unknown }).default ?? mod) as {
      load(lib: string): { func(sig: string): (...args: unknown[]) => unknown };
    };
    const libc = koffi.load('libc.so.6');
    const fn = libc.func('int setns(int fd, int nstype)');
    return (fd: number, nstype: number) => fn(fd, nstype) as number;
  })();
  setnsFn.catch(() => {
    setnsFn = null;
  });
  return setnsFn;
}

export interface NetnsWindowStats {
  windows: number;
  /** Microseconds spent inside windows, all together. */
  totalUs: number;
  lastUs: number;
}

/** How many windows were opened and how long they took (for the bench and the docs). */
export const windowStats: NetnsWindowStats = { windows: 0, totalUs: 0, lastUs: 0 };

/**
 * Run `fn` with the main thread inside the netns at `netnsPath` (a file such as /run/netns/cni-…
 * or /proc/PID/ns/net). ENOTFOUND when the netns is gone; EBACKEND when setns is refused.
 */
export async function inNetns<T>(netnsPath: string, fn: () => T): Promise<T> {
  const setns = await loadSetns();
  const t0 = process.hrtime.bigint();
  let target: number;
  try {
    target = openSync(netnsPath, 'r');
  } catch (e) {
    throw new PeerpodError('ENOTFOUND', `netns ${netnsPath} does not exist`, { op: 'setns', netns: netnsPath }, e);
  }
  let self: number;
  try {
    self = openSync('/proc/thread-self/ns/net', 'r');
  } catch (e) {
    closeSync(target);
    throw new PeerpodError('EBACKEND', 'cannot open this thread\'s own netns', { op: 'setns', netns: netnsPath }, e);
  }
  try {
    if (setns(target, CLONE_NEWNET) !== 0) {
      throw new PeerpodError('EBACKEND', `setns into ${netnsPath} was refused (not a netns, or no CAP_SYS_ADMIN)`, { op: 'setns', netns: netnsPath });
    }
    try {
      return fn();
    } finally {
      if (setns(self, CLONE_NEWNET) !== 0) {
        process.stderr.write(`fatal: cannot return from netns ${netnsPath} to our own; exiting\n`);
        process.exit(70);
      }
    }
  } finally {
    closeSync(self);
    closeSync(target);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    windowStats.windows++;
    windowStats.totalUs += us;
    windowStats.lastUs = us;
  }
}
