// TunnelService without root and without waiting: every reconcile branch, the health loop (down,
// connecting, stale, idle, unreachable), the nudge and probe rate limits, same-pod serialisation,
// the tearing-down phase and the one AbortSignal. Fakes: the WireGuard backend and nsenter
// (./fakes.ts), a worker driver (../fakes/worker-driver.ts), time (../fakes/time.ts); the pod
// store is the real one in a temp folder, every write checked against the state machine.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerpodError, isPeerpodError } from '../../src/errors.js';
import { netnsFactory } from '../../src/netns/netns.js';
import { PENDING_MAX_AGE_MS, type TunnelService } from '../../src/sidecar/service.js';
import { checkedPodStore } from '../../src/state/phase.js';
import { FilePodStore, podIdOf, type PodPhase, type PodRecord, type PodStore, type WireguardPodRecord } from '../../src/state/store.js';
import type { WorkerSetupRequest } from '../../src/tunnel/driver.js';
import type { TunnelRegistry } from '../../src/tunnel/registry.js';
import type { Peer } from '../../src/wireguard/config.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { FakeTime } from '../fakes/time.js';
import { FakeWorkerDriver, vmPeerOf, type DriverCall } from '../fakes/worker-driver.js';
import { podNetworkOf } from '../support/pod-network.js';
import { capturingLogger, nsenterExec, ScriptedBackend, seedReadyPod, testService, type NetnsAnswer } from './fakes.js';

const A = '/run/netns/pwt-svc-a';
const B = '/run/netns/pwt-svc-b';
const TICK = 250;

interface Rig {
  service: TunnelService;
  /** The store the service and the driver share (checked); `raw` seeds without the check. */
  store: PodStore;
  raw: FilePodStore;
  backend: ScriptedBackend;
  wireguard: FakeWorkerDriver;
  vxlan: FakeWorkerDriver;
  netns: Map<string, NetnsAnswer>;
  execCalls: string[];
  time: FakeTime;
  lines: () => Record<string, unknown>[];
  logged: (msg: string) => boolean;
  /** A WireGuard pod in `phase`, its keys kept, its device up (with the pod VM peer) unless said otherwise. */
  seed: (netns: string, phase: PodPhase, o?: { device?: boolean; peer?: Partial<Peer> }) => Promise<WireguardPodRecord>;
  /** The setup request CAA sends for a seeded pod: its pod-network names the worker key kept for it. */
  setupReq: (netns: string, podVmIPs?: string[]) => Promise<WorkerSetupRequest>;
  peer: (rec: PodRecord) => Peer;
  /** A new service on the same store, backend and time: a restarted sidecar. */
  restart: () => TunnelService;
}

let dir = '';
let rigs: Rig[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwt-svc-'));
  rigs = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  // An illegal phase transition is a bug even where the service only logs it (the health loop).
  const illegal = rigs.flatMap((r) => r.lines()).filter((l) => JSON.stringify(l).includes('no phase transition'));
  expect(illegal).toEqual([]);
});

