// A worker tunnel driver in memory: the three verbs (inspect, setup, teardown) with the real
// drivers' lifecycle and refusals as their callers see them through the driver and the pod store,
// and the WireGuard upkeep the sidecar asks for (converge, roll back, nudge, keepalive), played on
// the fake WireGuard backend. It passes the worker driver contract
// (test/contract/worker-driver.contract.ts), where what it does not model is declared. Each call is
// recorded; a test can hold or watch a call (onCall) or make setup, converge or teardown fail.
// configure is not modelled: it refuses. Every pod it inspects is podNetworkOf's pod (198.18.1.21/24
// on eth0, MTU 1500); what the real drivers do to the pod netns and the kernel is theirs to test.
import { PeerpodError } from '../../src/errors.js';
import type { PodNetwork, TunnelType, WireguardTunnel } from '../../src/podnetwork/types.js';
import type { WireguardUpkeep } from '../../src/sidecar/service.js';
import { podIdOf, type PodPhase, type PodRecord, type PodStore, type VxlanPodRecord, type WireguardPodRecord } from '../../src/state/store.js';
import { tunnelSectionOf, type WorkerSetupRequest, type WorkerTeardownRequest, type WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import { workerVxlanDeviceName } from '../../src/tunnel/vxlan/names.js';
import { DEFAULT_MIN_VNI, DEFAULT_VXLAN_PORT, allocateVni, vnisInUse } from '../../src/tunnel/vxlan/vni.js';
import { workerDeviceName } from '../../src/tunnel/wireguard/names.js';
import { DEFAULT_KEEPALIVE, DEFAULT_LISTEN_PORT } from '../../src/tunnel/wireguard/worker.js';
import type { Peer } from '../../src/wireguard/config.js';
import { generateKeyPair, generatePresharedKey, PublicKey } from '../../src/wireguard/keys.js';
import { podNetworkOf } from '../support/pod-network.js';
import type { FakeBackend } from './backend.js';

export type DriverCall = 'inspect' | 'setup' | 'teardown' | 'converge' | 'rollBack' | 'nudge' | 'keepalive';

export interface FakeWorkerDriverDeps {
  backend: FakeBackend;
  store: PodStore;
  now: () => Date;
  /** Whether a pod netns is there, as the real drivers ask before inspect and setup; without it, every one is. */
  netnsExists?: (netns: string) => boolean;
}

/** The worker's address that a VXLAN pod VM is given as its remote. */
export const FAKE_WORKER_NODE_IP = { address: '192.0.2.5', prefixLength: 24, family: 4 } as const;

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
  /** Fails setup's data plane step (then rolled back), for either tunnel type. */
  setupFault: (() => Error) | null = null;
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

  private stamp(): string {
    return this.#d.now().toISOString();
  }

  private requireNetns(netns: string, op: string): void {
    if (this.#d.netnsExists?.(netns) === false) {
      throw new PeerpodError('ENOTFOUND', `pod netns ${netns} does not exist`, { op, netns, field: 'netns' });
    }
  }

  async inspect(netns: string): Promise<PodNetwork> {
    await this.enter('inspect', netns);
    const ctx = { op: 'inspect', netns, field: 'netns' };
    this.requireNetns(netns, 'inspect');
    const { store } = this.#d;
    const id = podIdOf(netns);
    const previous = await store.read(id);
    if (previous !== null && previous.tunnelType !== this.type) {
      throw new PeerpodError('ESTATE', `pod netns ${netns} already has a ${previous.tunnelType} tunnel record: tear it down first`, ctx);
    }
    const pod = podNetworkOf();
    const base = { id, netns, podIP: pod.podIp.address, podVmIPs: previous?.podVmIPs ?? [], phase: previous?.phase ?? 'inspected', updatedAt: this.stamp() };
    if (this.type === 'vxlan') {
      const vni = previous?.tunnelType === 'vxlan' ? previous.vni : allocateVni(vnisInUse({ records: await store.list(), linkVnis: [], except: id }));
      const record: VxlanPodRecord = { ...base, tunnelType: 'vxlan', device: workerVxlanDeviceName(id), mtu: pod.mtu, vni, port: DEFAULT_VXLAN_PORT };
      await store.write(record);
      return { ...pod, tunnel: { type: 'vxlan', port: DEFAULT_VXLAN_PORT, id: vni }, workerNodeIp: FAKE_WORKER_NODE_IP, index: vni - DEFAULT_MIN_VNI };
    }
    if (previous?.phase === 'ready' || previous?.phase === 'setting-up') {
      throw new PeerpodError('ESTATE', `pod netns ${netns} already has a ${previous.phase === 'ready' ? 'ready' : 'half set-up'} tunnel: tear it down first`, ctx);
    }
    let worker = await store.readKey(id, 'worker');
    if (worker === null) {
      worker = generateKeyPair().privateKey;
      await store.writeKey(id, 'worker', worker);
    }
    const vm = generateKeyPair();
    const tunnel: WireguardTunnel = {
      type: 'wireguard',
      privateKey: vm.privateKey,
      peerPublicKey: worker.publicKey(),
      presharedKey: generatePresharedKey(),
      listenPort: DEFAULT_LISTEN_PORT,
      persistentKeepalive: DEFAULT_KEEPALIVE,
      mtu: pod.mtu - 80,
    };
    await store.write({
      ...base,
      tunnelType: 'wireguard',
      device: workerDeviceName(id),
      podInterface: pod.interfaceName,
      vmPublicKey: vm.publicKey.toBase64(),
      workerPublicKey: tunnel.peerPublicKey.toBase64(),
      vmListenPort: tunnel.listenPort,
      keepalive: tunnel.persistentKeepalive,
      mtu: tunnel.mtu,
    });
    return { ...pod, tunnel };
  }

  configure(): Promise<WireguardTunnel> {
    return Promise.reject(new PeerpodError('EUNSUPPORTED', 'the fake driver does not model configure', { op: 'configure' }));
  }

  async setup(req: WorkerSetupRequest): Promise<PodRecord> {
    await this.enter('setup', req.netns);
    const ctx = { op: 'setup', netns: req.netns };
    const section = tunnelSectionOf(req.podNetwork, this.type, ctx);
    this.requireNetns(req.netns, 'setup');
    const { store } = this.#d;
    const record = await store.read(podIdOf(req.netns));
    if (record === null) throw new PeerpodError('ESTATE', `no tunnel state for pod netns ${req.netns}: run inspect for this pod first`, { ...ctx, field: 'netns' });
    if (record.tunnelType !== this.type) {
      throw new PeerpodError('ESTATE', `pod netns ${req.netns} was inspected for tunnel type ${record.tunnelType}, not ${this.type}`, ctx);
    }
    await this.check(req, record);
    if (section.type === 'wireguard' && section.presharedKey !== undefined) await store.writeKey(record.id, 'psk', section.presharedKey);
    const next = { ...record, podVmIPs: [...req.podVmIPs], phase: 'setting-up' as const, updatedAt: this.stamp() };
    await store.write(next);
    try {
      if (this.setupFault !== null) throw this.setupFault();
      if (next.tunnelType === 'wireguard') await this.converge(next);
    } catch (e) {
      if (next.tunnelType === 'wireguard') await this.rollBack(next);
      else await store.write({ ...next, phase: 'inspected', updatedAt: this.stamp() });
      throw new PeerpodError('ESETUP', `tunnel setup for pod netns ${req.netns} failed and was rolled back`, { ...ctx, iface: record.device }, e);
    }
    const ready = { ...next, phase: 'ready' as const, updatedAt: this.stamp() };
    await store.write(ready);
    return ready;
  }

  /** The request against what inspect kept: the worker key (WireGuard), the VNI and port (VXLAN). */
  private async check(req: WorkerSetupRequest, record: PodRecord): Promise<void> {
    const ctx = { op: 'setup', netns: req.netns };
    const t = req.podNetwork.tunnel;
    if (record.tunnelType === 'vxlan' && t.type === 'vxlan') {
      if (t.id !== undefined && t.id !== record.vni) {
        throw new PeerpodError('EINVAL', `pod-network.vxlan-id ${t.id} is not the VNI ${record.vni} kept for pod netns ${req.netns}`, { ...ctx, field: 'pod-network.vxlan-id' });
      }
      if (t.port !== undefined && t.port !== record.port) {
        throw new PeerpodError('EINVAL', `pod-network.vxlan-port ${t.port} is not the port ${record.port} this pod was inspected with`, { ...ctx, field: 'pod-network.vxlan-port' });
      }
      return;
    }
    if (t.type !== 'wireguard') return;
    const worker = await this.#d.store.readKey(record.id, 'worker');
    if (worker === null) throw new PeerpodError('ESTATE', `the worker key of pod netns ${req.netns} is missing`, ctx);
    if (!worker.publicKey().equals(t.peerPublicKey)) {
      throw new PeerpodError('EINVAL', `pod-network.wireguard.peer-public-key does not match the worker key kept for pod netns ${req.netns}`, {
        ...ctx,
        field: 'pod-network.wireguard.peer-public-key',
      });
    }
  }

  async teardown(req: WorkerTeardownRequest): Promise<void> {
    await this.enter('teardown', req.netns);
    if (this.teardownFault !== null) throw this.teardownFault();
    const id = podIdOf(req.netns);
    const record = await this.#d.store.read(id).catch(() => null);
    await this.#d.backend.remove(record?.device ?? (this.type === 'vxlan' ? workerVxlanDeviceName(id) : workerDeviceName(id)));
    await this.#d.store.remove(id);
  }

  async converge(record: WireguardPodRecord): Promise<{ created: boolean }> {
    await this.enter('converge', record.netns);
    if (this.convergeFault !== null) throw this.convergeFault();
    if ((await this.#d.store.readKey(record.id, 'worker')) === null) {
      throw new PeerpodError('ESTATE', `the worker key of pod netns ${record.netns} is missing`, { op: 'converge', netns: record.netns });
    }
    const { backend } = this.#d;
    if (backend.devicesByName.has(record.device)) return { created: false };
    await backend.create(record.device, { mtu: record.mtu });
    backend.devicesByName.get(record.device)?.peers.push(vmPeerOf(record));
    return { created: true };
  }

  async rollBack(record: WireguardPodRecord, phase: PodPhase & ('inspected' | 'orphaned') = 'inspected'): Promise<void> {
    await this.enter('rollBack', record.netns);
    await this.#d.backend.remove(record.device);
    await this.#d.store.write({ ...record, phase, updatedAt: this.stamp() });
  }

  async nudgeHandshake(record: WireguardPodRecord): Promise<void> {
    await this.enter('nudge', record.netns);
    this.requireDevice(record, 'nudge');
  }

  async sendKeepalive(record: WireguardPodRecord): Promise<void> {
    await this.enter('keepalive', record.netns);
    this.requireDevice(record, 'keepalive');
  }

  /** A nudge or keepalive reconfigures the device, so there must be one, as the backend would say. */
  private requireDevice(record: WireguardPodRecord, op: string): void {
    if (!this.#d.backend.devicesByName.has(record.device)) {
      throw new PeerpodError('ENOTFOUND', `no WireGuard device ${record.device} (ENOENT)`, { op, iface: record.device, netns: record.netns });
    }
  }
}
