// Worker-side plumbing inside the pod netns (DESIGN.md §2, design B: policy routing + proxy ARP),
// for each family the pod has an address in (IPv4, IPv6, or both through the one device).
//
//   client pods ──▶ eth0 (CNI veth, pod IPs) ──rule "iif eth0 to <pod IP>" → table 2151──▶ wg ══▶ pod VM
//   client pods ◀── eth0 ◀── main table (the pod's own routes) ◀── forwarded ◀── wg ◀══ pod VM
//
// Packets for a pod IP that arrive on eth0 are forwarded into the WireGuard device instead of being
// delivered locally, because our rule sits above the `local` table (moved from priority 0 to 100),
// in `ip rule` and in `ip -6 rule`. The kernel answers ARP for the IPv4 pod IP through a proxy entry
// on eth0, since that IP now routes elsewhere. IPv6 needs no proxy NDP entry: the pod's IPv6 address
// stays on eth0, and the kernel answers a neighbour solicitation from the interface's own addresses,
// without a route lookup (ndisc_recv_ns), so eth0 keeps answering for it. But neighbour discovery
// is IP, and our rule would send the client's answers (NS/NA to the pod IP, when this netns resolves
// a client with the pod IP as source) into the tunnel: ip6tables marks those two ICMPv6 types on
// their way in (mangle PREROUTING, mark 0x2151), and a rule above ours (priority 89) delivers marked
// packets locally. Everything else for the pod IP, echo requests and "packet too big" included, goes
// through the tunnel. When the device is gone (its wireguard-go died, until the sidecar re-creates
// it), an unreachable route behind it in the same table ends the lookup there, so the pod netns
// never answers for the pod IP itself and clients get "host unreachable". Forwarding through a real
// route makes the kernel enforce the tunnel MTU and send ICMP "fragmentation needed" / "packet too
// big"; TCP MSS clamping (iptables and ip6tables) covers paths that drop those. Why B and not tc
// mirred (design A): docs/decisions.md.
//
// The device carries IPv6 only for a pod that has an IPv6 address, and even then it never speaks
// IPv6 itself: no link-local address (addr_gen_mode 1), no DAD, no router solicitations, no RAs
// accepted, so no neighbour discovery or MLD ever leaves through the tunnel. Without IPv6 in the
// pod, IPv6 is off on the device. Its per-device `forwarding` is 0 from birth (conf.all's 1 still
// forwards through it): as a router it would join the all-routers groups, and even a group joined
// and left while the device is down is announced by MLD when it comes up (measured: 2 reports).
//
// What to set up is computed here from what the netns reports, as plain values (the commands and
// rules; worker-plan.ts puts them in order), so a setup that was killed halfway can simply run
// again. The removal reads and deletes as it goes, so a teardown of something half gone succeeds.
import type { Netns, Rule } from '../../netns/netns.js';

export const POD_ROUTE_TABLE = '2151';
export const POD_RULE_PRIORITY = 90;
export const LOCAL_RULE_PRIORITY = 100;
/** Below the device's default route (metric 0), so it only counts when that route is gone. */
export const FALLBACK_METRIC = 4096;
export const NDP_RULE_PRIORITY = 89;
export const NDP_MARK = '0x2151';

export interface PodPlumbing {
  /** The WireGuard device, already inside the pod netns. */
  device: string;
  /** The pod's CNI interface (eth0). */
  podInterface: string;
  /** The pod's addresses, without prefix: podip first, then the others (IPv4, IPv6 or both). */
  podIPs: readonly string[];
}

export type Family = 4 | 6;
export const FAMILIES: readonly Family[] = [4, 6];

export function familyOfIp(ip: string): Family {
  return ip.includes(':') ? 6 : 4;
}

/** The families the pod has an address in, IPv4 first. */
export function familiesOf(podIPs: readonly string[]): Family[] {
  return FAMILIES.filter((f) => podIPs.some((ip) => familyOfIp(ip) === f));
}

/** The address alone, as a prefix: "198.18.1.21/32", "fd00::21/128". */
export function hostPrefix(ip: string): string {
  return `${ip}/${familyOfIp(ip) === 4 ? 32 : 128}`;
}

/** Neighbour solicitations (135) and advertisements (136) to a pod IPv6 address, marked for local delivery. */
export function ndpMarkRules(podInterface: string, ip: string): string[][] {
  return ['135', '136'].map((type) => [
    '-i', podInterface, '-d', `${ip}/128`, '-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', type, '-j', 'MARK', '--set-mark', NDP_MARK,
  ]);
}

export function mssClampRule(device: string): string[] {
  return ['-o', device, '-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu'];
}

/** A netfilter rule of ours in the pod netns, as `-C`, `-A` and `-D` take it after the chain. */
export interface PodIptablesRule {
  family: Family;
  table: 'mangle';
  chain: 'FORWARD' | 'PREROUTING';
  rule: readonly string[];
  /** The interface the rule is about, for messages. */
  iface: string;
}

