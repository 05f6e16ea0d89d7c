// The kernel WireGuard generic-netlink codec against golden bytes written by hand from
// include/uapi/linux/wireguard.h and netlink(7): struct nlattr {u16 nla_len; u16 nla_type} in host
// (little-endian) order, 4-byte alignment, NLA_F_NESTED (0x8000) on nested lists whose items are
// numbered from 0, sockaddr ports in network order. Then properties: chunked SET requests carry
// exactly the configuration, and GET dumps split over messages merge back. Plus the backend's
// error mapping over a fake transport.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';
import { KernelBackend, kernelWireGuardAvailable } from '../../src/wireguard/kernel/backend.js';
import {
  NLA_F_NESTED,
  WGDEVICE_A,
  WGPEER_A,
  decodeGetDevice,
  decodeSockaddr,
  encodeGetDevice,
  encodeSetDevice,
  encodeSockaddr,
  genlMessage,
  parseAttrs,
} from '../../src/wireguard/kernel/codec.js';
import { GenlError, decodeFamilyId, encodeGetFamily, errnoOfErrorBody, type GenlRequest, type GenlTransport } from '../../src/wireguard/kernel/genl.js';
import { PublicKey, SecretKey } from '../../src/wireguard/keys.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ''), 'hex');
// Already clamped, so the key reads back byte for byte.
const PRIV_HEX = `08${'01'.repeat(30)}40`;
const PUB_HEX = 'a1'.repeat(32);
const PSK_HEX = 'b2'.repeat(32);

describe('kernel codec: golden bytes', () => {
  it('GET_DEVICE request: WGDEVICE_A_IFNAME, NUL-terminated', () => {
    expect(encodeGetDevice('wg0').toString('hex')).toBe(hex('0800 0200 77673000').toString('hex'));
  });

  it('SET_DEVICE request with every field', () => {
    const [msg, ...more] = encodeSetDevice('wg0', {
      privateKey: SecretKey.fromHex('private key', PRIV_HEX),
      listenPort: 51820,
      firewallMark: 0,
      replacePeers: true,
      peers: [
        {
          publicKey: PublicKey.fromHex(PUB_HEX),
          presharedKey: null,
          endpoint: '192.0.2.1:51820',
          persistentKeepalive: 25,
          replaceAllowedIPs: true,
          allowedIPs: ['10.0.0.0/24', 'fd00::/64'],
        },
      ],
    });
    expect(more).toEqual([]);
    const golden = hex(`
      0800 0200 77673000                         # IFNAME "wg0\\0"
      2400 0300 ${PRIV_HEX}                      # PRIVATE_KEY
      0600 0600 6cca 0000                        # LISTEN_PORT 51820 (u16 LE) + pad
      0800 0700 00000000                         # FWMARK 0
      0800 0500 01000000                         # FLAGS REPLACE_PEERS
      bc00 0880                                  # PEERS | NLA_F_NESTED, 188 bytes
        b800 0080                                #   peer 0 | NESTED, 184 bytes
          2400 0100 ${PUB_HEX}                   #     PUBLIC_KEY
          0800 0300 02000000                     #     FLAGS REPLACE_ALLOWEDIPS
          2400 0200 ${'00'.repeat(32)}           #     PRESHARED_KEY zero = none
          1400 0400 0200 ca6c c0000201 0000000000000000  # ENDPOINT sockaddr_in, port BE
          0600 0500 1900 0000                    #     PERSISTENT_KEEPALIVE_INTERVAL 25
          4800 0980                              #     ALLOWEDIPS | NESTED, 72 bytes
            1c00 0080                            #       item 0
              0600 0100 0200 0000                #         FAMILY AF_INET
              0800 0200 0a000000                 #         IPADDR 10.0.0.0
              0500 0300 18 000000                #         CIDR_MASK 24
            2800 0180                            #       item 1
              0600 0100 0a00 0000                #         FAMILY AF_INET6
              1400 0200 fd000000000000000000000000000000  # IPADDR fd00::
              0500 0300 40 000000                #         CIDR_MASK 64
    `);
    expect(msg!.toString('hex')).toBe(golden.toString('hex'));
  });

  it('a removed peer carries only its key and REMOVE_ME; a PSK is sent as is; UPDATE_ONLY is a flag', () => {
    const [msg] = encodeSetDevice('wg0', {
      peers: [
        { publicKey: PublicKey.fromHex(PUB_HEX), remove: true, allowedIPs: ['10.0.0.0/8'] },
        { publicKey: PublicKey.fromHex(PUB_HEX), updateOnly: true, presharedKey: SecretKey.fromHex('preshared key', PSK_HEX) },
      ],
    });
    expect(msg!.toString('hex')).toBe(
      hex(`
      0800 0200 77673000
      8800 0880                                  # PEERS, 136 bytes
        3000 0080                                #   peer 0, 48 bytes
          2400 0100 ${PUB_HEX}
          0800 0300 01000000                     #     FLAGS REMOVE_ME
        5400 0180                                #   peer 1, 84 bytes
          2400 0100 ${PUB_HEX}
          0800 0300 04000000                     #     FLAGS UPDATE_ONLY
          2400 0200 ${PSK_HEX}
    `).toString('hex'),
    );
  });

  it('sockaddr_in6 with a numeric scope, and back', () => {
    const b = encodeSockaddr('[fe80::1%7]:51820');
    expect(b.toString('hex')).toBe(hex('0a00 ca6c 00000000 fe800000000000000000000000000001 07000000').toString('hex'));
    expect(decodeSockaddr(b, 't')).toBe('[fe80::1%7]:51820');
    expect(decodeSockaddr(encodeSockaddr('[2001:db8::5]:1'), 't')).toBe('[2001:db8::5]:1');
    expect(decodeSockaddr(Buffer.alloc(16), 't')).toBeNull();
  });

  it('a whole genl message: nlmsghdr, genlmsghdr, payload', () => {
    const m = genlMessage({ family: 0x1c, cmd: 0, version: 1, flags: 0x0305, seq: 7, pid: 0, payload: encodeGetDevice('wg0') });
    expect(m.toString('hex')).toBe(hex('1c000000 1c00 0503 07000000 00000000 00 01 0000 0800020077673000').toString('hex'));
  });

  it('the controller: GETFAMILY "wireguard", its reply, and NLMSG_ERROR bodies', () => {
    expect(encodeGetFamily('wireguard').toString('hex')).toBe(hex('0e00 0200 776972656775617264 00 0000').toString('hex'));
    expect(decodeFamilyId(hex('0e00 0200 776972656775617264 00 0000 0600 0100 2200 0000'))).toBe(0x22);
    expect(errnoOfErrorBody(hex('edffffff'))).toBe(19); // -ENODEV
    expect(errnoOfErrorBody(hex('00000000'))).toBe(0);
  });
});

