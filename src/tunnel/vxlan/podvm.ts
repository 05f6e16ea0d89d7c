// The pod-VM side of the `vxlan` tunnel, at parity with CAA's podnode.go (tunneler/vxlan and the
// generic pod-node part that adds routes and neighbours). The VXLAN device is born in the VM's root
// netns, where its UDP socket listens, with the worker as its one remote; it moves into the pod
// netns under the pod's interface name (eth0) and takes the pod's MAC, so that ARP answers from the
// VM match what the worker's pod netns had. Then the pod IP, an MTU capped at 1450 (a 1500 underlay
// less 50 bytes of VXLAN), the routes and the permanent neighbours the worker saw, and up.
//
// Re-running setup adopts a device that is already in place and has the wanted VNI, remote and
// port; a VXLAN device under the pod's interface name with another config is made again. Teardown
// is idempotent.
import { PeerpodError } from '../../errors.js';
import type { NetnsFactory, Route } from '../../netns/netns.js';
import { formatIpPrefix } from '../../ip.js';
import type { PodNetwork, PodRoute } from '../../podnetwork/types.js';
import type { PodVmSetupRequest, PodVmSetupResult, PodVmTunnelDriver } from '../driver.js';
import { isVxlanLike, vxlanAddCommand, vxlanLink, vxlanOf, type VxlanSpec } from './device.js';
import { podVmVxlanDeviceName } from './names.js';
import { ensureNotrack, removeNotrack } from './notrack.js';
import { Serial } from './serial.js';
import { KERNEL_DEFAULT_VXLAN_PORT } from './vni.js';

/** CAA's cap on the pod interface MTU in the VM (its maxMTU). */
export const VXLAN_MAX_MTU = 1450;
const RTPROT_KERNEL = 2;

export interface VxlanPodVmDeps {
  netns: NetnsFactory;
}

/** The VXLAN device the pod VM needs, from its pod-network. */
export function podVmVxlanSpec(pn: PodNetwork, netns: string): VxlanSpec {
  const vxlan = vxlanOf(pn, netns, 'podvm-setup');
  const worker = pn.workerNodeIp;
  if (worker === undefined || worker.family !== 4) {
    throw new PeerpodError('EINVAL', 'pod-network.worker-node-ip: expected the worker\'s IPv4 address, the VXLAN remote', {
      op: 'podvm-setup',
      netns,
      field: 'pod-network.worker-node-ip',
    });
  }
  // Go omits a zero ID and a zero port; a zero port makes the kernel pick its own default.
  return { vni: vxlan.id ?? 0, remote: worker.address, port: vxlan.port ?? KERNEL_DEFAULT_VXLAN_PORT };
}

function routeKey(dst: string): string {
  return dst === 'default' || dst.includes('/') ? dst : `${dst}/32`;
}

function podRouteDst(r: PodRoute): string {
  return r.dst === undefined ? 'default' : formatIpPrefix(r.dst);
}

/**
 * The `ip` commands that bring the routes on the pod interface to the pod-network's. Like CAA,
 * routes on the interface that the worker did not have go (the subnet route the kernel adds with
 * the address, for CNIs such as PTP), and routes without a gateway come first, since a gateway
 * route needs its gateway reachable. A kernel route already in place is left as the kernel made it.
 */
export function podRouteCommands(iface: string, wanted: readonly PodRoute[], actual: readonly Route[]): string[][] {
  const mine = actual.filter((r) => r.dev === iface);
  const wantedKeys = new Set(wanted.map((r) => routeKey(podRouteDst(r))));
  const cmds: string[][] = [];
  for (const r of mine) {
    if (!wantedKeys.has(routeKey(r.dst))) cmds.push(['route', 'del', r.dst, 'dev', iface]);
  }
  const ordered = [...wanted.filter((r) => r.gw === undefined), ...wanted.filter((r) => r.gw !== undefined)];
  for (const r of ordered) {
    const dst = podRouteDst(r);
    if (r.protocol === RTPROT_KERNEL && mine.some((a) => routeKey(a.dst) === routeKey(dst))) continue;
    cmds.push([
      'route', 'replace', dst,
      ...(r.gw === undefined ? [] : ['via', r.gw]),
      'dev', r.dev ?? iface,
      ...(r.protocol === undefined ? [] : ['proto', String(r.protocol)]),
      ...(r.scope === undefined ? [] : ['scope', r.scope]),
    ]);
  }
  return cmds;
}

export class VxlanPodVmDriver implements PodVmTunnelDriver {
  readonly type = 'vxlan' as const;
  readonly #d: VxlanPodVmDeps;
  readonly #iptables = new Serial();

  constructor(deps: VxlanPodVmDeps) {
    this.#d = deps;
  }

