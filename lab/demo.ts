// `npm run demo`: the whole story in one run. Builds a lab (a client pod and a peer pod on a
// worker, a NAT router that drops unsolicited inbound flows, and a pod VM: a real qemu guest with
// kernel WireGuard by default, or namespaces where qemu cannot run), runs the real CAA flow
// (inspect → apf.json → the pod VM's agent → wgctl setup), shows traffic both ways and the state of
// both ends, then tears everything down and says so. `--netns-vm` skips qemu.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describeError } from '../src/errors.js';
import { realExec } from '../src/exec.js';
import { guestTool } from './guest/tools.js';
import { startQemuPodVm, type QemuPodVm } from './lab-vm.js';
import { podVmDeviceName } from '../src/tunnel/wireguard/names.js';
import { PublicKey } from '../src/wireguard/keys.js';
import { UapiClient } from '../src/wireguard/uapi/client.js';
import { LAB, Lab } from './lab.js';
import { LabFlow, TRANSFER, pingReceived } from './flow.js';

const say = (text: string): void => void process.stdout.write(`\n== ${text}\n`);
const show = (text: string): void => void process.stdout.write(text.replace(/^/gm, '   ') + '\n');
const BYTES = 10 << 20;

/** Where the pod VM's pod netns is, and how to run a shell command line in it. */
interface VmPod {
  kind: string;
  /** Runs in the VM's pod netns; returns stdout. */
  run(cmd: string, timeoutMs?: number): Promise<string>;
  /** The transfer tool's command line there. */
  transfer: string;
  /** The WireGuard device of the pod VM, without keys. */
  device(): Promise<string>;
}

const USAGE = `usage: npm run demo [-- --netns-vm]
  Builds a lab of namespaces (prefix pw????), runs the CAA flow through our CLIs with a qemu pod VM
  (or, with --netns-vm or where qemu cannot run, a namespace playing the VM), shows traffic both
  ways, then removes everything it made. Needs root.
`;

