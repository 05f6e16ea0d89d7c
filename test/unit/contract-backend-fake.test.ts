// The WireGuardBackend contract (test/contract/backend.contract.ts) against FakeBackend, as a
// userspace and as a kernel backend, in the unit tier: once over its own small model of links
// (MemoryLinks, moved with moveDevice), once over the netns fake (FakeNetnsWorld, moved with
// `ip link set … netns` through FakeNetns, as the drivers move devices). The root-only cases are listed as skipped with their reason; the real
// backends run every case in the lab tier (./../contract/backend-userspace.test.ts, and the kernel
// one in a guest, test/lab/kernel-backend.test.ts).
import { describe, expect, it } from '@jest/globals';
import { PeerpodError } from '../../src/errors.js';
import type { BackendKind } from '../../src/wireguard/backend.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { BACKEND_CONTRACT, type BackendWorld, type ContractContext } from '../contract/backend.contract.js';
import { FakeBackend, netnsWorldLinks } from '../fakes/backend.js';
import { FakeNetnsWorld } from '../fakes/netns.js';

const PEER_NETNS = 'pcfake-peer';

function fakeWorld(backend: FakeBackend): BackendWorld {
  const peer = `/run/netns/${PEER_NETNS}`;
  return {
    async mtuOf(name) {
      const mtu = backend.netnsOf(name) === null ? backend.mtuOf(name) : undefined;
      if (mtu === undefined) throw new PeerpodError('ENETNS', `Device "${name}" does not exist.`, { iface: name });
      return mtu;
    },
    async moveToPeer(name) {
      backend.moveDevice(name, peer);
    },
    async inPeer(name) {
      return backend.netnsOf(name) === peer;
    },
    async dropFromPeer(name) {
      if (backend.netnsOf(name) === peer) await backend.remove(name, { netns: peer });
    },
  };
}

/** The cases' world in a FakeNetnsWorld, through the netns fake's own `ip` commands. */
function netnsWorld(world: FakeNetnsWorld): BackendWorld {
  const peer = world.at(`/run/netns/${PEER_NETNS}`);
  return {
    async mtuOf(name) {
      return (await world.host.requireLink(name, 'mtu')).mtu;
    },
    async moveToPeer(name) {
      await world.host.ip(['link', 'set', 'dev', name, 'netns', PEER_NETNS], 'move to the peer netns', name);
    },
    async inPeer(name) {
      return (await peer.link(name)) !== null;
    },
    async dropFromPeer(name) {
      if ((await peer.link(name)) !== null) await peer.ip(['link', 'del', name], 'delete', name);
    },
  };
}

const common = { prefix: 'pcf', peerNetns: PEER_NETNS, subnet: '198.18.240', ports: [40_100, 40_101] } as const;

function memoryContext(kind: BackendKind): ContractContext {
  const backend = new FakeBackend({ kind });
  backend.namespaces.add(`/run/netns/${PEER_NETNS}`);
  return { ...common, backend, world: fakeWorld(backend) };
}

function netnsContext(kind: BackendKind): ContractContext {
  const world = new FakeNetnsWorld();
  world.addNetns(`/run/netns/${PEER_NETNS}`);
  return { ...common, backend: new FakeBackend({ kind, links: netnsWorldLinks(world) }), world: netnsWorld(world) };
}

describe.each([
  ['userspace', 'its own links', memoryContext],
  ['kernel', 'its own links', memoryContext],
  ['userspace', 'FakeNetnsWorld', netnsContext],
  ['kernel', 'FakeNetnsWorld', netnsContext],
] as const)('WireGuardBackend contract: FakeBackend (%s, over %s)', (kind, _links, make) => {
  for (const c of BACKEND_CONTRACT) {
    if (c.rootOnly !== undefined) it.skip(`${c.name} (root only: ${c.rootOnly})`, () => undefined);
    else it(c.name, () => c.run(make(kind)));
  }
});

describe('FakeBackend', () => {
  it('reaches a moved device through where only as a kernel backend does', async () => {
    const kernel = new FakeBackend({ kind: 'kernel' });
    kernel.namespaces.add('/run/netns/pod');
    await kernel.create('pwg1', { mtu: 1420 });
    kernel.moveDevice('pwg1', '/run/netns/pod');
    await expect(kernel.device('pwg1')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await kernel.devices()).toEqual([]);
    expect((await kernel.device('pwg1', { netns: '/run/netns/pod' })).name).toBe('pwg1');
    expect(await kernel.owns('pwg1')).toBe(false);
  });

  it('gives an allowed IP to one peer only, masked as WireGuard reports it', async () => {
    const b = new FakeBackend();
    await b.create('pwg2', { mtu: 1420 });
    const [p1, p2] = [generateKeyPair().publicKey, generateKeyPair().publicKey];
    await b.configure('pwg2', { peers: [{ publicKey: p1, allowedIPs: ['10.1.0.7/24', '10.2.0.0/24'] }] });
    await b.configure('pwg2', { peers: [{ publicKey: p2, allowedIPs: ['10.2.0.0/24'] }] });
    const d = await b.device('pwg2');
    expect(d.peers.map((p) => p.allowedIPs)).toEqual([['10.1.0.0/24'], ['10.2.0.0/24']]);
  });

  it('over FakeNetnsWorld: a wireguard link in the host netns, moved by the netns fake, gone with its netns', async () => {
    const world = new FakeNetnsWorld();
    world.addNetns('/run/netns/pod');
    const b = new FakeBackend({ links: netnsWorldLinks(world) });
    await b.create('pwg4', { mtu: 1380 });
    expect(await world.host.link('pwg4')).toMatchObject({ kind: 'wireguard', mtu: 1380 });
    await world.host.ip(['link', 'set', 'dev', 'pwg4', 'netns', '/run/netns/pod'], 'move', 'pwg4');
    expect(b.netnsOf('pwg4')).toBe('/run/netns/pod');
    expect((await b.device('pwg4', { netns: '/run/netns/pod' })).name).toBe('pwg4');
    world.deleteNetns('/run/netns/pod');
    expect(await b.devices()).toEqual([]);
    await expect(b.device('pwg4')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await b.create('pwg4', { mtu: 1420 }); // the name is free again
    expect((await world.host.link('pwg4'))?.mtu).toBe(1420);
  });

  it('reports a handshake only when a test makes one', async () => {
    const b = new FakeBackend();
    await b.create('pwg3', { mtu: 1420 });
    const peer = generateKeyPair().publicKey;
    await b.configure('pwg3', { peers: [{ publicKey: peer, allowedIPs: ['10.3.0.0/24'] }] });
    expect((await b.device('pwg3')).peers[0]?.lastHandshakeSec).toBe(0);
    b.handshake('pwg3', peer, { atSec: 1_800_000_000 });
    const p = (await b.device('pwg3')).peers[0]!;
    expect(p.lastHandshakeSec).toBe(1_800_000_000);
    expect(p.rxBytes).toBeGreaterThan(0);
  });
});
