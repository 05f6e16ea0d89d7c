// The AWS adapter: EC2 RunInstances with our cloud-config as UserData, DescribeInstances for the pod
// VM's addresses, TerminateInstances, and one security-group ingress rule for WireGuard (UDP, the
// pod VM's port, from the worker only). The only module that talks to EC2; credentials, retries on
// throttling and request signing are the SDK's (its default chain: env, profile, IRSA, IMDS).
//
// Every SDK error becomes a PeerpodError that names the operation and the resource (instance id,
// security group id) and keeps the SDK error as its cause.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AuthorizeSecurityGroupIngressCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type IpPermission,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { PeerpodError, type ErrorCode } from '../../errors.js';
import { cloudConfigForApf } from '../../podnetwork/cloud-init.js';
import type { AwsFirewallConfig, AwsProviderConfig } from '../config.js';
import {
  CLOUD_FAILURE,
  checkInstanceName,
  checkTunnelPort,
  cloudError,
  type CloudFirewall,
  type CloudInstance,
  type CloudProvider,
  type CreateInstanceRequest,
  type DeleteInstanceResult,
  type InstanceIps,
  type TunnelPortRequest,
  type TunnelPortResult,
} from '../provider.js';
import { parseSourceCidr } from '../source-cidr.js';

/**
 * AWS: "User data is limited to 16 KB, in raw form, before it is base64-encoded." We enforce the
 * documented rule, 16384 bytes of raw userdata (up to 21848 characters once in base64), since a check
 * on the base64 length would refuse documents EC2 accepts.
 */
export const AWS_USERDATA_LIMIT = 16 * 1024;

const RULE_DESCRIPTION = 'peerpod-wireguard: WireGuard from the worker';

export interface AwsProviderOptions {
  /** The EC2 client; by default one for config.region with the SDK's credential chain. */
  readonly ec2?: EC2Client;
  /** How often DescribeInstances is asked for the new VM's addresses (default 2 s). */
  readonly pollIntervalMs?: number;
  /** How long to wait for them before deleting the VM again (default 120 s, as CAA). */
  readonly ipTimeoutMs?: number;
}

export function createAwsProvider(config: AwsProviderConfig, options: AwsProviderOptions = {}): CloudProvider {
  return new Ec2Provider(config, options);
}

/** Only the security group rule, from the little config it needs (the sidecar's case). */
export function createAwsFirewall(config: AwsFirewallConfig, options: Pick<AwsProviderOptions, 'ec2'> = {}): CloudFirewall {
  return new Ec2Firewall(options.ec2 ?? new EC2Client({ region: config.region }), config.securityGroupIds);
}

/** One ingress rule on the pod VMs' security groups. */
class Ec2Firewall implements CloudFirewall {
  readonly name = 'aws' as const;
  readonly #ec2: EC2Client;
  readonly #groupIds: readonly string[];

  constructor(ec2: EC2Client, groupIds: readonly string[]) {
    this.#ec2 = ec2;
    this.#groupIds = groupIds;
  }

  async ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult> {
    const op = 'AuthorizeSecurityGroupIngress';
    const groupIds = this.#groupIds;
    const groupId = groupIds[0];
    if (groupId === undefined) {
      throw new PeerpodError('EINVAL', 'AWS_SG_IDS lists no security group, so there is nowhere to open the WireGuard port', { op, field: 'AWS_SG_IDS' });
    }
    checkTunnelPort(request, op);
    const source = parseSourceCidr(request.sourceCidr, { op, field: 'sourceCidr', ...(request.allowAnySource !== undefined && { allowAnySource: request.allowAnySource }) });
    const rule = `${groupId} udp/${request.port} from ${source.cidr}`;

    // Any of the pod VM's groups may already carry the rule; the instance gets the union of them all.
    let groups;
    try {
      groups = (await this.#ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [...groupIds] }), abortable(request.signal))).SecurityGroups ?? [];
    } catch (e) {
      throw awsError('DescribeSecurityGroups', `security groups ${groupIds.join(', ')}`, { securityGroup: groupIds.join(',') }, e);
    }
    const holder = groups.find((g) => (g.IpPermissions ?? []).some((p) => permits(p, request.port, source.cidr)));
    if (holder) return { changed: false, rule: `${holder.GroupId ?? groupId} udp/${request.port} from ${source.cidr}` };

    const permission: IpPermission = {
      IpProtocol: 'udp',
      FromPort: request.port,
      ToPort: request.port,
      ...(source.family === 4
        ? { IpRanges: [{ CidrIp: source.cidr, Description: RULE_DESCRIPTION }] }
        : { Ipv6Ranges: [{ CidrIpv6: source.cidr, Description: RULE_DESCRIPTION }] }),
    };
    try {
      await this.#ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission] }), abortable(request.signal));
      return { changed: true, rule };
    } catch (e) {
      // Someone (another worker, or us after a crash) added it between our read and our write.
      if (errorName(e) === 'InvalidPermission.Duplicate') return { changed: false, rule };
      throw awsError(op, `security group ${groupId} (udp/${request.port} from ${source.cidr})`, { securityGroup: groupId, port: request.port }, e);
    }
  }
}

class Ec2Provider implements CloudProvider {
  readonly name = 'aws' as const;
  readonly #config: AwsProviderConfig;
  readonly #ec2: EC2Client;
  readonly #pollIntervalMs: number;
  readonly #ipTimeoutMs: number;
  readonly #firewall: Ec2Firewall;

