// The UAPI codec against the protocol document's own examples (test/fixtures/uapi, byte for byte),
// against a response captured from wireguard-go v0.0.20220316, against a small model of how
// wireguard-go applies a `set` (property-based), and against malformed input.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { peerDefaults } from '../../src/wireguard/config.js';
import { format } from 'node:util';
import { isPeerpodError } from '../../src/errors.js';
import type { Device, DeviceConfig, Peer, PeerConfig } from '../../src/wireguard/config.js';
import { PublicKey, SecretKey } from '../../src/wireguard/keys.js';
import { GET_REQUEST, encodeSet, isCidr, parseEndpoint, parseErrno, parseGet } from '../../src/wireguard/uapi/codec.js';
import { thrown } from '../support/errors.js';

const fixtureDir = fileURLToPath(new URL('../../../test/fixtures/uapi/', import.meta.url));
const fixture = (name: string): string => readFileSync(`${fixtureDir}${name}`, 'utf8');

const ZERO = '0'.repeat(64);

// ---------------------------------------------------------------------------------------------
// A test-only model of wireguard-go's set handling (device/uapi.go, IpcSetOperation): written from
// its documented behaviour, strict like it, and applied to plain values so results compare easily.

interface ModelPeer {
  psk: string;
  endpoint: string | null;
  keepalive: number;
}
interface Model {
  privateKey: string;
  listenPort: number;
  fwmark: number;
  peers: Map<string, ModelPeer>;
  /** prefix -> public key hex; a prefix belongs to one peer at a time, as in wireguard-go's trie. */
  allowed: Map<string, string>;
}

function emptyModel(): Model {
  return { privateKey: ZERO, listenPort: 0, fwmark: 0, peers: new Map(), allowed: new Map() };
}

function cloneModel(m: Model): Model {
  return {
    ...m,
    peers: new Map([...m.peers].map(([k, p]) => [k, { ...p }])),
    allowed: new Map(m.allowed),
  };
}

function removePeer(m: Model, pk: string): void {
  m.peers.delete(pk);
  for (const [prefix, owner] of [...m.allowed]) if (owner === pk) m.allowed.delete(prefix);
}

function newPeer(): ModelPeer {
  return { psk: ZERO, endpoint: null, keepalive: 0 };
}

/** Apply a whole `set=1` request the way wireguard-go would, or throw describing the line it refuses. */
function applySetLikeWireguardGo(model: Model, request: string): void {
  if (!request.startsWith('set=1\n')) throw new Error('not a set request');
  if (!request.endsWith('\n\n')) throw new Error('no terminating blank line');
  const body = request.slice('set=1\n'.length, -2);
  const lines = body === '' ? [] : body.split('\n');
  if (lines.includes('')) throw new Error('blank line inside the request');
  const hex = /^[0-9a-f]{64}$/;
  let current: string | null = null; // public key hex of the peer being configured
  let dummy = false;
  let created = false;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`EPROTO: ${line}`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      if (!hex.test(value)) throw new Error(`EINVAL public_key ${value}`);
      current = value;
      dummy = false;
      created = !model.peers.has(value);
      if (created) model.peers.set(value, newPeer());
      continue;
    }
    if (current === null) {
      switch (key) {
        case 'private_key':
          if (!hex.test(value)) throw new Error('EINVAL private_key');
          model.privateKey = value;
          break;
        case 'listen_port':
          if (!/^\d+$/.test(value) || Number(value) > 65535) throw new Error(`EINVAL listen_port ${value}`);
          model.listenPort = Number(value);
          break;
        case 'fwmark':
          if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new Error(`EINVAL fwmark ${value}`);
          model.fwmark = Number(value);
          break;
        case 'replace_peers':
          if (value !== 'true') throw new Error('EINVAL replace_peers');
          for (const pk of [...model.peers.keys()]) removePeer(model, pk);
          break;
        default:
          throw new Error(`EINVAL device key ${key}`);
      }
      continue;
    }
    const pk: string = current;
    const peer = dummy ? newPeer() : model.peers.get(pk)!;
    switch (key) {
      case 'update_only':
        if (value !== 'true') throw new Error('EINVAL update_only');
        if (created && !dummy) {
          removePeer(model, pk);
          dummy = true;
        }
        break;
      case 'remove':
        if (value !== 'true') throw new Error('EINVAL remove');
        if (!dummy) removePeer(model, pk);
        dummy = true;
        break;
      case 'preshared_key':
        if (!hex.test(value)) throw new Error('EINVAL preshared_key');
        peer.psk = value;
        break;
      case 'endpoint':
        if (parseEndpoint(value) === null) throw new Error(`EINVAL endpoint ${value}`);
        peer.endpoint = value;
        break;
      case 'persistent_keepalive_interval':
        if (!/^\d+$/.test(value) || Number(value) > 65535) throw new Error('EINVAL keepalive');
        peer.keepalive = Number(value);
        break;
      case 'replace_allowed_ips':
        if (value !== 'true') throw new Error('EINVAL replace_allowed_ips');
        if (!dummy) for (const [prefix, owner] of [...model.allowed]) if (owner === pk) model.allowed.delete(prefix);
        break;
      case 'allowed_ip':
        if (!isCidr(value)) throw new Error(`EINVAL allowed_ip ${value}`);
        if (!dummy) model.allowed.set(value, pk);
        break;
      case 'protocol_version':
        if (value !== '1') throw new Error('EINVAL protocol_version');
        break;
      default:
        throw new Error(`EINVAL peer key ${key}`);
    }
  }
}

