// The state folder's lock between processes: one holder at a time, a held lock names its holder,
// a waiting taker gets it when the holder goes, and a stale lock (dead pid, zombie, reused pid) is
// taken over.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processStartTime } from '../../src/process-identity.js';
import { StateLock } from '../../src/state/lock.js';

const LOCK_MODULE = fileURLToPath(new URL('../../src/state/lock.js', import.meta.url));

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwt-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('StateLock', () => {
  it('lets one holder in, names it to the next, and is free again after release', async () => {
    const a = await StateLock.acquire(dir, { command: 'wgctl setup' });
    await expect(StateLock.acquire(dir, { command: 'wgctl teardown', waitMs: 200 })).rejects.toThrow(
      new RegExp(`is in use by pid ${process.pid} \\(wgctl setup\\) since .*; waited 200 ms`),
    );
    await a.release();
    const b = await StateLock.acquire(dir, { command: 'wgctl teardown' });
    await b.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over a lock whose process is gone, or whose pid now runs something else', async () => {
    const dead = spawnSync('true').pid;
    await writeFile(join(dir, 'lock'), JSON.stringify({ pid: dead, startTime: '1', command: 'wgctl setup', since: 'then' }));
    await (await StateLock.acquire(dir, { command: 'a' })).release();
    const reused = { pid: process.pid, startTime: String(Number(await processStartTime(process.pid)) - 1), command: 'old', since: 'then' };
    await writeFile(join(dir, 'lock'), JSON.stringify(reused));
    const l = await StateLock.acquire(dir, { command: 'b' });
    expect(l.holder.command).toBe('b');
    await l.release();
    await writeFile(join(dir, 'lock'), 'garbage');
    await (await StateLock.acquire(dir, { command: 'c' })).release();
  });

  it('between processes: a held lock names the other process; a waiting taker gets it once that process is killed', async () => {
    const script =
      `import(${JSON.stringify(LOCK_MODULE)}).then(async ({ StateLock }) => {` +
      `await StateLock.acquire(${JSON.stringify(dir)}, { command: 'peerpod-wg-sidecar' }); console.log('held'); setInterval(() => {}, 1000); });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => (b.toString().includes('held') ? resolve() : undefined));
        child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
      });
      await expect(StateLock.acquire(dir, { command: 'wgctl setup', waitMs: 100 })).rejects.toThrow(
        new RegExp(`in use by pid ${child.pid} \\(peerpod-wg-sidecar\\)`),
      );
      const started = Date.now();
      setTimeout(() => child.kill('SIGKILL'), 300);
      const l = await StateLock.acquire(dir, { command: 'wgctl setup', waitMs: 10_000 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await l.release();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
