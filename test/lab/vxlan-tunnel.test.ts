// The vxlan tunnel end to end, with the driver classes run in this process against real namespaces.
// The worker side treats the lab's worker host netns as its host netns, the pod-VM side the VM's
// root netns, so each device is born where CAA's would be:
//
//   client pod ─┐                                                        ┌ VM pod netns: eth0 = VXLAN
//               ├─ br0 ─ worker host ═══ router (routes; or NAT) ═══ VM root (UDP :4789, NOTRACK)
//   peer pod  ──┘   │ (UDP :4789, NOTRACK)
//                   └ peer pod netns: eth0 ⇄ tc mirred ⇄ pvx<pod id> (VXLAN, socket in the worker host)
//
// See lab/lab.ts for the addresses. Through NAT the tunnel must NOT work (the VM's packets to
// the worker are new inbound flows, which a NAT drops): that is the reason this project exists.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../../src/exec.js';
import { LAB, Lab } from '../../lab/lab.js';
import { labTransfer, pingReceived } from '../../lab/flow.js';
import { IprouteNetns, type NetnsFactory } from '../../src/netns/netns.js';
import { parsePodNetwork, podNetworkToJson } from '../../src/podnetwork/schema.js';
import type { PodNetwork } from '../../src/podnetwork/types.js';
import { FilePodStore, podIdOf } from '../../src/state/store.js';
import { vxlanLinks } from '../../src/tunnel/vxlan/device.js';
import { NOTRACK_CHAINS } from '../../src/tunnel/vxlan/notrack.js';
import { VXLAN_MAX_MTU, VxlanPodVmDriver } from '../../src/tunnel/vxlan/podvm.js';
import { VxlanWorkerDriver } from '../../src/tunnel/vxlan/worker.js';
import { describeLab } from './root.js';

const MB10 = 10 * 1024 * 1024;

/** Drivers use netns.host() as "their" netns: here, a lab namespace stands in for it. */
function factoryWithHost(lab: Lab, hostNs: string): NetnsFactory {
  return { host: () => new IprouteNetns(lab.path(hostNs), realExec), at: (p) => new IprouteNetns(p, realExec) };
}

/** A VNI range of its own per run, so that labs running side by side never meet. */
function randomMinId(): number {
  return 1_000_000 + randomInt(0, 15_000_000);
}

/** What apf.json carries to the VM: the pod-network written as CAA writes it, and read back. */
function throughApfJson(pn: PodNetwork): PodNetwork {
  return parsePodNetwork(JSON.parse(JSON.stringify(podNetworkToJson(pn))));
}

interface VxlanTunnel {
  store: FilePodStore;
  worker: VxlanWorkerDriver;
  vm: VxlanPodVmDriver;
  pn: PodNetwork;
  vmPn: PodNetwork;
}

/** The peer pod's vxlan tunnel, set up by the drivers in this process as CAA would: inspect, the VM side, the worker side. */
async function vxlanTunnel(lab: Lab, dir: string, minId: number): Promise<VxlanTunnel> {
  const store = new FilePodStore(join(dir, 'state'));
  const worker = new VxlanWorkerDriver({ netns: factoryWithHost(lab, lab.ns.worker), store }, { minId });
  const vm = new VxlanPodVmDriver({ netns: factoryWithHost(lab, lab.ns.vm) });
  const pn = await worker.inspect(lab.path(lab.ns.pod));
  const vmPn = throughApfJson(pn);
  await vm.setup({ podNetns: lab.path(lab.ns.vmPod), podNetwork: vmPn });
  await worker.setup({ netns: lab.path(lab.ns.pod), podVmIPs: [LAB.vmIP], podNetwork: pn });
  return { store, worker, vm, pn, vmPn };
}

