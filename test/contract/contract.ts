// The shape every contract suite shares (after hono's common.case.test.ts): one list of cases per
// seam, written with node:assert only, each run against every implementation of that seam. A case
// that only a real system can pass (root, a kernel, a real data plane) says so in `rootOnly`, with
// the reason; a fake's runner skips it under that reason rather than drop it. Running the cases
// (jest, or a plain node program in a guest) is left to each runner.
import assert from 'node:assert/strict';
import { PeerpodError } from '../../src/errors.js';

export interface ContractCase<Ctx> {
  name: string;
  /** Why only the real implementation, with root, can run this case; absent when any can. */
  rootOnly?: string;
  run(ctx: Ctx): Promise<void>;
}

/** The PeerpodError `p` rejects with, after checking its code. */
export async function rejects(p: Promise<unknown>, code: string, what: string): Promise<PeerpodError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof PeerpodError, `${what}: expected a PeerpodError, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected a rejection with ${code}`);
}
