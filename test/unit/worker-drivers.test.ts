// The two worker drivers through their shared lifecycle (src/tunnel/worker-lifecycle.ts), without
// root: an in-memory netns world (FakeNetns), a WireGuard backend whose devices are links in that
// world (FakeBackend over netnsWorldLinks: born in the host netns, moved by `ip link set … netns`,
// gone with their link), and an in-memory pod store. The backend plays the kernel one (its links are
// "wireguard" links, reached only where they are); wireguard-go's "tun" links are the lab's. Setup, a re-run, a crash after each step and the re-run that heals it, the
// rollback (and a rollback that fails too: the first error stays first), teardown (twice, without
// a netns, with a corrupt record), and the preamble's refusals.
// The world is ../support/pod-world.ts's: the host's underlay, one pod netns /run/netns/cni-<n>.
import { beforeEach, describe, expect, it } from '@jest/globals';
import { PeerpodError } from '../../src/errors.js';
import type { WorkerSetupRequest } from '../../src/tunnel/driver.js';
import { VxlanWorkerDriver, VXLAN_SETUP_STEPS } from '../../src/tunnel/vxlan/worker.js';
import { NOTRACK_CHAINS } from '../../src/tunnel/vxlan/notrack.js';
import { SETUP_STEPS, WireguardWorkerDriver, type DeviceChangeEvent, type SetupStep } from '../../src/tunnel/wireguard/worker.js';
import { POD_ROUTE_TABLE } from '../../src/tunnel/wireguard/worker-plumbing.js';
import { podIdOf, type PodRecord } from '../../src/state/store.js';
import type { Device } from '../../src/wireguard/config.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import { FakeBackend, netnsWorldLinks } from '../fakes/backend.js';
import { FakeNetnsWorld } from '../fakes/netns.js';
import { MemoryPodStore } from '../fakes/pod-store.js';
import { caught } from '../support/errors.js';
import { addPodNetns, workerHost } from '../support/pod-world.js';

let counter = 0;

interface Lab {
  world: FakeNetnsWorld;
  store: MemoryPodStore;
  backend: FakeBackend;
  pod: string;
  steps: string[];
}

/** A host with a default route and one pod netns with eth0; `v6` gives the pod an IPv6 address too. */
async function lab(opts: { v6?: boolean } = {}): Promise<Lab> {
  const world = await workerHost();
  const pod = `/run/netns/cni-${++counter}`;
  await addPodNetns(world, pod, opts);
  return { world, store: new MemoryPodStore(), backend: new FakeBackend({ kind: 'kernel', links: netnsWorldLinks(world) }), pod, steps: [] };
}

/** The device as the backend holds it, wherever it is. */
function deviceOf(l: Lab, name: string): Device {
  const d = l.backend.devicesByName.get(name);
  if (d === undefined) throw new Error(`no device ${name}`);
  return d;
}

function wireguardDriver(l: Lab, onStep?: (s: SetupStep) => void): WireguardWorkerDriver {
  return new WireguardWorkerDriver({
    backend: l.backend,
    netns: l.world.factory(),
    store: l.store,
    now: () => new Date('2026-11-29T12:00:00Z'),
    onStep: (s) => {
      l.steps.push(s);
      onStep?.(s);
    },
  });
}

async function inspectedRequest(l: Lab, driver: WireguardWorkerDriver | VxlanWorkerDriver, podVmIPs = ['203.0.113.10']): Promise<WorkerSetupRequest> {
  return { netns: l.pod, podVmIPs, podNetwork: await driver.inspect(l.pod) };
}

/** What the tunnel left in the pod netns and the host, for comparing two runs. */
async function plumbing(l: Lab): Promise<Record<string, unknown>> {
  const ns = l.world.at(l.pod);
  return {
    podLinks: (await ns.links()).map((x) => `${x.ifindex} ${x.ifname} ${x.kind ?? ''} ${x.flags.includes('UP') ? 'UP' : ''}`),
    hostLinks: (await l.world.host.links()).map((x) => `${x.ifindex} ${x.ifname} ${x.kind ?? ''}`),
    rules4: await ns.rules(4),
    rules6: await ns.rules(6),
    table4: await ns.routes({ family: 4, table: POD_ROUTE_TABLE }),
    table6: await ns.routes({ family: 6, table: POD_ROUTE_TABLE }),
    proxies: await ns.neighbours({ proxy: true }),
    mangle4: await ns.iptables(['-t', 'mangle', '-S'], 'list'),
    mangle6: await ns.iptables(['-t', 'mangle', '-S'], 'list', undefined, 6),
  };
}

