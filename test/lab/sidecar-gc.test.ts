// Start-up garbage collection with two state folders on one host, real wireguard-go: a sidecar
// removes a stray device only when it was made with its own run folder, never one that another
// sidecar (or wgctl --direct with another state and run folder) keeps.
//
//   host netns: pwg<A> (run folder A, no record)   pwg<B> (run folder B, no record in A)
import { afterAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { makeWorker } from '../../cmd/worker-wiring.js';
import { realExec } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import { netnsFactory } from '../../src/netns/netns.js';
import { TunnelService } from '../../src/sidecar/service.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { describeLab } from './root.js';

describeLab('sidecar garbage collection with two state folders (lab)', () => {
  const devA = `pwg${randomBytes(6).toString('hex')}`;
  const devB = `pwg${randomBytes(6).toString('hex')}`;
  let dir = '';
  const backends: UserspaceBackend[] = [];

  const sidecar = (name: 'a' | 'b'): { service: TunnelService; backend: UserspaceBackend } => {
    const backend = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, name, 'run') });
    backends.push(backend);
    const rt = { backend, netns: netnsFactory(realExec), log: pino({ level: 'silent' }) };
    const w = makeWorker(rt, { stateDir: join(dir, name, 'state') });
    const service = new TunnelService({
      ...w,
      backend,
      netns: rt.netns,
      log: rt.log,
      defaultTunnelType: 'wireguard',
      tickMs: 250,
      idleProbeMs: 0,
      fastNudgeWindowMs: 0,
    });
    return { service, backend };
  };

  afterAll(async () => {
    for (const b of backends) for (const d of [devA, devB]) if (await b.owns(d)) await b.remove(d);
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it("keeps the other state folder's device, and removes its own stray one", async () => {
    dir = await mkdtemp(join(tmpdir(), 'pwt-gc-'));
    const a = sidecar('a');
    const b = sidecar('b');
    await a.backend.create(devA, { mtu: 1420 });
    await b.backend.create(devB, { mtu: 1420 });
    expect([await a.backend.owns(devA), await a.backend.owns(devB), await b.backend.owns(devB)]).toEqual([true, false, true]);

    await a.service.reconcile();
    const live = await a.backend.devices();
    expect([live.includes(devA), live.includes(devB)]).toEqual([false, true]);
    expect((await b.backend.device(devB)).name).toBe(devB);

    await b.service.reconcile();
    expect((await b.backend.devices()).includes(devB)).toBe(false);
  }, 60_000);
});
