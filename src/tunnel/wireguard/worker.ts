// The worker side of the `wireguard` tunnel: the three verbs CAA calls, per pod netns.
//
//   inspect (netns known) ─────────────────────┐
//   configure (CAA's; no netns) ─▶ pending/ ───┤ setup names the netns (recordFor)
//                                              ▼
//                                         [inspected] ──setup──▶ [setting-up] ──ok──▶ [ready]
//                                              ▲                      │ fail: roll back the network, keep the keys
//                                              └──────────────────────┘
//   any phase ──pod netns confirmed gone (sidecar)──▶ [orphaned]: no data plane, keys kept
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
import { IPV6_MIN_MTU, type IpPrefix, type PodNetwork, type WireguardTunnel } from '../../podnetwork/types.js';
import { parseIpAddress } from '../../ip.js';
import { inspectPodNetns, toPodNetwork } from '../inspect-pod.js';
import { workerDeviceName } from './names.js';
import { WIREGUARD_OVERHEAD, sameSecret, wireguardOf } from './tunnel-section.js';
import { applyPodPlumbing, hostPrefix, preparePodNetns, removePodPlumbing } from './worker-plumbing.js';

/** Outer IPv6 (40) + UDP (8) + WireGuard's header (16) and tag (16): an IPv4 underlay needs 20 less. */
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
    const id = podIdOf(netnsPath);
    const { store } = this.#d;
    // Inspect makes a new VM key pair: on a pod whose tunnel is set up, that would leave the
    // device with the old VM key and the record with the new one. CAA inspects a new pod instead.
    const previous = await store.read(id);
    if (previous !== null && (previous.tunnelType !== this.type || previous.phase === 'ready' || previous.phase === 'setting-up')) {
      const what = previous.tunnelType === this.type ? `a ${previous.phase === 'ready' ? 'ready' : 'half set-up'} tunnel` : `a ${previous.tunnelType} tunnel record`;
      throw new PeerpodError('ESTATE', `pod netns ${netnsPath} already has ${what}: tear it down first`, {
        op: 'inspect',
        netns: netnsPath,
        field: 'netns',
      });
    }
    const ns = this.#d.netns.at(netnsPath);
    const pod = await inspectPodNetns(ns);
    // Before any key is made: a pod refused here leaves nothing behind.
    const mtu = Math.min(pod.mtu, this.#maxMtu, (await this.#d.netns.host().defaultRouteMtu()) - WIREGUARD_OVERHEAD);
    const v6 = [pod.podIP, ...pod.extraAddresses.map((a) => a.address)].find((ip) => ip.includes(':'));
    if (v6 !== undefined && mtu < IPV6_MIN_MTU) {
      throw new PeerpodError(
        'EINVAL',
        `the tunnel MTU for pod netns ${netnsPath} would be ${mtu} (pod MTU ${pod.mtu}, underlay MTU − ${WIREGUARD_OVERHEAD}), ` +
          `below ${IPV6_MIN_MTU}, IPv6's minimum, but the pod has the IPv6 address ${v6}: raise the underlay MTU`,
        { op: 'inspect', netns: netnsPath, field: 'mtu' },
      );
    }
    // Inspect twice for the same pod (before its setup) gives the same worker key, so a retried
    // CreateVM stays valid.
    let workerKey = await store.readKey(id, 'worker');
    if (workerKey === null) {
      workerKey = generateKeyPair().privateKey;
      await store.writeKey(id, 'worker', workerKey);
    }
    const vm = generateKeyPair();
    const wireguard: WireguardTunnel = {
      type: 'wireguard',
      privateKey: vm.privateKey,
      peerPublicKey: workerKey.publicKey(),
      presharedKey: generatePresharedKey(),
      listenPort: this.#listenPort,
      persistentKeepalive: this.#keepalive,
      mtu,
      ...(pod.extraAddresses.length > 0 && { extraPodIps: pod.extraAddresses }),
    };
    await store.write({
      id,
      netns: netnsPath,
      tunnelType: this.type,
      device: workerDeviceName(id),
      podIP: pod.podIP,
      podInterface: pod.interface,
      ...extraPodIPsOf(wireguard),
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
    // Without the VM's private key (setup needs only what inspect recorded), the pending key stands.
    if (wireguard.privateKey !== undefined && wireguard.privateKey.publicKey().toBase64() !== pending.vmPublicKey) {
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
      ...extraPodIPsOf(wireguard),
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
      throw new PeerpodError('ENOTFOUND', `pod netns ${req.netns} does not exist`, { ...ctx, field: 'netns' });
    }
    const record = await this.recordFor(req, wireguard);
    const workerKey = await store.readKey(id, 'worker');
    if (record === null || workerKey === null) {
      throw new PeerpodError(
        'ESTATE',
        `no tunnel state for pod netns ${req.netns}, and no configured tunnel with this pod-network.wireguard.peer-public-key: ` +
          'run inspect (or CAA\'s Configure) for this pod first',
        { ...ctx, field: 'netns' },
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
    await this.endpointOf(podVmIPs[0]!, record); // a zone names an interface that exists, before anything changes
    await podNs.requireLink(podInterface, 'setup');

    const vmIPsChanged = record.podVmIPs.join(',') !== podVmIPs.join(',');
    const next: WireguardPodRecord = {
      ...record,
      podIP,
      podInterface,
      ...extraPodIPsOf(wireguard),
      // The VM key CAA passes wins (it may come from an earlier inspect); without it, inspect's.
      vmPublicKey: wireguard.privateKey?.publicKey().toBase64() ?? record.vmPublicKey,
      vmListenPort: wireguard.listenPort,
      keepalive: wireguard.persistentKeepalive,
      mtu: wireguard.mtu,
      podVmIPs,
      phase: 'setting-up',
      updatedAt: this.now(),
    };
    if (wireguard.extraPodIps === undefined) delete next.extraPodIPs;
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
        await this.removeNetwork(record.device, req.netns, podIPsOf(next), podInterface);
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
    const endpoint = await this.endpointOf(endpointIP, record);
    // A device found in the pod netns is reached there (the kernel backend needs to be told where).
    const where = inPod === null ? {} : { netns: record.netns };
    await this.configureDevice(device, workerKey, record, psk, inPod === null || opts.rewriteEndpoint === true, endpoint, where);
    step('configured');
    if (inPod === null) {
      await preparePodNetns(podNs, podIPsOf(record), device);
      await this.#d.netns
        .host()
        .ip(['link', 'set', 'dev', device, 'netns', record.netns], 'move device into the pod netns', device);
    }
    step('moved');
    await applyPodPlumbing(podNs, { device, podInterface: record.podInterface, podIPs: podIPsOf(record) });
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
          ...(endpointIP === undefined ? {} : { endpoint: await this.endpointOf(endpointIP, record) }),
          replaceAllowedIPs: true,
          allowedIPs: allowedIPsOf(record),
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

  /**
   * Remove the pod's data plane and keep its record and keys: after a setup that was interrupted
   * (back to inspected), or when the pod netns is gone (orphaned, until an explicit teardown).
   */
  async rollBack(record: WireguardPodRecord, phase: 'inspected' | 'orphaned' = 'inspected'): Promise<void> {
    await this.removeNetwork(record.device, record.netns, podIPsOf(record), record.podInterface);
    await this.#d.store.write({ ...record, phase, updatedAt: this.now() });
  }

  /**
   * The peer endpoint for a pod VM IP. A link-local one names its link by interface, which must
   * exist here, in the host netns where the device's UDP socket lives; wireguard-go takes the name,
   * the kernel's netlink only the interface index.
   */
  private async endpointOf(ip: string, record: WireguardPodRecord): Promise<string> {
    const pct = ip.indexOf('%');
    if (pct < 0) return formatEndpoint(ip, record.vmListenPort);
    const zone = ip.slice(pct + 1);
    const link = await this.#d.netns.host().link(zone);
    if (link === null) {
      throw new PeerpodError('EINVAL', `pod VM IP ${ip}: no interface ${zone} on this worker, where the tunnel's UDP socket lives`, {
        op: 'setup',
        netns: record.netns,
        iface: zone,
        field: 'podVmIPs',
      });
    }
    const scoped = this.#d.backend.kind === 'kernel' ? `${ip.slice(0, pct)}%${link.ifindex}` : ip;
    return formatEndpoint(scoped, record.vmListenPort);
  }

  /** Bring the device's WireGuard config to what is wanted, touching only what differs. */
  private async configureDevice(
    device: string,
    workerKey: SecretKey,
    record: WireguardPodRecord,
    psk: SecretKey | null,
    rewriteEndpoint: boolean,
    endpoint: string,
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
      want.endpoint = endpoint;
      touched = true;
    }
    const allowed = allowedIPsOf(record);
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
  private async removeNetwork(device: string, netnsPath: string, podIPs?: readonly string[], podInterface?: string): Promise<void> {
    const podNs: Netns = this.#d.netns.at(netnsPath);
    if (await podNs.exists()) {
      const p: Parameters<typeof removePodPlumbing>[1] = { device };
      if (podIPs !== undefined) p.podIPs = podIPs;
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
      await this.removeNetwork(device, req.netns, record === null ? undefined : podIPsOf(record));
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
  podVmIPs.forEach((ip, i) => checkPodVmIP(ip, { ...ctx, field: `podVmIPs[${i}]` }));
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

/**
 * A pod VM address the worker can send to: an IPv4 or IPv6 address; a link-local IPv6 one (a local
 * provider's host⇄guest link) needs the zone naming the worker's interface toward the guest
 * ("fe80::10%tap0"), since every link has the same fe80::/64, and only a link-local one may have it.
 */
export function checkPodVmIP(ip: string, ctx: { op: string; netns: string; field: string }): void {
  const pct = ip.indexOf('%');
  const bare = pct < 0 ? ip : ip.slice(0, pct);
  const zone = pct < 0 ? undefined : ip.slice(pct + 1);
  const parsed = parseIpAddress(bare);
  if (typeof parsed === 'string') {
    throw new PeerpodError('EINVAL', `pod VM IP ${JSON.stringify(ip)} is not an IP address: expected e.g. 203.0.113.10 or 2001:db8::10`, ctx);
  }
  const linkLocal = parsed.family === 6 && parsed.bytes[0] === 0xfe && (parsed.bytes[1]! & 0xc0) === 0x80;
  if (linkLocal && zone === undefined) {
    throw new PeerpodError(
      'EINVAL',
      `pod VM IP ${ip} is link-local but has no zone: expected the worker's interface toward the pod VM after a %, as ${ip}%tap0`,
      ctx,
    );
  }
  if (zone !== undefined && (!linkLocal || !/^[A-Za-z0-9_.-]{1,15}$/.test(zone))) {
    throw new PeerpodError(
      'EINVAL',
      `pod VM IP ${JSON.stringify(ip)}: ${linkLocal ? `${JSON.stringify(zone)} is not an interface name` : 'only a link-local IPv6 address (fe80::/10) takes a zone'}`,
      ctx,
    );
  }
}

/** The pod's addresses without prefix: podIP first. */
export function podIPsOf(record: Pick<WireguardPodRecord, 'podIP' | 'extraPodIPs'>): string[] {
  return [record.podIP, ...(record.extraPodIPs ?? [])];
}

/** The VM peer's AllowedIPs on the worker: each pod address alone, so no other source gets in. */
export function allowedIPsOf(record: Pick<WireguardPodRecord, 'podIP' | 'extraPodIPs'>): string[] {
  return podIPsOf(record).map(hostPrefix);
}

function extraPodIPsOf(t: WireguardTunnel): { extraPodIPs?: string[] } {
  const extra = (t.extraPodIps ?? []).map((a: IpPrefix) => a.address);
  return extra.length > 0 ? { extraPodIPs: extra } : {};
}

export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
