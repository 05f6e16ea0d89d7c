// The Netns contract: one list of cases that IprouteNetns (the kernel, through iproute2, iptables and
// nsenter; lab tier, root) and FakeNetns (test/fakes/netns.ts; unit tier) must both pass, written
// with node:assert only. Each case gets two fresh, empty namespaces from its runner (`ns`, and
// `other` to move links into) and never touches the runner's own netns. The writes go through the
// same argv forms the drivers send (`ip`, `ip -batch`, iptables), and two cases run the drivers'
// own plumbing code, so the fake is held to the kernel on exactly what the drivers use.
//
// Where one side cannot do what a case needs, the case is skipped on that side with the reason in
// GAPS; what the fake does not model at all (and so no case asks of it) is listed in NOT_MODELLED.
import assert from 'node:assert/strict';
import { PeerpodError } from '../../src/errors.js';
import type { Link, Netns, Route } from '../../src/netns/netns.js';
import { vxlanLinks } from '../../src/tunnel/vxlan/device.js';
import { ensureMirror, MIRROR_PREF, parseTcFilters, removeMirror, removeMirrorsInto } from '../../src/tunnel/vxlan/mirror.js';
import { ensureNotrack, NOTRACK_CHAINS, removeNotrack } from '../../src/tunnel/vxlan/notrack.js';
import { applyPodPlumbing, preparePodNetns } from '../../src/tunnel/wireguard/worker-apply.js';
import { POD_ROUTE_TABLE, removePodPlumbing } from '../../src/tunnel/wireguard/worker-plumbing.js';

export type NetnsImpl = 'fake' | 'real';

export interface NetnsContractContext {
  impl: NetnsImpl;
  /** A fresh namespace for this case: only its loopback, down. */
  ns: Netns;
  /** A second fresh namespace, to move links into. */
  other: Netns & { readonly path: string };
  /** A Netns whose path holds no namespace. */
  absent: Netns;
  /** A Netns whose existence cannot be checked (a path that is no netns file, or an injected fault). */
  unsure: Netns;
  /** Make a device of a kind the runner's kernel may lack (wireguard, dummy). */
  addLink?: (ns: Netns, name: string, kind: 'wireguard' | 'dummy') => Promise<void>;
}

export interface NetnsContractCase {
  name: string;
  run(ctx: NetnsContractContext): Promise<void>;
}

/** Cases one side skips, with the reason. */
export const GAPS: Record<NetnsImpl, Record<string, string>> = {
  fake: {},
  real: {
    'wireguard and dummy devices are listed with their kind and flags':
      "the lab host's kernel has no wireguard or dummy module; the kernel backend's devices are tested in the pod VM guest " +
      '(test/lab/kernel-backend.test.ts)',
  },
};

/** What the kernel does that FakeNetns does not model, and why no case asks for it. */
export const NOT_MODELLED: Record<string, string> = {
  'IPv6 link-local addresses, fe80::/64 and multicast routes, DAD':
    'the drivers read global addresses only and skip fe80::/64 (inspect-pod); modelling addrconf would be a kernel rewrite',
  'routes removed when their device goes admin down, or loses its last IPv4 address':
    'the drivers bring devices up once and never down; the fake keeps the routes (and removes them with the device)',
  'the local and default routing tables, route lookups, packet forwarding':
    'no packets flow in the fake; lab tests (wireguard-tunnel, vxlan-tunnel) carry traffic through the kernel',
  'bridge ports and carrier': 'a bridge in the fake never gets carrier (as a real bridge without ports); no driver enslaves devices',
  'neighbour entries the kernel learns (ARP/NDP)': 'the fake lists only neighbours that were added',
  'tc beyond the ingress hook and the VXLAN mirror (root qdiscs, other classifiers and actions)':
    'refused with EUNSUPPORTED; the mirror\'s one filter shape (u32 match-all, mirred egress redirect) is modelled',
  'iptables matches and targets beyond the drivers\' (comment, udp, tcp, icmp6, mark; NOTRACK, TCPMSS, MARK, ACCEPT, DROP, RETURN)':
    'refused with EUNSUPPORTED naming the command; -P, -L, -Z and nat targets likewise',
  'ip -batch lines with quotes, `ip -n`, `ip netns`, `ip monitor`': 'no driver sends them; refused',
  'route metrics, preference, IPv6 route dump order':
    'the product Route type has no metric; cases compare IPv6 routes sorted',
  'operstate history (a veth that lost its carrier by its peer moving away stays LOWERLAYERDOWN until the next carrier change)':
    'the fake derives operstate from the present state; the contract checks the states the drivers meet',
  'ifindex per netns and kept across moves': 'the fake numbers links world-wide; nothing reads ifindex but the link itself',
  'link_netnsid values and a moved VXLAN socket staying in its birth netns':
    'the fake says only whether a veth peer is in another netns',
};

