// The WireGuardBackend contract (./backend.contract.ts) against the userspace backend (wireguard-go)
// on this host. The runner (./backend-contract-main.ts) is the same program the pod VM runs for the
// kernel backend (test/lab/kernel-backend.test.ts); here it runs in a scratch netns made for it,
// so no case touches the host's own namespace. Needs root; skips loudly without it.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../src/exec.js';
import { describeLab } from '../lab/root.js';
import { BACKEND_CONTRACT, CONTRACT_LINE, type CaseResult } from './backend.contract.js';

const RUNNER = fileURLToPath(new URL('./backend-contract-main.js', import.meta.url));

describeLab('userspace WireGuard backend contract (wireguard-go, host)', () => {
  const ns = `pcu${randomBytes(2).toString('hex')}`;
  let results: CaseResult[] = [];
  let raw = '';

  beforeAll(async () => {
    await realExec(['ip', 'netns', 'add', ns]);
    await realExec(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const r = await realExec(['ip', 'netns', 'exec', ns, process.execPath, RUNNER, 'userspace'], { okCodes: [0, 1], timeoutMs: 120_000 });
    raw = r.stdout + r.stderr;
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${CONTRACT_LINE} `));
    if (line !== undefined) results = (JSON.parse(line.slice(CONTRACT_LINE.length + 1)) as { results: CaseResult[] }).results;
  }, 150_000);

  afterAll(async () => {
    await realExec(['ip', 'netns', 'del', ns], { okCodes: [0, 1] });
  });

  it('the runner reported every case', () => {
    if (results.length === 0) throw new Error(`no ${CONTRACT_LINE} line:\n${raw}`);
    expect(results.map((r) => r.name)).toEqual(BACKEND_CONTRACT.map((c) => c.name));
  });

  it.each(BACKEND_CONTRACT.map((c) => c.name))('%s', (name) => {
    const r = results.find((x) => x.name === name);
    expect(r).toBeDefined();
    if (r?.ok !== true) throw new Error(r?.error ?? 'not run');
  });
});
