// The pure parts of the vxlan driver: choosing a VNI, and reading what iproute2, tc and iptables
// print about VXLAN devices, mirrors and NOTRACK rules.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isPeerpodError } from '../../src/errors.js';
import type { PodRecord, VxlanPodRecord, WireguardPodRecord } from '../../src/state/store.js';
import { isVxlanLike, parseVxlanLinks, vxlanAddCommand } from '../../src/tunnel/vxlan/device.js';
import { MIRROR_PREF, mirrorChanges, parseTcFilters, parseTcQdiscs } from '../../src/tunnel/vxlan/mirror.js';
import { podVmVxlanDeviceName, workerVxlanDeviceName } from '../../src/tunnel/vxlan/names.js';
import {
  NOTRACK_CHAINS,
  notrackChanges,
  notrackRules,
  notrackSpec,
  parseNotrackRules,
  splitIptablesLine,
} from '../../src/tunnel/vxlan/notrack.js';
import { podRouteCommands } from '../../src/tunnel/vxlan/podvm.js';
import { DEFAULT_MIN_VNI, MAX_VNI, allocateVni, vnisInUse } from '../../src/tunnel/vxlan/vni.js';

function vxlanRecord(id: string, vni: number): VxlanPodRecord {
  return {
    id,
    netns: `/run/netns/cni-${id}`,
    tunnelType: 'vxlan',
    device: workerVxlanDeviceName(id),
    podIP: '10.244.1.2',
    mtu: 1500,
    podVmIPs: [],
    phase: 'ready',
    updatedAt: '2026-01-01T00:00:00.000Z',
    vni,
    port: 4789,
  };
}

const wireguardRecord: WireguardPodRecord = {
  id: 'cccccccccccc',
  netns: '/run/netns/cni-wg',
  tunnelType: 'wireguard',
    podInterface: 'eth0',
  device: 'pwgcccccccccccc',
  podIP: '10.244.1.3',
  mtu: 1420,
  podVmIPs: [],
  phase: 'ready',
  updatedAt: '2026-01-01T00:00:00.000Z',
  vmPublicKey: '',
  workerPublicKey: '',
  vmListenPort: 51900,
  keepalive: 25,
};

describe('VNI allocation', () => {
  it('starts at the minimum ID, as CAA does for its first pod', () => {
    expect(allocateVni(new Set())).toBe(DEFAULT_MIN_VNI);
    expect(allocateVni(new Set(), 7)).toBe(7);
  });

  it('takes the lowest VNI that neither a record nor a link uses', () => {
    const records: PodRecord[] = [vxlanRecord('aaaaaaaaaaaa', 555000), vxlanRecord('bbbbbbbbbbbb', 555002), wireguardRecord];
    const used = vnisInUse({ records, linkVnis: [555001, 1] });
    expect([...used].sort()).toEqual([1, 555000, 555001, 555002]);
    expect(allocateVni(used)).toBe(555003);
  });

  it("does not count the pod's own record against it", () => {
    const used = vnisInUse({ records: [vxlanRecord('aaaaaaaaaaaa', 555000)], linkVnis: [], except: 'aaaaaaaaaaaa' });
    expect(used.size).toBe(0);
  });

  it('never returns a VNI in use, below the minimum or above 24 bits (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_VNI - 200 }), fc.array(fc.integer({ min: 0, max: 200 })), (minId, offsets) => {
        const used = new Set(offsets.map((o) => minId + o));
        const vni = allocateVni(used, minId);
        expect(used.has(vni)).toBe(false);
        expect(vni).toBeGreaterThanOrEqual(minId);
        expect(vni).toBeLessThanOrEqual(MAX_VNI);
        for (let v = minId; v < vni; v++) expect(used.has(v)).toBe(true);
      }),
    );
  });

  it('fails with ESETUP when every VNI is taken, and EINVAL for a bad minimum', () => {
    const used = new Set([MAX_VNI - 1, MAX_VNI]);
    expect(() => allocateVni(used, MAX_VNI - 1)).toThrow(/no free VXLAN ID/);
    try {
      allocateVni(new Set(), 0);
      throw new Error('accepted 0');
    } catch (e) {
      expect(isPeerpodError(e, 'EINVAL')).toBe(true);
    }
    expect(() => allocateVni(new Set(), MAX_VNI + 1)).toThrow(/minimum ID/);
  });
});

describe('device names', () => {
  it('fit the kernel limit of 15 characters', () => {
    expect(workerVxlanDeviceName('0123456789ab')).toBe('pvx0123456789ab');
    expect(workerVxlanDeviceName('0123456789ab')).toHaveLength(15);
    expect(podVmVxlanDeviceName(MAX_VNI).length).toBeLessThanOrEqual(15);
  });
});

