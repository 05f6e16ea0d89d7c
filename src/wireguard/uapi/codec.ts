// The WireGuard cross-platform UAPI text protocol (https://www.wireguard.com/xplatform/) as pure
// functions: a DeviceConfig becomes a `set=1` request, a `get=1` response becomes a Device, and an
// `errno=` reply becomes success or a PeerpodError. No sockets here: the client in ./client.ts
// moves the text, and validation of values happens here so it can be tested without a daemon.
//
// Secrets: private and preshared keys only ever leave a SecretKey through revealHex() into the
// request text, and no error message built here quotes the value of a key line.
import { isIPv4, isIPv6 } from 'node:net';
import { PeerpodError } from '../../errors.js';
import { checkIntegerField, emptyPeer, invalidField, type Device, type DeviceConfig, type Endpoint, type Peer, type PeerConfig } from '../config.js';
import { PublicKey, SecretKey } from '../keys.js';

const ZERO_KEY_HEX = '0'.repeat(64);
const HEX_KEY = /^[0-9a-f]{64}$/;
const UINT = /^(0|[1-9][0-9]*)$/;
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffff_ffff;

/** The complete `get` request. */
export const GET_REQUEST = 'get=1\n\n';

// Errnos that wireguard-go (ipc/uapi_unix.go) and the kernel-compatible tools use, for messages.
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  [-1]: 'EPERM',
  [-2]: 'ENOENT',
  [-5]: 'EIO: the daemon could not read or write the request',
  [-22]: 'EINVAL: a value was rejected',
  [-55]: 'ENOANO: unknown error inside the daemon',
  [-71]: 'EPROTO: a line was not key=value',
  [-98]: 'EADDRINUSE: the listen port or fwmark could not be applied',
};

// ---------------------------------------------------------------------------------------------
// Validation shared by the encoder and the parser.

const invalid = (field: string, message: string): PeerpodError => invalidField('uapi-encode', field, message);
const checkInteger = (field: string, value: number, min: number, max: number): void =>
  checkIntegerField('uapi-encode', field, value, min, max);

/** Whether `text` is an IPv4 or IPv6 CIDR ("198.18.0.5/32", "::/0"). Host bits may be set. */
export function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return false;
  const addr = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!UINT.test(bits)) return false;
  const n = Number(bits);
  if (isIPv4(addr)) return n <= 32;
  // A zone makes no sense in a prefix; netip.ParsePrefix refuses it too.
  if (!addr.includes('%') && isIPv6(addr)) return n <= 128;
  return false;
}

interface ParsedEndpoint {
  host: string;
  port: number;
}

/**
 * "198.51.100.7:51900" or "[2001:db8::7]:51900" (a zone, "[fe80::1%2]:51900", is allowed, as in
 * the protocol's own example). No host names: wireguard-go parses with netip.ParseAddrPort.
 */
export function parseEndpoint(text: string): ParsedEndpoint | null {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return null;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    const pct = host.indexOf('%');
    const bare = pct < 0 ? host : host.slice(0, pct);
    if (pct >= 0 && !/^[A-Za-z0-9_.-]{1,16}$/.test(host.slice(pct + 1))) return null;
    if (!isIPv6(bare)) return null;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return null;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!isIPv4(host)) return null;
  }
  if (!UINT.test(portText)) return null;
  const port = Number(portText);
  if (port > MAX_U16) return null;
  return { host, port };
}

function checkEndpoint(field: string, endpoint: Endpoint): void {
  const parsed = parseEndpoint(endpoint);
  if (parsed === null) {
    throw invalid(field, `expected "IPv4:port" or "[IPv6]:port", got ${JSON.stringify(endpoint)}`);
  }
  // Port 0 is a valid listen port (random) but never a place to send packets to.
  if (parsed.port === 0) throw invalid(field, 'port must be from 1 to 65535');
}

// ---------------------------------------------------------------------------------------------
// Encoding

