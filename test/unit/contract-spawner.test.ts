// The Spawner contract (test/contract/spawner.contract.ts) against realSpawner, which needs no root
// for these programs, and against FakeSpawner with the same programs registered to behave as they
// do. Also what only the fake offers: refusing an unregistered program, a crash on demand, a
// process that survives SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPeerpodError } from '../../src/errors.js';
import { processArgs, processStat } from '../../src/process-identity.js';
import { realSpawner, type Spawner } from '../../src/spawn.js';
import { MISSING_FILE } from '../contract/exec.contract.js';
import { GAPS, SPAWNER_CONTRACT } from '../contract/spawner.contract.js';
import { FakeSpawner } from '../fakes/spawner.js';

/** FakeSpawner with the contract's programs behaving as coreutils' do. */
function registeredLikeCoreutils(): FakeSpawner {
  return new FakeSpawner()
    .program('sleep')
    .program('true', (p) => p.exitWith(0))
    .program('false', (p) => p.exitWith(1))
    .program('printf', (p) => {
      p.write('stdout', p.argv[2] ?? '');
      p.exitWith(0);
    })
    .program('cat', (p) => {
      if (p.argv[1] !== MISSING_FILE) throw new Error(`this cat only knows ${MISSING_FILE}`);
      p.write('stderr', `cat: ${MISSING_FILE}: No such file or directory\n`);
      p.exitWith(1);
    })
    .program('printenv', (p) => {
      const v = (p.opts.env ?? process.env)[p.argv[1] ?? ''];
      if (v !== undefined) p.write('stdout', `${v}\n`);
      p.exitWith(v === undefined ? 1 : 0);
    });
}

let tmpDir = '';
beforeAll(async () => {
  tmpDir = await mkdtemp(join(tmpdir(), 'pw-spawner-'));
});
afterAll(async () => {
  await rm(tmpDir, { recursive: true, force: true });
});

describe.each([
  ['realSpawner', (): Spawner => realSpawner],
  ['FakeSpawner', (): Spawner => registeredLikeCoreutils()],
])('Spawner contract: %s', (_name, make) => {
  it.each(SPAWNER_CONTRACT.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    await c.run({ spawner: make(), tmpDir });
  });
});

describe('Spawner: what only realSpawner has (GAPS of the fake)', () => {
  /** Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, … */
  const statOf = async (pid: number): Promise<string[]> => (await processStat(pid))?.fields ?? [];

  it('its pid is a live process in /proc, with our argv', async () => {
    const p = await realSpawner.spawn(['sleep', '30']);
    try {
      expect(await processArgs(p.pid)).toEqual(['sleep', '30']);
    } finally {
      p.kill();
      await p.exited;
    }
  });

  it('a detached process runs in a session of its own; another shares ours', async () => {
    const ours = (await statOf(process.pid))[3];
    const detached = await realSpawner.spawn(['sleep', '30'], { detached: true });
    const attached = await realSpawner.spawn(['sleep', '30']);
    try {
      expect((await statOf(detached.pid))[3]).toBe(String(detached.pid));
      expect((await statOf(attached.pid))[3]).toBe(ours);
    } finally {
      for (const p of [detached, attached]) p.kill();
      await Promise.all([detached.exited, attached.exited]);
    }
  });

  for (const [name, reason] of Object.entries(GAPS.fake)) it.skip(`FakeSpawner: ${name} (real only: ${reason})`, () => undefined);
});

describe('FakeSpawner', () => {
  it('refuses a program nobody registered, and records the ones it started', async () => {
    const fake = new FakeSpawner().program('wireguard-go');
    const e = await fake.spawn(['qemu-system-x86_64', '-m', '384M']).catch((x: unknown) => x);
    expect(isPeerpodError(e, 'EEXEC')).toBe(true);
    expect((e as Error).message).toMatch(/knows no program qemu-system-x86_64/);
    const p = await fake.spawn(['wireguard-go', '-f', 'pwg0'], { detached: true });
    expect(fake.started('wireguard-go')).toEqual([p]);
    expect(p.opts.detached).toBe(true);
  });

  it('lets a test crash a process, or keep one alive through SIGTERM', async () => {
    const fake = new FakeSpawner().program('daemon');
    const a = await fake.spawn(['daemon']);
    a.crash();
    expect(await a.exited).toEqual({ code: null, signal: 'SIGSEGV' });
    const b = await fake.spawn(['daemon']);
    b.ignores.add('SIGTERM');
    b.kill('SIGTERM');
    expect(b.exit).toBeNull();
    b.kill('SIGKILL');
    expect(await b.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(b.signals).toEqual(['SIGTERM', 'SIGKILL']);
  });
});
