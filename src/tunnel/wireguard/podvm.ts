// The pod-VM side of the `wireguard` tunnel. It creates the device in the VM's root netns, where
// its UDP socket listens on the agreed port, moves it into the pod netns under the pod's interface
// name (eth0), then gives it the pod IP, MTU and routes. The worker's peer has no endpoint: the VM
// learns it from the first handshake and follows it when the worker's NAT mapping changes.
// Re-running setup adopts a device that is already in place; teardown is idempotent.
import { PeerpodError } from '../../errors.js';
import type { NetnsFactory } from '../../netns/netns.js';
import type { WireGuardBackend } from '../../wireguard/backend.js';
import type { DeviceConfig, PeerConfig } from '../../wireguard/config.js';
import { formatIpPrefix } from '../../podnetwork/ip.js';
import type { WireguardTunnel } from '../../podnetwork/types.js';
import type { SecretKey } from '../../wireguard/keys.js';
import type { PodVmSetupRequest, PodVmSetupResult, PodVmTunnelDriver } from '../driver.js';
import { podVmDeviceName } from './names.js';
import { WIREGUARD_OVERHEAD, sameSecret, wireguardOf } from './worker.js';


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
    const mtu = Math.min(wireguard.mtu, pn.mtu, (await this.#d.netns.host().defaultRouteMtu()) - WIREGUARD_OVERHEAD);
    try {
      if (!adopted) await backend.create(device, { mtu });
      await this.configureDevice(device, { ...wireguard, privateKey }, pn.podIp.family);
      if (!adopted) {
        await this.#d.netns
          .host()
          .ip(['link', 'set', 'dev', device, 'netns', req.podNetns, 'name', iface], 'move device into the pod netns', device);
      }
      if (pn.podIp.family === 4) {
        await podNs.writeSysctls({ [`net.ipv6.conf.${iface}.disable_ipv6`]: 1 }, iface);
      }
      const cmds: string[][] = [
        ['address', 'replace', formatIpPrefix(pn.podIp), 'dev', iface],
        ['link', 'set', 'dev', iface, 'up'],
      ];
      for (const r of req.interfaceOnly === true ? [] : pn.routes) {
        if (r.protocol === RTPROT_KERNEL) continue; // the address made it already
        const dst = r.dst === undefined ? 'default' : formatIpPrefix(r.dst);
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

  private async configureDevice(device: string, wg: WireguardTunnel & { privateKey: SecretKey }, family: 4 | 6): Promise<void> {
    const { backend } = this.#d;
    const actual = await backend.device(device);
    const change: DeviceConfig = {};
    if (actual.privateKey === null || !actual.privateKey.equals(wg.privateKey)) change.privateKey = wg.privateKey;
    if (actual.listenPort !== wg.listenPort) change.listenPort = wg.listenPort;
    const peer = actual.peers.find((p) => p.publicKey.equals(wg.peerPublicKey));
    if (actual.peers.some((p) => !p.publicKey.equals(wg.peerPublicKey))) change.replacePeers = true;
    const allowed = family === 6 ? ['0.0.0.0/0', '::/0'] : ['0.0.0.0/0'];
    const want: PeerConfig = { publicKey: wg.peerPublicKey };
    let touched = false;
    const psk = wg.presharedKey ?? null;
    if (peer === undefined || !sameSecret(peer.presharedKey, psk)) {
      want.presharedKey = psk;
      touched = true;
    }
    if (peer === undefined || peer.allowedIPs.join(',') !== allowed.join(',')) {
      want.replaceAllowedIPs = true;
      want.allowedIPs = allowed;
      touched = true;
    }
    // No endpoint and no keepalive: the worker initiates; its NATed address is learned.
    if (touched || change.replacePeers === true) change.peers = [want];
    if (Object.keys(change).length > 0) await backend.configure(device, change);
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
