// A WireGuard backend kept in memory, for unit tests; it passes the backend contract
// (test/contract/backend.contract.ts) but for the cases that need a data plane. It checks a change
// as the UAPI encoder does (EINVAL before anything is applied), applies it with WireGuard's
// semantics (absent = unchanged, null or 0 clears, allowed IPs masked and owned by one peer only,
// replacePeers, updateOnly, remove). Each device is also a link, whose MTU and netns live in a
// `DeviceLinks`: by default a small model of its own (a test moves a device with moveDevice, as
// `ip link set … netns` would), or a FakeNetnsWorld (test/fakes/netns.ts, through netnsWorldLinks),
// where the device is a wireguard link that the netns fake moves, lists and deletes like any other;
// a device whose link is gone (deleted, or its netns with it) is gone, as wireguard-go exits when
// its TUN dies. `kind` picks how a moved device is reached: userspace ignores `where` (its socket
// stays here), kernel finds only what is in the netns named. Handshakes and traffic happen only
// when a test says so (handshake()). A test may also reach into devicesByName, make every device()
// fail (fault), and read the calls.
import { PeerpodError } from '../../src/errors.js';
import { formatIpAddress, networkAddress, parseIpAddress } from '../../src/ip.js';
import type { BackendKind, CreateOptions, WireGuardBackend, Where } from '../../src/wireguard/backend.js';
import { emptyPeer, type Device, type DeviceConfig, type Peer } from '../../src/wireguard/config.js';
import type { PublicKey } from '../../src/wireguard/keys.js';
import { assertDeviceName } from '../../src/wireguard/uapi/client.js';
import { encodeSet } from '../../src/wireguard/uapi/codec.js';
import type { FakeNetnsWorld } from './netns.js';

const MIN_MTU = 68;
const MAX_MTU = 65_535;

/** The links behind a backend's devices: where each is, its MTU, and whether a netns exists. */
export interface DeviceLinks {
  /** A wireguard link `name` appears in the caller's netns; EBACKEND when that name is taken. */
  add(name: string, mtu: number): void;
  /** The netns the device's link is in now (null: the caller's), or undefined when the link is gone. */
  locate(name: string): string | null | undefined;
  /** The link's MTU, or undefined when it is gone. */
  mtu(name: string): number | undefined;
  /** `ip link set dev <name> netns <path>`, from the caller's netns. */
  move(name: string, netnsPath: string): void;
  /** The link goes, wherever it is; nothing when it is gone already. */
  remove(name: string): void;
  netnsExists(path: string): boolean;
}

/** The default links: a map of their own, where a netns exists when its path is in `namespaces`. */
export class MemoryLinks implements DeviceLinks {
  readonly namespaces = new Set<string>();
  readonly #links = new Map<string, { netns: string | null; mtu: number }>();
  readonly #exists: (path: string) => boolean;

  constructor(netnsExists?: (path: string) => boolean) {
    this.#exists = netnsExists ?? ((p) => this.namespaces.has(p));
  }

  add(name: string, mtu: number): void {
    this.#links.set(name, { netns: null, mtu });
  }

