// The pod-VM side of the `wireguard` tunnel. It creates the device in the VM's root netns, where
// its UDP socket listens on the agreed port, moves it into the pod netns under the pod's interface
// name (eth0), then gives it the pod's addresses (podip and the wireguard section's extra-pod-ips,
// so IPv4, IPv6 or both), MTU and routes. With --interface-only (CAA's podnode adds the routes) it
// still adds every address, but no route. A pod with IPv6 gets it on the device without any IPv6
// chatter of the device's own (no link-local address, DAD, RA or router solicitation), so nothing
// but the pod's packets enters the tunnel. The worker's peer has no endpoint: the VM learns it from
// the first handshake and follows it when the worker's NAT mapping changes. Re-running setup adopts
// a device that is already in place; teardown is idempotent.
import { PeerpodError, type ErrorContext } from '../../errors.js';
import type { Netns, NetnsFactory } from '../../netns/netns.js';
import type { WireGuardBackend } from '../../wireguard/backend.js';
import { formatIpPrefix } from '../../ip.js';
import { carriesIpv6, podAddresses, type PodNetwork, type PodRoute, type WireguardTunnel } from '../../podnetwork/types.js';
import type { SecretKey } from '../../wireguard/keys.js';
import type { PodVmSetupRequest, PodVmSetupResult, PodVmTunnelDriver } from '../driver.js';
import { podVmDeviceName } from './names.js';
import { deviceChange } from './device-change.js';
import { WIREGUARD_OVERHEAD, checkIpv6Mtu, tunnelMtu, wireguardOf } from './tunnel-section.js';


export interface PodVmDriverDeps {
  backend: WireGuardBackend;
  netns: NetnsFactory;
}

const RTPROT_KERNEL = 2;

export class WireguardPodVmDriver implements PodVmTunnelDriver {
  readonly type = 'wireguard' as const;
  readonly #d: PodVmDriverDeps;

  constructor(deps: PodVmDriverDeps) {
    this.#d = deps;
  }


