import { describe, expect, it } from '@jest/globals';
import { isPeerpodError } from '../../src/errors.js';
import type { WorkerTunnelDriver } from '../../src/tunnel/driver.js';
import { tunnelTypeOf, workerDriver, type TunnelRegistry } from '../../src/tunnel/registry.js';

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