/** A pod netns with nothing of a tunnel in it: eth0 alone, the local rule back at 0, no marks. */
async function expectClean(l: Lab, device: string): Promise<void> {
  const ns = l.world.at(l.pod);
  expect((await ns.links()).map((x) => x.ifname).sort()).toEqual(['cni0', 'eth0', 'lo']);
  expect((await l.world.host.links()).map((x) => x.ifname)).not.toContain(device);
  expect((await ns.rules(4)).map((r) => r.priority)).toEqual([0, 32766, 32767]);
  expect(await ns.routes({ table: POD_ROUTE_TABLE })).toEqual([]);
  expect(await ns.neighbours({ proxy: true })).toEqual([]);
  expect((await ns.iptables(['-t', 'mangle', '-S'], 'list')).split('\n').filter((x) => x.startsWith('-A'))).toEqual([]);
  expect(l.backend.devicesByName.has(device)).toBe(false);
}

describe('WireguardWorkerDriver (fakes, no root)', () => {
  let l: Lab;
  beforeEach(async () => {
    l = await lab();
  });

  it('sets up a pod: device born in the host netns, configured, moved, routed; the record ready', async () => {
    const driver = wireguardDriver(l);
    const req = await inspectedRequest(l, driver);
    const rec = (await driver.setup(req));
    expect(rec).toMatchObject({ phase: 'ready', podVmIPs: ['203.0.113.10'], podIP: '198.18.1.21', updatedAt: '2026-11-29T12:00:00.000Z' });
    expect(await l.store.read(rec.id)).toEqual(rec);
    expect(l.steps).toEqual(SETUP_STEPS);
    expect(l.backend.calls.filter((c) => c.startsWith('create'))).toEqual([`create ${rec.device}`]);
    expect(l.backend.links.mtu(rec.device)).toBe(1420);
    expect(l.backend.links.locate(rec.device)).toBe(l.pod);
    const dev = deviceOf(l, rec.device);
    expect(dev.privateKey?.publicKey().toBase64()).toBe(rec.workerPublicKey);
    expect(dev.peers).toHaveLength(1);
    expect(dev.peers[0]).toMatchObject({ endpoint: '203.0.113.10:51900', allowedIPs: ['198.18.1.21/32'], persistentKeepalive: 25 });
    expect(dev.peers[0]?.publicKey.equals(PublicKey.fromBase64(rec.vmPublicKey))).toBe(true);
    expect(dev.peers[0]?.presharedKey).not.toBeNull();
    const ns = l.world.at(l.pod);
    expect((await ns.rules(4)).map((r) => [r.priority, r.table])).toEqual([[90, POD_ROUTE_TABLE], [100, 'local'], [32766, 'main'], [32767, 'default']]);
    expect(await ns.neighbours({ proxy: true })).toMatchObject([{ dst: '198.18.1.21', dev: 'eth0' }]);
    expect(await ns.iptables(['-t', 'mangle', '-S', 'FORWARD'], 'list')).toContain(`-o ${rec.device} -p tcp`);
    expect(await ns.readSysctl(`net.ipv6.conf.${rec.device}.disable_ipv6`)).toBe('1');
  });

  it('re-runs setup without touching a working device, and keeps an endpoint learned through NAT', async () => {
    const driver = wireguardDriver(l);
    const req = await inspectedRequest(l, driver);
    const rec = await driver.setup(req);
    const learned = '198.51.100.7:40000';
    l.backend.devicesByName.get(rec.device)!.peers[0]!.endpoint = learned;
    const before = await plumbing(l);
    const calls = l.backend.calls.length;
    await driver.setup(req);
    expect(await plumbing(l)).toEqual(before); // same ifindex, same rules, nothing doubled
    expect(l.backend.calls.slice(calls).filter((c) => !c.startsWith('device'))).toEqual([]);
    expect(deviceOf(l, rec.device).peers[0]?.endpoint).toBe(learned);
  });

  it('rewrites the endpoint when CAA gives new pod VM IPs', async () => {
    const driver = wireguardDriver(l);
    const req = await inspectedRequest(l, driver);
    const rec = await driver.setup(req);
    l.backend.devicesByName.get(rec.device)!.peers[0]!.endpoint = '198.51.100.7:40000';
    await driver.setup({ ...req, podVmIPs: ['203.0.113.20'] });
    expect(deviceOf(l, rec.device).peers[0]?.endpoint).toBe('203.0.113.20:51900');
    expect((await l.store.read(rec.id))?.podVmIPs).toEqual(['203.0.113.20']);
  });

  it('tells onDeviceChange why it rewrote a device that differed, naming no key; a fresh setup and a clean re-run are no change', async () => {
    const changes: DeviceChangeEvent[] = [];
    const driver = new WireguardWorkerDriver({
      backend: l.backend,
      netns: l.world.factory(),
      store: l.store,
      onDeviceChange: (c) => changes.push(c),
    });
    const req = await inspectedRequest(l, driver);
    const rec = await driver.setup(req);
    await driver.setup(req);
    expect(changes).toEqual([]);
    const peer = deviceOf(l, rec.device).peers[0]!;
    peer.persistentKeepalive = 0; // someone changed the live device by hand
    await driver.setup({ ...req, podVmIPs: ['203.0.113.20'] });
    expect(changes).toEqual([
      { netns: l.pod, device: rec.device, reasons: expect.arrayContaining([expect.stringMatching(/endpoint rewritten: CAA gave new pod VM IPs/), expect.stringMatching(/keepalive/)]) },
    ]);
    const said = JSON.stringify(changes);
    for (const key of [await l.store.readKey(rec.id, 'worker'), await l.store.readKey(rec.id, 'psk', 'preshared key')]) {
      expect(key).not.toBeNull();
      expect(said).not.toContain(key!.reveal());
    }
  });

  it.each(SETUP_STEPS.map((s) => [s]))('converges on a re-run after a crash right after step "%s"', async (step) => {
    // The reference: the same pod set up without a crash, in a world of its own.
    const ref = await lab();
    const refDriver = wireguardDriver(ref);
    await refDriver.setup(await inspectedRequest(ref, refDriver));

    // A crash: nothing after the step runs, the rollback included (the pod netns cannot be checked).
    const crash = new Error(`crash after ${step}`);
    const crashing = wireguardDriver(l, (s) => {
      if (s !== step) return;
      l.world.existsFails(l.pod, 'error');
      throw crash;
    });
    const req = await inspectedRequest(l, crashing);
    const e = await crashing.setup(req).then(() => null, (x: unknown) => x);
    if (step === 'recorded') {
      expect(e).toBe(crash); // before the data plane: no rollback to do
    } else {
      expect(e).toMatchObject({ code: 'ESETUP', cause: crash }); // the first error stays first
      expect((e as PeerpodError).cleanupErrors).toHaveLength(1); // the failed cleanup rides along
    }
    expect((await l.store.read(podIdOf(l.pod)))?.phase).toBe('setting-up');
    l.world.existsFails(l.pod, null);

    const rec = await wireguardDriver(l).setup(req);
    expect(rec.phase).toBe('ready');
    // The two worlds differ in their pod netns path (so the device name), MACs and ifindexes only.
    const same = (t: string): string =>
      t.replaceAll(ref.pod, 'POD').replaceAll(l.pod, 'POD').replace(/pwg\w{12}/g, 'pwg').replace(/"address":"[0-9a-f:]{17}"/g, 'MAC');
    const world = async (x: Lab): Promise<string> => same(JSON.stringify([await x.world.at(x.pod).snapshot(), await x.world.host.snapshot()]));
    expect(await world(l)).toEqual(await world(ref));
    expect([...l.backend.devicesByName.keys()]).toEqual([rec.device]);
    expect(deviceOf(l, rec.device).peers).toHaveLength(1);
  });

  it('rolls back a setup that fails: no device, no routing, the record back to inspected, the keys kept', async () => {
    const driver = wireguardDriver(l);
    const req = await inspectedRequest(l, driver);
    const id = podIdOf(l.pod);
    l.world.failNext({ netns: l.pod, match: /^ip -4 -batch/ });
    const e = await caught(driver.setup(req));
    expect(e.code).toBe('ESETUP');
    expect(e.message).toBe(`tunnel setup for pod netns ${l.pod} failed and was rolled back`);
    expect(e.context).toMatchObject({ op: 'setup', netns: l.pod, iface: `pwg${id}` });
    expect((e.cause as PeerpodError).code).toBe('ENETNS');
    expect(e.cleanupErrors).toEqual([]);
    await expectClean(l, `pwg${id}`);
    expect((await l.store.read(id))?.phase).toBe('inspected');
    expect(l.store.filesOf(id)).toEqual(['psk.key', 'record.json', 'worker.key']);
    expect(l.backend.released).toEqual([l.pod]);
    // And it can be set up after that.
    expect((await driver.setup(req)).phase).toBe('ready');
  });

  it('keeps the first error when the rollback fails too', async () => {
    const first = new PeerpodError('EBACKEND', 'the first failure');
    const driver = wireguardDriver(l, (s) => {
      if (s !== 'plumbed') return;
      l.world.failNext({ netns: l.pod, match: /^ip -4 -batch/ }); // the rollback's removal of the rules
      throw first;
    });
    const req = await inspectedRequest(l, driver);
    const e = await caught(driver.setup(req));
    expect(e.code).toBe('ESETUP');
    expect(e.cause).toBe(first);
    expect(e.cleanupErrors).toHaveLength(1);
    expect((e.cleanupErrors[0] as PeerpodError).message).toMatch(/remove the IPv4 tunnel routing/);
    expect((await l.store.read(podIdOf(l.pod)))?.phase).toBe('setting-up'); // the rollback did not finish
  });

  it('tears down: everything goes, and again, and with the pod netns gone, and with a corrupt record', async () => {
    const driver = wireguardDriver(l);
    const rec = await driver.setup(await inspectedRequest(l, driver));
    await driver.teardown({ netns: l.pod });
    await expectClean(l, rec.device);
    expect(await l.store.read(rec.id)).toBeNull();
    expect(l.store.filesOf(rec.id)).toEqual([]);
    await driver.teardown({ netns: l.pod }); // already gone is success

    await driver.setup(await inspectedRequest(l, driver));
    l.world.deleteNetns(l.pod);
    await driver.teardown({ netns: l.pod });
    expect(await l.store.read(rec.id)).toBeNull();
    expect(l.backend.devicesByName.size).toBe(0);
  });

  it('tears down past a corrupt record, finding the device by the pod id', async () => {
    const driver = wireguardDriver(l);
    const rec = await driver.setup(await inspectedRequest(l, driver));
    l.store.plantRecordText(rec.id, '{ not json');
    await driver.teardown({ netns: l.pod });
    expect(l.backend.links.locate(rec.device)).toBeUndefined();
    expect(l.store.filesOf(rec.id)).toEqual([]);
  });

  it('wraps a teardown failure with the pod netns and the device, and keeps the state for another try', async () => {
    const driver = wireguardDriver(l);
    const rec = await driver.setup(await inspectedRequest(l, driver));
    l.world.existsFails(l.pod, 'timeout');
    const e = await caught(driver.teardown({ netns: l.pod }));
    expect(e.code).toBe('ETEARDOWN');
    expect(e.context).toEqual({ op: 'teardown', netns: l.pod, iface: rec.device });
    expect(await l.store.read(rec.id)).not.toBeNull();
  });

  it('refuses before changing anything: no netns, no record, another type, no pod interface, another worker key, another tunnel type', async () => {
    const driver = wireguardDriver(l);
    const req = await inspectedRequest(l, driver);
    const id = podIdOf(l.pod);
    const missing = await caught(driver.setup({ ...req, netns: '/run/netns/nope' }));
    expect([missing.code, missing.message]).toEqual(['ENOTFOUND', 'pod netns /run/netns/nope does not exist']);

    const other = await lab();
    const none = await caught(wireguardDriver(other).setup({ ...req, netns: other.pod }));
    expect(none.code).toBe('ESTATE');
    expect(none.message).toMatch(/^no tunnel state for pod netns \S+, and no configured tunnel with this pod-network\.wireguard\.peer-public-key: run inspect/);

    const vx = { ...(await l.store.read(id))!, tunnelType: 'vxlan', vni: 555000, port: 4789 } as unknown as PodRecord;
    await l.store.write(vx);
    expect((await caught(driver.setup(req))).message).toBe(`pod netns ${l.pod} was inspected for tunnel type vxlan, not wireguard`);
    await l.store.remove(id);

    const fresh = await inspectedRequest(l, driver);
    const stale = await caught(driver.setup({ ...fresh, podNetwork: req.podNetwork }));
    expect([stale.code, stale.context.field]).toEqual(['EINVAL', 'pod-network.wireguard.peer-public-key']);

    const noEth = await caught(driver.setup({ ...fresh, podNetwork: { ...fresh.podNetwork, interfaceName: 'eth9' } }));
    expect([noEth.code, noEth.message]).toEqual(['ENOTFOUND', `setup: no interface eth9 in netns ${l.pod}`]);

    const vxlanPn = { ...fresh.podNetwork, tunnel: { type: 'vxlan' as const } };
    expect((await caught(driver.setup({ ...fresh, podNetwork: vxlanPn }))).context.field).toBe('pod-network.tunnel-type');

    // Nothing was made, and the record was never moved to setting-up.
    expect((await l.store.read(id))?.phase).toBe('inspected');
    expect(l.backend.calls.filter((c) => c.startsWith('create'))).toEqual([]);
    expect(l.steps).toEqual([]);
  });

  it('sets up a dual-stack pod through the one device', async () => {
    const d6 = await lab({ v6: true });
    const driver = wireguardDriver(d6);
    const rec = (await driver.setup(await inspectedRequest(d6, driver)));
    expect(rec.extraPodIPs).toEqual(['fd00:198:18:1::21']);
    expect(deviceOf(d6, rec.device).peers[0]?.allowedIPs).toEqual(['198.18.1.21/32', 'fd00:198:18:1::21/128']);
    const ns = d6.world.at(d6.pod);
    expect((await ns.rules(6)).map((r) => [r.priority, r.table])).toEqual([[89, 'local'], [90, POD_ROUTE_TABLE], [100, 'local'], [32766, 'main']]);
    const marks = (await ns.iptables(['-t', 'mangle', '-S', 'PREROUTING'], 'list', undefined, 6)).split('\n').filter((x) => x.includes('0x2151'));
    expect(marks).toHaveLength(2);
    expect(await ns.readSysctl('net.ipv6.conf.all.forwarding')).toBe('1');
    expect(await ns.readSysctl(`net.ipv6.conf.${rec.device}.forwarding`)).toBe('0');
    expect(await ns.readSysctl(`net.ipv6.conf.${rec.device}.addr_gen_mode`)).toBe('1');
  });

  it('replaces a device the other backend left in the pod netns (a node switched to the kernel)', async () => {
    const k = await lab();
    const driver = wireguardDriver(k);
    const req = await inspectedRequest(k, driver);
    const device = `pwg${podIdOf(k.pod)}`;
    k.world.addLink(k.pod, device, { kind: 'tun' });
    const rec = await driver.setup(req);
    expect((await k.world.at(k.pod).link(rec.device))?.kind).toBe('wireguard');
    expect((await k.backend.device(rec.device, { netns: k.pod })).peers).toHaveLength(1);
  });

  it('re-creates a device that died (the sidecar heals through converge), and rolls back to orphaned', async () => {
    const driver = wireguardDriver(l);
    const rec = (await driver.setup(await inspectedRequest(l, driver)));
    await l.world.at(l.pod).ip(['link', 'del', 'dev', rec.device], 'wireguard-go died');
    expect(await driver.converge(rec)).toEqual({ created: true });
    expect(l.backend.links.locate(rec.device)).toBe(l.pod);
    expect(await driver.converge(rec)).toEqual({ created: false });

    await driver.rollBack(rec, 'orphaned');
    await expectClean(l, rec.device);
    expect((await l.store.read(rec.id))?.phase).toBe('orphaned');
    expect(l.store.filesOf(rec.id)).toContain('worker.key');
  });
});

