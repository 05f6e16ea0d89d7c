// The sidecar under faults, with fakes for the backend and nsenter: "could not check" is never
// "gone" (no teardown, no lost key), and a pod netns confirmed gone loses its data plane only.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerpodError, isPeerpodError } from '../../src/errors.js';
import { IprouteNetns, netnsFactory } from '../../src/netns/netns.js';
import { createApiServer } from '../../src/sidecar/api.js';
import { callSidecar } from '../../src/sidecar/client.js';
import { TunnelService } from '../../src/sidecar/service.js';
import { drainServers } from '../../src/sidecar/shutdown.js';
import { FilePodStore, podIdOf, type WireguardPodRecord } from '../../src/state/store.js';
import type { PodNetwork } from '../../src/podnetwork/types.js';
import { WireguardWorkerDriver } from '../../src/tunnel/wireguard/worker.js';
import { generateKeyPair, PublicKey } from '../../src/wireguard/keys.js';
import type { Peer } from '../../src/wireguard/config.js';
import { podNetworkOf } from '../support/pod-network.js';
import { capturingLogger, nsenterExec, podNetnsExec, ScriptedBackend, seedReadyPod, serviceOverRealDriver, type NetnsAnswer } from './fakes.js';

const NETNS = '/run/netns/pwt-faults-a';
const ID = podIdOf(NETNS);
const DEVICE = `pwg${ID}`;

interface Rig {
  service: TunnelService;
  backend: ScriptedBackend;
  store: FilePodStore;
  netns: Map<string, NetnsAnswer>;
  execCalls: string[];
  lines: () => Record<string, unknown>[];
  advance: (ms: number) => void;
  now: () => number;
}

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwt-faults-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rig(opts: { tickMs?: number; slowInspectMs?: number } = {}): Promise<Rig> {
  const { log, lines } = capturingLogger();
  const store = new FilePodStore(join(dir, 'state'), { onProblem: (p) => log.error({ file: p.file, problem: p.problem }, 'a pod record could not be used') });
  const backend = new ScriptedBackend();
  const netns = new Map<string, NetnsAnswer>([[NETNS, 'present']]);
  const execCalls: string[] = [];
  const nf = netnsFactory(nsenterExec(netns, execCalls));
  const slow = opts.slowInspectMs;
  let now = 1_000_000;
  const service = serviceOverRealDriver({
    backend,
    netns: nf,
    store,
    log,
    clock: () => now,
    timing: { tickMs: opts.tickMs ?? 250, idleProbeMs: 0, fastNudgeWindowMs: 0 },
    worker: (wireguard) =>
      slow === undefined
        ? wireguard
        : {
            type: 'wireguard',
            inspect: async () => {
              await new Promise((r) => setTimeout(r, slow));
              return podNetworkOf(generateKeyPair().publicKey);
            },
            setup: (req) => wireguard.setup(req),
            teardown: (req) => wireguard.teardown(req),
          },
  });
  await seedReadyPod(store, NETNS);
  return { service, backend, store, netns, execCalls, lines, advance: (ms) => (now += ms), now: () => now };
}

async function keysKept(store: FilePodStore): Promise<boolean> {
  return (await store.readKey(ID, 'worker')) !== null && (await store.readKey(ID, 'psk', 'preshared key')) !== null;
}

describe('Netns.exists', () => {
  const ns = (answer: NetnsAnswer) => new IprouteNetns('/run/netns/x', nsenterExec(new Map([['/run/netns/x', answer]])));

  it('is true for a netns that can be entered and false only for a confirmed absence', async () => {
    expect(await ns('present').exists()).toBe(true);
    expect(await ns('absent').exists()).toBe(false);
  });

  it('throws ENETNS when it could not check (timeout, missing nsenter), never false', async () => {
    await expect(ns('timeout').exists()).rejects.toThrow(/cannot tell whether netns \/run\/netns\/x exists/);
    const missing = new IprouteNetns('/run/netns/x', () => Promise.reject(new PeerpodError('EEXEC', 'cannot run nsenter', { op: 'exec' })));
    await missing.exists().then(
      () => expect('resolved').toBe('rejected'),
      (e: unknown) => expect(isPeerpodError(e, 'ENETNS')).toBe(true),
    );
  });
});