// A test-local encoder of attributes, to build GET replies the way the kernel lays them out.
function a(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const n = (type: number, ...kids: Buffer[]): Buffer => a(type | NLA_F_NESTED, Buffer.concat(kids));
const le = (bytes: number, v: number | bigint): Buffer => {
  const b = Buffer.alloc(bytes);
  if (bytes === 1) b.writeUInt8(Number(v));
  else if (bytes === 2) b.writeUInt16LE(Number(v));
  else if (bytes === 4) b.writeUInt32LE(Number(v));
  else b.writeBigUInt64LE(BigInt(v));
  return b;
};

describe('kernel codec: GET_DEVICE dumps', () => {
  it('decodes a dump split over two messages, merging the peer whose allowed IPs continued', () => {
    const pub = hex(PUB_HEX);
    const ts = Buffer.concat([le(8, 1_700_000_000n), le(8, 5n)]);
    const m1 = Buffer.concat([
      a(WGDEVICE_A.IFINDEX, le(4, 9)),
      a(WGDEVICE_A.IFNAME, Buffer.from('wg0\0')),
      a(WGDEVICE_A.PRIVATE_KEY, hex(PRIV_HEX)),
      a(WGDEVICE_A.PUBLIC_KEY, hex('c3'.repeat(32))),
      a(WGDEVICE_A.LISTEN_PORT, le(2, 51820)),
      a(WGDEVICE_A.FWMARK, le(4, 0x51)),
      n(
        WGDEVICE_A.PEERS,
        n(
          0,
          a(WGPEER_A.PUBLIC_KEY, pub),
          a(WGPEER_A.PRESHARED_KEY, Buffer.alloc(32)),
          a(WGPEER_A.ENDPOINT, hex('0a00 ca6c 00000000 20010db8000000000000000000000001 00000000')),
          a(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, le(2, 25)),
          a(WGPEER_A.LAST_HANDSHAKE_TIME, ts),
          a(WGPEER_A.RX_BYTES, le(8, 1234)),
          a(WGPEER_A.TX_BYTES, le(8, 5678)),
          n(WGPEER_A.ALLOWEDIPS, n(0, a(1, le(2, 2)), a(2, hex('0a000000')), a(3, le(1, 24)))),
          a(WGPEER_A.PROTOCOL_VERSION, le(4, 1)),
          a(42, Buffer.from('from a newer kernel')),
        ),
      ),
    ]);
    const m2 = Buffer.concat([
      a(WGDEVICE_A.IFINDEX, le(4, 9)),
      a(WGDEVICE_A.IFNAME, Buffer.from('wg0\0')),
      n(WGDEVICE_A.PEERS, n(0, a(WGPEER_A.PUBLIC_KEY, pub), n(WGPEER_A.ALLOWEDIPS, n(0, a(1, le(2, 10)), a(2, hex('fd00'.padEnd(32, '0'))), a(3, le(1, 64)))))),
    ]);
    const d = decodeGetDevice('wg0', [m1, m2]);
    expect(d.privateKey?.revealHex()).toBe(PRIV_HEX);
    expect(d.publicKey?.toHex()).toBe('c3'.repeat(32));
    expect(d.listenPort).toBe(51820);
    expect(d.firewallMark).toBe(0x51);
    expect(d.peers).toHaveLength(1);
    const p = d.peers[0]!;
    expect(p.publicKey.toHex()).toBe(PUB_HEX);
    expect(p.presharedKey).toBeNull();
    expect(p.endpoint).toBe('[2001:db8::1]:51820');
    expect(p.persistentKeepalive).toBe(25);
    expect([p.lastHandshakeSec, p.lastHandshakeNsec]).toEqual([1_700_000_000, 5]);
    expect([p.rxBytes, p.txBytes, p.protocolVersion]).toEqual([1234, 5678, 1]);
    expect(p.allowedIPs).toEqual(['10.0.0.0/24', 'fd00::/64']);
  });

  it('a device without a private key reports no keys; a reply for another device is refused', () => {
    const m = Buffer.concat([a(WGDEVICE_A.IFNAME, Buffer.from('wg0\0')), a(WGDEVICE_A.PRIVATE_KEY, Buffer.alloc(32)), a(WGDEVICE_A.LISTEN_PORT, le(2, 0))]);
    const d = decodeGetDevice('wg0', [m]);
    expect([d.privateKey, d.publicKey, d.peers]).toEqual([null, null, []]);
    expect(() => decodeGetDevice('wg1', [m])).toThrow(/reply is for device "wg0"/);
  });

  it('malformed attributes are EUAPI, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeGetDevice('wg0', [Buffer.from(bytes)]);
        } catch (e) {
          expect(e).toBeInstanceOf(PeerpodError);
        }
      }),
    );
  });
});

