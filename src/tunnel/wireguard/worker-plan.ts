// The worker's setup as a pure plan (Kilo-style): `planWorker(desired, observed)` takes what one
// pod's tunnel should be (computed from its record and stored keys) and what the backend and the
// netns report now, and returns the actions that close the gap, as plain values, in order:
//
//   created     delete a device of the other backend · create the device (born in the host netns)
//   configured  configure it: only the fields that differ, each with its reason; an endpoint in
//               place (maybe learned through NAT) is kept unless the pod VM IPs changed
//   moved       IPv6 forwarding in the pod netns · move the device into it
//   plumbed     sysctls · device up · routes, proxy ARP and rules per family · iptables rules missing
//
// The same plan serves a fresh pod, a re-run after a crash at any step, and a restarted sidecar: a
// device that is already in the pod netns is kept (same ifindex), and what is already right is not
// touched. Reading the state and running the actions is worker-apply.ts's business; no I/O here.
import { PeerpodError, type ErrorContext } from '../../errors.js';
import type { Rule } from '../../netns/netns.js';
import type { WireguardPodRecord } from '../../state/store.js';
import type { BackendKind, Where } from '../../wireguard/backend.js';
import type { Device, DeviceConfig } from '../../wireguard/config.js';
import type { PublicKey, SecretKey } from '../../wireguard/keys.js';
import { deviceChange, emptyDevice } from './device-change.js';
import {
  familiesOf,
  hostPrefix,
  plumbingSysctls,
  podIptablesRules,
  podRoutingCommands,
  preparingSysctls,
  sameIptablesRule,
  type Family,
  type PodIptablesRule,
  type PodPlumbing,
} from './worker-plumbing.js';

/** The steps of a setup, in order; crash tests stop the process right after one. */
export type SetupStep = 'recorded' | 'created' | 'configured' | 'moved' | 'plumbed';
export const SETUP_STEPS: readonly SetupStep[] = ['recorded', 'created', 'configured', 'moved', 'plumbed'];
/** The steps the plan's actions belong to ('recorded' is the state folder's, before any action). */
export type ConvergeStep = Exclude<SetupStep, 'recorded'>;
export const CONVERGE_STEPS: readonly ConvergeStep[] = ['created', 'configured', 'moved', 'plumbed'];

/** What one pod's tunnel should be on the worker. */
export interface WorkerDesired {
  device: string;
  /** Path of the pod netns. */
  netns: string;
  /** The pod's CNI interface (eth0). */
  podInterface: string;
  /** The pod's addresses without prefix, podIP first. */
  podIPs: readonly string[];
  mtu: number;
  /** Which backend drives the device: its link is a "wireguard" (kernel) or a "tun" (wireguard-go). */
  backend: BackendKind;
  workerKey: SecretKey;
  presharedKey: SecretKey | null;
  vmPublicKey: PublicKey;
  /** The pod VM IP the tunnel goes to; a link-local one has a zone ("fe80::10%tap0"). */
  endpointIP: string;
  vmListenPort: number;
  keepalive: number;
  /** Why an endpoint in place must be rewritten (CAA gave new pod VM IPs); absent: it is kept. */
  rewriteEndpoint?: string;
}

/** What the pod netns reports that its plumbing is compared with. */
export interface PlumbingObserved {
  /** net.ipv6.conf.all.forwarding of the pod netns is 1; read for a pod with IPv6 whose device is not there yet. */
  ipv6Forwarding?: boolean;
  /** The policy rules of the pod netns, for each family the pod has an address in. */
  rules: Partial<Record<Family, readonly Rule[]>>;
  /** Which of the wanted iptables rules (podIptablesRules) the pod netns already has. */
  iptables: readonly PodIptablesRule[];
}

/** What the backend and the netns report, read just before planning. */
export interface WorkerObserved extends PlumbingObserved {
  /** The device's link in the pod netns (only its kind matters), or null when it is not there. */
  podLink: { kind?: string } | null;
  /**
   * The device as this backend reports it: in the pod netns when `podLink` is of this backend's
   * kind, else in the host netns (born by a setup that stopped before the move); null when the
   * backend knows no such device there.
   */
  device: Device | null;
  /** For an endpoint with a zone: the ifindex of the host interface it names, null when there is none. */
  zoneIfindex?: number | null;
}

interface Step<S extends ConvergeStep> {
  step: S;
}

