// The worker side of the `wireguard` tunnel: the three verbs CAA calls, per pod netns.
//
//   inspect (netns known) ─────────────────────┐
//   configure (CAA's; no netns) ─▶ pending/ ───┤ setup names the netns (recordFor)
//                                              ▼
//                                         [inspected] ──setup──▶ [setting-up] ──ok──▶ [ready]
//                                              ▲                      │ fail: roll back the network, keep the keys
//                                              └──────────────────────┘
//   teardown (from any phase, or none): remove everything, then the state folder. Idempotent.
//
// inspect reads the pod netns, makes the pod's key pairs and a preshared key, keeps the worker's
// private key in the state folder (0600) and returns the tunnel section for apf.json (with the
// pod VM's private key: apf.json is its only legitimate destination). setup creates the device in
// the host netns (where its UDP socket must live), configures it, moves it into the pod netns and
// routes the pod IP through it (worker-plumbing.ts). Every step compares with what the kernel and
// the device report, so setup re-run after a crash converges, and never rewrites an endpoint that
// is already in place.
import { PeerpodError, isPeerpodError } from '../../errors.js';
import type { Netns, NetnsFactory } from '../../netns/netns.js';
import type { PodStore, PodRecord, WireguardPodRecord } from '../../state/store.js';
import type { WorkerSetupRequest, WorkerTeardownRequest, WorkerTunnelDriver } from '../driver.js';
import { pendingIdOf, podIdOf } from '../../state/store.js';
import type { WireGuardBackend, Where } from '../../wireguard/backend.js';
import type { DeviceConfig, PeerConfig } from '../../wireguard/config.js';
import { generateKeyPair, generatePresharedKey, PublicKey, type SecretKey } from '../../wireguard/keys.js';
import type { PodNetwork, WireguardTunnel } from '../../podnetwork/types.js';
import { inspectPodNetns, toPodNetwork } from '../inspect-pod.js';
import { workerDeviceName } from './names.js';
import { applyPodPlumbing, removePodPlumbing } from './worker-plumbing.js';

/** IPv4 + UDP + WireGuard's own header and tag. 80 covers an IPv6 underlay too. */
export const WIREGUARD_OVERHEAD = 80;
export const DEFAULT_LISTEN_PORT = 51900;
export const DEFAULT_KEEPALIVE = 25;

export interface WorkerDriverDeps {
  backend: WireGuardBackend;
  netns: NetnsFactory;
  store: PodStore;
  /** Clock, for records. */
  now?: () => Date;
  /** Called after each setup step; crash tests use it to stop the process at a chosen point. */
  onStep?: (step: SetupStep) => void;
}

export type SetupStep = 'recorded' | 'created' | 'configured' | 'moved' | 'plumbed';
export const SETUP_STEPS: readonly SetupStep[] = ['recorded', 'created', 'configured', 'moved', 'plumbed'];

export interface WireguardWorkerOptions {
  /** The pod VM's UDP port (WG_PORT). */
  listenPort?: number;
  /** PersistentKeepalive in seconds (WG_KEEPALIVE). */
  keepalive?: number;
  /** An upper bound for the computed tunnel MTU (WG_MTU). */
  maxMtu?: number;
}

/** What CAA's Configure knows of a pod: the pod-network its own Inspect read, without a netns. */
export interface ConfigureRequest {
  /** MTU of the pod's interface on the worker. */
  podMtu: number;
  /** The pod's address, for the record and the logs. */
  podIP?: string;
  /** CAA's HOST_INTERFACE (a dedicated interface): its MTU bounds the tunnel's instead of the default route's. */
  hostInterface?: string;
  /** "namespace/name" of the Kubernetes pod. */
  pod?: string;
}

export class WireguardWorkerDriver implements WorkerTunnelDriver {
  readonly type = 'wireguard' as const;
  readonly #d: WorkerDriverDeps;
  readonly #listenPort: number;
  readonly #keepalive: number;
  readonly #maxMtu: number;

  constructor(deps: WorkerDriverDeps, opts: WireguardWorkerOptions = {}) {
    this.#d = deps;
    this.#listenPort = opts.listenPort ?? DEFAULT_LISTEN_PORT;
    this.#keepalive = opts.keepalive ?? DEFAULT_KEEPALIVE;
    this.#maxMtu = opts.maxMtu ?? 65535;
  }