/** Read SET payloads back into per-peer facts, to check what the chunker sent (test-local). */
function readSet(msgs: Buffer[]) {
  const peers: { key: string; flags: number; ips: string[]; continuation: boolean }[] = [];
  for (const m of msgs) {
    for (const attr of parseAttrs(m, 't')) {
      if (attr.type !== WGDEVICE_A.PEERS) continue;
      for (const item of parseAttrs(attr.data, 't')) {
        let key = '';
        let flags = 0;
        const ips: string[] = [];
        let fields = 0;
        for (const f of parseAttrs(item.data, 't')) {
          fields++;
          if (f.type === WGPEER_A.PUBLIC_KEY) key = f.data.toString('hex');
          if (f.type === WGPEER_A.FLAGS) flags = f.data.readUInt32LE(0);
          if (f.type === WGPEER_A.ALLOWEDIPS) {
            for (const ip of parseAttrs(f.data, 't')) {
              const [fam, addr, mask] = parseAttrs(ip.data, 't');
              ips.push(`${fam!.data.readUInt16LE(0)}:${addr!.data.toString('hex')}/${mask!.data.readUInt8(0)}`);
            }
          }
        }
        const prev = peers.at(-1);
        const continuation = prev?.key === key && fields <= 2 && flags === 0;
        if (continuation && prev !== undefined) prev.ips.push(...ips);
        else peers.push({ key, flags, ips, continuation });
      }
    }
  }
  return peers;
}

