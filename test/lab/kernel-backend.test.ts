// The WireGuardBackend contract (test/contract/backend.contract.ts) against the kernel backend,
// run where a kernel with WireGuard is: inside a qemu pod VM booted by the local provider. The guest
// image carries the contract runner bundled (/opt/peerpod-lab/lib/backend-contract.mjs); it runs in a scratch netns
// of the guest, and its result line is parsed here, one jest test per contract case. The host's
// kernel has no WireGuard module, so this is the only place the kernel backend meets a kernel.
import { expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { realExec } from '../../src/exec.js';
import { guestTool } from '../../lab/guest/tools.js';
import { qemuUnavailable, startQemuPodVm, type QemuPodVm } from '../../lab/lab-vm.js';
import { BACKEND_CONTRACT, CONTRACT_LINE, GAPS, type CaseResult } from '../contract/backend.contract.js';
import { describeLabWhere, labFlowSuite } from './root.js';

const describeQemu = describeLabWhere(qemuUnavailable(), 'KERNEL BACKEND CONTRACT (in a qemu pod VM)');

describeQemu('kernel WireGuard backend contract, inside a pod VM', () => {
  let vm: QemuPodVm | undefined;
  let results: CaseResult[] = [];
  let raw = '';

  const { lab, flow } = labFlowSuite({
    setUp: async () => {
      await flow.inspect();
      vm = await startQemuPodVm(lab, await readFile(flow.apfPath, 'utf8'), {
        exec: realExec,
        stateDir: `${flow.dir}/podvm`,
        controlChannel: true,
        readyTimeoutMs: 180_000,
      });
      // A scratch netns of its own, so the cases never touch the guest's root netns or podns.
      const r = await vm.guest.run(
        `/usr/sbin/ip netns add kcontract && /usr/sbin/ip -n kcontract link set lo up && ` +
          `/usr/sbin/ip netns exec kcontract ${guestTool('backend-contract')} kernel; ` +
          'rc=$?; /usr/sbin/ip netns del kcontract; exit $rc',
        240_000,
      );
      raw = r.output;
      const line = r.output.split('\n').find((l) => l.startsWith(`${CONTRACT_LINE} `));
      if (line !== undefined) results = (JSON.parse(line.slice(CONTRACT_LINE.length + 1)) as { results: CaseResult[] }).results;
    },
    tearDown: async () => {
      await vm?.stop().catch((e: unknown) => console.warn('pod VM cleanup:', e));
    },
    setUpMs: 300_000,
  });

  it('the runner reported every case', () => {
    expect(results.map((r) => r.name)).toEqual(BACKEND_CONTRACT.map((c) => c.name));
    if (results.length === 0) throw new Error(`no ${CONTRACT_LINE} line from the guest:\n${raw}`);
  });

  it.each(BACKEND_CONTRACT.map((c) => c.name))('%s', (name) => {
    const r = results.find((x) => x.name === name);
    expect(r).toBeDefined();
    if (r?.ok !== true) throw new Error(r?.error ?? 'not run');
  });

  it('declares no gaps: a moved device is reached through where, as with wireguard-go', () => {
    expect(GAPS.kernel).toEqual({});
  });
});
