// The Netns contract (test/contract/netns.contract.ts) against FakeNetns, in memory and without
// root; then what only the fake has: injected faults, refusals of what it does not model, and the
// world's own helpers. The same cases run against the kernel in test/lab/netns-real.contract.test.ts.
import { describe, expect, it } from '@jest/globals';
import type { Netns } from '../../src/netns/netns.js';
import { applyPodPlumbing } from '../../src/tunnel/wireguard/worker-apply.js';
import { removePodPlumbing } from '../../src/tunnel/wireguard/worker-plumbing.js';
import { GAPS, NETNS_CONTRACT, type NetnsContractContext } from '../contract/netns.contract.js';
import { FakeNetnsWorld } from '../fakes/netns.js';
import { caught } from '../support/errors.js';

function fakeContext(): NetnsContractContext {
  const world = new FakeNetnsWorld();
  world.existsFails('/run/netns/case-unsure', 'timeout');
  return {
    impl: 'fake',
    ns: world.addNetns('/run/netns/case-a'),
    other: world.addNetns('/run/netns/case-b') as Netns & { readonly path: string },
    absent: world.at('/run/netns/case-none'),
    unsure: world.at('/run/netns/case-unsure'),
    addLink: async (ns, name, kind) => {
      world.addLink(ns.path, name, { kind });
    },
  };
}

describe('Netns contract: FakeNetns', () => {
  for (const c of NETNS_CONTRACT) {
    const gap = GAPS.fake[c.name];
    if (gap === undefined) it(c.name, () => c.run(fakeContext()));
    else it.skip(`${c.name} (gap: ${gap})`, () => undefined);
  }
});

describe('FakeNetns beyond the contract', () => {
  it('failNext makes the next matching command fail with ENETNS, once, in the netns asked for', async () => {
    const world = new FakeNetnsWorld();
    const pod = world.addNetns('/run/netns/pod');
    world.failNext({ netns: '/run/netns/pod', match: 'link add' });
    await world.host.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add in host');
    const e = await caught(pod.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add in pod', 'va'));
    expect([e.code, e.context.op, e.context.netns, e.context.iface]).toEqual(['ENETNS', 'add in pod', '/run/netns/pod', 'va']);
    expect(e.message).toMatch(/injected fault/);
    expect(await pod.link('va')).toBeNull();
    await pod.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add in pod', 'va');
    expect((await pod.links()).map((l) => l.ifname)).toEqual(['lo', 'vb', 'va']);

    world.failNext({ match: /iptables .* -C / });
    expect(await pod.hasIptablesRule('raw', 'OUTPUT', ['-j', 'ACCEPT'])).toBe(false);
    world.failNext();
    expect((await caught(pod.readSysctl('net.ipv4.ip_forward'))).code).toBe('ENETNS');
  });

  it('refuses what it does not model with EUNSUPPORTED naming the command', async () => {
    const world = new FakeNetnsWorld();
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => world.host.run(['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'fq'], 'tc'), /`tc qdisc add dev lo root fq`/],
      [() => world.host.run(['nft', 'list', 'ruleset'], 'nft'), /nft is not modelled/],
      [() => world.host.ip(['-json', 'xfrm', 'state', 'show'], 'xfrm'), /`ip -json xfrm state show`/],
      [() => world.host.ip(['link', 'show'], 'text'), /only -json/],
      [() => world.host.iptables(['-t', 'nat', '-A', 'POSTROUTING', '-j', 'MASQUERADE'], 'nat'), /MASQUERADE|target/],
      [() => world.host.hasIptablesRule('raw', 'OUTPUT', ['-m', 'conntrack', '--ctstate', 'NEW', '-j', 'ACCEPT']), /match conntrack/],
      [() => world.host.readSysctl('net.core.somaxconn'), /net.core.somaxconn is not modelled/],
      [() => world.host.ip(['rule', 'add', 'lookup', '7'], 'rule'), /explicit priority/],
    ];
    for (const [p, why] of cases) {
      const e = await caught(p());
      expect(e.code).toBe('EUNSUPPORTED');
      expect(e.message).toMatch(/^FakeNetns does not model `/);
      expect(e.message).toMatch(why);
    }
  });

  it('a world without IPv6 has no net.ipv6 sysctls, and says why', async () => {
    const world = new FakeNetnsWorld({ ipv6: false });
    expect(await world.host.ipv6Unavailable()).toMatch(/no IPv6/);
    expect((await caught(world.host.iptables(['-S'], 'list', undefined, 6))).code).toBe('ENETNS');
  });

  it('deleting a netns takes its devices, and a veth peer elsewhere with them; the log keeps every command', async () => {
    const world = new FakeNetnsWorld();
    const pod = world.addNetns('/run/netns/pod');
    expect(world.addLink(null, 'eth0', { kind: 'veth', peer: 'tmp0', up: true })).toBeGreaterThan(1);
    await world.host.ip(['link', 'set', 'dev', 'tmp0', 'netns', '/run/netns/pod', 'name', 'eth0'], 'move', 'tmp0');
    expect((await pod.requireLink('eth0', 'read')).kind).toBe('veth');
    world.deleteNetns('/run/netns/pod');
    expect(await pod.exists()).toBe(false);
    expect(await world.host.link('eth0')).toBeNull();
    expect(world.log.map((l) => `${l.netns}: ${l.argv.join(' ')}`)).toContain(
      'host: ip link set dev tmp0 netns /run/netns/pod name eth0',
    );
    world.existsFails('/run/netns/pod', 'error');
    expect((await caught(pod.exists())).code).toBe('ENETNS');
    world.existsFails('/run/netns/pod', null);
    expect(await pod.exists()).toBe(false);
  });

  it('snapshot() sees what the worker plumbing leaves, and that its teardown leaves nothing', async () => {
    const world = new FakeNetnsWorld();
    const pod = world.addNetns('/run/netns/pod');
    world.addLink('/run/netns/pod', 'eth0', { kind: 'veth', peer: 'wg0', up: true });
    await pod.batch([['link', 'set', 'dev', 'wg0', 'up'], ['address', 'add', '198.18.5.2/24', 'dev', 'eth0']], 'pod');
    const before = await pod.snapshot();
    const p = { device: 'wg0', podInterface: 'eth0', podIPs: ['198.18.5.2'] };
    await applyPodPlumbing(pod, p);
    const during = await pod.snapshot();
    expect(Object.keys(during).filter((k) => JSON.stringify(during[k]) !== JSON.stringify(before[k])).sort()).toEqual([
      'iptables mangle',
      'proxies',
      'routes4 2151',
      'rules4',
    ]);
    await removePodPlumbing(pod, p);
    const after = await pod.snapshot();
    // The device is gone (a veth takes its peer, eth0, with it); the rest is as before.
    const { links: _a, addresses: _b, 'routes4 main': _c, ...rest } = after;
    const { links: _d, addresses: _e, 'routes4 main': _f, ...restBefore } = before;
    expect(rest).toEqual(restBefore);
    expect(after['links']).toEqual([{ ifname: 'lo', mtu: 65536, operstate: 'DOWN', flags: ['LOOPBACK'] }]);
  });

  it('the factory hands out the host and handles on paths', async () => {
    const world = new FakeNetnsWorld();
    const f = world.factory();
    expect(f.host()).toBe(world.host);
    expect(f.host().label).toBe('host');
    expect(f.at('/run/netns/x').label).toBe('/run/netns/x');
    expect(await f.at('/run/netns/x').exists()).toBe(false);
    expect(await f.host().exists()).toBe(true);
  });
});
