// The worker side on kernel WireGuard, where a kernel has it: inside a qemu guest that plays the
// worker node (lab/worker-vm.ts; this host's kernel has no WireGuard module). The
// guest mounts this project folder over virtiofs at the same path and runs, with WG_BACKEND=kernel:
//   - the backend contract runner (test/contract/backend-contract-main.ts kernel), in a scratch netns;
//   - jest on the worker lab tests GUEST_TESTS (the pod VM is namespaces in the same guest, also on
//     kernel WireGuard): the tunnel through NAT, the whole-tree restart without loss, NAT rebinding.
// Each contract case and each guest jest test becomes one test here, so a failure names itself.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../src/exec.js';
import { PROJECT_ROOT } from '../../tools/bundle.js';
import { startWorkerVm, workerVmUnavailable, type WorkerVm } from '../../lab/worker-vm.js';
import { BACKEND_CONTRACT, CONTRACT_LINE, type CaseResult } from '../contract/backend.contract.js';
import { describeLabWhere } from './root.js';

/** The worker lab tests that run inside the guest on kernel WireGuard (paths under dist/). */
export const GUEST_TESTS = ['test/lab/worker-restart.test.js', 'test/lab/wireguard-tunnel.test.js'];
const JEST = 'node_modules/jest/bin/jest.js';
const IP = '/usr/sbin/ip';
/** Printed by worker-restart.test.ts (not imported: importing a test file would run its tests here). */
const RESTART_LINE = 'PEERPOD-WHOLE-TREE-KILL';
const RUNNER = fileURLToPath(new URL('../contract/backend-contract-main.js', import.meta.url));

const describeGuest = describeLabWhere(workerVmUnavailable(), 'WORKER GUEST (kernel WireGuard on the worker)');

interface JestJson {
  testResults: { name: string; assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

describeGuest('the worker side on kernel WireGuard, inside a qemu guest that plays the worker', () => {
  let vm: WorkerVm | undefined;
  let contract: CaseResult[] = [];
  let contractRaw = '';
  let jest: JestJson | null = null;
  let jestRaw = '';
  const ms: Record<string, number> = {};

  beforeAll(async () => {
    const t0 = Date.now();
    vm = await startWorkerVm({ exec: realExec, projectRoot: PROJECT_ROOT });
    ms['boot'] = Date.now() - t0;
    let t = Date.now();
    const c = await vm.guest.run(
      // iproute2's ip by its full path: busybox's shell prefers its own applet, which has no netns.
      `${IP} netns add kcontract && ${IP} -n kcontract link set lo up && ` +
        `${IP} netns exec kcontract node ${RUNNER} kernel; rc=$?; ${IP} netns del kcontract; exit $rc`,
      300_000,
    );
    ms['contract'] = Date.now() - t;
    contractRaw = c.output;
    const line = c.output.split('\n').find((l) => l.startsWith(`${CONTRACT_LINE} `));
    if (line !== undefined) contract = (JSON.parse(line.slice(CONTRACT_LINE.length + 1)) as { results: CaseResult[] }).results;
    t = Date.now();
    const tests = GUEST_TESTS.map((p) => `dist/${p}`).join(' ');
    const j = await vm.guest.run(
      // Slowdown 10: TCG on a shared host; tests without a timeout of their own get 5 minutes.
      `cd ${PROJECT_ROOT} && WG_BACKEND=kernel PEERPOD_LAB_SLOWDOWN=10 node --experimental-vm-modules --no-warnings ${JEST} ` +
        '--runInBand --testTimeout=300000 --json ' +
        `--outputFile=/tmp/guest-jest.json ${tests} >/tmp/guest-jest.log 2>&1; ` +
        'grep -h "PEERPOD-\\|healed\\|Gbit/s" /tmp/guest-jest.log; echo ===JSON===; cat /tmp/guest-jest.json; echo; echo ===LOG===; tail -c 6000 /tmp/guest-jest.log',
      1_200_000,
    );
    ms['worker lab tests'] = Date.now() - t;
    jestRaw = j.output;
    const json = j.output.split('===JSON===\n')[1]?.split('\n===LOG===')[0]?.trim();
    try {
      if (json) jest = JSON.parse(json) as JestJson;
    } catch {
      jest = null; // reported by the tests below, with the guest's output
    }
    const restart = j.output.split('\n').find((l) => l.includes(RESTART_LINE)) ?? `(no ${RESTART_LINE} line)`;
    console.log(
      `worker guest (accel ${vm.guest.accel}): ${Object.entries(ms).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}\n` +
        `${restart.trim()}\n${j.output.split('===JSON===')[0] ?? ''}`,
    );
  }, 1_500_000);

  afterAll(async () => {
    await vm?.stop();
  }, 60_000);

  it('the contract runner reported every case', () => {
    if (contract.length === 0) throw new Error(`no ${CONTRACT_LINE} line from the guest:\n${contractRaw}`);
    expect(contract.map((r) => r.name)).toEqual(BACKEND_CONTRACT.map((c) => c.name));
  });

  it.each(BACKEND_CONTRACT.map((c) => c.name))('contract (kernel, worker guest): %s', (name) => {
    const r = contract.find((x) => x.name === name);
    if (r?.ok !== true) throw new Error(r?.error ?? 'not run');
  });

  it('jest ran every worker lab test file in the guest', () => {
    if (jest === null) throw new Error(`no jest JSON from the guest:\n${jestRaw.slice(-6000)}`);
    expect(jest.testResults.map((r) => r.name.slice(PROJECT_ROOT.length + 1 + 'dist/'.length)).sort()).toEqual([...GUEST_TESTS].sort());
  });

  it('every worker lab test passed in the guest on kernel WireGuard', () => {
    if (jest === null) throw new Error('no jest JSON from the guest');
    const results = jest.testResults.flatMap((f) => f.assertionResults);
    const failed = results.filter((r) => r.status !== 'passed');
    if (failed.length > 0) throw new Error(failed.map((f) => `${f.fullName}: ${f.status}\n${f.failureMessages.join('\n').slice(0, 1500)}`).join('\n\n'));
    expect(results.length).toBeGreaterThan(10);
    // The kernel backend really was the one in use: the test file names it.
    expect(results.some((r) => r.fullName.startsWith('worker side on the kernel backend'))).toBe(true);
  });
});
