// wgctl as a process, where it fails before touching any namespace: the state folder's lock, and
// what it says about input it cannot use.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../src/exec.js';
import { StateLock } from '../../src/state/lock.js';

const WGCTL = fileURLToPath(new URL('../../cmd/wgctl.js', import.meta.url));

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwt-wgctl-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const wgctl = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  realExec([process.execPath, WGCTL, ...args, '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--socket', join(dir, 'none.sock')], {
    okCodes: [0, 1, 2],
    env: { ...process.env, ...env },
  });

describe('wgctl working directly', () => {
  it('waits a bounded time for the state folder and then says who holds it', async () => {
    const lock = await StateLock.acquire(join(dir, 'state'), { command: 'peerpod-wg-sidecar' });
    try {
      const started = Date.now();
      const r = await wgctl(['teardown', '--netns', '/run/netns/pwt-none'], { WG_LOCK_WAIT_MS: '300' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`in use by pid ${process.pid} \\(peerpod-wg-sidecar\\) since .*; waited 300 ms`));
    } finally {
      await lock.release();
    }
  });
});
