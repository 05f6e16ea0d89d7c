// The Exec contract (test/contract/exec.contract.ts) against realExec, which needs no root for
// these commands, and against FakeExec scripted to answer the same commands as they do. Also: the
// fake refuses what it was not told about, and records every call.
import { describe, expect, it } from '@jest/globals';
import { isPeerpodError } from '../../src/errors.js';
import { realExec } from '../../src/exec.js';
import { EXEC_CONTRACT, MISSING_FILE, MISSING_PROGRAM } from '../contract/exec.contract.js';
import { FakeExec } from '../fakes/exec.js';

/** FakeExec answering the contract's commands as coreutils does. */
function scriptedLikeCoreutils(): FakeExec {
  return new FakeExec()
    .on(['printf', '%s', 'hello'], { stdout: 'hello' })
    .on(['cat', MISSING_FILE], { code: 1, stderr: `cat: ${MISSING_FILE}: No such file or directory\n` })
    .on(['cat'], (_argv, opts) => ({ stdout: opts.input ?? '', stderr: '', code: 0 }))
    .on(['false'], { code: 1 })
    .on(['sleep', '5'], { hang: true })
    .on(/^printenv \S+$/, (argv, opts) => {
      const v = (opts.env ?? process.env)[argv[1]!];
      return v === undefined ? { stdout: '', stderr: '', code: 1 } : { stdout: `${v}\n`, stderr: '', code: 0 };
    })
    .on((argv) => argv[0] === MISSING_PROGRAM, { missing: true });
}

describe.each([
  ['realExec', () => realExec],
  ['FakeExec', () => scriptedLikeCoreutils().exec],
])('Exec contract: %s', (_name, make) => {
  it.each(EXEC_CONTRACT.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    await c.run({ exec: make() });
  });
});

describe('FakeExec', () => {
  it('refuses a command nobody scripted, naming its argv, and records it', async () => {
    const fake = new FakeExec().on(['true'], {});
    const e = await fake.exec(['ip', 'link', 'show']).catch((x: unknown) => x);
    expect(isPeerpodError(e, 'EEXEC')).toBe(true);
    expect((e as Error).message).toContain('["ip","link","show"]');
    await fake.exec(['true']);
    expect(fake.commands()).toEqual(['ip link show', 'true']);
  });

  it('answers once() ahead of on(), and the latest on() wins', async () => {
    const fake = new FakeExec().on(['x'], { stdout: 'old' }).on(['x'], { stdout: 'new' }).once(['x'], { stdout: 'first' });
    expect((await fake.exec(['x'])).stdout).toBe('first');
    expect((await fake.exec(['x'])).stdout).toBe('new');
  });
});
