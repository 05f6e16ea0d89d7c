import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { makeWorker } from '../../cmd/worker-wiring.js';
import { netnsFactory } from '../../src/netns/netns.js';
import { isPeerpodError } from '../../src/errors.js';
import type { WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import { tunnelTypeOf, workerDriver, type TunnelRegistry } from '../../src/tunnel/registry.js';
import { podNetnsExec, ScriptedBackend } from './fakes.js';

const fakeWorker = (type: 'wireguard' | 'vxlan'): WorkerTunnelDriver => ({
  type,
  inspect: () => Promise.reject(new Error('not used')),
  setup: () => Promise.reject(new Error('not used')),
  teardown: () => Promise.resolve(),
});

describe('tunnel registry', () => {
  const registry: TunnelRegistry = { wireguard: { worker: () => fakeWorker('wireguard') }, vxlan: {} };

  it('returns the driver of a known type', () => {
    expect(workerDriver(registry, 'wireguard').type).toBe('wireguard');
  });

  it('refuses an unknown type and lists the valid ones', () => {
    expect(() => tunnelTypeOf('ipsec', 'TUNNEL_TYPE')).toThrow('unknown tunnel type "ipsec": valid types are vxlan, wireguard');
    try {
      workerDriver(registry, 'gre', 'TUNNEL_TYPE');
      throw new Error('no error');
    } catch (e) {
      expect(isPeerpodError(e, 'EINVAL')).toBe(true);
      expect((e as { context: { field: string } }).context.field).toBe('TUNNEL_TYPE');
    }
  });

  it('says so when a known type has no driver for this side', () => {
    expect(() => workerDriver(registry, 'vxlan')).toThrow(/no worker driver/);
  });
});

describe('drivers are built once per registry', () => {
  it('calls a factory once however often the driver is asked for', () => {
    let made = 0;
    const registry: TunnelRegistry = { wireguard: { worker: () => (made++, fakeWorker('wireguard')) }, vxlan: {} };
    expect(workerDriver(registry, 'wireguard')).toBe(workerDriver(registry, 'wireguard'));
    expect(made).toBe(1);
  });

  it('so concurrent VXLAN inspects of different pods get distinct VNIs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pwt-vni-'));
    try {
      const rt = { backend: new ScriptedBackend(), netns: netnsFactory(podNetnsExec()), log: pino({ level: 'silent' }) };
      const { registry } = makeWorker(rt, { stateDir: dir, vxlanNetnsDir: null });
      const pods = ['/run/netns/pwt-a', '/run/netns/pwt-b', '/run/netns/pwt-c', '/run/netns/pwt-d'];
      const nets = await Promise.all(pods.map((p) => workerDriver(registry, 'vxlan').inspect(p)));
      const vnis = nets.map((n) => (n.tunnel.type === 'vxlan' ? n.tunnel.id : undefined));
      expect(new Set(vnis).size).toBe(pods.length);
      expect([...vnis].sort()).toEqual([555000, 555001, 555002, 555003]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