/** Best effort, after a suite: both ends of the tunnel, its state folder, then the lab. */
async function removeVxlanTunnel(lab: Lab, dir: string, t: Partial<VxlanTunnel>): Promise<void> {
  if (dir !== '') {
    await t.worker?.teardown({ netns: lab.path(lab.ns.pod) }).catch(() => undefined);
    if (t.vmPn !== undefined) await t.vm?.teardown({ podNetns: lab.path(lab.ns.vmPod), podNetwork: t.vmPn }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  await lab.destroy();
}

async function sh(lab: Lab, ns: string, argv: string[]): Promise<string> {
  return (await lab.exec(ns, argv)).stdout;
}

async function ping(lab: Lab, from: string, to: string, count = 3): Promise<number> {
  const r = await lab.exec(from, ['ping', '-c', String(count), '-i', '0.2', '-W', '2', to], { okCodes: [0, 1] });
  return pingReceived(r.stdout).received;
}


/** Packet counters of our NOTRACK rules in a namespace (`iptables -v -S` prints "-c <packets> <bytes>"). */
async function notrackPackets(lab: Lab, ns: string): Promise<number[]> {
  const out = await sh(lab, ns, ['iptables', '-w', '5', '-t', 'raw', '-v', '-S']);
  return out
    .split('\n')
    .filter((l) => l.includes('NOTRACK') && l.includes('peerpod'))
    .map((l) => Number(/-c (\d+) /.exec(l)?.[1] ?? -1));
}

/** Everything a tunnel could leave behind, per namespace. Empty strings mean "nothing". */
async function leftovers(lab: Lab): Promise<Record<string, string>> {
  const n = lab.ns;
  const grep = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).join('\n');
  return {
    workerLinks: grep(await sh(lab, n.worker, ['ip', '-br', 'link']), /^pv[xv]/),
    workerRaw: grep(await sh(lab, n.worker, ['iptables', '-w', '5', '-t', 'raw', '-S']), /peerpod/),
    podLinks: grep(await sh(lab, n.pod, ['ip', '-br', 'link']), /^pvx/),
    podQdiscs: grep(await sh(lab, n.pod, ['tc', 'qdisc', 'show']), /ingress/),
    vmLinks: grep(await sh(lab, n.vm, ['ip', '-br', 'link']), /^pvv/),
    vmRaw: grep(await sh(lab, n.vm, ['iptables', '-w', '5', '-t', 'raw', '-S']), /peerpod/),
    vmPodLinks: grep(await sh(lab, n.vmPod, ['ip', '-br', 'link']), /^eth0/),
  };
}

const NOTHING = {
  workerLinks: '',
  workerRaw: '',
  podLinks: '',
  podQdiscs: '',
  vmLinks: '',
  vmRaw: '',
  vmPodLinks: '',
};

describeLab('vxlan tunnel in a routing-only lab', () => {
  const lab = new Lab({ exec: realExec, nat: false });
  const minId = randomMinId();
  let dir = '';
  let store: FilePodStore;
  let worker: VxlanWorkerDriver;
  let vm: VxlanPodVmDriver;
  let pn: PodNetwork;
  let vmPn: PodNetwork;
  const podPath = () => lab.path(lab.ns.pod);
  const vmPodPath = () => lab.path(lab.ns.vmPod);

  beforeAll(async () => {
    await lab.create();
    dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-vxlan-`));
    ({ store, worker, vm, pn, vmPn } = await vxlanTunnel(lab, dir, minId));
  }, 60_000);

  afterAll(() => removeVxlanTunnel(lab, dir, { worker, vm, vmPn }), 60_000);

  it('inspect gives the pod the first VNI, the worker address as remote, and the same VNI again', async () => {
    expect(pn.tunnel).toEqual({ type: 'vxlan', port: 4789, id: minId });
    expect(pn.index).toBe(0);
    expect(pn.workerNodeIp).toEqual({ address: LAB.workerIP, prefixLength: 24, family: 4 });
    expect(pn.podIp.address).toBe(LAB.podIP);
    const again = await worker.inspect(podPath());
    expect(again.tunnel).toEqual(pn.tunnel);
    const record = await store.read(podIdOf(podPath()));
    expect(record).toMatchObject({ tunnelType: 'vxlan', vni: minId, port: 4789, phase: 'ready', podVmIPs: [LAB.vmIP] });
  });

  it('builds the devices as CAA does: born in the host netns, no learning, pod MAC and MTU 1450 in the VM', async () => {
    const [dev] = await vxlanLinks(new IprouteNetns(podPath(), realExec));
    expect(dev).toMatchObject({ vni: minId, remote: LAB.vmIP, port: 4789, learning: false });
    // link-netnsid: the device's UDP socket lives in another netns (the worker host), not the pod's.
    expect(dev?.linkNetnsid).toBeDefined();
    const [vmDev] = await vxlanLinks(new IprouteNetns(vmPodPath(), realExec));
    expect(vmDev).toMatchObject({ ifname: 'eth0', vni: minId, remote: LAB.workerIP, port: 4789, mtu: VXLAN_MAX_MTU });
    expect(vmDev?.address).toBe(pn.podHwAddr);
    expect(vmDev?.linkNetnsid).toBeDefined();
    const filters = await sh(lab, lab.ns.pod, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress']);
    expect(filters).toContain(`Egress Redirect to device ${dev?.ifname ?? '?'}`);
    const back = await sh(lab, lab.ns.pod, ['tc', 'filter', 'show', 'dev', dev?.ifname ?? '?', 'ingress']);
    expect(back).toContain('Egress Redirect to device eth0');
    const vmRoutes = await sh(lab, lab.ns.vmPod, ['ip', 'route']);
    expect(vmRoutes).toMatch(new RegExp(`^default via ${LAB.podGateway} dev eth0`, 'm'));
  });

  it('carries ping both ways between the client pod and the VM pod', async () => {
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(3);
    expect(await ping(lab, lab.ns.vmPod, LAB.clientIP)).toBe(3);
  });

  it('carries 10 MB over TCP intact in both directions', async () => {
    const out = await labTransfer(lab, lab.ns.client, lab.ns.vmPod, LAB.podIP, 5301, MB10, 'vxlan');
    expect(out.received).toEqual({ bytes: MB10, sha256: out.sent.sha256 });
    const back = await labTransfer(lab, lab.ns.vmPod, lab.ns.client, LAB.clientIP, 5302, MB10, 'vxlan');
    expect(back.received).toEqual({ bytes: MB10, sha256: back.sent.sha256 });
    console.log(`vxlan: 10 MB client→VM pod in ${out.sent.ms.toFixed(0)} ms, VM pod→client in ${back.sent.ms.toFixed(0)} ms`);
  }, 120_000);

  it('keeps the tunnel packets out of conntrack on both ends (NOTRACK rules that match)', async () => {
    const workerCounts = await notrackPackets(lab, lab.ns.worker);
    const vmCounts = await notrackPackets(lab, lab.ns.vm);
    expect(workerCounts).toHaveLength(2);
    expect(vmCounts).toHaveLength(2);
    for (const c of [...workerCounts, ...vmCounts]) expect(c).toBeGreaterThan(0);
    // And conntrack gets no entry for the tunnel's UDP flows (CAA issue #2015 saw them by the
    // thousand). Entries from before the rules existed (the VM side comes up first) are flushed.
    const tunnelFlows = ['-p', 'udp', '--dport', '4789'];
    for (const ns of [lab.ns.worker, lab.ns.vm]) await lab.exec(ns, ['conntrack', '-D', ...tunnelFlows], { okCodes: [0, 1] });
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(3);
    expect(await ping(lab, lab.ns.vmPod, LAB.clientIP)).toBe(3);
    for (const ns of [lab.ns.worker, lab.ns.vm]) {
      const ct = await lab.exec(ns, ['conntrack', '-L', ...tunnelFlows], { okCodes: [0, 1] });
      expect(ct.stdout.trim()).toBe('');
    }
    const rules = await sh(lab, lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-S']);
    expect(rules).toContain(`-A OUTPUT -j ${NOTRACK_CHAINS.OUTPUT}`);
    expect(rules).toContain(`-A ${NOTRACK_CHAINS.OUTPUT} -d ${LAB.vmIP}/32 -p udp -m comment --comment "peerpod [vni:${minId}]"`);
    expect(rules).toContain(`-A ${NOTRACK_CHAINS.PREROUTING} -s ${LAB.vmIP}/32 -p udp -m comment --comment "peerpod [vni:${minId}]"`);
  });

  it('re-running setup on both sides changes nothing', async () => {
    const before = {
      pod: await sh(lab, lab.ns.pod, ['ip', '-o', 'link']),
      filters: await sh(lab, lab.ns.pod, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress']),
      raw: await sh(lab, lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-S']),
      vmPod: await sh(lab, lab.ns.vmPod, ['ip', '-o', 'link']),
      vmRoutes: await sh(lab, lab.ns.vmPod, ['ip', 'route']),
    };
    await worker.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: pn });
    const r = await vm.setup({ podNetns: vmPodPath(), podNetwork: vmPn });
    expect(r).toMatchObject({ interface: 'eth0', mtu: VXLAN_MAX_MTU, adopted: true });
    const strip = (s: string) => s.replace(/\s+/g, ' ');
    expect(strip(await sh(lab, lab.ns.pod, ['ip', '-o', 'link']))).toBe(strip(before.pod));
    expect(await sh(lab, lab.ns.pod, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).toBe(before.filters);
    expect(await sh(lab, lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-S'])).toBe(before.raw);
    expect(strip(await sh(lab, lab.ns.vmPod, ['ip', '-o', 'link']))).toBe(strip(before.vmPod));
    expect(await sh(lab, lab.ns.vmPod, ['ip', 'route'])).toBe(before.vmRoutes);
  });

  it('the VM side adopts its device, and keeps only the pod IP and the worker\'s routes on it', async () => {
    await lab.exec(lab.ns.vmPod, ['ip', 'address', 'add', '198.18.1.99/32', 'dev', 'eth0']);
    await lab.exec(lab.ns.vmPod, ['ip', 'route', 'add', '192.0.2.0/24', 'via', LAB.podGateway, 'dev', 'eth0']);
    const r = await vm.setup({ podNetns: vmPodPath(), podNetwork: vmPn });
    expect(r.adopted).toBe(true);
    const addrs = await sh(lab, lab.ns.vmPod, ['ip', '-4', '-o', 'address', 'show', 'dev', 'eth0']);
    expect(addrs).toContain(`${LAB.podIP}/${LAB.podPrefix}`);
    expect(addrs).not.toContain('198.18.1.99');
    expect(await sh(lab, lab.ns.vmPod, ['ip', 'route'])).not.toContain('192.0.2.0/24');
    expect(await ping(lab, lab.ns.vmPod, LAB.clientIP)).toBe(3);
  });

  it('converges after a crash that left the device in the host netns and the mirror and rules half made', async () => {
    const device = (await store.read(podIdOf(podPath())))!.device;
    // Undo the later steps by hand, as if setup had died right after creating the device.
    await lab.exec(lab.ns.pod, ['ip', 'link', 'set', 'dev', device, 'netns', lab.path(lab.ns.worker)]);
    await lab.exec(lab.ns.pod, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'ingress']);
    await lab.exec(lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-F', NOTRACK_CHAINS.PREROUTING]);
    expect(await ping(lab, lab.ns.client, LAB.podIP, 1)).toBe(1); // answered locally: no tunnel
    await worker.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: pn });
    expect(await sh(lab, lab.ns.worker, ['ip', '-br', 'link'])).not.toContain(device);
    expect((await notrackPackets(lab, lab.ns.worker)).length).toBe(2);
    expect(await ping(lab, lab.ns.vmPod, LAB.clientIP)).toBe(3);
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(3);
  });

  it('follows new pod VM IPs: the device and the NOTRACK rules move to the new remote', async () => {
    await worker.setup({ netns: podPath(), podVmIPs: ['203.0.113.99'], podNetwork: pn });
    const [dev] = await vxlanLinks(new IprouteNetns(podPath(), realExec));
    expect(dev?.remote).toBe('203.0.113.99');
    const raw = await sh(lab, lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-S']);
    expect(raw).toContain('203.0.113.99/32');
    expect(raw).not.toContain(`${LAB.vmIP}/32`);
    await worker.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: pn });
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(3);
  });

  it('rolls a failed setup back, keeping the record and its VNI', async () => {
    // Dedicated needs a second VM IP: refused before anything is made.
    await expect(
      worker.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: { ...pn, dedicated: true } }),
    ).rejects.toMatchObject({ code: 'EINVAL', context: { field: 'pod-vm-ip' } });
    // A failure once the device is in the pod netns and the rules exist: everything goes again.
    const failing = new VxlanWorkerDriver(
      {
        netns: factoryWithHost(lab, lab.ns.worker),
        store,
        onStep: (step) => {
          if (step === 'moved') throw new Error('injected failure after the move');
        },
      },
      { minId },
    );
    await expect(failing.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: pn })).rejects.toMatchObject({
      code: 'ESETUP',
      cleanupErrors: [],
    });
    const { workerLinks, workerRaw, podLinks, podQdiscs } = await leftovers(lab);
    expect({ workerLinks, workerRaw, podLinks, podQdiscs }).toEqual({ workerLinks: '', workerRaw: '', podLinks: '', podQdiscs: '' });
    expect(await store.read(podIdOf(podPath()))).toMatchObject({ vni: minId, phase: 'inspected' });
    // And a normal setup after it converges.
    await worker.setup({ netns: podPath(), podVmIPs: [LAB.vmIP], podNetwork: pn });
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(3);
  });

  it('tears down without leaving a link, tc qdisc, NOTRACK rule or state, and twice is fine', async () => {
    const id = podIdOf(podPath());
    await worker.teardown({ netns: podPath() });
    await vm.teardown({ podNetns: vmPodPath(), podNetwork: vmPn });
    await worker.teardown({ netns: podPath() });
    await vm.teardown({ podNetns: vmPodPath(), podNetwork: vmPn });
    expect(await leftovers(lab)).toEqual(NOTHING);
    expect(await store.read(id)).toBeNull();
    await expect(stat(join(store.dir, 'pods', id))).rejects.toMatchObject({ code: 'ENOENT' });
    // The pod IP is local to the peer pod netns again.
    expect(await ping(lab, lab.ns.client, LAB.podIP, 1)).toBe(1);
  });
});

describeLab('vxlan VNI allocation across a restart (lab)', () => {
  const lab = new Lab({ exec: realExec, nat: false });
  const minId = randomMinId();
  const fakes = Array.from({ length: 7 }, (_, i) => `${lab.prefix}-f${i}`);
  let dir = '';

  /** A pod netns as CNI makes it, enough for inspect: eth0 with an address and a default route. */
  async function fakePod(name: string, i: number): Promise<void> {
    await realExec(['ip', 'netns', 'add', name]);
    const script = [
      'link set lo up',
      'link add eth0 type veth peer name peer0',
      `address add 198.18.2.${10 + i}/24 dev eth0`,
      'link set eth0 up',
      'link set peer0 up',
      'route add default via 198.18.2.1',
    ].join('\n');
    await realExec(['ip', '-n', name, '-batch', '-'], { input: script + '\n' });
  }

  beforeAll(async () => {
    await lab.create();
    dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-vni-`));
    for (const [i, name] of fakes.entries()) await fakePod(name, i);
  }, 60_000);

  afterAll(async () => {
    const stateDir = join(dir, 'state');
    const driver = new VxlanWorkerDriver({ netns: factoryWithHost(lab, lab.ns.worker), store: new FilePodStore(stateDir) }, { minId });
    for (const name of fakes) {
      await driver.teardown({ netns: lab.path(name) }).catch(() => undefined);
      await realExec(['ip', 'netns', 'del', name], { okCodes: [0, 1, 255] }).catch(() => undefined);
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true });
    await lab.destroy();
  }, 60_000);

  it('a new driver (a restarted process) never hands out a VNI that a live tunnel still uses', async () => {
    const stateDir = join(dir, 'state');
    const worker = () => factoryWithHost(lab, lab.ns.worker);
    const before = new VxlanWorkerDriver({ netns: worker(), store: new FilePodStore(stateDir) }, { minId });
    const given: number[] = [];
    for (const [i, name] of fakes.slice(0, 5).entries()) {
      const pn = await before.inspect(lab.path(name));
      await before.setup({ netns: lab.path(name), podVmIPs: [`203.0.113.${50 + i}`], podNetwork: pn });
      given.push(pn.tunnel.type === 'vxlan' ? (pn.tunnel.id ?? -1) : -1);
    }
    expect(given).toEqual([0, 1, 2, 3, 4].map((i) => minId + i));

    // A tunnel without a record, as CAA's in-memory index leaves them: born in the worker host
    // netns with the next VNI, then moved into its pod netns and renamed as CAA does.
    const caaVni = minId + 5;
    await lab.exec(lab.ns.worker, ['ip', 'link', 'add', 'ppvxlan1', 'type', 'vxlan', 'id', String(caaVni),
      'remote', '203.0.113.60', 'dstport', '4789']);
    await lab.exec(lab.ns.worker, ['ip', 'link', 'set', 'ppvxlan1', 'netns', lab.path(fakes[5]!), 'name', 'vxlan1']);
    // The collision is real: the kernel refuses a second device with that VNI in the same netns.
    const clash = await lab.exec(lab.ns.worker, ['ip', 'link', 'add', 'clash0', 'type', 'vxlan', 'id', String(caaVni),
      'remote', '203.0.113.61', 'dstport', '4789'], { okCodes: [0, 1, 2] });
    await lab.exec(lab.ns.worker, ['ip', 'link', 'del', 'clash0'], { okCodes: [0, 1] });
    expect(clash.code).not.toBe(0);

    // "Restart": nothing in memory, only the state folder and the kernel.
    const after = new VxlanWorkerDriver({ netns: worker(), store: new FilePodStore(stateDir) }, { minId });
    const same = await after.inspect(lab.path(fakes[0]!));
    expect(same.tunnel).toEqual({ type: 'vxlan', port: 4789, id: minId });
    const pn = await after.inspect(lab.path(fakes[6]!));
    const vni = pn.tunnel.type === 'vxlan' ? pn.tunnel.id : undefined;
    expect([...given, caaVni]).not.toContain(vni);
    expect(vni).toBe(minId + 6);
    // And the kernel agrees: the device can be made next to the five live ones.
    await after.setup({ netns: lab.path(fakes[6]!), podVmIPs: ['203.0.113.56'], podNetwork: pn });
    const live = new Set<number>();
    for (const name of fakes) for (const l of await vxlanLinks(new IprouteNetns(lab.path(name), realExec))) live.add(l.vni);
    expect(live.size).toBe(7);

    for (const name of fakes.slice(0, 5)) await after.teardown({ netns: lab.path(name) });
    await after.teardown({ netns: lab.path(fakes[6]!) });
    expect((await sh(lab, lab.ns.worker, ['iptables', '-w', '5', '-t', 'raw', '-S'])).includes('peerpod')).toBe(false);
  }, 120_000);
});