describe('kernel codec: SET requests are chunked without changing what they say', () => {
  const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => PublicKey.fromBytes(b));
  const v4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 })).map(([x, y, m]) => `${x}.${y}.0.0/${m}`);
  const peerArb = fc.record({ publicKey: keyArb, allowedIPs: fc.array(v4, { maxLength: 40 }), replaceAllowedIPs: fc.boolean() });

  it('every peer and allowed IP arrives once, in order; each message stays within the chunk', () => {
    const wire = (cidr: string): string => {
      const [addr, mask] = cidr.split('/') as [string, string];
      return `2:${Buffer.from(addr.split('.').map(Number)).toString('hex')}/${mask}`;
    };
    fc.assert(
      fc.property(fc.uniqueArray(peerArb, { maxLength: 12, selector: (p) => p.publicKey.toHex() }), fc.integer({ min: 200, max: 3000 }), (peers, chunk) => {
        const msgs = encodeSetDevice('wg0', { peers: peers }, chunk);
        for (const m of msgs) {
          // Only a message holding one indivisible piece (one peer item) may exceed the chunk.
          if (m.length <= chunk) continue;
          const list = parseAttrs(m, 't').find((x) => x.type === WGDEVICE_A.PEERS);
          expect(list === undefined ? 0 : parseAttrs(list.data, 't').length).toBe(1);
        }
        const back = readSet(msgs);
        expect(back.map((b) => b.key)).toEqual(peers.map((p) => p.publicKey.toHex()));
        back.forEach((b, i) => {
          const p = peers[i]!;
          expect(b.flags).toBe(p.replaceAllowedIPs ? 2 : 0);
          expect(b.ips).toEqual(p.allowedIPs.map(wire));
        });
      }),
    );
  });

  it('refuses bad values with EINVAL naming the field, before building anything', () => {
    const k = PublicKey.fromHex(PUB_HEX);
    const field = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return e instanceof PeerpodError && e.code === 'EINVAL' ? e.context.field : 'not EINVAL';
      }
      return undefined;
    };
    expect(field(() => encodeSetDevice('wg0', { listenPort: 65536 }))).toBe('listenPort');
    expect(field(() => encodeSetDevice('wg0', { firewallMark: -1 }))).toBe('firewallMark');
    expect(field(() => encodeSetDevice('wg0', { peers: [{ publicKey: k, endpoint: 'host:1' }] }))).toBe('peers[0].endpoint');
    expect(field(() => encodeSetDevice('wg0', { peers: [{ publicKey: k, endpoint: '192.0.2.1:0' }] }))).toBe('peers[0].endpoint');
    expect(field(() => encodeSetDevice('wg0', { peers: [{ publicKey: k, persistentKeepalive: 70000 }] }))).toBe('peers[0].persistentKeepalive');
    expect(field(() => encodeSetDevice('wg0', { peers: [{ publicKey: k }, { publicKey: k, allowedIPs: ['10.0.0.0/33'] }] }))).toBe('peers[1].allowedIPs[0]');
    expect(field(() => encodeSetDevice('a/b', {}))).toBe('name');
    expect(field(() => encodeSetDevice('sixteen-chars-xx', {}))).toBe('name');
  });

  it('never puts a key into an error message', () => {
    const psk = SecretKey.fromHex('preshared key', PSK_HEX);
    try {
      encodeSetDevice('wg0', { peers: [{ publicKey: PublicKey.fromHex(PUB_HEX), presharedKey: psk, allowedIPs: ['nope'] }] });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain(PSK_HEX);
      expect(String((e as Error).message)).not.toContain(psk.reveal());
    }
  });
});

