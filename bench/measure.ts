// What the tunnel benchmark measures inside lab namespaces: iperf3 TCP throughput, ping RTT
// percentiles, the time until the first ping reply, and the CPU time and peak RSS of processes
// (the CLIs through /usr/bin/time, the long-running wireguard-go daemons through /proc). Parsers are
// pure functions of captured output; the lab, its tunnels and the table are left to tunnels.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Exec } from '../src/exec.js';
import { parseProcStat, processStat } from '../src/process-identity.js';
import type { Lab } from '../lab/lab.js';

// ---------------------------------------------------------------------------------------------
// Pure parsers

export interface Throughput {
  bitsPerSecond: number;
  /** TCP retransmits counted by the sender (null when iperf3 cannot see them). */
  retransmits: number | null;
}

/** The receiver's view of one `iperf3 -c … -J` run (with or without -R). */
export function parseIperfJson(text: string): Throughput {
  let doc: {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
  };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.trim().slice(0, 200)}`);
  }
  if (typeof doc.error === 'string') throw new Error(`iperf3: ${doc.error}`);
  const bps = doc.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error('iperf3 JSON has no end.sum_received.bits_per_second');
  return { bitsPerSecond: bps, retransmits: doc.end?.sum_sent?.retransmits ?? null };
}

/** Per-reply round-trip times in ms, from ping's "time=0.123 ms" lines. */
export function parsePingTimes(out: string): number[] {
  return [...out.matchAll(/ time=([0-9.]+) ms/g)].map((m) => Number(m[1]));
}

/** Unix time in ms of the first reply of `ping -D`, or null when there was none. */
export function parseFirstReplyEpochMs(out: string): number | null {
  const m = /^\[([0-9]+\.[0-9]+)\] [0-9]+ bytes from/m.exec(out);
  return m ? Number(m[1]) * 1000 : null;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? NaN;
}

export interface ProcessCost {
  /** e.g. "wgctl setup". */
  label: string;
  wallMs: number;
  /** user + system, of the process and the children it waited for. */
  cpuMs: number;
  maxRssKiB: number;
}

/** The output of `/usr/bin/time -f '%e %U %S %M'` (its last line; earlier ones may report the exit status). */
export function parseGnuTime(text: string): Omit<ProcessCost, 'label'> {
  const last = text.trim().split('\n').pop() ?? '';
  const m = /^([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9]+)$/.exec(last.trim());
  if (!m) throw new Error(`cannot parse /usr/bin/time output: ${JSON.stringify(text)}`);
  return { wallMs: Number(m[1]) * 1000, cpuMs: (Number(m[2]) + Number(m[3])) * 1000, maxRssKiB: Number(m[4]) };
}

/** utime + stime in clock ticks, from the text of /proc/<pid>/stat. */
export function parseStatTicks(stat: string): number {
  // utime and stime are fields 14 and 15.
  const fields = parseProcStat(stat)?.fields ?? [];
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

// ---------------------------------------------------------------------------------------------
// Clocks and process accounting

/** Wall-clock time in ms with sub-ms resolution, comparable with `ping -D` timestamps. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

let clockTicks: number | null = null;

export async function clockTicksPerSecond(exec: Exec): Promise<number> {
  if (clockTicks === null) {
    const r = await exec(['getconf', 'CLK_TCK'], { okCodes: [0, 1] }).catch(() => null);
    const n = Number(r?.stdout.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

export const GNU_TIME = '/usr/bin/time';

export async function haveGnuTime(): Promise<boolean> {
  return access(GNU_TIME).then(
    () => true,
    () => false,
  );
}

/**
 * Wraps an Exec so that every command runs under /usr/bin/time, and records its CPU and peak RSS.
 * Daemons that a command starts and does not wait for (wireguard-go) are not included: ProcessProbe
 * reads those.
 */
export class CostMeter {
  readonly costs: ProcessCost[] = [];
  #dir = '';
  #n = 0;
  readonly #inner: Exec;

  constructor(inner: Exec) {
    this.#inner = inner;
  }

  async open(): Promise<void> {
    this.#dir = await mkdtemp(join(tmpdir(), 'bench-time-'));
  }

  async close(): Promise<void> {
    if (this.#dir !== '') await rm(this.#dir, { recursive: true, force: true });
    this.#dir = '';
  }

  readonly exec: Exec = async (argv, opts) => {
    if (this.#dir === '') throw new Error('CostMeter.exec before open()');
    const out = join(this.#dir, `${this.#n++}.txt`);
    try {
      return await this.#inner([GNU_TIME, '-o', out, '-f', '%e %U %S %M', ...argv], opts);
    } finally {
      const text = await readFile(out, 'utf8').catch(() => '');
      if (text !== '') this.costs.push({ label: CostMeter.label(argv), ...parseGnuTime(text) });
    }
  };

  /** "wgctl setup" from [..., '/path/wgctl.js', 'setup', ...]; else the command's base name. */
  static label(argv: readonly string[]): string {
    const i = argv.findIndex((a) => a.endsWith('.js'));
    if (i >= 0) return `${basename(argv[i] ?? '', '.js')} ${argv[i + 1] ?? ''}`.trim();
    return basename(argv[0] ?? '?');
  }
}