/** What is done inside the pod netns, with `ip`, `sysctl` and `iptables` there. */
export type PodNetnsAction =
  | (Step<'created'> & { do: 'delete-device'; device: string; reason: string })
  | (Step<'moved' | 'plumbed'> & { do: 'write-sysctls'; values: Record<string, number>; why: string })
  | (Step<'plumbed'> & { do: 'device-up'; device: string })
  | (Step<'plumbed'> & { do: 'route'; family: Family; commands: string[][] })
  | (Step<'plumbed'> & { do: 'add-iptables-rule'; rule: PodIptablesRule; why: string });

/** One thing to do, as a plain value. */
export type WorkerAction =
  | PodNetnsAction
  | (Step<'created'> & { do: 'create-device'; device: string; mtu: number })
  | (Step<'configured'> & { do: 'configure-device'; device: string; where: Where; config: DeviceConfig; reasons: string[] })
  | (Step<'moved'> & { do: 'move-device'; device: string; netns: string });

/** The device's link kind as each backend makes it. */
export function linkKindOf(backend: BackendKind): string {
  return backend === 'kernel' ? 'wireguard' : 'tun';
}

/** The pod's addresses without prefix: podIP first. */
export function podIPsOf(record: Pick<WireguardPodRecord, 'podIP' | 'extraPodIPs'>): string[] {
  return [record.podIP, ...(record.extraPodIPs ?? [])];
}

/** The VM peer's AllowedIPs on the worker: each pod address alone, so no other source gets in. */
export function allowedIPsOf(record: Pick<WireguardPodRecord, 'podIP' | 'extraPodIPs'>): string[] {
  return podIPsOf(record).map(hostPrefix);
}

export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The interface a link-local pod VM IP's zone names ("tap0" of "fe80::10%tap0"), or undefined. */
export function zoneOf(ip: string): string | undefined {
  const pct = ip.indexOf('%');
  return pct < 0 ? undefined : ip.slice(pct + 1);
}

/**
 * The peer endpoint for a pod VM IP. A zone names its link by interface, which must exist in the
 * host netns, where the device's UDP socket lives (`zoneIfindex`); wireguard-go takes the name, the
 * kernel's netlink only the interface index.
 */
export function endpointFor(
  ip: string,
  port: number,
  backend: BackendKind,
  zoneIfindex: number | null | undefined,
  ctx: { op: string; netns: string },
): string {
  const zone = zoneOf(ip);
  if (zone === undefined) return formatEndpoint(ip, port);
  if (zoneIfindex === null || zoneIfindex === undefined) {
    throw new PeerpodError('EINVAL', `pod VM IP ${ip}: no interface ${zone} on this worker, where the tunnel's UDP socket lives`, {
      ...ctx,
      iface: zone,
      field: 'podVmIPs',
    });
  }
  const scoped = backend === 'kernel' ? `${ip.slice(0, ip.indexOf('%'))}%${zoneIfindex}` : ip;
  return formatEndpoint(scoped, port);
}

/** The plumbing a desired state asks for. */
export function plumbingOf(d: WorkerDesired): PodPlumbing {
  return { device: d.device, podInterface: d.podInterface, podIPs: d.podIPs };
}

/** The actions that bring the pod's tunnel from `o` to `d`, in step order. Pure. */
export function planWorker(d: WorkerDesired, o: WorkerObserved): WorkerAction[] {
  const ctx = { op: 'converge', netns: d.netns, iface: d.device };
  const actions: WorkerAction[] = [];
  const ownKind = linkKindOf(d.backend);
  const otherBackends = o.podLink !== null && o.podLink.kind !== ownKind;
  const inPod = o.podLink !== null && !otherBackends;

  // created
  if (o.podLink !== null && otherBackends) {
    // Made by the other backend (the node switched, e.g. userspace → kernel after an upgrade):
    // this backend cannot drive it, so it is replaced. The other's wireguard-go exits with its TUN.
    actions.push({
      step: 'created',
      do: 'delete-device',
      device: d.device,
      reason: `a ${o.podLink.kind ?? 'plain'} device, not a ${ownKind} one: made by the other backend`,
    });
  }
  if (inPod && o.device === null) {
    throw new PeerpodError('ENOTFOUND', `device ${d.device} is in pod netns ${d.netns}, but the ${d.backend} backend does not reach it`, ctx);
  }
  // Born in the host netns, so its UDP socket stays there when the device moves to the pod. One
  // left there by a setup that stopped before the move is taken as it is.
  if (!inPod && o.device === null) actions.push({ step: 'created', do: 'create-device', device: d.device, mtu: d.mtu });

  const p = plumbingOf(d);

  // configured
  const endpoint = endpointFor(d.endpointIP, d.vmListenPort, d.backend, o.zoneIfindex, ctx);
  const rewrite = inPod ? d.rewriteEndpoint : 'the device is not in the pod netns yet';
  const change = deviceChange(o.device ?? emptyDevice(d.device), {
    privateKey: d.workerKey,
    peer: {
      publicKey: d.vmPublicKey,
      presharedKey: d.presharedKey,
      allowedIPs: d.podIPs.map(hostPrefix),
      endpoint: { value: endpoint, ...(rewrite === undefined ? {} : { rewrite }) },
      persistentKeepalive: d.keepalive,
    },
  });
  if (change !== null) {
    // A device found in the pod netns is reached there (the kernel backend needs to be told where).
    const where: Where = inPod ? { netns: d.netns } : {};
    actions.push({ step: 'configured', do: 'configure-device', device: d.device, where, ...change });
  }

  // moved
  if (!inPod) {
    actions.push(...planPreparation(p, o, ctx));
    actions.push({ step: 'moved', do: 'move-device', device: d.device, netns: d.netns });
  }

  // plumbed
  actions.push(...planPlumbing(p, o, ctx));
  return actions;
}

