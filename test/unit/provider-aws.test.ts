// The AWS adapter against aws-sdk-client-mock: the exact EC2 requests (UserData that decodes to our
// cloud-config with apf.json inside; one UDP rule for the worker's CIDR), idempotence (a rule never
// added twice, a gone instance is success), and SDK errors that name the operation and the resource.
// Nothing leaves the process: the mock replaces the client's send().
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  AuthorizeSecurityGroupIngressCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { PeerpodError, describeError } from '../../src/errors.js';
import { AWS_USERDATA_LIMIT, createAwsProvider } from '../../src/provider/aws/index.js';
import { APF_JSON_PATH, cloudConfigForApf } from '../../src/podnetwork/cloud-init.js';
import type { AwsProviderConfig } from '../../src/provider/config.js';
import type { CloudProvider } from '../../src/provider/provider.js';
import { caught } from '../support/errors.js';

const APF = readFileSync(new URL('../../../test/fixtures/podnetwork/apf-wireguard.json', import.meta.url), 'utf8');
const WORKER_CIDR = '203.0.113.7/32';
const SG = 'sg-0123456789abcdef0';
const SG2 = 'sg-0fedcba9876543210';

const CONFIG: AwsProviderConfig = {
  provider: 'aws',
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm6a.large',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: [SG, SG2],
  usePublicIp: false,
  disableCvm: false,
  tunnel: { port: 51900, sourceCidr: WORKER_CIDR, allowAnySource: false },
};

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
const mock = mockClient(ec2);

function provider(config: Partial<AwsProviderConfig> = {}): CloudProvider {
  return createAwsProvider({ ...CONFIG, ...config }, { ec2, pollIntervalMs: 5, ipTimeoutMs: 200 });
}

function sdkError(name: string, message: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: status } });
}

function running(id: string, extra: Partial<Instance> = {}): { Reservations: { Instances: Instance[] }[] } {
  return {
    Reservations: [
      {
        Instances: [
          {
            InstanceId: id,
            State: { Name: 'running', Code: 16 },
            NetworkInterfaces: [{ PrivateIpAddress: '10.0.1.23', Attachment: { DeviceIndex: 0 } }],
            ...extra,
          },
        ],
      },
    ],
  };
}

function decodeUserData(base64: string | undefined): { text: string; doc: { write_files: Record<string, unknown>[] } } {
  const text = Buffer.from(base64 ?? '', 'base64').toString('utf8');
  return { text, doc: parse(text) as { write_files: Record<string, unknown>[] } };
}

beforeEach(() => {
  mock.reset();
});
afterEach(() => {
  mock.reset();
});

