// What every lab suite shares. Lab tests need root (network namespaces): without it they skip, and
// say so loudly. labFlowSuite builds the usual lab and CAA flow around a describe block and
// removes them after it, whatever its tests did.
import { afterAll, beforeAll, describe } from '@jest/globals';
import { realExec } from '../../src/exec.js';
import { Lab, type LabOptions } from '../../lab/lab.js';
import { LabFlow, type FlowOptions } from '../../lab/flow.js';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export const describeLab: typeof describe = isRoot
  ? describe
  : ((name: string, fn: () => void) => {
      console.warn(`\n*** LAB TESTS SKIPPED (${name}): they need root to create network namespaces ***\n`);
      describe.skip(name, fn);
    }) as typeof describe;

/**
 * describeLab for suites that need more than root (a qemu pod VM, a worker guest): when `missing`
 * says what this machine lacks, they skip and say so loudly, as `what SKIPPED: missing`.
 */
export function describeLabWhere(missing: string | null, what: string): typeof describe.skip {
  if (missing === null) return describeLab;
  console.warn(`\n*** ${what} SKIPPED: ${missing} ***\n`);
  return describe.skip;
}

/**
 * How much slower than this host the machine running the lab is: 1 here; the worker guest (qemu
 * TCG, test/lab/worker-guest.test.ts) sets PEERPOD_LAB_SLOWDOWN. Timeouts are multiplied by it and
 * absolute throughput floors divided by it; what a test asserts stays the same.
 */
export const LAB_SLOWDOWN = Math.max(1, Number(process.env['PEERPOD_LAB_SLOWDOWN'] ?? 1) || 1);

export interface LabFlowSuiteOptions {
  lab?: Omit<LabOptions, 'exec'>;
  flow?: Omit<FlowOptions, 'exec' | 'lab'>;
  /** Once the lab is built and the flow has its folder. Default: flow.up() (inspect, agent setup, wgctl setup). */
  setUp?: (flow: LabFlow) => Promise<void>;
  /** Before the flow is destroyed (its tunnel torn down, the lab and its folder deleted). */
  tearDown?: (flow: LabFlow) => Promise<void>;
  /** Jest timeouts of the set-up and the tear-down. Default 60 s each. */
  setUpMs?: number;
  tearDownMs?: number;
}

/**
 * A lab (random prefix) and one flow through it for the enclosing describe block: built in its
 * beforeAll, destroyed in its afterAll.
 */
export function labFlowSuite(opts: LabFlowSuiteOptions = {}): { lab: Lab; flow: LabFlow } {
  const lab = new Lab({ exec: realExec, ...opts.lab });
  const flow = new LabFlow({ exec: realExec, lab, ...opts.flow });
  beforeAll(async () => {
    await lab.create();
    await flow.init();
    await (opts.setUp ?? ((f: LabFlow) => f.up()))(flow);
  }, opts.setUpMs ?? 60_000);
  afterAll(async () => {
    await opts.tearDown?.(flow);
    await flow.destroy();
  }, opts.tearDownMs ?? 60_000);
  return { lab, flow };
}
