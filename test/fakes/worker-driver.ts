// A worker tunnel driver in memory, for the sidecar's TunnelService tests: the verbs setup and
// teardown and the upkeep the service asks for (converge, roll back, nudge, keepalive), played on
// the fake WireGuard backend and a pod store. Each call is recorded; a test can hold or watch a
// call (onCall) or make converge or teardown fail. inspect and configure are not modelled: they
// refuse. What the real drivers do to the kernel is theirs to test (lab tier).
import { PeerpodError } from '../../src/errors.js';
import type { PodNetwork, TunnelType, WireguardTunnel } from '../../src/podnetwork/types.js';
import type { WireguardUpkeep } from '../../src/sidecar/service.js';
import { podIdOf, type PodPhase, type PodRecord, type PodStore, type WireguardPodRecord } from '../../src/state/store.js';
import type { WorkerSetupRequest, WorkerTeardownRequest, WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import type { Peer } from '../../src/wireguard/config.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import type { ScriptedBackend } from '../unit/fakes.js';

export type DriverCall = 'setup' | 'teardown' | 'converge' | 'rollBack' | 'nudge' | 'keepalive';

export interface FakeWorkerDriverDeps {
  backend: ScriptedBackend;
  store: PodStore;
  now: () => Date;
}

/** The pod VM's peer as a device just made reports it: no handshake yet, nothing moved. */
export function vmPeerOf(record: WireguardPodRecord, fields: Partial<Peer> = {}): Peer {
  return {
    publicKey: PublicKey.fromBase64(record.vmPublicKey),
    presharedKey: null,
    endpoint: `${record.podVmIPs[0] ?? '203.0.113.10'}:${record.vmListenPort}`,
    persistentKeepalive: record.keepalive,
    lastHandshakeSec: 0,
    lastHandshakeNsec: 0,
    rxBytes: 0,
    txBytes: 0,
    allowedIPs: [`${record.podIP}/32`],
    protocolVersion: 1,
    ...fields,
  };
}

export class FakeWorkerDriver implements WorkerTunnelDriver, WireguardUpkeep {
  readonly type: TunnelType;
  readonly #d: FakeWorkerDriverDeps;
  /** `${call} ${netns}`, in order. */
  readonly calls: string[] = [];
  convergeFault: (() => Error) | null = null;
  teardownFault: (() => Error) | null = null;
  /** Awaited at the start of every call: a test holds a call here, or looks at the state then. */
  onCall: ((call: DriverCall, netns: string) => Promise<void> | void) | null = null;

  constructor(type: TunnelType, deps: FakeWorkerDriverDeps) {
    this.type = type;
    this.#d = deps;
  }

  private async enter(call: DriverCall, netns: string): Promise<void> {
    this.calls.push(`${call} ${netns}`);
    await this.onCall?.(call, netns);
  }

  inspect(netns: string): Promise<PodNetwork> {
    return Promise.reject(new PeerpodError('EUNSUPPORTED', `the fake driver does not model inspect (netns ${netns})`, { op: 'inspect', netns }));
  }

  configure(): Promise<WireguardTunnel> {
    return Promise.reject(new PeerpodError('EUNSUPPORTED', 'the fake driver does not model configure', { op: 'configure' }));
  }

  async setup(req: WorkerSetupRequest): Promise<PodRecord> {
    await this.enter('setup', req.netns);
    const { store } = this.#d;
    const record = await store.read(podIdOf(req.netns));
    if (record === null) throw new PeerpodError('ESTATE', `no tunnel state for pod netns ${req.netns}`, { op: 'setup', netns: req.netns });
    const next = { ...record, podVmIPs: [...req.podVmIPs], phase: 'setting-up' as const, updatedAt: this.#d.now().toISOString() };
    await store.write(next);
    if (next.tunnelType === 'wireguard') {
      try {
        await this.converge(next);
      } catch (e) {
        await this.rollBack(next);
        throw new PeerpodError('ESETUP', `tunnel setup for pod netns ${req.netns} failed and was rolled back`, { op: 'setup', netns: req.netns }, e);
      }
    }
    const ready = { ...next, phase: 'ready' as const };
    await store.write(ready);
    return ready;
  }

  async teardown(req: WorkerTeardownRequest): Promise<void> {
    await this.enter('teardown', req.netns);
    if (this.teardownFault !== null) throw this.teardownFault();
    const id = podIdOf(req.netns);
    const record = await this.#d.store.read(id).catch(() => null);
    await this.#d.backend.remove(record?.device ?? `pwg${id}`);
    await this.#d.store.remove(id);
  }

  async converge(record: WireguardPodRecord): Promise<{ created: boolean }> {
    await this.enter('converge', record.netns);
    if (this.convergeFault !== null) throw this.convergeFault();
    const { backend } = this.#d;
    if (backend.devicesByName.has(record.device)) return { created: false };
    await backend.create(record.device, { mtu: record.mtu });
    backend.devicesByName.get(record.device)?.peers.push(vmPeerOf(record));
    return { created: true };
  }

  async rollBack(record: WireguardPodRecord, phase: PodPhase & ('inspected' | 'orphaned') = 'inspected'): Promise<void> {
    await this.enter('rollBack', record.netns);
    await this.#d.backend.remove(record.device);
    await this.#d.store.write({ ...record, phase, updatedAt: this.#d.now().toISOString() });
  }

  async nudgeHandshake(record: WireguardPodRecord): Promise<void> {
    await this.enter('nudge', record.netns);
  }

  async sendKeepalive(record: WireguardPodRecord): Promise<void> {
    await this.enter('keepalive', record.netns);
  }
}
