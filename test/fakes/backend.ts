// A WireGuard backend kept in memory, for unit tests; it passes the backend contract
// (test/contract/backend.contract.ts) but for the cases that need a data plane. It checks a change
// as the UAPI encoder does (EINVAL before anything is applied), applies it with WireGuard's
// semantics (absent = unchanged, null or 0 clears, allowed IPs masked and owned by one peer only,
// replacePeers, updateOnly, remove), and keeps each device's MTU and the netns it lives in, so a
// test can move a device (moveDevice) as `ip link set … netns` would. `kind` picks how a moved
// device is reached: userspace ignores `where` (its socket stays here), kernel finds only what is
// in the netns named. Handshakes and traffic happen only when a test says so (handshake()).
// A test may also reach into devicesByName, make every device() fail (fault), and read the calls.
import { PeerpodError } from '../../src/errors.js';
import { formatIpAddress, networkAddress, parseIpAddress } from '../../src/ip.js';
import type { BackendKind, CreateOptions, WireGuardBackend, Where } from '../../src/wireguard/backend.js';
import { emptyPeer, type Device, type DeviceConfig, type Peer } from '../../src/wireguard/config.js';
import type { PublicKey } from '../../src/wireguard/keys.js';
import { assertDeviceName } from '../../src/wireguard/uapi/client.js';
import { encodeSet } from '../../src/wireguard/uapi/codec.js';

const MIN_MTU = 68;
const MAX_MTU = 65_535;

export interface FakeBackendOptions {
  /** Default 'userspace'. */
  kind?: BackendKind;
  /** Whether a netns file exists; default: only the paths in `namespaces`. */
  netnsExists?: (path: string) => boolean;
}

/** The masked, canonical form WireGuard reports an allowed IP in ("10.9.0.5/24" → "10.9.0.0/24"). */
function canonicalCidr(cidr: string): string {
  const [addr = '', bits = ''] = cidr.split('/');
  const parsed = parseIpAddress(addr);
  if (typeof parsed === 'string') throw new PeerpodError('EINVAL', `not a CIDR: ${JSON.stringify(cidr)}`, { field: 'allowedIPs' });
  return `${formatIpAddress(networkAddress(parsed, Number(bits)))}/${Number(bits)}`;
}

function copyDevice(d: Device): Device {
  return { ...d, peers: d.peers.map((p) => ({ ...p, allowedIPs: [...p.allowedIPs] })) };
}

export class FakeBackend implements WireGuardBackend {
  readonly kind: BackendKind;
  /** The devices as the data plane would report them. A test may add or delete entries directly. */
  readonly devicesByName = new Map<string, Device>();
  /** "create <name>", "device <name>", "configure <name>", "remove <name>", in order. */
  readonly calls: string[] = [];
  /** When set, device() fails with this error for every name. */
  fault: (() => Error) | null = null;
  /** Devices whose traces (pid files) are in this backend's run folder. */
  readonly ours = new Set<string>();
  /** Netns paths whose held resources were released, in order. */
  readonly released: string[] = [];
  /** Netns paths that exist, unless netnsExists says otherwise. */
  readonly namespaces = new Set<string>();
  readonly #mtu = new Map<string, number>();
  /** Where each moved device lives; absent: the caller's netns, where it was born. */
  readonly #netnsOf = new Map<string, string>();
  readonly #netnsExists: (path: string) => boolean;

  constructor(opts: FakeBackendOptions = {}) {
    this.kind = opts.kind ?? 'userspace';
    this.#netnsExists = opts.netnsExists ?? ((p) => this.namespaces.has(p));
  }

