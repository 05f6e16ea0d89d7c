// The WireGuard tunnel end to end through a NAT router, with real namespaces, real wireguard-go
// (or kernel WireGuard, where test/lab/worker-guest.test.ts runs this file) and the real CLIs (wgctl in the worker's host netns, the agent in the pod VM's root netns):
//
//   client pod ─┐                                        
//               ├─ br0 ─ worker host ══ NAT (masquerade, drops new inbound) ══ pod VM root ─ VM pod netns
//   peer pod  ──┘   (wg device lives in the peer pod netns; its UDP socket in the worker host)
//
// See lab/lab.ts for the addresses.
import { expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { realExec } from '../../src/exec.js';
import { LAB } from '../../lab/lab.js';
import { labTransfer, pingReceived } from '../../lab/flow.js';
import { UapiClient } from '../../src/wireguard/uapi/client.js';
import { KernelBackend, kernelWireGuardAvailable } from '../../src/wireguard/kernel/backend.js';
import { podVmDeviceName } from '../../src/tunnel/wireguard/names.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import { describeLab, LAB_SLOWDOWN, labFlowSuite } from './root.js';

const MB10 = 10 * 1024 * 1024;
/** The backend wgctl and the agent pick here (the worker guest runs this file with WG_BACKEND=kernel). */
const BACKEND = process.env['WG_BACKEND'] === 'kernel' || (process.env['WG_BACKEND'] !== 'userspace' && kernelWireGuardAvailable().available) ? 'kernel' : 'userspace';


describeLab('wireguard tunnel through NAT (lab)', () => {
  // Timeouts generous for the worker guest (TCG), where each CLI start costs about a second.
  const { lab, flow } = labFlowSuite({ setUpMs: 180_000, tearDownMs: 180_000 });

  it('carries ping both ways between the client pod and the VM pod', async () => {
    const there = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.podIP], { okCodes: [0, 1] });
    expect(pingReceived(there.stdout).received).toBeGreaterThanOrEqual(2);
    const back = await lab.exec(lab.ns.vmPod, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.clientIP], { okCodes: [0, 1] });
    expect(pingReceived(back.stdout).received).toBe(3);
  });

  it('carries 10 MB over TCP intact in both directions', async () => {
    const out = await labTransfer(lab, lab.ns.client, lab.ns.vmPod, LAB.podIP, 5201, MB10);
    expect(out.received).toEqual({ bytes: MB10, sha256: out.sent.sha256 });
    const back = await labTransfer(lab, lab.ns.vmPod, lab.ns.client, LAB.clientIP, 5202, MB10);
    expect(back.received).toEqual({ bytes: MB10, sha256: back.sent.sha256 });
    console.log(`10 MB client→VM pod in ${out.sent.ms.toFixed(0)} ms, VM pod→client in ${back.sent.ms.toFixed(0)} ms`);
  }, 120_000);

  it('lets the VM pod reach beyond the worker (pod egress through the worker)', async () => {
    const r = await lab.exec(lab.ns.vmPod, ['ping', '-c', '2', '-i', '0.2', '-W', '2', LAB.natLanIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBe(2);
  });

  it('the VM learned the NAT router address as the worker endpoint', async () => {
    const workerKey = PublicKey.fromBase64((flow.podNetworkJson['wireguard'] as Record<string, string>)['peer-public-key']!);
    // On kernel WireGuard (the worker guest) the VM's device is a link in the VM pod netns, renamed
    // to the pod's interface; wireguard-go keeps answering on the UAPI socket of its birth name.
    const kernel = new KernelBackend({ exec: realExec });
    const iface = flow.podNetworkJson['interface'];
    const dev = BACKEND === 'kernel'
      ? await kernel.device(typeof iface === 'string' ? iface : 'eth0', { netns: lab.path(lab.ns.vmPod) }).finally(() => void kernel.close())
      : await new UapiClient().get(podVmDeviceName(workerKey));
    const peer = dev.peers[0];
    expect(peer?.endpoint?.startsWith(`${LAB.natWanIP}:`)).toBe(true);
    expect(peer?.lastHandshakeSec).toBeGreaterThan(0);
  });

  it('answers a 1500-byte DF ping with ICMP "frag needed" (never loses it silently)', async () => {
    const r = await lab.exec(lab.ns.client, ['ping', '-M', 'do', '-s', '1472', '-c', '2', '-W', '2', LAB.podIP], {
      okCodes: [0, 1, 2],
    });
    const text = r.stdout + r.stderr;
    const delivered = pingReceived(text).received > 0;
    const told = /Frag needed|message too long/i.test(text);
    expect(delivered || told).toBe(true);
    // And a packet that fits the tunnel goes through.
    const fits = await lab.exec(lab.ns.client, ['ping', '-M', 'do', '-s', '1300', '-c', '2', '-W', '2', LAB.podIP], {
      okCodes: [0, 1],
    });
    expect(pingReceived(fits.stdout).received).toBe(2);
  });

  it('does not collapse a bulk TCP transfer from a pod whose CNI MTU is 1500', async () => {
    expect(lab.podMtu).toBe(1500);
    const server = spawn('ip', ['netns', 'exec', lab.ns.vmPod, 'iperf3', '-s', '-1', '-B', LAB.podIP], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await lab.exec(lab.ns.client, ['iperf3', '-c', LAB.podIP, '-t', '3', '-J'], { timeoutMs: 30_000 });
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      const gbps = j.end.sum_received.bits_per_second / 1e9;
      console.log(`bulk TCP client → VM pod through ${BACKEND === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'}, CNI MTU 1500: ${gbps.toFixed(3)} Gbit/s`);
      // "Collapse" is the outer-fragmentation regime, an order of magnitude below normal.
      expect(gbps).toBeGreaterThan(0.05 / LAB_SLOWDOWN);
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
    }
  }, 60_000);

  it('drops packets from the VM pod that carry another source address (cryptokey routing)', async () => {
    // Count, in the client pod, packets from the pod IP and from a forged address.
    await lab.exec(lab.ns.client, ['iptables', '-w', '5', '-A', 'INPUT', '-s', LAB.podIP, '-p', 'icmp']);
    await lab.exec(lab.ns.client, ['iptables', '-w', '5', '-A', 'INPUT', '-s', '198.18.1.99', '-p', 'icmp']);
    await lab.exec(lab.ns.vmPod, ['ip', 'address', 'add', '198.18.1.99/32', 'dev', 'eth0']);
    await lab.exec(lab.ns.vmPod, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', '198.18.1.99', LAB.clientIP], { okCodes: [0, 1] });
    await lab.exec(lab.ns.vmPod, ['ping', '-c', '3', '-i', '0.2', '-W', '1', LAB.clientIP], { okCodes: [0, 1] });
    // `-v -S` prints each rule with its counters: "-A INPUT -s 198.18.1.21/32 -p icmp -c <packets> <bytes>".
    const counters = (await lab.exec(lab.ns.client, ['iptables', '-w', '5', '-v', '-S', 'INPUT'])).stdout;
    const count = (src: string) => Number(new RegExp(`-s ${src.replaceAll('.', '\\.')}/32 -p icmp -c (\\d+)`).exec(counters)?.[1] ?? -1);
    expect(count(LAB.podIP)).toBeGreaterThanOrEqual(3);
    expect(count('198.18.1.99')).toBe(0);
    await lab.exec(lab.ns.vmPod, ['ip', 'address', 'del', '198.18.1.99/32', 'dev', 'eth0']);
  });

  it('shows the tunnel in wgctl status without any key material', async () => {
    const r = await flow.wgctl(['status', '--json']);
    const rows = JSON.parse(r.stdout) as { device: string; state: string; latestHandshake: number; endpoint: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.state).toBe('up');
    expect(rows[0]?.endpoint).toBe(`${LAB.vmIP}:${flow.listenPort}`);
    const table = (await flow.wgctl(['status'])).stdout;
    const wg = flow.podNetworkJson['wireguard'] as Record<string, string>;
    // Every state file but the worker's key file, and every log of wireguard-go.
    const files: string[] = [];
    for (const root of [flow.stateDir, flow.runDir]) {
      // No run folder on kernel WireGuard: no wireguard-go, no logs.
      for (const f of await readdir(root, { recursive: true }).catch(() => [] as string[])) {
        const path = join(root, f);
        if ((await stat(path)).isFile() && !f.endsWith('.key')) files.push(await readFile(path, 'utf8'));
      }
    }
    expect(files.length).toBeGreaterThan(0);
    for (const secret of [wg['private-key'], wg['preshared-key']]) {
      expect(secret).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect(r.stdout).not.toContain(secret);
      expect(table).not.toContain(secret);
      for (const f of files) expect(f).not.toContain(secret);
    }
  });

  it('tears down without leaving a link, rule, route, proxy entry, iptables rule, process or socket', async () => {
    const device = (JSON.parse((await flow.wgctl(['status', '--json'])).stdout) as { device: string }[])[0]!.device;
    const workerKey = PublicKey.fromBase64((flow.podNetworkJson['wireguard'] as Record<string, string>)['peer-public-key']!);
    const vmDevice = podVmDeviceName(workerKey);
    await flow.teardown();
    await flow.agentTeardown();
    // Twice: teardown is idempotent.
    await flow.teardown();
    await flow.agentTeardown();
    const pod = lab.ns.pod;
    const links = (await lab.exec(pod, ['ip', '-br', 'link'])).stdout;
    expect(links).not.toContain(device);
    const rules = (await lab.exec(pod, ['ip', 'rule'])).stdout;
    expect(rules).toMatch(/^0:\s+from all lookup local/m);
    expect(rules).not.toContain('2151');
    expect((await lab.exec(pod, ['ip', 'route', 'show', 'table', '2151'])).stdout.trim()).toBe('');
    expect((await lab.exec(pod, ['ip', 'neigh', 'show', 'proxy'])).stdout.trim()).toBe('');
    expect((await lab.exec(pod, ['iptables', '-w', '5', '-t', 'mangle', '-S', 'FORWARD'])).stdout).not.toContain('TCPMSS');
    expect((await lab.exec(lab.ns.vmPod, ['ip', '-br', 'link'])).stdout).not.toMatch(/eth0/);
    const sockets = await readdir('/var/run/wireguard').catch(() => [] as string[]);
    expect(sockets.filter((s) => s.startsWith(device) || s.startsWith(vmDevice))).toEqual([]);
    const ps = (await realExec(['ps', '-eo', 'pid=,comm=,args='])).stdout;
    expect(ps.split('\n').filter((l) => l.includes('wireguard-go') && (l.includes(device) || l.includes(vmDevice)))).toEqual([]);
    const status = JSON.parse((await flow.wgctl(['status', '--json'])).stdout) as unknown[];
    expect(status).toEqual([]);
    // Still reachable without the tunnel? No: the pod IP is local to the peer pod netns again.
    const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '1', LAB.podIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBe(1);
  }, 60_000 * LAB_SLOWDOWN);
});
