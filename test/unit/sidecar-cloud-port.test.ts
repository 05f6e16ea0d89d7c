// The sidecar's start-up rule for the pod VMs' cloud firewall, against the same fakes as the
// adapters (aws-sdk-client-mock for EC2, the fake ARM for Azure), through the real registry: what the
// environment asks for (off, and why; manage; bad values), the rule added once and found unchanged
// on the next start, a missing permission named with what to do while the attempts go on, throttling
// and timeouts retried and never taken for success, the backoff, and shutdown.
import { beforeEach, describe, expect, it } from '@jest/globals';
import { AuthorizeSecurityGroupIngressCommand, DescribeSecurityGroupsCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import type { AddressInfo } from 'node:net';
import { PeerpodError } from '../../src/errors.js';
import type { Env, FirewallConfig } from '../../src/provider/config.js';
import { createFirewall } from '../../src/provider/registry.js';
import { createApiServer } from '../../src/sidecar/api.js';
import type { TunnelService } from '../../src/sidecar/service.js';
import type { WireGuardBackend } from '../../src/wireguard/backend.js';
import { CloudPortRule, cloudPortPlanFromEnv, type CloudPortDeps, type CloudPortPlan, type CloudPortStatus } from '../../src/sidecar/cloud-port.js';
import { FakeArm, SUB, credential } from './fake-arm.js';

const SG = 'sg-0123456789abcdef0';
const WORKER_CIDR = '203.0.113.7/32';
const NSG_ID = `/subscriptions/${SUB}/resourceGroups/net-rg/providers/Microsoft.Network/networkSecurityGroups/podvm-nsg`;
const AWS_ENV: Env = { CLOUD_PROVIDER: 'aws', AWS_REGION: 'eu-west-1', AWS_SG_IDS: SG, WG_WORKER_CIDR: WORKER_CIDR };
const AZURE_ENV: Env = { CLOUD_PROVIDER: 'azure', AZURE_SUBSCRIPTION_ID: SUB, AZURE_NSG_ID: NSG_ID, WG_WORKER_CIDR: WORKER_CIDR };

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
const mock = mockClient(ec2);
let arm: FakeArm;

interface Line {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

/** A rule with recording fakes: log lines, the waits asked for, the firewalls built. */
function harness(env: Env, options: Partial<CloudPortDeps> & { onSleep?: (status: CloudPortStatus) => void } = {}) {
  const lines: Line[] = [];
  const waits: number[] = [];
  const built: FirewallConfig[] = [];
  const controller = new AbortController();
  const record = (level: Line['level']) => (fields: object, message: string) => void lines.push({ level, fields: fields as Record<string, unknown>, message });
  const plan: CloudPortPlan = cloudPortPlanFromEnv(env);
  const rule: CloudPortRule = new CloudPortRule(plan, {
    openFirewall: async (config) => {
      built.push(config);
      return createFirewall(config, { aws: { ec2 }, azure: { credential, httpClient: arm, maxRetries: 0 } });
    },
    log: { info: record('info'), warn: record('warn'), error: record('error') },
    signal: controller.signal,
    sleep: async (ms) => {
      waits.push(ms);
      options.onSleep?.(rule.status);
    },
    now: () => 1_000_000,
    random: () => 0.5, // no jitter: the waits are the backoff itself
    ...options,
  });
  return { rule, lines, waits, built, controller };
}

function sdkError(name: string, message: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: status } });
}

/** An EC2 whose one group keeps the rules written to it, across starts. */
function statefulEc2(): { ingress: object[] } {
  const group = { GroupId: SG, IpPermissions: [] as object[] };
  mock.on(DescribeSecurityGroupsCommand).callsFake(() => ({ SecurityGroups: [group] }));
  mock.on(AuthorizeSecurityGroupIngressCommand).callsFake((input: { IpPermissions: object[] }) => {
    group.IpPermissions.push(...input.IpPermissions);
    return { Return: true };
  });
  return { ingress: group.IpPermissions };
}

beforeEach(() => {
  mock.reset();
  arm = new FakeArm();
});

