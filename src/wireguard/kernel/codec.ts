// Kernel WireGuard's generic netlink attributes (include/uapi/linux/wireguard.h) as pure
// functions: a DeviceConfig becomes the payloads of WG_CMD_SET_DEVICE requests, and the payloads of
// a WG_CMD_GET_DEVICE dump become a Device. No sockets here: ./genl.ts moves the bytes and adds the
// netlink and genl headers; ./backend.ts decides what to send.
//
// Wire facts this relies on: attributes are struct nlattr {u16 len; u16 type} in host byte order
// (little endian on every machine we build for), padded to 4 bytes; nested lists (peers, allowed
// IPs) carry NLA_F_NESTED and number their items from 0, as wireguard-tools does; the endpoint is a
// struct sockaddr_in/in6 (port in network order); the handshake time is struct __kernel_timespec.
// A dump may split one device over several messages, even one peer's allowed IPs; the parser merges
// consecutive parts of the same peer, as wireguard-tools does.
//
// Secrets: private and preshared keys leave a SecretKey only into request bytes, and no error built
// here quotes key bytes.
import { PeerpodError } from '../../errors.js';
import { formatIpAddress, parseIpAddress } from '../../ip.js';
import { checkIntegerField, invalidField, peerDefaults, type Device, type DeviceConfig, type Peer, type PeerConfig } from '../config.js';
import { PublicKey, SecretKey } from '../keys.js';
import { isCidr, parseEndpoint } from '../uapi/codec.js';

export const WG_GENL_NAME = 'wireguard';
export const WG_GENL_VERSION = 1;
export const WG_KEY_LEN = 32;

export const WG_CMD = { GET_DEVICE: 0, SET_DEVICE: 1 } as const;

export const WGDEVICE_A = {
  IFINDEX: 1,
  IFNAME: 2,
  PRIVATE_KEY: 3,
  PUBLIC_KEY: 4,
  FLAGS: 5,
  LISTEN_PORT: 6,
  FWMARK: 7,
  PEERS: 8,
} as const;
export const WGDEVICE_F_REPLACE_PEERS = 1;

export const WGPEER_A = {
  PUBLIC_KEY: 1,
  PRESHARED_KEY: 2,
  FLAGS: 3,
  ENDPOINT: 4,
  PERSISTENT_KEEPALIVE_INTERVAL: 5,
  LAST_HANDSHAKE_TIME: 6,
  RX_BYTES: 7,
  TX_BYTES: 8,
  ALLOWEDIPS: 9,
  PROTOCOL_VERSION: 10,
} as const;
export const WGPEER_F = { REMOVE_ME: 1, REPLACE_ALLOWEDIPS: 2, UPDATE_ONLY: 4 } as const;

export const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 } as const;

export const NLA_F_NESTED = 0x8000;
const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
const NLA_HDRLEN = 4;
const AF_INET = 2;
const AF_INET6 = 10;
const IFNAMSIZ = 16;
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffff_ffff;

/**
 * How many bytes of attributes one SET request may carry. The kernel takes far more (it is bounded
 * by the socket's send buffer), but wireguard-tools splits at about a page's worth too, and small
 * messages keep one failure small.
 */
export const DEFAULT_SET_CHUNK_BYTES = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// Attribute primitives

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One attribute: header, payload, zero padding. */
export function nla(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  if (len > MAX_U16) throw new PeerpodError('EINVAL', `netlink attribute ${type} too long (${len} bytes)`, { op: 'genl-encode' });
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(b, NLA_HDRLEN);
  return b;
}

export function nested(type: number, children: readonly Buffer[]): Buffer {
  return nla(type | NLA_F_NESTED, Buffer.concat(children));
}

function u8(v: number): Buffer {
  return Buffer.from([v]);
}
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}
function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

export interface Attr {
  type: number;
  nested: boolean;
  data: Buffer;
}

