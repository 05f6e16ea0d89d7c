// `node dist/bench/guest.js [--full] [--tunnels-only]`: the benchmarks inside a qemu guest whose kernel has
// WireGuard (lab/worker-vm.ts), so that kernel WireGuard and wireguard-go, routing
// and CAA's VXLAN are measured side by side on one (emulated) machine: bench/tunnels.js (--quick
// unless --full) and bench/backends.js (memory per tunnel). Under TCG the absolute numbers mean
// nothing; the ratios between rows do. Prints both reports; the guest is stopped afterwards.
import { realExec } from '../src/exec.js';
import { PROJECT_ROOT } from '../tools/bundle.js';
import { startWorkerVm } from '../lab/worker-vm.js';

async function main(argv: string[]): Promise<number> {
  const full = argv.includes('--full');
  const t0 = Date.now();
  const vm = await startWorkerVm({ exec: realExec, projectRoot: PROJECT_ROOT });
  process.stderr.write(`[guest] worker guest up in ${Date.now() - t0} ms (accel ${vm.guest.accel})\n`);
  let rc = 0;
  try {
    const cmds = [`node dist/bench/tunnels.js${full ? '' : ' --quick'}`, ...(argv.includes('--tunnels-only') ? [] : ['node dist/bench/backends.js --tunnels 8'])];
    for (const cmd of cmds) {
      const t = Date.now();
      process.stderr.write(`[guest] ${cmd}\n`);
      const r = await vm.guest.run(`cd ${PROJECT_ROOT} && ${cmd} 2>/tmp/bench.err; rc=$?; tail -n 30 /tmp/bench.err >&2; exit $rc`, 3_600_000);
      process.stdout.write(`\n## ${cmd} (in the worker guest, ${((Date.now() - t) / 1000).toFixed(0)} s, exit ${r.code})\n\n${r.output}\n`);
      if (r.code !== 0) rc = 1;
    }
  } finally {
    await vm.stop();
  }
  return rc;
}

main(process.argv.slice(2)).then(
  (c) => process.exit(c),
  (e: unknown) => {
    process.stderr.write(`guest bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
