// Fakes for the unit tests of the sidecar: the WireGuard backend fake of ../fakes/backend.ts under
// its old name, an Exec that plays nsenter for a set of pod netns (present, absent, or too slow to
// answer) and refuses every other command, and a logger whose lines a test can read.
import { pino, type Logger } from 'pino';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';
import type { Device } from '../../src/wireguard/config.js';
import { type PodStore, type WireguardPodRecord } from '../../src/state/store.js';
import { TunnelService, type TunnelServiceDeps } from '../../src/sidecar/service.js';
import type { NetnsFactory } from '../../src/netns/netns.js';
import type { WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import { WireguardWorkerDriver } from '../../src/tunnel/wireguard/worker.js';
import { generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';
import { FakeBackend } from '../fakes/backend.js';
import { wireguardRecord } from '../support/pod-records.js';

export { FakeBackend };

/**
 * The WireGuard backend fake with its old behaviour, for the tests written against it: every netns
 * a `where` names exists (they say which netns are gone through their Exec, nsenterExec), device()
 * hands out the very Device in devicesByName (a test changes its peers in place), and configure()
 * is recorded but changes nothing. New tests use FakeBackend (../fakes/backend.ts), which applies.
 */
export class ScriptedBackend extends FakeBackend {
  constructor() {
    super({ netnsExists: () => true });
  }

  override async device(name: string): Promise<Device> {
    this.calls.push(`device ${name}`);
    if (this.fault !== null) throw this.fault();
    const d = this.devicesByName.get(name);
    if (d === undefined) throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name} (ENOENT)`, { iface: name });
    return d;
  }

  override async configure(name: string): Promise<void> {
    this.calls.push(`configure ${name}`);
    if (!this.devicesByName.has(name)) throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name}`, { iface: name });
  }
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

/**
 * An Exec that plays iproute2 for a worker whose pod netns each have an eth0 with one address and
 * a default route, and no VXLAN link anywhere. Every answer comes after `delayMs`, so that calls
 * made at once interleave as they would with real processes.
 */
export function podNetnsExec(delayMs = 5): Exec {
  return async (argv) => {
    await new Promise((r) => setTimeout(r, delayMs));
    const inPod = argv[0] === 'nsenter';
    const cmd = (inPod ? argv.slice(3) : argv).join(' ');
    const json = (v: unknown) => ({ stdout: JSON.stringify(v), stderr: '', code: 0 });
    if (cmd === 'true') return json('');
    if (cmd === 'ip -details -json link show type vxlan') return json([]);
    if (cmd === 'ip -json -4 route show table main') return json([{ dst: 'default', gateway: inPod ? '10.244.1.1' : '192.0.2.1', dev: 'eth0' }]);
    if (cmd === 'ip -json -details link show') {
      return json([{ ifindex: 2, ifname: 'eth0', mtu: 1500, address: '0a:58:0a:f4:01:02', operstate: 'UP', flags: ['UP'], link_type: 'ether' }]);
    }
    if (cmd === 'ip -json address show dev eth0') {
      return json([{ ifname: 'eth0', addr_info: [{ family: 'inet', local: inPod ? '10.244.1.2' : '192.0.2.5', prefixlen: 24, scope: 'global' }] }]);
    }
    if (cmd === 'ip -json neighbour show') return json([]);
    throw new PeerpodError('EEXEC', `the fake exec does not run ${argv.join(' ')}`, { op: 'exec' });
  };
}

/** A WireGuard pod with a ready tunnel in `store`: its record, worker key and preshared key. */
export async function seedReadyPod(store: PodStore, netns: string): Promise<WireguardPodRecord> {
  const record = wireguardRecord(netns, { phase: 'ready' });
  await store.write(record);
  await store.writeKey(record.id, 'worker', generateKeyPair().privateKey);
  await store.writeKey(record.id, 'psk', generatePresharedKey());
  return record;
}

/** A TunnelService for unit tests: wireguard by default, a test's clock and loop timings. */
export function testService(
  parts: Omit<TunnelServiceDeps, 'defaultTunnelType' | 'tickMs' | 'idleProbeMs' | 'fastNudgeWindowMs'> & {
    timing: Pick<TunnelServiceDeps, 'tickMs' | 'idleProbeMs' | 'fastNudgeWindowMs'>;
  },
): TunnelService {
  const { timing, ...deps } = parts;
  return new TunnelService({ ...deps, ...timing, defaultTunnelType: 'wireguard' });
}

/**
 * TunnelService over the real WireGuard worker driver (and no VXLAN driver) on the given fakes;
 * `worker` may wrap the driver the registry hands out (to slow a verb down, say).
 */
export function serviceOverRealDriver(o: {
  backend: FakeBackend;
  netns: NetnsFactory;
  store: PodStore;
  log: Logger;
  clock: () => number;
  timing: Pick<TunnelServiceDeps, 'tickMs' | 'idleProbeMs' | 'fastNudgeWindowMs'>;
  worker?: (driver: WireguardWorkerDriver) => WorkerTunnelDriver;
}): TunnelService {
  const { worker: wrap, ...parts } = o;
  const wireguard = new WireguardWorkerDriver({ backend: o.backend, netns: o.netns, store: o.store });
  const worker = wrap?.(wireguard) ?? wireguard;
  return testService({ ...parts, wireguard, registry: { wireguard: { worker: () => worker }, vxlan: {} } });
}