describe('cloudPortPlanFromEnv', () => {
  it.each([
    [{}, 'CLOUD_PROVIDER is not set', false],
    [{ CLOUD_PROVIDER: 'libvirt', AWS_SG_IDS: SG }, 'CLOUD_PROVIDER=libvirt: no firewall adapter for it (there are aws, azure)', false],
    [{ ...AWS_ENV, AWS_SG_IDS: '' }, 'AWS_SG_IDS is not set', false],
    [{ ...AZURE_ENV, AZURE_NSG_ID: undefined }, 'AZURE_NSG_ID is not set', false],
    [{ ...AWS_ENV, WG_MANAGE_CLOUD_RULE: 'false' }, "WG_MANAGE_CLOUD_RULE=false: the operator manages the pod VMs' firewall", false],
    [
      { ...AWS_ENV, WG_WORKER_CIDR: undefined, WG_PORT: '51999' },
      "WG_WORKER_CIDR is not set: set it to the worker's egress address as aws sees it (e.g. 203.0.113.7/32) to open udp/51999 to it, or WG_MANAGE_CLOUD_RULE=false if you manage the rule yourself",
      true,
    ],
  ])('does nothing for %j, and says why', (env, why, incomplete) => {
    expect(cloudPortPlanFromEnv(env)).toEqual({ manage: false, provider: (env as Env)['CLOUD_PROVIDER'] ?? '', why, incomplete });
  });

  it('manages the rule when the provider, its security group/NSG and the worker CIDR are set', () => {
    expect(cloudPortPlanFromEnv(AWS_ENV)).toEqual({
      manage: true,
      config: { provider: 'aws', region: 'eu-west-1', securityGroupIds: [SG], tunnel: { port: 51900, sourceCidr: WORKER_CIDR, allowAnySource: false } },
    });
    expect(cloudPortPlanFromEnv({ ...AZURE_ENV, WG_MANAGE_CLOUD_RULE: 'true' })).toMatchObject({ manage: true, config: { provider: 'azure', nsgId: NSG_ID } });
  });

  it('refuses bad values by name: the switch, 0.0.0.0/0 without WG_ALLOW_ANY_SOURCE, and what "true" requires', () => {
    expect(() => cloudPortPlanFromEnv({ ...AWS_ENV, WG_MANAGE_CLOUD_RULE: 'maybe' })).toThrow(/^WG_MANAGE_CLOUD_RULE: "maybe" is not valid: expected true or false/);
    expect(() => cloudPortPlanFromEnv({ ...AWS_ENV, WG_WORKER_CIDR: '0.0.0.0/0' })).toThrow(/^WG_WORKER_CIDR: 0\.0\.0\.0\/0 would open the WireGuard port to the whole Internet/);
    expect(() => cloudPortPlanFromEnv({ ...AWS_ENV, AWS_SG_IDS: 'default' })).toThrow(/^AWS_SG_IDS: "default" is not a security group id/);
    const e = (() => {
      try {
        cloudPortPlanFromEnv({ WG_MANAGE_CLOUD_RULE: 'true' });
      } catch (x) {
        return x as PeerpodError;
      }
      throw new Error('no error');
    })();
    expect(e.code).toBe('EINVAL');
    expect(e.message.split('\n')).toEqual(['CLOUD_PROVIDER: missing: expected one of aws, azure', "WG_WORKER_CIDR: missing: expected the worker's egress address as the cloud sees it, e.g. 203.0.113.7/32"]);
  });
});

