// The userspace WireGuard backend: one long-lived `wireguard-go -f <name>` process per device,
// driven over its UAPI socket (../uapi/client.ts). This module owns the daemons' lives: start
// (through the Spawner seam, ../../spawn.ts), readiness, MTU, pid files, logs and stopping them. It works in the caller's netns: a device is
// born here and its UDP socket stays here. Moving the TUN into a pod netns, addresses, routes and
// bringing the link up are the netns layer's job. A device's `where` (../backend.ts) is not needed
// to reach it (its UAPI socket stays in the host's folder wherever its TUN has moved); a `where`
// whose netns is gone answers ENOTFOUND, as the kernel backend does, without waiting for
// wireguard-go to notice its TUN died with the netns.
//
// Facts about wireguard-go v0.0.20220316 this code relies on:
// - Its socket directory is compiled in (/var/run/wireguard), so `socketDir` only follows a
//   daemon built differently; it cannot move the sockets of the stock binary.
// - With -f it does not re-exec itself, so the pid we spawn is the daemon's pid.
// - It exits when its socket file is deleted, and its TUN dies with it wherever the TUN has been
//   moved since (a pod netns included).
// - Its TUN stops seeing MTU changes once moved to another netns, so the MTU is set here, first.
import { constants as fsConstants, existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError, isPeerpodError } from '../../errors.js';
import type { Exec } from '../../exec.js';
import type { Spawner } from '../../spawn.js';
import { isLiveProcess, liveThreadCount, processArgs, processStat } from '../../process-identity.js';
import { checkCreateMtu, type WireGuardBackend, type CreateOptions, type Where } from '../backend.js';
import type { Device, DeviceConfig } from '../config.js';
import { DEFAULT_SOCKET_DIR, UapiClient, assertDeviceName } from '../uapi/client.js';

export type WireGuardGoLogLevel = 'error' | 'verbose' | 'silent';

export interface UserspaceBackendOptions {
  /** Runs `ip` to set the MTU. */
  exec: Exec;
  /** Starts the wireguard-go daemons. */
  spawner: Spawner;
  /** Holds <name>.pid and <name>.log. Default /run/peerpod-wg. */
  runDir?: string;
  /** Where the daemons' UAPI sockets are. Default /var/run/wireguard (compiled into wireguard-go). */
  socketDir?: string;
  /** The wireguard-go binary. Default 'wireguard-go' (found on PATH). */
  wireguardGo?: string;
  /** LOG_LEVEL for the daemon. Default 'error'. */
  logLevel?: WireGuardGoLogLevel;
  /** Per UAPI request. Default 5000 ms. */
  uapiTimeoutMs?: number;
  /** How long create() waits for a new daemon's socket to answer. Default 5000 ms. */
  startTimeoutMs?: number;
}

export const DEFAULT_RUN_DIR = '/run/peerpod-wg';
const POLL_MS = 10;
const DEFAULT_START_TIMEOUT_MS = 5_000;
const TERM_GRACE_MS = 3_000;
const KILL_GRACE_MS = 2_000;
const LOG_TAIL_CHARS = 2_000;

/** The most of a dead daemon's log that is kept. */
export const KEPT_LOG_BYTES = 64 * 1024;

/** Move `from` to `to`, keeping only its last KEPT_LOG_BYTES. */
async function keepLogTail(from: string, to: string): Promise<void> {
  let fh;
  try {
    fh = await open(from, 'r');
  } catch {
    return; // no log yet
  }
  try {
    const { size } = await fh.stat();
    if (size <= KEPT_LOG_BYTES) {
      await rename(from, to);
      return;
    }
    const tail = Buffer.alloc(KEPT_LOG_BYTES);
    const { bytesRead } = await fh.read(tail, 0, KEPT_LOG_BYTES, size - KEPT_LOG_BYTES);
    await writeFile(to, tail.subarray(0, bytesRead), { mode: 0o600 });
    await rm(from, { force: true });
  } finally {
    await fh.close();
  }
}

export class UserspaceBackend implements WireGuardBackend {
  readonly kind = 'userspace' as const;
  readonly runDir: string;
  readonly socketDir: string;
  readonly #exec: Exec;
  readonly #spawner: Spawner;
  readonly #wireguardGo: string;
  readonly #logLevel: WireGuardGoLogLevel;
  readonly #startTimeoutMs: number;
  readonly #client: UapiClient;

