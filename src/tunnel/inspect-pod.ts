// Reads a pod netns the way CAA's Inspect does: the primary interface (the one that carries the
// default route), its IPv4 address with prefix, MAC, MTU, routes and permanent neighbours. The
// result is tunnel-agnostic; each tunnel driver adds its own section on top.
import { PeerpodError } from '../errors.js';
import type { Netns } from '../netns/netns.js';
import { canonicalIp } from '../podnetwork/ip.js';
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
  /** "198.18.1.21" */
  podIP: string;
  prefixLength: number;
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
  const routes = await ns.routes({ family: 4 });
  const def = routes.find((r) => r.dst === 'default' && r.dev !== undefined);
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
  const addr = (await ns.addresses(name)).find((a) => a.family === 'inet' && a.scope === 'global');
  if (addr === undefined) {
    throw new PeerpodError('ENOTFOUND', `interface ${name} in pod netns ${ns.label} has no IPv4 address`, {
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
    hwAddr: link.address ?? '',
    mtu: link.mtu,
    routes: routes
      .filter((r) => r.dev === name)
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