function encodePeer(peer: PeerConfig, index: number, lines: string[]): void {
  const field = (name: string): string => `peers[${index}].${name}`;
  if (!(peer.publicKey instanceof PublicKey)) throw invalid(field('publicKey'), 'must be a PublicKey');
  lines.push(`public_key=${peer.publicKey.toHex()}`);
  if (peer.remove === true) {
    // Everything else would be applied to a peer that is about to go; wireguard-go ignores it.
    lines.push('remove=true');
    return;
  }
  // Directly after public_key: wireguard-go drops a peer it just created when it reads this.
  if (peer.updateOnly === true) lines.push('update_only=true');
  if (peer.presharedKey !== undefined) {
    if (peer.presharedKey === null) {
      lines.push(`preshared_key=${ZERO_KEY_HEX}`);
    } else {
      if (!(peer.presharedKey instanceof SecretKey) || peer.presharedKey.kind !== 'preshared key') {
        throw invalid(field('presharedKey'), 'must be a preshared key');
      }
      lines.push(`preshared_key=${peer.presharedKey.revealHex()}`);
    }
  }
  // The order of the protocol document's example. wireguard-go sends the first keepalive only
  // after the whole peer block is read, so the endpoint may come after the interval.
  if (peer.replaceAllowedIPs === true) lines.push('replace_allowed_ips=true');
  for (const [i, cidr] of (peer.allowedIPs ?? []).entries()) {
    if (typeof cidr !== 'string' || !isCidr(cidr)) {
      throw invalid(`${field('allowedIPs')}[${i}]`, `not a CIDR: ${JSON.stringify(cidr)}`);
    }
    lines.push(`allowed_ip=${cidr}`);
  }
  if (peer.persistentKeepalive !== undefined) {
    checkInteger(field('persistentKeepalive'), peer.persistentKeepalive, 0, MAX_U16);
    lines.push(`persistent_keepalive_interval=${peer.persistentKeepalive}`);
  }
  if (peer.endpoint !== undefined) {
    checkEndpoint(field('endpoint'), peer.endpoint);
    lines.push(`endpoint=${peer.endpoint}`);
  }
}

/**
 * The complete `set=1` request for a change, ending with the blank line. Absent fields are left
 * out (unchanged); a null private or preshared key is sent as all zeros, which clears it.
 * Throws PeerpodError EINVAL naming the field when a value is out of range or malformed.
 */
