// The sidecar's core: CAA's three verbs for any number of pods at once (one at a time per pod),
// reconcile on start, and a health loop that keeps every WireGuard tunnel moving.
//
// Per tunnel, the health loop (every tick) reads the device and:
//   down        (device or wireguard-go gone)      → converge from the record: re-create, re-plumb
//   connecting  (no handshake yet) / stale (>180 s) → nudge a fresh handshake: every 250 ms during
//               the fast window after setup (the VM may be booting), then every 5 s
//   up, idle    (no rx/tx for idleProbeMs)          → one keepalive, so a NAT rebinding heals
//                                                     within about a second in both directions
//   nothing received for 20 s                       → a fresh handshake; none within 10 s: the
//                                                     pod VM is unreachable (../tunnel/reachability.ts)
// Reconcile on start: a pod whose netns is confirmed gone loses its data plane (its record and
// keys stay, as "orphaned", until CAA's teardown); interrupted setups are converged (or rolled
// back if that fails); interrupted teardowns are finished; working devices are adopted as they
// are (same ifindex, learned endpoints untouched); wireguard-go devices of ours with no record are
// removed. "Could not check" is never "gone": a netns or device that does not answer in time is
// left alone. The phases and their transitions are ../state/phase.ts's; every record write here
// goes through its check.
//
// Time comes only from the injected clock and sleep (./time.ts). The daemon's one AbortSignal
// ends the health loop and a reconcile under way (between pods); a verb in flight is never cut.
// On stop the loops end and the tunnels stay: the data plane outlives the control plane.
import type { Logger } from 'pino';
import { PeerpodError, describeError, isPeerpodError } from '../errors.js';
import type { NetnsFactory } from '../netns/netns.js';
import type { PodNetwork, TunnelType } from '../podnetwork/types.js';
import { checkedPodStore } from '../state/phase.js';
import { podIdOf, type PodRecord, type PodStore, type WireguardPodRecord } from '../state/store.js';
import type { WorkerSetupRequest } from '../tunnel/driver.js';
import { REJECT_AFTER_SECONDS } from '../tunnel/health.js';
import { freshReach, reachStep, type ReachTrack } from '../tunnel/reachability.js';
import { workerDriver, type TunnelRegistry } from '../tunnel/registry.js';
import { problemRows, tunnelStatus, type TunnelStatus } from '../tunnel/status.js';
import { workerDeviceName } from '../tunnel/wireguard/names.js';
import type { ConfigureRequest, WireguardWorkerDriver } from '../tunnel/wireguard/worker.js';
import type { WireguardTunnel } from '../podnetwork/types.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { PublicKey } from '../wireguard/keys.js';
import { realClock, realSleep, type Clock, type Sleep } from './time.js';

/** What the service asks of the WireGuard worker driver beyond the three verbs. */
export type WireguardUpkeep = Pick<WireguardWorkerDriver, 'configure' | 'converge' | 'rollBack' | 'nudgeHandshake' | 'sendKeepalive'>;

export interface TunnelServiceDeps {
  registry: TunnelRegistry;
  /** The wireguard worker driver, for converge and nudges (the registry builds the same kind). */
  wireguard: WireguardUpkeep;
  backend: WireGuardBackend;
  netns: NetnsFactory;
  store: PodStore;
  log: Logger;
  defaultTunnelType: TunnelType;
  tickMs: number;
  idleProbeMs: number;
  fastNudgeWindowMs: number;
  /** Milliseconds since the epoch: the only source of time here (records' updatedAt included). */
  clock?: Clock;
  /** The wait between health ticks. */
  sleep?: Sleep;
}

interface Track {
  setupAt: number;
  rx: number;
  tx: number;
  activityAt: number;
  probeAt: number;
  nudgeAt: number;
  healAt: number;
  reach: ReachTrack;
}

export interface ServiceCounters {
  nudges: number;
  probes: number;
  heals: number;
  /** Tunnels found unreachable (each time one became so). */
  unreachable: number;
  setupSeconds: number[];
}

const FAST_NUDGE_MS = 250;
/** A configured tunnel that no setup claimed after this long belonged to a CreateVM that failed. */
export const PENDING_MAX_AGE_MS = 24 * 3600_000;
const SLOW_NUDGE_MS = 5_000;
const HEAL_EVERY_MS = 1_000;

export class TunnelService {
  readonly #d: TunnelServiceDeps;
  /** deps.store, with every record write checked against the state machine. */
  readonly #store: PodStore;
  readonly #clock: Clock;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #tracks = new Map<string, Track>();
  readonly counters: ServiceCounters = { nudges: 0, probes: 0, heals: 0, unreachable: 0, setupSeconds: [] };
  #ready = false;
  #ticking = false;
  #tickRun: Promise<void> = Promise.resolve();

