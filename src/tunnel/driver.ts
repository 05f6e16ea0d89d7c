// The tunnel driver seam: the three verbs CAA calls on the worker (inspect, setup, teardown per pod
// netns) and the two the pod VM's agent calls (setup, teardown). Each tunnel type implements both
// sides; the registry (registry.ts) maps a type to its drivers. Driver options (ports, keepalive,
// VNI base) are given to a driver's constructor, so the verbs are the same for every type.
import { PeerpodError } from '../errors.js';
import type { PodNetwork, TunnelOptions, TunnelType } from '../podnetwork/types.js';
import type { PodRecord } from '../state/store.js';

export interface WorkerSetupRequest {
  netns: string;
  podVmIPs: readonly string[];
  podNetwork: PodNetwork;
}

export interface WorkerTeardownRequest {
  netns: string;
}

export interface WorkerTunnelDriver {
  readonly type: TunnelType;
  /** Read the pod netns and return the pod-network for apf.json (with this tunnel's section). */
  inspect(netns: string): Promise<PodNetwork>;
  /** Converge the pod's tunnel to the request. Re-runnable; a failure rolls the network back. */
  setup(req: WorkerSetupRequest): Promise<PodRecord>;
  /** Remove everything of this pod. Already gone is success. */
  teardown(req: WorkerTeardownRequest): Promise<void>;
}

export interface PodVmSetupRequest {
  podNetns: string;
  podNetwork: PodNetwork;
  /**
   * Bring up the interface with the pod IP and MTU only, and leave the routes and neighbours to
   * the caller: CAA's podnode adds them itself right after its tunneler's Setup, and fails with
   * "file exists" on any route already there.
   */
  interfaceOnly?: boolean;
}

export interface PodVmSetupResult {
  device: string;
  interface: string;
  mtu: number;
  adopted: boolean;
}

export interface PodVmTunnelDriver {
  readonly type: TunnelType;
  setup(req: PodVmSetupRequest): Promise<PodVmSetupResult>;
  teardown(req: PodVmSetupRequest): Promise<void>;
}

/** The tunnel section of a pod-network when it is of `type`, or an error naming the field. */
export function tunnelSectionOf<T extends TunnelType>(p: PodNetwork, type: T, where: { op: string; netns: string }): Extract<TunnelOptions, { type: T }> {
  if (p.tunnel.type !== type) {
    throw new PeerpodError('EINVAL', `pod-network.tunnel-type is "${p.tunnel.type}", but this is the ${type} driver`, {
      ...where,
      field: 'pod-network.tunnel-type',
    });
  }
  return p.tunnel as Extract<TunnelOptions, { type: T }>;
}
