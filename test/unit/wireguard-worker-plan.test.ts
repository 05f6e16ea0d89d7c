// The worker's setup plan, table-tested with no I/O at all: what planWorker does for a fresh pod,
// for a re-run after a crash at each step, for a device that exists but differs, with a learned
// endpoint, for IPv6-only and dual-stack pods, and when there is nothing to change. Also the peer
// diff and the MTU rule that both ends of a tunnel share.
import { describe, expect, it } from '@jest/globals';
import type { Rule } from '../../src/netns/netns.js';
import type { Device, Peer } from '../../src/wireguard/config.js';
import { emptyPeer } from '../../src/wireguard/config.js';
import { generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';
import { deviceChange, emptyDevice } from '../../src/tunnel/wireguard/device-change.js';
import { checkIpv6Mtu, tunnelMtu } from '../../src/tunnel/wireguard/tunnel-section.js';
import {
  CONVERGE_STEPS,
  desiredOf,
  endpointFor,
  planWorker,
  type WorkerAction,
  type WorkerDesired,
  type WorkerObserved,
} from '../../src/tunnel/wireguard/worker-plan.js';
import {
  LOCAL_RULE_PRIORITY,
  NDP_RULE_PRIORITY,
  POD_ROUTE_TABLE,
  POD_RULE_PRIORITY,
  podIptablesRules,
} from '../../src/tunnel/wireguard/worker-plumbing.js';
import type { WireguardPodRecord } from '../../src/state/store.js';
import { thrown } from '../support/errors.js';

const worker = generateKeyPair();
const vm = generateKeyPair();
const psk = generatePresharedKey();
const V4 = '198.18.1.21';
const V6 = 'fd00:198:18:1::21';

function desired(over: Partial<WorkerDesired> = {}): WorkerDesired {
  return {
    device: 'pwg0123456789ab',
    netns: '/run/netns/cni-plan',
    podInterface: 'eth0',
    podIPs: [V4],
    mtu: 1420,
    backend: 'userspace',
    workerKey: worker.privateKey,
    presharedKey: psk,
    vmPublicKey: vm.publicKey,
    endpointIP: '203.0.113.10',
    vmListenPort: 51900,
    keepalive: 25,
    ...over,
  };
}

/** The rules of a fresh netns, as `ip -json rule show` lists them. */
const FRESH_RULES: Record<4 | 6, Rule[]> = {
  4: [
    { priority: 0, src: 'all', table: 'local' },
    { priority: 32766, src: 'all', table: 'main' },
    { priority: 32767, src: 'all', table: 'default' },
  ],
  6: [
    { priority: 0, src: 'all', table: 'local' },
    { priority: 32766, src: 'all', table: 'main' },
  ],
};

/** The rules once the pod IPs route into the tunnel. */
function plumbedRules(family: 4 | 6, ips: readonly string[]): Rule[] {
  return [
    ...(family === 6 ? [{ priority: NDP_RULE_PRIORITY, src: 'all', table: 'local' }] : []),
    ...ips.map((ip): Rule => ({ priority: POD_RULE_PRIORITY, dst: ip, dstlen: family === 4 ? 32 : 128, iif: 'eth0', table: POD_ROUTE_TABLE })),
    { priority: LOCAL_RULE_PRIORITY, src: 'all', table: 'local' },
    ...FRESH_RULES[family].filter((r) => r.priority !== 0),
  ];
}

/** The device as its backend reports it once configured as `d` asks, with a handshake and traffic. */
function configured(d: WorkerDesired, peer: Partial<Peer> = {}): Device {
  return {
    ...emptyDevice(d.device),
    privateKey: d.workerKey,
    publicKey: d.workerKey.publicKey(),
    listenPort: 40123,
    peers: [
      {
        ...emptyPeer(d.vmPublicKey),
        presharedKey: d.presharedKey,
        endpoint: '203.0.113.10:51900',
        persistentKeepalive: d.keepalive,
        allowedIPs: d.podIPs.map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`)),
        lastHandshakeSec: 1_700_000_000,
        rxBytes: 1000,
        txBytes: 2000,
        ...peer,
      },
    ],
  };
}

function observed(over: Partial<WorkerObserved> = {}): WorkerObserved {
  return { podLink: null, device: null, rules: { 4: FRESH_RULES[4] }, iptables: [], ...over };
}

/** A pod netns where everything of ours is in place. */
function settled(d: WorkerDesired): WorkerObserved {
  const v6 = d.podIPs.filter((ip) => ip.includes(':'));
  const v4 = d.podIPs.filter((ip) => !ip.includes(':'));
  return {
    podLink: { kind: d.backend === 'kernel' ? 'wireguard' : 'tun' },
    device: configured(d),
    rules: { ...(v4.length > 0 ? { 4: plumbedRules(4, v4) } : {}), ...(v6.length > 0 ? { 6: plumbedRules(6, v6) } : {}) },
    iptables: podIptablesRules({ device: d.device, podInterface: d.podInterface, podIPs: d.podIPs }),
  };
}

/** The actions, as short lines a table can compare. */
function summary(actions: readonly WorkerAction[]): string[] {
  return actions.map((a) => {
    switch (a.do) {
      case 'delete-device':
      case 'create-device':
      case 'move-device':
      case 'device-up':
        return `${a.step}: ${a.do}`;
      case 'configure-device':
        return `${a.step}: configure ${a.where.netns === undefined ? 'in host' : 'in pod'} (${a.reasons.join('; ')})`;
      case 'write-sysctls':
        return `${a.step}: sysctls ${Object.keys(a.values).length}`;
      case 'route':
        return `${a.step}: IPv${a.family} ${a.commands.filter((c) => c[0] === 'rule').map((c) => `${c[1]} ${c[3]}`).join(', ') || 'routes only'}`;
      case 'add-iptables-rule':
        return `${a.step}: ip${a.rule.family === 6 ? '6' : ''}tables ${a.rule.chain}`;
    }
  });
}

/** Everything the plan restates on every run (idempotent sysctls, device up, the table's routes). */
const RESTATED_V4 = ['plumbed: sysctls 6', 'plumbed: device-up', 'plumbed: IPv4 routes only'];

const FRESH_V4 = [
  'created: create-device',
  'configured: configure in host (no private key; no peer for the other end)',
  'moved: move-device',
  'plumbed: sysctls 6',
  'plumbed: device-up',
  'plumbed: IPv4 add 90, add 100, del 0',
  'plumbed: iptables FORWARD',
];

describe('planWorker: a setup, run again after a crash at each step', () => {
  const d = desired();
  const hostDevice = configured(d);
  const table: [string, WorkerObserved, string[]][] = [
    ['a fresh pod (or a crash right after "recorded")', observed(), FRESH_V4],
    ['after "created": the device is in the host netns, blank', observed({ device: emptyDevice(d.device) }), FRESH_V4.filter((l) => l !== 'created: create-device')],
    [
      'after "configured": the device is in the host netns, configured',
      observed({ device: hostDevice }),
      FRESH_V4.filter((l) => !/create-device|configure/.test(l)),
    ],
    [
      'after "moved": the device is in the pod netns, nothing routed',
      observed({ podLink: { kind: 'tun' }, device: hostDevice }),
      ['plumbed: sysctls 6', 'plumbed: device-up', 'plumbed: IPv4 add 90, add 100, del 0', 'plumbed: iptables FORWARD'],
    ],
    ['after "plumbed": nothing to change, only what is restated', settled(d), RESTATED_V4],
  ];

  it.each(table)('%s', (_name, o, want) => {
    const actions = planWorker(d, o);
    expect(summary(actions)).toEqual(want);
    // Actions come in step order, so that onStep after each step means what it says.
    const order = actions.map((a) => CONVERGE_STEPS.indexOf(a.step));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('configures a fresh device whole: key, peer, preshared key, endpoint, AllowedIPs, keepalive', () => {
    const configure = planWorker(d, observed()).find((a) => a.do === 'configure-device');
    expect(configure).toMatchObject({
      device: d.device,
      where: {},
      config: {
        privateKey: worker.privateKey,
        peers: [
          {
            publicKey: vm.publicKey,
            presharedKey: psk,
            endpoint: '203.0.113.10:51900',
            replaceAllowedIPs: true,
            allowedIPs: [`${V4}/32`],
            persistentKeepalive: 25,
          },
        ],
      },
    });
    expect(configure).not.toHaveProperty('config.replacePeers');
  });

  it('creates the device with the tunnel MTU and moves it into the pod netns', () => {
    const actions = planWorker(d, observed());
    expect(actions.find((a) => a.do === 'create-device')).toEqual({ step: 'created', do: 'create-device', device: d.device, mtu: 1420 });
    expect(actions.find((a) => a.do === 'move-device')).toEqual({ step: 'moved', do: 'move-device', device: d.device, netns: d.netns });
  });

  it('routes the pod IP into the tunnel: default and unreachable fallback in its table, proxy ARP, rules', () => {
    const route = planWorker(d, observed()).find((a) => a.do === 'route');
    expect(route?.commands).toEqual([
      ['route', 'replace', 'default', 'dev', d.device, 'table', POD_ROUTE_TABLE],
      ['route', 'replace', 'unreachable', 'default', 'metric', '4096', 'table', POD_ROUTE_TABLE],
      ['neighbour', 'replace', 'proxy', V4, 'dev', 'eth0'],
      ['rule', 'add', 'priority', '90', 'iif', 'eth0', 'to', `${V4}/32`, 'lookup', POD_ROUTE_TABLE],
      ['rule', 'add', 'priority', '100', 'lookup', 'local'],
      ['rule', 'del', 'priority', '0', 'lookup', 'local'],
    ]);
  });

  it('removes a stale rule at our priority (another pod IP) and adds the right one', () => {
    const stale: Rule = { priority: POD_RULE_PRIORITY, dst: '198.18.1.99', dstlen: 32, iif: 'eth0', table: POD_ROUTE_TABLE };
    const o = { ...settled(d), rules: { 4: [stale, ...plumbedRules(4, [])] } };
    const route = planWorker(d, o).find((a) => a.do === 'route');
    expect(route?.commands.filter((c) => c[0] === 'rule')).toEqual([
      ['rule', 'del', 'priority', '90', 'to', '198.18.1.99/32'],
      ['rule', 'add', 'priority', '90', 'iif', 'eth0', 'to', `${V4}/32`, 'lookup', POD_ROUTE_TABLE],
    ]);
  });
});

describe('planWorker: a device that is there but differs', () => {
  const d = desired();
  const stranger = generateKeyPair();

  it('writes only the fields that differ, each with its reason, and keeps the learned endpoint', () => {
    const actual: Device = {
      ...configured(d, { allowedIPs: ['0.0.0.0/0'], persistentKeepalive: 0, presharedKey: null, endpoint: '198.51.100.7:40000' }),
      privateKey: generateKeyPair().privateKey,
    };
    actual.peers.push(emptyPeer(stranger.publicKey));
    const actions = planWorker(d, { ...settled(d), device: actual });
    const configure = actions.filter((a) => a.do === 'configure-device');
    expect(configure).toHaveLength(1);
    expect(configure[0]).toMatchObject({
      step: 'configured',
      where: { netns: d.netns },
      reasons: [
        'another private key',
        '1 other peer',
        'another preshared key',
        `allowed IPs 0.0.0.0/0, wanted ${V4}/32`,
        'keepalive 0, wanted 25',
      ],
      config: {
        privateKey: worker.privateKey,
        replacePeers: true,
        peers: [{ publicKey: vm.publicKey, presharedKey: psk, replaceAllowedIPs: true, allowedIPs: [`${V4}/32`], persistentKeepalive: 25 }],
      },
    });
    expect(configure[0]).not.toHaveProperty('config.peers.0.endpoint');
    // The device stays: same link, no create, no move.
    expect(actions.some((a) => a.do === 'create-device' || a.do === 'move-device' || a.do === 'delete-device')).toBe(false);
  });

  it('never overwrites a learned endpoint on a re-run', () => {
    const learned = { ...settled(d), device: configured(d, { endpoint: '198.51.100.7:40000' }) };
    expect(planWorker(d, learned).some((a) => a.do === 'configure-device')).toBe(false);
  });

  it('sets the endpoint of a peer that has none', () => {
    const none = { ...settled(d), device: configured(d, { endpoint: null }) };
    expect(planWorker(d, none).find((a) => a.do === 'configure-device')).toMatchObject({
      reasons: ['no endpoint'],
      config: { peers: [{ publicKey: vm.publicKey, endpoint: '203.0.113.10:51900' }] },
    });
  });

  it('rewrites the endpoint when CAA gave new pod VM IPs, and says so', () => {
    const moved = desired({ endpointIP: '203.0.113.20', rewriteEndpoint: 'CAA gave new pod VM IPs' });
    const actions = planWorker(moved, { ...settled(moved), device: configured(moved, { endpoint: '198.51.100.7:40000' }) });
    expect(actions.find((a) => a.do === 'configure-device')).toMatchObject({
      reasons: ['endpoint rewritten: CAA gave new pod VM IPs'],
      config: { peers: [{ endpoint: '203.0.113.20:51900' }] },
    });
  });

  it('replaces a device the other backend made (userspace → kernel), then sets it up afresh', () => {
    const k = desired({ backend: 'kernel' });
    const o = observed({ podLink: { kind: 'tun' } });
    expect(summary(planWorker(k, o))).toEqual(['created: delete-device', ...FRESH_V4]);
    expect(planWorker(k, o)[0]).toMatchObject({ reason: 'a tun device, not a wireguard one: made by the other backend' });
  });

  it('keeps a kernel device in the pod netns as it is', () => {
    const k = desired({ backend: 'kernel' });
    expect(summary(planWorker(k, settled(k)))).toEqual(RESTATED_V4);
  });

  it('refuses to go on when the device is in the pod netns but its backend does not reach it', () => {
    const e = thrown(() => planWorker(d, { ...settled(d), device: null }));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.message).toMatch(/device pwg0123456789ab is in pod netns \/run\/netns\/cni-plan, but the userspace backend does not reach it/);
  });
});

describe('planWorker: IPv6 and dual-stack pods', () => {
  it('an IPv6-only pod: forwarding on before the move, the NDP rule, ip6tables MSS and two NDP marks', () => {
    const d = desired({ podIPs: [V6] });
    const actions = planWorker(d, observed({ rules: { 6: FRESH_RULES[6] }, ipv6Forwarding: false }));
    expect(summary(actions)).toEqual([
      'created: create-device',
      'configured: configure in host (no private key; no peer for the other end)',
      'moved: sysctls 2',
      'moved: move-device',
      'plumbed: sysctls 11',
      'plumbed: device-up',
      'plumbed: IPv6 add 90, add 89, add 100, del 0',
      'plumbed: ip6tables FORWARD',
      'plumbed: ip6tables PREROUTING',
      'plumbed: ip6tables PREROUTING',
    ]);
    expect(actions.find((a) => a.step === 'moved' && a.do === 'write-sysctls')).toMatchObject({
      values: { 'net.ipv6.conf.all.forwarding': 1, 'net.ipv6.conf.default.forwarding': 0 },
    });
    const route = actions.find((a) => a.do === 'route');
    expect(route?.commands).not.toContainEqual(expect.arrayContaining(['proxy'])); // no proxy NDP: eth0 keeps answering
    expect(actions.find((a) => a.do === 'configure-device')).toMatchObject({ config: { peers: [{ allowedIPs: [`${V6}/128`] }] } });
  });

  it('a dual-stack pod: both families through the one device; conf.all.forwarding left alone when it is on', () => {
    const d = desired({ podIPs: [V4, V6] });
    const actions = planWorker(d, observed({ rules: FRESH_RULES, ipv6Forwarding: true }));
    expect(summary(actions)).toEqual([
      'created: create-device',
      'configured: configure in host (no private key; no peer for the other end)',
      'moved: sysctls 1',
      'moved: move-device',
      'plumbed: sysctls 11',
      'plumbed: device-up',
      'plumbed: IPv4 add 90, add 100, del 0',
      'plumbed: IPv6 add 90, add 89, add 100, del 0',
      'plumbed: iptables FORWARD',
      'plumbed: ip6tables FORWARD',
      'plumbed: ip6tables PREROUTING',
      'plumbed: ip6tables PREROUTING',
    ]);
    expect(actions.find((a) => a.do === 'configure-device')).toMatchObject({
      config: { peers: [{ allowedIPs: [`${V4}/32`, `${V6}/128`] }] },
    });
    expect(actions.find((a) => a.step === 'moved' && a.do === 'write-sysctls')).toMatchObject({ values: { 'net.ipv6.conf.default.forwarding': 0 } });
    expect(actions.find((a) => a.step === 'plumbed' && a.do === 'write-sysctls')).toMatchObject({
      values: { 'net.ipv6.conf.pwg0123456789ab.disable_ipv6': 0, 'net.ipv6.conf.pwg0123456789ab.addr_gen_mode': 1 },
    });
  });

  it('an IPv4-only pod keeps IPv6 off on the device', () => {
    const d = desired();
    const sysctls = planWorker(d, observed()).find((a) => a.step === 'plumbed' && a.do === 'write-sysctls');
    expect(sysctls).toMatchObject({ values: { 'net.ipv6.conf.pwg0123456789ab.disable_ipv6': 1 } });
  });

  it('a dual-stack pod with everything in place: nothing but what is restated', () => {
    const d = desired({ podIPs: [V4, V6] });
    expect(summary(planWorker(d, settled(d)))).toEqual([
      'plumbed: sysctls 11',
      'plumbed: device-up',
      'plumbed: IPv4 routes only',
      'plumbed: IPv6 routes only',
    ]);
  });

  it('refuses a plan without what it must compare (the IPv6 rules, IPv6 forwarding)', () => {
    const d = desired({ podIPs: [V4, V6] });
    expect(thrown(() => planWorker(d, observed({ rules: FRESH_RULES }))).message).toMatch(/net\.ipv6\.conf\.all\.forwarding/);
    expect(thrown(() => planWorker(d, observed({ ipv6Forwarding: true }))).message).toMatch(/IPv6 rules/);
  });
});

describe('endpointFor: the pod VM IP as the peer endpoint', () => {
  const ctx = { op: 'setup', netns: '/n' };
  it('brackets IPv6 and appends the port', () => {
    expect(endpointFor('203.0.113.10', 51900, 'userspace', undefined, ctx)).toBe('203.0.113.10:51900');
    expect(endpointFor('2001:db8::10', 51900, 'kernel', undefined, ctx)).toBe('[2001:db8::10]:51900');
  });

  it('names a link-local zone by interface for wireguard-go, by ifindex for the kernel', () => {
    expect(endpointFor('fe80::10%tap0', 51900, 'userspace', 7, ctx)).toBe('[fe80::10%tap0]:51900');
    expect(endpointFor('fe80::10%tap0', 51900, 'kernel', 7, ctx)).toBe('[fe80::10%7]:51900');
  });

  it('refuses a zone whose interface is not on this worker, and the plan with it', () => {
    const e = thrown(() => endpointFor('fe80::10%tap9', 51900, 'kernel', null, ctx));
    expect(e.message).toBe("pod VM IP fe80::10%tap9: no interface tap9 on this worker, where the tunnel's UDP socket lives");
    expect(e.context).toMatchObject({ iface: 'tap9', field: 'podVmIPs' });
    expect(thrown(() => planWorker(desired({ endpointIP: 'fe80::10%tap9' }), observed({ zoneIfindex: null }))).code).toBe('EINVAL');
  });

  it('plans with the ifindex the kernel needs', () => {
    const d = desired({ backend: 'kernel', endpointIP: 'fe80::10%tap0' });
    expect(planWorker(d, observed({ zoneIfindex: 7 })).find((a) => a.do === 'configure-device')).toMatchObject({
      config: { peers: [{ endpoint: '[fe80::10%7]:51900' }] },
    });
  });
});

describe('desiredOf: a record and its keys', () => {
  const record: WireguardPodRecord = {
    id: '0123456789ab',
    netns: '/run/netns/cni-plan',
    tunnelType: 'wireguard',
    device: 'pwg0123456789ab',
    podIP: V4,
    extraPodIPs: [V6],
    podInterface: 'eth0',
    mtu: 1420,
    podVmIPs: ['203.0.113.10', '203.0.113.11'],
    phase: 'setting-up',
    updatedAt: new Date(0).toISOString(),
    vmPublicKey: vm.publicKey.toBase64(),
    workerPublicKey: worker.publicKey.toBase64(),
    vmListenPort: 51900,
    keepalive: 25,
  };

  it('takes the pod IPs podIP first, and the first pod VM IP as the endpoint', () => {
    const d = desiredOf(record, { worker: worker.privateKey, psk: null, vm: vm.publicKey }, 'kernel');
    expect(d).toMatchObject({ podIPs: [V4, V6], endpointIP: '203.0.113.10', backend: 'kernel', presharedKey: null });
    expect(d).not.toHaveProperty('rewriteEndpoint');
  });

  it('refuses a record without a pod VM IP', () => {
    expect(thrown(() => desiredOf({ ...record, podVmIPs: [] }, { worker: worker.privateKey, psk, vm: vm.publicKey }, 'kernel')).code).toBe('ESTATE');
  });
});

describe('deviceChange: the pod VM end (listen port, no endpoint, no keepalive)', () => {
  const want = {
    privateKey: vm.privateKey,
    listenPort: 51900,
    peer: { publicKey: worker.publicKey, presharedKey: psk, allowedIPs: ['0.0.0.0/0'] },
  };

  it('configures a fresh device whole, without endpoint or keepalive', () => {
    const change = deviceChange(emptyDevice('pwv1'), want);
    expect(change?.config).toEqual({
      privateKey: vm.privateKey,
      listenPort: 51900,
      peers: [{ publicKey: worker.publicKey, presharedKey: psk, replaceAllowedIPs: true, allowedIPs: ['0.0.0.0/0'] }],
    });
    expect(change?.reasons).toEqual(['no private key', 'listen port 0, wanted 51900', 'no peer for the other end']);
  });

  it('changes nothing on a device that matches, whatever endpoint and keepalive it learned', () => {
    const actual: Device = {
      ...emptyDevice('pwv1'),
      privateKey: vm.privateKey,
      listenPort: 51900,
      peers: [{ ...emptyPeer(worker.publicKey), presharedKey: psk, allowedIPs: ['0.0.0.0/0'], endpoint: '198.51.100.7:40000', persistentKeepalive: 0 }],
    };
    expect(deviceChange(actual, want)).toBeNull();
  });

  it('clears a preshared key that is no longer wanted', () => {
    const actual: Device = {
      ...emptyDevice('pwv1'),
      privateKey: vm.privateKey,
      listenPort: 51900,
      peers: [{ ...emptyPeer(worker.publicKey), presharedKey: psk, allowedIPs: ['0.0.0.0/0'] }],
    };
    expect(deviceChange(actual, { ...want, peer: { ...want.peer, presharedKey: null } })).toEqual({
      config: { peers: [{ publicKey: worker.publicKey, presharedKey: null }] },
      reasons: ['another preshared key'],
    });
  });

  it('never puts a key in a reason', () => {
    const change = deviceChange({ ...emptyDevice('pwv1'), privateKey: generateKeyPair().privateKey }, want);
    const text = change?.reasons.join(' ') ?? '';
    for (const k of [vm.privateKey.reveal(), psk.reveal(), worker.publicKey.toBase64()]) expect(text).not.toContain(k);
  });
});

describe('the tunnel MTU both ends compute', () => {
  it('is the smallest of the pod MTU, the bound and the underlay less 80 bytes', () => {
    expect(tunnelMtu(1500, 1500)).toBe(1420);
    expect(tunnelMtu(1450, 1500)).toBe(1420);
    expect(tunnelMtu(1400, 1500)).toBe(1400);
    expect(tunnelMtu(9000, 9001)).toBe(8921);
    expect(tunnelMtu(9000, 9001, 1420)).toBe(1420);
  });

  it('refuses less than 1280 only for a pod with IPv6, with the wording of the caller', () => {
    const wording = { where: 'for pod netns /n', from: 'pod MTU 1500, underlay MTU − 80', holder: 'the pod', advice: 'raise the underlay MTU' };
    expect(() => checkIpv6Mtu(1270, undefined, wording, {})).not.toThrow();
    expect(() => checkIpv6Mtu(1280, V6, wording, {})).not.toThrow();
    const e = thrown(() => checkIpv6Mtu(1270, V6, wording, { op: 'inspect', netns: '/n' }));
    expect(e.message).toBe(
      `the tunnel MTU for pod netns /n would be 1270 (pod MTU 1500, underlay MTU − 80), below 1280, IPv6's minimum, but the pod has the IPv6 address ${V6}: raise the underlay MTU`,
    );
    expect(e.context).toEqual({ op: 'inspect', netns: '/n', field: 'mtu' });
    const { advice: _advice, ...plain } = wording;
    expect(thrown(() => checkIpv6Mtu(1270, V6, plain, {})).message).toMatch(new RegExp(`has the IPv6 address ${V6}$`));
  });
});
