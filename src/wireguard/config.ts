// The WireGuard configuration model, shaped after wgctrl-go: a `DeviceConfig` describes a change,
// where an absent field means "leave unchanged" and an explicit null means "clear". `Device` and
// `Peer` describe what a backend reports, and the field checks both wire encoders share. Pure
// values, no I/O.
import { PeerpodError } from '../errors.js';
import type { PublicKey, SecretKey } from './keys.js';

/** "203.0.113.5:51900" or "[2001:db8::5]:51900". */
export type Endpoint = string;
/** "198.18.0.5/32" or "::/0". */
export type Cidr = string;

export interface PeerConfig {
  publicKey: PublicKey;
  /** Remove this peer (all other fields are ignored). */
  remove?: boolean;
  /** Only change the peer if it already exists; never create it. */
  updateOnly?: boolean;
  /** null clears the preshared key. */
  presharedKey?: SecretKey | null;
  endpoint?: Endpoint;
  /** Seconds; 0 disables. */
  persistentKeepalive?: number;
  /** Replace, rather than add to, the allowed IPs. */
  replaceAllowedIPs?: boolean;
  allowedIPs?: readonly Cidr[];
}

export interface DeviceConfig {
  /** null clears the private key. */
  privateKey?: SecretKey | null;
  listenPort?: number;
  /** 0 clears the mark. */
  firewallMark?: number;
  /** Remove every peer not listed in `peers` first. */
  replacePeers?: boolean;
  peers?: readonly PeerConfig[];
}

export interface Peer {
  publicKey: PublicKey;
  presharedKey: SecretKey | null;
  endpoint: Endpoint | null;
  persistentKeepalive: number;
  /** Unix time of the last handshake, 0 when there was none. */
  lastHandshakeSec: number;
  lastHandshakeNsec: number;
  rxBytes: number;
  txBytes: number;
  allowedIPs: Cidr[];
  protocolVersion: number;
}

export interface Device {
  name: string;
  privateKey: SecretKey | null;
  publicKey: PublicKey | null;
  listenPort: number;
  firewallMark: number;
  peers: Peer[];
}

/** A peer as a backend reports one it knows nothing more about: no handshake, no traffic. */
export function emptyPeer(publicKey: PublicKey): Peer {
  return { publicKey, ...peerDefaults() };
}

/** Everything of `emptyPeer` but its key, for decoders that meet the key later. */
export function peerDefaults(): Omit<Peer, 'publicKey'> {
  return {
    presharedKey: null,
    endpoint: null,
    persistentKeepalive: 0,
    lastHandshakeSec: 0,
    lastHandshakeNsec: 0,
    rxBytes: 0,
    txBytes: 0,
    allowedIPs: [],
    protocolVersion: 0,
  };
}

/** EINVAL for a config field that an encoder (`op`) cannot put on its wire. */
export function invalidField(op: string, field: string, message: string): PeerpodError {
  return new PeerpodError('EINVAL', `${field}: ${message}`, { op, field });
}

/** Throw invalidField unless `value` is an integer in [min, max]. */
export function checkIntegerField(op: string, field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidField(op, field, `must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
}