async function failure(p: Promise<unknown>, code: string, what: string): Promise<PeerpodError> {
  const e = await p.then(
    () => assert.fail(`${what}: expected a rejection with ${code}`),
    (x: unknown) => x,
  );
  assert.ok(e instanceof PeerpodError, `${what}: expected a PeerpodError, got ${String(e)}`);
  assert.equal(e.code, code, `${what}: ${e.message}`);
  return e;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function bare(l: Link | null): Omit<Link, 'ifindex' | 'address'> | null {
  if (l === null) return null;
  const { ifindex: _i, address: _a, ...rest } = l;
  return rest;
}

function sortRoutes(rs: readonly Route[]): Route[] {
  return [...rs].sort((a, b) => `${a.type ?? ''} ${a.dst}`.localeCompare(`${b.type ?? ''} ${b.dst}`));
}

/** A veth pair, both ends up, `a` with an IPv4 /24 and an IPv6 /64: a pod's eth0 and its far end. */
async function podLike(ns: Netns, a = 'eth0', b = 'veth0'): Promise<void> {
  await ns.batch(
    [
      ['link', 'add', a, 'type', 'veth', 'peer', 'name', b],
      ['link', 'set', 'dev', b, 'up'],
      ['link', 'set', 'dev', a, 'up'],
      ['address', 'add', '198.18.5.2/24', 'dev', a],
      ['address', 'add', 'fd00:5::2/64', 'dev', a, 'nodad'],
      ['route', 'add', 'default', 'via', '198.18.5.1', 'dev', a],
    ],
    'make a pod-like netns',
  );
}

export const NETNS_CONTRACT: readonly NetnsContractCase[] = [
  {
    name: 'a new netns has only its loopback, down, and the default rules',
    async run({ ns }) {
      const links = await ns.links();
      assert.deepEqual(links, [{ ifindex: 1, ifname: 'lo', mtu: 65536, operstate: 'DOWN', flags: ['LOOPBACK'] }]);
      const plain = JSON.parse(await ns.ip(['-json', 'link', 'show'], 'list without details')) as Record<string, unknown>[];
      assert.deepEqual(plain.map((l) => [l['ifname'], l['link_type'], l['linkinfo']]), [['lo', 'loopback', undefined]]);
      assert.deepEqual(await ns.rules(4), [
        { priority: 0, src: 'all', table: 'local' },
        { priority: 32766, src: 'all', table: 'main' },
        { priority: 32767, src: 'all', table: 'default' },
      ]);
      assert.deepEqual(await ns.rules(6), [
        { priority: 0, src: 'all', table: 'local' },
        { priority: 32766, src: 'all', table: 'main' },
      ]);
      assert.deepEqual(await ns.routes(), []);
      assert.deepEqual(await ns.neighbours(), []);
      assert.deepEqual(await ns.neighbours({ proxy: true }), []);
      assert.equal(await ns.defaultRouteMtu(), 1500, 'no default route: the fallback');
      assert.equal(await ns.defaultRouteMtu(1280), 1280);
    },
  },
  {
    name: 'links are created and read back: kinds, MTU, MAC, veth peers, up and down',
    async run({ ns }) {
      await ns.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add veth', 'va');
      await ns.ip(['link', 'add', 'br0', 'mtu', '1400', 'type', 'bridge'], 'add bridge', 'br0');
      await ns.ip(['link', 'add', 'vx7', 'type', 'vxlan', 'id', '7', 'remote', '198.18.9.9', 'dstport', '4789', 'nolearning'], 'add vxlan', 'vx7');
      const links = await ns.links();
      assert.deepEqual(links.map((l) => l.ifname), ['lo', 'vb', 'va', 'br0', 'vx7'], 'listed in ifindex order (a veth peer is made first)');
      assert.equal(new Set(links.map((l) => l.ifindex)).size, links.length, 'ifindexes are distinct');
      for (const l of links.slice(1)) assert.match(l.address ?? '', MAC, `${l.ifname} has a MAC`);
      assert.deepEqual(bare(await ns.link('va')), {
        ifname: 'va', mtu: 1500, operstate: 'DOWN', flags: ['BROADCAST', 'MULTICAST', 'M-DOWN'], kind: 'veth', link: 'vb',
      }, 'M-DOWN: the peer, here, is down');
      assert.deepEqual(bare(await ns.link('br0')), { ifname: 'br0', mtu: 1400, operstate: 'DOWN', flags: ['BROADCAST', 'MULTICAST'], kind: 'bridge' });
      assert.equal((await ns.link('vx7'))?.kind, 'vxlan');
      const plain = JSON.parse(await ns.ip(['-json', 'link', 'show', 'dev', 'vx7'], 'without details', 'vx7')) as Record<string, unknown>[];
      assert.equal(plain[0]?.['linkinfo'], undefined, 'the kind only with -details');
      const [vx] = await vxlanLinks(ns);
      assert.deepEqual(
        vx && { ifname: vx.ifname, vni: vx.vni, remote: vx.remote, port: vx.port, learning: vx.learning },
        { ifname: 'vx7', vni: 7, remote: '198.18.9.9', port: 4789, learning: false },
      );

      await ns.ip(['link', 'set', 'dev', 'va', 'up'], 'up', 'va');
      assert.deepEqual(bare(await ns.link('va')), {
        ifname: 'va', mtu: 1500, operstate: 'LOWERLAYERDOWN', flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP', 'M-DOWN'], kind: 'veth', link: 'vb',
      }, 'one end up: no carrier');
      await ns.batch([['link', 'set', 'dev', 'vb', 'up'], ['link', 'set', 'dev', 'vb', 'mtu', '1380'], ['link', 'set', 'dev', 'vb', 'address', '02:00:00:00:00:0b']], 'set vb');
      const vb = await ns.requireLink('vb', 'read vb');
      assert.deepEqual([vb.operstate, vb.flags, vb.mtu, vb.address], ['UP', ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], 1380, '02:00:00:00:00:0b']);
      assert.equal((await ns.link('va'))?.operstate, 'UP', 'both ends up: carrier');
      await ns.ip(['link', 'set', 'dev', 'vx7', 'up'], 'up', 'vx7');
      assert.deepEqual([(await ns.link('vx7'))?.operstate, (await ns.link('vx7'))?.flags], ['UNKNOWN', ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP']]);

      await ns.ip(['link', 'del', 'dev', 'vb'], 'delete', 'vb');
      assert.deepEqual((await ns.links()).map((l) => l.ifname), ['lo', 'br0', 'vx7'], 'a veth goes with its peer');
      await failure(ns.ip(['link', 'add', 'br0', 'type', 'bridge'], 'add again', 'br0'), 'ENETNS', 'a name that is taken');
    },
  },
  {
    name: 'wireguard and dummy devices are listed with their kind and flags',
    async run(ctx) {
      const addLink = ctx.addLink;
      assert.ok(addLink, 'the runner makes wireguard and dummy devices');
      await addLink(ctx.ns, 'wg0', 'wireguard');
      await addLink(ctx.ns, 'dm0', 'dummy');
      assert.deepEqual(bare(await ctx.ns.link('wg0')), { ifname: 'wg0', mtu: 1420, operstate: 'DOWN', flags: ['POINTOPOINT', 'NOARP'], kind: 'wireguard' });
      assert.equal((await ctx.ns.link('wg0'))?.address, undefined, 'an L3 device has no MAC');
      await ctx.ns.ip(['link', 'set', 'dev', 'wg0', 'up'], 'up', 'wg0');
      assert.deepEqual(bare(await ctx.ns.link('wg0')), {
        ifname: 'wg0', mtu: 1420, operstate: 'UNKNOWN', flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'], kind: 'wireguard',
      });
      assert.equal((await ctx.ns.link('dm0'))?.kind, 'dummy');
    },
  },
  {
    name: 'a veth end moves to another netns, renamed, down, without its addresses and routes',
    async run({ ns, other }) {
      await podLike(ns, 'eth0', 'out0');
      await ns.writeSysctls({ 'net.ipv4.conf.out0.rp_filter': 2 });
      await ns.ip(['link', 'set', 'dev', 'out0', 'netns', other.path, 'name', 'in0'], 'move', 'out0');
      assert.equal(await ns.link('out0'), null, 'gone from the first netns');
      assert.deepEqual(bare(await ns.link('eth0')), {
        ifname: 'eth0', mtu: 1500, operstate: 'DOWN', flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'], kind: 'veth',
      }, 'the peer is elsewhere now, and down: no `link` name, no M-DOWN, DOWN rather than LOWERLAYERDOWN');
      const moved = await other.requireLink('in0', 'read the moved end');
      assert.deepEqual(bare(moved), { ifname: 'in0', mtu: 1500, operstate: 'DOWN', flags: ['BROADCAST', 'MULTICAST'], kind: 'veth' });
      assert.equal(await other.readSysctl('net.ipv4.conf.in0.rp_filter'), '0', "per-device sysctls are the new netns's defaults");
      await other.ip(['link', 'set', 'dev', 'in0', 'up'], 'up', 'in0');
      assert.equal((await ns.link('eth0'))?.operstate, 'UP', 'carrier across namespaces');

      await ns.batch(
        [
          ['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'out1'],
          ['link', 'set', 'dev', 'eth1', 'up'],
          ['address', 'add', '198.18.6.2/24', 'dev', 'eth1'],
          ['route', 'add', '198.18.60.0/24', 'via', '198.18.6.1', 'dev', 'eth1'],
        ],
        'a second pair',
      );
      assert.equal((await ns.routes()).filter((r) => r.dev === 'eth1').length, 2);
      await ns.ip(['link', 'set', 'dev', 'eth1', 'netns', other.path], 'move', 'eth1');
      assert.deepEqual(await other.addresses('eth1'), [], 'addresses do not move');
      assert.deepEqual((await ns.routes()).filter((r) => r.dev === 'eth1'), [], 'routes through it are gone');

      await failure(ns.ip(['link', 'set', 'dev', 'out1', 'netns', `${other.path}-absent`], 'move', 'out1'), 'ENETNS', 'no such netns');
      await ns.ip(['link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'out2'], 'add', 'in0');
      await failure(ns.ip(['link', 'set', 'dev', 'in0', 'netns', other.path], 'move', 'in0'), 'ENETNS', 'the name is taken there');
      assert.ok(await ns.link('in0'), 'a failed move leaves the link');
    },
  },
  {
    name: 'addresses: IPv4 and IPv6, add, replace, delete, with the prefix routes the kernel makes',
    async run({ ns }) {
      await podLike(ns);
      assert.deepEqual((await ns.addresses('eth0')).filter((a) => a.scope === 'global'), [
        { ifname: 'eth0', family: 'inet', local: '198.18.5.2', prefixlen: 24, scope: 'global' },
        { ifname: 'eth0', family: 'inet6', local: 'fd00:5::2', prefixlen: 64, scope: 'global' },
      ]);
      await ns.batch(
        [
          ['address', 'replace', '198.18.5.2/24', 'dev', 'eth0'],
          ['address', 'add', '198.18.7.9/32', 'dev', 'eth0'],
          ['address', 'add', 'fd00:7::9/128', 'dev', 'eth0', 'nodad'],
        ],
        'more addresses',
        'eth0',
      );
      await failure(ns.ip(['address', 'add', '198.18.5.2/24', 'dev', 'eth0'], 'add again', 'eth0'), 'ENETNS', 'an address that is there');
      const globals = (await ns.addresses()).filter((a) => a.scope === 'global').map((a) => `${a.ifname} ${a.local}/${a.prefixlen}`);
      assert.deepEqual(globals, ['eth0 198.18.5.2/24', 'eth0 198.18.7.9/32', 'eth0 fd00:7::9/128', 'eth0 fd00:5::2/64'], 'IPv4 in order, then IPv6 newest first');
      assert.ok((await ns.addresses('lo')).length === 0 || (await ns.addresses('lo')).every((a) => a.scope === 'host'));
      assert.deepEqual(await ns.routes(), [
        { dst: 'default', gateway: '198.18.5.1', dev: 'eth0', flags: [] },
        { dst: '198.18.5.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', flags: [] },
      ], 'an IPv4 /24 makes its subnet route; a /32 none');
      assert.deepEqual(sortRoutes((await ns.routes({ family: 6 })).filter((r) => !r.dst.startsWith('fe80:'))), [
        { dst: 'fd00:5::/64', dev: 'eth0', protocol: 'kernel', flags: [] },
        { dst: 'fd00:7::9', dev: 'eth0', protocol: 'kernel', flags: [] },
      ], 'IPv6 makes a prefix route even for a /128');
      await ns.ip(['address', 'del', '198.18.5.2/24', 'dev', 'eth0'], 'delete', 'eth0');
      assert.equal((await ns.routes()).find((r) => r.dst === '198.18.5.0/24'), undefined, 'the subnet route goes with the address');
      assert.deepEqual((await ns.addresses('eth0')).filter((a) => a.family === 'inet').map((a) => a.local), ['198.18.7.9']);
      await failure(ns.ip(['address', 'del', '198.18.5.2/24', 'dev', 'eth0'], 'delete again', 'eth0'), 'ENETNS', 'an address that is gone');
    },
  },
  {
    name: 'routes in main and in a numbered table: add, replace, delete, flush',
    async run({ ns }) {
      await podLike(ns);
      await ns.batch(
        [
          ['route', 'replace', '198.18.8.0/24', 'via', '198.18.5.1', 'dev', 'eth0', 'proto', 'static'],
          ['route', 'replace', '198.18.9.4', 'dev', 'eth0', 'scope', 'link'],
          ['route', 'replace', '198.18.9.128/25', 'via', '198.18.5.1', 'dev', 'eth0', 'proto', '16', 'scope', 'global'],
          ['route', 'replace', 'default', 'dev', 'veth0', 'table', '77'],
          ['route', 'replace', '198.18.10.0/24', 'via', '198.18.99.1', 'dev', 'eth0', 'onlink', 'table', '77'],
        ],
        'routes',
      );
      assert.deepEqual(await ns.routes(), [
        { dst: 'default', gateway: '198.18.5.1', dev: 'eth0', flags: [] },
        { dst: '198.18.5.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', flags: [] },
        { dst: '198.18.8.0/24', gateway: '198.18.5.1', dev: 'eth0', protocol: 'static', flags: [] },
        { dst: '198.18.9.4', dev: 'eth0', scope: 'link', flags: [] },
        { dst: '198.18.9.128/25', gateway: '198.18.5.1', dev: 'eth0', protocol: 'dhcp', flags: [] },
      ], 'a protocol number reads back by name; scope global is not printed');
      assert.deepEqual(await ns.routes({ table: '77' }), [
        { dst: 'default', dev: 'veth0', scope: 'link', flags: [] },
        { dst: '198.18.10.0/24', gateway: '198.18.99.1', dev: 'eth0', flags: ['onlink'] },
      ]);
      await ns.ip(['route', 'replace', 'default', 'dev', 'eth0', 'table', '77'], 'replace', 'eth0');
      assert.equal((await ns.routes({ table: '77' }))[0]?.dev, 'eth0', 'replace swaps the route with the same key');
      await failure(ns.ip(['route', 'add', 'default', 'dev', 'eth0', 'table', '77'], 'add again', 'eth0'), 'ENETNS', 'add of a route that is there');
      await ns.ip(['route', 'del', '198.18.9.4', 'dev', 'eth0'], 'delete', 'eth0');
      await failure(ns.ip(['route', 'del', '198.18.9.4', 'dev', 'eth0'], 'delete again', 'eth0'), 'ENETNS', 'delete of a route that is gone');
      await ns.ip(['route', 'flush', 'table', '77'], 'flush');
      assert.deepEqual(await ns.routes({ table: '77' }), []);
      assert.equal((await ns.routes()).length, 4, 'main untouched by the flush');
      assert.deepEqual(await ns.routes({ table: '78' }), [], 'a table that never held a route reads as empty');
      assert.deepEqual(await ns.routes({ family: 6, table: '78' }), []);
      assert.deepEqual(sortRoutes((await ns.routes({ family: 6 })).filter((r) => !r.dst.startsWith('fe80:'))), [
        { dst: 'fd00:5::/64', dev: 'eth0', protocol: 'kernel', flags: [] },
      ]);
      assert.equal(await ns.defaultRouteMtu(), 1500, 'the MTU of the default route device');
      await ns.ip(['link', 'set', 'dev', 'eth0', 'mtu', '1450'], 'mtu', 'eth0');
      assert.equal(await ns.defaultRouteMtu(), 1450);
    },
  },
  {
    name: 'unreachable and blackhole routes, IPv4 and IPv6, behind a device route in the same table',
    async run({ ns }) {
      await podLike(ns);
      for (const family of [4, 6] as const) {
        await ns.batch(
          [
            ['route', 'replace', 'default', 'dev', 'eth0', 'table', '2151'],
            ['route', 'replace', 'unreachable', 'default', 'metric', '4096', 'table', '2151'],
            ['route', 'replace', 'blackhole', family === 4 ? '198.18.66.0/24' : 'fd00:66::/64', 'table', '2151'],
          ],
          `IPv${family} routes`,
          'eth0',
          family,
        );
      }
      assert.deepEqual(await ns.routes({ table: '2151' }), [
        { dst: 'default', dev: 'eth0', scope: 'link', flags: [] },
        { dst: 'default', type: 'unreachable', flags: [] },
        { dst: '198.18.66.0/24', type: 'blackhole', flags: [] },
      ]);
      assert.deepEqual(sortRoutes(await ns.routes({ family: 6, table: '2151' })), [
        { dst: 'fd00:66::/64', dev: 'lo', type: 'blackhole', flags: [] },
        { dst: 'default', dev: 'eth0', flags: [] },
        { dst: 'default', dev: 'lo', type: 'unreachable', flags: [] },
      ].sort((a, b) => `${a.type ?? ''} ${a.dst}`.localeCompare(`${b.type ?? ''} ${b.dst}`)));
      await ns.batch([['route', 'flush', 'table', '2151']], 'flush', undefined, 6);
      assert.deepEqual(await ns.routes({ family: 6, table: '2151' }), [], 'the IPv6 flush leaves IPv4 alone');
      assert.equal((await ns.routes({ table: '2151' })).length, 3);
    },
  },
  {
    name: 'policy rules: priority, from, to, iif, fwmark, table; add, delete, no duplicates',
    async run({ ns }) {
      await ns.batch(
        [
          ['rule', 'add', 'priority', '90', 'iif', 'eth0', 'to', '198.18.1.21/32', 'lookup', '2151'],
          ['rule', 'add', 'priority', '95', 'from', '198.18.4.0/22', 'to', '198.18.0.0/16', 'table', '77'],
          ['rule', 'add', 'priority', '100', 'lookup', 'local'],
          ['rule', 'del', 'priority', '0', 'lookup', 'local'],
        ],
        'IPv4 rules',
        undefined,
        4,
      );
      assert.deepEqual(await ns.rules(4), [
        { priority: 90, src: 'all', dst: '198.18.1.21', iif: 'eth0', iif_detached: null, table: '2151' },
        { priority: 95, src: '198.18.4.0', srclen: 22, dst: '198.18.0.0', dstlen: 16, table: '77' },
        { priority: 100, src: 'all', table: 'local' },
        { priority: 32766, src: 'all', table: 'main' },
        { priority: 32767, src: 'all', table: 'default' },
      ]);
      await ns.batch(
        [
          ['rule', 'add', 'priority', '89', 'fwmark', '0x2151', 'lookup', 'local'],
          ['rule', 'add', 'priority', '90', 'iif', 'eth0', 'to', 'fd00::21/128', 'lookup', '2151'],
        ],
        'IPv6 rules',
        undefined,
        6,
      );
      assert.deepEqual(await ns.rules(6), [
        { priority: 0, src: 'all', table: 'local' },
        { priority: 89, src: 'all', fwmark: '0x2151', table: 'local' },
        { priority: 90, src: 'all', dst: 'fd00::21', iif: 'eth0', iif_detached: null, table: '2151' },
        { priority: 32766, src: 'all', table: 'main' },
      ], 'the IPv4 rules are not in the IPv6 list');
      await failure(ns.batch([['rule', 'add', 'priority', '100', 'lookup', 'local']], 'again', undefined, 4), 'ENETNS', 'a duplicate rule');
      await ns.batch([['rule', 'del', 'priority', '90', 'lookup', '2151'], ['rule', 'del', 'priority', '95', 'to', '198.18.0.0/16']], 'delete', undefined, 4);
      assert.deepEqual((await ns.rules(4)).map((r) => r.priority), [100, 32766, 32767]);
      await ns.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'], 'add eth0', 'eth0');
      assert.deepEqual((await ns.rules(6))[2], { priority: 90, src: 'all', dst: 'fd00::21', iif: 'eth0', table: '2151' }, 'eth0 is here now');
      await failure(ns.batch([['rule', 'del', 'priority', '90', 'lookup', '2151']], 'delete again', undefined, 4), 'ENETNS', 'a rule that is gone');
    },
  },
  {
    name: 'neighbours: permanent entries and proxy entries, listed apart',
    async run({ ns }) {
      await podLike(ns);
      await ns.batch(
        [
          ['neighbour', 'replace', '198.18.5.7', 'lladdr', '02:00:00:00:00:07', 'dev', 'eth0', 'nud', 'permanent'],
          ['neighbour', 'replace', 'fd00:5::7', 'lladdr', '02:00:00:00:00:07', 'dev', 'eth0', 'nud', 'permanent'],
          ['neighbour', 'replace', 'proxy', '198.18.5.9', 'dev', 'eth0'],
          ['neighbour', 'replace', 'proxy', '198.18.5.9', 'dev', 'eth0'],
        ],
        'neighbours',
        'eth0',
      );
      const sorted = <T extends { dst: string }>(ns: T[]) => [...ns].sort((a, b) => a.dst.localeCompare(b.dst));
      assert.deepEqual(sorted((await ns.neighbours()).filter((n) => n.dev === 'eth0' && (n.state ?? []).includes('PERMANENT'))), [
        { dst: '198.18.5.7', dev: 'eth0', lladdr: '02:00:00:00:00:07', state: ['PERMANENT'] },
        { dst: 'fd00:5::7', dev: 'eth0', lladdr: '02:00:00:00:00:07', state: ['PERMANENT'] },
      ]);
      assert.deepEqual(await ns.neighbours({ proxy: true }), [{ dst: '198.18.5.9', dev: 'eth0', proxy: null }], 'replace is idempotent');
      await ns.batch([['neighbour', 'del', 'proxy', '198.18.5.9', 'dev', 'eth0'], ['neighbour', 'del', '198.18.5.7', 'dev', 'eth0']], 'delete', 'eth0');
      assert.deepEqual(await ns.neighbours({ proxy: true }), []);
      assert.deepEqual((await ns.neighbours()).filter((n) => n.dst === '198.18.5.7'), []);
      await failure(ns.batch([['neighbour', 'del', 'proxy', '198.18.5.9', 'dev', 'eth0']], 'delete again', 'eth0'), 'ENETNS', 'a proxy entry that is gone');
    },
  },
  {
    name: 'sysctls: per-netns defaults, writes, per-device keys born from `default`, IPv6 forwarding of `all`',
    async run({ ns, other }) {
      assert.equal(await ns.readSysctl('net.ipv6.conf.default.disable_ipv6'), '0');
      assert.equal(await ns.readSysctl('net.ipv4.ip_forward'), '0');
      assert.equal(await ns.ipv6Unavailable(), null);
      await ns.writeSysctls({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.default.rp_filter': 2, 'net.ipv6.conf.default.forwarding': 0 });
      assert.equal(await ns.readSysctl('net.ipv4.ip_forward'), '1');
      assert.equal(await other.readSysctl('net.ipv4.ip_forward'), '0', 'each netns has its own');
      await ns.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add', 'va');
      assert.equal(await ns.readSysctl('net.ipv4.conf.va.rp_filter'), '2', 'a new device takes conf.default');
      assert.equal(await ns.readSysctl('net.ipv4.neigh.va.proxy_delay'), '80');
      await ns.writeSysctls({ 'net.ipv6.conf.all.forwarding': 1, 'net.ipv6.conf.default.forwarding': 0 });
      assert.equal(await ns.readSysctl('net.ipv6.conf.va.forwarding'), '1', 'conf.all.forwarding reaches every device');
      assert.equal(await ns.readSysctl('net.ipv6.conf.default.forwarding'), '0', 'written after all: stays 0');
      await ns.writeSysctls({ 'net.ipv6.conf.va.disable_ipv6': 1, 'net.ipv4.conf.va.accept_local': 1 }, 'va');
      assert.equal(await ns.readSysctl('net.ipv6.conf.va.disable_ipv6'), '1');
      assert.equal(await ns.readSysctl('net.ipv6.conf.vb.disable_ipv6'), '0');
      assert.equal(await ns.readSysctl('net.ipv6.conf.default.addr_gen_mode'), '0');
      assert.equal(await ns.readSysctl('net.ipv6.conf.default.router_solicitations'), '-1');

      const e = await failure(ns.writeSysctls({ 'net.ipv4.conf.nope.rp_filter': 0, 'net.ipv4.conf.vb.rp_filter': 1 }, 'nope'), 'ENETNS', 'a device that is not there');
      assert.equal(e.context.netns, ns.label);
      assert.match(e.message, /nope/);
      assert.equal(await ns.readSysctl('net.ipv4.conf.vb.rp_filter'), '1', 'sysctl(8) goes on past a failed key');
      await failure(ns.readSysctl('net.ipv4.conf.nope.rp_filter'), 'ENETNS', 'read of a device that is not there');
      await failure(ns.readSysctl('net/ipv4/../../x'), 'EINVAL', 'a path, not a sysctl name');
    },
  },
  {
    name: 'iptables and ip6tables: chains and rules added, checked, listed, deleted',
    async run({ ns }) {
      const chain = 'peerpod-test';
      await ns.iptables(['-t', 'raw', '-N', chain], 'new chain');
      await failure(ns.iptables(['-t', 'raw', '-N', chain], 'new chain again'), 'ENETNS', 'a chain that exists');
      await ns.iptables(['-t', 'raw', '-A', 'OUTPUT', '-j', chain], 'jump');
      const rule = ['-m', 'comment', '--comment', 'peerpod [vni:7]', '-d', '198.18.9.9', '-p', 'udp', '-m', 'udp', '--dport', '4789', '-j', 'NOTRACK'];
      await ns.iptables(['-t', 'raw', '-A', chain, ...rule], 'add');
      assert.equal(await ns.hasIptablesRule('raw', chain, rule), true);
      assert.equal(await ns.hasIptablesRule('raw', chain, ['-d', '198.18.9.9/32', '-p', 'udp', '-m', 'comment', '--comment', 'peerpod [vni:7]', '-m', 'udp', '--dport', '4789', '-j', 'NOTRACK']), true, 'as -S prints it');
      assert.equal(await ns.hasIptablesRule('raw', chain, ['-d', '198.18.9.8', '-j', 'NOTRACK']), false);
      assert.equal(await ns.hasIptablesRule('raw', 'OUTPUT', ['-j', 'no-such-chain']), false);
      assert.equal(await ns.hasIptablesRule('raw', chain, rule, 6), false, 'ip6tables has its own tables');
      assert.deepEqual((await ns.iptables(['-t', 'raw', '-S'], 'list')).trim().split('\n'), [
        '-P PREROUTING ACCEPT',
        '-P OUTPUT ACCEPT',
        `-N ${chain}`,
        `-A OUTPUT -j ${chain}`,
        `-A ${chain} -d 198.18.9.9/32 -p udp -m comment --comment "peerpod [vni:7]" -m udp --dport 4789 -j NOTRACK`,
      ]);
      await failure(ns.iptables(['-t', 'raw', '-X', chain], 'delete a chain in use'), 'ENETNS', 'a chain with rules and a jump');
      await ns.iptables(['-t', 'raw', '-I', chain, '-s', '198.18.9.9', '-j', 'ACCEPT'], 'insert');
      assert.match(await ns.iptables(['-t', 'raw', '-S', chain], 'list chain'), new RegExp(`^-N ${chain}\\n-A ${chain} -s 198.18.9.9/32 -j ACCEPT\\n`));
      await ns.iptables(['-t', 'raw', '-D', chain, ...rule], 'delete');
      await failure(ns.iptables(['-t', 'raw', '-D', chain, ...rule], 'delete again'), 'ENETNS', 'a rule that is gone');
      await ns.iptables(['-t', 'raw', '-F', chain], 'flush');
      await ns.iptables(['-t', 'raw', '-D', 'OUTPUT', '-j', chain], 'unjump');
      await ns.iptables(['-t', 'raw', '-X', chain], 'delete chain');
      assert.deepEqual((await ns.iptables(['-t', 'raw', '-S'], 'list')).trim().split('\n'), ['-P PREROUTING ACCEPT', '-P OUTPUT ACCEPT']);
      await failure(ns.iptables(['-t', 'raw', '-A', 'nochain', '-j', 'ACCEPT'], 'append to nothing'), 'ENETNS', 'a chain that is not there');
      for (const c of ['peerpod-z', 'peerpod-a']) {
        await ns.iptables(['-t', 'filter', '-N', c], 'new chain');
        await ns.iptables(['-t', 'filter', '-A', c, '-j', 'RETURN'], 'rule');
      }
      assert.deepEqual((await ns.iptables(['-S'], 'list filter')).trim().split('\n').slice(3), [
        '-N peerpod-a',
        '-N peerpod-z',
        '-A peerpod-a -j RETURN',
        '-A peerpod-z -j RETURN',
      ], 'user chains sorted by name, whatever the order they were made in');

      const mss = ['-o', 'wg0', '-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu'];
      await ns.iptables(['-t', 'mangle', '-A', 'FORWARD', ...mss], 'mss', 'wg0', 6);
      const mark = ['-i', 'eth0', '-d', 'fd00::21/128', '-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', '135', '-j', 'MARK', '--set-mark', '0x2151'];
      await ns.iptables(['-t', 'mangle', '-A', 'PREROUTING', ...mark], 'mark', 'eth0', 6);
      assert.equal(await ns.hasIptablesRule('mangle', 'FORWARD', mss, 6), true);
      assert.equal(await ns.hasIptablesRule('mangle', 'FORWARD', mss, 4), false);
      assert.deepEqual((await ns.iptables(['-t', 'mangle', '-S'], 'list', undefined, 6)).split('\n').filter((l) => l.startsWith('-A')), [
        '-A PREROUTING -d fd00::21/128 -i eth0 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j MARK --set-xmark 0x2151/0xffffffff',
        '-A FORWARD -o wg0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu',
      ]);
    },
  },
  {
    name: 'exists(): true for a netns, false for a path with none, "could not check" otherwise',
    async run({ ns, absent, unsure }) {
      assert.equal(await ns.exists(), true);
      assert.equal(await absent.exists(), false);
      const e = await failure(unsure.exists(), 'ENETNS', 'a netns that cannot be checked');
      assert.equal(e.context.netns, unsure.path);
      assert.equal(e.context.op, 'netns-exists');
      const gone = await failure(absent.links(), 'ENETNS', 'links of a netns that is not there');
      assert.equal(gone.context.netns, absent.label);
    },
  },
  {
    name: 'errors on a missing interface name the netns and the interface',
    async run({ ns }) {
      const e = await failure(ns.ip(['link', 'set', 'dev', 'nope0', 'up'], 'bring nope0 up', 'nope0'), 'ENETNS', 'a missing interface');
      assert.deepEqual([e.context.op, e.context.netns, e.context.iface], ['bring nope0 up', ns.label, 'nope0']);
      assert.match(e.message, /nope0/);
      assert.match(e.message, /^bring nope0 up failed: nsenter exited with code 1: Cannot find device "nope0"$/, 'the tool\'s own words');
      const nf = await failure(ns.requireLink('nope0', 'setup'), 'ENOTFOUND', 'requireLink');
      assert.deepEqual([nf.context.netns, nf.context.iface], [ns.label, 'nope0']);
      assert.match(nf.message, new RegExp(`nope0 in netns ${ns.label}`));
      assert.equal(await ns.link('nope0'), null);
      const a = await failure(ns.addresses('nope0'), 'ENETNS', 'addresses of a missing interface');
      assert.equal(a.context.iface, 'nope0');
      await failure(ns.batch([['route', 'replace', 'default', 'dev', 'nope0']], 'route', 'nope0'), 'ENETNS', 'a route through a missing interface');
    },
  },
  {
    name: 'a batch stops at the first failing line, and names it',
    async run({ ns }) {
      await ns.ip(['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], 'add', 'va');
      const e = await failure(
        ns.batch(
          [
            ['link', 'set', 'dev', 'va', 'mtu', '1400'],
            ['link', 'set', 'dev', 'nope0', 'up'],
            ['link', 'set', 'dev', 'va', 'mtu', '1300'],
          ],
          'three lines',
          'va',
        ),
        'ENETNS',
        'a batch with a bad second line',
      );
      assert.match(e.message, /Command failed -:2/);
      assert.match(e.message, /nope0/);
      assert.deepEqual([e.context.op, e.context.netns, e.context.iface], ['three lines', ns.label, 'va']);
      assert.equal((await ns.link('va'))?.mtu, 1400, 'the first line applied, the third not');
      await failure(ns.batch([['link', 'set', 'dev', 'va', 'alias', 'has space']], 'quoted'), 'EINVAL', 'a word that ip -batch would split');
    },
  },
  {
    name: "the WireGuard worker's pod plumbing applies, re-applies and comes off cleanly",
    async run({ ns }) {
      await podLike(ns, 'eth0', 'wgx');
      const p = { device: 'wgx', podInterface: 'eth0', podIPs: ['198.18.5.2', 'fd00:5::2'] };
      await preparePodNetns(ns, p);
      await applyPodPlumbing(ns, p);
      const plumbing = async () => ({
        rules4: await ns.rules(4),
        rules6: await ns.rules(6),
        table4: await ns.routes({ table: POD_ROUTE_TABLE }),
        table6: sortRoutes(await ns.routes({ family: 6, table: POD_ROUTE_TABLE })),
        proxies: await ns.neighbours({ proxy: true }),
        mangle6: await ns.iptables(['-t', 'mangle', '-S'], 'list', undefined, 6),
      });
      const before = await plumbing();
      assert.deepEqual(before.rules4.map((r) => [r.priority, r.table]), [[90, POD_ROUTE_TABLE], [100, 'local'], [32766, 'main'], [32767, 'default']]);
      assert.deepEqual(before.rules6.map((r) => [r.priority, r.table]), [[89, 'local'], [90, POD_ROUTE_TABLE], [100, 'local'], [32766, 'main']]);
      assert.deepEqual(before.table4, [{ dst: 'default', dev: 'wgx', scope: 'link', flags: [] }, { dst: 'default', type: 'unreachable', flags: [] }]);
      assert.deepEqual(before.proxies, [{ dst: '198.18.5.2', dev: 'eth0', proxy: null }]);
      assert.equal(before.mangle6.split('\n').filter((l) => l.includes('--set-xmark 0x2151/')).length, 2, 'two neighbour discovery marks');
      assert.equal(await ns.readSysctl('net.ipv6.conf.all.forwarding'), '1');
      assert.equal(await ns.readSysctl('net.ipv6.conf.wgx.forwarding'), '0', 'the device is no router');
      assert.equal(await ns.readSysctl('net.ipv6.conf.wgx.addr_gen_mode'), '1');

      await applyPodPlumbing(ns, p);
      assert.deepEqual(await plumbing(), before, 'a second apply changes nothing');

      await removePodPlumbing(ns, p);
      assert.deepEqual((await ns.rules(4)).map((r) => r.priority), [0, 32766, 32767]);
      assert.deepEqual((await ns.rules(6)).map((r) => r.priority), [0, 32766]);
      assert.deepEqual(await ns.routes({ table: POD_ROUTE_TABLE }), []);
      assert.deepEqual(await ns.neighbours({ proxy: true }), []);
      assert.equal(await ns.link('wgx'), null, 'the device is gone');
      for (const family of [4, 6] as const) {
        assert.deepEqual((await ns.iptables(['-t', 'mangle', '-S'], 'list', undefined, family)).split('\n').filter((l) => l.startsWith('-A')), []);
      }
      await removePodPlumbing(ns, p);
    },
  },
  {
    name: "the VXLAN worker's tc mirror is made, kept, pointed elsewhere and removed; a clsact qdisc is refused",
    async run({ ns }) {
      await ns.batch(
        [
          ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p0'],
          ['link', 'add', 'vx0', 'type', 'veth', 'peer', 'name', 'p1'],
          ['link', 'add', 'vx1', 'type', 'veth', 'peer', 'name', 'p2'],
          ['link', 'set', 'dev', 'eth0', 'up'],
          ['link', 'set', 'dev', 'vx0', 'up'],
        ],
        'links',
      );
      const filters = async (dev: string) =>
        parseTcFilters(await ns.run(['tc', '-json', 'filter', 'show', 'dev', dev, 'parent', 'ffff:'], 'list filters', dev));
      const qdiscs = async (dev: string) =>
        (JSON.parse(await ns.run(['tc', '-json', 'qdisc', 'show', 'dev', dev], 'list qdiscs', dev)) as { kind: string }[]).map((q) => q.kind);
      assert.deepEqual(await qdiscs('eth0'), ['noqueue']);
      await ensureMirror(ns, 'eth0', 'vx0');
      await ensureMirror(ns, 'eth0', 'vx0');
      assert.deepEqual(await qdiscs('eth0'), ['noqueue', 'ingress']);
      assert.deepEqual((await filters('eth0')).filter((f) => f.isRule), [{ pref: MIRROR_PREF, kind: 'u32', isRule: true, redirectTo: 'vx0' }]);
      await ensureMirror(ns, 'eth0', 'vx1');
      assert.deepEqual((await filters('eth0')).filter((f) => f.isRule).map((f) => f.redirectTo), ['vx1'], 'one filter, pointed at the new device');
      await ns.ip(['link', 'del', 'dev', 'vx1'], 'delete the target', 'vx1');
      assert.deepEqual((await filters('eth0')).filter((f) => f.isRule).map((f) => f.redirectTo), ['*'], 'a target that is gone reads as "*"');
      await removeMirrorsInto(ns, 'vx1');
      assert.deepEqual(await qdiscs('eth0'), ['noqueue'], 'the mirror into a device that is gone came off, and its ingress qdisc too');
      await removeMirror(ns, 'eth0');
      await failure(ns.run(['tc', 'qdisc', 'del', 'dev', 'eth0', 'ingress'], 'delete again', 'eth0'), 'ENETNS', 'an ingress qdisc that is gone');

      await ns.run(['tc', 'qdisc', 'add', 'dev', 'eth0', 'clsact'], 'clsact', 'eth0');
      await failure(ensureMirror(ns, 'eth0', 'vx0'), 'ESETUP', 'an interface whose ingress hook another agent holds');
      await failure(ns.run(['tc', '-batch', '-'], 'two', 'eth0', 'qdisc add dev eth0 ingress\n'), 'ENETNS', 'ingress on top of clsact');
      await ns.run(['tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact'], 'clsact off', 'eth0');
      await failure(ns.run(['tc', '-json', 'qdisc', 'show', 'dev', 'nope0'], 'list', 'nope0'), 'ENETNS', 'a missing interface');
    },
  },
  {
    name: "the VXLAN NOTRACK rules are made, kept and removed with their chains",
    async run({ ns }) {
      const spec = { vni: 7, remote: '198.18.9.9', port: 4789 };
      await ensureNotrack(ns, spec);
      await ensureNotrack(ns, spec);
      await ensureNotrack(ns, { vni: 8, remote: '198.18.9.8', port: 4789 });
      const listed = (await ns.iptables(['-t', 'raw', '-S'], 'list')).split('\n').filter((l) => l.startsWith('-A'));
      assert.equal(listed.filter((l) => l.includes('vni:7')).length, 2, 'two rules for VNI 7, not four');
      assert.equal(listed.filter((l) => l.includes(`-j ${NOTRACK_CHAINS.OUTPUT}`)).length, 1, 'one jump');
      await ensureNotrack(ns, { ...spec, remote: '198.18.9.10' });
      const moved = (await ns.iptables(['-t', 'raw', '-S'], 'list')).split('\n').filter((l) => l.includes('vni:7'));
      assert.ok(moved.length === 2 && moved.every((l) => l.includes('198.18.9.10/32')), moved.join('\n'));
      await removeNotrack(ns, 7);
      await removeNotrack(ns, 8);
      await removeNotrack(ns, 8);
      assert.deepEqual((await ns.iptables(['-t', 'raw', '-S'], 'list')).trim().split('\n'), ['-P PREROUTING ACCEPT', '-P OUTPUT ACCEPT']);
    },
  },
];