/** The rules the pod netns needs: TCP MSS clamping per family, then the neighbour discovery marks per IPv6 address. */
export function podIptablesRules(p: PodPlumbing): PodIptablesRule[] {
  const mss = mssClampRule(p.device);
  return [
    ...familiesOf(p.podIPs).map((family): PodIptablesRule => ({ family, table: 'mangle', chain: 'FORWARD', rule: mss, iface: p.device })),
    ...p.podIPs
      .filter((ip) => familyOfIp(ip) === 6)
      .flatMap((ip) =>
        ndpMarkRules(p.podInterface, ip).map((rule): PodIptablesRule => ({ family: 6, table: 'mangle', chain: 'PREROUTING', rule, iface: p.podInterface })),
      ),
  ];
}

export function sameIptablesRule(a: PodIptablesRule, b: PodIptablesRule): boolean {
  return a.family === b.family && a.table === b.table && a.chain === b.chain && a.rule.join(' ') === b.rule.join(' ');
}

/**
 * Before the device moves in: IPv6 forwarding on in the pod netns (conf.all, written only when it is
 * off, since each write sets every device's flag again), and off for devices that arrive from now on
 * (conf.default), so the device is never a router there, not even for a moment (see above). Null for
 * a pod without IPv6.
 */
export function preparingSysctls(podIPs: readonly string[], ipv6Forwarding: boolean): Record<string, number> | null {
  if (!podIPs.some((ip) => familyOfIp(ip) === 6)) return null;
  return { ...(ipv6Forwarding ? {} : { 'net.ipv6.conf.all.forwarding': 1 }), 'net.ipv6.conf.default.forwarding': 0 };
}

/**
 * The sysctls of the pod netns and of the device in it. Per-device sysctls reset when a device
 * changes netns, so they are set after the move, and before the device goes up: an IPv6 device that
 * comes up with the defaults sends a router solicitation, DAD and MLD reports at once.
 */
export function plumbingSysctls(p: PodPlumbing): Record<string, number> {
  const v6 = familiesOf(p.podIPs).includes(6);
  return {
    'net.ipv4.ip_forward': 1,
    'net.ipv4.conf.all.rp_filter': 0,
    [`net.ipv4.conf.${p.device}.rp_filter`]: 0,
    // Replies from the pod VM carry the pod IP as source, which is local here.
    [`net.ipv4.conf.${p.device}.accept_local`]: 1,
    [`net.ipv4.neigh.${p.podInterface}.proxy_delay`]: 0,
    ...(v6
      ? {
          [`net.ipv6.conf.${p.device}.disable_ipv6`]: 0,
          [`net.ipv6.conf.${p.device}.addr_gen_mode`]: 1,
          [`net.ipv6.conf.${p.device}.accept_ra`]: 0,
          [`net.ipv6.conf.${p.device}.dad_transmits`]: 0,
          [`net.ipv6.conf.${p.device}.router_solicitations`]: 0,
          // Already 0 (preparingSysctls): a host, not a router, on this device.
          [`net.ipv6.conf.${p.device}.forwarding`]: 0,
        }
      : { [`net.ipv6.conf.${p.device}.disable_ipv6`]: 1 }),
  };
}

/**
 * The `ip -batch` lines that route one family's pod IPs into the device, given the rules the netns
 * has: the table's default route and its unreachable fallback, proxy ARP (IPv4), our rules (a stale
 * one at our priority removed, the missing ones added), the NDP rule (IPv6), and the local table
 * moved below ours.
 */
export function podRoutingCommands(p: PodPlumbing, family: Family, rules: readonly Rule[]): string[][] {
  const cmds: string[][] = [];
  const ips = p.podIPs.filter((ip) => familyOfIp(ip) === family);
  cmds.push(['route', 'replace', 'default', 'dev', p.device, 'table', POD_ROUTE_TABLE]);
  cmds.push(['route', 'replace', 'unreachable', 'default', 'metric', String(FALLBACK_METRIC), 'table', POD_ROUTE_TABLE]);
  if (family === 4) for (const ip of ips) cmds.push(['neighbour', 'replace', 'proxy', ip, 'dev', p.podInterface]);
  const ours = rules.filter((r) => r.priority === POD_RULE_PRIORITY);
  const wanted = (ip: string) => (r: Rule) => r.dst === ip && r.iif === p.podInterface && r.table === POD_ROUTE_TABLE;
  for (const r of ours) {
    if (!ips.some((ip) => wanted(ip)(r))) {
      const to = r.dst === undefined ? [] : ['to', `${r.dst}/${r.dstlen ?? (family === 4 ? 32 : 128)}`];
      cmds.push(['rule', 'del', 'priority', String(POD_RULE_PRIORITY), ...to]);
    }
  }
  for (const ip of ips) {
    if (!ours.some(wanted(ip))) {
      cmds.push(['rule', 'add', 'priority', String(POD_RULE_PRIORITY), 'iif', p.podInterface, 'to', hostPrefix(ip),
        'lookup', POD_ROUTE_TABLE]);
    }
  }
  if (family === 6 && !rules.some((r) => r.priority === NDP_RULE_PRIORITY && r.table === 'local')) {
    cmds.push(['rule', 'add', 'priority', String(NDP_RULE_PRIORITY), 'fwmark', NDP_MARK, 'lookup', 'local']);
  }
  // The local table must come after our rule; add the new one before removing the old one, so
  // that local delivery never has a gap.
  if (!rules.some((r) => r.priority === LOCAL_RULE_PRIORITY && r.table === 'local')) {
    cmds.push(['rule', 'add', 'priority', String(LOCAL_RULE_PRIORITY), 'lookup', 'local']);
  }
  if (rules.some((r) => r.priority === 0 && r.table === 'local')) {
    cmds.push(['rule', 'del', 'priority', '0', 'lookup', 'local']);
  }
  return cmds;
}

