// Provider configuration from the environment, under the names CAA's peer-pods-cm already uses
// (CLOUD_PROVIDER, AWS_SG_IDS, AZURE_NSG_ID, USE_PUBLIC_IP, …) plus ours (WG_*). Pure: takes the
// environment as a value and returns typed config, or one EINVAL listing every bad variable with what
// would be valid. Credentials are not config: the AWS SDK finds its own, and an Azure TokenCredential
// is handed in by whoever builds the provider.
import { readInteger } from '../integer-setting.js';
import { Problems } from '../podnetwork/problems.js';
import { PROVIDER_NAMES, type ProviderName, type TunnelPortRequest } from './provider.js';
import { readSourceCidr } from './source-cidr.js';

/** The pod VM's WireGuard port when WG_PORT is unset; the same default as the worker side's. */
export const DEFAULT_WG_PORT = 51900;
/** Where the search for a free NSG rule priority starts (Azure allows 100-4096; lower wins). */
export const DEFAULT_NSG_PRIORITY = 1000;

export type Env = Readonly<Record<string, string | undefined>>;

/** Which port to open, and to whom. */
export interface TunnelPortConfig {
  readonly port: number; // WG_PORT
  /** Canonical CIDR. */
  readonly sourceCidr: string; // WG_WORKER_CIDR
  readonly allowAnySource: boolean; // WG_ALLOW_ANY_SOURCE
}

/** What the pod VMs' security group rule needs: no image, size or key, only where the rule goes. */
export interface AwsFirewallConfig {
  readonly provider: 'aws';
  readonly region: string; // AWS_REGION
  /** The pod VM's security groups; the first one gets the WireGuard rule. */
  readonly securityGroupIds: readonly string[]; // AWS_SG_IDS
  readonly tunnel: TunnelPortConfig;
}

/** What the pod VMs' NSG rule needs. */
export interface AzureFirewallConfig {
  readonly provider: 'azure';
  readonly subscriptionId: string; // AZURE_SUBSCRIPTION_ID
  readonly nsgId: string; // AZURE_NSG_ID
  readonly nsgPriority: number; // WG_NSG_PRIORITY
  readonly tunnel: TunnelPortConfig;
}

export type FirewallConfig = AwsFirewallConfig | AzureFirewallConfig;

interface CommonConfig {
  readonly usePublicIp: boolean; // USE_PUBLIC_IP
  /** Plain VMs instead of confidential ones (tests, regions without CVMs). */
  readonly disableCvm: boolean; // DISABLECVM
  /** Mode for apf.json in the cloud-config; unset for CAA's process-user-data (see cloud-init.ts). */
  readonly apfPermissions?: string; // WG_APF_PERMISSIONS
  readonly tunnel: TunnelPortConfig;
}

export interface AwsProviderConfig extends CommonConfig, AwsFirewallConfig {
  readonly imageId: string; // PODVM_AMI_ID
  readonly instanceType: string; // PODVM_INSTANCE_TYPE
  readonly subnetId?: string; // AWS_SUBNET_ID
  readonly keyName?: string; // SSH_KP_NAME
}

export interface AzureProviderConfig extends CommonConfig, AzureFirewallConfig {
  readonly resourceGroup: string; // AZURE_RESOURCE_GROUP
  readonly region: string; // AZURE_REGION
  readonly instanceSize: string; // AZURE_INSTANCE_SIZE
  readonly imageId: string; // AZURE_IMAGE_ID
  readonly subnetId: string; // AZURE_SUBNET_ID
  readonly sshUsername: string; // SSH_USERNAME
  readonly sshPublicKey: string; // AZURE_SSH_PUBLIC_KEY
}

export type ProviderConfig = AwsProviderConfig | AzureProviderConfig;