describe('TunnelService: could not check is not gone', () => {
  it('health loop: device absent and a netns check that times out → no teardown, no re-create, keys kept', async () => {
    const r = await rig();
    r.netns.set(NETNS, 'timeout');
    r.advance(5_000);
    await r.service.tick();
    expect(r.backend.calls.filter((c) => !c.startsWith('device'))).toEqual([]);
    expect((await r.store.read(ID))?.phase).toBe('ready');
    expect(await keysKept(r.store)).toBe(true);
    expect(r.lines().some((l) => l['msg'] === 'health check failed' && String(l['err']).includes('cannot tell whether netns'))).toBe(true);
  });

  it('health loop: a device that does not answer in time is not down: the netns is not even looked at', async () => {
    const r = await rig();
    r.backend.fault = () => new PeerpodError('EUAPI', `WireGuard device ${DEVICE} did not answer within 5000 ms`, { iface: DEVICE });
    r.netns.set(NETNS, 'absent');
    r.advance(5_000);
    await r.service.tick();
    expect(r.execCalls).toEqual([]);
    expect(r.backend.calls.filter((c) => !c.startsWith('device'))).toEqual([]);
    expect((await r.store.read(ID))?.phase).toBe('ready');
    expect(await keysKept(r.store)).toBe(true);
  });

  it('reconcile: a netns check that times out leaves the pod alone and the sidecar becomes ready', async () => {
    const r = await rig();
    r.netns.set(NETNS, 'timeout');
    await r.service.reconcile();
    expect(r.service.ready).toBe(true);
    expect(r.backend.calls.filter((c) => c.startsWith('remove'))).toEqual([]);
    expect((await r.store.read(ID))?.phase).toBe('ready');
    expect(await keysKept(r.store)).toBe(true);
  });

  it('a netns confirmed absent removes the data plane and keeps record and keys until teardown', async () => {
    const r = await rig();
    r.netns.set(NETNS, 'absent');
    await r.service.reconcile();
    expect(r.backend.calls).toContain(`remove ${DEVICE}`);
    expect((await r.store.read(ID))?.phase).toBe('orphaned');
    expect(await keysKept(r.store)).toBe(true);
    expect((await r.service.status()).map((s) => [s.device, s.state])).toEqual([[DEVICE, 'gone']]);
    // Not healed, not removed again by the health loop.
    r.backend.calls.length = 0;
    r.advance(5_000);
    await r.service.tick();
    expect(r.backend.calls).toEqual([]);
    await r.service.teardown({ netns: NETNS });
    expect(await r.store.read(ID)).toBeNull();
    expect(await keysKept(r.store)).toBe(false);
  });
});

describe('TunnelService: one corrupt record never stops the daemon', () => {
  it('starts, is ready, serves the good pod and reports the bad one in status, metrics and the log', async () => {
    const r = await rig();
    const bad = podIdOf('/run/netns/pwt-faults-bad');
    await r.store.writeKey(bad, 'worker', generateKeyPair().privateKey);
    await writeFile(join(dir, 'state', 'pods', bad, 'record.json'), '{"id": "' + bad + '", "netns": "/run/netns/pwt-faults-bad", ');
    r.backend.devicesByName.set(DEVICE, { name: DEVICE, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] });
    await r.service.reconcile();
    expect(r.service.ready).toBe(true);
    // A tick over the same folder must not throw either.
    await r.service.tick();
    const socket = join(dir, 'api.sock');
    const server = createApiServer({ service: r.service, backend: r.backend }, true);
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      expect((await callSidecar(socket, 'GET', '/readyz')).status).toBe(200);
      const rows = (await callSidecar(socket, 'GET', '/v1/status')).body as { netns: string; state: string; problem?: string }[];
      expect(rows.map((x) => x.state === 'corrupt' ? 'corrupt' : x.netns)).toEqual([NETNS, 'corrupt']);
      expect(rows[1]?.problem).toMatch(new RegExp(`pods/${bad}/record\\.json\\.corrupt-.*: a corrupt record moved aside; the keys are kept until teardown`));
      expect((await callSidecar(socket, 'GET', `/v1/status/${encodeURIComponent(NETNS)}`)).status).toBe(200);
      const metrics = (await callSidecar(socket, 'GET', '/metrics')).body as string;
      expect(metrics).toMatch(/^peerpod_wg_corrupt_records 1$/m);
      expect(metrics).toMatch(/^peerpod_wg_tunnels 1$/m);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect((await readdir(join(dir, 'state', 'pods', bad))).filter((f) => f.endsWith('.key'))).toEqual(['worker.key']);
    expect(r.lines().filter((l) => l['msg'] === 'a pod record could not be used').map((l) => l['problem'])).toEqual([
      'is not valid JSON; moved aside, the keys are kept',
    ]);
  });
});