/**
 * Undo the plumbing (worker-plan.ts), for both families. Each piece is removed only if present, so this works
 * on a half-set-up or half-torn-down netns. The device itself is removed by the backend.
 */
export async function removePodPlumbing(ns: Netns, p: Partial<PodPlumbing> & { device: string }): Promise<void> {
  const rule = mssClampRule(p.device);
  // A worker without IPv6 in its kernel has nothing of ours there to remove.
  const v6InKernel = await ns.readSysctl('net.ipv6.conf.all.disable_ipv6').then(() => true, () => false);
  const families = v6InKernel ? FAMILIES : [4 as const];
  for (const family of families) {
    while (await ns.hasIptablesRule('mangle', 'FORWARD', rule, family)) {
      await ns.iptables(['-t', 'mangle', '-D', 'FORWARD', ...rule], 'remove TCP MSS clamping', p.device, family);
    }
  }
  if (families.includes(6)) {
    // Our marks, whichever pod IP they were for: `-S` prints rules in the form `-D` takes back.
    const marks = (await ns.iptables(['-t', 'mangle', '-S', 'PREROUTING'], 'list the neighbour discovery marks', p.device, 6))
      .split('\n')
      .filter((l) => l.startsWith('-A PREROUTING ') && l.includes(`--set-xmark ${NDP_MARK}/`));
    for (const line of marks) {
      await ns.iptables(['-t', 'mangle', '-D', ...line.split(/\s+/).slice(1)], 'remove a neighbour discovery mark', p.device, 6);
    }
  }
  for (const family of families) {
    const cmds: string[][] = [];
    const rules = await ns.rules(family);
    for (const r of rules) {
      if (r.priority === POD_RULE_PRIORITY && r.table === POD_ROUTE_TABLE) {
        cmds.push(['rule', 'del', 'priority', String(POD_RULE_PRIORITY), 'lookup', POD_ROUTE_TABLE]);
      }
      if (family === 6 && r.priority === NDP_RULE_PRIORITY && r.table === 'local') {
        cmds.push(['rule', 'del', 'priority', String(NDP_RULE_PRIORITY), 'lookup', 'local']);
      }
    }
    if (!rules.some((r) => r.priority === 0 && r.table === 'local')) {
      cmds.push(['rule', 'add', 'priority', '0', 'lookup', 'local']);
    }
    if (rules.some((r) => r.priority === LOCAL_RULE_PRIORITY && r.table === 'local')) {
      cmds.push(['rule', 'del', 'priority', String(LOCAL_RULE_PRIORITY), 'lookup', 'local']);
    }
    // IPv6 reports a table that never had a route as an error, where IPv4 shows it empty.
    const routes = await ns.routes({ family, table: POD_ROUTE_TABLE }).catch((e: unknown) => {
      if (family === 6 && /FIB table does not exist/.test(String((e as Error).message))) return [];
      throw e;
    });
    if (routes.length > 0) cmds.push(['route', 'flush', 'table', POD_ROUTE_TABLE]);
    await ns.batch(cmds, `remove the IPv${family} tunnel routing`, p.device, family);
  }
  const cmds: string[][] = [];
  const proxies = await ns.neighbours({ proxy: true });
  for (const n of proxies) {
    if ((p.podIPs === undefined || p.podIPs.includes(n.dst)) && (p.podInterface === undefined || n.dev === p.podInterface)) {
      cmds.push(['neighbour', 'del', 'proxy', n.dst, 'dev', n.dev]);
    }
  }
  if (await ns.link(p.device)) cmds.push(['link', 'del', 'dev', p.device]);
  await ns.batch(cmds, 'remove the tunnel routing', p.device);
}
