// VXLAN devices as iproute2 reports them (`ip -details -json link show type vxlan`), the command
// that makes one the way CAA's netops does (unicast remote, fixed UDP port, no learning), and the
// test of whether a device found in a netns is the one wanted. Reading runs `ip` in the netns; the
// parser and the comparison are pure.
import { PeerpodError } from '../../errors.js';
import type { Netns } from '../../netns/netns.js';
import type { PodNetwork, VxlanTunnel } from '../../podnetwork/types.js';
import { tunnelSectionOf } from '../driver.js';

/** What a VXLAN device must be: what we compare against the kernel. */
export interface VxlanSpec {
  vni: number;
  /** The other end's underlay address (worker: the pod VM; pod VM: the worker). */
  remote: string;
  /** UDP destination port, on both ends. */
  port: number;
}

export interface VxlanLink extends VxlanSpec {
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  /** MAC address. */
  address?: string;
  learning: boolean;
  /** Present when the device's UDP socket lives in another netns than the one listing it. */
  linkNetnsid?: number;
}

interface RawVxlan {
  ifname?: string;
  mtu?: number;
  operstate?: string;
  flags?: string[];
  address?: string;
  link_netnsid?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; remote?: string; group?: string; port?: number; learning?: boolean };
  };
}

/** Parse `ip -details -json link show` output; links that are not VXLAN are left out. */
export function parseVxlanLinks(json: string): VxlanLink[] {
  if (json.trim() === '') return [];
  const raw = JSON.parse(json) as RawVxlan[];
  const out: VxlanLink[] = [];
  for (const r of raw) {
    const data = r.linkinfo?.info_data;
    if (r.linkinfo?.info_kind !== 'vxlan' || data === undefined || r.ifname === undefined) continue;
    const link: VxlanLink = {
      ifname: r.ifname,
      vni: data.id ?? 0,
      // iproute2 prints a unicast remote as "remote" and a multicast one as "group".
      remote: data.remote ?? data.group ?? '',
      port: data.port ?? 0,
      mtu: r.mtu ?? 0,
      operstate: r.operstate ?? 'UNKNOWN',
      flags: r.flags ?? [],
      learning: data.learning ?? true,
    };
    if (r.address !== undefined) link.address = r.address;
    if (r.link_netnsid !== undefined) link.linkNetnsid = r.link_netnsid;
    out.push(link);
  }
  return out;
}

/** Every VXLAN link of a netns. */
export async function vxlanLinks(ns: Netns): Promise<VxlanLink[]> {
  const out = await ns.run(['ip', '-details', '-json', 'link', 'show', 'type', 'vxlan'], 'list VXLAN links');
  try {
    return parseVxlanLinks(out);
  } catch (e) {
    throw new PeerpodError('ENETNS', 'list VXLAN links: iproute2 printed unreadable JSON', {
      op: 'list VXLAN links',
      netns: ns.label,
    }, e);
  }
}

export async function vxlanLink(ns: Netns, name: string): Promise<VxlanLink | null> {
  return (await vxlanLinks(ns)).find((l) => l.ifname === name) ?? null;
}

/** True when the device carries the wanted tunnel, as CAA would have made it. */
export function isVxlanLike(link: VxlanLink, want: VxlanSpec): boolean {
  return link.vni === want.vni && link.remote === want.remote && link.port === want.port && !link.learning;
}

/**
 * `ip link add` for a VXLAN device: the remote is unicast, so unknown destinations go to it; no
 * `local` and no `dev`, so the kernel routes the outer packet like any other; no learning, because
 * the one remote is the only peer there is (CAA's netops leaves learning off too).
 */
export function vxlanAddCommand(name: string, s: VxlanSpec): string[] {
  return ['link', 'add', name, 'type', 'vxlan', 'id', String(s.vni), 'remote', s.remote, 'dstport', String(s.port), 'nolearning'];
}

/** The VXLAN options of a pod-network, or a clear error naming the field. */
export function vxlanOf(p: PodNetwork, netns: string, op: string): VxlanTunnel {
  return tunnelSectionOf(p, 'vxlan', { op, netns });
}
