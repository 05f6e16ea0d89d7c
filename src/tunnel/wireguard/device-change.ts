// The change that brings a WireGuard device from what its backend reports to what one end of the
// tunnel wants (Kilo-style): each field is written only when it differs, with the reason, and an
// endpoint that is already in place (perhaps learned through NAT) is kept unless the caller says
// why it must go. Both ends have one peer, the other end. Pure; reading and writing the device is
// the drivers' business.
import type { Device, DeviceConfig, Endpoint, PeerConfig } from '../../wireguard/config.js';
import type { PublicKey, SecretKey } from '../../wireguard/keys.js';
import { sameSecret } from './tunnel-section.js';

export interface WantedPeer {
  publicKey: PublicKey;
  presharedKey: SecretKey | null;
  allowedIPs: readonly string[];
  /**
   * Set when the peer is new or has none; one in place is replaced only with a reason (`rewrite`,
   * e.g. new pod VM IPs), and only when it differs. Absent: the endpoint is left to the peer to
   * teach (the pod VM learns the worker's).
   */
  endpoint?: { value: Endpoint; rewrite?: string };
  /** Absent: left as it is. */
  persistentKeepalive?: number;
}

export interface WantedDevice {
  privateKey: SecretKey;
  /** Absent: left as it is (the worker's port is random). */
  listenPort?: number;
  peer: WantedPeer;
}

export interface DeviceChange {
  config: DeviceConfig;
  /** Why, one entry per field that differs; never a key. */
  reasons: string[];
}

/** A device as a fresh one reports itself: no key, no port, no peers. */
export function emptyDevice(name: string): Device {
  return { name, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] };
}

/** What to configure on `actual` so that it is `want`; null when nothing differs. */
export function deviceChange(actual: Device, want: WantedDevice): DeviceChange | null {
  const config: DeviceConfig = {};
  const reasons: string[] = [];
  if (actual.privateKey === null || !actual.privateKey.equals(want.privateKey)) {
    config.privateKey = want.privateKey;
    reasons.push(actual.privateKey === null ? 'no private key' : 'another private key');
  }
  if (want.listenPort !== undefined && actual.listenPort !== want.listenPort) {
    config.listenPort = want.listenPort;
    reasons.push(`listen port ${actual.listenPort}, wanted ${want.listenPort}`);
  }
  const w = want.peer;
  const others = actual.peers.filter((p) => !p.publicKey.equals(w.publicKey)).length;
  if (others > 0) {
    config.replacePeers = true;
    reasons.push(`${others} other peer${others === 1 ? '' : 's'}`);
  }
  const peer = actual.peers.find((p) => p.publicKey.equals(w.publicKey));
  if (peer === undefined) reasons.push('no peer for the other end');
  const set: PeerConfig = { publicKey: w.publicKey };
  let touched = false;
  if (peer === undefined || !sameSecret(peer.presharedKey, w.presharedKey)) {
    set.presharedKey = w.presharedKey;
    touched = true;
    if (peer !== undefined) reasons.push('another preshared key');
  }
  const rewrite = w.endpoint?.rewrite !== undefined && peer?.endpoint !== w.endpoint.value;
  if (w.endpoint !== undefined && (peer === undefined || peer.endpoint === null || rewrite)) {
    set.endpoint = w.endpoint.value;
    touched = true;
    if (peer?.endpoint === null) reasons.push('no endpoint');
    else if (peer !== undefined) reasons.push(`endpoint rewritten: ${w.endpoint.rewrite ?? ''}`);
  }
  if (peer === undefined || peer.allowedIPs.join(',') !== w.allowedIPs.join(',')) {
    set.replaceAllowedIPs = true;
    set.allowedIPs = w.allowedIPs;
    touched = true;
    if (peer !== undefined) reasons.push(`allowed IPs ${peer.allowedIPs.join(',') || 'none'}, wanted ${w.allowedIPs.join(',')}`);
  }
  if (w.persistentKeepalive !== undefined && (peer === undefined || peer.persistentKeepalive !== w.persistentKeepalive)) {
    set.persistentKeepalive = w.persistentKeepalive;
    touched = true;
    if (peer !== undefined) reasons.push(`keepalive ${peer.persistentKeepalive}, wanted ${w.persistentKeepalive}`);
  }
  if (touched || config.replacePeers === true) config.peers = [set];
  return reasons.length === 0 ? null : { config, reasons };
}
