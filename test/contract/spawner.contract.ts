// The Spawner contract (src/spawn.ts): what every spawner does for long-lived processes, run
// against realSpawner (no root: sleep, true, false, printf, cat and printenv) and against
// FakeSpawner with those programs registered to behave as they do. A process reports its pid and
// its end (code or signal), takes signals until it has ended and never after, sends its output to
// a callback or an open file, and gets exactly the env it was given; a missing program is EEXEC
// naming it. Building the spawner (and registering the fake's programs) is the runner's job.
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessExit, Spawner } from '../../src/spawn.js';
import { rejects, type ContractCase } from './contract.js';
import { MISSING_FILE, MISSING_PROGRAM } from './exec.contract.js';

export interface SpawnerContractContext {
  spawner: Spawner;
  /** A folder the case may write in. */
  tmpDir: string;
}

/** What FakeSpawner cannot have, with the reason; the real spawner's runner tests these itself. */
export const GAPS = {
  fake: {
    'its pid is a process that /proc shows and other processes can signal':
      'the fake starts no process: its pids are made up, so /proc never shows them (an identity check answers "not ours") and process.kill(pid) must not be used on them',
    'a detached process runs in a session of its own and outlives us':
      'no process, no session: the fake only records that detached was asked for',
  },
} as const;

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export const SPAWNER_CONTRACT: readonly ContractCase<SpawnerContractContext>[] = [
  {
    name: 'a long-lived process runs until killed, and then reports the signal',
    async run({ spawner }) {
      const p = await spawner.spawn(['sleep', '30']);
      assert.ok(Number.isInteger(p.pid) && p.pid > 0, `pid ${p.pid}`);
      assert.equal(await settlesWithin(p.exited, 100), false, 'still running after 100 ms');
      assert.equal(p.exit, null);
      p.kill('SIGTERM');
      const end: ProcessExit = await p.exited;
      assert.deepEqual(end, { code: null, signal: 'SIGTERM' });
      assert.deepEqual(p.exit, end);
    },
  },
  {
    name: 'kill sends SIGTERM by default, and does nothing once the process has ended',
    async run({ spawner }) {
      const p = await spawner.spawn(['sleep', '30'], { detached: true });
      p.kill();
      assert.deepEqual(await p.exited, { code: null, signal: 'SIGTERM' });
      p.kill('SIGKILL');
      assert.deepEqual(p.exit, { code: null, signal: 'SIGTERM' }, 'the end is not rewritten');
    },
  },
  {
    name: 'a process that ends by itself reports its exit code',
    async run({ spawner }) {
      assert.deepEqual(await (await spawner.spawn(['true'])).exited, { code: 0, signal: null });
      assert.deepEqual(await (await spawner.spawn(['false'])).exited, { code: 1, signal: null });
    },
  },
  {
    name: 'a program that is not there is EEXEC naming it',
    async run({ spawner }) {
      const e = await rejects(spawner.spawn([MISSING_PROGRAM, '-f', 'x']), 'EEXEC', 'a missing program');
      assert.match(e.message, new RegExp(MISSING_PROGRAM));
      assert.equal(e.context.cmd, `${MISSING_PROGRAM} -f x`);
    },
  },
  {
    name: 'an empty command line is EINVAL',
    async run({ spawner }) {
      await rejects(spawner.spawn([]), 'EINVAL', 'empty argv');
    },
  },
  {
    name: 'stdout and stderr reach their callbacks, all of it before exited settles',
    async run({ spawner }) {
      let out = '';
      const p = await spawner.spawn(['printf', '%s', 'to stdout'], { stdout: (b) => (out += b.toString()) });
      await p.exited;
      assert.equal(out, 'to stdout');
      let err = '';
      const q = await spawner.spawn(['cat', MISSING_FILE], { stdout: 'ignore', stderr: (b) => (err += b.toString()) });
      assert.deepEqual(await q.exited, { code: 1, signal: null });
      assert.match(err, /No such file or directory/);
    },
  },
  {
    name: 'output sent to an open file is written there',
    async run({ spawner, tmpDir }) {
      const path = join(tmpDir, 'out.log');
      const fh = await open(path, 'w', 0o600);
      try {
        const p = await spawner.spawn(['printf', '%s', 'into the log'], { stdout: fh.fd, stderr: fh.fd });
        await p.exited;
      } finally {
        await fh.close();
      }
      assert.equal(await readFile(path, 'utf8'), 'into the log');
    },
  },
  {
    name: 'env is the whole environment of the process',
    async run({ spawner }) {
      let out = '';
      const env = { PATH: process.env['PATH'], PEERPOD_CONTRACT: 'spawned' };
      const p = await spawner.spawn(['printenv', 'PEERPOD_CONTRACT'], { env, stdout: (b) => (out += b.toString()) });
      assert.deepEqual(await p.exited, { code: 0, signal: null });
      assert.equal(out, 'spawned\n');
      const q = await spawner.spawn(['printenv', 'HOME'], { env });
      assert.deepEqual(await q.exited, { code: 1, signal: null }, 'a variable not in env is not set');
    },
  },
];
