// The Exec contract (src/exec.ts): what every exec edge does, run against realExec (no root: only
// printf, cat, printenv, false and sleep) and against FakeExec scripted to answer those same
// commands as they do. Neither side may pretend: a failure carries the command and exit code, and
// stderr in its message; a timeout says so in its context; input reaches stdin; env reaches the
// program. Building the Exec (and scripting the fake) is the runner's job.
import assert from 'node:assert/strict';
import type { Exec } from '../../src/exec.js';
import { rejects, type ContractCase } from './contract.js';

export interface ExecContractContext {
  exec: Exec;
}

/** A file that does not exist, for `cat` to fail on. */
export const MISSING_FILE = '/nonexistent/peerpod-exec-contract';
/** A program that is not on PATH. */
export const MISSING_PROGRAM = 'peerpod-no-such-program';

export const EXEC_CONTRACT: readonly ContractCase<ExecContractContext>[] = [
  {
    name: 'success resolves with stdout and code 0',
    async run({ exec }) {
      const r = await exec(['printf', '%s', 'hello']);
      assert.equal(r.stdout, 'hello');
      assert.equal(r.code, 0);
    },
  },
  {
    name: 'a non-zero exit is EEXEC with the command, the exit code, and stderr in the message',
    async run({ exec }) {
      const e = await rejects(exec(['cat', MISSING_FILE]), 'EEXEC', 'cat of a missing file');
      assert.equal(e.context.exitCode, 1);
      assert.equal(e.context.cmd, `cat ${MISSING_FILE}`);
      assert.match(e.message, /No such file or directory/);
      assert.equal(e.context.timeoutMs, undefined, 'not a timeout');
    },
  },
  {
    name: 'an exit code listed in okCodes resolves, with the code',
    async run({ exec }) {
      const r = await exec(['false'], { okCodes: [0, 1] });
      assert.equal(r.code, 1);
    },
  },
  {
    name: 'a command that outlives its timeout is killed and is EEXEC with timeoutMs, and no exit code',
    async run({ exec }) {
      const t0 = Date.now();
      const e = await rejects(exec(['sleep', '5'], { timeoutMs: 100 }), 'EEXEC', 'sleep 5 with a 100 ms timeout');
      assert.ok(Date.now() - t0 < 4_000, 'it did not wait for the command');
      assert.equal(e.context.timeoutMs, 100);
      assert.equal(e.context.exitCode, undefined);
      assert.match(e.message, /timed out/);
    },
  },
  {
    name: 'input is passed on stdin',
    async run({ exec }) {
      const r = await exec(['cat'], { input: 'line one\nline two\n' });
      assert.equal(r.stdout, 'line one\nline two\n');
    },
  },
  {
    name: 'env is the whole environment of the command',
    async run({ exec }) {
      const r = await exec(['printenv', 'PEERPOD_CONTRACT'], { env: { PATH: process.env['PATH'], PEERPOD_CONTRACT: 'yes' } });
      assert.equal(r.stdout, 'yes\n');
      const unset = await exec(['printenv', 'HOME'], { env: { PATH: process.env['PATH'] }, okCodes: [0, 1] });
      assert.equal(unset.code, 1, 'a variable not in env is not set');
    },
  },
  {
    name: 'a program that is not there is EEXEC naming it, without an exit code',
    async run({ exec }) {
      const e = await rejects(exec([MISSING_PROGRAM, '--x']), 'EEXEC', 'a missing program');
      assert.match(e.message, new RegExp(MISSING_PROGRAM));
      assert.equal(e.context.exitCode, undefined);
    },
  },
  {
    name: 'an empty command line is EINVAL',
    async run({ exec }) {
      await rejects(exec([]), 'EINVAL', 'empty argv');
    },
  },
];