describe('TunnelService: start-up garbage collection removes only what is ours', () => {
  it('removes an owned device with no record; keeps one made elsewhere and the device of a corrupt record', async () => {
    const r = await rig();
    const blank = { privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] };
    const strayOurs = 'pwg0123456789ab';
    const strayTheirs = 'pwgba9876543210';
    const bad = podIdOf('/run/netns/pwt-faults-bad');
    await r.store.writeKey(bad, 'worker', generateKeyPair().privateKey);
    await writeFile(join(dir, 'state', 'pods', bad, 'record.json'), 'not json');
    for (const name of [strayOurs, strayTheirs, `pwg${bad}`]) r.backend.devicesByName.set(name, { name, ...blank });
    r.backend.ours.add(strayOurs).add(`pwg${bad}`);
    r.netns.set(NETNS, 'timeout'); // the good pod is left alone either way
    await r.service.reconcile();
    expect(r.backend.calls.filter((c) => c.startsWith('remove'))).toEqual([`remove ${strayOurs}`]);
    expect(await r.backend.devices()).toEqual([`pwg${bad}`, strayTheirs].sort());
  });
});

describe('inspect of a pod whose tunnel is set up', () => {
  it('is refused with 409 ESTATE and changes neither the record nor the keys', async () => {
    const r = await rig();
    const driver = new WireguardWorkerDriver({ backend: r.backend, netns: netnsFactory(podNetnsExec()), store: r.store });
    const before = await r.store.read(ID);
    const key = await r.store.readKey(ID, 'worker');
    for (const phase of ['ready', 'setting-up'] as const) {
      await r.store.write({ ...before!, phase });
      await driver.inspect(NETNS).then(
        () => expect(`inspect of a ${phase} pod`).toBe('refused'),
        (e: unknown) => {
          expect(isPeerpodError(e, 'ESTATE')).toBe(true);
          expect((e as PeerpodError).message).toMatch(/already has a (ready|half set-up) tunnel: tear it down first/);
          expect((e as PeerpodError).context.field).toBe('netns');
        },
      );
      expect(await r.store.read(ID)).toMatchObject({ vmPublicKey: (before as WireguardPodRecord).vmPublicKey });
    }
    expect((await r.store.readKey(ID, 'worker'))?.equals(key!)).toBe(true);
    // After a teardown the pod can be inspected again.
    await r.store.remove(ID);
    expect((await driver.inspect(NETNS)).tunnel.type).toBe('wireguard');
  });
});

describe('errors name the field', () => {
  const podNetwork = (): PodNetwork => podNetworkOf(generateKeyPair().publicKey);
  const fieldOf = async (p: Promise<unknown>): Promise<[string, string | undefined]> =>
    p.then(
      () => ['no error', undefined],
      (e: unknown) => [(e as PeerpodError).code, (e as PeerpodError).context.field],
    );

  it('netns, for a pod netns that does not exist and for setup before inspect', async () => {
    const r = await rig();
    const driver = new WireguardWorkerDriver({ backend: r.backend, netns: netnsFactory(nsenterExec(r.netns)), store: r.store });
    const other = '/run/netns/pwt-faults-other';
    expect(await fieldOf(driver.inspect(other))).toEqual(['ENOTFOUND', 'netns']);
    expect(await fieldOf(driver.setup({ netns: other, podVmIPs: ['203.0.113.10'], podNetwork: podNetwork() }))).toEqual(['ENOTFOUND', 'netns']);
    r.netns.set(other, 'present');
    expect(await fieldOf(driver.setup({ netns: other, podVmIPs: ['203.0.113.10'], podNetwork: podNetwork() }))).toEqual(['ESTATE', 'netns']);
  });
});

