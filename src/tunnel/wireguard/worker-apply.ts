// The I/O around the worker's plan (worker-plan.ts): `observeWorker` reads what the plan compares
// against (the device's link in the pod netns, the device as the backend reports it, the zone's
// interface, IPv6 forwarding, the rules and our iptables rules of the pod netns), and `applyWorker`
// runs the plan's actions in order, calling onStep after each step, even one with nothing to do.
// preparePodNetns and applyPodPlumbing do the same for the pod netns' part alone. Deciding what to
// do is the plan's business; nothing here compares.
import { isPeerpodError } from '../../errors.js';
import type { Netns, NetnsFactory } from '../../netns/netns.js';
import type { WireGuardBackend } from '../../wireguard/backend.js';
import type { Device } from '../../wireguard/config.js';
import {
  CONVERGE_STEPS,
  linkKindOf,
  planPlumbing,
  planPreparation,
  plumbingOf,
  zoneOf,
  type ConvergeStep,
  type PlumbingObserved,
  type PodNetnsAction,
  type WorkerAction,
  type WorkerDesired,
  type WorkerObserved,
} from './worker-plan.js';
import { familiesOf, podIptablesRules, type PodPlumbing } from './worker-plumbing.js';

export interface WorkerIo {
  backend: WireGuardBackend;
  netns: NetnsFactory;
}

/** Read what planWorker needs for `d`. "Could not check" is an error here, never "absent". */
export async function observeWorker(io: WorkerIo, d: WorkerDesired): Promise<WorkerObserved> {
  const podNs = io.netns.at(d.netns);
  const link = await podNs.link(d.device);
  const podLink = link === null ? null : link.kind === undefined ? {} : { kind: link.kind };
  const inPod = podLink !== null && podLink.kind === linkKindOf(d.backend);
  const device = await io.backend.device(d.device, inPod ? { netns: d.netns } : {}).catch((e: unknown): Device | null => {
    if (isPeerpodError(e, 'ENOTFOUND')) return null;
    // A leftover in the host netns that does not answer is stale: creating the device clears it.
    if (!inPod && isPeerpodError(e, 'EUAPI')) return null;
    throw e;
  });
  const zone = zoneOf(d.endpointIP);
  const zoneIfindex = zone === undefined ? {} : { zoneIfindex: (await io.netns.host().link(zone))?.ifindex ?? null };
  return { podLink, device, ...zoneIfindex, ...(await observePlumbing(podNs, plumbingOf(d), { beforeMove: !inPod })) };
}

/** Read what the plumbing is compared with; IPv6 forwarding only `beforeMove` (and for a pod with IPv6). */
export async function observePlumbing(ns: Netns, p: PodPlumbing, opts: { beforeMove: boolean }): Promise<PlumbingObserved> {
  const families = familiesOf(p.podIPs);
  const observed: PlumbingObserved = { rules: {}, iptables: [] };
  if (opts.beforeMove && families.includes(6)) observed.ipv6Forwarding = (await ns.readSysctl('net.ipv6.conf.all.forwarding')) === '1';
  for (const family of families) observed.rules[family] = await ns.rules(family);
  const present = [];
  for (const r of podIptablesRules(p)) {
    if (await ns.hasIptablesRule(r.table, r.chain, r.rule, r.family)) present.push(r);
  }
  observed.iptables = present;
  return observed;
}

/** Run the plan's actions for the pod's device, step by step. */
export async function applyWorker(
  io: WorkerIo,
  target: { device: string; netns: string },
  actions: readonly WorkerAction[],
  onStep?: (step: ConvergeStep) => void,
): Promise<void> {
  const podNs = io.netns.at(target.netns);
  for (const step of CONVERGE_STEPS) {
    for (const a of actions) {
      if (a.step !== step) continue;
      if (a.do === 'create-device') await io.backend.create(a.device, { mtu: a.mtu });
      else if (a.do === 'configure-device') await io.backend.configure(a.device, a.config, a.where);
      else if (a.do === 'move-device') {
        await io.netns.host().ip(['link', 'set', 'dev', a.device, 'netns', a.netns], 'move device into the pod netns', a.device);
      } else await runInPodNetns(podNs, target.device, a);
    }
    onStep?.(step);
  }
}

/**
 * Before the device moves into `ns`: IPv6 forwarding for a pod with IPv6 (planPreparation). With
 * applyPodPlumbing, what converge does in the pod netns, for callers that plumb a netns alone (the
 * netns contract runs both against the kernel and the fake).
 */
export async function preparePodNetns(ns: Netns, p: PodPlumbing): Promise<void> {
  const actions = planPreparation(p, await observePlumbing(ns, p, { beforeMove: true }), { op: 'prepare', netns: ns.label, iface: p.device });
  for (const a of actions) await runInPodNetns(ns, p.device, a);
}

/** Bring the device (already in `ns`) up and route the pod IPs through it (planPlumbing). */
export async function applyPodPlumbing(ns: Netns, p: PodPlumbing): Promise<void> {
  const actions = planPlumbing(p, await observePlumbing(ns, p, { beforeMove: false }), { op: 'plumb', netns: ns.label, iface: p.device });
  for (const a of actions) await runInPodNetns(ns, p.device, a);
}

async function runInPodNetns(ns: Netns, device: string, a: PodNetnsAction): Promise<void> {
  switch (a.do) {
    case 'delete-device':
      await ns.ip(['link', 'del', 'dev', a.device], 'replace a device of the other backend', a.device);
      return;
    case 'write-sysctls':
      await ns.writeSysctls(a.values, device);
      return;
    case 'device-up':
      await ns.batch([['link', 'set', 'dev', a.device, 'up']], 'bring the device up', a.device);
      return;
    case 'route':
      await ns.batch(a.commands, `route the IPv${a.family} pod IPs into the tunnel`, device, a.family);
      return;
    case 'add-iptables-rule': {
      const { family, table, chain, rule, iface } = a.rule;
      await ns.iptables(['-t', table, '-A', chain, ...rule], a.why, iface, family);
      return;
    }
  }
}