async function main(): Promise<void> {
  const unknown = process.argv.slice(2).filter((a) => a !== '--netns-vm');
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  if (unknown.length > 0) {
    process.stderr.write(`unknown argument ${unknown[0]}\n${USAGE}`);
    process.exit(2);
  }
  // A reader that goes away (the demo piped into head) must not cut the cleanup short.
  process.stdout.on('error', () => undefined);
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run demo needs root: it creates network namespaces\n');
    process.exit(1);
  }
  const lab = new Lab({ exec: realExec });
  const flow = new LabFlow({ exec: realExec, lab });
  let qemu: QemuPodVm | null = null;
  let failed = false;
  const cleanup = async (): Promise<void> => {
    if (qemu !== null) await qemu.stop().catch((e: unknown) => process.stderr.write(`pod VM cleanup: ${describeError(e)}\n`));
    else await flow.agentTeardown().catch(() => undefined);
    await flow.destroy();
  };
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`building lab ${lab.prefix}: client pod ${LAB.clientIP} and peer pod ${LAB.podIP} on the worker (${LAB.workerIP}),`);
    show(`NAT router ${LAB.natLanIP} → ${LAB.natWanIP} (drops new inbound flows), pod VM ${LAB.vmIP}`);
    await lab.create();
    await flow.init();

    say('wgctl inspect --netns (worker side): pod-network for apf.json (keys hidden here)');
    const pn = await flow.inspect();
    const wg = pn['wireguard'] as Record<string, unknown>;
    show(JSON.stringify({ ...pn, wireguard: { ...wg, 'private-key': '<hidden>', 'preshared-key': '<hidden>' } }, null, 2));
    const workerKey = PublicKey.fromBase64(wg['peer-public-key'] as string);

    let vm: VmPod;
    const useQemu = !process.argv.includes('--netns-vm');
    if (useQemu) {
      say('starting the pod VM: a qemu guest (Debian cloud kernel, kernel WireGuard), apf.json in a NoCloud seed');
      try {
        const t = Date.now();
        qemu = await startQemuPodVm(lab, await readFile(flow.apfPath, 'utf8'), { exec: realExec, controlChannel: true });
        const marks = Object.entries(qemu.guest.marks.hostMs).map(([k, v]) => `${k} ${v} ms`).join(', ');
        show(`guest ready in ${Date.now() - t} ms (accel ${qemu.guest.accel}); after qemu start: ${marks}`);
      } catch (e) {
        qemu = null;
        show(`NO QEMU POD VM: ${describeError(e)}`);
        show('falling back to a pod VM made of network namespaces (wireguard-go instead of kernel WireGuard)');
      }
    }
    if (qemu !== null) {
      const guest = qemu.guest;
      vm = {
        kind: 'qemu guest, kernel WireGuard',
        run: async (cmd, timeoutMs) => (await guest.run(`/usr/sbin/ip netns exec podns ${cmd}`, timeoutMs)).output,
        transfer: guestTool('lab-transfer'),
        device: async () => (await guest.run(`/usr/sbin/ip netns exec podns ${guestTool('wg-show')} eth0`)).output,
      };
    } else {
      say('peerpod-wg-agent setup (pod VM side, reads apf.json)');
      show((await flow.agentSetup()).stdout.trim());
      vm = {
        kind: 'network namespaces, wireguard-go',
        run: async (cmd, timeoutMs) =>
          (await lab.exec(lab.ns.vmPod, cmd.split(' '), { okCodes: [0, 1, 2], ...(timeoutMs ? { timeoutMs } : {}) })).stdout,
        transfer: `${process.execPath} ${TRANSFER}`,
        device: async () => {
          const d = await new UapiClient().get(podVmDeviceName(workerKey));
          return JSON.stringify({ listenPort: d.listenPort, peers: d.peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, latestHandshake: p.lastHandshakeSec, rxBytes: p.rxBytes, txBytes: p.txBytes })) });
        },
      };
    }

    say('wgctl setup --netns … --pod-vm-ip … (worker side, wireguard-go; it initiates through the NAT)');
    const t0 = performance.now();
    show((await flow.setup()).stdout.trim());
    const tSetup = performance.now() - t0;
    let firstReply = NaN;
    for (let i = 0; i < 300; i++) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '0.1', LAB.podIP], { okCodes: [0, 1] });
      if (pingReceived(r.stdout).received === 1) {
        firstReply = performance.now() - t0;
        break;
      }
    }
    show(`wgctl setup took ${tSetup.toFixed(0)} ms (Node start included); first ping reply ${firstReply.toFixed(0)} ms after it began`);

    say(`ping client pod → VM pod, and VM pod (${vm.kind}) → client pod`);
    const there = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.podIP], { okCodes: [0, 1] });
    show(there.stdout.trim().split('\n').slice(-2).join('\n'));
    const back = await vm.run(`ping -c 3 -i 0.2 -W 2 ${LAB.clientIP}`);
    show(back.trim().split('\n').slice(-2).join('\n'));
    if (pingReceived(there.stdout).received === 0 || pingReceived(back).received === 0) failed = true;

    say('TCP, 10 MB each way, checksummed');
    // client pod → VM pod: the receiver runs in the VM's pod netns.
    let up: { sha256: string; ms: number } | null = null;
    let upGot = '';
    if (qemu !== null) {
      await vm.run(`${vm.transfer} serve ${LAB.podIP} 5301 >/tmp/demo-t1.out 2>/dev/null &`);
      await new Promise((r) => setTimeout(r, 1500));
      up = JSON.parse((await lab.exec(lab.ns.client, [process.execPath, TRANSFER, 'send', LAB.podIP, '5301', String(BYTES), 'demo'], { timeoutMs: 120_000 })).stdout) as {
        sha256: string;
        ms: number;
      };
      upGot = (await qemu.guest.run('for i in $(seq 100); do [ -s /tmp/demo-t1.out ] && break; sleep 0.1; done; cat /tmp/demo-t1.out')).output;
    } else {
      const server = spawn('ip', ['netns', 'exec', lab.ns.vmPod, process.execPath, TRANSFER, 'serve', LAB.podIP, '5301'], { stdio: ['ignore', 'pipe', 'ignore'] });
      server.stdout.on('data', (b: Buffer) => (upGot += b.toString()));
      await new Promise((r) => setTimeout(r, 300));
      up = JSON.parse((await lab.exec(lab.ns.client, [process.execPath, TRANSFER, 'send', LAB.podIP, '5301', String(BYTES), 'demo'])).stdout) as {
        sha256: string;
        ms: number;
      };
      await new Promise<void>((r) => (server.exitCode !== null ? r() : server.on('exit', () => r())));
    }
    const upOk = (JSON.parse(upGot) as { sha256: string }).sha256 === up.sha256;
    show(`client pod → VM pod: ${BYTES} bytes in ${up.ms.toFixed(0)} ms, sha256 ${upOk ? 'matches' : 'DIFFERS'} (${up.sha256.slice(0, 16)}…)`);
    // VM pod → client pod: the receiver runs in the client pod.
    const server = spawn('ip', ['netns', 'exec', lab.ns.client, process.execPath, TRANSFER, 'serve', LAB.clientIP, '5302'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let downGot = '';
    server.stdout.on('data', (b: Buffer) => (downGot += b.toString()));
    await new Promise((r) => setTimeout(r, 300));
    const down = JSON.parse(await vm.run(`${vm.transfer} send ${LAB.clientIP} 5302 ${BYTES} demo`, 120_000)) as { sha256: string; ms: number };
    await new Promise<void>((r) => (server.exitCode !== null ? r() : server.on('exit', () => r())));
    const downOk = (JSON.parse(downGot) as { sha256: string }).sha256 === down.sha256;
    show(`VM pod → client pod: ${BYTES} bytes in ${down.ms.toFixed(0)} ms, sha256 ${downOk ? 'matches' : 'DIFFERS'} (${down.sha256.slice(0, 16)}…)`);
    if (!upOk || !downOk) failed = true;

    say('worker side: wgctl status');
    show((await flow.wgctl(['status', '--direct'])).stdout.trimEnd());

    say(`pod VM side (${vm.kind}): the device as it reports itself (no keys)`);
    const dev = JSON.parse(await vm.device()) as { listenPort: number; peers: { endpoint: string | null; latestHandshake: number; rxBytes: number; txBytes: number }[] };
    for (const p of dev.peers) {
      show(`listening on :${dev.listenPort}; peer ${workerKey.toBase64()} (the worker)`);
      show(`endpoint ${p.endpoint ?? '-'} (learned: the NAT router's address), handshake ${Math.floor(Date.now() / 1000) - p.latestHandshake}s ago, rx ${p.rxBytes} B, tx ${p.txBytes} B`);
    }

    say('teardown (worker, then pod VM)');
    show((await flow.teardown()).stdout.trim());
    if (qemu !== null) {
      await qemu.stop();
      qemu = null;
      show('pod VM deleted (qemu stopped, TAP, seed and state removed)');
    } else {
      show((await flow.agentTeardown()).stdout.trim());
    }
  } catch (e) {
    failed = true;
    process.stderr.write(`demo failed: ${describeError(e)}\n`);
  } finally {
    await cleanup();
    const left = (await realExec(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(lab.prefix));
    say(left.length === 0 ? `lab ${lab.prefix} removed: no namespaces, devices, VMs or processes left` : `LEFT BEHIND: ${left.join(' ')}`);
  }
  process.exit(failed ? 1 : 0);
}

void main();