  private now(): string {
    return (this.#d.now?.() ?? new Date()).toISOString();
  }

  async inspect(netnsPath: string): Promise<PodNetwork> {
    const ns = this.#d.netns.at(netnsPath);
    const pod = await inspectPodNetns(ns);
    const id = podIdOf(netnsPath);
    const { store } = this.#d;
    // Inspect twice for the same pod gives the same worker key, so a retried CreateVM stays valid
    // with a tunnel that may already be set up.
    let workerKey = await store.readKey(id, 'worker');
    if (workerKey === null) {
      workerKey = generateKeyPair().privateKey;
      await store.writeKey(id, 'worker', workerKey);
    }
    const vm = generateKeyPair();
    const mtu = Math.min(pod.mtu, this.#maxMtu, (await this.#d.netns.host().defaultRouteMtu()) - WIREGUARD_OVERHEAD);
    const wireguard: WireguardTunnel = {
      type: 'wireguard',
      privateKey: vm.privateKey,
      peerPublicKey: workerKey.publicKey(),
      presharedKey: generatePresharedKey(),
      listenPort: this.#listenPort,
      persistentKeepalive: this.#keepalive,
      mtu,
    };
    const previous = await store.read(id);
    await store.write({
      id,
      netns: netnsPath,
      tunnelType: this.type,
      device: workerDeviceName(id),
      podIP: pod.podIP,
      podInterface: pod.interface,
      vmPublicKey: vm.publicKey.toBase64(),
      workerPublicKey: wireguard.peerPublicKey.toBase64(),
      vmListenPort: wireguard.listenPort,
      keepalive: wireguard.persistentKeepalive,
      mtu,
      podVmIPs: previous?.podVmIPs ?? [],
      phase: previous?.phase ?? 'inspected',
      updatedAt: this.now(),
    });
    return toPodNetwork(pod, wireguard);
  }

  /**
   * CAA's Configure: the pod's key pairs and our section of its pod-network, before the pod netns
   * is known. The worker's half waits in the pending folder until setup names the netns and
   * brings the worker's public key back (store.ts, PendingTunnel).
   */
  async configure(req: ConfigureRequest): Promise<WireguardTunnel> {
    const host = this.#d.netns.host();
    let underlay: number;
    if (req.hostInterface === undefined) {
      underlay = await host.defaultRouteMtu();
    } else {
      const link = await host.link(req.hostInterface);
      if (link === null) {
        throw new PeerpodError('EINVAL', `hostInterface: no interface ${req.hostInterface} on this worker: expected CAA's HOST_INTERFACE`, {
          op: 'configure',
          iface: req.hostInterface,
          field: 'hostInterface',
        });
      }
      underlay = link.mtu;
    }
    const worker = generateKeyPair();
    const vm = generateKeyPair();
    const wireguard: WireguardTunnel = {
      type: 'wireguard',
      privateKey: vm.privateKey,
      peerPublicKey: worker.publicKey,
      presharedKey: generatePresharedKey(),
      listenPort: this.#listenPort,
      persistentKeepalive: this.#keepalive,
      mtu: Math.min(req.podMtu, this.#maxMtu, underlay - WIREGUARD_OVERHEAD),
    };
    const workerPublicKey = worker.publicKey.toBase64();
    await this.#d.store.writePending(
      {
        id: pendingIdOf(workerPublicKey),
        ...(req.pod === undefined ? {} : { pod: req.pod }),
        ...(req.podIP === undefined ? {} : { podIP: req.podIP }),
        vmPublicKey: vm.publicKey.toBase64(),
        workerPublicKey,
        vmListenPort: wireguard.listenPort,
        keepalive: wireguard.persistentKeepalive,
        mtu: wireguard.mtu,
        createdAt: this.now(),
      },
      { worker: worker.privateKey, ...(wireguard.presharedKey === undefined ? {} : { psk: wireguard.presharedKey }) },
    );
    return wireguard;
  }

  /** The pod's record; a tunnel configured for it (CAA's Configure) becomes its record here. */
  private async recordFor(req: WorkerSetupRequest, wireguard: WireguardTunnel): Promise<PodRecord | null> {
    const id = podIdOf(req.netns);
    const { store } = this.#d;
    const record = await store.read(id);
    if (record !== null) return record;
    const pendingId = pendingIdOf(wireguard.peerPublicKey.toBase64());
    const pending = await store.readPending(pendingId);
    if (pending === null) return null;
    if (wireguard.privateKey.publicKey().toBase64() !== pending.vmPublicKey) {
      throw new PeerpodError(
        'EINVAL',
        'pod-network.wireguard.private-key is not the pod VM key configured with this peer-public-key: the section was altered or mixed with another',
        { op: 'setup', netns: req.netns, field: 'pod-network.wireguard.private-key' },
      );
    }
    const adopted: WireguardPodRecord = {
      id,
      netns: req.netns,
      ...(pending.pod === undefined ? {} : { pod: pending.pod }),
      tunnelType: 'wireguard',
      device: workerDeviceName(id),
      podIP: req.podNetwork.podIp.address,
      podInterface: req.podNetwork.interfaceName,
      vmPublicKey: pending.vmPublicKey,
      workerPublicKey: pending.workerPublicKey,
      vmListenPort: pending.vmListenPort,
      keepalive: pending.keepalive,
      mtu: pending.mtu,
      podVmIPs: [],
      phase: 'inspected',
      updatedAt: this.now(),
    };
    return (await store.adoptPending(pendingId, adopted)) ? adopted : null;
  }

  async setup(req: WorkerSetupRequest): Promise<PodRecord> {
    const id = podIdOf(req.netns);
    const wireguard = wireguardOf(req.podNetwork, req.netns);
    const podIP = req.podNetwork.podIp.address;
    const podInterface = req.podNetwork.interfaceName;
    const { store } = this.#d;
    const ctx = { op: 'setup', netns: req.netns };
    const podNs = this.#d.netns.at(req.netns);
    if (!(await podNs.exists())) {
      throw new PeerpodError('ENOTFOUND', `pod netns ${req.netns} does not exist`, ctx);
    }
    const record = await this.recordFor(req, wireguard);
    const workerKey = await store.readKey(id, 'worker');
    if (record === null || workerKey === null) {
      throw new PeerpodError(
        'ESTATE',
        `no tunnel state for pod netns ${req.netns}, and no configured tunnel with this pod-network.wireguard.peer-public-key: ` +
          'run inspect (or CAA\'s Configure) for this pod first',
        { ...ctx, field: 'pod-network.wireguard.peer-public-key' },
      );
    }
    if (record.tunnelType !== 'wireguard') {
      throw new PeerpodError('ESTATE', `pod netns ${req.netns} was inspected for tunnel type ${record.tunnelType}, not wireguard`, ctx);
    }
    if (!workerKey.publicKey().equals(wireguard.peerPublicKey)) {
      throw new PeerpodError(
        'EINVAL',
        `pod-network.wireguard.peer-public-key does not match the worker key kept for pod netns ${req.netns}: ` +
          'the config comes from another inspect',
        { ...ctx, field: 'pod-network.wireguard.peer-public-key' },
      );
    }
    const podVmIPs = endpointFirst(req.podVmIPs, req.podNetwork.dedicated, req.netns);
    await podNs.requireLink(podInterface, 'setup');

    const vmIPsChanged = record.podVmIPs.join(',') !== podVmIPs.join(',');
    const next: WireguardPodRecord = {
      ...record,
      podIP,
      podInterface,
      vmPublicKey: wireguard.privateKey.publicKey().toBase64(),
      vmListenPort: wireguard.listenPort,
      keepalive: wireguard.persistentKeepalive,
      mtu: wireguard.mtu,
      podVmIPs,
      phase: 'setting-up',
      updatedAt: this.now(),
    };
    // The preshared key is kept (0600) so that a restarted sidecar can re-create a device alone.
    if (wireguard.presharedKey === undefined) await store.removeKey(id, 'psk');
    else await store.writeKey(id, 'psk', wireguard.presharedKey);
    await store.write(next);
    this.#d.onStep?.('recorded');
    try {
      await this.converge(next, { rewriteEndpoint: vmIPsChanged });
    } catch (e) {
      const err = new PeerpodError('ESETUP', `tunnel setup for pod netns ${req.netns} failed and was rolled back`, {
        ...ctx,
        iface: record.device,
      }, e);
      try {
        await this.removeNetwork(record.device, req.netns, podIP, podInterface);
        await store.write({ ...next, phase: 'inspected', updatedAt: this.now() });
      } catch (cleanup) {
        err.cleanupErrors.push(cleanup);
      }
      throw err;
    }
    const ready: WireguardPodRecord = { ...next, phase: 'ready', updatedAt: this.now() };
    await store.write(ready);
    return ready;
  }

  /**
   * Bring one pod's data plane to what its record says, from the record and the stored keys alone:
   * create the device if it is missing (born in the host netns), configure what differs, move it,
   * route. A working device is kept as it is (same ifindex, learned endpoint untouched). Used by
   * setup, and by the sidecar after a restart or when a wireguard-go process died.
   */
  async converge(record: WireguardPodRecord, opts: { rewriteEndpoint?: boolean } = {}): Promise<{ created: boolean }> {
    const { backend, store } = this.#d;
    const step = (s: SetupStep): void => this.#d.onStep?.(s);
    const device = record.device;
    const podNs = this.#d.netns.at(record.netns);
    const workerKey = await store.readKey(record.id, 'worker');
    if (workerKey === null) {
      throw new PeerpodError('ESTATE', `the worker key of pod netns ${record.netns} is missing`, {
        op: 'converge',
        netns: record.netns,
      });
    }
    const psk = await store.readKey(record.id, 'psk', 'preshared key');
    const endpointIP = record.podVmIPs[0];
    if (endpointIP === undefined) {
      throw new PeerpodError('ESTATE', `no pod VM IP recorded for pod netns ${record.netns}`, { op: 'converge', netns: record.netns });
    }
    let inPod = await podNs.link(device);
    const ownKind = backend.kind === 'kernel' ? 'wireguard' : 'tun';
    if (inPod !== null && inPod.kind !== ownKind) {
      // Made by the other backend (the node switched, e.g. userspace → kernel after an upgrade):
      // this backend cannot drive it, so it is replaced. The other's wireguard-go exits with its TUN.
      await podNs.ip(['link', 'del', 'dev', device], 'replace a device of the other backend', device);
      inPod = null;
    }
    if (inPod === null) {
      // Born here, so its UDP socket stays in the host netns when the TUN moves to the pod.
      await backend.create(device, { mtu: record.mtu });
    }
    step('created');
    // A device found in the pod netns is reached there (the kernel backend needs to be told where).
    const where = inPod === null ? {} : { netns: record.netns };
    await this.configureDevice(device, workerKey, record, psk, inPod === null || opts.rewriteEndpoint === true, endpointIP, where);
    step('configured');
    if (inPod === null) {
      await this.#d.netns
        .host()
        .ip(['link', 'set', 'dev', device, 'netns', record.netns], 'move device into the pod netns', device);
    }
    step('moved');
    await applyPodPlumbing(podNs, { device, podInterface: record.podInterface, podIP: record.podIP });
    step('plumbed');
    return { created: inPod === null };
  }

  /**
   * Start a fresh handshake now. WireGuard sends at most one initiation per peer every 5 s
   * (REKEY_TIMEOUT), and gives up after 90 s; a peer that is removed and added again has no such
   * history, and adding it with a keepalive sends one at once, which starts the handshake.
   */
  async nudgeHandshake(record: WireguardPodRecord): Promise<void> {
    const vmKey = PublicKey.fromBase64(record.vmPublicKey);
    const psk = await this.#d.store.readKey(record.id, 'psk', 'preshared key');
    const endpointIP = record.podVmIPs[0];
    const where = { netns: record.netns };
    await this.#d.backend.configure(record.device, { peers: [{ publicKey: vmKey, remove: true }] }, where);
    await this.#d.backend.configure(record.device, {
      peers: [
        {
          publicKey: vmKey,
          presharedKey: psk,
          ...(endpointIP === undefined ? {} : { endpoint: formatEndpoint(endpointIP, record.vmListenPort) }),
          replaceAllowedIPs: true,
          allowedIPs: [`${record.podIP}/32`],
          persistentKeepalive: record.keepalive === 0 ? 1 : record.keepalive,
        },
      ],
    }, where);
    if (record.keepalive === 0) {
      await this.#d.backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    }
  }

  /**
   * Send one keepalive now, without touching the session: turning PersistentKeepalive on sends one
   * at once. The pod VM then sees our current NAT mapping and follows it (roaming).
   */
  async sendKeepalive(record: WireguardPodRecord): Promise<void> {
    const vmKey = PublicKey.fromBase64(record.vmPublicKey);
    const where = { netns: record.netns };
    await this.#d.backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    await this.#d.backend.configure(record.device, {
      peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: record.keepalive === 0 ? 1 : record.keepalive }],
    }, where);
    if (record.keepalive === 0) {
      await this.#d.backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    }
  }

  /** Roll back a setup that was interrupted (the record says setting-up) and keep the keys. */
  async rollBack(record: WireguardPodRecord): Promise<void> {
    await this.removeNetwork(record.device, record.netns, record.podIP, record.podInterface);
    await this.#d.store.write({ ...record, phase: 'inspected', updatedAt: this.now() });
  }

  /** Bring the device's WireGuard config to what is wanted, touching only what differs. */
  private async configureDevice(
    device: string,
    workerKey: SecretKey,
    record: WireguardPodRecord,
    psk: SecretKey | null,
    rewriteEndpoint: boolean,
    endpointIP: string,
    where: Where,
  ): Promise<void> {
    const { backend } = this.#d;
    const actual = await backend.device(device, where);
    const vmKey = PublicKey.fromBase64(record.vmPublicKey);
    const peer = actual.peers.find((p) => p.publicKey.equals(vmKey));
    const change: DeviceConfig = {};
    if (actual.privateKey === null || !actual.privateKey.equals(workerKey)) change.privateKey = workerKey;
    const others = actual.peers.filter((p) => !p.publicKey.equals(vmKey));
    if (others.length > 0) change.replacePeers = true;
    const want: PeerConfig = { publicKey: vmKey };
    let touched = false;
    if (peer === undefined || !sameSecret(peer.presharedKey, psk)) {
      want.presharedKey = psk;
      touched = true;
    }
    // The endpoint is set when the peer is new, has none, or CAA gave new VM IPs. An endpoint that
    // is in place may have been learned through NAT, and is never overwritten otherwise.
    if (peer === undefined || peer.endpoint === null || rewriteEndpoint) {
      want.endpoint = formatEndpoint(endpointIP, record.vmListenPort);
      touched = true;
    }
    const allowed = [`${record.podIP}/32`];
    if (peer === undefined || peer.allowedIPs.join(',') !== allowed.join(',')) {
      want.replaceAllowedIPs = true;
      want.allowedIPs = allowed;
      touched = true;
    }
    if (peer === undefined || peer.persistentKeepalive !== record.keepalive) {
      want.persistentKeepalive = record.keepalive;
      touched = true;
    }
    if (touched || change.replacePeers === true) change.peers = [want];
    if (Object.keys(change).length > 0) await backend.configure(device, change, where);
  }

  /** Remove the tunnel's routing and device, wherever setup got to, and what the backend held for the pod netns. */
  private async removeNetwork(device: string, netnsPath: string, podIP?: string, podInterface?: string): Promise<void> {
    const podNs: Netns = this.#d.netns.at(netnsPath);
    if (await podNs.exists()) {
      const p: Parameters<typeof removePodPlumbing>[1] = { device };
      if (podIP !== undefined) p.podIP = podIP;
      if (podInterface !== undefined) p.podInterface = podInterface;
      await removePodPlumbing(podNs, p);
    }
    await this.#d.backend.remove(device);
    await this.#d.backend.release(netnsPath);
  }

  async teardown(req: WorkerTeardownRequest): Promise<void> {
    const id = podIdOf(req.netns);
    const record = await this.#d.store.read(id).catch((e: unknown) => {
      if (isPeerpodError(e, 'ESTATE')) return null; // a corrupt record must not block the teardown
      throw e;
    });
    const device = record?.device ?? workerDeviceName(id);
    try {
      await this.removeNetwork(device, req.netns, record?.podIP);
    } catch (e) {
      throw new PeerpodError('ETEARDOWN', `tunnel teardown for pod netns ${req.netns} failed`, {
        op: 'teardown',
        netns: req.netns,
        iface: device,
      }, e);
    }
    await this.#d.store.remove(id);
  }
}