  locate(name: string): string | null | undefined {
    const l = this.#links.get(name);
    // A link in a netns that was deleted went with it.
    if (l !== undefined && l.netns !== null && !this.#exists(l.netns)) this.#links.delete(name);
    return this.#links.get(name)?.netns;
  }

  mtu(name: string): number | undefined {
    return this.locate(name) === undefined ? undefined : this.#links.get(name)?.mtu;
  }

  move(name: string, netnsPath: string): void {
    const l = this.#links.get(name);
    if (l === undefined || l.netns !== null) {
      throw new PeerpodError('ENETNS', `move ${name}: no such device in the caller's netns`, { op: 'link-netns', iface: name });
    }
    if (!this.#exists(netnsPath)) throw new PeerpodError('ENETNS', `move ${name}: no netns ${netnsPath}`, { op: 'link-netns', iface: name });
    l.netns = netnsPath;
  }

  remove(name: string): void {
    this.#links.delete(name);
  }

  netnsExists(path: string): boolean {
    return this.#exists(path);
  }
}

/** A link of the netns fake, as far as the backend looks at it. */
interface WorldLink {
  name: string;
  mtu: number;
  ns: { path: string | null; links: Map<string, unknown> };
}

/** Devices as wireguard links of a FakeNetnsWorld, born in its host netns. */
export function netnsWorldLinks(world: FakeNetnsWorld): DeviceLinks {
  const made = new Map<string, WorldLink>();
  const alive = (name: string): WorldLink | undefined => {
    const l = made.get(name);
    // Deleted (or gone with its netns): no longer in the links of the netns it was last in.
    if (l !== undefined && (l.ns.links.get(l.name) !== l || world.space(l.ns.path) === undefined)) made.delete(name);
    return made.get(name);
  };
  return {
    add(name, mtu) {
      if (world.space(null)?.links.has(name) === true) {
        throw new PeerpodError('EBACKEND', `cannot create WireGuard device ${name}: a link of that name exists`, { op: 'create', iface: name });
      }
      world.addLink(null, name, { kind: 'wireguard', mtu });
      made.set(name, world.space(null)!.links.get(name) as WorldLink);
    },
    locate: (name) => alive(name)?.ns.path,
    mtu: (name) => alive(name)?.mtu,
    move(name, netnsPath) {
      const l = alive(name);
      const to = world.space(netnsPath);
      if (l === undefined || l.ns.path !== null || to === undefined) {
        throw new PeerpodError('ENETNS', `move ${name} to ${netnsPath}: no such device here, or no such netns`, { op: 'link-netns', iface: name });
      }
      world.moveLink(l as Parameters<FakeNetnsWorld['moveLink']>[0], to, l.name);
    },
    remove(name) {
      const l = alive(name);
      if (l !== undefined) world.destroyLink(l as Parameters<FakeNetnsWorld['destroyLink']>[0]);
      made.delete(name);
    },
    netnsExists: (path) => world.space(path) !== undefined,
  };
}

export interface FakeBackendOptions {
  /** Default 'userspace'. */
  kind?: BackendKind;
  /** Default: MemoryLinks, with every netns in `netnsExists` (default: none but those a test adds to `namespaces`). */
  links?: DeviceLinks;
  /** For the default links only. */
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
  readonly links: DeviceLinks;
  /** The netns paths that exist, with the default links (MemoryLinks). */
  readonly namespaces: Set<string>;
  /** Devices made by create(), which live as long as their link. */
  readonly #made = new Set<string>();

  constructor(opts: FakeBackendOptions = {}) {
    this.kind = opts.kind ?? 'userspace';
    const memory = new MemoryLinks(opts.netnsExists);
    this.links = opts.links ?? memory;
    this.namespaces = memory.namespaces;
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
    if (!this.#alive(name)) {
      this.links.add(name, opts.mtu);
      this.#made.add(name);
      this.devicesByName.set(name, { name, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] });
    }
    if (this.kind === 'userspace') this.ours.add(name);
  }

  async devices(): Promise<string[]> {
    const names = [...this.devicesByName.keys()].filter((n) => this.#alive(n));
    return (this.kind === 'kernel' ? names.filter((n) => this.netnsOf(n) === null) : names).sort();
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
    if (this.kind === 'kernel' && this.#alive(name) && !this.#isIn(name, where)) return; // not in that netns
    this.links.remove(name);
    this.devicesByName.delete(name);
    this.ours.delete(name);
    this.#made.delete(name);
  }

  async owns(name: string): Promise<boolean> {
    return this.ours.has(name);
  }

  async release(netns: string): Promise<void> {
    this.released.push(netns);
  }

  async close(): Promise<void> {}

  // --- what a test (or the netns layer) does to the world around the backend -----------------

  /** `ip link set dev <name> netns <path>`: the device's plaintext side moves; its socket stays. */
  moveDevice(name: string, netnsPath: string): void {
    this.links.move(name, netnsPath);
  }

  /** The netns a device's link is in: its path, null for the caller's, undefined when it has none. */
  netnsOf(name: string): string | null | undefined {
    return this.links.locate(name);
  }

  /** The MTU of a device's link; undefined when it has none (gone, or a test added it directly). */
  mtuOf(name: string): number | undefined {
    return this.links.mtu(name);
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

  /**
   * Whether device `name` still runs. One a test put into devicesByName directly has no link and
   * lives as long as the entry; one made by create() dies with its link.
   */
  #alive(name: string): boolean {
    if (!this.devicesByName.has(name)) return false;
    if (this.links.locate(name) !== undefined || !this.#made.has(name)) return true;
    this.devicesByName.delete(name);
    this.ours.delete(name);
    this.#made.delete(name);
    return false;
  }

  #isIn(name: string, where: Where | undefined): boolean {
    return (this.netnsOf(name) ?? null) === (where?.netns ?? null);
  }

  /** The device as `where` reaches it, or ENOTFOUND as the real backends answer. */
  #find(name: string, where: Where | undefined, op: string): Device {
    assertDeviceName(name);
    if (where?.netns !== undefined && !this.links.netnsExists(where.netns)) {
      throw new PeerpodError('ENOTFOUND', `WireGuard device ${name}: its netns ${where.netns} is gone`, { op, iface: name, netns: where.netns });
    }
    const d = this.#alive(name) ? this.devicesByName.get(name) : undefined;
    if (d === undefined || (this.kind === 'kernel' && !this.#isIn(name, where))) {
      throw new PeerpodError('ENOTFOUND', `no WireGuard device ${name} (ENOENT)`, { op, iface: name, netns: where?.netns });
    }
    return d;
  }
}