/** What a DeviceConfig means, computed straight from its fields (no wire text involved). */
function expectedEffect(initial: Model, cfg: DeviceConfig): Model {
  const m = cloneModel(initial);
  if (cfg.privateKey !== undefined) m.privateKey = cfg.privateKey === null ? ZERO : cfg.privateKey.revealHex();
  if (cfg.listenPort !== undefined) m.listenPort = cfg.listenPort;
  if (cfg.firewallMark !== undefined) m.fwmark = cfg.firewallMark;
  if (cfg.replacePeers === true) for (const pk of [...m.peers.keys()]) removePeer(m, pk);
  for (const pc of cfg.peers ?? []) {
    const pk = pc.publicKey.toHex();
    if (pc.remove === true) {
      removePeer(m, pk);
      continue;
    }
    if (pc.updateOnly === true && !m.peers.has(pk)) continue;
    if (!m.peers.has(pk)) m.peers.set(pk, newPeer());
    const p = m.peers.get(pk)!;
    if (pc.presharedKey !== undefined) p.psk = pc.presharedKey === null ? ZERO : pc.presharedKey.revealHex();
    if (pc.endpoint !== undefined) p.endpoint = pc.endpoint;
    if (pc.persistentKeepalive !== undefined) p.keepalive = pc.persistentKeepalive;
    if (pc.replaceAllowedIPs === true) for (const [prefix, owner] of [...m.allowed]) if (owner === pk) m.allowed.delete(prefix);
    for (const cidr of pc.allowedIPs ?? []) m.allowed.set(cidr, pk);
  }
  return m;
}

function plainModel(m: Model): unknown {
  return {
    privateKey: m.privateKey,
    listenPort: m.listenPort,
    fwmark: m.fwmark,
    peers: Object.fromEntries([...m.peers].sort(([a], [b]) => a.localeCompare(b))),
    allowed: Object.fromEntries([...m.allowed].sort(([a], [b]) => a.localeCompare(b))),
  };
}

// ---------------------------------------------------------------------------------------------
// Plain projections: SecretKey and PublicKey hide their bytes in #private fields, which toEqual
// cannot see, so compare what they print on the wire instead.

function plainPeer(p: Peer): Record<string, unknown> {
  return { ...p, publicKey: p.publicKey.toHex(), presharedKey: p.presharedKey?.revealHex() ?? null };
}

function plainDevice(d: Device): Record<string, unknown> {
  return {
    ...d,
    privateKey: d.privateKey?.revealHex() ?? null,
    publicKey: d.publicKey?.toHex() ?? null,
    peers: d.peers.map(plainPeer),
  };
}

