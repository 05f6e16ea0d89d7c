// The sidecar's core: CAA's three verbs for any number of pods at once (one at a time per pod),
// reconcile on start, and a health loop that keeps every WireGuard tunnel moving.
//
// Per tunnel, the health loop (every tick) reads the device and:
//   down        (device or wireguard-go gone)      → converge from the record: re-create, re-plumb
//   connecting  (no handshake yet) / stale (>180 s) → nudge a fresh handshake: every 250 ms during
//               the fast window after setup (the VM may be booting), then every 5 s
//   up, idle    (no rx/tx for idleProbeMs)          → one keepalive, so a NAT rebinding heals
//                                                     within about a second in both directions
// Reconcile on start: records whose pod netns is gone are torn down; interrupted setups are
// converged (or rolled back if that fails); working devices are adopted as they are (same
// ifindex, learned endpoints untouched); wireguard-go devices of ours with no record are removed.
// On stop the loops end and the tunnels stay: the data plane outlives the control plane.
import type { Logger } from 'pino';
import { PeerpodError, describeError } from '../errors.js';
import type { NetnsFactory } from '../netns/netns.js';
import type { PodNetwork, TunnelType } from '../podnetwork/types.js';
import { podIdOf, type PodRecord, type PodStore, type WireguardPodRecord } from '../state/store.js';
import type { WorkerSetupRequest } from '../tunnel/driver.js';
import { REJECT_AFTER_SECONDS } from '../tunnel/health.js';
import { workerDriver, type TunnelRegistry } from '../tunnel/registry.js';
import { tunnelStatus, type TunnelStatus } from '../tunnel/status.js';
import type { ConfigureRequest, WireguardWorkerDriver } from '../tunnel/wireguard/worker.js';
import type { WireguardTunnel } from '../podnetwork/types.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { PublicKey } from '../wireguard/keys.js';

export interface TunnelServiceDeps {
  registry: TunnelRegistry;
  /** The wireguard worker driver, for converge and nudges (the registry builds the same kind). */
  wireguard: WireguardWorkerDriver;
  backend: WireGuardBackend;
  netns: NetnsFactory;
  store: PodStore;
  log: Logger;
  defaultTunnelType: TunnelType;
  tickMs: number;
  idleProbeMs: number;
  fastNudgeWindowMs: number;
  /** Milliseconds; injectable for tests. */
  clock?: () => number;
}

interface Track {
  setupAt: number;
  rx: number;
  tx: number;
  activityAt: number;
  probeAt: number;
  nudgeAt: number;
  healAt: number;
}

export interface ServiceCounters {
  nudges: number;
  probes: number;
  heals: number;
  setupSeconds: number[];
}

const FAST_NUDGE_MS = 250;
/** A configured tunnel that no setup claimed after this long belonged to a CreateVM that failed. */
export const PENDING_MAX_AGE_MS = 24 * 3600_000;
const SLOW_NUDGE_MS = 5_000;
const HEAL_EVERY_MS = 1_000;

