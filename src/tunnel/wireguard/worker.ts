// The worker side of the `wireguard` tunnel: the three verbs CAA calls, per pod netns.
//
// inspect knows the pod netns and writes the pod's record at once; CAA's configure does not know it
// yet, so its tunnel waits in pending/ until setup names the netns and adopts it (recordFor).
// The phases a pod's record goes through, and why, are drawn and enforced in ../../state/phase.ts.
//
// inspect reads the pod netns, makes the pod's key pairs and a preshared key, keeps the worker's
// private key in the state folder (0600) and returns the tunnel section for apf.json (with the
// pod VM's private key: apf.json is its only legitimate destination). setup follows the lifecycle
// every worker driver shares (../worker-lifecycle.ts: checks, record, build, rollback, ready), and
// builds by converge: observe the device and the pod netns, plan (worker-plan.ts, pure: create the
// device in the host netns, where its UDP socket must live, configure what differs, move it into
// the pod netns, route the pod IPs through it), apply (worker-apply.ts). So setup re-run after a
// crash converges, and never rewrites an endpoint that is already in place.
import { PeerpodError } from '../../errors.js';
import type { PodRecord, WireguardPodRecord } from '../../state/store.js';
import type { WorkerSetupRequest } from '../driver.js';
import { pendingIdOf, podIdOf } from '../../state/store.js';
import type { WireGuardBackend } from '../../wireguard/backend.js';
import { generateKeyPair, generatePresharedKey, PublicKey } from '../../wireguard/keys.js';
import type { IpPrefix, PodNetwork, WireguardTunnel } from '../../podnetwork/types.js';
import { parseIpAddress } from '../../ip.js';
import { inspectPodNetns, toPodNetwork } from '../inspect-pod.js';
import { WorkerLifecycle, type RemovalCause, type WorkerLifecycleDeps } from '../worker-lifecycle.js';
import { workerDeviceName } from './names.js';
import { WIREGUARD_OVERHEAD, checkIpv6Mtu, tunnelMtu, wireguardOf } from './tunnel-section.js';
import { applyWorker, observeWorker } from './worker-apply.js';
import { allowedIPsOf, desiredOf, endpointFor, planWorker, podIPsOf, zoneOf, type ConvergeStep, type WorkerAction } from './worker-plan.js';
import { removePodPlumbing } from './worker-plumbing.js';

export { SETUP_STEPS, type SetupStep } from './worker-plan.js';

export const DEFAULT_LISTEN_PORT = 51900;
export const DEFAULT_KEEPALIVE = 25;

/** A device rewritten or replaced because it differed from the pod's record, and why (no key in a reason). */
export interface DeviceChangeEvent {
  netns: string;
  device: string;
  reasons: string[];
}

export interface WorkerDriverDeps extends WorkerLifecycleDeps<ConvergeStep> {
  backend: WireGuardBackend;
  /**
   * Told when converge rewrites a device's WireGuard config, or replaces a device, because it
   * differed; never for a fresh device or one already right. The driver decides nothing with
   * it: the entry point logs it (Kilo's "rewritten only when it differs, with the reason").
   */
  onDeviceChange?: (change: DeviceChangeEvent) => void;
}

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

export class WireguardWorkerDriver extends WorkerLifecycle<WireguardPodRecord, ConvergeStep> {
  readonly type = 'wireguard' as const;
  readonly #backend: WireGuardBackend;
  readonly #listenPort: number;
  readonly #keepalive: number;
  readonly #maxMtu: number;
  readonly #onDeviceChange: ((change: DeviceChangeEvent) => void) | undefined;
  constructor(deps: WorkerDriverDeps, opts: WireguardWorkerOptions = {}) {
    super(deps);
    this.#backend = deps.backend;
    this.#onDeviceChange = deps.onDeviceChange;
    this.#listenPort = opts.listenPort ?? DEFAULT_LISTEN_PORT;
    this.#keepalive = opts.keepalive ?? DEFAULT_KEEPALIVE;
    this.#maxMtu = opts.maxMtu ?? 65535;
  }