  async create(name: string, opts: CreateOptions): Promise<void> {
    this.calls.push(`create ${name}`);
    assertDeviceName(name);
    if (!Number.isInteger(opts.mtu) || opts.mtu < MIN_MTU || opts.mtu > MAX_MTU) {
      throw new PeerpodError('EINVAL', `mtu must be an integer from ${MIN_MTU} to ${MAX_MTU}, got ${String(opts.mtu)}`, {
        op: 'create',
        iface: name,
        field: 'mtu',
      });
    }
    if (!this.devicesByName.has(name)) {
      this.devicesByName.set(name, { name, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] });
      this.#mtu.set(name, opts.mtu);
      this.#netnsOf.delete(name);
    }
    if (this.kind === 'userspace') this.ours.add(name);
  }

  async devices(): Promise<string[]> {
    const names = [...this.devicesByName.keys()];
    return (this.kind === 'kernel' ? names.filter((n) => !this.#netnsOf.has(n)) : names).sort();
  }

  async device(name: string, where?: Where): Promise<Device> {
    this.calls.push(`device ${name}`);
    if (this.fault !== null) throw this.fault();
    return copyDevice(this.#find(name, where, 'device'));
  }

  async configure(name: string, config: DeviceConfig, where?: Where): Promise<void> {
    this.calls.push(`configure ${name}`);
    const d = this.#find(name, where, 'configure');
    encodeSet(config); // every check the wire encoder makes, before anything is applied
    if (config.privateKey !== undefined) {
      d.privateKey = config.privateKey;
      d.publicKey = config.privateKey === null ? null : config.privateKey.publicKey();
    }
    if (config.listenPort !== undefined) d.listenPort = config.listenPort;
    if (config.firewallMark !== undefined) d.firewallMark = config.firewallMark;
    if (config.replacePeers === true) d.peers = [];
    for (const pc of config.peers ?? []) {
      const at = d.peers.findIndex((p) => p.publicKey.equals(pc.publicKey));
      if (pc.remove === true) {
        if (at >= 0) d.peers.splice(at, 1);
        continue;
      }
      if (at < 0 && pc.updateOnly === true) continue;
      let peer: Peer;
      if (at >= 0) {
        peer = d.peers[at]!;
      } else {
        peer = emptyPeer(pc.publicKey);
        d.peers.push(peer);
      }
      if (pc.presharedKey !== undefined) peer.presharedKey = pc.presharedKey;
      if (pc.endpoint !== undefined) peer.endpoint = pc.endpoint;
      if (pc.persistentKeepalive !== undefined) peer.persistentKeepalive = pc.persistentKeepalive;
      if (pc.replaceAllowedIPs === true) peer.allowedIPs = [];
      for (const cidr of (pc.allowedIPs ?? []).map(canonicalCidr)) {
        // An allowed IP routes to one peer only: giving it to this one takes it from any other.
        for (const other of d.peers) other.allowedIPs = other.allowedIPs.filter((c) => c !== cidr);
        peer.allowedIPs.push(cidr);
      }
    }
  }

  async remove(name: string, where?: Where): Promise<void> {
    this.calls.push(`remove ${name}`);
    assertDeviceName(name);
    if (this.kind === 'kernel' && this.devicesByName.has(name) && !this.#isIn(name, where)) return; // not in that netns
    this.devicesByName.delete(name);
    this.#mtu.delete(name);
    this.#netnsOf.delete(name);
    this.ours.delete(name);
  }

  async owns(name: string): Promise<boolean> {
    return this.ours.has(name);
  }

  async release(netns: string): Promise<void> {
    this.released.push(netns);
  }

  async close(): Promise<void> {}

  // --- what a test (or a fake netns layer) does to the world around the backend ---------------

  /** `ip link set dev <name> netns <path>`: the device's plaintext side moves; its socket stays. */
  moveDevice(name: string, netnsPath: string): void {
    if (!this.devicesByName.has(name) || this.#netnsOf.has(name)) {
      throw new PeerpodError('ENETNS', `move ${name}: no such device in the caller's netns`, { op: 'link-netns', iface: name });
    }
    if (!this.#netnsExists(netnsPath)) throw new PeerpodError('ENETNS', `move ${name}: no netns ${netnsPath}`, { op: 'link-netns', iface: name });
    this.#netnsOf.set(name, netnsPath);
  }

  /** The netns a device lives in: its path, null for the caller's, undefined when there is no such device. */
  netnsOf(name: string): string | null | undefined {
    return this.devicesByName.has(name) ? (this.#netnsOf.get(name) ?? null) : undefined;
  }

  /** The MTU a device got at create(); undefined when there is none (or a test added it directly). */
  mtuOf(name: string): number | undefined {
    return this.#mtu.get(name);
  }

  /** A handshake with `peer` of device `name` at `atSec` (default now), with traffic both ways. */
  handshake(name: string, peer: PublicKey, traffic: { atSec?: number; rxBytes?: number; txBytes?: number } = {}): void {
    const p = this.devicesByName.get(name)?.peers.find((x) => x.publicKey.equals(peer));
    if (p === undefined) throw new Error(`FakeBackend: device ${name} has no peer ${peer.toBase64()}`);
    p.lastHandshakeSec = traffic.atSec ?? Math.floor(Date.now() / 1000);
    p.lastHandshakeNsec = 0;
    p.rxBytes += traffic.rxBytes ?? 148;
    p.txBytes += traffic.txBytes ?? 92;
    p.protocolVersion = 1;
  }

  // -------------------------------------------------------------------------------------------

  #isIn(name: string, where: Where | undefined): boolean {
    return (this.#netnsOf.get(name) ?? null) === (where?.netns ?? null);
  }

  /** The device as `where` reaches it, or ENOTFOUND as the real backends answer. */
  #find(name: string, where: Where | undefined, op: string): Device {
    assertDeviceName(name);
    if (where?.netns !== undefined && !this.#netnsExists(where.netns)) {
      throw new PeerpodError('ENOTFOUND', `WireGuard device ${name}: its netns ${where.netns} is gone`, { op, iface: name, netns: where.netns });
    }
    const d = this.devicesByName.get(name);
    if (d === undefined || (this.kind === 'kernel' && !this.#isIn(name, where))) {
      throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name} (ENOENT)`, { op, iface: name, netns: where?.netns });
    }
    return d;
  }
}