/** Before the device moves in: the pod netns' IPv6 forwarding, for a pod with IPv6. */
export function planPreparation(p: PodPlumbing, o: PlumbingObserved, ctx: ErrorContext): PodNetnsAction[] {
  if (familiesOf(p.podIPs).includes(6) && o.ipv6Forwarding === undefined) {
    throw new PeerpodError('ESTATE', 'the plan needs net.ipv6.conf.all.forwarding of the pod netns, which was not read', ctx);
  }
  const prepare = preparingSysctls(p.podIPs, o.ipv6Forwarding ?? false);
  return prepare === null ? [] : [{ step: 'moved', do: 'write-sysctls', values: prepare, why: 'IPv6 forwarding on, and off for devices that arrive' }];
}

/**
 * With the device in the pod netns: its sysctls, up, the pod IPs routed into it, the iptables rules
 * missing. The sysctls, the device up and the table's two routes are restated every time (one
 * write each, idempotent); rules and iptables rules are added or removed only where they differ.
 */
export function planPlumbing(p: PodPlumbing, o: PlumbingObserved, ctx: ErrorContext): PodNetnsAction[] {
  const actions: PodNetnsAction[] = [];
  actions.push({ step: 'plumbed', do: 'write-sysctls', values: plumbingSysctls(p), why: 'forwarding, and the device a quiet host' });
  actions.push({ step: 'plumbed', do: 'device-up', device: p.device });
  for (const family of familiesOf(p.podIPs)) {
    const rules = o.rules[family];
    if (rules === undefined) throw new PeerpodError('ESTATE', `the plan needs the IPv${family} rules of the pod netns, which were not read`, ctx);
    actions.push({ step: 'plumbed', do: 'route', family, commands: podRoutingCommands(p, family, rules) });
  }
  for (const rule of podIptablesRules(p)) {
    if (!o.iptables.some((r) => sameIptablesRule(r, rule))) {
      const why = rule.chain === 'FORWARD' ? 'add TCP MSS clamping' : 'keep neighbour discovery local';
      actions.push({ step: 'plumbed', do: 'add-iptables-rule', rule, why });
    }
  }
  return actions;
}

/** What a pod's record and stored keys ask for. */
export function desiredOf(
  record: WireguardPodRecord,
  keys: { worker: SecretKey; psk: SecretKey | null; vm: PublicKey },
  backend: BackendKind,
  rewriteEndpoint?: string,
): WorkerDesired {
  const endpointIP = record.podVmIPs[0];
  if (endpointIP === undefined) {
    throw new PeerpodError('ESTATE', `no pod VM IP recorded for pod netns ${record.netns}`, { op: 'converge', netns: record.netns });
  }
  return {
    device: record.device,
    netns: record.netns,
    podInterface: record.podInterface,
    podIPs: podIPsOf(record),
    mtu: record.mtu,
    backend,
    workerKey: keys.worker,
    presharedKey: keys.psk,
    vmPublicKey: keys.vm,
    endpointIP,
    vmListenPort: record.vmListenPort,
    keepalive: record.keepalive,
    ...(rewriteEndpoint === undefined ? {} : { rewriteEndpoint }),
  };
}
