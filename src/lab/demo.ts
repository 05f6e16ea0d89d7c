// `npm run demo`: the whole story in one run. Builds a lab (client pod and peer pod on a worker,
// a NAT router that drops unsolicited inbound flows, a pod VM as namespaces), runs the real CAA
// flow (inspect → apf.json → agent setup → wgctl setup), shows traffic both ways and the state of
// both ends, then tears everything down and says so.
import { spawn } from 'node:child_process';
import { realExec } from '../exec.js';
import { podVmDeviceName } from '../tunnel/wireguard/names.js';
import { PublicKey } from '../wireguard/keys.js';
import { UapiClient } from '../wireguard/uapi/client.js';
import { LAB, Lab } from './lab.js';
import { LabFlow, TRANSFER, pingReceived } from './flow.js';

const say = (text: string): void => void process.stdout.write(`\n== ${text}\n`);
const show = (text: string): void => void process.stdout.write(text.replace(/^/gm, '   ') + '\n');

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run demo needs root: it creates network namespaces\n');
    process.exit(1);
  }
  const lab = new Lab({ exec: realExec });
  const flow = new LabFlow({ exec: realExec, lab });
  let failed = false;
  const onSignal = (): void => {
    void flow.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`building lab ${lab.prefix}: client pod ${LAB.clientIP} and peer pod ${LAB.podIP} on the worker (${LAB.workerIP}),`);
    show(`NAT router ${LAB.natLanIP} → ${LAB.natWanIP} (drops new inbound flows), pod VM ${LAB.vmIP}`);
    await lab.create();
    await flow.init();

    const vmToWorker = await lab.exec(lab.ns.vm, ['ping', '-c', '1', '-W', '1', LAB.workerIP], { okCodes: [0, 1] });
    show(`pod VM → worker without a tunnel: ${pingReceived(vmToWorker.stdout).received === 1 ? 'reachable' : 'blocked by the NAT, as expected'}`);

    say('wgctl inspect --netns (worker side): pod-network for apf.json (keys hidden here)');
    const pn = await flow.inspect();
    const wg = pn['wireguard'] as Record<string, unknown>;
    const shown = { ...pn, wireguard: { ...wg, 'private-key': '<hidden>', 'preshared-key': '<hidden>' } };
    show(JSON.stringify(shown, null, 2));

    say('peerpod-wg-agent setup (pod VM side, reads apf.json)');
    show((await flow.agentSetup()).stdout.trim());

    say('wgctl setup --netns … --pod-vm-ip … (worker side initiates through the NAT)');
    const t0 = performance.now();
    show((await flow.setup()).stdout.trim());
    const tSetup = performance.now() - t0;
    let firstReply = NaN;
    for (let i = 0; i < 100; i++) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '0.1', LAB.podIP], { okCodes: [0, 1] });
      if (pingReceived(r.stdout).received === 1) {
        firstReply = performance.now() - t0;
        break;
      }
    }
    show(`wgctl setup took ${tSetup.toFixed(0)} ms (process start included); first ping reply ${firstReply.toFixed(0)} ms after it began`);

    say('ping client pod → VM pod, and VM pod → client pod');
    for (const [from, to] of [
      [lab.ns.client, LAB.podIP],
      [lab.ns.vmPod, LAB.clientIP],
    ] as const) {
      const r = await lab.exec(from, ['ping', '-c', '3', '-i', '0.2', '-W', '2', to], { okCodes: [0, 1] });
      show(r.stdout.trim().split('\n').slice(-2).join('\n'));
    }

    say('TCP, 10 MB each way, checksummed');
    for (const [from, to, ip, port] of [
      [lab.ns.client, lab.ns.vmPod, LAB.podIP, 5301],
      [lab.ns.vmPod, lab.ns.client, LAB.clientIP, 5302],
    ] as const) {
      const server = spawn('ip', ['netns', 'exec', to, process.execPath, TRANSFER, 'serve', ip, String(port)], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let got = '';
      server.stdout.on('data', (b: Buffer) => (got += b.toString()));
      await new Promise((r) => setTimeout(r, 300));
      const sent = JSON.parse((await lab.exec(from, [process.execPath, TRANSFER, 'send', ip, String(port), String(10 << 20), 'demo'])).stdout) as {
        sha256: string;
        ms: number;
      };
      await new Promise<void>((r) => (server.exitCode !== null ? r() : server.on('exit', () => r())));
      const rec = JSON.parse(got) as { bytes: number; sha256: string };
      const ok = rec.sha256 === sent.sha256;
      show(`${from} → ${to}: ${rec.bytes} bytes in ${sent.ms.toFixed(0)} ms, sha256 ${ok ? 'matches' : 'DIFFERS'} (${rec.sha256.slice(0, 16)}…)`);
      if (!ok) failed = true;
    }

    say('worker side: wgctl status');
    show((await flow.wgctl(['status'])).stdout.trimEnd());

    say('pod VM side: the device as wireguard-go reports it (no keys)');
    const workerKey = PublicKey.fromBase64(wg['peer-public-key'] as string);
    const dev = await new UapiClient().get(podVmDeviceName(workerKey));
    for (const p of dev.peers) {
      const agoS = Math.floor(Date.now() / 1000) - p.lastHandshakeSec;
      show(`listening on :${dev.listenPort}; peer ${p.publicKey.toBase64()}`);
      show(`endpoint ${p.endpoint ?? '-'} (learned: the NAT router's address), handshake ${agoS}s ago, rx ${p.rxBytes} B, tx ${p.txBytes} B`);
    }

    say('teardown (worker, then pod VM)');
    show((await flow.teardown()).stdout.trim());
    show((await flow.agentTeardown()).stdout.trim());
  } catch (e) {
    failed = true;
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  } finally {
    await flow.destroy();
    const left = (await realExec(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(lab.prefix));
    say(left.length === 0 ? `lab ${lab.prefix} removed: no namespaces, devices or processes left` : `LEFT BEHIND: ${left.join(' ')}`);
  }
  process.exit(failed ? 1 : 0);
}

void main();