const SG_ID = /^sg-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const AMI_ID = /^ami-[0-9a-f]{8,17}$/;
const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ARM_ID = (type: string): RegExp =>
  new RegExp(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/${type.replace(/\./g, '\\.')}$`, 'i');
const NSG_ID = ARM_ID('Microsoft.Network/networkSecurityGroups/[^/]+');
const SUBNET_ARM_ID = ARM_ID('Microsoft.Network/virtualNetworks/[^/]+/subnets/[^/]+');
const SSH_KEY = /^(?:ssh-(?:rsa|ed25519)|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+=*(?: .*)?$/;
const FILE_MODE = /^0?[0-7]{3}$/;

/** Reads the provider config named by CLOUD_PROVIDER. Throws one EINVAL naming every bad variable. */
export function providerConfigFromEnv(env: Env): ProviderConfig {
  const r = new EnvReader(env);
  const provider = readProviderName(r);
  const common = readCommon(r);
  let config: ProviderConfig | undefined;
  if (provider === 'aws') config = readAws(r, common);
  else if (provider === 'azure') config = readAzure(r, common);
  r.problems.throwIfAny({ op: 'provider-config' });
  // Unreachable: every path that leaves config unset has recorded a problem.
  if (config === undefined) throw new Error('provider config incomplete');
  return config;
}

/**
 * Only what the pod VMs' firewall rule needs (CLOUD_PROVIDER, WG_PORT, WG_ALLOW_ANY_SOURCE,
 * WG_WORKER_CIDR, then AWS_REGION and AWS_SG_IDS, or AZURE_SUBSCRIPTION_ID, AZURE_NSG_ID and
 * WG_NSG_PRIORITY): the sidecar opens the port without ever creating a VM, so it does not ask for
 * images, sizes or keys. Throws one EINVAL naming every bad variable.
 */
export function firewallConfigFromEnv(env: Env): FirewallConfig {
  const r = new EnvReader(env);
  const provider = readProviderName(r);
  const tunnel = readTunnel(r);
  let config: FirewallConfig | undefined;
  if (provider === 'aws') {
    const region = readAwsRegion(r);
    const securityGroupIds = readSecurityGroupIds(r);
    if (tunnel && region && securityGroupIds) config = { provider, region, securityGroupIds, tunnel };
  } else if (provider === 'azure') {
    const subscriptionId = readSubscriptionId(r);
    const nsgId = readNsgId(r, subscriptionId);
    const nsgPriority = readNsgPriority(r);
    if (tunnel && subscriptionId && nsgId) config = { provider, subscriptionId, nsgId, nsgPriority, tunnel };
  }
  r.problems.throwIfAny({ op: 'firewall-config' });
  if (config === undefined) throw new Error('firewall config incomplete');
  return config;
}

/** The ensureTunnelPort request this config asks for. */
export function tunnelPortRequest(config: FirewallConfig): TunnelPortRequest {
  const { port, sourceCidr, allowAnySource } = config.tunnel;
  return { port, protocol: 'udp', sourceCidr, allowAnySource };
}

function readProviderName(r: EnvReader): ProviderName | undefined {
  const valid = `valid providers are ${PROVIDER_NAMES.join(', ')}`;
  return r.required('CLOUD_PROVIDER', `one of ${PROVIDER_NAMES.join(', ')}`, (v) =>
    (PROVIDER_NAMES as readonly string[]).includes(v) ? (v as ProviderName) : bad(`${JSON.stringify(v)} is not supported: ${valid}`),
  );
}

function readTunnel(r: EnvReader): TunnelPortConfig | undefined {
  const port = r.optional('WG_PORT', integerIn(1, 65535)) ?? DEFAULT_WG_PORT;
  const allowAnySource = r.optional('WG_ALLOW_ANY_SOURCE', bool) ?? false;
  const sourceCidr = r.required('WG_WORKER_CIDR', "the worker's egress address as the cloud sees it, e.g. 203.0.113.7/32", (v) => {
    const c = readSourceCidr(v, allowAnySource);
    if (typeof c !== 'string') return c.cidr;
    return bad(c.endsWith('allow any source explicitly') ? `${c} with WG_ALLOW_ANY_SOURCE=true` : c);
  });
  return sourceCidr === undefined ? undefined : { port, sourceCidr, allowAnySource };
}

function readCommon(r: EnvReader): CommonConfig | undefined {
  const tunnel = readTunnel(r);
  const usePublicIp = r.optional('USE_PUBLIC_IP', bool) ?? false;
  const disableCvm = r.optional('DISABLECVM', bool) ?? false;
  const apfPermissions = r.optional('WG_APF_PERMISSIONS', pattern(FILE_MODE, 'an octal file mode such as 0600'));
  if (tunnel === undefined) return undefined;
  return {
    usePublicIp,
    disableCvm,
    ...(apfPermissions !== undefined && { apfPermissions }),
    tunnel,
  };
}

function readAwsRegion(r: EnvReader): string | undefined {
  return r.required('AWS_REGION', 'a region such as eu-west-1', pattern(AWS_REGION, 'a region such as eu-west-1'));
}

function readSecurityGroupIds(r: EnvReader): string[] | undefined {
  return r.required('AWS_SG_IDS', "the pod VM's security groups, comma separated (sg-…); the first gets the WireGuard rule", (v) => {
    const ids = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const wrong = ids.filter((id) => !SG_ID.test(id));
    if (wrong.length > 0) return bad(`${wrong.map((b) => JSON.stringify(b)).join(', ')} ${wrong.length === 1 ? 'is not a security group id' : 'are not security group ids'}: expected sg-… ids, comma separated`);
    if (ids.length === 0) return bad('lists no security group: expected sg-… ids, comma separated');
    return ids;
  });
}

function readAws(r: EnvReader, common: CommonConfig | undefined): AwsProviderConfig | undefined {
  const region = readAwsRegion(r);
  const imageId = r.required('PODVM_AMI_ID', 'the pod VM image (ami-…)', pattern(AMI_ID, 'an AMI id such as ami-0123456789abcdef0'));
  const instanceType = r.optional('PODVM_INSTANCE_TYPE', pattern(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'an instance type such as m6a.large')) ?? 'm6a.large';
  const subnetId = r.optional('AWS_SUBNET_ID', pattern(SUBNET_ID, 'a subnet id such as subnet-0123456789abcdef0'));
  const securityGroupIds = readSecurityGroupIds(r);
  const keyName = r.optional('SSH_KP_NAME', (v) => v);
  if (!common || !region || !imageId || !securityGroupIds) return undefined;
  return {
    provider: 'aws',
    ...common,
    region,
    imageId,
    instanceType,
    ...(subnetId !== undefined && { subnetId }),
    securityGroupIds,
    ...(keyName !== undefined && { keyName }),
  };
}

function readSubscriptionId(r: EnvReader): string | undefined {
  return r.required('AZURE_SUBSCRIPTION_ID', 'a subscription id (a UUID)', pattern(UUID, 'a subscription id (a UUID)'));
}

function readNsgId(r: EnvReader, subscriptionId: string | undefined): string | undefined {
  return r.required('AZURE_NSG_ID', 'a network security group resource id', (v) => {
    if (!NSG_ID.test(v)) return bad(`${JSON.stringify(v)} is not valid: expected /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/networkSecurityGroups/…`);
    // One network client serves both the VMs' NICs and the NSG, and it is bound to one subscription.
    const nsgSubscription = v.split('/')[2] ?? '';
    if (subscriptionId !== undefined && nsgSubscription.toLowerCase() !== subscriptionId.toLowerCase()) {
      return bad(`is in subscription ${nsgSubscription}, not AZURE_SUBSCRIPTION_ID's ${subscriptionId}: expected an NSG in the pod VMs' subscription`);
    }
    return v;
  });
}

function readNsgPriority(r: EnvReader): number {
  return r.optional('WG_NSG_PRIORITY', integerIn(100, 4096)) ?? DEFAULT_NSG_PRIORITY;
}

function readAzure(r: EnvReader, common: CommonConfig | undefined): AzureProviderConfig | undefined {
  const subscriptionId = readSubscriptionId(r);
  const resourceGroup = r.required('AZURE_RESOURCE_GROUP', "the pod VMs' resource group", pattern(/^[-\w.()]{1,90}$/, 'a resource group name (1-90 letters, digits and - _ . ( ))'));
  const region = r.required('AZURE_REGION', 'a region such as eastus', pattern(/^[a-z0-9]+$/, 'a region name such as eastus'));
  const instanceSize = r.optional('AZURE_INSTANCE_SIZE', pattern(/^[A-Za-z0-9_]+$/, 'a VM size such as Standard_DC2as_v5')) ?? 'Standard_DC2as_v5';
  const imageId = r.required('AZURE_IMAGE_ID', 'the pod VM image: an image resource id or a /CommunityGalleries/… id', pattern(/^\/(?:subscriptions|CommunityGalleries)\/.+/i, 'an image resource id (/subscriptions/…) or a community gallery image id (/CommunityGalleries/…)'));
  const subnetId = r.required('AZURE_SUBNET_ID', 'a subnet resource id', pattern(SUBNET_ARM_ID, 'a subnet resource id, /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/…/subnets/…'));
  const nsgId = readNsgId(r, subscriptionId);
  const sshUsername = r.optional('SSH_USERNAME', pattern(/^[a-z_][a-z0-9_-]{0,31}$/, 'a Linux user name such as peerpod')) ?? 'peerpod';
  const sshPublicKey = r.required('AZURE_SSH_PUBLIC_KEY', 'an OpenSSH public key line (Azure needs one for a Linux VM)', (v) =>
    SSH_KEY.test(v.trim()) ? v.trim() : bad('is not an OpenSSH public key: expected a line such as "ssh-ed25519 AAAA… comment"'),
  );
  const nsgPriority = readNsgPriority(r);
  if (!common || !subscriptionId || !resourceGroup || !region || !imageId || !subnetId || !nsgId || !sshPublicKey) return undefined;
  return { provider: 'azure', ...common, subscriptionId, resourceGroup, region, instanceSize, imageId, subnetId, nsgId, sshUsername, sshPublicKey, nsgPriority };
}

/** What is wrong with a variable's value and what would be valid, as one sentence. */
class Bad {
  constructor(readonly text: string) {}
}
const bad = (text: string): Bad => new Bad(text);

/** A check returns the value it read, or what is wrong with it. */
type Check<T> = (value: string) => T | Bad;

class EnvReader {
  readonly problems = new Problems();
  constructor(private readonly env: Env) {}

  /** Go's DefaultToEnv treats an empty variable as unset; so do we. */
  optional<T>(name: string, check: Check<T>): T | undefined {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return undefined;
    return this.read(name, raw, check);
  }

  required<T>(name: string, expected: string, check: Check<T>): T | undefined {
    const raw = this.env[name];
    if (raw === undefined || raw === '') {
      this.problems.add(name, `missing: expected ${expected}`);
      return undefined;
    }
    return this.read(name, raw, check);
  }

  private read<T>(name: string, raw: string, check: Check<T>): T | undefined {
    const result = check(raw);
    if (result instanceof Bad) {
      this.problems.add(name, result.text);
      return undefined;
    }
    return result;
  }
}

function pattern(re: RegExp, expected: string): Check<string> {
  return (v) => (re.test(v) ? v : bad(`${JSON.stringify(v)} is not valid: expected ${expected}`));
}

function integerIn(min: number, max: number): Check<number> {
  return (v) => {
    const r = readInteger(v, min, max);
    return r.ok ? r.value : bad(r.problem);
  };
}

// strconv.ParseBool's spellings, since CAA reads the same variables with Go.
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);
/** strconv.ParseBool: true, false, or undefined for anything else. */
export function parseBool(v: string): boolean | undefined {
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return undefined;
}

function bool(v: string): boolean | Bad {
  return parseBool(v) ?? bad(`${JSON.stringify(v)} is not valid: expected true or false (or 1, 0)`);
}