/** CPU and memory of running processes we did not spawn ourselves (wireguard-go), read from /proc. */
export class ProcessProbe {
  readonly pid: number;
  readonly name: string;

  constructor(pid: number, name: string) {
    this.pid = pid;
    this.name = name;
  }

  async cpuTicks(): Promise<number> {
    return parseStatTicks(await readFile(`/proc/${this.pid}/stat`, 'utf8'));
  }

  /** VmHWM: the peak resident set, in KiB. */
  async peakRssKiB(): Promise<number> {
    const m = /^VmHWM:\s+([0-9]+) kB/m.exec(await readFile(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  }

  /** The wireguard-go daemons whose pid files are in `runDir` (the backend writes <device>.pid there). */
  static async fromPidFiles(runDir: string, name: string): Promise<ProcessProbe[]> {
    const files = (await readdir(runDir).catch(() => [] as string[])).filter((f) => f.endsWith('.pid'));
    const probes: ProcessProbe[] = [];
    for (const f of files) {
      const pid = Number((await readFile(join(runDir, f), 'utf8')).trim());
      if (Number.isInteger(pid) && (await processStat(pid))?.comm === 'wireguard-go') probes.push(new ProcessProbe(pid, name));
    }
    return probes;
  }
}

/** Percent of one core that each probe used while `work` ran. */
export async function cpuPercentDuring<T>(
  probes: readonly ProcessProbe[],
  ticksPerSecond: number,
  work: () => Promise<T>,
): Promise<{ result: T; percent: number[] }> {
  const before = await Promise.all(probes.map((p) => p.cpuTicks()));
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const after = await Promise.all(probes.map((p) => p.cpuTicks()));
  const percent = probes.map((_, i) => (((after[i] ?? 0) - (before[i] ?? 0)) / ticksPerSecond / seconds) * 100);
  return { result, percent };
}

// ---------------------------------------------------------------------------------------------
// Traffic

/**
 * One `iperf3 -s -1` in a lab namespace. It is the one child the benchmark spawns itself rather than
 * through Exec, because it must run beside the client and be stopped by its own pid on failure
 * (`ip netns exec` execs iperf3 in place, so the pid is iperf3's).
 */
export class IperfServer {
  static readonly live = new Set<IperfServer>();
  /** Set on shutdown: no server starts after it, so none can outlive the bench. */
  static closed = false;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #done = false;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        this.#done = true;
        IperfServer.live.delete(this);
        resolve();
      });
      child.once('error', () => {
        this.#done = true;
        IperfServer.live.delete(this);
        resolve();
      });
    });
    IperfServer.live.add(this);
  }

  static async start(ns: string, ip: string, port: number): Promise<IperfServer> {
    if (IperfServer.closed) throw new Error('shutting down: no new iperf3 server');
    const child = spawn('ip', ['netns', 'exec', ns, 'iperf3', '-s', '-1', '-B', ip, '-p', String(port), '--forceflush'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new IperfServer(child);
    let out = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    const deadline = Date.now() + 5_000;
    while (!out.includes('Server listening')) {
      if (server.#done || Date.now() > deadline) {
        await server.stop();
        throw new Error(`iperf3 server on ${ip}:${port} in ${ns} did not start: ${out.trim().slice(0, 200)}`);
      }
      await sleep(10);
    }
    return server;
  }

  /** Refuse new servers and stop every live one. */
  static async closeAll(): Promise<void> {
    IperfServer.closed = true;
    await Promise.all([...IperfServer.live].map((s) => s.stop()));
  }

  /** Last resort right before exit: SIGKILL whatever is still live, synchronously. */
  static killAllNow(): void {
    IperfServer.closed = true;
    for (const s of IperfServer.live) if (!s.#done) s.#child.kill('SIGKILL');
  }

  /** Stop it if it still runs (it exits by itself after one test), by the pid we spawned. */
  async stop(): Promise<void> {
    if (!this.#done && this.#child.pid !== undefined) {
      this.#child.kill('SIGTERM');
      const killed = await Promise.race([this.#exited.then(() => true), sleep(2_000).then(() => false)]);
      if (!killed) this.#child.kill('SIGKILL');
    }
    await this.#exited;
  }
}

export interface ThroughputRun {
  lab: Lab;
  clientNs: string;
  serverNs: string;
  serverIP: string;
  port: number;
  seconds: number;
  /** Seconds of slow start left out of the result (iperf3 -O). */
  omitSeconds: number;
  /** Server sends, client receives (iperf3 -R). */
  reverse: boolean;
}

export async function iperf(run: ThroughputRun): Promise<Throughput> {
  const server = await IperfServer.start(run.serverNs, run.serverIP, run.port);
  try {
    const r = await run.lab.exec(
      run.clientNs,
      ['iperf3', '-c', run.serverIP, '-p', String(run.port), '-t', String(run.seconds), '-O', String(run.omitSeconds),
        '-J', '--connect-timeout', '3000', ...(run.reverse ? ['-R'] : [])],
      { okCodes: [0, 1], timeoutMs: (run.seconds + run.omitSeconds + 20) * 1000 },
    );
    return parseIperfJson(r.stdout);
  } finally {
    await server.stop();
  }
}

export interface Rtt {
  sent: number;
  received: number;
  p50: number;
  p99: number;
}

/** Percentiles over every reply time of one or more ping runs. */
export function rttOf(times: readonly number[], sent: number): Rtt {
  const sorted = [...times].sort((a, b) => a - b);
  return { sent, received: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** The reply times (ms) of `count` pings sent every `intervalS`. */
export async function pingTimes(lab: Lab, ns: string, target: string, count: number, intervalS: number): Promise<number[]> {
  const r = await lab.exec(ns, ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', target], {
    okCodes: [0, 1],
    timeoutMs: count * intervalS * 1000 + 15_000,
  });
  return parsePingTimes(r.stdout);
}

/**
 * Ms from `t0` (epochMs()) to the first reply of a ping that keeps sending every 2 ms until one
 * reply arrives or `deadlineS` passes. Null when none came. Includes ping's own start (~3 ms).
 */
export async function firstReplyMs(lab: Lab, ns: string, target: string, t0: number, deadlineS = 5): Promise<number | null> {
  const r = await lab.exec(ns, ['ping', '-D', '-n', '-c', '1', '-i', '0.002', '-W', '1', '-w', String(deadlineS), target], {
    okCodes: [0, 1],
    timeoutMs: (deadlineS + 5) * 1000,
  });
  const at = parseFirstReplyEpochMs(r.stdout);
  return at === null ? null : at - t0;
}