export class TunnelService {
  readonly #d: TunnelServiceDeps;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #tracks = new Map<string, Track>();
  readonly counters: ServiceCounters = { nudges: 0, probes: 0, heals: 0, setupSeconds: [] };
  #ready = false;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  constructor(deps: TunnelServiceDeps) {
    this.#d = deps;
  }

  get ready(): boolean {
    return this.#ready;
  }

  private now(): number {
    return this.#d.clock?.() ?? Date.now();
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
      const pn = await driver.inspect(req.netns);
      if (req.pod !== undefined) {
        const rec = await this.#d.store.read(id);
        if (rec !== null) await this.#d.store.write({ ...rec, pod: req.pod });
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
      const rec = await this.#d.store.read(id).catch(() => null);
      if (rec !== null) await this.#d.store.write({ ...rec, phase: 'tearing-down' });
      await workerDriver(this.#d.registry, rec?.tunnelType ?? this.#d.defaultTunnelType).teardown(req);
      this.#tracks.delete(id);
      this.#d.log.info({ netns: req.netns, pod: rec?.pod, device: rec?.device }, 'tunnel torn down');
    });
  }

  async status(): Promise<(TunnelStatus & { pod: string })[]> {
    const records = await this.#d.store.list();
    const rows = await tunnelStatus(records, this.#d, Math.floor(this.now() / 1000));
    return rows.map((r, i) => ({ pod: records[i]?.pod ?? '', ...r }));
  }

  private freshTrack(): Track {
    const t = this.now();
    return { setupAt: t, rx: -1, tx: -1, activityAt: t, probeAt: 0, nudgeAt: 0, healAt: 0 };
  }

  /** Reconcile every pod we know, and remove our devices that no record explains. */
  async reconcile(): Promise<void> {
    const records = await this.#d.store.list();
    for (const rec of records) {
      await this.serial(rec.id, () => this.reconcileOne(rec)).catch((e: unknown) =>
        this.#d.log.error({ netns: rec.netns, pod: rec.pod, device: rec.device, err: describeError(e) }, 'reconcile failed; will retry'),
      );
    }
    await this.prunePending();
    const known = new Set(records.map((r) => r.device));
    for (const name of await this.#d.backend.devices().catch(() => [] as string[])) {
      if (name.startsWith('pwg') && !known.has(name)) {
        this.#d.log.warn({ device: name }, 'removing a device of ours that no pod record explains');
        await this.#d.backend.remove(name).catch((e: unknown) => this.#d.log.error({ device: name, err: describeError(e) }, 'remove failed'));
      }
    }
    this.#ready = true;
  }

  /** Remove configured tunnels that no setup claimed within PENDING_MAX_AGE_MS: no device has their keys. */
  private async prunePending(): Promise<void> {
    const now = this.now();
    for (const p of await this.#d.store.listPending().catch(() => [])) {
      const created = Date.parse(p.createdAt);
      if (Number.isNaN(created) || now - created < PENDING_MAX_AGE_MS) continue;
      this.#d.log.info({ pod: p.pod, podIP: p.podIP, createdAt: p.createdAt }, 'removing a configured tunnel that no setup claimed');
      await this.#d.store.removePending(p.id).catch((e: unknown) => this.#d.log.error({ err: describeError(e) }, 'remove failed'));
    }
  }

  private async reconcileOne(rec: PodRecord): Promise<void> {
    const log = { netns: rec.netns, pod: rec.pod, device: rec.device };
    if (!(await this.#d.netns.at(rec.netns).exists())) {
      this.#d.log.info(log, 'pod netns is gone: removing its tunnel');
      await workerDriver(this.#d.registry, rec.tunnelType).teardown({ netns: rec.netns });
      this.#tracks.delete(rec.id);
      return;
    }
    if (rec.phase === 'tearing-down') {
      await workerDriver(this.#d.registry, rec.tunnelType).teardown({ netns: rec.netns });
      return;
    }
    if (rec.tunnelType !== 'wireguard' || rec.phase === 'inspected') return;
    try {
      const { created } = await this.#d.wireguard.converge(rec);
      if (rec.phase === 'setting-up') await this.#d.store.write({ ...rec, phase: 'ready', updatedAt: new Date().toISOString() });
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

  start(): void {
    const loop = (): void => {
      this.#timer = setTimeout(() => {
        void this.tick().finally(() => {
          if (this.#timer !== undefined) loop();
        });
      }, this.#d.tickMs);
    };
    loop();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One pass of the health loop. Pods busy with a verb are skipped this time. */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      for (const rec of await this.#d.store.list()) {
        if (rec.tunnelType !== 'wireguard' || rec.phase !== 'ready' || this.#locks.has(rec.id)) continue;
        await this.serial(rec.id, () => this.checkOne(rec)).catch((e: unknown) =>
          this.#d.log.warn({ netns: rec.netns, pod: rec.pod, device: rec.device, err: describeError(e) }, 'health check failed'),
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
    const dev = await this.#d.backend.device(rec.device, { netns: rec.netns }).catch(() => null);
    // A live wireguard-go means a live TUN: the pod netns is looked at only when it is not.
    if (dev === null) {
      if (now - track.healAt < HEAL_EVERY_MS) return;
      track.healAt = now;
      if (!(await this.#d.netns.at(rec.netns).exists())) {
        this.#d.log.info(log, 'pod netns is gone: removing its tunnel');
        await this.#d.wireguard.teardown({ netns: rec.netns });
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