/**
 * The pod VM's addresses with the tunnel's endpoint first: the first address, or with CAA's
 * `dedicated` (a second interface on both sides for pod traffic), the second, as CAA's VXLAN does.
 */
export function endpointFirst(podVmIPs: readonly string[], dedicated: boolean, netns: string): string[] {
  const ctx = { op: 'setup', netns, field: 'podVmIPs' };
  if (podVmIPs.length === 0) {
    throw new PeerpodError('EINVAL', 'no pod VM IP given: expected at least one IPv4 or IPv6 address', ctx);
  }
  if (!dedicated) return [...podVmIPs];
  const [primary, dedicatedIP, ...rest] = podVmIPs;
  if (primary === undefined || dedicatedIP === undefined) {
    throw new PeerpodError(
      'EINVAL',
      'pod-network.dedicated is true but only one pod VM IP was given: expected the primary and the dedicated interface\'s address',
      ctx,
    );
  }
  return [dedicatedIP, primary, ...rest];
}

export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function sameSecret(a: SecretKey | null, b: SecretKey | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

/** The WireGuard options of a pod-network, or a clear error naming the field. */
export function wireguardOf(p: PodNetwork, netns: string): WireguardTunnel {
  if (p.tunnel.type !== 'wireguard') {
    throw new PeerpodError(
      'EINVAL',
      `pod-network.tunnel-type is "${p.tunnel.type}", but this is the wireguard driver`,
      { op: 'setup', netns, field: 'pod-network.tunnel-type' },
    );
  }
  return p.tunnel;
}
