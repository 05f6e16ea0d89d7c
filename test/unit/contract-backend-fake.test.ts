// The WireGuardBackend contract (test/contract/backend.contract.ts) against FakeBackend, as a
// userspace and as a kernel backend, in the unit tier. Its world (MTU, moves into the peer netns)
// is the fake's own model. The root-only cases are listed as skipped with their reason; the real
// backends run every case in the lab tier (./../contract/backend-userspace.test.ts, and the kernel
// one in a guest, test/lab/kernel-backend.test.ts).
import { describe, expect, it } from '@jest/globals';
import { PeerpodError } from '../../src/errors.js';
import type { BackendKind } from '../../src/wireguard/backend.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { BACKEND_CONTRACT, type BackendWorld, type ContractContext } from '../contract/backend.contract.js';
import { FakeBackend } from '../fakes/backend.js';

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

function fakeContext(kind: BackendKind): ContractContext {
  const backend = new FakeBackend({ kind });
  backend.namespaces.add(`/run/netns/${PEER_NETNS}`);
  return { backend, world: fakeWorld(backend), prefix: 'pcf', peerNetns: PEER_NETNS, subnet: '198.18.240', ports: [40_100, 40_101] };
}

describe.each(['userspace', 'kernel'] as const)('WireGuardBackend contract: FakeBackend (%s)', (kind) => {
  for (const c of BACKEND_CONTRACT) {
    if (c.rootOnly !== undefined) it.skip(`${c.name} (root only: ${c.rootOnly})`, () => undefined);
    else it(c.name, () => c.run(fakeContext(kind)));
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
