// The parsed form of CAA's `pod-network` object (its Go tunneler.Config) and of the apf.json document
// around it: plain values with camelCase names, keys as PublicKey/SecretKey, addresses as canonical
// text. The tunnel options are a union on the tunnel type, so VXLAN fields never sit next to
// WireGuard ones. Reading and writing the JSON spelling lives in schema.ts; acting on the values
// is for the tunnel drivers.
import type { PublicKey, SecretKey } from '../wireguard/keys.js';
import type { IpPrefix } from '../ip.js';

export type { IpFamily, IpPrefix } from '../ip.js';

/** Every tunnel type this project knows. A reader may accept fewer (see PodNetworkReadOptions). */
export const TUNNEL_TYPES = ['vxlan', 'wireguard'] as const;
export type TunnelType = (typeof TUNNEL_TYPES)[number];

/** CAA's route scopes, as vishvananda/netlink names them. "universe" is Go's zero, so it is absent here. */
export const ROUTE_SCOPES = ['site', 'link', 'host', 'nowhere'] as const;
export type RouteScope = (typeof ROUTE_SCOPES)[number];

/** Neighbour states CAA's netops knows. "none" is Go's zero, so it is absent here. */
export const NEIGHBOR_STATES = [
  'incomplete',
  'reachable',
  'stale',
  'delay',
  'probe',
  'failed',
  'noarp',
  'permanent',
] as const;
export type NeighborState = (typeof NEIGHBOR_STATES)[number];

/**
 * rtnetlink route protocol numbers with the names vishvananda/netlink prints for them (and so CAA
 * writes). Any other number is written in decimal, as netlink does.
 */
export const ROUTE_PROTOCOL_NAMES: ReadonlyMap<number, string> = new Map([
  [1, 'redirect'],
  [2, 'kernel'],
  [3, 'boot'],
  [4, 'static'],
  [8, 'gated'],
  [9, 'ra'],
  [10, 'mrt'],
  [11, 'zebra'],
  [12, 'bird'],
  [13, 'dnrouted'],
  [14, 'xorp'],
  [15, 'ntk'],
  [16, 'dhcp'],
  [17, 'mrouted'],
  [42, 'babel'],
  [186, 'bgp'],
  [187, 'isis'],
  [188, 'ospf'],
  [189, 'rip'],
  [192, 'eigrp'],
]);

export interface PodRoute {
  /** Absent for a default route (CAA writes ""). Host bits are always clear. */
  readonly dst?: IpPrefix;
  /** Canonical gateway address; absent for a route without one. Same family as dst. */
  readonly gw?: string;
  readonly dev?: string;
  /** rtnetlink protocol number 1-255; absent for RTPROT_UNSPEC. */
  readonly protocol?: number;
  /** Absent for the universe scope. */
  readonly scope?: RouteScope;
}

export interface PodNeighbor {
  /** Canonical address. */
  readonly ip: string;
  /** Lowercase, colon-separated. */
  readonly hwAddr: string;
  readonly dev: string;
  readonly state?: NeighborState;
}

export interface VxlanTunnel {
  readonly type: 'vxlan';
  /** UDP port of the VXLAN device; absent means the kernel's default. */
  readonly port?: number;
  /** VXLAN network identifier; absent means VNI 0 (Go omits a zero). */
  readonly id?: number;
}

export interface WireguardTunnel {
  readonly type: 'wireguard';
  /**
   * The pod VM's own private key. The worker generated it, since the channel is one-way. Absent
   * only where a reader allowed it (the worker's setup, which has the public key from inspect).
   */
  readonly privateKey?: SecretKey;
  /** The worker's public key: the one peer of the pod VM. */
  readonly peerPublicKey: PublicKey;
  readonly presharedKey?: SecretKey;
  /** UDP port the pod VM listens on (the worker initiates to it). */
  readonly listenPort: number;
  /** Seconds; 0 disables. */
  readonly persistentKeepalive: number;
  /** MTU of the WireGuard device, as the worker computed it (min of pod MTU and underlay − 80). */
  readonly mtu: number;
  /**
   * The pod's addresses besides `podip` (`extra-pod-ips`): a dual-stack pod's IPv6 address, since
   * CAA's `podip` stays the IPv4 one. Absent when the pod has only `podip`.
   */
  readonly extraPodIps?: readonly IpPrefix[];
}

export type TunnelOptions = VxlanTunnel | WireguardTunnel;

export interface PodNetwork {
  readonly podIp: IpPrefix;
  /** Lowercase, colon-separated; absent when CAA wrote "". */
  readonly podHwAddr?: string;
  /** Name of the pod's interface, which the tunnel device takes inside the pod netns. */
  readonly interfaceName: string;
  /** The worker's address on its primary (or dedicated) interface. Required for VXLAN. */
  readonly workerNodeIp?: IpPrefix;
  readonly routes: readonly PodRoute[];
  readonly neighbors: readonly PodNeighbor[];
  /** MTU of the pod's interface on the worker. */
  readonly mtu: number;
  /** CAA's per-worker pod index (it derives the VXLAN ID from it). */
  readonly index: number;
  readonly dedicated: boolean;
  readonly externalNetViaPodVm: boolean;
  readonly tunnel: TunnelOptions;
}

/** RFC 8200's minimum link MTU: a device below it loses its IPv6 addresses. */
export const IPV6_MIN_MTU = 1280;

/** Every address of the pod: `podip` first, then the wireguard section's `extra-pod-ips`. */
export function podAddresses(p: PodNetwork): IpPrefix[] {
  return [p.podIp, ...(p.tunnel.type === 'wireguard' ? (p.tunnel.extraPodIps ?? []) : [])];
}

/** Whether the pod has an IPv6 address, so the tunnel must carry IPv6 (and its MTU be 1280 or more). */
export function carriesIpv6(p: PodNetwork): boolean {
  return podAddresses(p).some((a) => a.family === 6);
}

export interface ApfDocument {
  readonly podNetwork: PodNetwork;
  readonly podNamespace?: string;
  readonly podName?: string;
}
