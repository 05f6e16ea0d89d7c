// A real pod VM: the local provider boots a qemu guest (TCG) from the image in tools/podvm-image/,
// with apf.json as NoCloud userdata; inside, process-user-data and our agent bring up kernel
// WireGuard; on the worker, wgctl brings up wireguard-go, and the tunnel crosses the lab's NAT:
//
//   client pod ─┐                                                   <p>-vm: eth0 ─ br-vm ─ TAP
//               ├─ br0 ─ worker host ══ NAT (masquerade, drops new inbound) ══╛            ║
//   peer pod  ──┘   (wireguard-go; device in the peer pod netns)          qemu guest: eth0 203.0.113.10
//                                                                           podns: eth0 = kernel wg
//
// Measured and printed: qemu start → kernel → init → agent ready → first packet through the tunnel.
// Guest-side commands go through the lab image's command channel (a virtio-serial port).
import { expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { realExec } from '../../src/exec.js';
import { isLiveProcess } from '../../src/process-identity.js';
import { LAB } from '../../lab/lab.js';
import { TRANSFER, pingReceived, startTransferServer } from '../../lab/flow.js';
import { guestTool } from '../../lab/guest/tools.js';
import { qemuUnavailable, startQemuPodVm, type QemuPodVm } from '../../lab/lab-vm.js';
import { describeLabWhere, labFlowSuite } from './root.js';

const GUEST_TRANSFER = guestTool('lab-transfer');
/** In the guest: busybox's shell prefers its own `ip` applet, so iproute2's by its full path. */
const IP = '/usr/sbin/ip';
const BYTES = 4 << 20;

const describeQemu = describeLabWhere(qemuUnavailable(), 'POD VM (qemu) LAB TESTS');

describeQemu('a real pod VM (qemu, kernel WireGuard) through the NAT lab', () => {
  let vm: QemuPodVm | undefined;
  const timings: Record<string, number> = {};
  let stateDir = '';
  let qemuPid: number | null = null;
  let tap = '';

  const { lab, flow } = labFlowSuite({
    setUp: async () => {
      await flow.inspect();
      stateDir = `${flow.dir}/podvm`;
      const apf = await readFile(flow.apfPath, 'utf8');
      const t0 = Date.now();
      vm = await startQemuPodVm(lab, apf, { exec: realExec, stateDir, controlChannel: true, waitReady: false });
      timings['image (build or cache)'] = vm.image.ms;
      const startedAt = vm.guest.startedAt;
      qemuPid = vm.guest.pid;
      tap = (JSON.parse(await readFile(`${vm.provider.dir(vm.name)}/instance.json`, 'utf8')) as { tap: string }).tap;
      // CAA's order: StartVM creates the instance, then sets up the worker side at once.
      await flow.setup();
      // Probe the tunnel from the client pod until the first reply (the worker's handshake retries
      // every 5 s until the guest's agent is up).
      const ready = vm.guest.waitReady(180_000);
      ready.catch(() => undefined);
      const deadline = Date.now() + 180_000;
      for (;;) {
        const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '1', LAB.podIP], { okCodes: [0, 1], timeoutMs: 10_000 });
        if (r.code === 0) break;
        if (vm.guest.marks.hostMs['failed'] !== undefined || vm.guest.exited || Date.now() > deadline) {
          await ready; // throws with the guest's console tail
          throw new Error(`no packet through the tunnel within 180 s\n${vm.guest.tail()}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      timings['first packet'] = Date.now() - startedAt;
      await ready;
      Object.assign(timings, Object.fromEntries(Object.entries(vm.guest.marks.hostMs).map(([k, v]) => [`guest ${k}`, v])));
      timings['total (lab + boot + tunnel)'] = Date.now() - t0;
      console.log(
        `pod VM timings, ms after qemu start (accel ${vm.guest.accel}):\n` +
          Object.entries(timings)
            .map(([k, v]) => `  ${k.padEnd(28)} ${v}`)
            .join('\n'),
      );
    },
    tearDown: async () => {
      await vm?.stop().catch((e: unknown) => console.warn('pod VM cleanup:', e));
    },
    setUpMs: 300_000,
  });

  it('carries ping both ways between the client pod and the VM pod netns inside the guest', async () => {
    const there = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.podIP], { okCodes: [0, 1] });
    expect(pingReceived(there.stdout).received).toBe(3);
    const back = await vm!.guest.run(`${IP} netns exec podns ping -c 3 -W 2 ${LAB.clientIP}`);
    expect(pingReceived(back.output).received).toBe(3);
  });

  it('carries TCP both ways, checksummed', async () => {
    // client pod → VM pod netns: the server runs in the guest.
    const port = 5301;
    const started = await vm!.guest.run(
      `${IP} netns exec podns ${GUEST_TRANSFER} serve ${LAB.podIP} ${port} >/tmp/t1.out 2>/tmp/t1.err &` +
        ' for i in $(seq 200); do grep -q listening /tmp/t1.err 2>/dev/null && exit 0; sleep 0.1; done; cat /tmp/t1.err; exit 1',
    );
    expect(started.code).toBe(0);
    const sent = JSON.parse((await lab.exec(lab.ns.client, [process.execPath, TRANSFER, 'send', LAB.podIP, String(port), String(BYTES), 'up'], { timeoutMs: 60_000 })).stdout) as {
      sha256: string;
      ms: number;
    };
    const got = await vm!.guest.run('for i in $(seq 100); do [ -s /tmp/t1.out ] && break; sleep 0.1; done; cat /tmp/t1.out');
    expect(JSON.parse(got.output)).toEqual({ bytes: BYTES, sha256: sent.sha256 });

    // VM pod netns → client pod: the server runs in the client pod.
    const server = await startTransferServer(lab.ns.client, LAB.clientIP, port + 1);
    try {
      const back = await vm!.guest.run(`${IP} netns exec podns ${GUEST_TRANSFER} send ${LAB.clientIP} ${port + 1} ${BYTES} down`, 60_000);
      expect(back.code).toBe(0);
      const received = await server.received();
      const b = JSON.parse(back.output) as { sha256: string; ms: number };
      expect(received).toEqual({ bytes: BYTES, sha256: b.sha256 });
      console.log(`4 MiB client → VM pod in ${sent.ms.toFixed(0)} ms, VM pod → client in ${b.ms.toFixed(0)} ms (TCG guest)`);
    } finally {
      server.stop();
    }
  }, 120_000);

  it('runs WireGuard in the guest kernel, learned the NAT address, and wgctl status shows the handshake', async () => {
    const links = await vm!.guest.run(`${IP} -n podns -d -j link show dev eth0`);
    expect((JSON.parse(links.output) as { linkinfo?: { info_kind?: string } }[])[0]?.linkinfo?.info_kind).toBe('wireguard');
    expect((await vm!.guest.run('test -d /sys/module/wireguard')).code).toBe(0);
    // The VM peer has no configured endpoint: it learned the worker's address behind the NAT.
    const shown = await vm!.guest.run(`${IP} netns exec podns ${guestTool('wg-show')} eth0`);
    expect(shown.code).toBe(0);
    const dev = JSON.parse(shown.output) as { listenPort: number; peers: { endpoint: string | null; latestHandshake: number }[] };
    expect(dev.listenPort).toBe(flow.listenPort);
    expect(dev.peers[0]?.endpoint?.startsWith(`${LAB.natWanIP}:`)).toBe(true);
    expect(dev.peers[0]?.latestHandshake).toBeGreaterThan(0);
    const rows = JSON.parse((await flow.wgctl(['status', '--json'])).stdout) as { state: string; endpoint: string; latestHandshake: number }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.state).toBe('up');
    expect(rows[0]?.endpoint).toBe(`${LAB.vmIP}:${flow.listenPort}`);
    expect(rows[0]?.latestHandshake).toBeGreaterThan(0);
    const mem = await vm!.guest.run('free -m | sed -n 2p');
    const rss = qemuPid === null ? '' : ((await readFile(`/proc/${qemuPid}/status`, 'utf8')).match(/VmRSS:\s+(\d+) kB/)?.[1] ?? '');
    console.log(`guest memory (free -m): ${mem.output.trim()}; qemu RSS on the host: ${Math.round(Number(rss) / 1024)} MiB`);
  });

  it('deleteInstance leaves nothing on the host: no qemu, no TAP, no seed or state folder', async () => {
    const dir = vm!.provider.dir(vm!.name);
    expect(existsSync(`${dir}/seed.iso`)).toBe(true);
    const r1 = await vm!.provider.deleteInstance(vm!.name);
    expect(r1.existed).toBe(true);
    expect((await vm!.provider.deleteInstance(vm!.name)).existed).toBe(false); // idempotent
    expect(existsSync(dir)).toBe(false);
    if (qemuPid !== null) {
      // Gone, or at most a zombie waiting for its reaper.
      expect(await isLiveProcess(qemuPid, {})).toBe(false);
    }
    const links = (await realExec(['ip', '-n', lab.ns.vm, '-br', 'link'])).stdout;
    expect(links).not.toContain(tap);
    // No other process still holds this instance's folder.
    const left: string[] = [];
    for (const p of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
      const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(dir)) left.push(`${p}: ${cmd.replaceAll('\0', ' ').slice(0, 120)}`);
    }
    expect(left).toEqual([]);
    vm = undefined;
  }, 60_000);
});