  constructor(deps: TunnelServiceDeps) {
    this.#d = deps;
    this.#store = checkedPodStore(deps.store);
    this.#clock = deps.clock ?? realClock;
  }

  get ready(): boolean {
    return this.#ready;
  }

  private now(): number {
    return this.#clock();
  }

  /** A record's updatedAt, from the injected clock. */
  private stamp(): string {
    return new Date(this.now()).toISOString();
  }

  /** Run `fn` after every earlier operation on the same pod. */
  private async serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }

  async inspect(req: { netns: string; tunnelType?: string; pod?: string }): Promise<PodNetwork> {
    const id = podIdOf(req.netns);
    return this.serial(id, async () => {
      const driver = workerDriver(this.#d.registry, req.tunnelType ?? this.#d.defaultTunnelType, 'tunnelType');
      await this.finishTeardown(id);
      const pn = await driver.inspect(req.netns);
      if (req.pod !== undefined) {
        const rec = await this.#store.read(id);
        if (rec !== null) await this.#store.write({ ...rec, pod: req.pod });
      }
      this.#d.log.info({ netns: req.netns, pod: req.pod, tunnelType: driver.type }, 'inspected');
      return pn;
    });
  }

  /** CAA's Configure: keys and our section for a pod that has no netns path yet (worker.ts). */
  async configure(req: ConfigureRequest): Promise<WireguardTunnel> {
    const section = await this.#d.wireguard.configure(req);
    this.#d.log.info({ pod: req.pod, podIP: req.podIP, mtu: section.mtu }, 'configured');
    return section;
  }

  async setup(req: WorkerSetupRequest): Promise<PodRecord> {
    const id = podIdOf(req.netns);
    return this.serial(id, async () => {
      const started = this.now();
      await this.finishTeardown(id);
      const rec = await workerDriver(this.#d.registry, req.podNetwork.tunnel.type).setup(req);
      const seconds = (this.now() - started) / 1000;
      this.counters.setupSeconds.push(seconds);
      this.#tracks.set(id, this.freshTrack());
      this.#d.log.info({ netns: req.netns, pod: rec.pod, device: rec.device, seconds }, 'tunnel set up');
      return rec;
    });
  }

  async teardown(req: { netns: string }): Promise<void> {
    const id = podIdOf(req.netns);
    await this.serial(id, async () => {
      const rec = await this.#store.read(id).catch(() => null); // a corrupt record must not block the teardown
      if (rec !== null) await this.markTearingDown(rec);
      await workerDriver(this.#d.registry, rec?.tunnelType ?? this.#d.defaultTunnelType).teardown(req);
      this.#tracks.delete(id);
      this.#d.log.info({ netns: req.netns, pod: rec?.pod, device: rec?.device }, 'tunnel torn down');
    });
  }

  /** Before anything is removed: a crash from here on resumes the teardown, never the pod. */
  private async markTearingDown(rec: PodRecord): Promise<void> {
    if (rec.phase !== 'tearing-down') await this.#store.write({ ...rec, phase: 'tearing-down', updatedAt: this.stamp() });
  }

  /** A teardown that a crash interrupted is finished before the netns is used again. */
  private async finishTeardown(id: string): Promise<void> {
    const rec = await this.#store.read(id).catch(() => null);
    if (rec?.phase !== 'tearing-down') return;
    this.#d.log.info({ netns: rec.netns, pod: rec.pod, device: rec.device }, 'finishing an interrupted teardown first');
    await workerDriver(this.#d.registry, rec.tunnelType).teardown({ netns: rec.netns });
    this.#tracks.delete(id);
  }

  async status(): Promise<(TunnelStatus & { pod: string })[]> {
    const records = await this.#store.list();
    const rows = await tunnelStatus(records, this.#d, Math.floor(this.now() / 1000));
    // The device cannot tell that its peer stopped answering; the health loop can.
    const unreachable = (i: number): boolean => this.#tracks.get(records[i]?.id ?? '')?.reach.unreachable === true;
    const served = rows.map((r, i) => ({
      pod: records[i]?.pod ?? '',
      ...r,
      ...(unreachable(i) && r.state !== 'down' ? { state: 'unreachable' as const } : {}),
    }));
    return [...served, ...problemRows(await this.#store.problems())];
  }

  private freshTrack(): Track {
    const t = this.now();
    return { setupAt: t, rx: -1, tx: -1, activityAt: t, probeAt: 0, nudgeAt: 0, healAt: 0, reach: freshReach(t) };
  }

  /**
   * Reconcile every pod we know, and remove the devices that no record explains and that are ours:
   * the backend made them with this run folder (another sidecar's, a test's or a wgctl's with
   * another run folder are not ours to remove). An abort of `signal` stops it between pods, and
   * the service stays not ready.
   */
  async reconcile(signal?: AbortSignal): Promise<void> {
    const records = await this.#store.list();
    for (const listed of records) {
      if (signal?.aborted === true) return;
      // Read again under the pod's lock: the API serves while reconcile runs.
      await this.serial(listed.id, async () => {
        const rec = await this.#store.read(listed.id);
        if (rec !== null) await this.reconcileOne(rec);
      }).catch((e: unknown) =>
        this.#d.log.error({ netns: listed.netns, pod: listed.pod, device: listed.device, err: describeError(e) }, 'reconcile failed; will retry'),
      );
    }
    if (signal?.aborted === true) return;
    await this.prunePending();
    const known = new Set(records.map((r) => r.device));
    // A pod whose record was moved aside keeps its tunnel: the record is lost, the pod may not be.
    for (const p of await this.#store.problems()) known.add(workerDeviceName(p.id));
    // Set up meanwhile (the API serves during reconcile): not stray either.
    for (const r of await this.#store.list()) known.add(r.device);
    for (const name of await this.#d.backend.devices().catch(() => [] as string[])) {
      if (name.startsWith('pwg') && !known.has(name) && (await this.#d.backend.owns(name).catch(() => false))) {
        this.#d.log.warn({ device: name }, 'removing a device of ours that no pod record explains');
        await this.#d.backend.remove(name).catch((e: unknown) => this.#d.log.error({ device: name, err: describeError(e) }, 'remove failed'));
      }
    }
    this.#ready = true;
  }

  /** Remove configured tunnels that no setup claimed within PENDING_MAX_AGE_MS: no device has their keys. */
  private async prunePending(): Promise<void> {
    const now = this.now();
    for (const p of await this.#store.listPending().catch(() => [])) {
      const created = Date.parse(p.createdAt);
      if (Number.isNaN(created) || now - created < PENDING_MAX_AGE_MS) continue;
      this.#d.log.info({ pod: p.pod, podIP: p.podIP, createdAt: p.createdAt }, 'removing a configured tunnel that no setup claimed');
      await this.#store.removePending(p.id).catch((e: unknown) => this.#d.log.error({ err: describeError(e) }, 'remove failed'));
    }
  }

  private async reconcileOne(rec: PodRecord): Promise<void> {
    const log = { netns: rec.netns, pod: rec.pod, device: rec.device };
    if (rec.phase === 'tearing-down') {
      await this.finishTeardown(rec.id);
      return;
    }
    if (rec.phase === 'orphaned') return;
    if (!(await this.#d.netns.at(rec.netns).exists())) {
      await this.orphan(rec);
      return;
    }
    if (rec.tunnelType !== 'wireguard' || rec.phase === 'inspected') return;
    try {
      const { created } = await this.#d.wireguard.converge(rec);
      if (rec.phase === 'setting-up') await this.#store.write({ ...rec, phase: 'ready', updatedAt: this.stamp() });
      this.#d.log.info({ ...log, created }, created ? 'tunnel re-created' : 'tunnel adopted');
    } catch (e) {
      if (rec.phase === 'setting-up') {
        this.#d.log.warn({ ...log, err: describeError(e) }, 'interrupted setup could not finish: rolling back');
        await this.#d.wireguard.rollBack(rec);
        return;
      }
      throw e;
    }
    this.#tracks.set(rec.id, this.freshTrack());
  }

  /**
   * The pod netns is confirmed gone: remove the data plane, keep the record (phase orphaned) and
   * the keys until an explicit teardown. VXLAN keeps no keys, so its pod is torn down whole.
   */
  private async orphan(rec: PodRecord): Promise<void> {
    const log = { netns: rec.netns, pod: rec.pod, device: rec.device };
    this.#tracks.delete(rec.id);
    if (rec.tunnelType !== 'wireguard') {
      this.#d.log.info(log, 'pod netns is gone: removing its tunnel');
      await this.markTearingDown(rec);
      await workerDriver(this.#d.registry, rec.tunnelType).teardown({ netns: rec.netns });
      return;
    }
    this.#d.log.info(log, 'pod netns is gone: removing its device; the record and keys stay until teardown');
    await this.#d.wireguard.rollBack(rec, 'orphaned');
  }

  /**
   * Run the health loop, one tick every tickMs (waited on the injected sleep), until `signal` (the
   * daemon's one AbortSignal) aborts; the promise resolves then, after the tick under way.
   */
  start(signal: AbortSignal): Promise<void> {
    const loop = async (): Promise<void> => {
      while (!signal.aborted) {
        try {
          await (this.#d.sleep ?? realSleep)(this.#d.tickMs, signal);
        } catch {
          return; // aborted: the sleep's timer is gone with it
        }
        if (signal.aborted) return;
        this.#tickRun = this.tick(signal).catch((e: unknown) => this.#d.log.error({ err: describeError(e) }, 'health tick failed'));
        await this.#tickRun;
      }
    };
    return loop();
  }

  /** Resolves when the health check under way (if any) and every verb in flight have finished. */
  async idle(): Promise<void> {
    await this.#tickRun;
    await Promise.all([...this.#locks.values()]);
  }

  /**
   * One pass of the health loop over the ready WireGuard pods. Pods busy with a verb are skipped
   * this time; an abort of `signal` ends the pass between pods.
   */
  async tick(signal?: AbortSignal): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      for (const listed of await this.#store.list()) {
        if (signal?.aborted === true) return;
        if (listed.tunnelType !== 'wireguard' || listed.phase !== 'ready' || this.#locks.has(listed.id)) continue;
        await this.serial(listed.id, async () => {
          // Read again under the lock: a teardown that ran since the list must not be undone here.
          const rec = await this.#store.read(listed.id);
          if (rec?.tunnelType === 'wireguard' && rec.phase === 'ready') await this.checkOne(rec);
        }).catch((e: unknown) =>
          this.#d.log.warn({ netns: listed.netns, pod: listed.pod, device: listed.device, err: describeError(e) }, 'health check failed'),
        );
      }
    } finally {
      this.#ticking = false;
    }
  }

  private async checkOne(rec: WireguardPodRecord): Promise<void> {
    const now = this.now();
    let track = this.#tracks.get(rec.id);
    if (track === undefined) {
      track = this.freshTrack();
      this.#tracks.set(rec.id, track);
    }
    const log = { netns: rec.netns, pod: rec.pod, device: rec.device };
    // Only a device confirmed absent (no socket, nobody listening) is down; a device that did not
    // answer in time is busy, not gone, and the error ends this check.
    const dev = await this.#d.backend.device(rec.device, { netns: rec.netns }).catch((e: unknown) => {
      if (isPeerpodError(e, 'ENOTFOUND')) return null;
      throw e;
    });
    // A live wireguard-go means a live TUN: the pod netns is looked at only when it is not.
    if (dev === null) {
      if (now - track.healAt < HEAL_EVERY_MS) return;
      track.healAt = now;
      if (!(await this.#d.netns.at(rec.netns).exists())) {
        await this.orphan(rec);
        return;
      }
      this.counters.heals++;
      this.#d.log.warn(log, 'tunnel is down: re-creating it');
      await this.#d.wireguard.converge(rec);
      track.nudgeAt = 0;
      return;
    }
    const vmKey = PublicKey.fromBase64(rec.vmPublicKey);
    const peer = dev.peers.find((p) => p.publicKey.equals(vmKey));
    if (peer === undefined) throw new PeerpodError('ESTATE', 'the pod VM peer is missing from the device', { ...log, op: 'health' });
    const reach = reachStep(track.reach, peer, now);
    if (reach === 'probe') {
      this.#d.log.debug(log, 'nothing received for 20 s: starting a fresh handshake to see whether the pod VM answers');
      track.nudgeAt = now;
      await this.#d.wireguard.nudgeHandshake(rec);
      return;
    }
    if (reach === 'unreachable') {
      this.counters.unreachable++;
      this.#d.log.warn({ ...log, endpoint: peer.endpoint }, 'the pod VM does not answer: unreachable');
    } else if (reach === 'reachable') {
      this.#d.log.info(log, 'the pod VM answers again');
    }
    const age = Math.floor(now / 1000) - peer.lastHandshakeSec;
    if (peer.lastHandshakeSec === 0 || age >= REJECT_AFTER_SECONDS) {
      const every = now - track.setupAt < this.#d.fastNudgeWindowMs ? FAST_NUDGE_MS : SLOW_NUDGE_MS;
      // Half a tick of slack: the loop's own run time must not stretch 250 ms into two ticks.
      if (now - track.nudgeAt >= every - this.#d.tickMs / 2) {
        track.nudgeAt = now;
        this.counters.nudges++;
        await this.#d.wireguard.nudgeHandshake(rec);
      }
      return;
    }
    if (peer.rxBytes !== track.rx || peer.txBytes !== track.tx) {
      track.rx = peer.rxBytes;
      track.tx = peer.txBytes;
      track.activityAt = now;
      return;
    }
    if (this.#d.idleProbeMs > 0 && now - track.activityAt >= this.#d.idleProbeMs && now - track.probeAt >= this.#d.idleProbeMs) {
      track.probeAt = now;
      this.counters.probes++;
      await this.#d.wireguard.sendKeepalive(rec);
    }
  }
}
