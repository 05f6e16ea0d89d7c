// The second half of `npm run bench`: how the control plane scales, and a real pod VM.
// 1. Setup time per tunnel as the number of tunnels grows (1, 10, 50): one lab with 50 peer pods
//    and 50 pod VMs behind the NAT, one sidecar; setups go through its API one after another, and
//    the table gives the mean and the slowest setup among the first 1, 10 and 50, plus the
//    sidecar's own CPU and peak RSS.
// 2. qemu start → first packet: a qemu pod VM (kernel WireGuard) against wireguard-go on the
//    worker, in CAA's order (create the instance, then set up the worker side at once).
// Every namespace, process and VM it starts is removed, also on failure.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../src/exec.js';
import { realSpawner } from '../src/spawn.js';
import { processStat } from '../src/process-identity.js';
import { LAB, Lab } from '../lab/lab.js';
import { LabFlow, pingReceived } from '../lab/flow.js';
import { LabSidecar } from '../lab/sidecar-process.js';
import { startQemuPodVm, type QemuPodVm } from '../lab/lab-vm.js';
import { callSidecar, unwrap } from '../src/sidecar/client.js';
import { podVmDeviceName } from '../src/tunnel/wireguard/names.js';
import { PublicKey } from '../src/wireguard/keys.js';
import { UserspaceBackend } from '../src/wireguard/userspace/backend.js';

const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

async function procStats(pid: number): Promise<{ cpuMs: number; hwmMiB: number }> {
  const stat = (await processStat(pid))?.fields;
  if (stat === undefined) throw new Error(`no process ${pid}`);
  // utime, stime, cutime, cstime (fields 14-17): our own CPU and that of the ip/nsenter processes
  // it waited for; the detached wireguard-go daemons are not in it.
  const ticks = Number(stat[14 - 3]) + Number(stat[15 - 3]) + Number(stat[16 - 3]) + Number(stat[17 - 3]);
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return { cpuMs: ticks * 10, hwmMiB: hwm / 1024 };
}

async function scaling(pods: number): Promise<string> {
  const lab = new Lab({ exec: realExec, pods });
  const dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-bench-`));
  const sidecar = new LabSidecar(lab, dir);
  const flows: LabFlow[] = [];
  try {
    log(`scaling: building a lab with ${pods} peer pods and pod VMs`);
    await lab.create();
    await sidecar.start();
    for (const s of lab.slots) flows.push(new LabFlow({ exec: realExec, lab, slot: s.index, dir, env: { WG_SOCKET: sidecar.socket } }));
    for (const f of flows) await f.init();
    for (let i = 0; i < pods; i += 5) {
      await Promise.all(flows.slice(i, i + 5).map(async (f) => {
        await f.inspect();
        await f.agentSetup();
      }));
    }
    const before = await procStats(sidecar.pid!);
    const ms: number[] = [];
    for (const f of flows) {
      const t = performance.now();
      unwrap(await callSidecar(sidecar.socket, 'POST', '/v1/setup', { netns: lab.path(f.slot.pod), podVmIPs: [f.slot.vmIP], podNetwork: f.podNetworkJson }));
      ms.push(performance.now() - t);
    }
    const after = await procStats(sidecar.pid!);
    const last = flows[pods - 1]!;
    const ping = await lab.exec(lab.ns.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', last.slot.podIP], { okCodes: [0, 1] });
    if (pingReceived(ping.stdout).received === 0) throw new Error('the last tunnel carries no traffic');
    const rows = [1, 10, 50].filter((n) => n <= pods).map((n) => {
      const first = ms.slice(0, n);
      const mean = first.reduce((a, b) => a + b, 0) / n;
      return `| ${String(n).padStart(2)} | ${mean.toFixed(1).padStart(8)} | ${Math.max(...first).toFixed(1).padStart(8)} |`;
    });
    return [
      `Setup time per tunnel as tunnels grow (sidecar API, one setup after another, ${pods} pod VMs behind one NAT):`,
      '',
      '| tunnels | mean ms per setup | slowest ms |',
      '|---|---|---|',
      ...rows,
      '',
      `sidecar for ${pods} setups: ${after.cpuMs - before.cpuMs} ms CPU (user+sys, with the ip/nsenter processes it ran, not wireguard-go; 10 ms ticks); peak RSS ${after.hwmMiB.toFixed(1)} MiB.`,
    ].join('\n');
  } finally {
    await sidecar.stop('SIGTERM').catch(() => undefined);
    const worker = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: sidecar.runDir });
    const vm = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, 'vm-run') });
    for (const id of await readdir(join(sidecar.stateDir, 'pods')).catch(() => [] as string[])) await worker.remove(`pwg${id}`).catch(() => undefined);
    for (const f of flows) {
      const wg = f.podNetworkJson['wireguard'] as Record<string, string> | undefined;
      if (wg !== undefined) await vm.remove(podVmDeviceName(PublicKey.fromBase64(wg['peer-public-key']!))).catch(() => undefined);
    }
    await lab.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function qemuRow(): Promise<string> {
  const lab = new Lab({ exec: realExec });
  const flow = new LabFlow({ exec: realExec, lab });
  let vm: QemuPodVm | null = null;
  try {
    await lab.create();
    await flow.init();
    await flow.inspect();
    log('qemu: booting a pod VM');
    vm = await startQemuPodVm(lab, await readFile(flow.apfPath, 'utf8'), { exec: realExec, waitReady: false });
    await flow.setup();
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '0.5', LAB.podIP], { okCodes: [0, 1] });
      if (pingReceived(r.stdout).received === 1) break;
    }
    const first = Date.now() - vm.guest.startedAt;
    const marks = Object.entries(vm.guest.marks.hostMs).map(([k, v]) => `${k} ${v}`).join(', ');
    return [
      `qemu pod VM (accel ${vm.guest.accel}, kernel WireGuard in the guest, wireguard-go on the worker, through the NAT):`,
      `qemu start → first packet through the tunnel: ${first} ms (guest marks, ms after qemu start: ${marks})`,
    ].join('\n');
  } catch (e) {
    return `qemu pod VM: not measured: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  } finally {
    await vm?.stop().catch(() => undefined);
    await flow.destroy();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('the benchmark needs root: it builds network namespaces\n');
    process.exit(1);
  }
  const quick = process.argv.includes('--quick');
  const started = Date.now();
  const out = [await scaling(quick ? 10 : 50), '', await qemuRow()];
  process.stdout.write('\n' + out.join('\n') + `\n\nExtras took ${Math.round((Date.now() - started) / 1000)} s.\n`);
}

void main();
