// The WorkerTunnelDriver contract (src/tunnel/driver.ts): one list of cases for a worker tunnel
// driver as its callers (the sidecar's TunnelService, wgctl) rely on it, and, for the WireGuard
// type, the upkeep the sidecar asks for (WireguardUpkeep in src/sidecar/service.ts). A case acts
// through the driver and looks only at what the driver returns and what it keeps in the pod store,
// never at the pod netns or the kernel, so the same cases hold for the real drivers
// (WireguardWorkerDriver, VxlanWorkerDriver; in the unit tier on FakeNetns, FakeBackend and
// MemoryPodStore) and for FakeWorkerDriver (test/fakes/worker-driver.ts). What one side does not
// do is declared in GAPS with the reason, and its runner lists the case as skipped; what the fake
// does not model at all (so no case asks it) is in NOT_MODELLED. A case for one tunnel type only
// says so in `only`. Building the driver, its world and the two pod netns is the runner's job.
import assert from 'node:assert/strict';
import type { TunnelType } from '../../src/podnetwork/types.js';
import type { WireguardUpkeep } from '../../src/sidecar/service.js';
import { podIdOf, type PodRecord, type PodStore, type WireguardPodRecord } from '../../src/state/store.js';
import type { WorkerSetupRequest, WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import { podNetworkOf } from '../support/pod-network.js';
import { rejects, type ContractCase as Case } from './contract.js';

export type WorkerDriverImpl = 'real' | 'fake';

export interface WorkerDriverContractContext {
  type: TunnelType;
  driver: WorkerTunnelDriver;
  /** The same driver's WireGuard upkeep; present for the wireguard type only. */
  upkeep?: WireguardUpkeep;
  /** The pod store the driver keeps its records and keys in. */
  store: PodStore;
  /** A pod netns that is there, never inspected: eth0 with 198.18.1.21/24 (podNetworkOf's pod), MTU 1500. */
  pod: string;
  /** A second pod netns like `pod`, that no case inspects. */
  otherPod: string;
  /** A netns path where there is none. */
  missing: string;
  /** Make the data plane step of the next setup fail once (the kernel refusing a command). */
  failNextSetup(): void;
  /** Delete a pod netns, as the CRI does when a pod goes. */
  deleteNetns(path: string): void;
}

export interface WorkerDriverContractCase extends Case<WorkerDriverContractContext> {
  /** The tunnel type this case is about; absent for every type. */
  only?: TunnelType;
}

/** Cases one side does not run, with the reason. */
export const GAPS: Record<WorkerDriverImpl, Record<string, string>> = {
  real: {},
  fake: {
    "configure before the pod netns is known, then setup naming it: the configured tunnel becomes the pod's record, ready":
      "CAA's Configure (keys made before the netns is known, kept as a pending tunnel that setup adopts by its peer-public-key) " +
      'is the real driver\'s alone; the sidecar passes it through untouched, so the fake refuses configure (EUNSUPPORTED) ' +
      'rather than model pending tunnels. The real driver runs this case here and in sidecar-faults.',
  },
};

/** What the real drivers do that FakeWorkerDriver does not model, and why no case asks for it. */
export const NOT_MODELLED: Record<string, string> = {
  'the data plane (device moved into the pod netns, routes, rules, proxy neighbours, MSS clamp, NOTRACK, tc mirrors)':
    'no case looks below the driver; worker-drivers.test.ts holds the real drivers to it on FakeNetns, the lab tier on the kernel',
  'reading the pod netns (interface, addresses, routes, neighbours, MTU, dual stack)':
    'the fake reads every pod as podNetworkOf\'s (198.18.1.21/24 on eth0, MTU 1500, no routes)',
  'the tunnel MTU from the underlay, and the IPv6 minimum MTU':
    'the fake gives 1500 − 80; tunnel-section.ts is the one rule, tested on its own',
  'pod VM IP checks (empty, not an address, zones, dedicated interface, VXLAN needs IPv4)':
    'the fake takes the pod VM IPs as given; worker-drivers.test.ts and the sidecar tests check the real refusals',
  'VNIs used by VXLAN links that no record explains': 'the fake has no links; it allocates from the records alone',
  'a crash in the middle of setup, and a rollback that fails too':
    'process death is the real lifecycle\'s business (worker-drivers.test.ts crashes after each step)',
};

const POD_VM_IPS = ['203.0.113.10'] as const;

async function inspected(ctx: WorkerDriverContractContext): Promise<WorkerSetupRequest> {
  return { netns: ctx.pod, podVmIPs: [...POD_VM_IPS], podNetwork: await ctx.driver.inspect(ctx.pod) };
}

async function recordOf(ctx: WorkerDriverContractContext, netns = ctx.pod): Promise<PodRecord | null> {
  return ctx.store.read(podIdOf(netns));
}

function upkeepOf(ctx: WorkerDriverContractContext): WireguardUpkeep {
  assert.ok(ctx.upkeep !== undefined, 'a wireguard case needs the upkeep');
  return ctx.upkeep;
}

async function readyWireguard(ctx: WorkerDriverContractContext): Promise<WireguardPodRecord> {
  const rec = await ctx.driver.setup(await inspected(ctx));
  assert.equal(rec.tunnelType, 'wireguard');
  return rec;
}

/** A ready WireGuard pod whose data plane the sidecar removed (its netns looked gone): record and keys kept. */
async function orphanedWireguard(ctx: WorkerDriverContractContext): Promise<{ upkeep: WireguardUpkeep; rec: WireguardPodRecord }> {
  const upkeep = upkeepOf(ctx);
  const rec = await readyWireguard(ctx);
  await upkeep.rollBack(rec, 'orphaned');
  return { upkeep, rec };
}

/** A record as another write of the same state leaves it: all but its time. */
function timeless(r: PodRecord | null): Omit<PodRecord, 'updatedAt'> | null {
  if (r === null) return null;
  const { updatedAt: _t, ...rest } = r;
  return rest;
}

export const WORKER_DRIVER_CONTRACT: readonly WorkerDriverContractCase[] = [
  {
    name: "inspect gives a pod-network of the driver's type for the pod's interface, and records the pod as inspected",
    async run(ctx) {
      const pn = await ctx.driver.inspect(ctx.pod);
      assert.equal(pn.tunnel.type, ctx.type);
      assert.equal(pn.interfaceName, 'eth0');
      assert.deepEqual(pn.podIp, { address: '198.18.1.21', prefixLength: 24, family: 4 });
      const rec = await recordOf(ctx);
      assert.ok(rec !== null, 'inspect writes a record');
      assert.deepEqual([rec.tunnelType, rec.phase, rec.netns, rec.podIP, rec.podVmIPs], [ctx.type, 'inspected', ctx.pod, '198.18.1.21', []]);
      assert.deepEqual((await ctx.store.list()).map((r) => r.netns), [ctx.pod]);
      if (pn.tunnel.type === 'wireguard' && rec.tunnelType === 'wireguard') {
        const worker = await ctx.store.readKey(rec.id, 'worker');
        assert.ok(worker !== null, "the worker's private key is kept in the pod store");
        assert.ok(worker.publicKey().equals(pn.tunnel.peerPublicKey), 'the pod VM is given the public half of the kept worker key');
        assert.equal(rec.workerPublicKey, pn.tunnel.peerPublicKey.toBase64());
        assert.ok(pn.tunnel.privateKey !== undefined, "the pod VM's private key goes into the pod-network (apf.json)");
        assert.equal(rec.vmPublicKey, pn.tunnel.privateKey.publicKey().toBase64(), 'the record keeps only its public half');
      }
      if (pn.tunnel.type === 'vxlan' && rec.tunnelType === 'vxlan') {
        assert.equal(pn.tunnel.id, rec.vni, 'the VNI given out is the one kept');
        assert.ok(pn.workerNodeIp !== undefined, "the worker's address is the pod VM's VXLAN remote");
      }
    },
  },
  {
    name: 'inspect twice before setup gives the same worker key (VNI), so a retried CreateVM stays valid',
    async run(ctx) {
      const first = await ctx.driver.inspect(ctx.pod);
      const again = await ctx.driver.inspect(ctx.pod);
      if (first.tunnel.type === 'wireguard' && again.tunnel.type === 'wireguard') {
        assert.ok(first.tunnel.peerPublicKey.equals(again.tunnel.peerPublicKey), 'the same worker public key');
      } else if (first.tunnel.type === 'vxlan' && again.tunnel.type === 'vxlan') {
        assert.equal(again.tunnel.id, first.tunnel.id, 'the same VNI');
      } else {
        assert.fail(`tunnel types ${first.tunnel.type} and ${again.tunnel.type}`);
      }
      assert.equal((await recordOf(ctx))?.phase, 'inspected');
      assert.equal((await ctx.store.list()).length, 1, 'one record for the pod');
      const rec = await ctx.driver.setup({ netns: ctx.pod, podVmIPs: [...POD_VM_IPS], podNetwork: again });
      assert.equal(rec.phase, 'ready', 'the retried CreateVM\'s pod-network sets the tunnel up');
    },
  },
  {
    name: 'inspect of a netns that does not exist is refused: ENOTFOUND naming the netns, nothing recorded',
    async run(ctx) {
      const e = await rejects(ctx.driver.inspect(ctx.missing), 'ENOTFOUND', 'inspect of a missing netns');
      assert.equal(e.context.field, 'netns');
      assert.equal(e.context.netns, ctx.missing);
      assert.deepEqual(await ctx.store.list(), []);
    },
  },
  {
    name: 'setup after inspect leaves the record ready, stored as returned, with the pod VM IPs',
    async run(ctx) {
      const req = await inspected(ctx);
      const before = await recordOf(ctx);
      const rec = await ctx.driver.setup(req);
      assert.equal(rec.phase, 'ready');
      assert.deepEqual(await recordOf(ctx), rec, 'the returned record is the stored one');
      assert.deepEqual([rec.tunnelType, rec.netns, rec.podVmIPs, rec.device], [ctx.type, ctx.pod, [...POD_VM_IPS], before?.device]);
    },
  },
  {
    name: 'setup again with the same request is idempotent: still ready, the same record but for its time',
    async run(ctx) {
      const req = await inspected(ctx);
      const first = await ctx.driver.setup(req);
      const again = await ctx.driver.setup(req);
      assert.equal(again.phase, 'ready');
      assert.deepEqual(timeless(again), timeless(first));
      assert.deepEqual(timeless(await recordOf(ctx)), timeless(first));
      assert.equal((await ctx.store.list()).length, 1);
    },
  },
  {
    name: 'setup for a pod netns never inspected is refused: ESTATE naming the netns, nothing recorded for it',
    async run(ctx) {
      const req = await inspected(ctx);
      const e = await rejects(ctx.driver.setup({ ...req, netns: ctx.otherPod }), 'ESTATE', 'setup before inspect');
      assert.deepEqual([e.context.op, e.context.netns, e.context.field], ['setup', ctx.otherPod, 'netns']);
      assert.match(e.message, /run inspect/, 'the error says what to run first');
      assert.equal(await recordOf(ctx, ctx.otherPod), null);
      assert.equal((await recordOf(ctx))?.phase, 'inspected', 'the inspected pod is untouched');
    },
  },
  {
    name: 'setup for a pod netns that does not exist is refused: ENOTFOUND naming the netns',
    async run(ctx) {
      const req = await inspected(ctx);
      const e = await rejects(ctx.driver.setup({ ...req, netns: ctx.missing }), 'ENOTFOUND', 'setup of a missing netns');
      assert.deepEqual([e.context.netns, e.context.field], [ctx.missing, 'netns']);
      assert.equal(await recordOf(ctx, ctx.missing), null);
    },
  },
  {
    name: 'a pod-network of the other tunnel type is refused naming pod-network.tunnel-type, and nothing changes',
    async run(ctx) {
      const req = await inspected(ctx);
      const before = await recordOf(ctx);
      const tunnel = ctx.type === 'wireguard' ? ({ type: 'vxlan', port: 4789, id: 555000 } as const) : podNetworkOf().tunnel;
      const e = await rejects(ctx.driver.setup({ ...req, podNetwork: { ...req.podNetwork, tunnel } }), 'EINVAL', 'another tunnel type');
      assert.equal(e.context.field, 'pod-network.tunnel-type');
      assert.deepEqual(await recordOf(ctx), before);
    },
  },
  {
    name: 'a pod-network from another inspect is refused naming the field that differs, and nothing changes',
    async run(ctx) {
      const req = await inspected(ctx);
      if (req.podNetwork.tunnel.type === 'wireguard') {
        // The pod was torn down and inspected afresh: a new worker key; the old pod-network is stale.
        await ctx.driver.teardown({ netns: ctx.pod });
        const fresh = await ctx.driver.inspect(ctx.pod);
        assert.ok(fresh.tunnel.type === 'wireguard' && !fresh.tunnel.peerPublicKey.equals(req.podNetwork.tunnel.peerPublicKey), 'a new worker key after teardown');
        const before = await recordOf(ctx);
        const e = await rejects(ctx.driver.setup(req), 'EINVAL', 'a stale worker key');
        assert.equal(e.context.field, 'pod-network.wireguard.peer-public-key');
        assert.deepEqual(await recordOf(ctx), before);
      } else if (req.podNetwork.tunnel.type === 'vxlan') {
        const before = await recordOf(ctx);
        const other = { ...req.podNetwork.tunnel, id: (req.podNetwork.tunnel.id ?? 0) + 1 };
        const e = await rejects(ctx.driver.setup({ ...req, podNetwork: { ...req.podNetwork, tunnel: other } }), 'EINVAL', 'another VNI');
        assert.equal(e.context.field, 'pod-network.vxlan-id');
        assert.deepEqual(await recordOf(ctx), before);
      }
    },
  },
  {
    name: 'a setup that fails is rolled back: ESETUP naming the netns, the record back to inspected with its keys (VNI), and the next setup succeeds',
    async run(ctx) {
      const req = await inspected(ctx);
      const before = await recordOf(ctx);
      ctx.failNextSetup();
      const e = await rejects(ctx.driver.setup(req), 'ESETUP', 'a failing setup');
      assert.equal(e.message, `tunnel setup for pod netns ${ctx.pod} failed and was rolled back`);
      assert.deepEqual([e.context.op, e.context.netns], ['setup', ctx.pod]);
      assert.ok(e.cause !== undefined, 'the first error rides along as the cause');
      const after = await recordOf(ctx);
      assert.equal(after?.phase, 'inspected');
      if (after?.tunnelType === 'wireguard' && req.podNetwork.tunnel.type === 'wireguard') {
        const worker = await ctx.store.readKey(after.id, 'worker');
        assert.ok(worker?.publicKey().equals(req.podNetwork.tunnel.peerPublicKey), 'the worker key is kept');
        assert.equal(after.workerPublicKey, req.podNetwork.tunnel.peerPublicKey.toBase64());
      }
      if (after?.tunnelType === 'vxlan' && before?.tunnelType === 'vxlan') assert.equal(after.vni, before.vni, 'the VNI is kept');
      assert.equal((await ctx.driver.setup(req)).phase, 'ready', 'the same request sets it up afterwards');
    },
  },
  {
    name: 'teardown removes the record and keys; again, and for a netns never seen, it succeeds',
    async run(ctx) {
      const rec = await ctx.driver.setup(await inspected(ctx));
      await ctx.driver.teardown({ netns: ctx.pod });
      assert.equal(await recordOf(ctx), null);
      assert.equal(await ctx.store.readKey(rec.id, 'worker'), null);
      assert.equal(await ctx.store.readKey(rec.id, 'psk', 'preshared key'), null);
      await ctx.driver.teardown({ netns: ctx.pod });
      await ctx.driver.teardown({ netns: ctx.otherPod });
      await ctx.driver.teardown({ netns: ctx.missing });
      assert.deepEqual(await ctx.store.list(), []);
    },
  },
  {
    name: 'teardown of a pod whose netns is already gone removes its record',
    async run(ctx) {
      await ctx.driver.setup(await inspected(ctx));
      ctx.deleteNetns(ctx.pod);
      await ctx.driver.teardown({ netns: ctx.pod });
      assert.equal(await recordOf(ctx), null);
    },
  },
  {
    name: 'inspect of a pod whose tunnel is ready is refused: ESTATE naming the netns, the tunnel kept',
    only: 'wireguard',
    async run(ctx) {
      const rec = await readyWireguard(ctx);
      const e = await rejects(ctx.driver.inspect(ctx.pod), 'ESTATE', 'inspect of a ready pod');
      assert.deepEqual([e.context.netns, e.context.field], [ctx.pod, 'netns']);
      assert.match(e.message, /tear it down first/);
      assert.deepEqual(await recordOf(ctx), rec);
      assert.deepEqual(await upkeepOf(ctx).converge(rec), { created: false }, 'the device is still there');
    },
  },
  {
    name: 'inspect of a pod whose tunnel is ready gives the same VNI and leaves it ready (a retried CreateVM)',
    only: 'vxlan',
    async run(ctx) {
      const req = await inspected(ctx);
      const rec = await ctx.driver.setup(req);
      const again = await ctx.driver.inspect(ctx.pod);
      assert.deepEqual(again.tunnel, req.podNetwork.tunnel);
      assert.deepEqual(timeless(await recordOf(ctx)), timeless(rec));
    },
  },
  {
    name: 'converge of a ready pod keeps its device (created: false) and writes no record',
    only: 'wireguard',
    async run(ctx) {
      const rec = await readyWireguard(ctx);
      assert.deepEqual(await upkeepOf(ctx).converge(rec), { created: false });
      assert.deepEqual(await recordOf(ctx), rec);
    },
  },
  {
    name: 'rollBack to orphaned keeps the record (orphaned) and keys; converge re-creates the device (created: true), then keeps it',
    only: 'wireguard',
    async run(ctx) {
      const { upkeep, rec } = await orphanedWireguard(ctx);
      const orphaned = await recordOf(ctx);
      assert.deepEqual(timeless(orphaned), timeless({ ...rec, phase: 'orphaned' }));
      assert.ok((await ctx.store.readKey(rec.id, 'worker')) !== null, 'worker key kept');
      assert.ok((await ctx.store.readKey(rec.id, 'psk', 'preshared key')) !== null, 'preshared key kept');
      assert.deepEqual(await upkeep.converge(rec), { created: true });
      assert.deepEqual(await upkeep.converge(rec), { created: false });
      assert.deepEqual(await recordOf(ctx), orphaned, 'converge writes no record: the phase is the caller\'s');
    },
  },
  {
    name: 'rollBack to inspected (the default), then setup brings the pod back to ready',
    only: 'wireguard',
    async run(ctx) {
      const req = await inspected(ctx);
      const rec = (await ctx.driver.setup(req)) as WireguardPodRecord;
      await upkeepOf(ctx).rollBack(rec);
      assert.equal((await recordOf(ctx))?.phase, 'inspected');
      assert.equal((await ctx.driver.setup(req)).phase, 'ready');
    },
  },
  {
    name: 'converge without the worker key in the pod store is refused: ESTATE naming the netns',
    only: 'wireguard',
    async run(ctx) {
      const { upkeep, rec } = await orphanedWireguard(ctx);
      await ctx.store.removeKey(rec.id, 'worker');
      const e = await rejects(upkeep.converge(rec), 'ESTATE', 'converge without a worker key');
      assert.equal(e.context.netns, ctx.pod);
    },
  },
  {
    name: 'nudgeHandshake and sendKeepalive on a ready pod keep its device and write no record',
    only: 'wireguard',
    async run(ctx) {
      const upkeep = upkeepOf(ctx);
      const rec = await readyWireguard(ctx);
      await upkeep.nudgeHandshake(rec);
      await upkeep.sendKeepalive(rec);
      assert.deepEqual(await recordOf(ctx), rec);
      assert.deepEqual(await upkeep.converge(rec), { created: false }, 'the device is still there');
    },
  },
  {
    name: 'nudgeHandshake and sendKeepalive of a pod without a device are refused with ENOTFOUND, and make none',
    only: 'wireguard',
    async run(ctx) {
      const { upkeep, rec } = await orphanedWireguard(ctx);
      await rejects(upkeep.nudgeHandshake(rec), 'ENOTFOUND', 'nudge without a device');
      await rejects(upkeep.sendKeepalive(rec), 'ENOTFOUND', 'keepalive without a device');
      assert.deepEqual(await upkeep.converge(rec), { created: true }, 'neither made a device');
    },
  },
  {
    name: "configure before the pod netns is known, then setup naming it: the configured tunnel becomes the pod's record, ready",
    only: 'wireguard',
    async run(ctx) {
      const section = await upkeepOf(ctx).configure({ podMtu: 1500, podIP: '198.18.1.21' });
      assert.equal(await recordOf(ctx), null, 'no record before the netns is named');
      const rec = await ctx.driver.setup({ netns: ctx.pod, podVmIPs: [...POD_VM_IPS], podNetwork: { ...podNetworkOf(), tunnel: section } });
      assert.equal(rec.phase, 'ready');
      assert.ok(rec.tunnelType === 'wireguard');
      assert.equal(rec.workerPublicKey, section.peerPublicKey.toBase64());
      assert.ok((await ctx.store.readKey(rec.id, 'worker'))?.publicKey().equals(section.peerPublicKey), 'the configured worker key is the pod\'s');
    },
  },
];