  async setup(req: PodVmSetupRequest): Promise<PodVmSetupResult> {
    const { backend } = this.#d;
    const pn = req.podNetwork;
    const wireguard = wireguardOf(pn, req.podNetns);
    const privateKey = wireguard.privateKey;
    if (privateKey === undefined) {
      throw new PeerpodError('EINVAL', "pod-network.wireguard.private-key is missing: the pod VM's device needs its private key", {
        op: 'podvm-setup',
        netns: req.podNetns,
        field: 'pod-network.wireguard.private-key',
      });
    }
    const iface = pn.interfaceName;
    const podNs = this.#d.netns.at(req.podNetns);
    const device = podVmDeviceName(wireguard.peerPublicKey);
    const ctx = { op: 'podvm-setup', netns: req.podNetns, iface };
    if (!(await podNs.exists())) {
      throw new PeerpodError('ENOTFOUND', `pod netns ${req.podNetns} does not exist`, ctx);
    }
    let existing = await podNs.link(iface);
    if (existing?.kind === 'wireguard' && backend.kind === 'kernel' && (await podNs.exists())) {
      // A generic netlink socket sees only its own netns, so a kernel device that already moved
      // can't be read back from here: a re-run replaces it (the worker re-handshakes at once).
      await podNs.ip(['link', 'del', 'dev', iface], 'replace the pod interface', iface);
      existing = null;
    }
    const alive = await backend.device(device).then(
      () => true,
      () => false,
    );
    const adopted = existing !== null && alive && (existing.kind === 'tun' || existing.kind === 'wireguard');
    if (existing !== null && !adopted) {
      throw new PeerpodError(
        'ESETUP',
        `interface ${iface} already exists in pod netns ${req.podNetns} and is not this pod's WireGuard device ` +
          `(kind ${existing.kind ?? 'unknown'}): remove it or choose another interface name`,
        ctx,
      );
    }
    const mtu = tunnelMtu(pn.mtu, await this.#d.netns.host().defaultRouteMtu(), wireguard.mtu);
    const v6 = carriesIpv6(pn);
    if (v6) await this.checkIpv6(podNs, pn, mtu, ctx);
    try {
      if (!adopted) await backend.create(device, { mtu });
      await this.configureDevice(device, { ...wireguard, privateKey }, v6);
      if (!adopted) {
        await this.#d.netns
          .host()
          .ip(['link', 'set', 'dev', device, 'netns', req.podNetns, 'name', iface], 'move device into the pod netns', device);
      }
      // Before the device goes up: an IPv6 device comes up sending DAD, MLD and router solicitations.
      const p = `net.ipv6.conf.${iface}`;
      await podNs.writeSysctls(
        v6
          ? { [`${p}.disable_ipv6`]: 0, [`${p}.addr_gen_mode`]: 1, [`${p}.accept_ra`]: 0, [`${p}.dad_transmits`]: 0, [`${p}.router_solicitations`]: 0 }
          : { [`${p}.disable_ipv6`]: 1 },
        iface,
      );
      const cmds: string[][] = [
        ...podAddresses(pn).map((a) => ['address', 'replace', formatIpPrefix(a), 'dev', iface, ...(a.family === 6 ? ['nodad'] : [])]),
        ['link', 'set', 'dev', iface, 'up'],
      ];
      for (const r of req.interfaceOnly === true ? [] : routesOf(pn)) {
        if (r.protocol === RTPROT_KERNEL) continue; // the address made it already
        const dst = r.dst === undefined ? (routeFamily(r) === 6 ? '::/0' : 'default') : formatIpPrefix(r.dst);
        // An L3 device has no neighbours: a gateway is reachable only because we say it is.
        cmds.push(
          r.gw === undefined
            ? ['route', 'replace', dst, 'dev', iface]
            : ['route', 'replace', dst, 'via', r.gw, 'dev', iface, 'onlink'],
        );
      }
      await podNs.batch(cmds, 'configure the pod interface', iface);
    } catch (e) {
      const err = new PeerpodError('ESETUP', `pod VM tunnel setup in ${req.podNetns} failed and was rolled back`, ctx, e);
      await this.teardown({ podNetns: req.podNetns, podNetwork: pn }).catch(
        (c: unknown) => err.cleanupErrors.push(c),
      );
      throw err;
    }
    return { device, interface: iface, mtu, adopted };
  }

  /** Refuse an IPv6 pod that this VM cannot carry, before anything is made. */
  private async checkIpv6(podNs: Netns, pn: PodNetwork, mtu: number, ctx: ErrorContext): Promise<void> {
    const v6 = podAddresses(pn).find((a) => a.family === 6)!;
    const field = v6 === pn.podIp ? 'pod-network.podip' : 'pod-network.wireguard.extra-pod-ips';
    const why = await podNs.ipv6Unavailable();
    if (why !== null) {
      throw new PeerpodError(
        'EINVAL',
        `${field} has the IPv6 address ${formatIpPrefix(v6)}, but pod netns ${podNs.label} of this VM cannot carry IPv6: ${why}`,
        { ...ctx, field },
      );
    }
    checkIpv6Mtu(mtu, formatIpPrefix(v6), {
      where: 'here',
      from: `this VM's underlay MTU − ${WIREGUARD_OVERHEAD}, or less`,
      holder: field,
    }, ctx);
  }

  private async configureDevice(device: string, wg: WireguardTunnel & { privateKey: SecretKey }, v6: boolean): Promise<void> {
    const { backend } = this.#d;
    // No endpoint and no keepalive: the worker initiates; its NATed address is learned.
    const change = deviceChange(await backend.device(device), {
      privateKey: wg.privateKey,
      listenPort: wg.listenPort,
      peer: { publicKey: wg.peerPublicKey, presharedKey: wg.presharedKey ?? null, allowedIPs: v6 ? ['0.0.0.0/0', '::/0'] : ['0.0.0.0/0'] },
    });
    if (change !== null) await backend.configure(device, change.config);
  }

  async teardown(req: PodVmSetupRequest): Promise<void> {
    const iface = req.podNetwork.interfaceName;
    const device = podVmDeviceName(wireguardOf(req.podNetwork, req.podNetns).peerPublicKey);
    try {
      // Stopping the device's process destroys its TUN in whichever netns it now lives.
      await this.#d.backend.remove(device);
      const podNs = this.#d.netns.at(req.podNetns);
      if (await podNs.exists()) {
        const left = await podNs.link(iface);
        if (left !== null && (left.kind === 'tun' || left.kind === 'wireguard')) {
          await podNs.ip(['link', 'del', 'dev', iface], 'delete the pod interface', iface);
        }
      }
    } catch (e) {
      throw new PeerpodError('ETEARDOWN', `pod VM tunnel teardown in ${req.podNetns} failed`, {
        op: 'podvm-teardown',
        netns: req.podNetns,
        iface,
      }, e);
    }
  }
}

/** A default route (no dst) is IPv6 when its gateway is; one without either is IPv4, as iproute2 reads it. */
function routeFamily(r: PodRoute): 4 | 6 {
  return r.dst?.family ?? (r.gw?.includes(':') === true ? 6 : 4);
}

/**
 * The pod's routes, and for each family that only `extra-pod-ips` brings and no route covers (a
 * dual-stack pod whose CAA wrote only IPv4 routes), a default route through the device: the worker
 * forwards whatever the tunnel brings, so that family's traffic has nowhere else to go.
 */
function routesOf(pn: PodNetwork): PodRoute[] {
  const uncovered = new Set(podAddresses(pn).map((a) => a.family));
  uncovered.delete(pn.podIp.family);
  for (const r of pn.routes) if (r.protocol !== RTPROT_KERNEL) uncovered.delete(routeFamily(r));
  const defaults = [...uncovered].map((family): PodRoute => ({ dst: { address: family === 6 ? '::' : '0.0.0.0', prefixLength: 0, family } }));
  return [...pn.routes, ...defaults];
}