describe('createInstance', () => {
  it('sends RunInstances with our cloud-config as UserData, then reads the IPs from DescribeInstances', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0abc' }] });
    mock.on(DescribeInstancesCommand).resolves(running('i-0abc'));

    const instance = await provider().createInstance({ name: 'podvm-nginx-3f2a1b0c', userdata: APF });

    expect(instance).toEqual({ id: 'i-0abc', ips: { private: ['10.0.1.23'] } });
    const [run] = mock.commandCalls(RunInstancesCommand);
    const input = run!.args[0].input;
    const { text, doc } = decodeUserData(input.UserData);
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(doc).toEqual({ write_files: [{ path: APF_JSON_PATH, content: APF }] });
    expect({ ...input, UserData: '<checked above>', ClientToken: '<hash>' }).toEqual({
      ImageId: 'ami-0123456789abcdef0',
      InstanceType: 'm6a.large',
      MinCount: 1,
      MaxCount: 1,
      UserData: '<checked above>',
      ClientToken: '<hash>',
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: 'podvm-nginx-3f2a1b0c' }] }],
      SecurityGroupIds: [SG, SG2],
      SubnetId: 'subnet-0123456789abcdef0',
      CpuOptions: { AmdSevSnp: 'enabled' },
    });
    expect(input.ClientToken).toMatch(/^[0-9a-f]{64}$/);
    expect(mock.commandCalls(DescribeInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-0abc'] });
  });

  it('uses the same ClientToken for the same name, so a retried create cannot start a second VM', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0abc' }] });
    mock.on(DescribeInstancesCommand).resolves(running('i-0abc'));
    await provider().createInstance({ name: 'podvm-a', userdata: APF });
    await provider().createInstance({ name: 'podvm-a', userdata: APF });
    await provider().createInstance({ name: 'podvm-b', userdata: APF });
    const tokens = mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.ClientToken);
    expect(tokens[0]).toBe(tokens[1]);
    expect(tokens[2]).not.toBe(tokens[0]);
  });

  it('with USE_PUBLIC_IP asks for a public address on the NIC and waits until DescribeInstances shows it', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0pub' }] });
    mock
      .on(DescribeInstancesCommand)
      .rejectsOnce(sdkError('InvalidInstanceID.NotFound', "The instance ID 'i-0pub' does not exist"))
      .resolvesOnce(running('i-0pub'))
      .resolves(
        running('i-0pub', {
          NetworkInterfaces: [{ PrivateIpAddress: '10.0.1.23', Association: { PublicIp: '198.51.100.9' }, Attachment: { DeviceIndex: 0 } }],
        }),
      );

    const instance = await provider({ usePublicIp: true, disableCvm: true }).createInstance({ name: 'podvm-pub', userdata: APF });

    expect(instance.ips).toEqual({ private: ['10.0.1.23'], public: ['198.51.100.9'] });
    expect(mock.commandCalls(DescribeInstancesCommand)).toHaveLength(3);
    const input = mock.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    expect(input.NetworkInterfaces).toEqual([
      { DeviceIndex: 0, AssociatePublicIpAddress: true, DeleteOnTermination: true, Groups: [SG, SG2], SubnetId: 'subnet-0123456789abcdef0' },
    ]);
    // EC2 refuses groups and subnet both on the instance and on its interface.
    expect(input.SecurityGroupIds).toBeUndefined();
    expect(input.SubnetId).toBeUndefined();
    expect(input.CpuOptions).toBeUndefined();
  });

  it('writes apf.json with a file mode only when asked to (CAA refuses unknown write_files keys)', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0abc' }] });
    mock.on(DescribeInstancesCommand).resolves(running('i-0abc'));
    await provider({ apfPermissions: '0600' }).createInstance({ name: 'podvm-a', userdata: APF });
    const { doc } = decodeUserData(mock.commandCalls(RunInstancesCommand)[0]!.args[0].input.UserData);
    expect(doc.write_files).toEqual([{ path: APF_JSON_PATH, permissions: '0600', content: APF }]);
  });

  it('refuses userdata over 16384 raw bytes before any API call', async () => {
    const doc = JSON.parse(APF) as Record<string, unknown>;
    doc['tls-server-cert'] = 'x'.repeat(AWS_USERDATA_LIMIT);
    const e = await caught(provider().createInstance({ name: 'podvm-big', userdata: JSON.stringify(doc) }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toMatch(/^userdata for podvm-big is \d+ bytes \(\d+ in base64\): AWS allows 16384 bytes of raw userdata \(16 KB before base64\)$/);
    expect(e.context).toMatchObject({ op: 'RunInstances', field: 'userdata', limit: 16384 });
    expect(mock.calls()).toHaveLength(0);
  });

  it('accepts userdata of exactly 16384 raw bytes (the limit is on the raw data, not the base64)', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0abc' }] });
    mock.on(DescribeInstancesCommand).resolves(running('i-0abc'));
    // Grow a field until the cloud-config is exactly at the limit.
    const doc = JSON.parse(APF) as Record<string, unknown>;
    // Each 'x' in the JSON adds exactly one byte to the cloud-config (a double-quoted YAML scalar).
    const base = Buffer.byteLength(cloudConfigForApf(JSON.stringify({ ...doc, 'tls-server-cert': '' })));
    doc['tls-server-cert'] = 'x'.repeat(AWS_USERDATA_LIMIT - base);
    await provider().createInstance({ name: 'podvm-edge', userdata: JSON.stringify(doc) });
    const { text } = decodeUserData(mock.commandCalls(RunInstancesCommand)[0]!.args[0].input.UserData);
    expect(Buffer.byteLength(text)).toBe(AWS_USERDATA_LIMIT);
    expect(mock.commandCalls(RunInstancesCommand)[0]!.args[0].input.UserData!.length).toBeGreaterThan(AWS_USERDATA_LIMIT);
  });

  it('refuses an apf.json the pod VM would refuse, and a bad name, before any API call', async () => {
    const bad = await caught(provider().createInstance({ name: 'podvm-a', userdata: '{"pod-network": {}}' }));
    expect(bad.code).toBe('EINVAL');
    const name = await caught(provider().createInstance({ name: '-bad_name', userdata: APF }));
    expect(name.code).toBe('EINVAL');
    expect(name.context.field).toBe('name');
    expect(mock.calls()).toHaveLength(0);
  });

  it('names the operation and the instance when RunInstances is throttled or not allowed, keeping the SDK error', async () => {
    const throttled = sdkError('ThrottlingException', 'Rate exceeded');
    mock.on(RunInstancesCommand).rejects(throttled);
    const e = await caught(provider().createInstance({ name: 'podvm-a', userdata: APF }));
    expect(e.code).toBe('ECLOUD');
    expect(e.message).toBe('RunInstances failed for instance podvm-a: ThrottlingException: Rate exceeded');
    expect(e.context).toMatchObject({ op: 'RunInstances', cloud: 'aws', instance: 'podvm-a', cloudCode: 'ThrottlingException', httpStatus: 400 });
    expect(e.cause).toBe(throttled);

    mock.reset();
    mock.on(RunInstancesCommand).rejects(sdkError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const denied = await caught(provider().createInstance({ name: 'podvm-a', userdata: APF }));
    expect(describeError(denied)).toBe(
      'ECLOUD: RunInstances failed for instance podvm-a: UnauthorizedOperation: You are not authorized to perform this operation. [op=RunInstances cloud=aws instance=podvm-a cloudCode=UnauthorizedOperation httpStatus=403 permission=ec2:RunInstances]',
    );
  });

  it('terminates the instance when its addresses never come, and reports both', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0slow' }] });
    mock.on(DescribeInstancesCommand).resolves(running('i-0slow', { NetworkInterfaces: [] }));
    mock.on(TerminateInstancesCommand).rejects(sdkError('UnauthorizedOperation', 'not allowed', 403));
    const e = await caught(provider().createInstance({ name: 'podvm-slow', userdata: APF }));
    expect(e.message).toMatch(/^instance i-0slow has no addresses after 0.2 s: no private address yet$/);
    expect(mock.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-0slow'] });
    expect(e.cleanupErrors).toHaveLength(1);
    expect((e.cleanupErrors[0] as PeerpodError).message).toBe('TerminateInstances failed for instance i-0slow: UnauthorizedOperation: not allowed');
  });

  it('fails clearly when the instance dies before it has addresses (a reused ClientToken, a capacity error)', async () => {
    mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0dead' }] });
    mock
      .on(DescribeInstancesCommand)
      .resolves(running('i-0dead', { State: { Name: 'terminated', Code: 48 }, StateReason: { Message: 'Server.InsufficientInstanceCapacity' } }));
    mock.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: 'i-0dead', PreviousState: { Name: 'terminated' } }] });
    const e = await caught(provider().createInstance({ name: 'podvm-dead', userdata: APF }));
    expect(e.message).toMatch(/^instance i-0dead is terminated before it got its addresses \(Server.InsufficientInstanceCapacity\)/);
  });
});