  async inspect(netnsPath: string): Promise<PodNetwork> {
    const id = podIdOf(netnsPath);
    const { store } = this;
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
    const ns = this.netns.at(netnsPath);
    const pod = await inspectPodNetns(ns);
    // Before any key is made: a pod refused here leaves nothing behind.
    const mtu = tunnelMtu(pod.mtu, await this.netns.host().defaultRouteMtu(), this.#maxMtu);
    const v6 = [pod.podIP, ...pod.extraAddresses.map((a) => a.address)].find((ip) => ip.includes(':'));
    checkIpv6Mtu(mtu, v6, {
      where: `for pod netns ${netnsPath}`,
      from: `pod MTU ${pod.mtu}, underlay MTU − ${WIREGUARD_OVERHEAD}`,
      holder: 'the pod',
      advice: 'raise the underlay MTU',
    }, { op: 'inspect', netns: netnsPath });
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
    const host = this.netns.host();
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
      mtu: tunnelMtu(req.podMtu, underlay, this.#maxMtu),
    };
    const workerPublicKey = worker.publicKey.toBase64();
    await this.store.writePending(
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

  protected deviceNameOf(podId: string): string {
    return workerDeviceName(podId);
  }

  protected checkRequest(req: WorkerSetupRequest): void {
    wireguardOf(req.podNetwork, req.netns);
  }

  protected readonly noRecordHint =
    ', and no configured tunnel with this pod-network.wireguard.peer-public-key: run inspect (or CAA\'s Configure) for this pod first';

  /**
   * The pod's record, with its worker key; a tunnel configured for it (CAA's Configure) becomes
   * its record here.
   */
  protected override async find(req: WorkerSetupRequest): Promise<PodRecord | null> {
    const record = await this.recordFor(req, wireguardOf(req.podNetwork, req.netns));
    if (record === null) return null;
    return (await this.store.readKey(record.id, 'worker')) === null ? null : record;
  }

  private async recordFor(req: WorkerSetupRequest, wireguard: WireguardTunnel): Promise<PodRecord | null> {
    const id = podIdOf(req.netns);
    const { store } = this;
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

  protected async check(req: WorkerSetupRequest, record: WireguardPodRecord): Promise<WireguardPodRecord> {
    const wireguard = wireguardOf(req.podNetwork, req.netns);
    const workerKey = await this.store.readKey(record.id, 'worker');
    if (workerKey === null) {
      throw new PeerpodError('ESTATE', `the worker key of pod netns ${req.netns} is missing`, { op: 'setup', netns: req.netns });
    }
    if (!workerKey.publicKey().equals(wireguard.peerPublicKey)) {
      throw new PeerpodError(
        'EINVAL',
        `pod-network.wireguard.peer-public-key does not match the worker key kept for pod netns ${req.netns}: ` +
          'the config comes from another inspect',
        { op: 'setup', netns: req.netns, field: 'pod-network.wireguard.peer-public-key' },
      );
    }
    const podVmIPs = endpointFirst(req.podVmIPs, req.podNetwork.dedicated, req.netns);
    await this.endpointOf(podVmIPs[0]!, record); // a zone names an interface that exists, before anything changes
    const next: WireguardPodRecord = {
      ...record,
      podIP: req.podNetwork.podIp.address,
      podInterface: req.podNetwork.interfaceName,
      ...extraPodIPsOf(wireguard),
      // The VM key CAA passes wins (it may come from an earlier inspect); without it, inspect's.
      vmPublicKey: wireguard.privateKey?.publicKey().toBase64() ?? record.vmPublicKey,
      vmListenPort: wireguard.listenPort,
      keepalive: wireguard.persistentKeepalive,
      mtu: wireguard.mtu,
      podVmIPs,
    };
    if (wireguard.extraPodIps === undefined) delete next.extraPodIPs;
    return next;
  }

  /** The preshared key is kept (0600) so that a restarted sidecar can re-create a device alone. */
  protected override async beforeRecord(next: WireguardPodRecord, req: WorkerSetupRequest): Promise<void> {
    const psk = wireguardOf(req.podNetwork, req.netns).presharedKey;
    if (psk === undefined) await this.store.removeKey(next.id, 'psk');
    else await this.store.writeKey(next.id, 'psk', psk);
  }

  protected async build(next: WireguardPodRecord, found: WireguardPodRecord): Promise<void> {
    await this.converge(next, { rewriteEndpoint: found.podVmIPs.join(',') !== next.podVmIPs.join(',') });
  }

  /**
   * Bring one pod's data plane to what its record says, from the record and the stored keys alone:
   * observe the device and the pod netns, plan (worker-plan.ts), apply. A working device is kept as
   * it is (same ifindex, learned endpoint untouched). Used by setup, and by the sidecar after a
   * restart or when a wireguard-go process died.
   */
  async converge(record: WireguardPodRecord, opts: { rewriteEndpoint?: boolean } = {}): Promise<{ created: boolean }> {
    const { store } = this;
    const worker = await store.readKey(record.id, 'worker');
    if (worker === null) {
      throw new PeerpodError('ESTATE', `the worker key of pod netns ${record.netns} is missing`, {
        op: 'converge',
        netns: record.netns,
      });
    }
    const psk = await store.readKey(record.id, 'psk', 'preshared key');
    const vm = PublicKey.fromBase64(record.vmPublicKey);
    const desired = desiredOf(record, { worker, psk, vm }, this.#backend.kind, opts.rewriteEndpoint === true ? 'CAA gave new pod VM IPs' : undefined);
    const io = { backend: this.#backend, netns: this.netns };
    const actions = planWorker(desired, await observeWorker(io, desired));
    await applyWorker(io, desired, actions, (s) => this.step(s));
    this.reportChanges(record, actions);
    return { created: actions.some((a) => a.do === 'move-device') };
  }
  private reportChanges(record: WireguardPodRecord, actions: readonly WorkerAction[]): void {
    const report = this.#onDeviceChange;
    if (report === undefined) return;
    // A device created in this run is configured from nothing: that is setup, not a change.
    if (actions.some((a) => a.do === 'create-device') && !actions.some((a) => a.do === 'delete-device')) return;
    const reasons = actions.flatMap((a) => (a.do === 'delete-device' ? [a.reason] : a.do === 'configure-device' ? a.reasons : []));
    if (reasons.length > 0) report({ netns: record.netns, device: record.device, reasons });
  }

  /**
   * Start a fresh handshake now. WireGuard sends at most one initiation per peer every 5 s
   * (REKEY_TIMEOUT), and gives up after 90 s; a peer that is removed and added again has no such
   * history, and adding it with a keepalive sends one at once, which starts the handshake.
   */
  async nudgeHandshake(record: WireguardPodRecord): Promise<void> {
    const vmKey = PublicKey.fromBase64(record.vmPublicKey);
    const psk = await this.store.readKey(record.id, 'psk', 'preshared key');
    const endpointIP = record.podVmIPs[0];
    const where = { netns: record.netns };
    await this.#backend.configure(record.device, { peers: [{ publicKey: vmKey, remove: true }] }, where);
    await this.#backend.configure(record.device, {
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
      await this.#backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    }
  }

  /**
   * Send one keepalive now, without touching the session: turning PersistentKeepalive on sends one
   * at once. The pod VM then sees our current NAT mapping and follows it (roaming).
   */
  async sendKeepalive(record: WireguardPodRecord): Promise<void> {
    const vmKey = PublicKey.fromBase64(record.vmPublicKey);
    const where = { netns: record.netns };
    await this.#backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    await this.#backend.configure(record.device, {
      peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: record.keepalive === 0 ? 1 : record.keepalive }],
    }, where);
    if (record.keepalive === 0) {
      await this.#backend.configure(record.device, { peers: [{ publicKey: vmKey, updateOnly: true, persistentKeepalive: 0 }] }, where);
    }
  }

  /**
   * Remove the pod's data plane and keep its record and keys: after a setup that was interrupted
   * (back to inspected), or when the pod netns is gone (orphaned, until an explicit teardown).
   */
  async rollBack(record: WireguardPodRecord, phase: 'inspected' | 'orphaned' = 'inspected'): Promise<void> {
    await this.removeNetwork(record.netns, record.device, record, 'rollback');
    await this.store.write({ ...record, phase, updatedAt: this.now() });
  }

  /** The peer endpoint for a pod VM IP (worker-plan.ts, endpointFor), its zone's interface looked up. */
  private async endpointOf(ip: string, record: WireguardPodRecord): Promise<string> {
    const zone = zoneOf(ip);
    const ifindex = zone === undefined ? undefined : ((await this.netns.host().link(zone))?.ifindex ?? null);
    return endpointFor(ip, record.vmListenPort, this.#backend.kind, ifindex, { op: 'setup', netns: record.netns });
  }

  /**
   * Remove the tunnel's routing and device, wherever setup got to, and what the backend held for
   * the pod netns. A rollback knows the pod's interface; a teardown removes the proxy entries of
   * the pod IPs on any.
   */
  protected async removeNetwork(netnsPath: string, device: string, record: PodRecord | null, cause: RemovalCause): Promise<void> {
    const podNs = this.netns.at(netnsPath);
    if (await podNs.exists()) {
      const p: Parameters<typeof removePodPlumbing>[1] = { device };
      if (record !== null) p.podIPs = podIPsOf(record);
      if (cause === 'rollback' && record?.tunnelType === 'wireguard') p.podInterface = record.podInterface;
      await removePodPlumbing(podNs, p);
    }
    await this.#backend.remove(device);
    await this.#backend.release(netnsPath);
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

function extraPodIPsOf(t: WireguardTunnel): { extraPodIPs?: string[] } {
  const extra = (t.extraPodIps ?? []).map((a: IpPrefix) => a.address);
  return extra.length > 0 ? { extraPodIPs: extra } : {};
}
