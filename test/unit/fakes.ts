// Fakes for the unit tests of the sidecar: a WireGuard backend kept in memory whose faults a test
// chooses, an Exec that plays nsenter for a set of pod netns (present, absent, or too slow to
// answer) and refuses every other command, and a logger whose lines a test can read.
import { pino, type Logger } from 'pino';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';
import type { CreateOptions, WireGuardBackend } from '../../src/wireguard/backend.js';
import type { Device, DeviceConfig } from '../../src/wireguard/config.js';

export class ScriptedBackend implements WireGuardBackend {
  readonly kind = 'userspace' as const;
  readonly devicesByName = new Map<string, Device>();
  readonly calls: string[] = [];
  /** When set, device() fails with this error for every name. */
  fault: (() => Error) | null = null;
  /** Devices whose pid files live in our run folder. */
  readonly ours = new Set<string>();

  async create(name: string, _opts: CreateOptions): Promise<void> {
    this.calls.push(`create ${name}`);
    if (!this.devicesByName.has(name)) {
      this.devicesByName.set(name, { name, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] });
    }
    this.ours.add(name);
  }

  async devices(): Promise<string[]> {
    return [...this.devicesByName.keys()].sort();
  }

  async device(name: string): Promise<Device> {
    this.calls.push(`device ${name}`);
    if (this.fault !== null) throw this.fault();
    const d = this.devicesByName.get(name);
    if (d === undefined) throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name} (ENOENT)`, { iface: name });
    return d;
  }

  async configure(name: string, _config: DeviceConfig): Promise<void> {
    this.calls.push(`configure ${name}`);
    if (!this.devicesByName.has(name)) throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name}`, { iface: name });
  }

  async remove(name: string): Promise<void> {
    this.calls.push(`remove ${name}`);
    this.devicesByName.delete(name);
    this.ours.delete(name);
  }

  async owns(name: string): Promise<boolean> {
    return this.ours.has(name);
  }

  async close(): Promise<void> {}
}

export type NetnsAnswer = 'present' | 'absent' | 'timeout';

/** An Exec that only knows `nsenter --net=<path> -- true`, answering as `netns` says. */
export function nsenterExec(netns: Map<string, NetnsAnswer>, calls: string[] = []): Exec {
  return async (argv) => {
    calls.push(argv.join(' '));
    const m = /^nsenter --net=(\S+) -- true$/.exec(argv.join(' '));
    const answer = m?.[1] === undefined ? undefined : (netns.get(m[1]) ?? 'absent');
    const cmd = argv.join(' ');
    if (answer === 'present') return { stdout: '', stderr: '', code: 0 };
    if (answer === 'absent') {
      throw new PeerpodError('EEXEC', `nsenter exited with code 1: nsenter: cannot open ${m?.[1] ?? ''}: No such file or directory`, {
        op: 'exec',
        cmd,
        exitCode: 1,
      });
    }
    if (answer === 'timeout') throw new PeerpodError('EEXEC', 'nsenter timed out', { op: 'exec', cmd });
    throw new PeerpodError('EEXEC', `the fake exec does not run ${cmd}`, { op: 'exec', cmd });
  };
}

/** A logger that keeps its JSON lines for the test to read. */
export function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
