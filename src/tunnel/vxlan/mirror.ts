// The worker's L2 mirror inside the pod netns, as CAA builds it (netops RedirectAdd/RedirectDel):
// every frame that arrives on the pod's interface (eth0) leaves through the VXLAN device, and every
// frame that the VXLAN device receives leaves through eth0.
//
//   client pods ──▶ eth0 ─ ingress qdisc, u32 "match all" ─ mirred egress redirect ─▶ vxlan ══▶ pod VM
//   client pods ◀── eth0 ◀─ mirred egress redirect ─ u32 "match all" ─ ingress qdisc ─ vxlan ◀══ pod VM
//
// VXLAN carries Ethernet frames, so ARP and everything else cross the tunnel unchanged and the pod
// VM answers for the pod IP with the pod's MAC. Our filters sit at their own preference, so removal
// takes exactly ours and leaves an ingress qdisc alone if someone else still has filters on it.
// Reading and writing run `tc` in the pod netns; deciding what to change is pure.
import { PeerpodError } from '../../errors.js';
import type { Netns } from '../../netns/netns.js';

/** The preference (priority) of our redirect filters on the ingress qdisc. */
export const MIRROR_PREF = 4789;
const INGRESS = 'ffff:';

export interface TcQdisc {
  kind: string;
  handle: string;
}

export interface TcFilter {
  pref: number;
  kind: string;
  /** Where a mirred redirect sends frames; "*" when that device is gone. Absent on table heads. */
  redirectTo?: string;
  /** True for the entry that holds a rule (not a u32 table head). */
  isRule: boolean;
}

interface RawFilter {
  pref?: number;
  kind?: string;
  options?: {
    actions?: { kind?: string; mirred_action?: string; direction?: string; to_dev?: string }[];
  };
}

export function parseTcQdiscs(json: string): TcQdisc[] {
  if (json.trim() === '') return [];
  return (JSON.parse(json) as { kind?: string; handle?: string }[]).map((q) => ({
    kind: q.kind ?? '',
    handle: q.handle ?? '',
  }));
}

export function parseTcFilters(json: string): TcFilter[] {
  if (json.trim() === '') return [];
  return (JSON.parse(json) as RawFilter[]).map((f) => {
    const actions = f.options?.actions;
    const out: TcFilter = { pref: f.pref ?? 0, kind: f.kind ?? '', isRule: actions !== undefined };
    const only = actions?.length === 1 ? actions[0] : undefined;
    if (only?.kind === 'mirred' && only.mirred_action === 'redirect' && only.direction === 'egress' && only.to_dev) {
      out.redirectTo = only.to_dev;
    }
    return out;
  });
}

/** What `ensureMirror` must do on one interface, from what tc reports there. */
export function mirrorChanges(
  from: string,
  to: string,
  qdiscs: readonly TcQdisc[],
  filters: readonly TcFilter[],
): string[][] {
  const cmds: string[][] = [];
  if (!qdiscs.some((q) => q.kind === 'ingress')) cmds.push(['qdisc', 'add', 'dev', from, 'ingress']);
  const ours = filters.filter((f) => f.pref === MIRROR_PREF);
  const rules = ours.filter((f) => f.isRule);
  const right = rules.length === 1 && rules[0]?.kind === 'u32' && rules[0].redirectTo === to;
  if (right) return cmds;
  if (ours.length > 0) cmds.push(['filter', 'del', 'dev', from, 'parent', INGRESS, 'pref', String(MIRROR_PREF)]);
  cmds.push(['filter', 'add', 'dev', from, 'parent', INGRESS, 'pref', String(MIRROR_PREF), 'protocol', 'all',
    'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to]);
  return cmds;
}

async function tc(ns: Netns, args: readonly string[], op: string, iface: string): Promise<string> {
  return ns.run(['tc', ...args], op, iface);
}

async function tcBatch(ns: Netns, cmds: readonly string[][], op: string, iface: string): Promise<void> {
  if (cmds.length === 0) return;
  await ns.run(['tc', '-batch', '-'], op, iface, cmds.map((c) => c.join(' ')).join('\n') + '\n');
}

async function readIngress(ns: Netns, dev: string): Promise<{ qdiscs: TcQdisc[]; filters: TcFilter[] }> {
  const qdiscs = parseTcQdiscs(await tc(ns, ['-json', 'qdisc', 'show', 'dev', dev], 'list qdiscs', dev));
  if (qdiscs.some((q) => q.kind === 'clsact')) {
    throw new PeerpodError(
      'ESETUP',
      `interface ${dev} in netns ${ns.label} has a clsact qdisc, which holds the ingress hook the tunnel needs: ` +
        'another network agent (eBPF CNI?) owns this interface',
      { op: 'tc mirror', netns: ns.label, iface: dev },
    );
  }
  const filters = qdiscs.some((q) => q.kind === 'ingress')
    ? parseTcFilters(await tc(ns, ['-json', 'filter', 'show', 'dev', dev, 'parent', INGRESS], 'list filters', dev))
    : [];
  return { qdiscs, filters };
}

/** Redirect every frame arriving on `from` out of `to`. Both must exist in `ns`. Idempotent. */
export async function ensureMirror(ns: Netns, from: string, to: string): Promise<void> {
  const { qdiscs, filters } = await readIngress(ns, from);
  await tcBatch(ns, mirrorChanges(from, to, qdiscs, filters), `mirror ${from} into ${to}`, from);
}

/** Remove our redirect from `from`, and its ingress qdisc when nothing else uses it. Gone is fine. */
export async function removeMirror(ns: Netns, from: string): Promise<void> {
  if ((await ns.link(from)) === null) return;
  let { qdiscs, filters } = await readIngress(ns, from);
  if (!qdiscs.some((q) => q.kind === 'ingress')) return;
  if (filters.some((f) => f.pref === MIRROR_PREF)) {
    await tc(ns, ['filter', 'del', 'dev', from, 'parent', INGRESS, 'pref', String(MIRROR_PREF)], `remove the mirror on ${from}`, from);
    ({ qdiscs, filters } = await readIngress(ns, from));
  }
  if (qdiscs.some((q) => q.kind === 'ingress') && filters.length === 0) {
    await tc(ns, ['qdisc', 'del', 'dev', from, 'ingress'], `remove the ingress qdisc of ${from}`, from);
  }
}

/**
 * Remove every mirror into `device` from the other interfaces of the netns (teardown knows the
 * device, not which interface was mirrored into it). A redirect whose target is gone ("*") at our
 * preference is ours too.
 */
export async function removeMirrorsInto(ns: Netns, device: string): Promise<void> {
  for (const l of await ns.links()) {
    if (l.ifname === device || l.ifname === 'lo') continue;
    const qdiscs = parseTcQdiscs(await tc(ns, ['-json', 'qdisc', 'show', 'dev', l.ifname], 'list qdiscs', l.ifname));
    if (!qdiscs.some((q) => q.kind === 'ingress')) continue;
    const filters = parseTcFilters(
      await tc(ns, ['-json', 'filter', 'show', 'dev', l.ifname, 'parent', INGRESS], 'list filters', l.ifname),
    );
    const ours = filters.filter((f) => f.pref === MIRROR_PREF && f.isRule);
    if (ours.length > 0 && ours.every((f) => f.redirectTo === device || f.redirectTo === '*')) {
      await removeMirror(ns, l.ifname);
    }
  }
}
