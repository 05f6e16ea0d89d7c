// Lab test of the userspace backend with real wireguard-go daemons, real TUNs and real network
// namespaces. Root only; without root it is skipped, loudly.
//
// Topology. Both daemons are born in the root netns, so their UDP sockets stay there and the
// loopback is the underlay (no veth needed: the encrypted packets never leave the root netns).
// Only the TUNs are moved, each into its own fresh netns, where the plaintext lives:
//
//   root netns ─────────────────────────────────────────────────────────────────────────────
//     wireguard-go <run>a  UDP *:<portA>  ◀── lo, 127.0.0.1 ──▶  wireguard-go <run>b  UDP *:<portB>
//        │ TUN (moved)                                              │ TUN (moved)
//   ─────┼──────────────────────────────            ───────────────┼──────────────────────────
//   netns <run>-a                                   netns <run>-b
//     <run>a  198.18.<n>.1/24  peer b: endpoint       <run>b  198.18.<n>.2/24  peer a: no endpoint
//             127.0.0.1:<portB>, keepalive 25,                 (learned from the handshake),
//             allowed 198.18.<n>.2/32                          allowed 198.18.<n>.1/32
//
// <run> is `pwt` + 4 random hex digits, so parallel or leftover runs never collide; addresses come
// from 198.18.0.0/15 (benchmarking range) and exist only inside the namespaces.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../../src/errors.js';
import { realExec } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import { liveThreadCount } from '../../src/process-identity.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { caught } from '../support/errors.js';
import { describeLab } from './root.js';

const run = `pwt${randomBytes(2).toString('hex')}`;
const nsA = `${run}-a`;
const nsB = `${run}-b`;
const devA = `${run}a`;
const devB = `${run}b`;
const devC = `${run}c`; // stays in the root netns
const devS = `${run}s`; // started behind the backend's back
const devX = `${run}x`; // never exists
const net = randomInt(0, 256);
const ipA = `198.18.${net}.1`;
const ipB = `198.18.${net}.2`;
const portA = randomInt(20_000, 40_000);
const portB = portA + 1;
const MTU = 1380;

const ip = (...args: string[]) => realExec(['ip', ...args], { timeoutMs: 10_000 });