describe('CloudPortRule, AWS', () => {
  it('adds the rule once; the next start finds it and writes nothing', async () => {
    const { ingress } = statefulEc2();
    const first = harness(AWS_ENV);
    expect(first.rule.status).toMatchObject({ provider: 'aws', state: 'pending', firewall: `security group ${SG}` });
    expect(await first.rule.run()).toEqual({
      provider: 'aws',
      state: 'open',
      firewall: `security group ${SG}`,
      rule: `${SG} udp/51900 from ${WORKER_CIDR}`,
      changed: true,
      attempts: 1,
    });
    expect(ingress).toEqual([{ IpProtocol: 'udp', FromPort: 51900, ToPort: 51900, IpRanges: [{ CidrIp: WORKER_CIDR, Description: 'peerpod-wireguard: WireGuard from the worker' }] }]);
    expect(first.lines.map((l) => [l.level, l.message])).toEqual([['info', 'cloud firewall rule added']]);

    const second = harness(AWS_ENV);
    expect(await second.rule.run()).toMatchObject({ state: 'open', changed: false });
    expect(second.lines.map((l) => l.message)).toEqual(['cloud firewall rule already in place (unchanged)']);
    expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(1);
    expect(mock.commandCalls(DescribeSecurityGroupsCommand)).toHaveLength(2);
  });

  it('names a missing permission, the security group and what to do, keeps trying, and opens once it is granted', async () => {
    statefulEc2();
    mock.on(AuthorizeSecurityGroupIngressCommand).rejects(sdkError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const seen: CloudPortStatus[] = [];
    const h = harness(AWS_ENV, {
      onSleep: (status) => {
        seen.push(status);
        // An operator grants the permission after the second refusal.
        if (seen.length === 2) mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      },
    });
    const done = await h.rule.run();

    expect(seen[0]).toEqual({
      provider: 'aws',
      state: 'denied',
      firewall: `security group ${SG}`,
      error: {
        code: 'ECLOUD',
        message: `AuthorizeSecurityGroupIngress failed for security group ${SG} (udp/51900 from ${WORKER_CIDR}): UnauthorizedOperation: You are not authorized to perform this operation.`,
        permission: 'ec2:AuthorizeSecurityGroupIngress',
        cloudCode: 'UnauthorizedOperation',
      },
      remedy: `Grant ec2:AuthorizeSecurityGroupIngress on security group ${SG} to the sidecar's identity (docs/aws.md, "IAM permissions the sidecar needs"), or add an inbound rule udp/51900 from ${WORKER_CIDR} yourself and set WG_MANAGE_CLOUD_RULE=false.`,
      attempts: 1,
      nextAttemptAt: 1_005_000,
    });
    const refusal = h.lines[0]!;
    expect(refusal.level).toBe('error');
    expect(refusal.message).toBe(
      `cannot open the pod VMs' WireGuard port: the sidecar's aws identity lacks ec2:AuthorizeSecurityGroupIngress on security group ${SG}; retrying in 5 s; tunnels keep being served. ${seen[0]!.remedy ?? ''}`,
    );
    expect(refusal.fields).toMatchObject({ provider: 'aws', cloudPortRule: 'denied', permission: 'ec2:AuthorizeSecurityGroupIngress', retryInMs: 5000 });
    expect(h.waits).toEqual([5000, 10000]);
    expect(done).toMatchObject({ state: 'open', changed: true, attempts: 3 });
    // The provider was built once, not once per attempt.
    expect(h.built).toHaveLength(1);
  });

  it('retries throttling; the first answer it gets is the only success', async () => {
    statefulEc2();
    mock.on(DescribeSecurityGroupsCommand).rejectsOnce(sdkError('RequestLimitExceeded', 'Request limit exceeded.', 503)).callsFake(() => ({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] }));
    const seen: CloudPortStatus[] = [];
    const h = harness(AWS_ENV, { onSleep: (s) => seen.push(s) });
    expect(await h.rule.run()).toMatchObject({ state: 'open', attempts: 2 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ state: 'failing', error: { cloudCode: 'RequestLimitExceeded' }, attempts: 1 });
    expect(seen[0]!.remedy).toMatch(/^Check the sidecar's aws credentials and network access to the aws API, or add an inbound rule udp\/51900 from 203\.0\.113\.7\/32 yourself/);
    expect(h.lines.map((l) => l.level)).toEqual(['error', 'info']);
  });

  it('cuts an attempt that gets no answer and counts it as failing, never as success', async () => {
    statefulEc2();
    mock.on(DescribeSecurityGroupsCommand).callsFakeOnce(() => new Promise(() => undefined)).callsFake(() => ({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] }));
    const seen: CloudPortStatus[] = [];
    const h = harness(AWS_ENV, { attemptTimeoutMs: 20, onSleep: (s) => seen.push(s) });
    expect(await h.rule.run()).toMatchObject({ state: 'open', attempts: 2 });
    expect(seen[0]).toMatchObject({ state: 'failing', error: { code: 'ECLOUD', message: `security group ${SG}: no answer from aws within 0.02 s` } });
  });

  it('doubles the wait up to the ceiling while refused, and stops quietly on shutdown', async () => {
    mock.on(DescribeSecurityGroupsCommand).rejects(sdkError('UnauthorizedOperation', 'no', 403));
    let h: ReturnType<typeof harness> | undefined = undefined;
    h = harness(AWS_ENV, {
      firstBackoffMs: 5000,
      maxBackoffMs: 20000,
      onSleep: () => {
        if (h!.waits.length === 5) h!.controller.abort();
      },
    });
    const last = await h.rule.run();
    expect(h.waits).toEqual([5000, 10000, 20000, 20000, 20000]);
    expect(last).toMatchObject({ state: 'denied', attempts: 5, error: { permission: 'ec2:DescribeSecurityGroups' } });
    expect(h.lines.every((l) => l.level === 'error')).toBe(true);
  });

  it('loads no provider and logs once why when not managing the rule', async () => {
    for (const [env, level] of [
      [{ CLOUD_PROVIDER: 'libvirt' }, 'info'],
      [{ ...AWS_ENV, WG_WORKER_CIDR: undefined }, 'warn'],
    ] as const) {
      const h = harness(env);
      expect(await h.rule.run()).toMatchObject({ state: 'off', attempts: 0 });
      expect(h.built).toEqual([]);
      expect(h.lines).toHaveLength(1);
      expect(h.lines[0]!.level).toBe(level);
    }
    expect(mock.calls()).toHaveLength(0);
  });
});