/** wireguard-go's get output for a device (order as in device/uapi.go IpcGetOperation). */
function formatGetLikeWireguardGo(d: Device): string {
  const out: string[] = [];
  if (d.privateKey !== null) out.push(`private_key=${d.privateKey.revealHex()}`);
  if (d.listenPort !== 0) out.push(`listen_port=${d.listenPort}`);
  if (d.firewallMark !== 0) out.push(`fwmark=${d.firewallMark}`);
  for (const p of d.peers) {
    out.push(`public_key=${p.publicKey.toHex()}`);
    out.push(`preshared_key=${p.presharedKey?.revealHex() ?? ZERO}`);
    out.push(`protocol_version=${p.protocolVersion}`);
    if (p.endpoint !== null) out.push(`endpoint=${p.endpoint}`);
    out.push(`last_handshake_time_sec=${p.lastHandshakeSec}`);
    out.push(`last_handshake_time_nsec=${p.lastHandshakeNsec}`);
    out.push(`tx_bytes=${p.txBytes}`);
    out.push(`rx_bytes=${p.rxBytes}`);
    out.push(`persistent_keepalive_interval=${p.persistentKeepalive}`);
    for (const a of p.allowedIPs) out.push(`allowed_ip=${a}`);
  }
  out.push('errno=0');
  return `${out.join('\n')}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// The protocol document's example, as values.

const pub = (hex: string): PublicKey => PublicKey.fromHex(hex);
const XPLATFORM_CONFIG: DeviceConfig = {
  privateKey: SecretKey.fromHex('private key', 'e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a'),
  firewallMark: 0,
  listenPort: 12912,
  replacePeers: true,
  peers: [
    {
      publicKey: pub('b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33'),
      presharedKey: SecretKey.fromHex('preshared key', '188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52'),
      replaceAllowedIPs: true,
      allowedIPs: ['192.168.4.4/32'],
      endpoint: '[abcd:23::33%2]:51820',
    },
    {
      publicKey: pub('58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376'),
      replaceAllowedIPs: true,
      allowedIPs: ['192.168.4.6/32'],
      persistentKeepalive: 111,
      endpoint: '182.122.22.19:3233',
    },
    {
      publicKey: pub('662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58'),
      endpoint: '5.152.198.39:51820',
      replaceAllowedIPs: true,
      allowedIPs: ['192.168.4.10/32', '192.168.4.11/32'],
    },
    { publicKey: pub('e818b58db5274087fcc1be5dc728cf53d3b5726b4cef6b9bab8f8f8c2452c25c'), remove: true },
  ],
};

// The public key of the example's private key, from `wg pubkey`.
const XPLATFORM_DEVICE_PUBLIC = 'c1532e1b3d3508fc7ebc354fa679620f33f287149542e684c67b7b0d81362b29';

const defaults = peerDefaults();

describe('encodeSet', () => {
  it('encodes the protocol example byte for byte (in our canonical line order)', () => {
    expect(encodeSet(XPLATFORM_CONFIG)).toBe(fixture('set-xplatform-canonical.txt'));
  });

  it('means the same to wireguard-go as the document example itself', () => {
    const fromDoc = emptyModel();
    applySetLikeWireguardGo(fromDoc, fixture('set-xplatform.txt'));
    const fromOurs = emptyModel();
    applySetLikeWireguardGo(fromOurs, encodeSet(XPLATFORM_CONFIG));
    expect(plainModel(fromOurs)).toEqual(plainModel(fromDoc));
    expect(plainModel(fromOurs)).toEqual(plainModel(expectedEffect(emptyModel(), XPLATFORM_CONFIG)));
  });

  it('differs from the document only by where one endpoint line sits', () => {
    const sorted = (t: string): string[] => t.split('\n').sort();
    expect(sorted(encodeSet(XPLATFORM_CONFIG))).toEqual(sorted(fixture('set-xplatform.txt')));
  });

  it('sends an empty change as just the header and the blank line', () => {
    expect(encodeSet({})).toBe('set=1\n\n');
    expect(GET_REQUEST).toBe('get=1\n\n');
  });

  it('clears keys with all zeros and leaves absent fields out', () => {
    const pk = pub('58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376');
    expect(encodeSet({ privateKey: null, peers: [{ publicKey: pk, presharedKey: null }] })).toBe(
      `set=1\nprivate_key=${ZERO}\npublic_key=${pk.toHex()}\npreshared_key=${ZERO}\n\n`,
    );
    expect(encodeSet({ peers: [{ publicKey: pk, updateOnly: true, persistentKeepalive: 0 }] })).toBe(
      `set=1\npublic_key=${pk.toHex()}\nupdate_only=true\npersistent_keepalive_interval=0\n\n`,
    );
    expect(encodeSet({ peers: [{ publicKey: pk, endpoint: '[2001:db8::7]:51900', replaceAllowedIPs: true, allowedIPs: [] }] })).toBe(
      `set=1\npublic_key=${pk.toHex()}\nreplace_allowed_ips=true\nendpoint=[2001:db8::7]:51900\n\n`,
    );
  });

  it('sends nothing but remove=true for a peer being removed', () => {
    const pk = pub('e818b58db5274087fcc1be5dc728cf53d3b5726b4cef6b9bab8f8f8c2452c25c');
    expect(encodeSet({ peers: [{ publicKey: pk, remove: true, endpoint: '192.0.2.1:1', allowedIPs: ['10.0.0.0/8'] }] })).toBe(
      `set=1\npublic_key=${pk.toHex()}\nremove=true\n\n`,
    );
  });

  const pk = pub('58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376');
  const peer = (p: Partial<PeerConfig>): DeviceConfig => ({ peers: [{ publicKey: pk, ...p }] });
  it.each<[string, DeviceConfig, string]>([
    ['listen port above 65535', { listenPort: 65536 }, 'listenPort'],
    ['negative listen port', { listenPort: -1 }, 'listenPort'],
    ['fractional listen port', { listenPort: 1.5 }, 'listenPort'],
    ['NaN listen port', { listenPort: Number.NaN }, 'listenPort'],
    ['fwmark above 32 bits', { firewallMark: 2 ** 32 }, 'firewallMark'],
    ['a preshared key as private key', { privateKey: SecretKey.fromHex('preshared key', 'ab'.repeat(32)) }, 'privateKey'],
    ['a private key as preshared key', peer({ presharedKey: SecretKey.fromHex('private key', 'a8'.repeat(32)) }), 'peers[0].presharedKey'],
    ['keepalive above 65535', peer({ persistentKeepalive: 65536 }), 'peers[0].persistentKeepalive'],
    ['negative keepalive', peer({ persistentKeepalive: -1 }), 'peers[0].persistentKeepalive'],
    ['CIDR /33', peer({ allowedIPs: ['10.0.0.0/8', '10.0.0.0/33'] }), 'peers[0].allowedIPs[1]'],
    ['CIDR without prefix', peer({ allowedIPs: ['10.0.0.1'] }), 'peers[0].allowedIPs[0]'],
    ['CIDR /129', peer({ allowedIPs: ['::/129'] }), 'peers[0].allowedIPs[0]'],
    ['CIDR with zone', peer({ allowedIPs: ['fe80::1%eth0/64'] }), 'peers[0].allowedIPs[0]'],
    ['CIDR with a newline', peer({ allowedIPs: ['10.0.0.0/8\nremove=true'] }), 'peers[0].allowedIPs[0]'],
    ['host name endpoint', peer({ endpoint: 'vm.example.com:51900' }), 'peers[0].endpoint'],
    ['unbracketed IPv6 endpoint', peer({ endpoint: '2001:db8::1:51900' }), 'peers[0].endpoint'],
    ['endpoint port 0', peer({ endpoint: '192.0.2.1:0' }), 'peers[0].endpoint'],
    ['endpoint port 65536', peer({ endpoint: '192.0.2.1:65536' }), 'peers[0].endpoint'],
    ['endpoint without port', peer({ endpoint: '192.0.2.1' }), 'peers[0].endpoint'],
    ['endpoint with a newline', peer({ endpoint: '192.0.2.1:1\nreplace_peers=true' }), 'peers[0].endpoint'],
  ])('refuses %s with EINVAL naming the field', (_what, cfg, field) => {
    const e = thrown(() => encodeSet(cfg));
    expect(e.code).toBe('EINVAL');
    expect(e.context.field).toBe(field);
    expect(e.message).toContain(field);
  });

  it('never puts a key into an error message', () => {
    const psk = SecretKey.fromHex('preshared key', 'cd'.repeat(32));
    const e = thrown(() => encodeSet({ privateKey: psk }));
    expect(format('%s %o', e, e)).not.toContain('cd'.repeat(32));
  });
});

// ---------------------------------------------------------------------------------------------

describe('parseGet', () => {
  it('parses the protocol example', () => {
    const d = parseGet('wg0', fixture('get-xplatform.txt'));
    expect(plainDevice(d)).toEqual({
      name: 'wg0',
      privateKey: 'e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a',
      publicKey: XPLATFORM_DEVICE_PUBLIC,
      listenPort: 12912,
      firewallMark: 0,
      peers: [
        {
          ...defaults,
          publicKey: 'b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33',
          presharedKey: '188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52',
          allowedIPs: ['192.168.4.4/32'],
          endpoint: '[abcd:23::33%2]:51820',
        },
        {
          ...defaults,
          publicKey: '58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376',
          txBytes: 38333,
          rxBytes: 2224,
          allowedIPs: ['192.168.4.6/32'],
          persistentKeepalive: 111,
          endpoint: '182.122.22.19:3233',
        },
        {
          ...defaults,
          publicKey: '662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58',
          endpoint: '5.152.198.39:51820',
          allowedIPs: ['192.168.4.10/32', '192.168.4.11/32'],
          txBytes: 1212111,
          rxBytes: 1929999999,
          protocolVersion: 1,
        },
      ],
    });
  });

  it('parses what wireguard-go v0.0.20220316 answered after the example set', () => {
    const d = parseGet('pwtcap0', fixture('get-wireguard-go-0.0.20220316.txt'));
    const common = { ...defaults, protocolVersion: 1 };
    expect(plainDevice(d)).toEqual({
      name: 'pwtcap0',
      privateKey: 'e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a',
      publicKey: XPLATFORM_DEVICE_PUBLIC,
      listenPort: 12912,
      firewallMark: 0,
      peers: [
        {
          ...common,
          publicKey: 'b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33',
          presharedKey: '188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52',
          // wireguard-go drops the zone ("%2") of an IPv6 endpoint when it reports it back.
          endpoint: '[abcd:23::33]:51820',
          allowedIPs: ['192.168.4.4/32'],
        },
        {
          ...common,
          publicKey: '58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376',
          endpoint: '182.122.22.19:3233',
          persistentKeepalive: 111,
          allowedIPs: ['192.168.4.6/32'],
        },
        {
          ...common,
          publicKey: '662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58',
          endpoint: '5.152.198.39:51820',
          allowedIPs: ['192.168.4.10/32', '192.168.4.11/32'],
        },
      ],
    });
  });

  it('parses an empty device', () => {
    expect(plainDevice(parseGet('wg1', 'errno=0\n\n'))).toEqual({
      name: 'wg1',
      privateKey: null,
      publicKey: null,
      listenPort: 0,
      firewallMark: 0,
      peers: [],
    });
  });

  it('turns a non-zero (signed) errno into EUAPI with the errno in context', () => {
    const e = thrown(() => parseGet('wg0', fixture('errno-enoent.txt')));
    expect(e.code).toBe('EUAPI');
    expect(e.context).toMatchObject({ errno: -2, iface: 'wg0' });
  });

  const PK = `public_key=${'1'.repeat(64)}`;
  it.each<[string, string, RegExp]>([
    ['an unknown device key', `listen_port=1\nfrobnicate=1\nerrno=0\n\n`, /unknown device key.*"frobnicate".*line 2/],
    ['an unknown peer key', `${PK}\nlast_handshake_time=1\nerrno=0\n\n`, /unknown peer key.*"last_handshake_time".*line 2/],
    ['a peer key before any public_key', `endpoint=192.0.2.1:1\nerrno=0\n\n`, /unknown device key.*"endpoint".*line 1/],
    ['a device key after a peer', `${PK}\nlisten_port=1\nerrno=0\n\n`, /device key after the first peer.*line 2/],
    ['a repeated key', `listen_port=1\nlisten_port=2\nerrno=0\n\n`, /repeated.*line 2/],
    ['a line without =', `listen_port\nerrno=0\n\n`, /line 1 is not key=value/],
    ['upper-case hex key', `public_key=${'A'.repeat(64)}\nerrno=0\n\n`, /not 64 lowercase hex.*line 1/],
    ['a short hex key', `public_key=${'a'.repeat(63)}\nerrno=0\n\n`, /not 64 lowercase hex.*line 1/],
    ['a listen port out of range', `listen_port=65536\nerrno=0\n\n`, /out of range.*line 1/],
    ['a negative counter', `${PK}\nrx_bytes=-1\nerrno=0\n\n`, /not an unsigned integer.*line 2/],
    ['a counter beyond 2^53', `${PK}\nrx_bytes=18446744073709551615\nerrno=0\n\n`, /line 2/],
    ['nanoseconds of a second or more', `${PK}\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n`, /out of range.*line 2/],
    ['a leading zero', `listen_port=01\nerrno=0\n\n`, /not an unsigned integer/],
    ['a bad endpoint', `${PK}\nendpoint=localhost:1\nerrno=0\n\n`, /not an IP:port endpoint.*line 2/],
    ['a bad allowed_ip', `${PK}\nallowed_ip=10.0.0.0/40\nerrno=0\n\n`, /not a CIDR.*line 2/],
    ['a non-numeric errno', `errno=abc\n\n`, /malformed errno line.*line 1/],
    ['an empty errno', `errno=\n\n`, /malformed errno line/],
    ['errno with a plus sign', `errno=+1\n\n`, /malformed errno line/],
    ['a missing errno', `listen_port=1\n\n`, /does not end with an errno line.*line 1/],
    ['errno not last', `errno=0\nlisten_port=1\n\n`, /does not end with an errno line/],
    ['a missing trailing blank line', `listen_port=1\nerrno=0\n`, /does not end with a blank line/],
    ['no newline at all', `errno=0`, /does not end with a blank line/],
    ['an empty answer', ``, /does not end with a blank line/],
    ['a blank line inside', `listen_port=1\n\nerrno=0\n\n`, /blank line before its end.*line 2/],
    ['CRLF line ends', `listen_port=1\r\nerrno=0\r\n\r\n`, /does not end with a blank line/],
  ])('refuses %s with EUAPI naming the key and line', (_what, text, message) => {
    const e = thrown(() => parseGet('wg0', text));
    expect(e.code).toBe('EUAPI');
    expect(e.message).toMatch(message);
  });

  it('never quotes a secret value in its errors', () => {
    const secret = '9f'.repeat(31) + '9';
    for (const text of [
      `private_key=${secret}\nerrno=0\n\n`,
      `${PK}\npreshared_key=${secret}\nerrno=0\n\n`,
      `private_key=${'9f'.repeat(32)}\nprivate_key=${'9f'.repeat(32)}\nerrno=0\n\n`,
      `${'9f'.repeat(32)}\nerrno=0\n\n`,
    ]) {
      const e = thrown(() => parseGet('wg0', text));
      expect(e.code).toBe('EUAPI');
      expect(format('%s %o %j', e, e, e.context)).not.toContain('9f9f9f9f');
    }
  });
});

describe('parseErrno', () => {
  it('accepts errno=0', () => {
    expect(() => parseErrno(fixture('errno-0.txt'), 'wg0')).not.toThrow();
  });

  it.each([
    ['errno-einval.txt', -22, /EINVAL/],
    ['errno-eaddrinuse.txt', -98, /EADDRINUSE/],
    ['errno-eproto.txt', -71, /EPROTO/],
    ['errno-enoent.txt', -2, /ENOENT/],
  ])('%s becomes EUAPI with errno %i', (file, errno, name) => {
    const e = thrown(() => parseErrno(fixture(file), 'wg0'));
    expect(e.code).toBe('EUAPI');
    expect(e.context).toMatchObject({ errno, iface: 'wg0', op: 'uapi-set' });
    expect(e.message).toMatch(name);
  });

  it.each([
    ['errno=0\n', /blank line/],
    ['errno=zero\n\n', /malformed errno/],
    ['listen_port=1\nerrno=0\n\n', /unexpected lines/],
    ['\n\n', /errno line/],
  ])('refuses %j', (text, message) => {
    const e = thrown(() => parseErrno(text));
    expect(e.code).toBe('EUAPI');
    expect(e.message).toMatch(message);
  });
});

describe('helpers', () => {
  it.each(['0.0.0.0/0', '::/0', '198.18.0.5/32', '2001:db8::/32', '10.1.2.3/8', 'fd00::1/128'])('isCidr(%s)', (c) => {
    expect(isCidr(c)).toBe(true);
  });
  it.each(['', '/0', '10.0.0.0', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/08', '256.0.0.0/8', '::/0x', 'fe80::1%2/64', ' 10.0.0.0/8'])(
    'not isCidr(%j)',
    (c) => {
      expect(isCidr(c)).toBe(false);
    },
  );
  it('parses endpoints', () => {
    expect(parseEndpoint('192.0.2.1:51820')).toEqual({ host: '192.0.2.1', port: 51820 });
    expect(parseEndpoint('[2001:db8::1]:1')).toEqual({ host: '2001:db8::1', port: 1 });
    expect(parseEndpoint('[fe80::1%eth0]:1')).toEqual({ host: 'fe80::1%eth0', port: 1 });
    for (const bad of ['2001:db8::1:1', '[2001:db8::1]1', '[192.0.2.1]:1', 'host:1', '192.0.2.1:', '192.0.2.1:1x', '[::1%]:1']) {
      expect(parseEndpoint(bad)).toBeNull();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const keyPool = [1, 2, 3, 4].map((b) => PublicKey.fromBytes(Buffer.alloc(32, b)));
const arbPublicKey = fc.constantFrom(...keyPool);
const arbBytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const arbPrivateKey = arbBytes32.map((b) => SecretKey.fromBytes('private key', b));
const arbPresharedKey = arbBytes32.map((b) => SecretKey.fromBytes('preshared key', b));
const arbPort = fc.integer({ min: 1, max: 65535 });
const arbEndpoint = fc.oneof(
  fc.tuple(fc.ipV4(), arbPort).map(([ip, port]) => `${ip}:${port}`),
  fc.tuple(fc.ipV6(), arbPort).map(([ip, port]) => `[${ip}]:${port}`),
);
// A small pool of canonical prefixes, so that peers fight over the same ones.
const arbCidr = fc.constantFrom('198.18.0.1/32', '198.18.0.2/32', '198.18.0.0/15', '0.0.0.0/0', '::/0', 'fd00::/64', '2001:db8::5/128');

const arbPeerConfig: fc.Arbitrary<PeerConfig> = fc.record(
  {
    publicKey: arbPublicKey,
    remove: fc.boolean(),
    updateOnly: fc.boolean(),
    presharedKey: fc.option(arbPresharedKey, { nil: null }),
    endpoint: arbEndpoint,
    persistentKeepalive: fc.integer({ min: 0, max: 65535 }),
    replaceAllowedIPs: fc.boolean(),
    allowedIPs: fc.array(arbCidr, { maxLength: 4 }),
  },
  { requiredKeys: ['publicKey'] },
);

const arbDeviceConfig: fc.Arbitrary<DeviceConfig> = fc.record(
  {
    privateKey: fc.option(arbPrivateKey, { nil: null }),
    listenPort: fc.integer({ min: 0, max: 65535 }),
    firewallMark: fc.integer({ min: 0, max: 0xffffffff }),
    replacePeers: fc.boolean(),
    peers: fc.array(arbPeerConfig, { maxLength: 5 }),
  },
  { requiredKeys: [] },
);

/** A device state to apply the change to, so that update_only and remove have something to do. */
const arbModel: fc.Arbitrary<Model> = fc
  .record({
    peers: fc.subarray(keyPool.map((k) => k.toHex())),
    owners: fc.array(fc.tuple(arbCidr, fc.nat(3)), { maxLength: 4 }),
  })
  .map(({ peers, owners }) => {
    const m = emptyModel();
    for (const pk of peers) m.peers.set(pk, { psk: ZERO, endpoint: '192.0.2.9:9', keepalive: 7 });
    for (const [cidr, i] of owners) if (peers.length > 0) m.allowed.set(cidr, peers[i % peers.length]!);
    return m;
  });

const arbPeer: fc.Arbitrary<Peer> = fc.record({
  publicKey: arbBytes32.map((b) => PublicKey.fromBytes(b)),
  presharedKey: fc.option(arbPresharedKey.filter((k) => !k.isZero()), { nil: null }),
  endpoint: fc.option(arbEndpoint, { nil: null }),
  persistentKeepalive: fc.integer({ min: 0, max: 65535 }),
  lastHandshakeSec: fc.maxSafeNat(),
  lastHandshakeNsec: fc.integer({ min: 0, max: 999_999_999 }),
  rxBytes: fc.maxSafeNat(),
  txBytes: fc.maxSafeNat(),
  allowedIPs: fc.array(arbCidr, { maxLength: 4 }),
  protocolVersion: fc.constant(1),
});

const arbDevice: fc.Arbitrary<Device> = fc
  .record({
    privateKey: fc.option(arbPrivateKey.filter((k) => !k.isZero()), { nil: null }),
    listenPort: fc.integer({ min: 0, max: 65535 }),
    firewallMark: fc.integer({ min: 0, max: 0xffffffff }),
    peers: fc.array(arbPeer, { maxLength: 4 }),
  })
  .map((d) => ({ name: 'wg0', ...d, publicKey: d.privateKey?.publicKey() ?? null }));

describe('properties', () => {
  it('wireguard-go would apply exactly the change a DeviceConfig describes', () => {
    fc.assert(
      fc.property(arbModel, arbDeviceConfig, (initial, cfg) => {
        const applied = cloneModel(initial);
        applySetLikeWireguardGo(applied, encodeSet(cfg));
        expect(plainModel(applied)).toEqual(plainModel(expectedEffect(initial, cfg)));
      }),
      { numRuns: 500 },
    );
  });

  it('parseGet reads back every device wireguard-go could print', () => {
    fc.assert(
      fc.property(arbDevice, (d) => {
        expect(plainDevice(parseGet('wg0', formatGetLikeWireguardGo(d)))).toEqual(plainDevice(d));
      }),
      { numRuns: 300 },
    );
  });

  it('parseGet and parseErrno fail only with PeerpodError EUAPI on any text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        for (const fn of [() => parseGet('wg0', text), () => parseErrno(text)]) {
          try {
            fn();
          } catch (e) {
            expect(isPeerpodError(e, 'EUAPI')).toBe(true);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('every encoded request is one message: no blank line before its end, no stray newline', () => {
    fc.assert(
      fc.property(arbDeviceConfig, (cfg) => {
        const text = encodeSet(cfg);
        expect(text.endsWith('\n\n')).toBe(true);
        expect(text.slice(0, -2)).not.toContain('\n\n');
        expect(text.split('\n').slice(0, -2).every((l) => /^[a-z_]+=[^\n=]*$/.test(l))).toBe(true);
      }),
    );
  });
});
