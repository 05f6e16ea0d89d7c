// The long-lived processes as their owners start them, through FakeSpawner, without root: a
// wireguard-go that dies at start, is missing, or never answers (UserspaceBackend, in temp folders
// for its run and socket directories), and a qemu guest whose console says ready, or that crashes
// while booting (QemuGuest). What happens once a daemon answers needs the real one (test/lab/).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPeerpodError } from '../../src/errors.js';
import { AGENT_READY, GUEST_ERROR, MARK } from '../../src/provider/local/guest-protocol.js';
import { QEMU, QemuGuest } from '../../src/provider/local/qemu.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { rejects } from '../contract/contract.js';
import { FakeExec } from '../fakes/exec.js';
import { FakeSpawner } from '../fakes/spawner.js';

describe('UserspaceBackend starting wireguard-go through a spawner', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pw-spawned-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const backend = (spawner: FakeSpawner, startTimeoutMs = 5_000) =>
    new UserspaceBackend({
      exec: new FakeExec().exec, // refuses every command: none may run before the daemon answers
      spawner,
      runDir: join(dir, 'run'),
      socketDir: join(dir, 'sock'),
      startTimeoutMs,
    });

  it('starts it detached, in the foreground, logging to its log file, with LOG_LEVEL', async () => {
    const spawner = new FakeSpawner().program('wireguard-go', (p) => {
      p.write('stderr', 'ERROR: (pwgs1) 2026/11/29 Failed to create TUN device: operation not permitted\n');
      p.exitWith(1);
    });
    const b = backend(spawner);
    const e = await rejects(b.create('pwgs1', { mtu: 1420 }), 'EBACKEND', 'start');
    const [p] = spawner.started('wireguard-go');
    expect(p?.argv).toEqual(['wireguard-go', '-f', 'pwgs1']);
    expect(p?.opts.detached).toBe(true);
    expect(p?.opts.env?.['WG_PROCESS_FOREGROUND']).toBe('1');
    expect(p?.opts.env?.['LOG_LEVEL']).toBe('error');
    expect(await readFile(b.logFile('pwgs1'), 'utf8')).toContain('Failed to create TUN device');
    expect(e.message).toMatch(/exited \(code 1\) before its UAPI socket answered; log: .*operation not permitted/);
    expect(e.context.exitCode).toBe(1);
    expect(existsSync(b.pidFile('pwgs1'))).toBe(false);
  });

  it('a daemon killed by a signal at start is EBACKEND naming the signal', async () => {
    const spawner = new FakeSpawner().program('wireguard-go', (p) => p.crash('SIGSEGV'));
    const e = await rejects(backend(spawner).create('pwgs2', { mtu: 1420 }), 'EBACKEND', 'start');
    expect(e.message).toContain('exited (signal SIGSEGV)');
    expect(e.context.exitCode).toBeUndefined();
  });

  it('a missing binary is EBACKEND with the spawner\'s EEXEC as its cause', async () => {
    const e = await rejects(backend(new FakeSpawner()).create('pwgs3', { mtu: 1420 }), 'EBACKEND', 'start');
    expect(e.message).toBe('cannot start wireguard-go for pwgs3');
    expect(isPeerpodError(e.cause, 'EEXEC')).toBe(true);
  });

  it('a daemon that never answers is killed (SIGKILL) after the start timeout, and its pid file goes', async () => {
    const spawner = new FakeSpawner().program('wireguard-go');
    const b = backend(spawner, 50);
    const e = await rejects(b.create('pwgs4', { mtu: 1420 }), 'EBACKEND', 'start');
    expect(e.message).toMatch(/did not answer on .*pwgs4\.sock within 50 ms/);
    const [p] = spawner.started('wireguard-go');
    expect(p?.signals).toEqual(['SIGKILL']);
    expect(e.context.pid).toBe(p?.pid);
    expect(existsSync(b.pidFile('pwgs4'))).toBe(false);
  });
});

describe('QemuGuest through a spawner', () => {
  const options = { kernel: '/k/vmlinuz', initrd: '/k/initrd', append: 'console=ttyS0' };

  it('runs qemu under ip netns exec, follows the console marks, and is ready when the agent says so', async () => {
    const spawner = new FakeSpawner().program('ip', (p) => {
      p.write('stdout', `${MARK} init 0.51\r\n${MARK} modules 1.20\n`);
      p.write('stderr', 'qemu-system-x86_64: warning: host doesn\'t support requested feature\n');
      p.write('stdout', `${AGENT_READY}\n`);
    });
    const guest = new QemuGuest({ ...options, spawner, netns: 'lab-vm' });
    await guest.start();
    await guest.waitReady(2_000);
    const [p] = spawner.started('ip');
    expect(p?.argv.slice(0, 5)).toEqual(['ip', 'netns', 'exec', 'lab-vm', QEMU]);
    expect(guest.pid).toBe(p?.pid);
    expect(guest.marks.guestS).toEqual({ init: 0.51, modules: 1.2 });
    expect(guest.marks.hostMs['ready']).toBeDefined();
    expect(guest.console).toContain('[qemu] qemu-system-x86_64: warning: host doesn\'t support requested feature');
    p?.crash('SIGTERM'); // as if stopped; stop() itself signals only a pid /proc shows is qemu
  });

  it('a qemu that dies while booting fails waitReady with the exit and the guest\'s errors', async () => {
    const spawner = new FakeSpawner().program(QEMU, (p) => {
      p.write('stdout', `${GUEST_ERROR} cannot mount the seed\n`);
      p.exitWith(1);
    });
    const guest = new QemuGuest({ ...options, spawner });
    await guest.start();
    const e = await rejects(guest.waitReady(2_000), 'EBACKEND', 'waitReady');
    expect(e.message).toMatch(/qemu exited \(code 1, signal none\); PEERPOD-ERROR cannot mount the seed/);
    expect(guest.exited).toBe(true);
  });

  it('a qemu that cannot start is reported as one that exited at once', async () => {
    const guest = new QemuGuest({ ...options, spawner: new FakeSpawner() });
    await guest.start();
    expect(guest.exited).toBe(true);
    expect(guest.pid).toBeNull();
    expect(guest.tail()).toMatch(/\[qemu\] cannot start qemu-system-x86_64/);
  });
});