async function rig(o: { idleProbeMs?: number; fastNudgeWindowMs?: number } = {}): Promise<Rig> {
  const { log, lines } = capturingLogger();
  const raw = new FilePodStore(join(dir, 'state'), { onProblem: (p) => log.error({ file: p.file, problem: p.problem }, 'a pod record could not be used') });
  const store = checkedPodStore(raw);
  const backend = new ScriptedBackend();
  const netns = new Map<string, NetnsAnswer>([
    [A, 'present'],
    [B, 'present'],
  ]);
  const execCalls: string[] = [];
  const nf = netnsFactory(nsenterExec(netns, execCalls));
  const time = new FakeTime();
  const now = () => new Date(time.now());
  const wireguard = new FakeWorkerDriver('wireguard', { backend, store, now });
  const vxlan = new FakeWorkerDriver('vxlan', { backend, store, now });
  const registry: TunnelRegistry = { wireguard: { worker: () => wireguard }, vxlan: { worker: () => vxlan } };
  const make = () =>
    testService({
      registry,
      wireguard,
      backend,
      netns: nf,
      store,
      log,
      clock: time.now,
      sleep: time.sleep,
      timing: { tickMs: TICK, idleProbeMs: o.idleProbeMs ?? 0, fastNudgeWindowMs: o.fastNudgeWindowMs ?? 0 },
    });
  const peer = (rec: PodRecord): Peer => {
    const p = backend.devicesByName.get(rec.device)?.peers[0];
    if (p === undefined) throw new Error(`no peer on ${rec.device}`);
    return p;
  };
  const seed: Rig['seed'] = async (ns, phase, so = {}) => {
    const ready = await seedReadyPod(raw, ns);
    const rec = { ...ready, phase };
    await raw.write(rec);
    if (so.device !== false) {
      await backend.create(rec.device, { mtu: rec.mtu });
      backend.devicesByName.get(rec.device)?.peers.push(vmPeerOf(rec, so.peer));
    }
    backend.calls.length = 0;
    return rec;
  };
  const setupReq: Rig['setupReq'] = async (ns, podVmIPs = ['203.0.113.10']) => {
    const worker = await raw.readKey(podIdOf(ns), 'worker');
    if (worker === null) throw new Error(`no worker key for ${ns}: seed the pod first`);
    return { netns: ns, podVmIPs, podNetwork: podNetworkOf(worker.publicKey()) };
  };
  const made: Rig = {
    service: make(),
    store,
    raw,
    backend,
    wireguard,
    vxlan,
    netns,
    execCalls,
    time,
    lines,
    logged: (msg) => lines().some((l) => l['msg'] === msg),
    seed,
    setupReq,
    peer,
    restart: make,
  };
  rigs.push(made);
  return made;
}

async function keysKept(store: PodStore, rec: PodRecord): Promise<boolean> {
  return (await store.readKey(rec.id, 'worker')) !== null && (await store.readKey(rec.id, 'psk', 'preshared key')) !== null;
}

const phaseOf = async (r: Rig, rec: PodRecord) => (await r.store.read(rec.id))?.phase ?? null;
const removes = (r: Rig) => r.backend.calls.filter((c) => c.startsWith('remove'));

/**
 * Holds each setup and teardown (of pod A or B) at its start until the test releases it, and logs
 * when each starts and ends. started() waits for a start, for at most 5 s of real time (a bound
 * for a failing test only: it passes without waiting).
 */
