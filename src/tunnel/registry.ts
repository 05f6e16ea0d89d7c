// The tunnel-type registry: a typed map from tunnel type to the factories of its two drivers. No
// import side effects: an entry point builds the registry with the dependencies it owns and asks
// it for a driver; an unknown type fails with the list of valid ones. Each factory runs at most
// once per registry: a driver is built on first use and then shared, so what it serialises inside
// (VXLAN's VNI choice, its iptables chains) is serialised for the whole process.
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

const built = new WeakMap<TunnelRegistry, Map<string, WorkerTunnelDriver | PodVmTunnelDriver>>();

/** The driver `side` of `type`, built by its factory the first time it is asked for. */
function driverOf<S extends keyof TunnelDrivers>(registry: TunnelRegistry, type: string, side: S, field: string): ReturnType<TunnelDrivers[S]> {
  const t = tunnelTypeOf(type, field);
  const make = registry[t][side];
  if (make === undefined) {
    throw new PeerpodError('EUNSUPPORTED', `tunnel type ${type} has no ${side === 'worker' ? 'worker' : 'pod-VM'} driver here`, { field });
  }
  let cache = built.get(registry);
  if (cache === undefined) {
    cache = new Map<string, WorkerTunnelDriver | PodVmTunnelDriver>();
    built.set(registry, cache);
  }
  const key = `${t}/${side}`;
  let driver = cache.get(key);
  if (driver === undefined) cache.set(key, (driver = make()));
  return driver as ReturnType<TunnelDrivers[S]>;
}

export function workerDriver(registry: TunnelRegistry, type: string, field = 'tunnel-type'): WorkerTunnelDriver {
  return driverOf(registry, type, 'worker', field);
}

export function podVmDriver(registry: TunnelRegistry, type: string, field = 'tunnel-type'): PodVmTunnelDriver {
  return driverOf(registry, type, 'podVm', field);
}