describe('VXLAN links from iproute2', () => {
  // `ip -details -json link show type vxlan` on iproute2 6.1, trimmed.
  const json = JSON.stringify([
    {
      ifindex: 7,
      ifname: 'pvx0123456789ab',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1500,
      operstate: 'UNKNOWN',
      link_type: 'ether',
      address: 'fa:47:3a:f1:5f:82',
      link_netnsid: 0,
      linkinfo: { info_kind: 'vxlan', info_data: { id: 555000, remote: '192.0.2.9', port: 4789, learning: false } },
    },
    { ifindex: 8, ifname: 'flannel.1', mtu: 1450, operstate: 'UP', linkinfo: { info_kind: 'vxlan', info_data: { id: 1, port: 8472, learning: false } } },
    { ifindex: 9, ifname: 'eth0', mtu: 1500, operstate: 'UP', linkinfo: { info_kind: 'veth' } },
  ]);

  it('reads VNI, remote, port and learning, and skips other kinds', () => {
    const links = parseVxlanLinks(json);
    expect(links.map((l) => [l.ifname, l.vni, l.remote, l.port, l.learning])).toEqual([
      ['pvx0123456789ab', 555000, '192.0.2.9', 4789, false],
      ['flannel.1', 1, '', 8472, false],
    ]);
    expect(links[0]?.linkNetnsid).toBe(0);
    expect(parseVxlanLinks('')).toEqual([]);
  });

  it('tells a device made as we make it from one made otherwise', () => {
    const [ours] = parseVxlanLinks(json);
    const want = { vni: 555000, remote: '192.0.2.9', port: 4789 };
    expect(isVxlanLike(ours!, want)).toBe(true);
    expect(isVxlanLike(ours!, { ...want, remote: '192.0.2.10' })).toBe(false);
    expect(isVxlanLike(ours!, { ...want, port: 8472 })).toBe(false);
    expect(isVxlanLike({ ...ours!, learning: true }, want)).toBe(false);
    expect(vxlanAddCommand('pvv555000', want)).toEqual(
      'link add pvv555000 type vxlan id 555000 remote 192.0.2.9 dstport 4789 nolearning'.split(' '),
    );
  });
});

describe('tc mirror', () => {
  // `tc -json filter show dev eth0 parent ffff:` with our redirect (tc from iproute2 6.1).
  const filters = (to: string) =>
    JSON.stringify([
      { protocol: 'all', pref: MIRROR_PREF, kind: 'u32', chain: 0 },
      { protocol: 'all', pref: MIRROR_PREF, kind: 'u32', chain: 0, options: { fh: '800:', ht_divisor: 1 } },
      {
        protocol: 'all',
        pref: MIRROR_PREF,
        kind: 'u32',
        chain: 0,
        options: {
          fh: '800::800',
          actions: [{ order: 1, kind: 'mirred', mirred_action: 'redirect', direction: 'egress', to_dev: to }],
        },
      },
    ]);
  const ingress = parseTcQdiscs('[{"kind":"noqueue","handle":"0:"},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1"}]');

  it('adds the qdisc and the filter on a bare interface', () => {
    expect(mirrorChanges('eth0', 'pvx1', [], []).map((c) => c.slice(0, 2))).toEqual([
      ['qdisc', 'add'],
      ['filter', 'add'],
    ]);
  });

  it('changes nothing when the redirect is in place', () => {
    expect(mirrorChanges('eth0', 'pvx1', ingress, parseTcFilters(filters('pvx1')))).toEqual([]);
  });

  it('replaces a redirect to a device that is gone or another one', () => {
    for (const to of ['*', 'pvx2']) {
      const cmds = mirrorChanges('eth0', 'pvx1', ingress, parseTcFilters(filters(to)));
      expect(cmds.map((c) => c.slice(0, 2))).toEqual([
        ['filter', 'del'],
        ['filter', 'add'],
      ]);
      expect(cmds[1]?.slice(-5)).toEqual(['mirred', 'egress', 'redirect', 'dev', 'pvx1']);
    }
  });
});

