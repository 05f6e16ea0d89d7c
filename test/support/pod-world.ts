// A worker host in memory for the worker drivers' tests (FakeNetnsWorld): the host netns with its
// underlay, and pod netns as a CNI plugin leaves them.
//
//   host netns: ens3 192.0.2.5/24, default via 192.0.2.1 ── tunnel devices are born here
//   pod netns:  eth0 198.18.1.21/24 (and fd00:198:18:1::21/64 with v6), default via .1
import { FakeNetnsWorld } from '../fakes/netns.js';

/** A world with the host's underlay and no pod netns yet. */
export async function workerHost(): Promise<FakeNetnsWorld> {
  const world = new FakeNetnsWorld();
  world.addLink(null, 'ens3', { kind: 'dummy', up: true });
  await world.host.batch([['address', 'add', '192.0.2.5/24', 'dev', 'ens3'], ['route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'ens3']], 'host');
  return world;
}

/** Add a pod netns at `path` with eth0 (podNetworkOf's pod); `v6` gives the pod an IPv6 address too. */
export async function addPodNetns(world: FakeNetnsWorld, path: string, opts: { v6?: boolean } = {}): Promise<void> {
  const ns = world.addNetns(path);
  world.addLink(path, 'eth0', { kind: 'veth', peer: 'cni0', up: true });
  await ns.batch([['link', 'set', 'dev', 'cni0', 'up'], ['address', 'add', '198.18.1.21/24', 'dev', 'eth0'], ['route', 'add', 'default', 'via', '198.18.1.1', 'dev', 'eth0']], 'pod');
  if (opts.v6 === true) await ns.batch([['address', 'add', 'fd00:198:18:1::21/64', 'dev', 'eth0', 'nodad']], 'pod v6', 'eth0', 6);
}