describe('VxlanWorkerDriver (fakes, no root)', () => {
  let l: Lab;
  const vxlanDriver = (onStep?: (s: string) => void): VxlanWorkerDriver =>
    new VxlanWorkerDriver(
      {
        netns: l.world.factory(),
        store: l.store,
        onStep: (s) => {
          l.steps.push(s);
          onStep?.(s);
        },
      },
      { minId: 555000, netnsDir: null },
    );
  const notrack = async (): Promise<string[]> =>
    (await l.world.host.iptables(['-t', 'raw', '-S'], 'list')).split('\n').filter((x) => x.startsWith(`-A ${NOTRACK_CHAINS.OUTPUT} `) || x.startsWith(`-A ${NOTRACK_CHAINS.PREROUTING} `));

  beforeEach(async () => {
    l = await lab();
  });

  it('sets up a pod: NOTRACK rules, the device born in the host netns with the pod VM as remote, moved, mirrored', async () => {
    const driver = vxlanDriver();
    const req = await inspectedRequest(l, driver);
    expect(req.podNetwork.tunnel).toEqual({ type: 'vxlan', port: 4789, id: 555000 });
    const rec = await driver.setup(req);
    expect(rec).toMatchObject({ phase: 'ready', vni: 555000, podVmIPs: ['203.0.113.10'] });
    expect(l.steps).toEqual(VXLAN_SETUP_STEPS);
    const dev = await l.world.at(l.pod).link(rec.device);
    expect(dev).toMatchObject({ kind: 'vxlan' });
    expect(dev?.flags).toContain('UP');
    expect(await notrack()).toHaveLength(2);
    const ingress = await l.world.at(l.pod).run(['tc', '-json', 'filter', 'show', 'dev', 'eth0', 'parent', 'ffff:'], 'list');
    expect(ingress).toContain(rec.device);

    // A re-run keeps the device and adds nothing.
    const before = [(await l.world.at(l.pod).links()).map((x) => x.ifindex), await notrack()];
    await driver.setup(req);
    expect([(await l.world.at(l.pod).links()).map((x) => x.ifindex), await notrack()]).toEqual(before);
  });

  it('rolls back a setup that fails: no device, no NOTRACK rules, the record (and its VNI) kept', async () => {
    const driver = vxlanDriver();
    const req = await inspectedRequest(l, driver);
    l.world.failNext({ netns: l.pod, match: /^tc -batch/ });
    const e = await caught(driver.setup(req));
    expect(e.code).toBe('ESETUP');
    expect((e.cause as PeerpodError).code).toBe('ENETNS');
    expect(e.cleanupErrors).toEqual([]);
    expect(await l.world.at(l.pod).link(`pvx${podIdOf(l.pod)}`)).toBeNull();
    expect(await l.world.host.link(`pvx${podIdOf(l.pod)}`)).toBeNull();
    expect(await notrack()).toEqual([]);
    expect(await l.store.read(podIdOf(l.pod))).toMatchObject({ phase: 'inspected', vni: 555000 });
  });

  it('converges after a crash that left the device in the host netns', async () => {
    const crash = new Error('crash after created');
    const req = await inspectedRequest(l, vxlanDriver());
    const crashing = vxlanDriver((s) => {
      if (s !== 'created') return;
      l.world.existsFails(l.pod, 'error');
      throw crash;
    });
    const e = await caught(crashing.setup(req));
    expect(e.cause).toBe(crash);
    expect(e.cleanupErrors).toHaveLength(1);
    l.world.existsFails(l.pod, null);
    const device = `pvx${podIdOf(l.pod)}`;
    expect(await l.world.host.link(device)).not.toBeNull();
    const rec = await vxlanDriver().setup(req);
    expect(rec.phase).toBe('ready');
    expect(await l.world.host.link(device)).toBeNull();
    expect(await l.world.at(l.pod).link(device)).not.toBeNull();
    expect(await notrack()).toHaveLength(2);
  });

  it('tears down, idempotently, and by the device alone when the record is corrupt', async () => {
    const driver = vxlanDriver();
    const rec = await driver.setup(await inspectedRequest(l, driver));
    l.store.plantRecordText(rec.id, 'null');
    await driver.teardown({ netns: l.pod });
    expect(await l.world.at(l.pod).link(rec.device)).toBeNull();
    expect(await notrack()).toEqual([]); // the device's VNI told which rules were its
    expect(l.store.filesOf(rec.id)).toEqual([]);
    await driver.teardown({ netns: l.pod });
  });

  it('refuses a VNI or port from another inspect, and a pod VM IP that is not IPv4', async () => {
    const driver = vxlanDriver();
    const req = await inspectedRequest(l, driver);
    const vni = await caught(driver.setup({ ...req, podNetwork: { ...req.podNetwork, tunnel: { type: 'vxlan', id: 7 } } }));
    expect([vni.code, vni.context.field]).toEqual(['EINVAL', 'pod-network.vxlan-id']);
    const port = await caught(driver.setup({ ...req, podNetwork: { ...req.podNetwork, tunnel: { type: 'vxlan', port: 8472 } } }));
    expect([port.code, port.context.field]).toEqual(['EINVAL', 'pod-network.vxlan-port']);
    const v6 = await caught(driver.setup({ ...req, podVmIPs: ['2001:db8::10'] }));
    expect([v6.code, v6.context.field]).toEqual(['EINVAL', 'pod-vm-ip']);
    const none = await caught(new VxlanWorkerDriver({ netns: l.world.factory(), store: new MemoryPodStore() }).setup(req));
    expect(none.message).toBe(`no tunnel state for pod netns ${l.pod}: run inspect for this pod first`);
    expect(l.steps).toEqual([]);
    expect(await notrack()).toEqual([]);
  });
});