describe('deleteInstance', () => {
  it('terminates the instance', async () => {
    mock.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: 'i-0abc', PreviousState: { Name: 'running' } }] });
    expect(await provider().deleteInstance('i-0abc')).toEqual({ existed: true });
    expect(mock.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-0abc'] });
  });

  it('treats an instance that is already gone as success', async () => {
    mock.on(TerminateInstancesCommand).rejects(sdkError('InvalidInstanceID.NotFound', "The instance ID 'i-0gone' does not exist"));
    expect(await provider().deleteInstance('i-0gone')).toEqual({ existed: false });
    mock.reset();
    mock.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: 'i-0old', PreviousState: { Name: 'terminated' } }] });
    expect(await provider().deleteInstance('i-0old')).toEqual({ existed: false });
  });

  it('names the operation and the instance on other errors', async () => {
    mock.on(TerminateInstancesCommand).rejects(sdkError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const e = await caught(provider().deleteInstance('i-0abc'));
    expect(e.message).toBe('TerminateInstances failed for instance i-0abc: UnauthorizedOperation: You are not authorized to perform this operation.');
    expect(e.context).toMatchObject({ op: 'TerminateInstances', instance: 'i-0abc' });
  });
});

describe('ensureTunnelPort', () => {
  const request = { port: 51900, protocol: 'udp', sourceCidr: WORKER_CIDR } as const;

  it('reads the groups first, then adds one UDP rule for the port from the worker CIDR to the first group', async () => {
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }, { GroupId: SG2, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });

    expect(await provider().ensureTunnelPort(request)).toEqual({ changed: true, rule: `${SG} udp/51900 from ${WORKER_CIDR}` });

    expect(mock.calls().map((c) => c.args[0].constructor.name)).toEqual(['DescribeSecurityGroupsCommand', 'AuthorizeSecurityGroupIngressCommand']);
    expect(mock.commandCalls(DescribeSecurityGroupsCommand)[0]!.args[0].input).toEqual({ GroupIds: [SG, SG2] });
    expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input).toEqual({
      GroupId: SG,
      IpPermissions: [
        { IpProtocol: 'udp', FromPort: 51900, ToPort: 51900, IpRanges: [{ CidrIp: WORKER_CIDR, Description: 'peerpod-wireguard: WireGuard from the worker' }] },
      ],
    });
  });

  it('never duplicates a rule: repeated calls against a group that has it make no write', async () => {
    const groups: { GroupId: string; IpPermissions: object[] }[] = [
      { GroupId: SG, IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: WORKER_CIDR }] }] },
      { GroupId: SG2, IpPermissions: [] },
    ];
    mock.on(DescribeSecurityGroupsCommand).callsFake(() => ({ SecurityGroups: groups }));
    mock.on(AuthorizeSecurityGroupIngressCommand).callsFake((input: { GroupId: string; IpPermissions: object[] }) => {
      groups.find((g) => g.GroupId === input.GroupId)!.IpPermissions.push(...input.IpPermissions);
      return { Return: true };
    });
    const p = provider();
    const results = [await p.ensureTunnelPort(request), await p.ensureTunnelPort(request), await p.ensureTunnelPort(request)];
    expect(results.map((r) => r.changed)).toEqual([true, false, false]);
    expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(1);
    expect(mock.commandCalls(DescribeSecurityGroupsCommand)).toHaveLength(3);
  });

  it('counts a rule in any of the pod VM groups, and a range or all-protocols rule that covers the port', async () => {
    for (const permission of [
      { IpProtocol: 'udp', FromPort: 51000, ToPort: 52000, IpRanges: [{ CidrIp: WORKER_CIDR }] },
      { IpProtocol: '-1', IpRanges: [{ CidrIp: WORKER_CIDR }] },
      { IpProtocol: '17', FromPort: 51900, ToPort: 51900, IpRanges: [{ CidrIp: '198.51.100.0/24' }, { CidrIp: WORKER_CIDR }] },
    ]) {
      mock.reset();
      mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }, { GroupId: SG2, IpPermissions: [permission] }] });
      expect(await provider().ensureTunnelPort(request)).toEqual({ changed: false, rule: `${SG2} udp/51900 from ${WORKER_CIDR}` });
      expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(0);
    }
  });

  it('does not count a rule for another port, protocol or source', async () => {
    mock.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [
        {
          GroupId: SG,
          IpPermissions: [
            { IpProtocol: 'udp', FromPort: 51901, ToPort: 51901, IpRanges: [{ CidrIp: WORKER_CIDR }] },
            { IpProtocol: 'tcp', FromPort: 51900, ToPort: 51900, IpRanges: [{ CidrIp: WORKER_CIDR }] },
            { IpProtocol: 'udp', FromPort: 51900, ToPort: 51900, IpRanges: [{ CidrIp: '203.0.113.8/32' }] },
          ],
        },
      ],
    });
    mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
    expect((await provider().ensureTunnelPort(request)).changed).toBe(true);
  });

  it('treats InvalidPermission.Duplicate (a rule added between read and write) as success', async () => {
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).rejects(sdkError('InvalidPermission.Duplicate', 'the specified rule already exists'));
    expect(await provider().ensureTunnelPort(request)).toEqual({ changed: false, rule: `${SG} udp/51900 from ${WORKER_CIDR}` });
  });

  it('passes the caller\'s AbortSignal to every EC2 call', async () => {
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
    const signal = new AbortController().signal;
    await provider().ensureTunnelPort({ ...request, signal });
    expect(mock.calls().map((c) => ((c.args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined)?.abortSignal)).toEqual([signal, signal]);
  });

  it('opens an IPv6 worker address with Ipv6Ranges, in canonical form', async () => {
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
    await provider().ensureTunnelPort({ ...request, sourceCidr: '2001:DB8:0:0::7' });
    expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input.IpPermissions).toEqual([
      { IpProtocol: 'udp', FromPort: 51900, ToPort: 51900, Ipv6Ranges: [{ CidrIpv6: '2001:db8::7/128', Description: 'peerpod-wireguard: WireGuard from the worker' }] },
    ]);
  });

  it('refuses 0.0.0.0/0 unless any source is allowed explicitly, before any API call', async () => {
    const e = await caught(provider().ensureTunnelPort({ ...request, sourceCidr: '0.0.0.0/0' }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toMatch(/^sourceCidr: 0\.0\.0\.0\/0 would open the WireGuard port to the whole Internet/);
    expect(mock.calls()).toHaveLength(0);

    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
    await provider().ensureTunnelPort({ ...request, sourceCidr: '0.0.0.0/0', allowAnySource: true });
    expect(mock.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input.IpPermissions![0]!.IpRanges![0]!.CidrIp).toBe('0.0.0.0/0');
  });

  it('refuses a bad port or protocol before any API call', async () => {
    await expect(provider().ensureTunnelPort({ ...request, port: 0 })).rejects.toMatchObject({ code: 'EINVAL', context: { field: 'port' } });
    await expect(provider().ensureTunnelPort({ ...request, protocol: 'tcp' as 'udp' })).rejects.toMatchObject({ code: 'EINVAL', context: { field: 'protocol' } });
    expect(mock.calls()).toHaveLength(0);
  });

  it('names the operation and the security group when EC2 refuses or throttles', async () => {
    mock.on(DescribeSecurityGroupsCommand).rejects(sdkError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const read = await caught(provider().ensureTunnelPort(request));
    expect(read.message).toBe(`DescribeSecurityGroups failed for security groups ${SG}, ${SG2}: UnauthorizedOperation: You are not authorized to perform this operation.`);
    expect(read.context['permission']).toBe('ec2:DescribeSecurityGroups');

    mock.reset();
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    const throttled = sdkError('ThrottlingException', 'Rate exceeded');
    mock.on(AuthorizeSecurityGroupIngressCommand).rejects(throttled);
    const write = await caught(provider().ensureTunnelPort(request));
    expect(write.message).toBe(`AuthorizeSecurityGroupIngress failed for security group ${SG} (udp/51900 from ${WORKER_CIDR}): ThrottlingException: Rate exceeded`);
    expect(write.context).toMatchObject({ op: 'AuthorizeSecurityGroupIngress', securityGroup: SG, port: 51900, cloudCode: 'ThrottlingException' });
    expect(write.cause).toBe(throttled);
    expect(write.context['permission']).toBeUndefined();

    mock.reset();
    mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: SG, IpPermissions: [] }] });
    mock.on(AuthorizeSecurityGroupIngressCommand).rejects(sdkError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const denied = await caught(provider().ensureTunnelPort(request));
    expect(denied.context).toMatchObject({ securityGroup: SG, permission: 'ec2:AuthorizeSecurityGroupIngress' });

    mock.reset();
    mock.on(DescribeSecurityGroupsCommand).rejects(sdkError('InvalidGroup.NotFound', `The security group '${SG}' does not exist`));
    expect((await caught(provider().ensureTunnelPort(request))).code).toBe('ENOTFOUND');
  });
});
