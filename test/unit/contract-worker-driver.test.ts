// The WorkerTunnelDriver contract (test/contract/worker-driver.contract.ts) in the unit tier,
// without root, against the real WireguardWorkerDriver and VxlanWorkerDriver on the fakes of their
// seams (FakeNetns, FakeBackend over the same netns world, MemoryPodStore; the world is
// ../support/pod-world.ts's), and against FakeWorkerDriver for both types. A case one side does not
// run (GAPS) is listed as skipped with the reason; a case about one tunnel type (`only`) is not a
// case of the other type's drivers at all.
import { describe, it } from '@jest/globals';
import { PeerpodError } from '../../src/errors.js';
import type { TunnelType } from '../../src/podnetwork/types.js';
import { VxlanWorkerDriver } from '../../src/tunnel/vxlan/worker.js';
import { WireguardWorkerDriver } from '../../src/tunnel/wireguard/worker.js';
import { GAPS, WORKER_DRIVER_CONTRACT, type WorkerDriverContractContext, type WorkerDriverImpl } from '../contract/worker-driver.contract.js';
import { FakeBackend, netnsWorldLinks } from '../fakes/backend.js';
import { MemoryPodStore } from '../fakes/pod-store.js';
import { FakeWorkerDriver } from '../fakes/worker-driver.js';
import { addPodNetns, workerHost } from '../support/pod-world.js';

const POD = '/run/netns/wdc-pod';
const OTHER = '/run/netns/wdc-other';
const MISSING = '/run/netns/wdc-none';
const now = (): Date => new Date('2026-11-29T12:00:00Z');

/** What makes the real drivers' data plane step fail: the kernel refusing their first batch in the pod netns. */
const FIRST_BATCH: Record<TunnelType, RegExp> = { wireguard: /^ip -4 -batch/, vxlan: /^tc -batch/ };

async function realContext(type: TunnelType): Promise<WorkerDriverContractContext> {
  const world = await workerHost();
  await addPodNetns(world, POD);
  await addPodNetns(world, OTHER);
  const store = new MemoryPodStore();
  const deps = { netns: world.factory(), store, now };
  const common = {
    type,
    store,
    pod: POD,
    otherPod: OTHER,
    missing: MISSING,
    failNextSetup: () => world.failNext({ netns: POD, match: FIRST_BATCH[type] }),
    deleteNetns: (path: string) => world.deleteNetns(path),
  };
  if (type === 'vxlan') return { ...common, driver: new VxlanWorkerDriver(deps, { minId: 555000, netnsDir: null }) };
  const driver = new WireguardWorkerDriver({ ...deps, backend: new FakeBackend({ kind: 'kernel', links: netnsWorldLinks(world) }) });
  return { ...common, driver, upkeep: driver };
}

async function fakeContext(type: TunnelType): Promise<WorkerDriverContractContext> {
  const pods = new Set([POD, OTHER]);
  const store = new MemoryPodStore();
  const driver = new FakeWorkerDriver(type, { backend: new FakeBackend(), store, now, netnsExists: (p) => pods.has(p) });
  return {
    type,
    driver,
    ...(type === 'wireguard' ? { upkeep: driver } : {}),
    store,
    pod: POD,
    otherPod: OTHER,
    missing: MISSING,
    failNextSetup: () => {
      driver.setupFault = () => {
        driver.setupFault = null;
        return new PeerpodError('ENETNS', 'injected fault', { op: 'setup', netns: POD });
      };
    },
    deleteNetns: (path) => void pods.delete(path),
  };
}

const runs: [string, WorkerDriverImpl, TunnelType, (t: TunnelType) => Promise<WorkerDriverContractContext>][] = [
  ['WireguardWorkerDriver (FakeNetns, FakeBackend, MemoryPodStore)', 'real', 'wireguard', realContext],
  ['VxlanWorkerDriver (FakeNetns, MemoryPodStore)', 'real', 'vxlan', realContext],
  ['FakeWorkerDriver (wireguard)', 'fake', 'wireguard', fakeContext],
  ['FakeWorkerDriver (vxlan)', 'fake', 'vxlan', fakeContext],
];

describe.each(runs)('WorkerTunnelDriver contract: %s', (_name, impl, type, make) => {
  for (const c of WORKER_DRIVER_CONTRACT) {
    const gap = GAPS[impl][c.name];
    if (c.only !== undefined && c.only !== type) continue;
    if (gap !== undefined) it.skip(`${c.name} (gap: ${gap})`, () => undefined);
    else it(c.name, async () => c.run(await make(type)));
  }
});