export function encodeSet(config: DeviceConfig): string {
  const lines = ['set=1'];
  if (config.privateKey !== undefined) {
    if (config.privateKey === null) {
      lines.push(`private_key=${ZERO_KEY_HEX}`);
    } else {
      if (!(config.privateKey instanceof SecretKey) || config.privateKey.kind !== 'private key') {
        throw invalid('privateKey', 'must be a private key');
      }
      lines.push(`private_key=${config.privateKey.revealHex()}`);
    }
  }
  if (config.firewallMark !== undefined) {
    checkInteger('firewallMark', config.firewallMark, 0, MAX_U32);
    lines.push(`fwmark=${config.firewallMark}`);
  }
  if (config.listenPort !== undefined) {
    checkInteger('listenPort', config.listenPort, 0, MAX_U16);
    lines.push(`listen_port=${config.listenPort}`);
  }
  if (config.replacePeers === true) lines.push('replace_peers=true');
  for (const [i, peer] of (config.peers ?? []).entries()) encodePeer(peer, i, lines);
  return `${lines.join('\n')}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface ParseContext {
  op: string;
  iface?: string;
}

function protocolError(ctx: ParseContext, message: string, extra: Record<string, string | number> = {}): PeerpodError {
  return new PeerpodError('EUAPI', message, {
    op: ctx.op,
    ...(ctx.iface === undefined ? {} : { iface: ctx.iface }),
    ...extra,
  });
}

/** The error for a non-zero errno, with the errno in the context. */
function errnoError(errno: number, ctx: ParseContext): PeerpodError {
  const what = ERRNO_NAMES[errno];
  const target = ctx.iface === undefined ? 'the WireGuard daemon' : `WireGuard device ${ctx.iface}`;
  return protocolError(ctx, `${target} answered errno=${errno}${what === undefined ? '' : ` (${what})`}`, {
    errno,
  });
}

/**
 * Split a response into lines, checking its frame: it must end with exactly one blank line, and
 * its last real line must be `errno=N`. Returns the lines before errno, or throws EUAPI.
 */
function frame(text: string, ctx: ParseContext): string[] {
  if (!text.endsWith('\n\n')) {
    throw protocolError(ctx, 'UAPI response does not end with a blank line (truncated?)');
  }
  const body = text.slice(0, -2);
  const lines = body === '' ? [] : body.split('\n');
  const blank = lines.indexOf('');
  if (blank >= 0) {
    throw protocolError(ctx, `UAPI response has a blank line before its end (line ${blank + 1})`, { line: blank + 1 });
  }
  const last = lines.pop();
  const lineNo = lines.length + 1;
  if (last === undefined || !last.startsWith('errno=')) {
    throw protocolError(ctx, `UAPI response does not end with an errno line (line ${lineNo})`, { line: lineNo });
  }
  const value = last.slice('errno='.length);
  if (!/^-?(0|[1-9][0-9]{0,9})$/.test(value)) {
    throw protocolError(ctx, `UAPI response has a malformed errno line ${JSON.stringify(last.slice(0, 40))} (line ${lineNo})`, {
      line: lineNo,
    });
  }
  const errno = Number(value);
  if (errno !== 0) throw errnoError(errno, ctx);
  return lines;
}

/**
 * Check the reply to a `set` request: `errno=0` and the blank line. A non-zero errno (wireguard-go
 * sends negative ones, e.g. -22) becomes PeerpodError EUAPI with `errno` in its context.
 */
export function parseErrno(text: string, iface?: string): void {
  const ctx: ParseContext = iface === undefined ? { op: 'uapi-set' } : { op: 'uapi-set', iface };
  const rest = frame(text, ctx);
  if (rest.length > 0) {
    throw protocolError(ctx, `UAPI set reply has unexpected lines before errno (line 1)`, { line: 1 });
  }
}

const SECRET_LINE_KEYS = new Set(['private_key', 'preshared_key']);

/**
 * Parse a `get=1` response into the Device called `name`. Strict, like wireguard-go's own parser:
 * unknown keys, repeated keys, malformed values and a missing blank line are EUAPI errors that name
 * the key and the line; a non-zero errno is EUAPI with the errno in context. Fields a daemon
 * leaves out get their zero value (no key, port 0, no endpoint, protocol version 0 = not reported).
 */
export function parseGet(name: string, text: string): Device {
  const ctx: ParseContext = { op: 'uapi-get', iface: name };
  const lines = frame(text, ctx);
  const device: Device = {
    name,
    privateKey: null,
    publicKey: null,
    listenPort: 0,
    firewallMark: 0,
    peers: [],
  };
  let peer: Peer | null = null;
  const seen = new Set<string>();

  for (const [i, line] of lines.entries()) {
    const lineNo = i + 1;
    const eq = line.indexOf('=');
    // Not quoted: a line without '=' could be anything, a bare key among them.
    if (eq < 0) throw protocolError(ctx, `UAPI get: line ${lineNo} is not key=value`, { line: lineNo });
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const shownKey = JSON.stringify(key.slice(0, 40));
    const fail = (why: string): PeerpodError =>
      protocolError(ctx, `UAPI get: ${why} (key ${shownKey}, line ${lineNo})`, { key: key.slice(0, 40), line: lineNo });

    const uint = (max: number): number => {
      if (!UINT.test(value) || value.length > 16) throw fail(`value ${JSON.stringify(value.slice(0, 24))} is not an unsigned integer`);
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n > max) throw fail(`value ${value} is out of range (max ${max})`);
      return n;
    };
    const hexKey = (): string => {
      // Never quote the value: this may be a private or preshared key.
      if (!HEX_KEY.test(value)) throw fail('value is not 64 lowercase hex characters');
      return value;
    };

    if (key === 'public_key') {
      peer = emptyPeer(PublicKey.fromHex(hexKey()));
      device.peers.push(peer);
      seen.clear();
      continue;
    }
    if (key !== 'allowed_ip') {
      if (seen.has(key)) throw fail(SECRET_LINE_KEYS.has(key) ? 'key repeated' : `key repeated with value ${JSON.stringify(value.slice(0, 40))}`);
      seen.add(key);
    }

    if (peer === null) {
      switch (key) {
        case 'private_key': {
          const hex = hexKey();
          if (hex !== ZERO_KEY_HEX) {
            device.privateKey = SecretKey.fromHex('private key', hex);
            device.publicKey = device.privateKey.publicKey();
          }
          continue;
        }
        case 'listen_port':
          device.listenPort = uint(MAX_U16);
          continue;
        case 'fwmark':
          device.firewallMark = uint(MAX_U32);
          continue;
        default:
          throw fail('unknown device key');
      }
    }

    const p: Peer = peer;
    switch (key) {
      case 'preshared_key': {
        const hex = hexKey();
        p.presharedKey = hex === ZERO_KEY_HEX ? null : SecretKey.fromHex('preshared key', hex);
        continue;
      }
      case 'endpoint':
        if (parseEndpoint(value) === null) throw fail(`value ${JSON.stringify(value.slice(0, 60))} is not an IP:port endpoint`);
        p.endpoint = value;
        continue;
      case 'persistent_keepalive_interval':
        p.persistentKeepalive = uint(MAX_U16);
        continue;
      case 'last_handshake_time_sec':
        p.lastHandshakeSec = uint(Number.MAX_SAFE_INTEGER);
        continue;
      case 'last_handshake_time_nsec':
        p.lastHandshakeNsec = uint(999_999_999);
        continue;
      case 'rx_bytes':
        p.rxBytes = uint(Number.MAX_SAFE_INTEGER);
        continue;
      case 'tx_bytes':
        p.txBytes = uint(Number.MAX_SAFE_INTEGER);
        continue;
      case 'protocol_version':
        p.protocolVersion = uint(MAX_U32);
        if (p.protocolVersion === 0) throw fail('protocol version 0 does not exist');
        continue;
      case 'allowed_ip':
        if (!isCidr(value)) throw fail(`value ${JSON.stringify(value.slice(0, 60))} is not a CIDR`);
        p.allowedIPs.push(value);
        continue;
      case 'private_key':
      case 'listen_port':
      case 'fwmark':
        throw fail('device key after the first peer');
      default:
        throw fail('unknown peer key');
    }
  }
  return device;
}
