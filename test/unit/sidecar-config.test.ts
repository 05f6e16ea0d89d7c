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
    expect(c.cloudPortRule).toEqual({ manage: false, provider: '', why: 'CLOUD_PROVIDER is not set', incomplete: false });
  });

  it('reads the cloud firewall plan from CAA\'s variables', () => {
    const c = sidecarConfigFromEnv({ CLOUD_PROVIDER: 'aws', AWS_REGION: 'eu-west-1', AWS_SG_IDS: 'sg-0123456789abcdef0', WG_WORKER_CIDR: '203.0.113.7', WG_PORT: '51999' });
    expect(c.cloudPortRule).toEqual({
      manage: true,
      config: { provider: 'aws', region: 'eu-west-1', securityGroupIds: ['sg-0123456789abcdef0'], tunnel: { port: 51999, sourceCidr: '203.0.113.7/32', allowAnySource: false } },
    });
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
    [{ WG_PORT: '70000' }, /WG_PORT: "70000" is not valid: expected an integer 1-65535/],
    [{ WG_KEEPALIVE: '-1' }, /WG_KEEPALIVE: "-1" is not valid: expected an integer 0-65535/],
    [{ WG_MTU: '500' }, /WG_MTU: "500" is not valid: expected an integer 1280-65535/],
    [{ WG_METRICS_ADDR: 'localhost:9586' }, /WG_METRICS_ADDR.*expected ip:port/],
    [{ WG_STATE_DIR: 'state' }, /WG_STATE_DIR="state": expected an absolute path/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud"/],
    [{ WG_BACKEND: 'ebpf' }, /WG_BACKEND="ebpf": valid backends are auto, userspace, kernel/],
    [{ WG_MANAGE_CLOUD_RULE: 'on' }, /WG_MANAGE_CLOUD_RULE: "on" is not valid: expected true or false/],
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

  it('lists the cloud firewall variables with the others, each once', () => {
    const env = { CLOUD_PROVIDER: 'aws', AWS_SG_IDS: 'sg-0123456789abcdef0', WG_WORKER_CIDR: '203.0.113.7', WG_PORT: '0', LOG_LEVEL: 'loud' };
    expect(() => sidecarConfigFromEnv(env)).toThrow(
      'invalid sidecar configuration:\n  LOG_LEVEL="loud": valid levels are fatal, error, warn, info, debug, trace, silent\n  WG_PORT: "0" is not valid: expected an integer 1-65535\n  AWS_REGION: missing: expected a region such as eu-west-1',
    );
  });
});
