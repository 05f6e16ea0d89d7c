// The cloud-provider seam: create a pod VM that boots with our apf.json in its userdata, delete it,
// and open the pod VM's WireGuard UDP port to the worker only. One small interface with an adapter
// per cloud (aws/, azure/), loaded lazily through registry.ts so that nothing outside those folders
// ever loads a cloud SDK. Choosing names, sizes and images, and deciding when to call these verbs,
// is left to the caller (the sidecar, following CAA's CreateVM/StartVM/StopVM).
import { PeerpodError, type ErrorCode, type ErrorContext } from '../errors.js';
import type { ApfUserdata } from '../podnetwork/cloud-init.js';

/** The clouds we have an adapter for (CAA's CLOUD_PROVIDER values). */
export const PROVIDER_NAMES = ['aws', 'azure'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];


export type { ApfUserdata };

export interface CreateInstanceRequest {
  /** The pod VM's name, as CAA generates it: 1-63 letters, digits and hyphens. */
  readonly name: string;
  readonly userdata: ApfUserdata;
  /** Cancels waiting for the VM's addresses (the VM is then deleted again). */
  readonly signal?: AbortSignal;
}

export interface InstanceIps {
  /** Private addresses, primary interface first. */
  readonly private: readonly string[];
  /** Present only when the provider was asked for public IPs (USE_PUBLIC_IP). */
  readonly public?: readonly string[];
}

export interface CloudInstance {
  /** What deleteInstance takes: an EC2 instance id, or an Azure VM resource id. */
  readonly id: string;
  readonly ips: InstanceIps;
}

export interface DeleteInstanceResult {
  /** false when the instance was already gone, which is success too. */
  readonly existed: boolean;
}

export interface TunnelPortRequest {
  readonly port: number;
  readonly protocol: 'udp';
  /** The worker's egress address as the cloud sees it, e.g. "203.0.113.7/32". */
  readonly sourceCidr: string;
  /** 0.0.0.0/0 and ::/0 are refused unless this is true. */
  readonly allowAnySource?: boolean;
  /** Cancels the cloud calls (the caller's deadline, or shutdown). */
  readonly signal?: AbortSignal;
}

export interface TunnelPortResult {
  /** true when a rule was written; false when an identical rule was already there. */
  readonly changed: boolean;
  /** Where the rule lives, for logs: "sg-0123… udp/51900 from 203.0.113.7/32". */
  readonly rule: string;
}

/** The pod VMs' firewall (an AWS security group, an Azure NSG): all the sidecar needs at start. */
export interface CloudFirewall {
  readonly name: ProviderName;
  /**
   * Idempotent: reads the existing rules first and never writes a duplicate. A refusal for want of
   * a permission is an ECLOUD whose context.permission names the IAM action or RBAC operation.
   */
  ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult>;
}

export interface CloudProvider extends CloudFirewall {
  /** Creates the VM with a cloud-config that writes apf.json, and waits for its addresses. */
  createInstance(request: CreateInstanceRequest): Promise<CloudInstance>;
  /** Idempotent: an instance that is already gone is success ({ existed: false }). */
  deleteInstance(id: string): Promise<DeleteInstanceResult>;
}

// CAA's util.GenerateInstanceName yields at most 63 such characters; Azure's VM and computer names
// and EC2's Name tag all accept them, so one rule serves every adapter.
const INSTANCE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function checkInstanceName(name: string, op: string): void {
  if (!INSTANCE_NAME.test(name)) {
    throw new PeerpodError(
      'EINVAL',
      `instance name ${JSON.stringify(name)} is not valid: expected 1-63 letters, digits and hyphens, not starting or ending with a hyphen`,
      { op, field: 'name' },
    );
  }
}

/** Refuses a port request no cloud rule could express. */
export function checkTunnelPort(request: TunnelPortRequest, op: string): void {
  if (request.protocol !== 'udp') {
    throw new PeerpodError('EINVAL', `protocol ${JSON.stringify(request.protocol)} is not supported: WireGuard is udp`, { op, field: 'protocol' });
  }
  if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535) {
    throw new PeerpodError('EINVAL', `port ${request.port} is not valid: expected an integer 1-65535`, { op, field: 'port' });
  }
}

/** The code for a failure the cloud reported, with the cloud's own error name in `cloudCode`. */
export const CLOUD_FAILURE: ErrorCode = 'ECLOUD';

/** Wraps an SDK error: the message names the operation and the resource, the SDK error is the cause. */
export function cloudError(
  code: ErrorCode,
  what: string,
  context: ErrorContext & { op: string },
  cause: unknown,
): PeerpodError {
  // Duck-typed: an SDK error may come from another realm, where instanceof Error fails.
  const message = (cause as { message?: unknown } | undefined)?.message;
  const detail = typeof message === 'string' ? message : String(cause);
  const name = context['cloudCode'];
  const prefix = name === undefined ? '' : `${name}: `;
  return new PeerpodError(code, `${context.op} failed for ${what}: ${prefix}${detail}`, context, cause);
}
