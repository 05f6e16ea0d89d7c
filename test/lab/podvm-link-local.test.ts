// A real pod VM reached over an IPv6 link-local underlay: the local provider puts the guest's TAP in
// the worker's host netns with no IPv4 and no bridge, only fe80::1/64 on the host end and
// fe80::10/64 in the guest, and the worker's wireguard-go sends to the scoped endpoint
// [fe80::10%<tap>]:51900. The pod is dual-stack, so both families cross the tunnel into the guest's
// kernel WireGuard:
//
//   client pod ─┐
//               ├─ br0 ─ worker host: TAP fe80::1/64 ══ qemu guest: eth0 fe80::10/64 (no IPv4)
//   peer pod  ──┘   (wireguard-go; device in the peer pod netns)        podns: eth0 = kernel wg
//
// Asserted: ping both ways per family; the guest's NIC has no IPv4 address; the worker's endpoint
// is the scoped link-local one and the guest learned the worker's link-local address; and the
// deleted instance leaves no TAP.
import { expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { realExec } from '../../src/exec.js';
import { LAB } from '../../lab/lab.js';
import { pingReceived } from '../../lab/flow.js';
import { guestTool } from '../../lab/guest/tools.js';
import { LINK_LOCAL, qemuUnavailable, startQemuPodVm, type QemuPodVm } from '../../lab/lab-vm.js';
import { podIdOf } from '../../src/state/store.js';
import { describeLabWhere, labFlowSuite } from './root.js';

const IP = '/usr/sbin/ip';

const describeQemu = describeLabWhere(qemuUnavailable(), 'POD VM (qemu, link-local) LAB TESTS');

describeQemu('a real pod VM over an IPv6 link-local host⇄guest link (qemu, kernel WireGuard)', () => {
  let vm: QemuPodVm | undefined;
  let tap = '';

  const { lab, flow } = labFlowSuite({
    lab: { podStack: 'dual' },
    setUp: async () => {
      await flow.inspect();
      const apf = await readFile(flow.apfPath, 'utf8');
      vm = await startQemuPodVm(lab, apf, { exec: realExec, stateDir: `${flow.dir}/podvm`, controlChannel: true, waitReady: false, link: 'link-local' });
      tap = (JSON.parse(await readFile(`${vm.provider.dir(vm.name)}/instance.json`, 'utf8')) as { tap: string }).tap;
      const setup = await flow.wgctl(['setup', '--netns', lab.path(lab.ns.pod), '--pod-vm-ip', vm.ip, '--config', flow.podNetworkPath]);
      if (setup.code !== 0) throw new Error(`wgctl setup: ${setup.stderr}`);
      const ready = vm.guest.waitReady(180_000);
      ready.catch(() => undefined);
      const t0 = Date.now();
      for (;;) {
        const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '1', LAB.podIP], { okCodes: [0, 1], timeoutMs: 10_000 });
        if (r.code === 0) break;
        if (vm.guest.marks.hostMs['failed'] !== undefined || vm.guest.exited || Date.now() - t0 > 180_000) {
          await ready;
          throw new Error(`no packet through the tunnel within 180 s\n${vm.guest.tail()}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await ready;
      console.log(`link-local pod VM: first packet through the tunnel ${Date.now() - vm.guest.startedAt} ms after qemu started`);
    },
    tearDown: async () => {
      await vm?.stop().catch((e: unknown) => console.warn('pod VM cleanup:', e));
    },
    setUpMs: 300_000,
  });

  it('hands out a scoped link-local address, and the guest has no IPv4 on its NIC', async () => {
    expect(vm!.ip).toBe(`${LINK_LOCAL.guest.split('/')[0]}%${tap}`);
    const v4 = await vm!.guest.run(`${IP} -4 -br address show dev eth0`);
    expect(v4.output.trim()).toBe('');
    const v6 = await vm!.guest.run(`${IP} -6 -br address show dev eth0`);
    expect(v6.output).toContain(LINK_LOCAL.guest);
  });

  it('carries ping both ways, for each family, between the client pod and the pod netns in the guest', async () => {
    for (const to of [LAB.podIP, LAB.podIP6]) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', to], { okCodes: [0, 1] });
      expect(pingReceived(r.stdout).received).toBe(3);
    }
    for (const to of [LAB.clientIP, LAB.clientIP6]) {
      const back = await vm!.guest.run(`${IP} netns exec podns ping -c 3 -W 2 ${to}`);
      expect(pingReceived(back.output).received).toBe(3);
    }
  }, 60_000);

  it('runs over the scoped endpoint: the worker sends to [fe80::10%tap], the guest learned the worker\'s link-local address', async () => {
    const rows = JSON.parse((await flow.wgctl(['status', '--json'])).stdout) as { endpoint: string; state: string }[];
    // wireguard-go (v0.0.20220316) takes the zone but reports the endpoint without it.
    expect(rows[0]?.state).toBe('up');
    expect([`[${vm!.ip}]:${flow.listenPort}`, `[${vm!.ip.split('%')[0]}]:${flow.listenPort}`]).toContain(rows[0]?.endpoint);
    const record = await readFile(`${flow.stateDir}/pods/${podIdOf(lab.path(lab.ns.pod))}/record.json`, 'utf8');
    expect((JSON.parse(record) as { podVmIPs: string[] }).podVmIPs).toEqual([vm!.ip]);
    const shown = await vm!.guest.run(`${IP} netns exec podns ${guestTool('wg-show')} eth0`);
    const dev = JSON.parse(shown.output) as { peers: { endpoint: string | null; latestHandshake: number }[] };
    expect(dev.peers[0]?.endpoint).toMatch(/^\[fe80::[0-9a-f:]+(%\w+)?\]:\d+$/);
    expect(dev.peers[0]?.latestHandshake).toBeGreaterThan(0);
  });

  it('deleteInstance removes the TAP from the worker', async () => {
    await vm!.stop();
    vm = undefined;
    expect((await realExec(['ip', '-n', lab.ns.worker, '-br', 'link'])).stdout).not.toContain(tap);
  }, 60_000);
});