describeLab('vxlan tunnel through NAT (lab): does not work, as expected', () => {
  const lab = new Lab({ exec: realExec, nat: true });
  const minId = randomMinId();
  let dir = '';
  let worker: VxlanWorkerDriver;
  let vm: VxlanPodVmDriver;
  let vmPn: PodNetwork;
  const podPath = () => lab.path(lab.ns.pod);
  const vmPodPath = () => lab.path(lab.ns.vmPod);

  beforeAll(async () => {
    await lab.create();
    dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-vxnat-`));
    ({ worker, vm, vmPn } = await vxlanTunnel(lab, dir, minId));
  }, 60_000);

  afterAll(() => removeVxlanTunnel(lab, dir, { worker, vm, vmPn }), 60_000);

  it('carries nothing VM→worker: the NAT drops the VM\'s packets as new inbound flows', async () => {
    // Count VXLAN packets that reach the VM, and what the NAT drops on its way back to the worker.
    await lab.exec(lab.ns.vm, ['iptables', '-w', '5', '-I', 'INPUT', '-p', 'udp', '--dport', '4789']);
    const dropped = async () => {
      const out = await sh(lab, lab.ns.nat, ['iptables', '-w', '5', '-v', '-S', 'FORWARD']);
      return Number(/-A FORWARD -i wan0 -c (\d+) \d+ -j DROP/.exec(out)?.[1] ?? -1);
    };
    const droppedBefore = await dropped();
    expect(await ping(lab, lab.ns.vmPod, LAB.clientIP)).toBe(0);
    expect(await ping(lab, lab.ns.client, LAB.podIP)).toBe(0);
    const arrived = await sh(lab, lab.ns.vm, ['iptables', '-w', '5', '-v', '-S', 'INPUT']);
    // The worker's side gets through the NAT to the VM...
    expect(Number(/-p udp -m udp --dport 4789 -c (\d+)/.exec(arrived)?.[1] ?? 0)).toBeGreaterThan(0);
    // ...and every answer of the VM is dropped by the NAT.
    expect(await dropped()).toBeGreaterThan(droppedBefore);
    await lab.exec(lab.ns.vm, ['iptables', '-w', '5', '-D', 'INPUT', '-p', 'udp', '--dport', '4789']);
  });

  it('still tears down completely', async () => {
    await worker.teardown({ netns: podPath() });
    await vm.teardown({ podNetns: vmPodPath(), podNetwork: vmPn });
    expect(await leftovers(lab)).toEqual(NOTHING);
  });
});
