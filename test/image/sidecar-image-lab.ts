// The lab half of hack/image-test.sh: the sidecar's container image, run for real and driven only
// through its unix socket from outside the container, with a pod VM made of namespaces whose agent
// runs on the host (dist/cmd/peerpod-wg-agent.js).
//
//   <p>-cli client pod ─ br0 ─ <p>-wk worker host netns ═══ <p>-nat ═══ <p>-vm pod VM root netns
//                               └ the container (podman run              (peerpod-wg-agent,
//                                 --network ns:/run/netns/<p>-wk):        wireguard-go on the host)
//                                 node + wireguard-go, socket and       <p>-vmpod: the pod's end
//                                 state folders bind-mounted from WORK
//
// inspect → agent setup → setup → pings both ways through the tunnel → metrics → teardown
// → SIGTERM. Every step asserts; any failure exits 1 with the step, and the container's log.
// Cleanup (container by name, lab namespaces, the agent's wireguard-go) runs on every exit; the
// container's wireguard-go processes die with its pid namespace.
//
// Usage: node dist/test/image/sidecar-image-lab.js --image IMAGE --work DIR -- PODMAN_ARGV...
// (PODMAN_ARGV: podman and its global flags, e.g. a private --root; CONTAINERS_CONF is inherited).
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { realExec, type ExecResult } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import { LAB, Lab } from '../../lab/lab.js';
import { LabFlow, pingReceived } from '../../lab/flow.js';
import { callSidecar, unwrap } from '../../src/sidecar/client.js';
import { podVmDeviceName } from '../../src/tunnel/wireguard/names.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function args(argv: string[]): { image: string; work: string; podman: string[] } {
  const sep = argv.indexOf('--');
  const flags = argv.slice(0, sep < 0 ? argv.length : sep);
  const podman = sep < 0 ? [] : argv.slice(sep + 1);
  const get = (name: string): string | undefined => flags[flags.indexOf(name) + 1];
  const image = flags.includes('--image') ? get('--image') : undefined;
  const work = flags.includes('--work') ? get('--work') : undefined;
  if (image === undefined || work === undefined || podman.length === 0) {
    throw new Error('usage: sidecar-image-lab.js --image IMAGE --work DIR -- PODMAN_ARGV...');
  }
  return { image, work, podman };
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`  ok  ${what}`);
}