describe('KernelBackend over a fake transport and a fake exec', () => {
  const fakeExec = (links: Record<string, string>): Exec => async (argv) => {
    const dev = argv[argv.indexOf('dev') + 1] ?? '';
    if (argv.includes('show') && argv.includes('dev')) {
      const kind = links[dev];
      if (kind === undefined) return { code: 1, stdout: '', stderr: `Device "${dev}" does not exist.` };
      return { code: 0, stdout: JSON.stringify([{ ifname: dev, linkinfo: { info_kind: kind } }]), stderr: '' };
    }
    if (argv.includes('add')) links[dev] = 'wireguard';
    if (argv.includes('del')) delete links[dev];
    return { code: 0, stdout: '', stderr: '' };
  };
  const fakeGenl = (answer: (r: GenlRequest) => Buffer[]): GenlTransport & { sent: GenlRequest[] } => {
    const sent: GenlRequest[] = [];
    return {
      sent,
      familyId: async (name) => {
        if (name !== 'wireguard') throw new GenlError(2, 'ENOENT');
        return 0x22;
      },
      request: async (r) => {
        sent.push(r);
        return answer(r);
      },
      close: () => undefined,
    };
  };

  it('maps ENODEV to ENOTFOUND and EOPNOTSUPP (not a wireguard link) to ENOTFOUND', async () => {
    const b = new KernelBackend({ exec: fakeExec({}), genl: fakeGenl(() => { throw new GenlError(19, 'ENODEV'); }) });
    await expect(b.device('wg0')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const c = new KernelBackend({ exec: fakeExec({}), genl: fakeGenl(() => { throw new GenlError(95, 'EOPNOTSUPP'); }) });
    await expect(c.configure('wg0', { listenPort: 1 })).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('sends a dump for GET and one request per chunk for SET, to the resolved family', async () => {
    const genl = fakeGenl((r) => (r.dump === true ? [encodeGetDevice('wg0')] : []));
    const b = new KernelBackend({ exec: fakeExec({}), genl });
    expect((await b.device('wg0')).name).toBe('wg0');
    await b.configure('wg0', { listenPort: 7 });
    expect(genl.sent.map((r) => [r.family, r.cmd, r.dump === true])).toEqual([
      [0x22, 0, true],
      [0x22, 1, false],
    ]);
  });

  it('create keeps a wireguard link, refuses a link of another kind, remove treats absence as success', async () => {
    const links: Record<string, string> = { wg0: 'wireguard', eth9: 'veth' };
    const b = new KernelBackend({ exec: fakeExec(links), genl: fakeGenl(() => []) });
    await b.create('wg0', { mtu: 1420 });
    await expect(b.create('eth9', { mtu: 1420 })).rejects.toMatchObject({ code: 'EBACKEND' });
    await expect(b.remove('eth9')).rejects.toMatchObject({ code: 'EBACKEND' });
    await b.create('wg1', { mtu: 1420 });
    expect(links['wg1']).toBe('wireguard');
    await b.remove('wg1');
    await b.remove('wg1');
    expect(links['wg1']).toBeUndefined();
    await expect(b.create('wg2', { mtu: 10 })).rejects.toMatchObject({ code: 'EINVAL', context: { field: 'mtu' } });
  });

  it('reaches a moved device through one socket per netns, re-opened when the netns changes, dropped when it is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kb-netns-'));
    try {
      const podNs = join(dir, 'cni-1');
      writeFileSync(podNs, '');
      const host = fakeGenl(() => { throw new GenlError(19, 'ENODEV'); });
      const opened: { netns: string; genl: ReturnType<typeof fakeGenl>; closed: boolean }[] = [];
      const genlIn = (netns: string): GenlTransport => {
        const g = fakeGenl((r) => (r.dump === true ? [encodeGetDevice('pwg1')] : []));
        const entry = { netns, genl: g, closed: false };
        opened.push(entry);
        return { ...g, close: () => void (entry.closed = true) };
      };
      const b = new KernelBackend({ exec: fakeExec({}), genl: host, genlIn });
      await expect(b.device('pwg1')).rejects.toMatchObject({ code: 'ENOTFOUND' }); // not in our netns
      expect((await b.device('pwg1', { netns: podNs })).name).toBe('pwg1');
      await b.configure('pwg1', { listenPort: 7 }, { netns: podNs });
      expect(opened).toHaveLength(1); // one socket, reused
      expect(opened[0]!.genl.sent.map((r) => r.cmd)).toEqual([0, 1]);
      expect(b.podSockets).toBe(1);
      // Another netns under the same path (new inode): the old socket goes, a new one is opened.
      writeFileSync(`${podNs}.new`, 'x'); // made while the old one exists: surely another inode
      renameSync(`${podNs}.new`, podNs);
      await b.device('pwg1', { netns: podNs });
      expect(opened).toHaveLength(2);
      expect(opened[0]!.closed).toBe(true);
      // The netns is gone: ENOTFOUND, and nothing is held for it.
      rmSync(podNs);
      await expect(b.device('pwg1', { netns: podNs })).rejects.toMatchObject({ code: 'ENOTFOUND', context: { netns: podNs } });
      expect(opened[1]!.closed).toBe(true);
      expect(b.podSockets).toBe(0);
      // release() is idempotent and closes what is held.
      writeFileSync(podNs, '');
      await b.device('pwg1', { netns: podNs });
      await b.release(podNs);
      await b.release(podNs);
      expect(opened[2]!.closed).toBe(true);
      expect(b.podSockets).toBe(0);
      // remove() of a device whose netns is gone is success, without running anything there.
      await b.remove('pwg1', { netns: join(dir, 'gone') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the availability probe names what it looked at', () => {
    const r = kernelWireGuardAvailable('/nonexistent-root/');
    expect(r.available).toBe(false);
    expect(r.why).toMatch(/modules\.builtin/);
  });
});