  constructor(opts: UserspaceBackendOptions) {
    this.#exec = opts.exec;
    this.#spawner = opts.spawner;
    this.runDir = opts.runDir ?? DEFAULT_RUN_DIR;
    this.socketDir = opts.socketDir ?? DEFAULT_SOCKET_DIR;
    this.#wireguardGo = opts.wireguardGo ?? 'wireguard-go';
    this.#logLevel = opts.logLevel ?? 'error';
    this.#startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#client = new UapiClient({
      socketDir: this.socketDir,
      ...(opts.uapiTimeoutMs === undefined ? {} : { timeoutMs: opts.uapiTimeoutMs }),
    });
  }

  pidFile(name: string): string {
    assertDeviceName(name);
    return join(this.runDir, `${name}.pid`);
  }

  logFile(name: string): string {
    assertDeviceName(name);
    return join(this.runDir, `${name}.log`);
  }

  socketPath(name: string): string {
    return this.#client.socketPath(name);
  }

  async create(name: string, opts: CreateOptions): Promise<void> {
    assertDeviceName(name);
    const { mtu } = opts;
    checkCreateMtu(name, mtu);
    // A live device is kept exactly as it is: it may already sit in a pod netns, where the MTU can
    // no longer be changed (and must not be touched from here).
    if (await this.#answers(name)) return;
    await this.#clearStale(name);

    const pid = await this.#spawnDaemon(name);
    try {
      await this.#exec(['ip', 'link', 'set', 'dev', name, 'mtu', String(mtu)], { timeoutMs: 10_000 });
    } catch (e) {
      const err = new PeerpodError('EBACKEND', `cannot set the MTU of WireGuard device ${name} to ${mtu}`, {
        op: 'create',
        iface: name,
        pid,
      }, e);
      await this.remove(name).catch((c: unknown) => err.cleanupErrors.push(c));
      throw err;
    }
  }

  async devices(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.socketDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new PeerpodError('EBACKEND', `cannot list ${this.socketDir}`, { op: 'devices' }, e);
    }
    const names = entries
      .filter((f) => f.endsWith('.sock'))
      .map((f) => f.slice(0, -'.sock'.length))
      .filter((n) => /^[A-Za-z0-9_.-]{1,15}$/.test(n) && n !== '.' && n !== '..');
    const live = await Promise.all(names.map(async (n) => ((await this.#answers(n)) ? n : null)));
    return live.filter((n): n is string => n !== null).sort();
  }

  async device(name: string, where?: Where): Promise<Device> {
    netnsMustExist(name, where, 'device');
    return this.#client.get(name);
  }

  async configure(name: string, config: DeviceConfig, where?: Where): Promise<void> {
    netnsMustExist(name, where, 'configure');
    return this.#client.set(name, config);
  }

  async remove(name: string): Promise<void> {
    assertDeviceName(name);
    const pid = await this.#pidFromFile(name);
    if (pid !== null) await this.#terminate(pid, name);
    if (await this.#answers(name)) {
      // A daemon we did not start (no pid file of ours). We never signal a pid we cannot trace to
      // our own spawn; deleting its socket asks it to exit (the xplatform spec requires it to).
      await rm(this.socketPath(name), { force: true });
      await this.#waitForStrangerExit(name);
    }
    await rm(this.socketPath(name), { force: true });
    await rm(this.pidFile(name), { force: true });
    // The logs explain a daemon that died; a device removed on purpose leaves none behind.
    await rm(this.logFile(name), { force: true });
    await rm(`${this.logFile(name)}.1`, { force: true });
  }

  async owns(name: string): Promise<boolean> {
    return (await this.pidOf(name)) !== null;
  }

  async release(_netns: string): Promise<void> {
    // Nothing is held per netns: the UAPI socket of a moved device stays in the host's folder.
  }

  async close(): Promise<void> {
    // Nothing is held between calls: each UAPI request opens its own connection.
  }

  /**
   * The pid of the running wireguard-go for `name`, or null. Only a pid from our pid file that
   * still is a live (not zombie) wireguard-go with `name` in its argv counts.
   */
  async pidOf(name: string): Promise<number | null> {
    const pid = await this.#pidFromFile(name);
    return pid !== null && (await this.#isDaemon(pid, name)) ? pid : null;
  }

  // -------------------------------------------------------------------------------------------

  /** What our pid file says, unverified. */
  async #pidFromFile(name: string): Promise<number | null> {
    let text: string;
    try {
      text = await readFile(this.pidFile(name), 'utf8');
    } catch {
      return null;
    }
    return /^[1-9][0-9]{0,9}\n?$/.test(text) ? Number(text.trim()) : null;
  }

  async #answers(name: string): Promise<boolean> {
    try {
      await this.#client.get(name);
      return true;
    } catch (e) {
      if (isPeerpodError(e, 'ENOTFOUND') || isPeerpodError(e, 'EUAPI')) return false;
      throw e;
    }
  }

  /** A device that does not answer: stop our old daemon if it lingers, drop its socket and pid file. */
  async #clearStale(name: string): Promise<void> {
    const pid = await this.#pidFromFile(name);
    if (pid !== null) await this.#terminate(pid, name);
    await rm(this.socketPath(name), { force: true });
    await rm(this.pidFile(name), { force: true });
  }

  /** Start the daemon, record its pid, and wait until its socket answers. Returns the pid. */
  async #spawnDaemon(name: string): Promise<number> {
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });
    const logPath = this.logFile(name);
    // Keep one generation, its tail at most: the log of a daemon that died explains why it died.
    await keepLogTail(logPath, `${logPath}.1`);
    // O_APPEND: the log can be truncated in place (logrotate's copytruncate) while the daemon runs.
    const log = await open(logPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_APPEND, 0o600);

    // Through the spawner, not exec: exec is for short-lived commands with a timeout, and this
    // daemon must outlive the call (and our own process). It runs in its own session (detached) so
    // a Ctrl-C meant for us does not reach it; its output goes to the log.
    const ctx = { op: 'create', iface: name, cmd: `${this.#wireguardGo} -f ${name}` };
    let child;
    try {
      child = await this.#spawner.spawn([this.#wireguardGo, '-f', name], {
        detached: true,
        stdout: log.fd,
        stderr: log.fd,
        // WG_PROCESS_FOREGROUND=1 also silences its "kernel has WireGuard" banner, which is wrong here.
        env: { ...process.env, LOG_LEVEL: this.#logLevel, WG_PROCESS_FOREGROUND: '1' },
      });
    } catch (e) {
      throw new PeerpodError('EBACKEND', `cannot start ${this.#wireguardGo} for ${name}`, ctx, e);
    } finally {
      // The child has its own copy of the descriptor by now.
      await log.close();
    }
    const pid = child.pid;
    await this.#writePidFile(name, pid);

    const deadline = Date.now() + this.#startTimeoutMs;
    for (;;) {
      const exit = child.exit;
      if (exit !== null) {
        await rm(this.pidFile(name), { force: true });
        const how = exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code ?? '?'}`;
        const tail = await this.#logTail(name);
        throw new PeerpodError(
          'EBACKEND',
          `${basename(this.#wireguardGo)} for ${name} exited (${how}) before its UAPI socket answered${tail ? `; log: ${tail}` : ''}`,
          { ...ctx, pid, ...(exit.code === null ? {} : { exitCode: exit.code }) },
        );
      }
      if (await this.#answers(name)) return pid;
      if (Date.now() > deadline) {
        // Our own child, not yet reaped, so this pid cannot have been reused.
        child.kill('SIGKILL');
        await rm(this.pidFile(name), { force: true });
        const tail = await this.#logTail(name);
        throw new PeerpodError(
          'EBACKEND',
          `${basename(this.#wireguardGo)} for ${name} did not answer on ${this.socketPath(name)} within ${this.#startTimeoutMs} ms${tail ? `; log: ${tail}` : ''}`,
          { ...ctx, pid },
        );
      }
      await sleep(POLL_MS);
    }
  }

  async #writePidFile(name: string, pid: number): Promise<void> {
    const path = this.pidFile(name);
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, `${pid}\n`, { mode: 0o644 });
    await rename(tmp, path);
  }

  async #logTail(name: string): Promise<string> {
    try {
      const text = await readFile(this.logFile(name), 'utf8');
      return text.slice(-LOG_TAIL_CHARS).trim().split('\n').join(' | ');
    } catch {
      return '';
    }
  }

  /**
   * Whether `pid` is a live wireguard-go serving `name`: its comm is the binary's name, `name` is
   * one of its arguments, and it is not a zombie (a reparented daemon may wait long for its reaper).
   */
  async #isDaemon(pid: number, name: string): Promise<boolean> {
    return isLiveProcess(pid, { comm: basename(this.#wireguardGo), args: (argv) => argv.slice(1).includes(name) });
  }

  /**
   * Whether any thread of `pid` still runs. While a Go daemon exits, its main thread can already be
   * a zombie (empty cmdline) while other threads still hold its files, the TUN among them; only
   * when none is left is the device really gone and its name free again.
   */
  async #hasLiveThreads(pid: number): Promise<boolean> {
    return (await liveThreadCount(pid)) > 0;
  }

  /** A wireguard-go in the middle of exiting: main thread a zombie or its memory (argv) released. */
  async #isExiting(pid: number): Promise<boolean> {
    const [stat, argv] = await Promise.all([processStat(pid), processArgs(pid)]);
    if (stat === null || argv === null || stat.comm !== basename(this.#wireguardGo).slice(0, 15)) return false;
    return (argv.length === 0 || stat.state === 'Z') && (await this.#hasLiveThreads(pid));
  }

  async #waitGone(pid: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() <= deadline) {
      if (!(await this.#hasLiveThreads(pid))) return true;
      await sleep(POLL_MS);
    }
    return !(await this.#hasLiveThreads(pid));
  }

  /** SIGTERM, up to 3 s of grace, then SIGKILL; each signal only after the pid is verified again. */
  async #terminate(pid: number, name: string): Promise<void> {
    for (const [signal, grace] of [
      ['SIGTERM', TERM_GRACE_MS],
      ['SIGKILL', KILL_GRACE_MS],
    ] as const) {
      if (!(await this.#isDaemon(pid, name))) {
        // Gone, or not ours. Or already exiting: then we only wait, never signal.
        if (!(await this.#isExiting(pid)) || (await this.#waitGone(pid, KILL_GRACE_MS))) return;
        break;
      }
      try {
        process.kill(pid, signal);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
        throw new PeerpodError('EBACKEND', `cannot stop wireguard-go for ${name} (pid ${pid})`, { op: 'remove', iface: name, pid }, e);
      }
      if (await this.#waitGone(pid, grace)) return;
    }
    throw new PeerpodError('EBACKEND', `wireguard-go for ${name} (pid ${pid}) did not exit, not even after SIGKILL`, {
      op: 'remove',
      iface: name,
      pid,
    });
  }

  /** After deleting a foreign daemon's socket: wait until no wireguard-go for `name` is left. */
  async #waitForStrangerExit(name: string): Promise<void> {
    const deadline = Date.now() + TERM_GRACE_MS;
    for (;;) {
      const left = await this.#findDaemons(name);
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        throw new PeerpodError(
          'EBACKEND',
          `wireguard-go for ${name} (pid ${left.join(', ')}, not started by this backend) did not exit after its socket was removed`,
          { op: 'remove', iface: name },
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Read-only scan of /proc for live wireguard-go processes serving `name`. */
  async #findDaemons(name: string): Promise<number[]> {
    const pids = (await readdir('/proc')).filter((d) => /^[1-9][0-9]*$/.test(d)).map(Number);
    const hits = await Promise.all(pids.map(async (p) => ((await this.#isDaemon(p, name)) ? p : null)));
    return hits.filter((p): p is number => p !== null);
  }
}

/** ENOTFOUND when `where` names a netns that no longer exists (the device died with it). */
function netnsMustExist(name: string, where: Where | undefined, op: string): void {
  if (where?.netns !== undefined && !existsSync(where.netns)) {
    throw new PeerpodError('ENOTFOUND', `WireGuard device ${name}: its netns ${where.netns} is gone`, { op, iface: name, netns: where.netns });
  }
}
