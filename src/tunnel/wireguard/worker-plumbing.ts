// Worker-side plumbing inside the pod netns (DESIGN.md §2, design B: policy routing + proxy ARP).
//
//   client pods ──▶ eth0 (CNI veth, pod IP) ──rule "iif eth0 to <pod IP>" → table 2151──▶ wg ══▶ pod VM
//   client pods ◀── eth0 ◀── main table (the pod's own default route) ◀── forwarded ◀── wg ◀══ pod VM
//
// Packets for the pod IP that arrive on eth0 are forwarded into the WireGuard device instead of being
// delivered locally, because our rule sits above the `local` table (moved from priority 0 to 100).
// When the device is gone (its wireguard-go died, until the sidecar re-creates it), an unreachable
// route behind it in the same table ends the lookup there, so the pod netns never answers for the
// pod IP itself and clients get "host unreachable" instead.
// The kernel answers ARP for the pod IP through a proxy entry on eth0, since the pod IP now routes
// elsewhere. Forwarding through a real route makes the kernel enforce the tunnel MTU and send ICMP
// "fragmentation needed"; TCP MSS clamping covers paths that drop that ICMP. Why B and not tc
// mirred (design A): docs/decisions.md.
//
// Every function here is idempotent and diffs against what the netns reports, so a setup that was
// killed halfway can simply run again, and a teardown of something half gone succeeds.
import type { Netns } from '../../netns/netns.js';

export const POD_ROUTE_TABLE = '2151';
export const POD_RULE_PRIORITY = 90;
export const LOCAL_RULE_PRIORITY = 100;
/** Below the device's default route (metric 0), so it only counts when that route is gone. */
export const FALLBACK_METRIC = 4096;

export interface PodPlumbing {
  /** The WireGuard device, already inside the pod netns. */
  device: string;
  /** The pod's CNI interface (eth0). */
  podInterface: string;
  /** The pod's IPv4 address, without prefix. */
  podIP: string;
}

function mssClampRule(device: string): string[] {
  return ['-o', device, '-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu'];
}

/** Bring the device up and route the pod IP through it. The device must already be in `ns`. */
export async function applyPodPlumbing(ns: Netns, p: PodPlumbing): Promise<void> {
  // Per-device sysctls reset when a device changes netns, so they are set here, after the move.
  await ns.writeSysctls(
    {
      'net.ipv4.ip_forward': 1,
      'net.ipv4.conf.all.rp_filter': 0,
      [`net.ipv4.conf.${p.device}.rp_filter`]: 0,
      // Replies from the pod VM carry the pod IP as source, which is local here.
      [`net.ipv4.conf.${p.device}.accept_local`]: 1,
      // No IPv6 in the tunnel: keep router solicitations out of it.
      [`net.ipv6.conf.${p.device}.disable_ipv6`]: 1,
      [`net.ipv4.neigh.${p.podInterface}.proxy_delay`]: 0,
    },
    p.device,
  );

  const cmds: string[][] = [
    ['link', 'set', 'dev', p.device, 'up'],
    ['route', 'replace', 'default', 'dev', p.device, 'table', POD_ROUTE_TABLE],
    ['route', 'replace', 'unreachable', 'default', 'metric', String(FALLBACK_METRIC), 'table', POD_ROUTE_TABLE],
    ['neighbour', 'replace', 'proxy', p.podIP, 'dev', p.podInterface],
  ];
  const rules = await ns.rules(4);
  const hasPodRule = rules.some(
    (r) => r.priority === POD_RULE_PRIORITY && r.dst === p.podIP && r.iif === p.podInterface && r.table === POD_ROUTE_TABLE,
  );
  // A stale rule for another IP or interface at our priority is replaced.
  for (const r of rules.filter((r) => r.priority === POD_RULE_PRIORITY) ) {
    if (!hasPodRule || r.dst !== p.podIP) cmds.push(['rule', 'del', 'priority', String(POD_RULE_PRIORITY)]);
  }
  if (!hasPodRule) {
    cmds.push(['rule', 'add', 'priority', String(POD_RULE_PRIORITY), 'iif', p.podInterface, 'to', `${p.podIP}/32`,
      'lookup', POD_ROUTE_TABLE]);
  }
  // The local table must come after our rule; add the new one before removing the old one, so
  // that local delivery never has a gap.
  if (!rules.some((r) => r.priority === LOCAL_RULE_PRIORITY && r.table === 'local')) {
    cmds.push(['rule', 'add', 'priority', String(LOCAL_RULE_PRIORITY), 'lookup', 'local']);
  }
  if (rules.some((r) => r.priority === 0 && r.table === 'local')) {
    cmds.push(['rule', 'del', 'priority', '0', 'lookup', 'local']);
  }
  await ns.batch(cmds, 'route the pod IP into the tunnel', p.device);

  const rule = mssClampRule(p.device);
  if (!(await ns.hasIptablesRule('mangle', 'FORWARD', rule))) {
    await ns.iptables(['-t', 'mangle', '-A', 'FORWARD', ...rule], 'add TCP MSS clamping', p.device);
  }
}

/**
 * Undo applyPodPlumbing. Each piece is removed only if present, so this works on a half-set-up or
 * half-torn-down netns. The device itself is removed by the backend.
 */
export async function removePodPlumbing(ns: Netns, p: Partial<PodPlumbing> & { device: string }): Promise<void> {
  const rule = mssClampRule(p.device);
  while (await ns.hasIptablesRule('mangle', 'FORWARD', rule)) {
    await ns.iptables(['-t', 'mangle', '-D', 'FORWARD', ...rule], 'remove TCP MSS clamping', p.device);
  }
  const cmds: string[][] = [];
  const rules = await ns.rules(4);
  for (const r of rules) {
    if (r.priority === POD_RULE_PRIORITY && r.table === POD_ROUTE_TABLE) {
      cmds.push(['rule', 'del', 'priority', String(POD_RULE_PRIORITY), 'lookup', POD_ROUTE_TABLE]);
    }
  }
  if (!rules.some((r) => r.priority === 0 && r.table === 'local')) {
    cmds.push(['rule', 'add', 'priority', '0', 'lookup', 'local']);
  }
  if (rules.some((r) => r.priority === LOCAL_RULE_PRIORITY && r.table === 'local')) {
    cmds.push(['rule', 'del', 'priority', String(LOCAL_RULE_PRIORITY), 'lookup', 'local']);
  }
  const routes = await ns.routes({ table: POD_ROUTE_TABLE });
  if (routes.length > 0) cmds.push(['route', 'flush', 'table', POD_ROUTE_TABLE]);
  const proxies = await ns.neighbours({ proxy: true });
  for (const n of proxies) {
    if ((p.podIP === undefined || n.dst === p.podIP) && (p.podInterface === undefined || n.dev === p.podInterface)) {
      cmds.push(['neighbour', 'del', 'proxy', n.dst, 'dev', n.dev]);
    }
  }
  if (await ns.link(p.device)) cmds.push(['link', 'del', 'dev', p.device]);
  await ns.batch(cmds, 'remove the tunnel routing', p.device);
}