  constructor(config: AwsProviderConfig, options: AwsProviderOptions) {
    this.#config = config;
    this.#ec2 = options.ec2 ?? new EC2Client({ region: config.region });
    this.#pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.#ipTimeoutMs = options.ipTimeoutMs ?? 120_000;
    this.#firewall = new Ec2Firewall(this.#ec2, config.securityGroupIds);
  }

  async createInstance(request: CreateInstanceRequest): Promise<CloudInstance> {
    const op = 'RunInstances';
    checkInstanceName(request.name, op);
    const userdata = cloudConfigForApf(request.userdata, this.#permissions());
    const bytes = Buffer.byteLength(userdata, 'utf8');
    if (bytes > AWS_USERDATA_LIMIT) {
      const encoded = Math.ceil(bytes / 3) * 4;
      throw new PeerpodError(
        'EINVAL',
        `userdata for ${request.name} is ${bytes} bytes (${encoded} in base64): AWS allows ${AWS_USERDATA_LIMIT} bytes of raw userdata (16 KB before base64)`,
        { op, field: 'userdata', instance: request.name, bytes, limit: AWS_USERDATA_LIMIT },
      );
    }
    const input = this.#runInstancesInput(request.name, Buffer.from(userdata, 'utf8').toString('base64'));
    let id: string | undefined;
    try {
      const out = await this.#ec2.send(new RunInstancesCommand(input), abortable(request.signal));
      id = out.Instances?.[0]?.InstanceId;
    } catch (e) {
      throw awsError(op, `instance ${request.name}`, { instance: request.name }, e);
    }
    if (id === undefined) {
      throw new PeerpodError(CLOUD_FAILURE, `RunInstances for ${request.name} returned no instance id`, { op, instance: request.name });
    }
    try {
      return { id, ips: await this.#waitForIps(id, request.signal) };
    } catch (e) {
      // Nobody else knows this instance's id yet: delete it, or it would run (and bill) unseen.
      const first = e instanceof PeerpodError ? e : awsError('DescribeInstances', `instance ${id}`, { instance: id }, e);
      await this.deleteInstance(id).catch((cleanup: unknown) => first.cleanupErrors.push(cleanup));
      throw first;
    }
  }

  async deleteInstance(id: string): Promise<DeleteInstanceResult> {
    const op = 'TerminateInstances';
    try {
      const out = await this.#ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      const previous = out.TerminatingInstances?.[0]?.PreviousState?.Name;
      return { existed: previous !== 'terminated' };
    } catch (e) {
      if (errorName(e) === 'InvalidInstanceID.NotFound') return { existed: false };
      throw awsError(op, `instance ${id}`, { instance: id }, e);
    }
  }

  ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult> {
    return this.#firewall.ensureTunnelPort(request);
  }

  #permissions(): { permissions?: string } {
    return this.#config.apfPermissions === undefined ? {} : { permissions: this.#config.apfPermissions };
  }

  #runInstancesInput(name: string, userDataBase64: string): RunInstancesCommandInput {
    const c = this.#config;
    const groups = [...c.securityGroupIds];
    return {
      ImageId: c.imageId,
      InstanceType: c.instanceType as RunInstancesCommandInput['InstanceType'],
      MinCount: 1,
      MaxCount: 1,
      UserData: userDataBase64,
      // EC2's idempotency token: a create retried after a crash or a timeout returns the same
      // instance instead of starting a second one. Names are unique per sandbox, as in CAA.
      ClientToken: createHash('sha256').update(`peerpod-wireguard/${name}`).digest('hex'),
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: name }] }],
      ...(c.keyName !== undefined && { KeyName: c.keyName }),
      // A public address can only be asked for on a network interface, which then carries the
      // subnet and the groups (EC2 refuses them in both places).
      ...(c.usePublicIp
        ? {
            NetworkInterfaces: [
              {
                DeviceIndex: 0,
                AssociatePublicIpAddress: true,
                DeleteOnTermination: true,
                Groups: groups,
                ...(c.subnetId !== undefined && { SubnetId: c.subnetId }),
              },
            ],
          }
        : { SecurityGroupIds: groups, ...(c.subnetId !== undefined && { SubnetId: c.subnetId }) }),
      ...(!c.disableCvm && { CpuOptions: { AmdSevSnp: 'enabled' as const } }),
    };
  }

  async #waitForIps(id: string, signal: AbortSignal | undefined): Promise<InstanceIps> {
    const deadline = Date.now() + this.#ipTimeoutMs;
    let last = 'no answer yet';
    for (;;) {
      signal?.throwIfAborted();
      let instance: Instance | undefined;
      try {
        const out = await this.#ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }), abortable(signal));
        instance = out.Reservations?.[0]?.Instances?.[0];
      } catch (e) {
        // EC2 is eventually consistent: a brand-new id may be unknown for a moment.
        if (errorName(e) !== 'InvalidInstanceID.NotFound') throw awsError('DescribeInstances', `instance ${id}`, { instance: id }, e);
        last = 'the instance is not visible yet';
      }
      if (instance) {
        const state = instance.State?.Name;
        if (state === 'shutting-down' || state === 'terminated') {
          throw new PeerpodError(CLOUD_FAILURE, `instance ${id} is ${state} before it got its addresses (${instance.StateReason?.Message ?? 'no reason given'}); a name is used once, so retry with a new one`, {
            op: 'DescribeInstances',
            instance: id,
          });
        }
        const ips = instanceIps(instance);
        if (ips.private.length > 0 && (!this.#config.usePublicIp || (ips.public?.length ?? 0) > 0)) return ips;
        last = ips.private.length === 0 ? 'no private address yet' : 'no public address yet';
      }
      if (Date.now() + this.#pollIntervalMs > deadline) {
        throw new PeerpodError(CLOUD_FAILURE, `instance ${id} has no addresses after ${Number((this.#ipTimeoutMs / 1000).toFixed(1))} s: ${last}`, {
          op: 'DescribeInstances',
          instance: id,
        });
      }
      await sleep(this.#pollIntervalMs, undefined, signal === undefined ? {} : { signal });
    }
  }
}

/** Addresses by interface, primary (device index 0) first. */
function instanceIps(instance: Instance): { private: string[]; public?: string[] } {
  const nics = [...(instance.NetworkInterfaces ?? [])].sort((a, b) => (a.Attachment?.DeviceIndex ?? 0) - (b.Attachment?.DeviceIndex ?? 0));
  const privateIps = nics.map((n) => n.PrivateIpAddress).filter(isAddress);
  const publicIps = nics.map((n) => n.Association?.PublicIp).filter(isAddress);
  if (privateIps.length === 0 && isAddress(instance.PrivateIpAddress)) privateIps.push(instance.PrivateIpAddress);
  if (publicIps.length === 0 && isAddress(instance.PublicIpAddress)) publicIps.push(instance.PublicIpAddress);
  return { private: privateIps, ...(publicIps.length > 0 && { public: publicIps }) };
}

function isAddress(a: string | undefined): a is string {
  return a !== undefined && a !== '' && a !== '0.0.0.0';
}

/** Whether an existing ingress permission already lets UDP `port` in from exactly `cidr`. */
function permits(p: IpPermission, port: number, cidr: string): boolean {
  const allProtocols = p.IpProtocol === '-1';
  if (!allProtocols && p.IpProtocol !== 'udp' && p.IpProtocol !== '17') return false;
  if (!allProtocols && !((p.FromPort ?? -1) <= port && port <= (p.ToPort ?? -1))) return false;
  return (p.IpRanges ?? []).some((r) => r.CidrIp === cidr) || (p.Ipv6Ranges ?? []).some((r) => r.CidrIpv6 === cidr);
}

function errorName(e: unknown): string | undefined {
  // Duck-typed: an SDK error may come from another realm, where instanceof Error fails.
  const name = (e as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

// EC2's error codes that say what is wrong with our input or its references, rather than with EC2.
const NOT_FOUND = /\.NotFound$/;
const BAD_INPUT = /^(?:InvalidParameter|InvalidParameterValue|InvalidParameterCombination|MissingParameter|InvalidUserData\.Malformed|InvalidInstanceID\.Malformed|InvalidGroupId\.Malformed)$/;

function awsError(op: string, what: string, context: Record<string, string | number>, e: unknown): PeerpodError {
  const name = errorName(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  let code: ErrorCode = CLOUD_FAILURE;
  if (name !== undefined && NOT_FOUND.test(name)) code = 'ENOTFOUND';
  else if (name !== undefined && BAD_INPUT.test(name)) code = 'EINVAL';
  // EC2's IAM actions are named after its API calls, so the refused call names the missing action.
  const permission = name === 'UnauthorizedOperation' ? `ec2:${op}` : undefined;
  return cloudError(code, what, { op, cloud: 'aws', ...context, cloudCode: name, httpStatus: status, permission }, e);
}

function abortable(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}
