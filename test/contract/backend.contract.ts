// The WireGuardBackend contract: one list of cases that every backend must pass, written with
// node:assert only, so the same cases run under jest on the host (userspace backend), as a plain
// node script inside a qemu guest (kernel backend; test/contract/backend-contract-main.ts is bundled
// into the guest image), and in the unit tier against FakeBackend (test/fakes/backend.ts). Where
// the backends differ by design, the difference is declared in GAPS with its reason, and the case
// asserts each side's documented behaviour. Today there is none: a device moved into another netns
// is reached through `where` on both. A case that needs a real data plane (a handshake, a ping)
// says so in `rootOnly`; the fake's runner skips it under that reason.
//
// The cases work in the netns of the calling process (where devices are born) and in one extra
// netns, `peerNetns`, that the runner creates and deletes. What a case does to the world around
// the backend (read an MTU, move a device) goes through `world`: iproute2 for a real backend
// (ipWorld), the fake's own model for the fake. Making backends and namespaces is the runner's job.
import assert from 'node:assert/strict';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';
import type { BackendKind, WireGuardBackend } from '../../src/wireguard/backend.js';
import { generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';
import { rejects, type ContractCase as Case } from './contract.js';

/** The runner's result line starts with this. */
export const CONTRACT_LINE = 'PEERPOD-CONTRACT';

/** What the cases do around the backend, as the netns layer would. */
export interface BackendWorld {
  /** The MTU of link `name` in the caller's netns. */
  mtuOf(name: string): Promise<number>;
  /** Move link `name` from the caller's netns into the peer netns. */
  moveToPeer(name: string): Promise<void>;
  /** Whether a link `name` is in the peer netns. */
  inPeer(name: string): Promise<boolean>;
  /** Delete link `name` from the peer netns, if it is there (cleanup). */
  dropFromPeer(name: string): Promise<void>;
}

export interface ContractContext {
  backend: WireGuardBackend;
  world: BackendWorld;
  /** For the root-only cases: addresses, links up, ping. Absent for a fake. */
  exec?: Exec;
  /** 3-7 lowercase letters/digits, unique per run: device names are <prefix><letter>. */
  prefix: string;
  /** A netns name (under /run/netns) that exists for the duration of the run. */
  peerNetns: string;
  /** A free /24 in 198.18.0.0/15, as "198.18.N". */
  subnet: string;
  /** UDP ports free in the caller's netns. */
  ports: readonly [number, number];
}

export type ContractCase = Case<ContractContext>;

/** Differences by design, with the reason. */
export const GAPS: Record<BackendKind, Record<string, string>> = {
  userspace: {},
  kernel: {},
};

const ipIn = (exec: Exec, ...args: string[]) => exec(['ip', ...args], { timeoutMs: 10_000 });

/** The world of a real backend: iproute2 through `exec`. */
export function ipWorld(exec: Exec, peerNetns: string): BackendWorld {
  return {
    async mtuOf(name) {
      const r = await ipIn(exec, '-j', 'link', 'show', 'dev', name);
      return (JSON.parse(r.stdout) as { mtu: number }[])[0]!.mtu;
    },
    async moveToPeer(name) {
      await ipIn(exec, 'link', 'set', 'dev', name, 'netns', peerNetns);
    },
    async inPeer(name) {
      const r = await exec(['ip', '-n', peerNetns, 'link', 'show', 'dev', name], { timeoutMs: 10_000, okCodes: [0, 1, 255] });
      return r.code === 0;
    },
    async dropFromPeer(name) {
      await ipIn(exec, '-n', peerNetns, 'link', 'del', name).catch(() => undefined);
    },
  };
}

function needExec(ctx: ContractContext): Exec {
  assert.ok(ctx.exec !== undefined, 'a root-only case needs exec');
  return ctx.exec;
}

const ip = (ctx: ContractContext, ...args: string[]) => ipIn(needExec(ctx), ...args);

function dev(ctx: ContractContext, letter: string): string {
  return `${ctx.prefix}${letter}`;
}

function peerPath(ctx: ContractContext): string {
  return `/run/netns/${ctx.peerNetns}`;
}

export const BACKEND_CONTRACT: readonly ContractCase[] = [
  {
    name: 'create makes a device with the MTU and no configuration, listed by devices()',
    async run(ctx) {
      const name = dev(ctx, 'a');
      await ctx.backend.create(name, { mtu: 1380 });
      assert.ok((await ctx.backend.devices()).includes(name), 'devices() lists the new device');
      assert.equal(await ctx.world.mtuOf(name), 1380);
      const d = await ctx.backend.device(name);
      assert.equal(d.name, name);
      assert.equal(d.privateKey, null);
      assert.equal(d.publicKey, null);
      assert.deepEqual(d.peers, []);
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'create keeps an existing device as it is',
    async run(ctx) {
      const name = dev(ctx, 'b');
      await ctx.backend.create(name, { mtu: 1400 });
      const key = generateKeyPair();
      await ctx.backend.configure(name, { privateKey: key.privateKey, listenPort: ctx.ports[0] });
      await ctx.backend.create(name, { mtu: 1300 });
      const d = await ctx.backend.device(name);
      assert.ok(d.privateKey?.equals(key.privateKey), 'private key kept');
      assert.equal(d.listenPort, ctx.ports[0]);
      assert.equal(await ctx.world.mtuOf(name), 1400, 'MTU kept');
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'configure leaves absent fields unchanged, and null or 0 clears',
    async run(ctx) {
      const name = dev(ctx, 'c');
      await ctx.backend.create(name, { mtu: 1420 });
      const key = generateKeyPair();
      await ctx.backend.configure(name, { privateKey: key.privateKey, listenPort: ctx.ports[1], firewallMark: 0x51 });
      await ctx.backend.configure(name, {});
      let d = await ctx.backend.device(name);
      assert.ok(d.privateKey?.equals(key.privateKey));
      assert.ok(d.publicKey?.equals(key.publicKey), 'public key derived');
      assert.equal(d.listenPort, ctx.ports[1]);
      assert.equal(d.firewallMark, 0x51);
      await ctx.backend.configure(name, { privateKey: null, firewallMark: 0 });
      d = await ctx.backend.device(name);
      assert.equal(d.privateKey, null);
      assert.equal(d.publicKey, null);
      assert.equal(d.firewallMark, 0);
      assert.equal(d.listenPort, ctx.ports[1], 'port untouched');
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'peers: add, read back, append and replace allowed IPs, clear the PSK, remove, replace all',
    async run(ctx) {
      const name = dev(ctx, 'd');
      await ctx.backend.create(name, { mtu: 1420 });
      await ctx.backend.configure(name, { privateKey: generateKeyPair().privateKey });
      const p1 = generateKeyPair().publicKey;
      const p2 = generateKeyPair().publicKey;
      const psk = generatePresharedKey();
      await ctx.backend.configure(name, {
        peers: [
          { publicKey: p1, presharedKey: psk, endpoint: '192.0.2.7:51900', persistentKeepalive: 25, allowedIPs: ['10.9.0.0/24', 'fd00:9::/64'] },
          { publicKey: p2, endpoint: '[2001:db8::7]:51901', allowedIPs: ['10.9.1.5/32'] },
        ],
      });
      let d = await ctx.backend.device(name);
      assert.equal(d.peers.length, 2);
      const a = d.peers.find((p) => p.publicKey.equals(p1));
      const b = d.peers.find((p) => p.publicKey.equals(p2));
      assert.ok(a && b, 'both peers reported');
      assert.ok(a.presharedKey?.equals(psk), 'psk read back');
      assert.equal(a.endpoint, '192.0.2.7:51900');
      assert.equal(a.persistentKeepalive, 25);
      assert.deepEqual([...a.allowedIPs].sort(), ['10.9.0.0/24', 'fd00:9::/64']);
      assert.equal(b.endpoint, '[2001:db8::7]:51901');
      assert.equal(b.presharedKey, null);
      assert.equal(a.lastHandshakeSec, 0);

      await ctx.backend.configure(name, { peers: [{ publicKey: p1, allowedIPs: ['10.9.2.0/24'] }] });
      d = await ctx.backend.device(name);
      assert.deepEqual([...d.peers.find((p) => p.publicKey.equals(p1))!.allowedIPs].sort(), ['10.9.0.0/24', '10.9.2.0/24', 'fd00:9::/64']);

      await ctx.backend.configure(name, { peers: [{ publicKey: p1, replaceAllowedIPs: true, allowedIPs: ['10.9.3.0/24'], presharedKey: null }] });
      d = await ctx.backend.device(name);
      const a2 = d.peers.find((p) => p.publicKey.equals(p1))!;
      assert.deepEqual(a2.allowedIPs, ['10.9.3.0/24']);
      assert.equal(a2.presharedKey, null);
      assert.equal(a2.endpoint, '192.0.2.7:51900', 'endpoint untouched');

      await ctx.backend.configure(name, { peers: [{ publicKey: p2, remove: true }] });
      d = await ctx.backend.device(name);
      assert.deepEqual(d.peers.map((p) => p.publicKey.toBase64()), [p1.toBase64()]);

      const p3 = generateKeyPair().publicKey;
      await ctx.backend.configure(name, { peers: [{ publicKey: p3, updateOnly: true, allowedIPs: ['10.9.4.0/24'] }] });
      assert.equal((await ctx.backend.device(name)).peers.length, 1, 'updateOnly never creates a peer');

      await ctx.backend.configure(name, { replacePeers: true, peers: [{ publicKey: p3, allowedIPs: ['10.9.5.0/24'] }] });
      d = await ctx.backend.device(name);
      assert.deepEqual(d.peers.map((p) => p.publicKey.toBase64()), [p3.toBase64()]);
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'many peers and allowed IPs survive the round trip',
    async run(ctx) {
      const name = dev(ctx, 'e');
      await ctx.backend.create(name, { mtu: 1420 });
      const peers = Array.from({ length: 300 }, (_, i) => ({
        publicKey: generateKeyPair().publicKey,
        allowedIPs: [`10.${100 + (i >> 8)}.${i & 255}.0/24`, `fd00:${i.toString(16)}:1::/64`],
      }));
      await ctx.backend.configure(name, { peers });
      const d = await ctx.backend.device(name);
      assert.equal(d.peers.length, 300);
      const byKey = new Map(d.peers.map((p) => [p.publicKey.toBase64(), p]));
      for (const p of peers) assert.deepEqual([...(byKey.get(p.publicKey.toBase64())?.allowedIPs ?? [])].sort(), [...p.allowedIPs].sort());
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'a missing device is ENOTFOUND; remove of a missing device succeeds; remove is idempotent',
    async run(ctx) {
      const name = dev(ctx, 'x');
      await rejects(ctx.backend.device(name), 'ENOTFOUND', 'device()');
      await ctx.backend.remove(name);
      const made = dev(ctx, 'f');
      await ctx.backend.create(made, { mtu: 1420 });
      await ctx.backend.remove(made);
      await ctx.backend.remove(made);
      assert.ok(!(await ctx.backend.devices()).includes(made));
    },
  },
  {
    name: 'bad values are refused with EINVAL before anything is applied',
    async run(ctx) {
      const name = dev(ctx, 'g');
      await ctx.backend.create(name, { mtu: 1420 });
      await rejects(ctx.backend.configure(name, { listenPort: 70_000 }), 'EINVAL', 'port 70000');
      await rejects(
        ctx.backend.configure(name, { listenPort: ctx.ports[0], peers: [{ publicKey: generateKeyPair().publicKey, allowedIPs: ['10.0.0.0/33'] }] }),
        'EINVAL',
        'allowed IP /33',
      );
      assert.equal((await ctx.backend.device(name)).listenPort === ctx.ports[0], false, 'nothing applied');
      await rejects(ctx.backend.create(dev(ctx, 'h'), { mtu: 20 }), 'EINVAL', 'mtu 20');
      await ctx.backend.remove(name);
    },
  },
  {
    name: 'a device moved into another netns is still read, configured and removed through where',
    async run(ctx) {
      const name = dev(ctx, 'w');
      const where = { netns: peerPath(ctx) };
      const key = generateKeyPair();
      const peer = generateKeyPair().publicKey;
      await ctx.backend.create(name, { mtu: 1400 });
      try {
        await ctx.backend.configure(name, { privateKey: key.privateKey, listenPort: ctx.ports[0] });
        await ctx.world.moveToPeer(name);
        // Read where it lives now: the configuration made before the move is there.
        let d = await ctx.backend.device(name, where);
        assert.ok(d.privateKey?.equals(key.privateKey), 'private key read through where');
        assert.equal(d.listenPort, ctx.ports[0], 'listen port read through where');
        // Configure where it lives now; read back twice (the second read reuses what was opened).
        await ctx.backend.configure(name, { peers: [{ publicKey: peer, endpoint: '192.0.2.9:51900', allowedIPs: ['10.9.7.7/32'] }] }, where);
        d = await ctx.backend.device(name, where);
        assert.deepEqual(d.peers.map((p) => p.endpoint), ['192.0.2.9:51900']);
        d = await ctx.backend.device(name, where);
        assert.deepEqual(d.peers[0]?.allowedIPs, ['10.9.7.7/32']);
        // A netns that does not exist is ENOTFOUND, not another failure.
        await rejects(ctx.backend.device(name, { netns: `/run/netns/${ctx.prefix}-none` }), 'ENOTFOUND', 'device() in a missing netns');
        await ctx.backend.remove(name, where);
        assert.equal(await ctx.world.inPeer(name), false, 'the device is gone from the netns it moved to');
        await rejects(ctx.backend.device(name, where), 'ENOTFOUND', 'device() after remove');
        await ctx.backend.remove(name, where); // idempotent
        await ctx.backend.remove(name, { netns: `/run/netns/${ctx.prefix}-none` }); // its netns gone: gone too
      } finally {
        await ctx.world.dropFromPeer(name);
        await ctx.backend.remove(name).catch(() => undefined);
        await ctx.backend.release(peerPath(ctx));
        await ctx.backend.release(peerPath(ctx)); // idempotent
      }
    },
  },
  {
    name: 'two devices handshake over loopback and carry a ping; the moved one learned the endpoint of its peer',
    rootOnly: 'a handshake and a ping need a real data plane: UDP sockets, a TUN, the kernel routing the ping',
    async run(ctx) {
      const a = dev(ctx, 'm');
      const b = dev(ctx, 'n');
      const ka = generateKeyPair();
      const kb = generateKeyPair();
      const [portA, portB] = ctx.ports;
      await ctx.backend.create(a, { mtu: 1420 });
      await ctx.backend.create(b, { mtu: 1420 });
      try {
        await ctx.backend.configure(a, {
          privateKey: ka.privateKey,
          listenPort: portA,
          peers: [{ publicKey: kb.publicKey, endpoint: `127.0.0.1:${portB}`, persistentKeepalive: 25, allowedIPs: [`${ctx.subnet}.2/32`] }],
        });
        await ctx.backend.configure(b, { privateKey: kb.privateKey, listenPort: portB, peers: [{ publicKey: ka.publicKey, allowedIPs: [`${ctx.subnet}.1/32`] }] });
        // b's UDP socket stays here (birthplace rule); its plaintext side goes to the peer netns.
        await ctx.world.moveToPeer(b);
        await ip(ctx, '-n', ctx.peerNetns, 'address', 'add', `${ctx.subnet}.2/24`, 'dev', b);
        await ip(ctx, '-n', ctx.peerNetns, 'link', 'set', b, 'up');
        await ip(ctx, 'address', 'add', `${ctx.subnet}.1/24`, 'dev', a);
        await ip(ctx, 'link', 'set', a, 'up');
        // wireguard-go may take a moment to see its moved TUN come up: retry for up to 10 s.
        let ping = { code: -1, stdout: '', stderr: '' };
        for (let i = 0; i < 10 && ping.code !== 0; i++) {
          ping = await needExec(ctx)(['ping', '-c', '1', '-W', '1', `${ctx.subnet}.2`], { timeoutMs: 10_000, okCodes: [0, 1] });
        }
        assert.equal(ping.code, 0, `ping through the tunnel: ${ping.stdout}${ping.stderr}`);
        const d = await ctx.backend.device(a);
        const peer = d.peers[0]!;
        assert.ok(peer.lastHandshakeSec > 0, 'handshake time reported');
        assert.ok(Math.abs(peer.lastHandshakeSec - Date.now() / 1000) < 120, 'handshake time is recent wall time');
        assert.ok(peer.rxBytes > 0 && peer.txBytes > 0, 'byte counters move');
        assert.equal(peer.protocolVersion, 1);

        const db = await ctx.backend.device(b, { netns: peerPath(ctx) });
        assert.equal(db.peers[0]?.endpoint, `127.0.0.1:${portA}`, 'b learned a\'s endpoint from the handshake');
      } finally {
        await ctx.backend.remove(a);
        await ctx.backend.remove(b, { netns: peerPath(ctx) });
        await ctx.world.dropFromPeer(b);
        await ctx.backend.release(peerPath(ctx));
      }
    },
  },
];

export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Run every case in order; a failure does not stop the others. */
export async function runBackendContract(ctx: ContractContext, cases: readonly ContractCase[] = BACKEND_CONTRACT): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t0 = performance.now();
    try {
      await c.run(ctx);
      results.push({ name: c.name, ok: true, ms: Math.round(performance.now() - t0) });
    } catch (e) {
      const error = e instanceof PeerpodError ? `${e.code}: ${e.describe()}` : e instanceof Error ? e.message : String(e);
      results.push({ name: c.name, ok: false, ms: Math.round(performance.now() - t0), error });
    }
  }
  return results;
}