async function linkExists(ns: string | null, dev: string): Promise<boolean> {
  const argv = ns === null ? ['ip', 'link', 'show', 'dev', dev] : ['ip', '-n', ns, 'link', 'show', 'dev', dev];
  const r = await realExec(argv, { okCodes: [0, 1], timeoutMs: 10_000 });
  return r.code === 0;
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

describeLab('UserspaceBackend (lab, root)', () => {
  let runDir: string;
  let backend: UserspaceBackend;
  const stranger: { child?: ChildProcess } = {};

  beforeAll(async () => {
    runDir = await mkdtemp(join(tmpdir(), `${run}-`));
    backend = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir });
    await ip('netns', 'add', nsA);
    await ip('netns', 'add', nsB);
  });

  afterAll(async () => {
    const problems: string[] = [];
    for (const dev of [devA, devB, devC, devS]) {
      await backend.remove(dev).catch((e: unknown) => problems.push(`remove ${dev}: ${describeError(e)}`));
    }
    // The daemon this test started directly: only by the pid we hold, and only if still running.
    const child = stranger.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const ns of [nsA, nsB]) {
      await realExec(['ip', 'netns', 'del', ns], { okCodes: [0, 1] }).catch((e: unknown) => problems.push(describeError(e)));
    }
    await rm(runDir, { recursive: true, force: true });
    if (problems.length > 0) console.warn(`userspace-backend lab cleanup:\n  ${problems.join('\n  ')}`);
  });

  it('refuses bad names and MTUs before starting anything', async () => {
    expect((await caught(backend.create('bad/name', { mtu: MTU }))).code).toBe('EINVAL');
    expect((await caught(backend.create('a'.repeat(16), { mtu: MTU }))).code).toBe('EINVAL');
    expect((await caught(backend.create(devX, { mtu: 20 }))).code).toBe('EINVAL');
    expect(await backend.pidOf(devX)).toBeNull();
  });

  it('creates two devices, moves their TUNs into two namespaces, and carries a ping between them', async () => {
    await backend.create(devA, { mtu: MTU });
    await backend.create(devB, { mtu: MTU });
    expect(await backend.pidOf(devA)).toEqual(expect.any(Number));
    expect((await ip('-o', 'link', 'show', 'dev', devA)).stdout).toContain(`mtu ${MTU} `);
    expect(await backend.devices()).toEqual(expect.arrayContaining([devA, devB]));

    const a = generateKeyPair();
    const b = generateKeyPair();
    // The responder first: A's keepalive makes it send a handshake at once, and one that B cannot
    // answer yet is retried only after REKEY_TIMEOUT (5 s).
    await backend.configure(devB, {
      privateKey: b.privateKey,
      listenPort: portB,
      peers: [{ publicKey: a.publicKey, allowedIPs: [`${ipA}/32`] }],
    });
    await backend.configure(devA, {
      privateKey: a.privateKey,
      listenPort: portA,
      peers: [{ publicKey: b.publicKey, endpoint: `127.0.0.1:${portB}`, persistentKeepalive: 25, allowedIPs: [`${ipB}/32`] }],
    });

    for (const [dev, ns, addr] of [
      [devA, nsA, ipA],
      [devB, nsB, ipB],
    ] as const) {
      await ip('link', 'set', 'dev', dev, 'netns', ns);
      await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
      await ip('-n', ns, 'link', 'set', 'dev', dev, 'up');
      // MTU set before the move survives it.
      expect((await ip('-n', ns, '-o', 'link', 'show', 'dev', dev)).stdout).toContain(`mtu ${MTU} `);
    }

    await eventually(
      `ping ${ipA} -> ${ipB}`,
      async () => (await realExec(['ip', 'netns', 'exec', nsA, 'ping', '-c', '1', '-W', '1', ipB], { okCodes: [0, 1] })).code === 0,
      10_000,
    );

    const seenByA = await backend.device(devA);
    expect(seenByA.publicKey?.equals(a.publicKey)).toBe(true);
    expect(seenByA.listenPort).toBe(portA);
    expect(seenByA.peers).toHaveLength(1);
    const peerB = seenByA.peers[0]!;
    expect(peerB.publicKey.equals(b.publicKey)).toBe(true);
    expect(peerB.lastHandshakeSec).toBeGreaterThan(0);
    expect(peerB.rxBytes).toBeGreaterThan(0);
    expect(peerB.txBytes).toBeGreaterThan(0);
    expect(peerB.allowedIPs).toEqual([`${ipB}/32`]);
    expect(peerB.protocolVersion).toBe(1);

    // B had no endpoint for A; it learned one from the handshake (what the pod VM relies on).
    const peerA = (await backend.device(devB)).peers[0]!;
    expect(peerA.endpoint).toBe(`127.0.0.1:${portA}`);
    expect(peerA.lastHandshakeSec).toBeGreaterThan(0);
  });

  it('create() again keeps the running device as it is (same pid, TUN left in its netns)', async () => {
    const pid = await backend.pidOf(devA);
    await backend.create(devA, { mtu: 1280 });
    expect(await backend.pidOf(devA)).toBe(pid);
    expect(await linkExists(nsA, devA)).toBe(true);
    expect(await linkExists(null, devA)).toBe(false);
    expect((await ip('-n', nsA, '-o', 'link', 'show', 'dev', devA)).stdout).toContain(`mtu ${MTU} `);
  });

  it('a configure or get against a missing device is ENOTFOUND', async () => {
    const e = await caught(backend.configure(devX, { listenPort: 1 }));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.context.iface).toBe(devX);
    expect((await caught(backend.device(devX))).code).toBe('ENOTFOUND');
  });

  it('a set the daemon refuses is EUAPI with its errno (listen port taken)', async () => {
    await backend.create(devC, { mtu: MTU });
    const e = await caught(backend.configure(devC, { listenPort: portA }));
    expect(e.code).toBe('EUAPI');
    expect(e.context.errno).toBe(-98);
    await backend.remove(devC);
    expect(await linkExists(null, devC)).toBe(false);
  });

  it('create() replaces a killed daemon whose socket file was left behind', async () => {
    await backend.create(devC, { mtu: MTU });
    const first = await backend.pidOf(devC);
    expect(first).not.toBeNull();
    process.kill(first!, 'SIGKILL'); // a pid the backend verified and this process started
    await eventually(`${devC} daemon dead`, async () => (await backend.pidOf(devC)) === null);
    expect(existsSync(backend.socketPath(devC))).toBe(true); // SIGKILL leaves the socket file
    // A dying daemon may still accept and then reset a connection (EUAPI); then comes ECONNREFUSED.
    await eventually(`${devC} refuses connections`, async () => (await caught(backend.device(devC))).code === 'ENOTFOUND');

    await backend.create(devC, { mtu: MTU });
    const second = await backend.pidOf(devC);
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    expect((await backend.device(devC)).peers).toEqual([]);
    await backend.remove(devC);
  });

  it('fails with EBACKEND and the log tail when the daemon dies at start', async () => {
    const fake = join(runDir, 'fake-wireguard-go');
    await writeFile(fake, '#!/bin/sh\necho "boom: cannot open /dev/net/tun for $2"\nexit 3\n');
    await chmod(fake, 0o755);
    const broken = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir, wireguardGo: fake });
    const e = await caught(broken.create(devX, { mtu: MTU }));
    expect(e.code).toBe('EBACKEND');
    expect(e.message).toContain(`boom: cannot open /dev/net/tun for ${devX}`);
    expect(e.context.exitCode).toBe(3);
    expect(existsSync(broken.pidFile(devX))).toBe(false);
  });

  it('fails with EBACKEND when the binary does not exist', async () => {
    const missing = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir, wireguardGo: join(runDir, 'no-such-binary') });
    expect((await caught(missing.create(devX, { mtu: MTU }))).code).toBe('EBACKEND');
  });

  it('remove() stops the daemon, and its moved TUN, socket and pid file go with it; twice is fine', async () => {
    const pid = await backend.pidOf(devA);
    expect(pid).not.toBeNull();
    await backend.remove(devA);
    await backend.remove(devA);
    expect(await backend.pidOf(devA)).toBeNull();
    expect(await liveThreadCount(pid!)).toBe(0); // gone for good, not just exiting
    expect(existsSync(backend.socketPath(devA))).toBe(false);
    expect(existsSync(backend.pidFile(devA))).toBe(false);
    await eventually(`${devA} gone from ${nsA}`, async () => !(await linkExists(nsA, devA)));
    expect(await backend.devices()).not.toContain(devA);

    await backend.remove(devB);
    await eventually(`${devB} gone from ${nsB}`, async () => !(await linkExists(nsB, devB)));
    await backend.remove(devX); // never existed
  });

  it('remove() stops a daemon it did not start without signalling it (by deleting its socket)', async () => {
    const child = spawn('wireguard-go', ['-f', devS], { stdio: 'ignore', env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
    stranger.child = child;
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await eventually(`${devS} answers`, async () => (await backend.devices()).includes(devS));
    expect(await backend.pidOf(devS)).toBeNull(); // no pid file of ours: not ours to signal
    await backend.remove(devS);
    await exited;
    expect(child.signalCode).toBeNull(); // it exited by itself
    expect(existsSync(backend.socketPath(devS))).toBe(false);
    expect(await linkExists(null, devS)).toBe(false);
  });

  it('left nothing of this run behind', async () => {
    const ps = await realExec(['ps', '-eo', 'pid,stat,args']);
    expect(ps.stdout.split('\n').filter((l) => l.includes(run) && !l.includes(' Z'))).toEqual([]);
    const links = await ip('-o', 'link', 'show');
    expect(links.stdout).not.toContain(run);
  });
});
