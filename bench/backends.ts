// `node dist/bench/backends.js [--tunnels N]`: memory per tunnel on the worker, for each WireGuard
// backend this kernel offers (wireguard-go everywhere; kernel WireGuard where the module is, e.g. in
// the worker guest, bench/guest.ts). Per backend: a lab with N pods behind the NAT, the sidecar as
// a process in the worker host netns, N tunnels set up through it by the real CLIs, then
//   sidecar: VmRSS growth of the sidecar from ready (no tunnel) to N tunnels up, per tunnel;
//   wireguard-go: the VmRSS of the worker's wireguard-go daemons, per tunnel (userspace only).
// Prints one markdown table on stdout, progress on stderr. Removes everything it made.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../src/exec.js';
import { realSpawner } from '../src/spawn.js';
import { LabFlow, pingReceived } from '../lab/flow.js';
import { Lab } from '../lab/lab.js';
import { LabSidecar } from '../lab/sidecar-process.js';
import { podVmDeviceName } from '../src/tunnel/wireguard/names.js';
import { kernelWireGuardAvailable } from '../src/wireguard/kernel/backend.js';
import { PublicKey } from '../src/wireguard/keys.js';
import { UserspaceBackend } from '../src/wireguard/userspace/backend.js';

type Backend = 'userspace' | 'kernel';

export interface MemoryRow {
  backend: Backend;
  tunnels: number;
  sidecarBaseMiB: number;
  sidecarGrowthKiBPerTunnel: number;
  wireguardGoKiBPerTunnel: number;
  totalKiBPerTunnel: number;
}

const progress = (m: string): void => void process.stderr.write(`[backends] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssKiB(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? NaN);
}

async function measure(backend: Backend, tunnels: number): Promise<MemoryRow> {
  const lab = new Lab({ exec: realExec, pods: tunnels });
  const dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-mem-`));
  const sidecar = new LabSidecar(lab, dir, { WG_BACKEND: backend, LOG_LEVEL: 'warn' });
  const flows: LabFlow[] = [];
  try {
    progress(`${backend}: lab ${lab.prefix} with ${tunnels} pods`);
    await lab.create();
    await sidecar.start();
    await sleep(1_000);
    const base = await rssKiB(sidecar.pid!);
    for (const s of lab.slots) {
      const f = new LabFlow({ exec: realExec, lab, slot: s.index, dir, env: { WG_SOCKET: sidecar.socket }, backend });
      flows.push(f);
      await f.init();
      await f.inspect();
      await f.agentSetup();
      await f.setup();
    }
    for (const f of flows) {
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        ok = pingReceived((await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '1', f.slot.podIP], { okCodes: [0, 1] })).stdout).received === 1;
        if (!ok) await sleep(100);
      }
      if (!ok) throw new Error(`${backend}: tunnel of pod ${f.slot.index} did not come up`);
    }
    await sleep(2_000);
    const grown = await rssKiB(sidecar.pid!);
    let goKiB = 0;
    for (const f of (await readdir(sidecar.runDir).catch(() => [] as string[])).filter((n) => n.endsWith('.pid'))) {
      goKiB += await rssKiB(Number((await readFile(join(sidecar.runDir, f), 'utf8')).trim()));
    }
    const growth = (grown - base) / tunnels;
    const go = goKiB / tunnels;
    return { backend, tunnels, sidecarBaseMiB: base / 1024, sidecarGrowthKiBPerTunnel: growth, wireguardGoKiBPerTunnel: go, totalKiBPerTunnel: growth + go };
  } finally {
    await sidecar.stop('SIGTERM').catch(() => undefined);
    if (backend === 'userspace') {
      const worker = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: sidecar.runDir });
      for (const id of await readdir(join(dir, 'state', 'pods')).catch(() => [] as string[])) await worker.remove(`pwg${id}`).catch(() => undefined);
      const vm = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, 'vm-run') });
      for (const f of flows) {
        const key = (f.podNetworkJson['wireguard'] as Record<string, string> | undefined)?.['peer-public-key'];
        if (key !== undefined) await vm.remove(podVmDeviceName(PublicKey.fromBase64(key))).catch(() => undefined);
      }
    }
    await lab.destroy().catch((e: unknown) => progress(`cleanup of ${lab.prefix}: ${String(e)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

export function memoryTable(rows: readonly MemoryRow[]): string {
  const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '—');
  return [
    '| backend | tunnels | sidecar RSS at start MiB | sidecar growth KiB/tunnel | wireguard-go KiB/tunnel | total KiB/tunnel |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'} | ${r.tunnels} | ${f(r.sidecarBaseMiB, 1)} | ${f(r.sidecarGrowthKiBPerTunnel)} | ${r.backend === 'kernel' ? '0 (no process)' : f(r.wireguardGoKiBPerTunnel)} | ${f(r.totalKiBPerTunnel)} |`),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const i = argv.indexOf('--tunnels');
  const tunnels = i >= 0 ? Number(argv[i + 1]) : 10;
  if (!Number.isInteger(tunnels) || tunnels < 1 || tunnels > 50) {
    process.stderr.write('usage: node dist/bench/backends.js [--tunnels N]   (1-50; root)\n');
    return 2;
  }
  const backends: Backend[] = kernelWireGuardAvailable().available ? ['userspace', 'kernel'] : ['userspace'];
  const rows: MemoryRow[] = [];
  for (const b of backends) rows.push(await measure(b, tunnels));
  process.stdout.write(`Memory per tunnel on the worker (VmRSS; ${tunnels} tunnels per backend):\n\n${memoryTable(rows)}\n`);
  return 0;
}

if (process.argv[1]?.endsWith('backends.js')) {
  main(process.argv.slice(2)).then(
    (c) => process.exit(c),
    (e: unknown) => {
      process.stderr.write(`backends: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