/** Split a run of attributes. Truncated or overlong headers are EUAPI errors. */
export function parseAttrs(buf: Buffer, where: string): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new PeerpodError('EUAPI', `malformed netlink attribute in ${where} at byte ${off} (length ${len})`, { op: 'genl-decode' });
    }
    out.push({ type: rawType & NLA_TYPE_MASK, nested: (rawType & NLA_F_NESTED) !== 0, data: buf.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation

const invalid = (field: string, message: string): PeerpodError => invalidField('genl-encode', field, message);
const checkInteger = (field: string, value: number, min: number, max: number): void =>
  checkIntegerField('genl-encode', field, value, min, max);

/** A device name the kernel takes: 1-15 bytes, no '/', no whitespace, not "." or "..". */
export function checkIfname(name: string): void {
  if (!/^[^/\s:]{1,15}$/.test(name) || Buffer.byteLength(name) >= IFNAMSIZ || name === '.' || name === '..') {
    throw new PeerpodError('EINVAL', `invalid interface name ${JSON.stringify(name)}: 1-15 characters, no '/', ':' or whitespace`, {
      op: 'genl-encode',
      field: 'name',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoints and allowed IPs

/** struct sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes) for "IP:port" / "[IPv6%scope]:port". */
export function encodeSockaddr(endpoint: string, field = 'endpoint'): Buffer {
  const parsed = parseEndpoint(endpoint);
  if (parsed === null || parsed.port === 0) {
    throw invalid(field, `expected "IPv4:port" or "[IPv6]:port" with a port from 1 to 65535, got ${JSON.stringify(endpoint)}`);
  }
  const pct = parsed.host.indexOf('%');
  const hostOnly = pct < 0 ? parsed.host : parsed.host.slice(0, pct);
  const addr = parseIpAddress(hostOnly);
  if (typeof addr === 'string') throw invalid(field, `not an IP address: ${JSON.stringify(endpoint)}`);
  if (addr.family === 4) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(parsed.port, 2);
    Buffer.from(addr.bytes).copy(b, 4);
    return b;
  }
  const scope = pct < 0 ? '' : parsed.host.slice(pct + 1);
  // A numeric zone is the interface index; names would need a lookup the kernel does not do.
  if (scope !== '' && !/^[0-9]{1,10}$/.test(scope)) throw invalid(field, `only a numeric IPv6 zone (interface index) is supported, got %${scope}`);
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(parsed.port, 2);
  // flowinfo stays 0
  Buffer.from(addr.bytes).copy(b, 8);
  b.writeUInt32LE(scope === '' ? 0 : Number(scope), 24);
  return b;
}

/** The endpoint text UAPI would print, or null for an empty sockaddr. */
export function decodeSockaddr(b: Buffer, where: string): string | null {
  if (b.length < 2) throw new PeerpodError('EUAPI', `${where}: sockaddr of ${b.length} bytes`, { op: 'genl-decode' });
  const family = b.readUInt16LE(0);
  if (family === 0) return null;
  if (family === AF_INET && b.length >= 16) {
    return `${formatIpAddress({ family: 4, bytes: b.subarray(4, 8) })}:${b.readUInt16BE(2)}`;
  }
  if (family === AF_INET6 && b.length >= 28) {
    const scope = b.readUInt32LE(24);
    return `[${formatIpAddress({ family: 6, bytes: b.subarray(8, 24) })}${scope === 0 ? '' : `%${scope}`}]:${b.readUInt16BE(2)}`;
  }
  throw new PeerpodError('EUAPI', `${where}: unknown sockaddr family ${family} (${b.length} bytes)`, { op: 'genl-decode' });
}

/** One allowed IP: a nested item with family, address and prefix length. */
export function encodeAllowedIp(cidr: string, index: number, field: string): Buffer {
  if (typeof cidr !== 'string' || !isCidr(cidr)) throw invalid(field, `not a CIDR: ${JSON.stringify(cidr)}`);
  const slash = cidr.indexOf('/');
  const addr = parseIpAddress(cidr.slice(0, slash));
  if (typeof addr === 'string') throw invalid(field, `not a CIDR: ${JSON.stringify(cidr)}`);
  return nested(index, [
    nla(WGALLOWEDIP_A.FAMILY, u16(addr.family === 4 ? AF_INET : AF_INET6)),
    nla(WGALLOWEDIP_A.IPADDR, addr.bytes),
    nla(WGALLOWEDIP_A.CIDR_MASK, u8(Number(cidr.slice(slash + 1)))),
  ]);
}

// ---------------------------------------------------------------------------------------------
// SET_DEVICE

function secretBytes(key: SecretKey): Buffer {
  return Buffer.from(key.revealHex(), 'hex');
}

/** The attributes of one peer, before the allowed IPs (which the chunker may spread). */
function peerHead(peer: PeerConfig, field: (n: string) => string, opts: { continuation: boolean }): Buffer[] {
  if (!(peer.publicKey instanceof PublicKey)) throw invalid(field('publicKey'), 'must be a PublicKey');
  const attrs = [nla(WGPEER_A.PUBLIC_KEY, Buffer.from(peer.publicKey.toHex(), 'hex'))];
  if (opts.continuation) return attrs;
  let flags = 0;
  if (peer.remove === true) {
    // Everything else would be applied to a peer that is about to go.
    attrs.push(nla(WGPEER_A.FLAGS, u32(WGPEER_F.REMOVE_ME)));
    return attrs;
  }
  if (peer.updateOnly === true) flags |= WGPEER_F.UPDATE_ONLY;
  if (peer.replaceAllowedIPs === true) flags |= WGPEER_F.REPLACE_ALLOWEDIPS;
  if (flags !== 0) attrs.push(nla(WGPEER_A.FLAGS, u32(flags)));
  if (peer.presharedKey !== undefined) {
    if (peer.presharedKey === null) {
      attrs.push(nla(WGPEER_A.PRESHARED_KEY, Buffer.alloc(WG_KEY_LEN)));
    } else {
      if (!(peer.presharedKey instanceof SecretKey) || peer.presharedKey.kind !== 'preshared key') {
        throw invalid(field('presharedKey'), 'must be a preshared key');
      }
      attrs.push(nla(WGPEER_A.PRESHARED_KEY, secretBytes(peer.presharedKey)));
    }
  }
  if (peer.endpoint !== undefined) attrs.push(nla(WGPEER_A.ENDPOINT, encodeSockaddr(peer.endpoint, field('endpoint'))));
  if (peer.persistentKeepalive !== undefined) {
    checkInteger(field('persistentKeepalive'), peer.persistentKeepalive, 0, MAX_U16);
    attrs.push(nla(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, u16(peer.persistentKeepalive)));
  }
  return attrs;
}

/**
 * The payloads (attributes after the genl header) of the SET_DEVICE requests for a change, in
 * order. The first carries the device fields; peers follow, spread over as many messages as
 * `chunkBytes` needs. A peer cut between two messages is continued in the next by its public key
 * alone, so the second part only adds allowed IPs (REPLACE_ALLOWEDIPS already happened). Throws
 * EINVAL naming the field for a bad value, before anything is sent.
 */
export function encodeSetDevice(name: string, config: DeviceConfig, chunkBytes = DEFAULT_SET_CHUNK_BYTES): Buffer[] {
  checkIfname(name);
  const ifname = nla(WGDEVICE_A.IFNAME, cString(name));
  const head: Buffer[] = [ifname];
  if (config.privateKey !== undefined) {
    if (config.privateKey === null) {
      head.push(nla(WGDEVICE_A.PRIVATE_KEY, Buffer.alloc(WG_KEY_LEN)));
    } else {
      if (!(config.privateKey instanceof SecretKey) || config.privateKey.kind !== 'private key') {
        throw invalid('privateKey', 'must be a private key');
      }
      head.push(nla(WGDEVICE_A.PRIVATE_KEY, secretBytes(config.privateKey)));
    }
  }
  if (config.listenPort !== undefined) {
    checkInteger('listenPort', config.listenPort, 0, MAX_U16);
    head.push(nla(WGDEVICE_A.LISTEN_PORT, u16(config.listenPort)));
  }
  if (config.firewallMark !== undefined) {
    checkInteger('firewallMark', config.firewallMark, 0, MAX_U32);
    head.push(nla(WGDEVICE_A.FWMARK, u32(config.firewallMark)));
  }
  if (config.replacePeers === true) head.push(nla(WGDEVICE_A.FLAGS, u32(WGDEVICE_F_REPLACE_PEERS)));

  // Encode (and so validate) every peer before building any message.
  const peers = (config.peers ?? []).map((peer, i) => {
    const field = (n: string): string => `peers[${i}].${n}`;
    return {
      head: peerHead(peer, field, { continuation: false }),
      cont: peerHead(peer, field, { continuation: true }),
      ips: peer.remove === true ? [] : (peer.allowedIPs ?? []).map((c, j) => encodeAllowedIp(c, j, `${field('allowedIPs')}[${j}]`)),
    };
  });

  const size = (bs: readonly Buffer[]): number => bs.reduce((n, b) => n + b.length, 0);
  const messages: Buffer[] = [];
  let base: Buffer[] = head;
  let inMessage: Buffer[] = []; // peer items of the message being built
  const used = (): number => size(base) + size(inMessage) + (inMessage.length > 0 ? NLA_HDRLEN : 0);
  const flush = (): void => {
    messages.push(Buffer.concat(inMessage.length > 0 ? [...base, nested(WGDEVICE_A.PEERS, inMessage)] : base));
    base = [ifname];
    inMessage = [];
  };
  for (const p of peers) {
    let attrs = p.head;
    let ips = p.ips;
    for (;;) {
      // Nest headers: the peer item, PEERS if this is the first peer here, ALLOWEDIPS if any.
      const fixed = size(attrs) + NLA_HDRLEN + (inMessage.length === 0 ? NLA_HDRLEN : 0) + (ips.length > 0 ? NLA_HDRLEN : 0);
      const room = chunkBytes - used() - fixed;
      let take = 0;
      let filled = 0;
      while (take < ips.length && filled + ips[take]!.length <= room) filled += ips[take++]!.length;
      const fits = ips.length === 0 ? room >= 0 : take > 0;
      if (!fits && inMessage.length > 0) {
        flush(); // try again in a fresh message
        continue;
      }
      if (ips.length > 0 && take === 0) take = 1; // one item larger than a chunk still goes, alone
      const chunk = ips.slice(0, take);
      inMessage.push(nested(inMessage.length, chunk.length > 0 ? [...attrs, nested(WGPEER_A.ALLOWEDIPS, renumber(chunk))] : attrs));
      ips = ips.slice(take);
      if (ips.length === 0) break;
      flush();
      attrs = p.cont;
    }
  }
  flush();
  return messages;
}

/** Items of a nested list are numbered from 0 within their message. */
function renumber(items: readonly Buffer[]): Buffer[] {
  return items.map((b, i) => {
    const c = Buffer.from(b);
    c.writeUInt16LE(i | NLA_F_NESTED, 2);
    return c;
  });
}

/** The payload of the GET_DEVICE dump request for one device. */
export function encodeGetDevice(name: string): Buffer {
  checkIfname(name);
  return nla(WGDEVICE_A.IFNAME, cString(name));
}

// ---------------------------------------------------------------------------------------------
// GET_DEVICE

function fail(where: string, message: string): PeerpodError {
  return new PeerpodError('EUAPI', `${where}: ${message}`, { op: 'genl-decode' });
}

function readUint(a: Attr, bytes: 1 | 2 | 4 | 8, where: string): number {
  if (a.data.length < bytes) throw fail(where, `attribute ${a.type} has ${a.data.length} bytes, expected ${bytes}`);
  switch (bytes) {
    case 1:
      return a.data.readUInt8(0);
    case 2:
      return a.data.readUInt16LE(0);
    case 4:
      return a.data.readUInt32LE(0);
    case 8: {
      const v = a.data.readBigUInt64LE(0);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(where, `attribute ${a.type} value ${v} exceeds 2^53`);
      return Number(v);
    }
  }
}

function readKey(a: Attr, where: string): Buffer {
  if (a.data.length !== WG_KEY_LEN) throw fail(where, `key attribute ${a.type} has ${a.data.length} bytes, expected ${WG_KEY_LEN}`);
  return a.data;
}

function isZero(b: Buffer): boolean {
  return b.every((x) => x === 0);
}

function decodeAllowedIp(a: Attr, where: string): string {
  let family = 0;
  let addr: Buffer | null = null;
  let mask = -1;
  for (const f of parseAttrs(a.data, where)) {
    if (f.type === WGALLOWEDIP_A.FAMILY) family = readUint(f, 2, where);
    else if (f.type === WGALLOWEDIP_A.IPADDR) addr = f.data;
    else if (f.type === WGALLOWEDIP_A.CIDR_MASK) mask = readUint(f, 1, where);
  }
  if (family === AF_INET && addr?.length === 4 && mask >= 0 && mask <= 32) {
    return `${formatIpAddress({ family: 4, bytes: addr })}/${mask}`;
  }
  if (family === AF_INET6 && addr?.length === 16 && mask >= 0 && mask <= 128) {
    return `${formatIpAddress({ family: 6, bytes: addr })}/${mask}`;
  }
  throw fail(where, `allowed IP with family ${family}, ${addr?.length ?? 0} address bytes and mask ${mask}`);
}

function decodePeer(a: Attr, where: string): Peer {
  let publicKey: PublicKey | null = null;
  const peer = peerDefaults();
  for (const f of parseAttrs(a.data, where)) {
    switch (f.type) {
      case WGPEER_A.PUBLIC_KEY:
        publicKey = PublicKey.fromBytes(readKey(f, where));
        break;
      case WGPEER_A.PRESHARED_KEY: {
        const k = readKey(f, where);
        peer.presharedKey = isZero(k) ? null : SecretKey.fromBytes('preshared key', k);
        break;
      }
      case WGPEER_A.ENDPOINT:
        peer.endpoint = decodeSockaddr(f.data, `${where} endpoint`);
        break;
      case WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL:
        peer.persistentKeepalive = readUint(f, 2, where);
        break;
      case WGPEER_A.LAST_HANDSHAKE_TIME: {
        if (f.data.length !== 16) throw fail(where, `last handshake time has ${f.data.length} bytes, expected 16`);
        const sec = f.data.readBigInt64LE(0);
        const nsec = f.data.readBigInt64LE(8);
        peer.lastHandshakeSec = Number(sec);
        peer.lastHandshakeNsec = Number(nsec);
        break;
      }
      case WGPEER_A.RX_BYTES:
        peer.rxBytes = readUint(f, 8, where);
        break;
      case WGPEER_A.TX_BYTES:
        peer.txBytes = readUint(f, 8, where);
        break;
      case WGPEER_A.ALLOWEDIPS:
        for (const ip of parseAttrs(f.data, where)) peer.allowedIPs.push(decodeAllowedIp(ip, `${where} allowed IP`));
        break;
      case WGPEER_A.PROTOCOL_VERSION:
        peer.protocolVersion = readUint(f, 4, where);
        break;
      default:
        // Newer kernels may add attributes; older readers must not break on them.
        break;
    }
  }
  if (publicKey === null) throw fail(where, 'peer without a public key');
  return { publicKey, ...peer };
}

/**
 * The Device from the payloads of one GET_DEVICE dump (each after its genl header), in order.
 * Peers split over messages are merged. Unknown attributes are skipped (the kernel may be newer
 * than this code), malformed ones are EUAPI.
 */
export function decodeGetDevice(name: string, payloads: readonly Buffer[]): Device {
  const device: Device = { name, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] };
  let last: Peer | null = null;
  for (const [m, payload] of payloads.entries()) {
    const where = `WG_CMD_GET_DEVICE reply ${m + 1} for ${name}`;
    for (const a of parseAttrs(payload, where)) {
      switch (a.type) {
        case WGDEVICE_A.IFNAME: {
          const got = a.data.subarray(0, a.data.indexOf(0) < 0 ? a.data.length : a.data.indexOf(0)).toString('utf8');
          if (got !== name) throw fail(where, `reply is for device ${JSON.stringify(got)}`);
          break;
        }
        case WGDEVICE_A.PRIVATE_KEY: {
          const k = readKey(a, where);
          device.privateKey = isZero(k) ? null : SecretKey.fromBytes('private key', k);
          break;
        }
        case WGDEVICE_A.PUBLIC_KEY: {
          const k = readKey(a, where);
          device.publicKey = isZero(k) ? null : PublicKey.fromBytes(k);
          break;
        }
        case WGDEVICE_A.LISTEN_PORT:
          device.listenPort = readUint(a, 2, where);
          break;
        case WGDEVICE_A.FWMARK:
          device.firewallMark = readUint(a, 4, where);
          break;
        case WGDEVICE_A.PEERS:
          for (const p of parseAttrs(a.data, where)) {
            const peer = decodePeer(p, `${where} peer`);
            if (last !== null && last.publicKey.equals(peer.publicKey)) {
              // The rest of a peer whose allowed IPs did not fit the previous message.
              last.allowedIPs.push(...peer.allowedIPs);
              continue;
            }
            device.peers.push(peer);
            last = peer;
          }
          break;
        default:
          break;
      }
    }
  }
  if (device.privateKey === null) device.publicKey = null;
  return device;
}

// ---------------------------------------------------------------------------------------------
// Netlink and genl headers, for the transport (./genl.ts) and for fixtures

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, ROOT: 0x100, MATCH: 0x200, DUMP: 0x300 } as const;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

/** A whole netlink message: nlmsghdr, genlmsghdr, payload. */
export function genlMessage(opts: { family: number; cmd: number; version: number; flags: number; seq: number; pid: number; payload: Buffer }): Buffer {
  const len = NLMSG_HDRLEN + GENL_HDRLEN + opts.payload.length;
  const b = Buffer.alloc(NLMSG_HDRLEN + GENL_HDRLEN);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(opts.family, 4);
  b.writeUInt16LE(opts.flags, 6);
  b.writeUInt32LE(opts.seq, 8);
  b.writeUInt32LE(opts.pid, 12);
  b.writeUInt8(opts.cmd, 16);
  b.writeUInt8(opts.version, 17);
  return Buffer.concat([b, opts.payload]);
}
