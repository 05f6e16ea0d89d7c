// CAA's Configure on our side: reading the pod-network CAA inspected, the pending tunnel that waits
// for setup to name the netns, and the endpoint choice with CAA's `dedicated`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInspectedPodNetwork } from '../../src/podnetwork/schema.js';
import { FilePodStore, podIdOf, type PendingTunnel, type PodRecord } from '../../src/state/store.js';
import { endpointFirst } from '../../src/tunnel/wireguard/worker.js';
import { generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';
import { thrown } from '../support/errors.js';
import { pendingTunnel, wireguardRecord } from '../support/pod-records.js';

describe('parseInspectedPodNetwork (what CAA hands to Configure)', () => {
  // As CAA's Go marshals tunneler.Config after its Inspect (netops names for protocol and scope).
  const caa = {
    podip: '10.128.0.2/24',
    'pod-hw-addr': '0a:58:0a:80:00:02',
    interface: 'eth0',
    'worker-node-ip': '10.10.0.1/16',
    'tunnel-type': 'wireguard',
    routes: [
      { dst: '', gw: '10.128.0.1', dev: 'eth0' },
      { dst: '10.128.0.0/24', gw: '', dev: 'eth0', protocol: 'kernel', scope: 'link' },
    ],
    neighbors: null,
    mtu: 1450,
    index: 0,
    dedicated: false,
    'external-net-via-pod-vm': false,
  };

  it('reads the pod MTU, IP and interface', () => {
    expect(parseInspectedPodNetwork(caa)).toEqual({
      mtu: 1450,
      interfaceName: 'eth0',
      podIp: { address: '10.128.0.2', family: 4, prefixLength: 24 },
    });
  });

  it('ignores a section from an earlier Configure', () => {
    expect(parseInspectedPodNetwork({ ...caa, wireguard: { 'private-key': 'x' } }).mtu).toBe(1450);
  });

  it('names every bad field, under podNetwork', () => {
    const e = thrown(() => parseInspectedPodNetwork({ ...caa, 'tunnel-type': 'vxlan', mtu: 20 }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toMatch(/podNetwork\.tunnel-type: unknown tunnel type "vxlan": valid types are wireguard/);
    expect(e.message).toMatch(/podNetwork\.mtu: .*68-65535/);
  });

  it('wants an object', () => {
    expect(thrown(() => parseInspectedPodNetwork(undefined)).message).toMatch(/podNetwork: missing/);
  });
});

describe('pending tunnels in the state folder', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pw-pending-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function pending(): { p: PendingTunnel; worker: ReturnType<typeof generateKeyPair> } {
    const worker = generateKeyPair();
    const workerPublicKey = worker.publicKey.toBase64();
    return {
      worker,
      p: pendingTunnel(workerPublicKey, { podIP: '10.128.0.2' }),
    };
  }

  const recordFor = (netns: string, p: PendingTunnel): PodRecord =>
    wireguardRecord(netns, {
      podIP: '10.128.0.2',
      mtu: p.mtu,
      podVmIPs: [],
      vmPublicKey: p.vmPublicKey,
      workerPublicKey: p.workerPublicKey,
      vmListenPort: p.vmListenPort,
      keepalive: p.keepalive,
    });

  it('keeps the keys 0600 and becomes the pod\'s folder when adopted', async () => {
    const store = new FilePodStore(dir);
    const { p, worker } = pending();
    const psk = generatePresharedKey();
    await store.writePending(p, { worker: worker.privateKey, psk });
    for (const f of ['worker.key', 'psk.key', 'pending.json']) {
      expect((await stat(join(dir, 'pending', p.id, f))).mode & 0o777).toBe(0o600);
    }
    expect(await store.listPending()).toEqual([p]);
    const rec = recordFor('/run/netns/cni-a', p);
    expect(await store.adoptPending(p.id, rec)).toBe(true);
    expect(await store.readPending(p.id)).toBeNull();
    expect(await store.read(rec.id)).toEqual(rec);
    expect((await store.readKey(rec.id, 'worker'))?.equals(worker.privateKey)).toBe(true);
    expect((await store.readKey(rec.id, 'psk', 'preshared key'))?.equals(psk)).toBe(true);
    expect((await readdir(join(dir, 'pods', rec.id))).sort()).toEqual(['psk.key', 'record.json', 'worker.key']);
  });

  it('is not adopted over a pod that already has state, and stays pending', async () => {
    const store = new FilePodStore(dir);
    const first = pending();
    const second = pending();
    await store.writePending(first.p, { worker: first.worker.privateKey });
    await store.writePending(second.p, { worker: second.worker.privateKey });
    await store.adoptPending(first.p.id, recordFor('/run/netns/cni-b', first.p));
    await expect(store.adoptPending(second.p.id, recordFor('/run/netns/cni-b', second.p))).rejects.toMatchObject({ code: 'ESTATE' });
    expect(await store.readPending(second.p.id)).toEqual(second.p);
    expect((await store.readKey(podIdOf('/run/netns/cni-b'), 'worker'))?.equals(first.worker.privateKey)).toBe(true);
  });

  it('adopts nothing that was never configured, and removes what it is told to', async () => {
    const store = new FilePodStore(dir);
    const { p, worker } = pending();
    expect(await store.adoptPending(p.id, recordFor('/run/netns/cni-c', p))).toBe(false);
    await store.writePending(p, { worker: worker.privateKey });
    await store.removePending(p.id);
    expect(await store.readPending(p.id)).toBeNull();
  });
});

describe('endpointFirst (which pod VM IP the worker sends to)', () => {
  it('is the first IP, or the dedicated interface\'s (the second) with dedicated', () => {
    expect(endpointFirst(['192.0.2.2', '198.51.100.2'], false, '/n')).toEqual(['192.0.2.2', '198.51.100.2']);
    expect(endpointFirst(['192.0.2.2', '198.51.100.2'], true, '/n')).toEqual(['198.51.100.2', '192.0.2.2']);
  });

  it('names the field when the IPs do not fit', () => {
    expect(thrown(() => endpointFirst([], false, '/n')).context).toMatchObject({ field: 'podVmIPs', netns: '/n' });
    const e = thrown(() => endpointFirst(['192.0.2.2'], true, '/n'));
    expect(e.message).toMatch(/dedicated is true but only one pod VM IP/);
    expect(e.context.field).toBe('podVmIPs');
  });

  it('takes IPv6 and a scoped link-local address, and refuses a link-local one without its zone', () => {
    expect(endpointFirst(['2001:db8::10', 'fe80::10%pwq0a1b2c'], false, '/n')).toEqual(['2001:db8::10', 'fe80::10%pwq0a1b2c']);
    const noZone = thrown(() => endpointFirst(['fe80::10'], false, '/n'));
    expect(noZone.message).toMatch(/fe80::10 is link-local but has no zone: expected .* as fe80::10%tap0/);
    expect(noZone.context.field).toBe('podVmIPs[0]');
    expect(thrown(() => endpointFirst(['2001:db8::10%eth0'], false, '/n')).message).toMatch(/only a link-local IPv6 address .* takes a zone/);
    expect(thrown(() => endpointFirst(['fe80::10%a/b'], false, '/n')).message).toMatch(/is not an interface name/);
    expect(thrown(() => endpointFirst(['203.0.113.300'], false, '/n')).message).toMatch(/is not an IP address/);
  });
});
