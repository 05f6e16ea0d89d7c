// The tunnel-type registry: a typed map from tunnel type to the factories of its two drivers. No
// import side effects: an entry point builds the registry with the dependencies it owns and asks
// it for a driver; an unknown type fails with the list of valid ones.
import { PeerpodError } from '../errors.js';
import { TUNNEL_TYPES, type TunnelType } from '../podnetwork/types.js';
import type { PodVmTunnelDriver, WorkerTunnelDriver } from './driver.js';

export interface TunnelDrivers {
  worker: () => WorkerTunnelDriver;
  podVm: () => PodVmTunnelDriver;
}

export type TunnelRegistry = { readonly [T in TunnelType]: Partial<TunnelDrivers> };

export function isTunnelType(text: string): text is TunnelType {
  return (TUNNEL_TYPES as readonly string[]).includes(text);
}

export function tunnelTypeOf(text: string, field = 'tunnel-type'): TunnelType {
  if (!isTunnelType(text)) {
    throw new PeerpodError('EINVAL', `unknown tunnel type "${text}": valid types are ${TUNNEL_TYPES.join(', ')}`, { field });
  }
  return text;
}

export function workerDriver(registry: TunnelRegistry, type: string, field = 'tunnel-type'): WorkerTunnelDriver {
  const make = registry[tunnelTypeOf(type, field)].worker;
  if (make === undefined) throw new PeerpodError('EUNSUPPORTED', `tunnel type ${type} has no worker driver here`, { field });
  return make();
}

export function podVmDriver(registry: TunnelRegistry, type: string, field = 'tunnel-type'): PodVmTunnelDriver {
  const make = registry[tunnelTypeOf(type, field)].podVm;
  if (make === undefined) throw new PeerpodError('EUNSUPPORTED', `tunnel type ${type} has no pod-VM driver here`, { field });
  return make();
}