  async setup(req: PodVmSetupRequest): Promise<PodVmSetupResult> {
    const pn = req.podNetwork;
    const want = podVmVxlanSpec(pn, req.podNetns);
    const iface = pn.interfaceName;
    const ctx = { op: 'podvm-setup', netns: req.podNetns, iface };
    const host = this.#d.netns.host();
    const podNs = this.#d.netns.at(req.podNetns);
    if (!(await podNs.exists())) {
      throw new PeerpodError('ENOTFOUND', `pod netns ${req.podNetns} does not exist`, ctx);
    }
    const existing = await podNs.link(iface);
    if (existing !== null && existing.kind !== 'vxlan') {
      throw new PeerpodError(
        'ESETUP',
        `interface ${iface} already exists in pod netns ${req.podNetns} and is not a VXLAN device ` +
          `(kind ${existing.kind ?? 'unknown'}): remove it or choose another interface name`,
        ctx,
      );
    }
    const current = existing === null ? null : await vxlanLink(podNs, iface);
    const adopted = current !== null && isVxlanLike(current, want);
    const device = podVmVxlanDeviceName(want.vni);
    const mtu = Math.min(pn.mtu, VXLAN_MAX_MTU);
    try {
      await this.#iptables.run(() => ensureNotrack(host, want));
      if (!adopted) {
        if (current !== null) {
          await podNs.ip(['link', 'del', 'dev', iface], 'delete a VXLAN device of an older config', iface);
        }
        let born = await vxlanLink(host, device);
        if (born !== null && !isVxlanLike(born, want)) {
          await host.ip(['link', 'del', 'dev', device], 'delete a stray VXLAN device in the root netns', device);
          born = null;
        }
        // Born in the root netns, so its UDP socket listens there after the move.
        if (born === null) await host.ip(vxlanAddCommand(device, want), 'create the VXLAN device', device);
        await host.ip(['link', 'set', 'dev', device, 'netns', req.podNetns, 'name', iface],
          'move the VXLAN device into the pod netns', device);
      }
      const link = await podNs.requireLink(iface, 'podvm-setup');
      const cmds: string[][] = [];
      if (pn.podHwAddr !== undefined && link.address !== pn.podHwAddr) {
        cmds.push(['link', 'set', 'dev', iface, 'address', pn.podHwAddr]);
      }
      if (link.mtu !== mtu) cmds.push(['link', 'set', 'dev', iface, 'mtu', String(mtu)]);
      // An adopted device may carry the address of an older config: the pod IP is the only one.
      for (const a of await podNs.addresses(iface)) {
        const isPodIP = a.local === pn.podIp.address && a.prefixlen === pn.podIp.prefixLength;
        if (a.scope === 'global' && !isPodIP) cmds.push(['address', 'del', `${a.local}/${a.prefixlen}`, 'dev', iface]);
      }
      cmds.push(['address', 'replace', formatIpPrefix(pn.podIp), 'dev', iface]);
      cmds.push(['link', 'set', 'dev', iface, 'up']);
      await podNs.batch(cmds, 'configure the pod interface', iface);
      if (req.interfaceOnly !== true) {
        const routes = podRouteCommands(iface, pn.routes, await podNs.routes({ family: 4 }));
        const neighbours = pn.neighbors.map((n) => [
          'neighbour', 'replace', n.ip, 'lladdr', n.hwAddr, 'dev', n.dev, 'nud', n.state ?? 'permanent',
        ]);
        await podNs.batch([...routes, ...neighbours], 'add the pod routes and neighbours', iface);
      }
    } catch (e) {
      const err = new PeerpodError('ESETUP', `pod VM tunnel setup in ${req.podNetns} failed and was rolled back`, ctx, e);
      await this.teardown(req).catch((c: unknown) => err.cleanupErrors.push(c));
      throw err;
    }
    return { device, interface: iface, mtu, adopted };
  }

  async teardown(req: PodVmSetupRequest): Promise<void> {
    const iface = req.podNetwork.interfaceName;
    const ctx = { op: 'podvm-teardown', netns: req.podNetns, iface };
    const vxlan = vxlanOf(req.podNetwork, req.podNetns, 'podvm-teardown');
    const vni = vxlan.id ?? 0;
    try {
      const host = this.#d.netns.host();
      const podNs = this.#d.netns.at(req.podNetns);
      const inPod = (await podNs.exists()) ? await vxlanLink(podNs, iface) : null;
      if (inPod !== null) await podNs.ip(['link', 'del', 'dev', iface], 'delete the pod interface', iface);
      const device = podVmVxlanDeviceName(vni);
      if ((await vxlanLink(host, device)) !== null) {
        await host.ip(['link', 'del', 'dev', device], 'delete the VXLAN device in the root netns', device);
      }
      for (const v of new Set([vni, inPod?.vni ?? vni])) await this.#iptables.run(() => removeNotrack(host, v));
    } catch (e) {
      throw new PeerpodError('ETEARDOWN', `pod VM tunnel teardown in ${req.podNetns} failed`, ctx, e);
    }
  }
}