async function main(): Promise<void> {
  const { image, work, podman } = args(process.argv.slice(2));
  const exec = realExec;
  const pod = (argv: string[], okCodes = [0]): Promise<ExecResult> => exec([...podman, ...argv], { timeoutMs: 60_000, okCodes });
  const lab = new Lab({ exec });
  const name = `${lab.prefix}-sidecar`;
  const flow = new LabFlow({ exec, lab, dir: work });
  // The container's folders, apart from the flow's: its pid files hold pids of its own pid
  // namespace, which no host tool may act on.
  const runDir = join(work, 'sidecar-run');
  const stateDir = join(work, 'sidecar-state');
  const socket = join(runDir, 'sidecar.sock');
  const api = async (method: string, path: string, body?: unknown) => unwrap(await callSidecar(socket, method, path, body, 30_000));
  const containerLog = async () => (await pod(['logs', name], [0, 125]).catch(() => null))?.stdout ?? '';
  const processes = async () => (await pod(['top', name, 'comm'])).stdout.split('\n').slice(1).map((l) => l.trim());
  let agentUp = false;
  let failed = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await pod(['rm', '-f', '-t', '0', name], [0, 1, 125]).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
      if (agentUp) await flow.agentTeardown().catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
      // The agent's wireguard-go, by its pid file, in case its teardown did not run.
      const wgKey = (flow.podNetworkJson['wireguard'] as Record<string, string> | undefined)?.['peer-public-key'];
      if (wgKey !== undefined) {
        await new UserspaceBackend({ exec, spawner: realSpawner, runDir: flow.vmRunDir }).remove(podVmDeviceName(PublicKey.fromBase64(wgKey))).catch(() => undefined);
      }
      await lab.destroy().catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    })());
  // Interrupted (Ctrl-C, or the script's trap): clean up before going.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  }
  try {
    await lab.create();
    await flow.init();
    console.log(`lab ${lab.prefix}: worker host netns ${lab.ns.worker}, container ${name}`);
    await exec(['mkdir', '-p', '-m', '0700', runDir, stateDir]);
    const t0 = Date.now();
    await pod([
      'run', '-d', '--name', name,
      '--network', `ns:${lab.path(lab.ns.worker)}`,
      '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_ADMIN', '--device', '/dev/net/tun',
      // Setup writes sysctls inside the pod netns and the worker's (ip_forward, rp_filter, ...):
      // runtimes mount /proc/sys read-only unless told otherwise (Kubernetes: privileged).
      '--security-opt', 'unmask=/proc/sys',
      '-v', '/run/netns:/run/netns:rslave',
      '-v', `${runDir}:/run/peerpod-wg`, '-v', `${stateDir}:/var/lib/peerpod-wireguard`,
      '-e', 'LOG_LEVEL=debug',
      image,
    ]);
    let ready = false;
    for (let i = 0; i < 300 && !ready; i++) {
      ready = await callSidecar(socket, 'GET', '/readyz', undefined, 1000).then((r) => r.status === 200, () => false);
      if (!ready) await sleep(100);
    }
    check(ready, `the sidecar in the container answers /readyz on ${socket} (${Date.now() - t0} ms after podman run)`);
    check(((await stat(socket)).mode & 0o777) === 0o600, 'its socket is mode 0600');

    const inspected = (await api('POST', '/v1/inspect', { netns: lab.path(flow.slot.pod), pod: `default/${flow.podName}` })) as { podNetwork: Record<string, unknown> };
    const wg = inspected.podNetwork['wireguard'] as Record<string, string> | undefined;
    check(wg?.['peer-public-key'] !== undefined, 'inspect returns a pod-network object with a wireguard section');
    await flow.usePodNetwork(inspected.podNetwork);
    await flow.agentSetup();
    agentUp = true;
    check(true, 'peerpod-wg-agent set up the pod VM end from apf.json');

    const setup = (await api('POST', '/v1/setup', { netns: lab.path(flow.slot.pod), podVmIPs: [flow.slot.vmIP], podNetwork: inspected.podNetwork })) as {
      device: string;
      phase: string;
    };
    check(setup.phase === 'ready', `setup is ready: device ${setup.device}`);
    const link = await exec(['ip', '-n', lab.ns.pod, '-j', 'link', 'show', 'dev', setup.device], { okCodes: [0, 1] });
    check(link.code === 0, `${setup.device} sits in the pod netns ${lab.ns.pod}, seen from the host`);
    check((await processes()).includes('wireguard-go'), 'its wireguard-go runs inside the container');

    let state = '';
    for (let i = 0; i < 100 && state !== 'up'; i++) {
      state = ((await api('GET', `/v1/status/${setup.device}`)) as { state: string }).state;
      if (state !== 'up') await sleep(100);
    }
    check(state === 'up', 'status says up (a handshake through the NAT)');
    const ping = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', flow.slot.podIP], { okCodes: [0, 1] });
    check(pingReceived(ping.stdout).received === 3, `3 of 3 pings client pod → pod IP ${flow.slot.podIP}`);
    // The pod VM's pod netns reaches the cluster only through the tunnel.
    const back = await lab.exec(flow.slot.vmPod, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.clientIP], { okCodes: [0, 1] });
    check(pingReceived(back.stdout).received === 3, `3 of 3 pings pod VM's pod netns → client pod ${LAB.clientIP} through the tunnel`);
    const metrics = (await api('GET', '/metrics')) as string;
    check(new RegExp(`^wireguard_sent_bytes_total\\{interface="${setup.device}",.*\\} [1-9]\\d*$`, 'm').test(metrics), 'metrics count bytes sent on the device');

    // Every private key of this run, while they exist, to look for them in the logs afterwards.
    const keyFiles = (await readdir(stateDir, { recursive: true })).filter((f) => f.endsWith('.key'));
    const secrets = [...(await Promise.all(keyFiles.map(async (f) => (await readFile(join(stateDir, f), 'utf8')).trim()))), wg?.['private-key'] ?? ''];
    check(keyFiles.length > 0 && secrets.every((s) => s.length === 44), `found the worker's keys in its state folder (${keyFiles.length} files) and the pod VM's key`);

    check(((await api('POST', '/v1/teardown', { netns: lab.path(flow.slot.pod) })) as { ok?: boolean }).ok === true, 'teardown answers ok');
    const gone = await exec(['ip', '-n', lab.ns.pod, 'link', 'show', 'dev', setup.device], { okCodes: [0, 1] });
    check(gone.code === 1, `${setup.device} is gone from the pod netns`);
    let left: string[] = [];
    for (let i = 0; i < 50; i++) {
      left = (await processes()).filter((p) => p === 'wireguard-go');
      if (left.length === 0) break;
      await sleep(100);
    }
    check(left.length === 0, 'no wireguard-go is left in the container');
    check(((await api('GET', '/v1/status')) as unknown[]).length === 0, 'status lists no tunnel');
    const lost = await lab.exec(flow.slot.vmPod, ['ping', '-c', '1', '-W', '1', LAB.clientIP], { okCodes: [0, 1] });
    check(pingReceived(lost.stdout).received === 0, 'the pod VM reaches the client pod no more');

    await pod(['stop', '-t', '10', name]);
    const exit = (await pod(['inspect', '--format', '{{.State.ExitCode}}', name])).stdout.trim();
    check(exit === '0', `SIGTERM stops the sidecar cleanly (exit code ${exit})`);
    const logs = (await containerLog()) + (await readdir(runDir).then((fs) => Promise.all(fs.filter((f) => f.includes('.log')).map((f) => readFile(join(runDir, f), 'utf8'))))).join('');
    check(/"msg":"sidecar listening"/.test(logs), 'the container logged JSON lines');
    check(secrets.every((s) => !logs.includes(s)), 'no private key in the container log or the wireguard-go logs');
  } catch (e) {
    failed = true;
    console.error(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
    console.error(`--- container log (${name}) ---\n${(await containerLog()).slice(-4000)}`);
  } finally {
    await cleanup();
  }
  if (failed) process.exit(1);
}

main().catch((e: unknown) => {
  console.error(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
