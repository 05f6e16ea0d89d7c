// The lifecycle every worker tunnel driver shares, around its per-type hooks:
//
//   setup:    the request's tunnel section (hook: checkRequest) ─ pod netns exists? ─ the pod's
//             record (hook: find) ─ of this type? ─ the request checked against it (hook: check) ─
//             pod interface exists? ─ state folder (hook: beforeRecord) ─ record written in phase
//             setting-up (step "recorded") ─ data plane (hook: build) ─ record written ready
//             build fails: the data plane is removed (hook: removeNetwork), the record goes back to
//             inspected, and the first error is the one thrown (a cleanup error rides along, never
//             replaces it)
//   teardown: data plane removed wherever setup got to (hook: removeNetwork; already gone is
//             success), then the state folder. A corrupt record does not block it.
//
// What a tunnel is and how its data plane is built, inspected and removed is the drivers' business
// (wireguard/worker.ts, vxlan/worker.ts); the state diagram of a pod's phases is drawn in
// ../state/phase.ts, which every record write is checked against.
import { PeerpodError, isPeerpodError } from '../errors.js';
import type { NetnsFactory } from '../netns/netns.js';
import type { PodNetwork, TunnelType } from '../podnetwork/types.js';
import { podIdOf, type PodRecord, type PodStore } from '../state/store.js';
import type { WorkerSetupRequest, WorkerTeardownRequest, WorkerTunnelDriver } from './driver.js';

/** What every worker driver is given. */
export interface WorkerLifecycleDeps<Step extends string> {
  netns: NetnsFactory;
  store: PodStore;
  /** Clock, for records. */
  now?: () => Date;
  /** Called after each setup step; crash tests use it to stop the process at a chosen point. */
  onStep?: (step: Step | 'recorded') => void;
}

/** Where removeNetwork is called from: a setup that failed, or a teardown. */
export type RemovalCause = 'rollback' | 'teardown';

export abstract class WorkerLifecycle<R extends PodRecord, Step extends string>
  implements WorkerTunnelDriver {
  abstract readonly type: R['tunnelType'] & TunnelType;
  protected readonly netns: NetnsFactory;
  protected readonly store: PodStore;
  readonly #now: (() => Date) | undefined;
  readonly #onStep: ((step: Step | 'recorded') => void) | undefined;

  constructor(deps: WorkerLifecycleDeps<Step>) {
    this.netns = deps.netns;
    this.store = deps.store;
    this.#now = deps.now;
    this.#onStep = deps.onStep;
  }

  /** Now, as records say it. */
  protected now(): string {
    return (this.#now?.() ?? new Date()).toISOString();
  }

  protected step(s: Step | 'recorded'): void {
    this.#onStep?.(s);
  }

  abstract inspect(netns: string): Promise<PodNetwork>;

  /** The device name of a pod that has no (readable) record. */
  protected abstract deviceNameOf(podId: string): string;

  /** Hook: refuse a request whose pod-network is not for this tunnel type, before anything is read. */
  protected abstract checkRequest(req: WorkerSetupRequest): void;

  /** Hook: the pod's record for a setup, or null when there is none to set up. */
  protected async find(req: WorkerSetupRequest): Promise<PodRecord | null> {
    return this.store.read(podIdOf(req.netns));
  }

  /** The message when find() has nothing: what to run first. */
  protected abstract readonly noRecordHint: string;

  /**
   * Hook: check the request against the record and return the record to set up (the skeleton
   * sets its phase and time). Nothing on the machine or in the state folder changes here.
   */
  protected abstract check(req: WorkerSetupRequest, found: R): Promise<R>;

  /** Hook: state-folder writes that must precede the record (keys). */
  protected async beforeRecord(_next: R, _req: WorkerSetupRequest): Promise<void> {}

  /** Hook: bring the data plane to `next`, calling step() after each step. */
  protected abstract build(next: R, found: R, req: WorkerSetupRequest): Promise<void>;

  /**
   * Hook: remove the pod's data plane wherever setup got to, and what is held for its netns.
   * `record` is null when there is none (or it is unreadable); already gone is success.
   */
  protected abstract removeNetwork(netns: string, device: string, record: PodRecord | null, cause: RemovalCause): Promise<void>;

  async setup(req: WorkerSetupRequest): Promise<R> {
    const ctx = { op: 'setup', netns: req.netns };
    this.checkRequest(req);
    if (!(await this.netns.at(req.netns).exists())) {
      throw new PeerpodError('ENOTFOUND', `pod netns ${req.netns} does not exist`, { ...ctx, field: 'netns' });
    }
    const found = await this.find(req);
    if (found === null) {
      throw new PeerpodError('ESTATE', `no tunnel state for pod netns ${req.netns}${this.noRecordHint}`, { ...ctx, field: 'netns' });
    }
    if (found.tunnelType !== this.type) {
      throw new PeerpodError('ESTATE', `pod netns ${req.netns} was inspected for tunnel type ${found.tunnelType}, not ${this.type}`, ctx);
    }
    const checked = await this.check(req, found as R);
    await this.netns.at(req.netns).requireLink(req.podNetwork.interfaceName, 'setup');
    const next: R = { ...checked, phase: 'setting-up', updatedAt: this.now() };
    await this.beforeRecord(next, req);
    await this.store.write(next);
    this.step('recorded');
    try {
      await this.build(next, found as R, req);
    } catch (e) {
      const err = new PeerpodError('ESETUP', `tunnel setup for pod netns ${req.netns} failed and was rolled back`, {
        ...ctx,
        iface: found.device,
      }, e);
      try {
        await this.removeNetwork(req.netns, found.device, next, 'rollback');
        await this.store.write({ ...next, phase: 'inspected', updatedAt: this.now() });
      } catch (cleanup) {
        err.cleanupErrors.push(cleanup);
      }
      throw err;
    }
    const ready: R = { ...next, phase: 'ready', updatedAt: this.now() };
    await this.store.write(ready);
    return ready;
  }

  async teardown(req: WorkerTeardownRequest): Promise<void> {
    const id = podIdOf(req.netns);
    const record = await this.store.read(id).catch((e: unknown) => {
      if (isPeerpodError(e, 'ESTATE')) return null; // a corrupt record must not block the teardown
      throw e;
    });
    const device = record?.device ?? this.deviceNameOf(id);
    try {
      await this.removeNetwork(req.netns, device, record, 'teardown');
    } catch (e) {
      throw new PeerpodError('ETEARDOWN', `tunnel teardown for pod netns ${req.netns} failed`, {
        op: 'teardown',
        netns: req.netns,
        iface: device,
      }, e);
    }
    await this.store.remove(id);
  }
}