function held(r: Rig) {
  const events: string[] = [];
  const gates = new Map<string, { started: Promise<void>; start: () => void; released: Promise<void>; release: () => void }>();
  const gate = (name: string) => {
    let g = gates.get(name);
    if (g === undefined) {
      let start = (): void => undefined;
      let release = (): void => undefined;
      const started = new Promise<void>((res) => (start = res));
      const released = new Promise<void>((res) => (release = res));
      g = { started, start, released, release };
      gates.set(name, g);
    }
    return g;
  };
  r.wireguard.onCall = async (call: DriverCall, netns: string) => {
    if (call !== 'setup' && call !== 'teardown') return;
    const name = `${call} ${netns === A ? 'A' : 'B'}`;
    events.push(`${name} starts`);
    gate(name).start();
    await gate(name).released;
    events.push(`${name} ends`);
  };
  const started = async (name: string) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not start; events: ${events.join(', ')}`)), 5_000);
    });
    try {
      await Promise.race([gate(name).started, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  return { events, started, release: (name: string) => gate(name).release() };
}

describe('TunnelService.reconcile: the pod netns', () => {
  it('present, device up: the device is adopted as it is, the pod stays ready, the service becomes ready', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    expect(r.service.ready).toBe(false);
    await r.service.reconcile();
    expect(r.service.ready).toBe(true);
    expect(r.wireguard.calls).toEqual([`converge ${A}`]);
    expect(r.backend.calls.filter((c) => !c.startsWith('device'))).toEqual([]);
    expect(await phaseOf(r, rec)).toBe('ready');
    expect(r.logged('tunnel adopted')).toBe(true);
  });

  it('present, device gone: the device is re-created from the record', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready', { device: false });
    await r.service.reconcile();
    expect(r.backend.calls).toContain(`create ${rec.device}`);
    expect(r.logged('tunnel re-created')).toBe(true);
    expect(await phaseOf(r, rec)).toBe('ready');
  });

  it('confirmed absent: the data plane goes, record (orphaned) and keys stay', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.netns.set(A, 'absent');
    await r.service.reconcile();
    expect(r.wireguard.calls).toEqual([`rollBack ${A}`]);
    expect(removes(r)).toEqual([`remove ${rec.device}`]);
    expect(await phaseOf(r, rec)).toBe('orphaned');
    expect(await keysKept(r.store, rec)).toBe(true);
    expect((await r.service.status()).map((s) => s.state)).toEqual(['gone']);
  });

  it('could not check (nsenter timed out): the pod is left as it is, logged, and the service is ready', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.netns.set(A, 'timeout');
    await r.service.reconcile();
    expect(r.service.ready).toBe(true);
    expect(r.wireguard.calls).toEqual([]);
    expect(removes(r)).toEqual([]);
    expect(await phaseOf(r, rec)).toBe('ready');
    expect(r.lines().some((l) => l['msg'] === 'reconcile failed; will retry' && String(l['err']).includes('cannot tell whether netns'))).toBe(true);
  });
});

describe('TunnelService.reconcile: the record phase', () => {
  it('setting-up (a setup interrupted by a crash): converged and made ready, stamped by the injected clock', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'setting-up', { device: false });
    r.time.advance(60_000);
    await r.service.reconcile();
    const after = await r.store.read(rec.id);
    expect([after?.phase, after?.updatedAt]).toEqual(['ready', new Date(r.time.now()).toISOString()]);
    expect(r.backend.devicesByName.has(rec.device)).toBe(true);
  });

  it('setting-up whose converge fails: rolled back to inspected, keys kept', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'setting-up');
    r.wireguard.convergeFault = () => new PeerpodError('ENETNS', 'ip link set failed', { op: 'converge' });
    await r.service.reconcile();
    expect(r.wireguard.calls).toEqual([`converge ${A}`, `rollBack ${A}`]);
    expect(await phaseOf(r, rec)).toBe('inspected');
    expect(r.backend.devicesByName.has(rec.device)).toBe(false);
    expect(await keysKept(r.store, rec)).toBe(true);
    expect(r.logged('interrupted setup could not finish: rolling back')).toBe(true);
  });

  it('ready whose converge fails: logged for a retry, nothing removed, still ready', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.wireguard.convergeFault = () => new PeerpodError('ENETNS', 'ip route replace failed', { op: 'converge' });
    await r.service.reconcile();
    expect(r.wireguard.calls).toEqual([`converge ${A}`]);
    expect(removes(r)).toEqual([]);
    expect(await phaseOf(r, rec)).toBe('ready');
    expect(r.logged('reconcile failed; will retry')).toBe(true);
    expect(r.service.ready).toBe(true);
  });

  it('inspected: not converged while its netns is there; orphaned once it is confirmed gone', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'inspected', { device: false });
    await r.service.reconcile();
    expect(r.wireguard.calls).toEqual([]);
    expect(await phaseOf(r, rec)).toBe('inspected');
    r.netns.set(A, 'absent');
    await r.restart().reconcile();
    expect(await phaseOf(r, rec)).toBe('orphaned');
  });

  it('orphaned: left alone, its netns not even looked at', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'orphaned', { device: false });
    await r.service.reconcile();
    expect([r.execCalls, r.wireguard.calls]).toEqual([[], []]);
    expect(await phaseOf(r, rec)).toBe('orphaned');
    expect(await keysKept(r.store, rec)).toBe(true);
  });

  it('tearing-down (a teardown interrupted by a crash): finished, though the netns is there; never re-created', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'tearing-down');
    await r.service.reconcile();
    expect(r.wireguard.calls).toEqual([`teardown ${A}`]);
    expect(r.execCalls).toEqual([]);
    expect(await r.store.read(rec.id)).toBeNull();
    expect(await keysKept(r.store, rec)).toBe(false);
    expect(r.backend.devicesByName.has(rec.device)).toBe(false);
  });

  it('a VXLAN pod whose netns is gone is marked tearing-down, then torn down whole', async () => {
    const r = await rig();
    const wg = await seedReadyPod(r.raw, A);
    const rec: PodRecord = { id: wg.id, netns: A, device: 'pvx0', podIP: wg.podIP, mtu: 1450, podVmIPs: wg.podVmIPs, phase: 'ready', updatedAt: wg.updatedAt, tunnelType: 'vxlan', vni: 555000, port: 4789 };
    await r.raw.write(rec);
    r.netns.set(A, 'absent');
    const seen: (PodPhase | null)[] = [];
    r.vxlan.onCall = async () => void seen.push(await phaseOf(r, rec));
    await r.service.reconcile();
    expect(r.vxlan.calls).toEqual([`teardown ${A}`]);
    expect(seen).toEqual(['tearing-down']);
    expect(await r.store.read(rec.id)).toBeNull();
  });

  it('a corrupt record is moved aside and the other pods are reconciled; the service is ready', async () => {
    const r = await rig();
    const good = await r.seed(A, 'ready', { device: false });
    const bad = podIdOf(B);
    await r.raw.writeKey(bad, 'worker', generateKeyPair().privateKey);
    await writeFile(join(dir, 'state', 'pods', bad, 'record.json'), '{"id": "');
    await r.service.reconcile();
    expect(r.service.ready).toBe(true);
    expect(r.backend.devicesByName.has(good.device)).toBe(true);
    expect(r.logged('a pod record could not be used')).toBe(true);
    expect((await r.service.status()).map((s) => s.state)).toEqual(['connecting', 'corrupt']);
  });

  it('removes the configured tunnels that no setup claimed within a day, by the injected clock', async () => {
    const r = await rig();
    const pending = (id: string, ageMs: number) => ({
      id,
      vmPublicKey: generateKeyPair().publicKey.toBase64(),
      workerPublicKey: generateKeyPair().publicKey.toBase64(),
      vmListenPort: 51900,
      keepalive: 25,
      mtu: 1420,
      createdAt: new Date(r.time.now() - ageMs).toISOString(),
    });
    await r.store.writePending(pending('00000000000a', PENDING_MAX_AGE_MS), { worker: generateKeyPair().privateKey });
    await r.store.writePending(pending('00000000000b', PENDING_MAX_AGE_MS - 1), { worker: generateKeyPair().privateKey });
    await r.store.writePending({ ...pending('00000000000c', 0), createdAt: 'yesterday' }, { worker: generateKeyPair().privateKey });
    await r.service.reconcile();
    expect((await r.store.listPending()).map((p) => p.id)).toEqual(['00000000000b', '00000000000c']);
  });
});

describe('TunnelService.reconcile: devices no record explains', () => {
  it('removes our stray devices only: not foreign ones, nor those of records, corrupt records, or other names', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    const bad = podIdOf(B);
    await r.raw.writeKey(bad, 'worker', generateKeyPair().privateKey);
    await writeFile(join(dir, 'state', 'pods', bad, 'record.json'), 'not json');
    for (const name of ['pwg0123456789ab', 'pwgba9876543210', `pwg${bad}`, 'wg0']) await r.backend.create(name, { mtu: 1420 });
    r.backend.ours.delete('pwgba9876543210'); // another state folder's
    r.backend.calls.length = 0;
    await r.service.reconcile();
    expect(removes(r)).toEqual(['remove pwg0123456789ab']);
    expect(await r.backend.devices()).toEqual([`pwg${bad}`, rec.device, 'pwgba9876543210', 'wg0'].sort());
  });

  it('removes nothing when the device list or the ownership check fails, and is ready', async () => {
    const r = await rig();
    await r.backend.create('pwg0123456789ab', { mtu: 1420 });
    const backend = r.backend;
    const devices = backend.devices.bind(backend);
    backend.devices = () => Promise.reject(new PeerpodError('EBACKEND', 'cannot list the run folder', {}));
    await r.service.reconcile();
    backend.devices = devices;
    backend.owns = () => Promise.reject(new PeerpodError('EBACKEND', 'cannot read the pid file', {}));
    await r.restart().reconcile();
    expect(removes(r)).toEqual([]);
    expect(r.service.ready).toBe(true);
  });

  it('keeps a device set up (through the API) while reconcile ran', async () => {
    const r = await rig();
    await r.seed(A, 'ready');
    let b: WireguardPodRecord | undefined;
    r.wireguard.onCall = async (call, netns) => {
      if (call === 'converge' && netns === A) {
        r.wireguard.onCall = null;
        // Inspected and set up after reconcile listed the pods.
        b = await r.seed(B, 'inspected', { device: false });
        await r.service.setup(await r.setupReq(B, ['203.0.113.11']));
      }
    };
    await r.service.reconcile();
    expect(removes(r)).toEqual([]);
    expect(b !== undefined && r.backend.devicesByName.has(b.device)).toBe(true);
    expect(b !== undefined && (await phaseOf(r, b))).toBe('ready');
  });

  it('stops between pods when the signal aborts, and the service is not ready', async () => {
    const r = await rig();
    await r.seed(A, 'ready');
    await r.seed(B, 'ready');
    await r.backend.create('pwg0123456789ab', { mtu: 1420 });
    const running = new AbortController();
    r.wireguard.onCall = () => running.abort();
    await r.service.reconcile(running.signal);
    expect(r.wireguard.calls).toHaveLength(1);
    expect(removes(r)).toEqual([]);
    expect(r.service.ready).toBe(false);
  });
});

describe('TunnelService health loop', () => {
  it('down (device confirmed absent): re-created from the record, at most once a second', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready', { device: false });
    r.backend.fault = () => new PeerpodError('ENOTFOUND', `no WireGuard device ${rec.device} (ENOENT)`, { iface: rec.device });
    await r.service.tick();
    expect([r.wireguard.calls, r.service.counters.heals]).toEqual([[`converge ${A}`], 1]);
    expect(r.logged('tunnel is down: re-creating it')).toBe(true);
    r.time.advance(999);
    await r.service.tick();
    expect(r.service.counters.heals).toBe(1);
    r.time.advance(1);
    await r.service.tick();
    expect(r.service.counters.heals).toBe(2);
    expect(await phaseOf(r, rec)).toBe('ready');
  });

  it('down with its netns confirmed gone: orphaned, not re-created', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready', { device: false });
    r.netns.set(A, 'absent');
    await r.service.tick();
    expect(r.wireguard.calls).toEqual([`rollBack ${A}`]);
    expect(await phaseOf(r, rec)).toBe('orphaned');
    expect(r.service.counters.heals).toBe(0);
  });

  it('a device error other than ENOTFOUND is not down: no heal, the netns not looked at', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.backend.fault = () => new PeerpodError('EUAPI', `WireGuard device ${rec.device} did not answer within 5000 ms`, { iface: rec.device });
    await r.service.tick();
    expect([r.wireguard.calls, r.execCalls, r.service.counters.heals]).toEqual([[], [], 0]);
    expect(r.logged('health check failed')).toBe(true);
  });

  it('a device without the pod VM peer: ESTATE, logged, nothing changed', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.backend.devicesByName.get(rec.device)!.peers.length = 0;
    await r.service.tick();
    expect(r.wireguard.calls).toEqual([]);
    expect(r.lines().some((l) => l['msg'] === 'health check failed' && String(l['err']).includes('the pod VM peer is missing'))).toBe(true);
  });

  it('connecting: nudged every 250 ms in the fast window after setup, then every 5 s', async () => {
    const r = await rig({ fastNudgeWindowMs: 1_000 });
    await r.seed(A, 'ready');
    const nudges = () => r.wireguard.calls.filter((c) => c.startsWith('nudge')).length;
    const at = async (ms: number) => {
      r.time.advance(ms);
      await r.service.tick();
      return nudges();
    };
    // The first tick makes the pod's track: its fast window starts now.
    expect(await at(0)).toBe(1);
    expect(await at(100)).toBe(1); // within 250 ms (less half a tick of slack)
    expect(await at(50)).toBe(2);
    expect(await at(250)).toBe(3);
    // 1 100 ms: the window is over; the next nudge is due 5 s (less half a tick) after the last, at 400 ms.
    expect(await at(700)).toBe(3);
    expect(await at(4_174)).toBe(3);
    expect(await at(1)).toBe(4);
    expect(await at(4_874)).toBe(4);
    expect(await at(1)).toBe(5);
    expect(r.service.counters.nudges).toBe(5);
  });

  it('stale (last handshake 180 s ago or more) is nudged; up (179 s) is not', async () => {
    const r = await rig();
    const nowSec = Math.floor(r.time.now() / 1000);
    const rec = await r.seed(A, 'ready', { peer: { lastHandshakeSec: nowSec - 179, rxBytes: 10, txBytes: 10 } });
    await r.service.tick();
    expect(r.service.counters.nudges).toBe(0);
    expect((await r.service.status())[0]?.state).toBe('up');
    r.peer(rec).lastHandshakeSec = nowSec - 180;
    await r.service.tick();
    expect(r.service.counters.nudges).toBe(1);
    expect((await r.service.status())[0]?.state).toBe('stale');
  });

  it('idle (nothing moved for idleProbeMs): one keepalive, then none before idleProbeMs more; traffic restarts the count', async () => {
    const r = await rig({ idleProbeMs: 1_000 });
    const rec = await r.seed(A, 'ready', { peer: { lastHandshakeSec: Math.floor(1_000_000 / 1000), rxBytes: 10, txBytes: 10 } });
    const probes = async (ms: number) => {
      r.time.advance(ms);
      await r.service.tick();
      return r.wireguard.calls.filter((c) => c.startsWith('keepalive')).length;
    };
    expect(await probes(0)).toBe(0); // first sight of the counters is activity
    expect(await probes(999)).toBe(0);
    expect(await probes(1)).toBe(1);
    expect(await probes(500)).toBe(1);
    expect(await probes(500)).toBe(2);
    r.peer(rec).txBytes = 20;
    expect(await probes(500)).toBe(2); // traffic: not idle
    expect(await probes(999)).toBe(2);
    expect(await probes(1)).toBe(3);
    expect(r.service.counters.probes).toBe(3);
  });

  it('idleProbeMs 0: an idle tunnel is never probed', async () => {
    const r = await rig({ idleProbeMs: 0 });
    await r.seed(A, 'ready', { peer: { lastHandshakeSec: Math.floor(1_000_000 / 1000), rxBytes: 10, txBytes: 10 } });
    for (let i = 0; i < 5; i++) {
      r.time.advance(1_000);
      await r.service.tick();
    }
    expect(r.service.counters.probes).toBe(0);
  });

  it('unreachable: a fresh handshake after 20 s of silence, the verdict 10 s later; recovers when the pod VM answers', async () => {
    const r = await rig();
    const handshake = () => Math.floor(r.time.now() / 1000);
    const rec = await r.seed(A, 'ready', { peer: { lastHandshakeSec: handshake(), rxBytes: 500, txBytes: 500 } });
    const state = async () => (await r.service.status())[0]?.state;
    await r.service.tick();
    r.time.advance(19_999);
    await r.service.tick();
    expect(r.wireguard.calls).toEqual([]);
    r.time.advance(1);
    await r.service.tick();
    expect(r.wireguard.calls).toEqual([`nudge ${A}`]); // the probe
    Object.assign(r.peer(rec), { rxBytes: 0, txBytes: 148, lastHandshakeSec: 0 }); // re-added, no answer
    r.time.advance(9_999);
    await r.service.tick();
    expect([await state(), r.service.counters.unreachable]).toEqual(['connecting', 0]);
    r.time.advance(1);
    await r.service.tick();
    expect([await state(), r.service.counters.unreachable]).toEqual(['unreachable', 1]);
    expect(r.logged('the pod VM does not answer: unreachable')).toBe(true);
    r.time.advance(5_000);
    await r.service.tick();
    expect(r.service.counters.unreachable).toBe(1); // counted once
    Object.assign(r.peer(rec), { rxBytes: 92, lastHandshakeSec: handshake() });
    await r.service.tick();
    expect(await state()).toBe('up');
    expect(r.logged('the pod VM answers again')).toBe(true);
  });

  it('checks ready WireGuard pods only', async () => {
    const r = await rig();
    for (const [i, phase] of (['inspected', 'setting-up', 'orphaned', 'tearing-down'] as const).entries()) {
      await r.seed(`/run/netns/pwt-svc-${phase}`, phase);
      expect(i).toBeLessThan(4);
    }
    const wg = await seedReadyPod(r.raw, A);
    await r.raw.write({ id: wg.id, netns: A, device: 'pvx0', podIP: wg.podIP, mtu: 1450, podVmIPs: wg.podVmIPs, phase: 'ready', updatedAt: wg.updatedAt, tunnelType: 'vxlan', vni: 555000, port: 4789 });
    await r.service.tick();
    expect([r.backend.calls, r.wireguard.calls, r.execCalls]).toEqual([[], [], []]);
  });

  it('skips a pod busy with a verb this tick, and checks it the next', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    const h = held(r);
    r.wireguard.teardownFault = () => new PeerpodError('ETEARDOWN', 'refused for the test', {});
    const busy = r.service.teardown({ netns: A }).catch((e: unknown) => e);
    await h.started('teardown A');
    await r.service.tick();
    expect(r.backend.calls).toEqual([]);
    h.release('teardown A');
    expect(isPeerpodError(await busy, 'ETEARDOWN')).toBe(true);
    expect(await phaseOf(r, rec)).toBe('tearing-down'); // the mark stays: the teardown is owed
    await r.service.tick();
    expect(r.backend.calls).toEqual([]); // tearing-down is not checked either
  });

  it('never undoes a teardown that ran after the tick listed the pod', async () => {
    const r = await rig();
    await r.seed(A, 'ready', { device: false });
    const b = await r.seed(B, 'ready', { device: false });
    r.wireguard.onCall = async (call, netns) => {
      if (call === 'converge' && netns === A) {
        r.wireguard.onCall = null;
        await r.service.teardown({ netns: B });
      }
    };
    await r.service.tick();
    expect(r.wireguard.calls).toEqual([`converge ${A}`, `teardown ${B}`]);
    expect(await r.store.read(b.id)).toBeNull();
    expect(r.backend.devicesByName.has(b.device)).toBe(false);
  });
});

describe('TunnelService.start: the one AbortSignal', () => {
  it('ticks every tickMs of the injected time, and stops with no sleep left when the signal aborts', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    const devices = () => r.backend.calls.filter((c) => c === `device ${rec.device}`).length;
    const running = new AbortController();
    let slept = r.time.nextSleep();
    const loop = r.service.start(running.signal);
    await slept;
    expect(devices()).toBe(0);
    for (let i = 1; i <= 3; i++) {
      slept = r.time.nextSleep();
      r.time.advance(TICK);
      await slept;
      expect(devices()).toBe(i);
    }
    r.time.advance(TICK - 1);
    await new Promise((res) => setImmediate(res));
    expect(devices()).toBe(3);
    running.abort();
    await loop;
    expect(r.time.sleeping).toBe(0);
    r.time.advance(10 * TICK);
    await r.service.idle();
    expect(devices()).toBe(3);
  });

  it('does not tick at all under a signal already aborted', async () => {
    const r = await rig();
    await r.seed(A, 'ready');
    const running = new AbortController();
    running.abort();
    await r.service.start(running.signal);
    expect([r.backend.calls, r.time.sleeping]).toEqual([[], 0]);
  });
});

describe('TunnelService: one pod at a time', () => {
  it('two calls for the same pod run one after the other', async () => {
    const r = await rig();
    await r.seed(A, 'inspected', { device: false });
    const req = await r.setupReq(A);
    const h = held(r);
    const first = r.service.setup(req);
    const second = r.service.teardown({ netns: A });
    await h.started('setup A');
    h.release('setup A');
    await h.started('teardown A');
    expect(h.events).toEqual(['setup A starts', 'setup A ends', 'teardown A starts']);
    h.release('teardown A');
    await Promise.all([first, second]);
    expect(h.events).toEqual(['setup A starts', 'setup A ends', 'teardown A starts', 'teardown A ends']);
    expect(await r.store.read(podIdOf(A))).toBeNull();
  });

  it('a failed call does not block the next one on the same pod', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'inspected', { device: false });
    r.wireguard.convergeFault = () => new PeerpodError('ENETNS', 'no such link', {});
    const req = await r.setupReq(A);
    const failed = r.service.setup(req).catch((e: unknown) => e);
    const next = r.service.teardown({ netns: A });
    expect(isPeerpodError(await failed, 'ESETUP')).toBe(true);
    await next;
    expect(await r.store.read(rec.id)).toBeNull();
  });

  it('calls for different pods run at the same time', async () => {
    const r = await rig();
    await r.seed(A, 'inspected', { device: false });
    await r.seed(B, 'inspected', { device: false });
    const [reqA, reqB] = [await r.setupReq(A), await r.setupReq(B)];
    const h = held(r);
    const a = r.service.setup(reqA);
    const b = r.service.setup(reqB);
    await Promise.all([h.started('setup A'), h.started('setup B')]);
    expect(h.events.sort()).toEqual(['setup A starts', 'setup B starts']);
    h.release('setup B');
    expect((await b).phase).toBe('ready'); // while A is still held
    h.release('setup A');
    expect((await a).phase).toBe('ready');
    expect(h.events.slice(2)).toEqual(['setup B ends', 'setup A ends']);
  });
});

describe('TunnelService teardown: tearing-down', () => {
  it('marks the record tearing-down before anything is removed', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.time.advance(5_000);
    const seen: (PodRecord | null)[] = [];
    r.wireguard.onCall = async () => void seen.push(await r.store.read(rec.id));
    await r.service.teardown({ netns: A });
    expect(seen.map((s) => [s?.phase, s?.updatedAt])).toEqual([['tearing-down', new Date(r.time.now()).toISOString()]]);
    expect(r.backend.devicesByName.has(rec.device)).toBe(false);
    expect(await keysKept(r.store, rec)).toBe(false);
  });

  it('a crash mid-teardown resumes the teardown on restart, never the pod', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'ready');
    r.wireguard.teardownFault = () => new PeerpodError('ETEARDOWN', 'the process was killed here', {});
    await expect(r.service.teardown({ netns: A })).rejects.toThrow(/killed here/);
    expect(await phaseOf(r, rec)).toBe('tearing-down');
    r.wireguard.teardownFault = null;
    const restarted = r.restart();
    await restarted.tick();
    expect(r.wireguard.calls).toEqual([`teardown ${A}`]); // the health loop did not re-create it
    await restarted.reconcile();
    expect(r.wireguard.calls).toEqual([`teardown ${A}`, `teardown ${A}`]);
    expect(await r.store.read(rec.id)).toBeNull();
  });

  it('a setup for a netns whose teardown is unfinished finishes the teardown first', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'tearing-down');
    const err = await r.service.setup({ netns: A, podVmIPs: ['203.0.113.10'], podNetwork: podNetworkOf() }).catch((e: unknown) => e);
    expect(r.wireguard.calls).toEqual([`teardown ${A}`, `setup ${A}`]);
    expect(isPeerpodError(err, 'ESTATE')).toBe(true); // its keys went with the teardown
    expect(await r.store.read(rec.id)).toBeNull();
  });

  it('an inspect for a netns whose teardown is unfinished finishes the teardown first', async () => {
    const r = await rig();
    const rec = await r.seed(A, 'tearing-down');
    const seedKey = await r.store.readKey(rec.id, 'worker');
    const pn = await r.service.inspect({ netns: A });
    expect(r.wireguard.calls).toEqual([`teardown ${A}`, `inspect ${A}`]);
    expect(await phaseOf(r, rec)).toBe('inspected'); // a fresh record, not the half torn-down one
    expect(pn.tunnel.type === 'wireguard' && seedKey !== null && !pn.tunnel.peerPublicKey.equals(seedKey.publicKey())).toBe(true);
  });
});
