// Runs the WireGuardBackend contract (./backend.contract.ts) as a plain node program against one
// real backend, in the netns it is started in, and prints one machine-readable line:
//   PEERPOD-CONTRACT {"kind":"kernel","results":[{"name":…,"ok":true,"ms":…}, …]}
// The host runs it under `ip netns exec` for the userspace backend; the pod VM image carries it
// bundled (/opt/peerpod-lab/lib/backend-contract.mjs, lab/guest/tools.ts) so the lab test can run it inside the guest on kernel
// WireGuard. Exit code 0 only when every case passed.
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import type { WireGuardBackend } from '../../src/wireguard/backend.js';
import { KernelBackend } from '../../src/wireguard/kernel/backend.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { CONTRACT_LINE, ipWorld, runBackendContract } from './backend.contract.js';

async function main(argv: string[]): Promise<number> {
  const kind = argv[0];
  if (kind !== 'userspace' && kind !== 'kernel') {
    process.stderr.write('usage: backend-contract-main <userspace|kernel>\n');
    return 2;
  }
  const prefix = `pc${randomBytes(2).toString('hex')}`;
  const peerNetns = `${prefix}-peer`;
  const runDir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const backend: WireGuardBackend =
    kind === 'kernel' ? new KernelBackend({ exec: realExec }) : new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir });
  const port = randomInt(20_000, 40_000);
  await realExec(['ip', 'netns', 'add', peerNetns]);
  try {
    const results = await runBackendContract({
      backend,
      world: ipWorld(realExec, peerNetns),
      exec: realExec,
      prefix,
      peerNetns,
      subnet: `198.18.${randomInt(200, 250)}`,
      ports: [port, port + 1],
    });
    process.stdout.write(`${CONTRACT_LINE} ${JSON.stringify({ kind, results })}\n`);
    return results.every((r) => r.ok) ? 0 : 1;
  } finally {
    // A case that failed half-way may have left its devices: every name with our prefix goes.
    for (const name of await backend.devices().catch(() => [] as string[])) {
      if (name.startsWith(prefix)) await backend.remove(name).catch(() => undefined);
    }
    await backend.close();
    await realExec(['ip', 'netns', 'del', peerNetns], { okCodes: [0, 1] }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`backend contract: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