describe('CloudPortRule, Azure', () => {
  const nsg = `/subscriptions/${SUB}/resourceGroups/net-rg/providers/Microsoft.Network/networkSecurityGroups/podvm-nsg`;

  it('adds the NSG rule once; the next start finds it unchanged', async () => {
    const first = await harness(AZURE_ENV).rule.run();
    expect(first).toMatchObject({ provider: 'azure', state: 'open', firewall: 'NSG podvm-nsg (resource group net-rg)', changed: true });
    const second = await harness(AZURE_ENV).rule.run();
    expect(second).toMatchObject({ state: 'open', changed: false });
    expect(arm.calls().filter((c) => c.startsWith('PUT'))).toEqual([`PUT ${nsg}/securityRules/peerpod-wg-udp-51900-03e9b06641`]);
  });

  it('names the missing RBAC operation and the NSG when ARM refuses the write', async () => {
    arm.fail('PUT', /securityRules/, 403, 'AuthorizationFailed', "The client 'sidecar' does not have authorization to perform action 'Microsoft.Network/networkSecurityGroups/securityRules/write' over scope 'x'", 1);
    const seen: CloudPortStatus[] = [];
    const h = harness(AZURE_ENV, { onSleep: (s) => seen.push(s) });
    expect(await h.rule.run()).toMatchObject({ state: 'open', attempts: 2 });
    expect(seen[0]).toMatchObject({ state: 'denied', error: { permission: 'Microsoft.Network/networkSecurityGroups/securityRules/write', cloudCode: 'AuthorizationFailed' } });
    expect(h.lines[0]!.message).toMatch(
      /^cannot open the pod VMs' WireGuard port: the sidecar's azure identity lacks Microsoft\.Network\/networkSecurityGroups\/securityRules\/write on NSG podvm-nsg \(resource group net-rg\); retrying in 5 s; .*docs\/azure\.md/,
    );
  });

  it('retries throttling and a call that hangs', async () => {
    arm.fail('GET', /securityRules/, 429, 'TooManyRequests', 'slow down', 1);
    const throttled = harness(AZURE_ENV, {});
    expect(await throttled.rule.run()).toMatchObject({ state: 'open', attempts: 2 });
    expect(throttled.waits).toEqual([5000]);

    arm = new FakeArm();
    arm.hang('GET', /securityRules/);
    const seen: CloudPortStatus[] = [];
    const hung = harness(AZURE_ENV, {
      attemptTimeoutMs: 20,
      onSleep: (s) => {
        seen.push(s);
        arm.hangs.length = 0;
      },
    });
    expect(await hung.rule.run()).toMatchObject({ state: 'open', attempts: 2 });
    expect(seen[0]).toMatchObject({ state: 'failing', error: { message: 'NSG podvm-nsg (resource group net-rg): no answer from azure within 0.02 s' } });
  });
});

describe('what the sidecar shows', () => {
  it('/readyz stays 200 with the rule denied and carries its state; /metrics has peerpod_wg_cloud_port_rule', async () => {
    mock.on(DescribeSecurityGroupsCommand).rejects(sdkError('UnauthorizedOperation', 'no', 403));
    const h = harness(AWS_ENV, { onSleep: () => h.controller.abort() });
    await h.rule.run();
    // Only what /readyz and /metrics read of a service with no tunnels.
    const service = { ready: true, status: async () => [], counters: { nudges: 0, probes: 0, heals: 0, setupSeconds: [] } } as unknown as TunnelService;
    const server = createApiServer({ service, backend: {} as WireGuardBackend, cloudPortRule: () => h.rule.status }, false);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ready: true, cloudPortRule: { provider: 'aws', state: 'denied', error: { permission: 'ec2:DescribeSecurityGroups' } } });
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics.split('\n').filter((l) => l.startsWith('peerpod_wg_cloud_port_rule'))).toEqual([
        'peerpod_wg_cloud_port_rule{provider="aws",state="off"} 0',
        'peerpod_wg_cloud_port_rule{provider="aws",state="pending"} 0',
        'peerpod_wg_cloud_port_rule{provider="aws",state="open"} 0',
        'peerpod_wg_cloud_port_rule{provider="aws",state="denied"} 1',
        'peerpod_wg_cloud_port_rule{provider="aws",state="failing"} 0',
      ]);
    } finally {
      server.close();
    }
  });
});