describe('stopping the sidecar', () => {
  it('answers the requests in flight, then stops taking connections; the one AbortSignal stops the health loop', async () => {
    const r = await rig({ tickMs: 10, slowInspectMs: 300 });
    r.backend.devicesByName.set(DEVICE, { name: DEVICE, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [] });
    const running = new AbortController();
    const loop = r.service.start(running.signal);
    const socket = join(dir, 'api.sock');
    const server = createApiServer({ service: r.service, backend: r.backend }, true);
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    const inFlight = callSidecar(socket, 'POST', '/v1/inspect', { netns: '/run/netns/pwt-faults-slow' });
    await new Promise((res) => setTimeout(res, 50));
    expect(r.backend.calls.filter((c) => c === `device ${DEVICE}`).length).toBeGreaterThan(0); // the loop ran
    running.abort();
    const drained = drainServers([server], 5_000);
    expect((await inFlight).status).toBe(200);
    expect(await drained).toBe('drained');
    await expect(callSidecar(socket, 'GET', '/healthz')).rejects.toThrow(/not running/);
    await loop;
    await r.service.idle();
    const checks = r.backend.calls.length;
    await new Promise((res) => setTimeout(res, 100));
    expect(r.backend.calls.length).toBe(checks);
  });
});

describe('a pod VM that stops answering', () => {
  it('is unreachable within 30 s of the last packet from it, counted, and answers again when it does', async () => {
    const r = await rig();
    const rec = (await r.store.read(ID)) as WireguardPodRecord;
    const nowSec = () => Math.floor(r.now() / 1000);
    const peer: Peer = {
      publicKey: PublicKey.fromBase64(rec.vmPublicKey),
      presharedKey: null,
      endpoint: '203.0.113.10:51900',
      persistentKeepalive: 25,
      lastHandshakeSec: nowSec(),
      lastHandshakeNsec: 0,
      rxBytes: 1000,
      txBytes: 1000,
      allowedIPs: ['198.18.1.21/32'],
      protocolVersion: 1,
    };
    r.backend.devicesByName.set(DEVICE, { name: DEVICE, privateKey: null, publicKey: null, listenPort: 0, firewallMark: 0, peers: [peer] });
    const state = async () => (await r.service.status())[0]?.state;
    await r.service.tick(); // the last packet from the pod VM was just now
    r.advance(19_000);
    await r.service.tick();
    expect(r.backend.calls.filter((c) => c.startsWith('configure'))).toEqual([]);
    r.advance(1_000);
    await r.service.tick();
    expect(r.backend.calls.filter((c) => c.startsWith('configure')).length).toBeGreaterThan(0); // a fresh handshake
    // The re-added peer starts from zero and nothing answers.
    Object.assign(peer, { rxBytes: 0, txBytes: 148, lastHandshakeSec: 0 });
    r.advance(5_000);
    await r.service.tick();
    expect(await state()).toBe('connecting');
    r.advance(5_000);
    await r.service.tick();
    expect(await state()).toBe('unreachable');
    expect(r.service.counters.unreachable).toBe(1);
    expect(r.lines().some((l) => l['msg'] === 'the pod VM does not answer: unreachable')).toBe(true);
    r.advance(5_000);
    await r.service.tick();
    expect([await state(), r.service.counters.unreachable]).toEqual(['unreachable', 1]);
    // It answers a later nudge.
    Object.assign(peer, { rxBytes: 92, lastHandshakeSec: nowSec() });
    await r.service.tick();
    expect(await state()).toBe('up');
    expect(r.lines().some((l) => l['msg'] === 'the pod VM answers again')).toBe(true);
  });
});
