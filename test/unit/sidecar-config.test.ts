import { describe, expect, it } from '@jest/globals';
import { isPeerpodError } from '../../src/errors.js';
import { sidecarConfigFromEnv } from '../../src/sidecar/config.js';

describe('sidecar configuration from the environment', () => {
  it('has documented defaults', () => {
    const c = sidecarConfigFromEnv({});
    expect(c).toMatchObject({
      tunnelType: 'wireguard',
      wgPort: 51900,
      wgKeepalive: 25,
      stateDir: '/var/lib/peerpod-wireguard',
      socket: '/run/peerpod-wg/sidecar.sock',
      tickMs: 250,
      idleProbeMs: 1000,
    });
    expect(c.metricsAddr).toBeUndefined();
  });

  it('reads every variable', () => {
    const c = sidecarConfigFromEnv({
      TUNNEL_TYPE: 'vxlan',
      WG_PORT: '51999',
      WG_KEEPALIVE: '0',
      WG_MTU: '1400',
      WG_METRICS_ADDR: '[::1]:9586',
      VXLAN_PORT: '8472',
      VXLAN_MIN_ID: '600000',
    });
    expect(c).toMatchObject({ tunnelType: 'vxlan', wgPort: 51999, wgKeepalive: 0, wgMtu: 1400, vxlanPort: 8472, vxlanMinId: 600000 });
    expect(c.metricsAddr).toEqual({ host: '::1', port: 9586 });
  });

  it.each([
    [{ TUNNEL_TYPE: 'ipsec' }, /TUNNEL_TYPE="ipsec": unknown tunnel type: valid types are vxlan, wireguard/],
    [{ WG_PORT: '70000' }, /WG_PORT="70000": expected an integer 1-65535/],
    [{ WG_KEEPALIVE: '-1' }, /WG_KEEPALIVE="-1"/],
    [{ WG_MTU: '500' }, /WG_MTU="500": expected an integer 1280-65535/],
    [{ WG_METRICS_ADDR: 'localhost:9586' }, /WG_METRICS_ADDR.*expected ip:port/],
    [{ WG_STATE_DIR: 'state' }, /WG_STATE_DIR="state": expected an absolute path/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud"/],
    [{ WG_BACKEND: 'ebpf' }, /WG_BACKEND="ebpf": valid backends are auto, userspace, kernel/],
  ])('refuses %j, naming the variable', (env, message) => {
    expect(() => sidecarConfigFromEnv(env)).toThrow(message);
  });

  it('reports every bad variable at once', () => {
    try {
      sidecarConfigFromEnv({ TUNNEL_TYPE: 'x', WG_PORT: 'y' });
      throw new Error('no error');
    } catch (e) {
      expect(isPeerpodError(e, 'EINVAL')).toBe(true);
      expect((e as Error).message).toMatch(/TUNNEL_TYPE[\s\S]*WG_PORT/);
    }
  });
});
