// Reads a pod netns the way CAA's Inspect does: the primary interface (the one that carries the
// default route), its IPv4 address with prefix, MAC, MTU, routes and permanent neighbours; and,
// beyond CAA (whose Inspect reads IPv4 only), its global IPv6 addresses and IPv6 routes too. A
// dual-stack pod keeps its IPv4 address as `podip` and lists the IPv6 ones as extra addresses; an
// IPv6-only pod has its IPv6 address as `podip`. The result is tunnel-agnostic; each tunnel driver
// adds its own section on top (the wireguard one carries the extra addresses).
import { PeerpodError } from '../errors.js';
import type { Netns } from '../netns/netns.js';
import { canonicalIp } from '../ip.js';
import {
  ROUTE_PROTOCOL_NAMES,
  ROUTE_SCOPES,
  type IpPrefix,
  type PodNetwork,
  type PodRoute,
  type RouteScope,
  type TunnelOptions,
} from '../podnetwork/types.js';

export interface PodInterfaceRoute {
  dst: string;
  gw: string;
  dev: string;
  protocol?: string;
  scope?: string;
}

export interface PodInterfaceNeighbor {
  ip: string;
  hwAddr: string;
  dev: string;
}

export interface PodInterface {
  interface: string;
  /** "198.18.1.21"; the first global IPv6 address when the pod has no IPv4 one. */
  podIP: string;
  prefixLength: number;
  /** The pod's other global addresses (a dual-stack pod's IPv6 ones). */
  extraAddresses: IpPrefix[];
  hwAddr: string;
  mtu: number;
  routes: PodInterfaceRoute[];
  neighbors: PodInterfaceNeighbor[];
}

export async function inspectPodNetns(ns: Netns): Promise<PodInterface> {
  if (!(await ns.exists())) {
    throw new PeerpodError('ENOTFOUND', `pod netns ${ns.label} does not exist`, {
      op: 'inspect',
      netns: ns.label,
      field: 'netns',
    });
  }
  const routes4 = await ns.routes({ family: 4 });
  const routes6 = (await ns.ipv6Unavailable()) === null ? await ns.routes({ family: 6 }) : [];
  const def = [...routes4, ...routes6].find((r) => r.dst === 'default' && r.dev !== undefined);
  const links = await ns.links();
  const name = def?.dev ?? (links.some((l) => l.ifname === 'eth0') ? 'eth0' : undefined);
  const link = links.find((l) => l.ifname === name);
  if (name === undefined || link === undefined) {
    throw new PeerpodError(
      'ENOTFOUND',
      `pod netns ${ns.label} has no primary interface: expected a default route or an interface named eth0`,
      { op: 'inspect', netns: ns.label },
    );
  }
  const global = (await ns.addresses(name)).filter((a) => a.scope === 'global');
  // IPv4 first: CAA's podip is the IPv4 address whenever there is one.
  const [addr, ...others] = [...global.filter((a) => a.family === 'inet'), ...global.filter((a) => a.family === 'inet6')];
  if (addr === undefined) {
    throw new PeerpodError('ENOTFOUND', `interface ${name} in pod netns ${ns.label} has no global IPv4 or IPv6 address`, {
      op: 'inspect',
      netns: ns.label,
      iface: name,
    });
  }
  const neighbours = await ns.neighbours();
  return {
    interface: name,
    podIP: addr.local,
    prefixLength: addr.prefixlen,
    extraAddresses: others.map((a) => prefixOf(a.local, a.prefixlen)),
    hwAddr: link.address ?? '',
    mtu: link.mtu,
    // IPv6's link-local route (fe80::/64) is every link's own: the pod VM's device makes none.
    routes: [...routes4, ...routes6]
      .filter((r) => r.dev === name && !r.dst.startsWith('fe80:'))
      .map((r) => {
        const route: PodInterfaceRoute = { dst: r.dst === 'default' ? '' : r.dst, gw: r.gateway ?? '', dev: name };
        if (r.protocol !== undefined) route.protocol = r.protocol;
        if (r.scope !== undefined) route.scope = r.scope;
        return route;
      }),
    neighbors: neighbours
      .filter((n) => n.dev === name && n.lladdr !== undefined && (n.state ?? []).includes('PERMANENT'))
      .map((n) => ({ ip: n.dst, hwAddr: n.lladdr ?? '', dev: name })),
  };
}

const PROTOCOL_NUMBERS = new Map([...ROUTE_PROTOCOL_NAMES].map(([n, name]) => [name, n]));

function prefixOf(text: string, prefixLength?: number): IpPrefix {
  const [addr = '', len] = text.split('/');
  const address = canonicalIp(addr);
  if (address === undefined) throw new PeerpodError('EINVAL', `iproute2 reported an unreadable address ${JSON.stringify(text)}`);
  const family = address.includes(':') ? 6 : 4;
  return { address, family, prefixLength: prefixLength ?? (len === undefined ? (family === 4 ? 32 : 128) : Number(len)) };
}

/** The pod-network document for a pod interface and the tunnel's own options. */
export function toPodNetwork(pod: PodInterface, tunnel: TunnelOptions): PodNetwork {
  const routes = pod.routes.map((r) => {
    const out: { -readonly [K in keyof PodRoute]: PodRoute[K] } = { dev: r.dev };
    if (r.dst !== '') out.dst = prefixOf(r.dst);
    if (r.gw !== '') out.gw = r.gw;
    const proto = r.protocol === undefined ? undefined : (PROTOCOL_NUMBERS.get(r.protocol) ?? Number(r.protocol));
    if (proto !== undefined && Number.isInteger(proto) && proto > 0 && proto < 256) out.protocol = proto;
    if (r.scope !== undefined && (ROUTE_SCOPES as readonly string[]).includes(r.scope)) out.scope = r.scope as RouteScope;
    return out;
  });
  const p: PodNetwork = {
    podIp: prefixOf(pod.podIP, pod.prefixLength),
    interfaceName: pod.interface,
    routes,
    neighbors: pod.neighbors.map((n) => ({ ip: n.ip, hwAddr: n.hwAddr, dev: n.dev, state: 'permanent' as const })),
    mtu: pod.mtu,
    index: 0,
    dedicated: false,
    externalNetViaPodVm: false,
    tunnel,
    ...(pod.hwAddr === '' ? {} : { podHwAddr: pod.hwAddr }),
  };
  return p;
}