describe('NOTRACK rules', () => {
  const spec = { vni: 555001, remote: '192.168.122.181', port: 4789 };
  // `iptables -t raw -S` on a worker, as CAA PR #2023 shows it, with our chains.
  const listing = [
    '-P PREROUTING ACCEPT',
    '-P OUTPUT ACCEPT',
    `-N ${NOTRACK_CHAINS.OUTPUT}`,
    `-N ${NOTRACK_CHAINS.PREROUTING}`,
    `-A PREROUTING -j ${NOTRACK_CHAINS.PREROUTING}`,
    `-A OUTPUT -j ${NOTRACK_CHAINS.OUTPUT}`,
    `-A ${NOTRACK_CHAINS.OUTPUT} -d 192.168.122.181/32 -p udp -m comment --comment "peerpod [vni:555001]" -m udp --dport 4789 -j NOTRACK`,
    `-A ${NOTRACK_CHAINS.PREROUTING} -s 192.168.122.181/32 -p udp -m comment --comment "peerpod [vni:555001]" -m udp --dport 4789 -j NOTRACK`,
    `-A ${NOTRACK_CHAINS.PREROUTING} -s 192.168.122.99/32 -p udp -m comment --comment "peerpod [vni:555002]" -m udp --dport 4789 -j NOTRACK`,
    '-A peerpod-OUTPUT -d 192.168.122.7/32 -p udp -m comment --comment "peerpod [vni:555001]" -m udp --dport 4789 -j NOTRACK',
  ].join('\n');

  it('splits iptables words with quoted comments', () => {
    expect(splitIptablesLine('-A X --comment "peerpod [vni:1]" -j NOTRACK')).toEqual(['-A', 'X', '--comment', 'peerpod [vni:1]', '-j', 'NOTRACK']);
    expect(splitIptablesLine('--comment "a \\"b\\""')).toEqual(['--comment', 'a "b"']);
  });

  it("reads our chains' rules only, with VNI, remote and port", () => {
    const rules = parseNotrackRules(listing);
    expect(rules.map((r) => [r.chain, r.vni, r.direction, r.remote, r.port])).toEqual([
      [NOTRACK_CHAINS.OUTPUT, 555001, '-d', '192.168.122.181', 4789],
      [NOTRACK_CHAINS.PREROUTING, 555001, '-s', '192.168.122.181', 4789],
      [NOTRACK_CHAINS.PREROUTING, 555002, '-s', '192.168.122.99', 4789],
    ]);
    expect(rules[0]?.spec).toContain('peerpod [vni:555001]');
  });

  it('wants CAA\'s two rules: out to the remote, in from it, both to the VXLAN port', () => {
    expect(notrackRules(spec).map(notrackSpec)).toEqual([
      ['-m', 'comment', '--comment', 'peerpod [vni:555001]', '-d', '192.168.122.181', '-p', 'udp', '-m', 'udp', '--dport', '4789', '-j', 'NOTRACK'],
      ['-m', 'comment', '--comment', 'peerpod [vni:555001]', '-s', '192.168.122.181', '-p', 'udp', '-m', 'udp', '--dport', '4789', '-j', 'NOTRACK'],
    ]);
  });

  it('changes nothing when in place, and swaps the rules of a VNI whose remote changed', () => {
    const listed = parseNotrackRules(listing);
    expect(notrackChanges(listed, notrackRules(spec), spec.vni)).toEqual({ add: [], remove: [] });
    const moved = { ...spec, remote: '192.168.122.182' };
    const { add, remove } = notrackChanges(listed, notrackRules(moved), moved.vni);
    expect(add.map((r) => r.remote)).toEqual(['192.168.122.182', '192.168.122.182']);
    expect(remove.map((r) => [r.vni, r.remote])).toEqual([
      [555001, '192.168.122.181'],
      [555001, '192.168.122.181'],
    ]);
  });
});

describe('pod VM routes', () => {
  const prefix = (address: string, prefixLength: number) => ({ address, prefixLength, family: 4 as const });

  it('adds routes without a gateway first, keeps the kernel route, and drops routes the worker did not have', () => {
    const cmds = podRouteCommands(
      'eth0',
      [
        { gw: '10.244.2.1', dev: 'eth0', protocol: 3 },
        { dst: prefix('10.244.2.0', 24), dev: 'eth0', protocol: 2, scope: 'link' },
        { dst: prefix('10.244.0.0', 16), gw: '10.244.2.1', dev: 'eth0' },
      ],
      [
        { dst: '10.244.2.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link' },
        { dst: '169.254.1.1', dev: 'eth0', scope: 'link' },
      ],
    );
    expect(cmds.map((c) => c.join(' '))).toEqual([
      'route del 169.254.1.1 dev eth0',
      'route replace default via 10.244.2.1 dev eth0 proto 3',
      'route replace 10.244.0.0/16 via 10.244.2.1 dev eth0',
    ]);
  });

  it('removes the subnet route of the address when the worker had none (PTP-style CNI), as CAA does', () => {
    const cmds = podRouteCommands(
      'eth0',
      [
        { dst: prefix('10.244.2.1', 32), dev: 'eth0', scope: 'link' },
        { gw: '10.244.2.1', dev: 'eth0' },
      ],
      [{ dst: '10.244.2.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link' }],
    );
    expect(cmds.map((c) => c.join(' '))).toEqual([
      'route del 10.244.2.0/24 dev eth0',
      'route replace 10.244.2.1/32 dev eth0 scope link',
      'route replace default via 10.244.2.1 dev eth0',
    ]);
  });
});
