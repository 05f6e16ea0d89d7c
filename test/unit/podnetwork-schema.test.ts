import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  apfDocumentToJson,
  parseApfDocument,
  parseApfJson,
  parsePodNetwork,
  podNetworkToJson,
  type PodNetwork,
} from '../../src/podnetwork/schema.js';
import { PublicKey, SecretKey } from '../../src/wireguard/keys.js';
import { thrown } from '../support/errors.js';

type Json = Record<string, unknown>;

function fixtureText(name: string): string {
  // Tests run from dist/test/unit; fixtures stay in the source tree.
  return readFileSync(new URL(`../../../test/fixtures/podnetwork/${name}`, import.meta.url), 'utf8');
}

const WIREGUARD_TEXT = fixtureText('apf-wireguard.json');
const VXLAN_TEXT = fixtureText('apf-vxlan.json');

// The keys in apf-wireguard.json (generated for it alone).
const VM_PRIVATE = '8FiA4W0XzRjXqyIyBzxVtfexsyKO0B9w0oGoOLwA/WU=';
const VM_PUBLIC = 'mf6fOEe9HIteAFdoSr1EBoWMjeJ72VdLbX1mY0PL/1A=';
const WORKER_PUBLIC = 'RfJrAXWIPpPkjAZpCjkGDWTD4F2eBsS8yrSZwDi96m8=';
const PRESHARED = 'uKGw4Mo4gIKiXd4CoU0ltaxPJeYjanQfm+4TbVdhHmE=';

const wireguardDoc = (): Json => JSON.parse(WIREGUARD_TEXT) as Json;
const vxlanDoc = (): Json => JSON.parse(VXLAN_TEXT) as Json;
const net = (doc: Json): Json => doc['pod-network'] as Json;
const wg = (doc: Json): Json => net(doc).wireguard as Json;
const route = (doc: Json, i: number): Json => (net(doc).routes as Json[])[i]!;

/** An IPv6 wireguard pod, written by hand the way CAA would (upper case included, to be normalised). */
function ipv6Doc(): Json {
  const doc = wireguardDoc();
  Object.assign(net(doc), {
    podip: 'FD00:10:244:1::15/64',
    'worker-node-ip': '2001:db8:0:0:0:0:0:10/64',
    routes: [
      { dst: '', gw: 'fe80::1', dev: 'eth0' },
      { dst: 'fd00:10:244::/48', gw: 'fe80::1', dev: 'eth0', protocol: 'boot' },
      { dst: 'fd00:10:244:1::/64', gw: '', dev: 'eth0', protocol: 'kernel' },
    ],
    mtu: 1280,
  });
  wg(doc).mtu = 1280;
  return doc;
}

/** A dual-stack wireguard pod: CAA's podip is the IPv4 address, the IPv6 one rides in our section. */
function dualStackDoc(): Json {
  const doc = wireguardDoc();
  wg(doc)['extra-pod-ips'] = ['FD00:10:244:1::15/64'];
  return doc;
}

/** Whether any 12 consecutive characters of `secret` appear in `text`. */
function leaks(text: string, secret: string): boolean {
  for (let i = 0; i + 12 <= secret.length; i++) if (text.includes(secret.slice(i, i + 12))) return true;
  return false;
}

/** Parsed values compared through their JSON, since keys hide their bytes from toEqual. */
const asJson = (p: PodNetwork) => podNetworkToJson(p);

function expectStableRoundTrip(p: PodNetwork): void {
  const once = podNetworkToJson(p);
  const again = parsePodNetwork(JSON.parse(JSON.stringify(once)));
  expect(podNetworkToJson(again)).toEqual(once);
}

describe('good documents', () => {
  it('reads a realistic wireguard apf.json', () => {
    const doc = parseApfJson(WIREGUARD_TEXT, 'apf-wireguard.json');
    const p = doc.podNetwork;
    expect(doc.podNamespace).toBe('default');
    expect(doc.podName).toBe('nginx-7c5ddbdf54-x8qlz');
    expect(p.podIp).toEqual({ address: '10.244.1.21', prefixLength: 24, family: 4 });
    expect(p.podHwAddr).toBe('0a:58:0a:f4:01:15');
    expect(p.interfaceName).toBe('eth0');
    expect(p.workerNodeIp).toEqual({ address: '192.168.122.10', prefixLength: 24, family: 4 });
    expect(p.routes[0]).toEqual({ gw: '10.244.1.1', dev: 'eth0', protocol: 3 });
    expect(p.routes[2]).toEqual({
      dst: { address: '10.244.1.0', prefixLength: 24, family: 4 },
      dev: 'eth0',
      protocol: 2,
      scope: 'link',
    });
    expect(p.neighbors).toEqual([]);
    expect([p.mtu, p.index, p.dedicated, p.externalNetViaPodVm]).toEqual([1450, 3, false, false]);
    const t = p.tunnel;
    if (t.type !== 'wireguard') throw new Error('expected a wireguard tunnel');
    expect(t.privateKey?.publicKey().toBase64()).toBe(VM_PUBLIC);
    expect(t.peerPublicKey.equals(PublicKey.fromBase64(WORKER_PUBLIC))).toBe(true);
    expect(t.presharedKey?.equals(SecretKey.fromBase64('preshared key', PRESHARED))).toBe(true);
    expect([t.listenPort, t.persistentKeepalive, t.mtu]).toEqual([51900, 25, 1420]);
  });

  it("writes pod-network back exactly as Go wrote it (an empty list as [] rather than Go's null)", () => {
    const original = net(wireguardDoc());
    const written = podNetworkToJson(parseApfJson(WIREGUARD_TEXT, 'apf-wireguard.json').podNetwork);
    // Compared as text, so that field order counts too.
    expect(JSON.stringify(written)).toBe(JSON.stringify({ ...original, neighbors: [] }));
  });

  it('never carries TLS material or other unmodelled apf.json fields', () => {
    const out = JSON.stringify(apfDocumentToJson(parseApfJson(WIREGUARD_TEXT, 'apf-wireguard.json')));
    expect(Object.keys(JSON.parse(out) as Json)).toEqual(['pod-network', 'pod-namespace', 'pod-name']);
    expect(out).not.toContain('PRIVATE KEY');
    expect(out).not.toContain('sc-pp-prv');
  });

  it('hides the keys from every implicit conversion of the parsed value', () => {
    const p = parseApfJson(WIREGUARD_TEXT, 'apf-wireguard.json').podNetwork;
    const shown = `${JSON.stringify(p)} ${String(p.tunnel.type === 'wireguard' && p.tunnel.privateKey)}`;
    expect(leaks(shown, VM_PRIVATE)).toBe(false);
    expect(leaks(shown, PRESHARED)).toBe(false);
  });

  const good: { name: string; doc: () => Json; check: (p: PodNetwork) => void }[] = [
    {
      name: 'CAA vxlan document',
      doc: vxlanDoc,
      check: (p) => {
        expect(p.tunnel).toEqual({ type: 'vxlan', port: 4789, id: 555000 });
        expect(p.workerNodeIp?.address).toBe('10.0.0.4');
      },
    },
    {
      name: 'IPv6 pod, canonicalised',
      doc: ipv6Doc,
      check: (p) => {
        expect(p.podIp).toEqual({ address: 'fd00:10:244:1::15', prefixLength: 64, family: 6 });
        expect(p.workerNodeIp?.address).toBe('2001:db8::10');
        expect(p.routes[0]).toEqual({ gw: 'fe80::1', dev: 'eth0' });
        expect(p.mtu).toBe(1280);
      },
    },
    {
      name: 'dual-stack pod: extra-pod-ips canonicalised, written back',
      doc: dualStackDoc,
      check: (p) => {
        expect(p.podIp.family).toBe(4);
        expect(p.tunnel.type === 'wireguard' && p.tunnel.extraPodIps).toEqual([{ address: 'fd00:10:244:1::15', prefixLength: 64, family: 6 }]);
        expect((podNetworkToJson(p)['wireguard'] as Json)['extra-pod-ips']).toEqual(['fd00:10:244:1::15/64']);
      },
    },
    {
      name: 'routes with an empty gw and no dev',
      doc: () => {
        const d = wireguardDoc();
        net(d).routes = [{ dst: '10.244.1.0/24', gw: '' }, { dst: '0.0.0.0/0', gw: '', dev: '' }];
        return d;
      },
      check: (p) =>
        expect(p.routes).toEqual([
          { dst: { address: '10.244.1.0', prefixLength: 24, family: 4 } },
          { dst: { address: '0.0.0.0', prefixLength: 0, family: 4 } },
        ]),
    },
    {
      name: 'jumbo MTU (9001 underlay)',
      doc: () => {
        const d = wireguardDoc();
        net(d).mtu = 9001;
        wg(d).mtu = 8921;
        return d;
      },
      check: (p) => {
        expect(p.mtu).toBe(9001);
        expect(p.tunnel.type === 'wireguard' && p.tunnel.mtu).toBe(8921);
      },
    },
    {
      name: "Go's zero values as absent",
      doc: () => {
        const d = wireguardDoc();
        Object.assign(net(d), { 'pod-hw-addr': '', 'worker-node-ip': '', routes: null, 'vxlan-port': 0, 'vxlan-id': 0 });
        delete net(d).index;
        delete net(d).dedicated;
        Object.assign(wg(d), { 'preshared-key': '', 'persistent-keepalive': null });
        return d;
      },
      check: (p) => {
        expect(p.podHwAddr).toBeUndefined();
        expect(p.workerNodeIp).toBeUndefined();
        expect([p.routes, p.index, p.dedicated]).toEqual([[], 0, false]);
        if (p.tunnel.type !== 'wireguard') throw new Error('expected wireguard');
        expect(p.tunnel.presharedKey).toBeUndefined();
        expect(p.tunnel.persistentKeepalive).toBe(25);
      },
    },
    {
      name: 'field names in any case, as Go matches them',
      doc: () => {
        const d = wireguardDoc();
        const n = net(d);
        n.PodIP = n.podip;
        delete n.podip;
        return d;
      },
      check: (p) => expect(p.podIp.address).toBe('10.244.1.21'),
    },
    {
      name: 'unknown pod-network fields accepted and dropped',
      doc: () => {
        const d = wireguardDoc();
        net(d)['some-future-field'] = { x: 1 };
        return d;
      },
      check: (p) => expect(JSON.stringify(asJson(p))).not.toContain('some-future-field'),
    },
    {
      name: 'neighbours with their MAC normalised, and a numeric route protocol',
      doc: () => {
        const d = vxlanDoc();
        net(d).neighbors = [{ ip: '10.244.2.1', 'hw-addr': '0A-58-0A-F4-02-01', dev: 'eth0', state: 'permanent' }];
        route(d, 1).protocol = 2;
        return d;
      },
      check: (p) => {
        expect(p.neighbors).toEqual([{ ip: '10.244.2.1', hwAddr: '0a:58:0a:f4:02:01', dev: 'eth0', state: 'permanent' }]);
        expect(p.routes[1]?.protocol).toBe(2);
        expect(asJson(p).routes).toEqual([
          { dst: '', gw: '10.244.2.1', dev: 'eth0', protocol: 'boot' },
          { dst: '10.244.2.0/24', gw: '', dev: 'eth0', protocol: 'kernel', scope: 'link' },
        ]);
      },
    },
  ];

  it.each(good)('$name', ({ doc, check }) => {
    const p = parseApfDocument(doc()).podNetwork;
    check(p);
    expectStableRoundTrip(p);
  });

  it('takes only the tunnel types it is told it can set up', () => {
    const e = thrown(() => parseApfDocument(vxlanDoc(), { tunnelTypes: ['wireguard'] }));
    expect(e.message).toBe('pod-network.tunnel-type: unknown tunnel type "vxlan": valid types are wireguard');
  });

  it("reads a wireguard section without the VM's private key only when told it is optional (the worker's setup)", () => {
    const doc = wireguardDoc();
    delete wg(doc)['private-key'];
    expect(thrown(() => parsePodNetwork(net(doc))).message).toMatch(/^pod-network\.wireguard\.private-key: missing/);
    const p = parsePodNetwork(net(doc), { vmPrivateKey: 'optional' });
    if (p.tunnel.type !== 'wireguard') throw new Error('expected a wireguard tunnel');
    expect(p.tunnel.privateKey).toBeUndefined();
    expect(p.tunnel.peerPublicKey.toBase64()).toBe(WORKER_PUBLIC);
    expect((podNetworkToJson(p)['wireguard'] as Json)['private-key']).toBeUndefined();
    wg(doc)['private-key'] = 'not-a-key';
    expect(thrown(() => parsePodNetwork(net(doc), { vmPrivateKey: 'optional' })).message).toMatch(/wireguard\.private-key/);
  });
});

interface BadRow {
  name: string;
  base?: () => Json;
  mutate: (doc: Json) => void;
  field: string;
  fragment: string;
}

const bad: BadRow[] = [
  { name: 'private key not base64', mutate: (d) => (wg(d)['private-key'] = 'not a key at all'), field: 'pod-network.wireguard.private-key', fragment: 'is not a valid key: expected 44 characters of base64' },
  { name: 'private key one character short', mutate: (d) => (wg(d)['private-key'] = VM_PRIVATE.slice(1)), field: 'pod-network.wireguard.private-key', fragment: 'the value (43 characters, not shown) is not a valid key: expected 44 characters' },
  { name: 'preshared key mangled', mutate: (d) => (wg(d)['preshared-key'] = PRESHARED.replace('=', '!')), field: 'pod-network.wireguard.preshared-key', fragment: 'expected 44 characters of base64' },
  { name: 'peer public key a number', mutate: (d) => (wg(d)['peer-public-key'] = 12345), field: 'pod-network.wireguard.peer-public-key', fragment: '12345 is not a valid key: expected 44 characters' },
  { name: "peer public key is the VM's own", mutate: (d) => (wg(d)['peer-public-key'] = VM_PUBLIC), field: 'pod-network.wireguard.peer-public-key', fragment: "expected the worker's public key" },
  { name: 'bad CIDR', mutate: (d) => (net(d).podip = '10.244.1.300/24'), field: 'pod-network.podip', fragment: 'is not a valid CIDR (bad address): expected an address with a prefix length' },
  { name: 'IP without prefix', mutate: (d) => (net(d).podip = '10.244.1.21'), field: 'pod-network.podip', fragment: '"10.244.1.21" is not a valid CIDR (the prefix length is missing): expected an address with a prefix length' },
  { name: 'prefix too long', mutate: (d) => (net(d).podip = '10.244.1.21/33'), field: 'pod-network.podip', fragment: 'prefix length 33 is more than 32 for IPv4' },
  { name: 'prefix with a leading zero', mutate: (d) => (net(d)['worker-node-ip'] = '192.168.122.10/024'), field: 'pod-network.worker-node-ip', fragment: 'bad prefix length' },
  { name: 'pod IP multicast', mutate: (d) => (net(d).podip = '224.0.0.5/24'), field: 'pod-network.podip', fragment: 'not a unicast address' },
  { name: 'pod IP with a zone', mutate: (d) => (net(d).podip = 'fe80::15%eth0/64'), field: 'pod-network.podip', fragment: 'a zone is not allowed' },
  { name: 'bad gateway IP', mutate: (d) => (route(d, 1).gw = '10.244.1'), field: 'pod-network.routes[1].gw', fragment: 'expected an IPv4 or IPv6 address without prefix length' },
  { name: 'gateway with a prefix', mutate: (d) => (route(d, 1).gw = '10.244.1.1/24'), field: 'pod-network.routes[1].gw', fragment: '(has a prefix length)' },
  { name: 'route dst with host bits', mutate: (d) => (route(d, 1).dst = '10.244.1.0/16'), field: 'pod-network.routes[1].dst', fragment: 'has host bits set: expected the network address 10.244.0.0/16' },
  { name: 'gateway of the wrong family', mutate: (d) => (route(d, 1).gw = 'fd00::1'), field: 'pod-network.routes[1].gw', fragment: 'expected an IPv4 gateway' },
  { name: 'route scope unknown', mutate: (d) => (route(d, 2).scope = 'global'), field: 'pod-network.routes[2].scope', fragment: 'expected one of universe, site, link, host, nowhere' },
  { name: 'route protocol unknown', mutate: (d) => (route(d, 0).protocol = 'ospf3'), field: 'pod-network.routes[0].protocol', fragment: 'expected a route protocol name' },
  { name: 'route protocol too big', mutate: (d) => (route(d, 0).protocol = 256), field: 'pod-network.routes[0].protocol', fragment: 'or a number 0-255' },
  { name: 'route not an object', mutate: (d) => ((net(d).routes as unknown[])[0] = 'default via 10.244.1.1'), field: 'pod-network.routes[0]', fragment: 'expected an object with dst, gw, dev' },
  { name: 'routes not a list', mutate: (d) => (net(d).routes = {}), field: 'pod-network.routes', fragment: 'an object is not a valid list: expected an array of routes' },
  { name: 'listen port 0', mutate: (d) => (wg(d)['listen-port'] = 0), field: 'pod-network.wireguard.listen-port', fragment: '0 is not a valid port: expected an integer 1-65535' },
  { name: 'listen port 70000', mutate: (d) => (wg(d)['listen-port'] = 70000), field: 'pod-network.wireguard.listen-port', fragment: '70000 is not a valid port: expected an integer 1-65535' },
  { name: 'listen port "x"', mutate: (d) => (wg(d)['listen-port'] = 'x'), field: 'pod-network.wireguard.listen-port', fragment: '"x" is not a valid port: expected an integer 1-65535' },
  { name: 'listen port 1.5', mutate: (d) => (wg(d)['listen-port'] = 1.5), field: 'pod-network.wireguard.listen-port', fragment: 'expected an integer 1-65535' },
  { name: 'listen port missing', mutate: (d) => delete wg(d)['listen-port'], field: 'pod-network.wireguard.listen-port', fragment: 'missing: expected an integer 1-65535' },
  { name: 'podip missing', mutate: (d) => delete net(d).podip, field: 'pod-network.podip', fragment: 'missing: expected an address with a prefix length' },
  { name: 'interface null', mutate: (d) => (net(d).interface = null), field: 'pod-network.interface', fragment: 'missing: expected a Linux interface name' },
  { name: 'mtu missing', mutate: (d) => delete net(d).mtu, field: 'pod-network.mtu', fragment: 'missing: expected an integer 68-65535' },
  { name: 'tunnel type unknown', mutate: (d) => (net(d)['tunnel-type'] = 'geneve'), field: 'pod-network.tunnel-type', fragment: 'unknown tunnel type "geneve": valid types are vxlan, wireguard' },
  { name: 'tunnel type empty', mutate: (d) => (net(d)['tunnel-type'] = ''), field: 'pod-network.tunnel-type', fragment: 'unknown tunnel type "": valid types are vxlan, wireguard' },
  { name: 'bad MAC', mutate: (d) => (net(d)['pod-hw-addr'] = '0a:58:0a:f4:01'), field: 'pod-network.pod-hw-addr', fragment: 'expected a MAC address of 6, 8 or 20 bytes' },
  { name: 'neighbour without MAC', base: vxlanDoc, mutate: (d) => (net(d).neighbors = [{ ip: '10.244.2.1', dev: 'eth0' }]), field: 'pod-network.neighbors[0].hw-addr', fragment: 'missing: expected a MAC address' },
  { name: 'neighbour state unknown', base: vxlanDoc, mutate: (d) => (net(d).neighbors = [{ ip: '10.244.2.1', 'hw-addr': '0a:58:0a:f4:02:01', dev: 'eth0', state: 'unknown' }]), field: 'pod-network.neighbors[0].state', fragment: 'expected one of none, incomplete' },
  { name: 'interface name with /', mutate: (d) => (net(d).interface = 'eth0/1'), field: 'pod-network.interface', fragment: "expected a Linux interface name: 1-15 bytes, without '/', ':' or whitespace" },
  { name: 'interface name too long', mutate: (d) => (net(d).interface = 'a-very-long-ifname'), field: 'pod-network.interface', fragment: '(18 bytes long): expected a Linux interface name' },
  { name: 'interface name "."', mutate: (d) => (net(d).interface = '.'), field: 'pod-network.interface', fragment: "not '.' or '..'" },
  { name: 'interface name with a space', mutate: (d) => (net(d).interface = 'eth 0'), field: 'pod-network.interface', fragment: 'expected a Linux interface name' },
  { name: 'route dev too long', mutate: (d) => (route(d, 0).dev = 'x'.repeat(16)), field: 'pod-network.routes[0].dev', fragment: 'expected a Linux interface name' },
  { name: 'negative keepalive', mutate: (d) => (wg(d)['persistent-keepalive'] = -1), field: 'pod-network.wireguard.persistent-keepalive', fragment: '-1 is not a valid keepalive: expected an integer 0-65535 (seconds; 0 disables)' },
  { name: 'pod MTU too small for IPv4', mutate: (d) => (net(d).mtu = 67), field: 'pod-network.mtu', fragment: '67 is not a valid MTU for an IPv4 pod: expected an integer 68-65535' },
  { name: 'pod MTU too small for IPv6', base: ipv6Doc, mutate: (d) => (net(d).mtu = 1279), field: 'pod-network.mtu', fragment: 'expected an integer 1280-65535' },
  { name: 'pod MTU too big', mutate: (d) => (net(d).mtu = 65536), field: 'pod-network.mtu', fragment: 'expected an integer 68-65535' },
  { name: 'tunnel MTU too small', mutate: (d) => (wg(d).mtu = 1000), field: 'pod-network.wireguard.mtu', fragment: '1000 is not a valid MTU: expected an integer 1280-65535' },
  { name: 'pod MTU too small for a dual-stack pod', base: dualStackDoc, mutate: (d) => (net(d).mtu = 1279), field: 'pod-network.mtu', fragment: '1279 is below 1280, IPv6\'s minimum MTU, but the pod has the IPv6 address fd00:10:244:1::15/64 (wireguard.extra-pod-ips)' },
  { name: 'extra pod IP without prefix', base: dualStackDoc, mutate: (d) => (wg(d)['extra-pod-ips'] = ['fd00::15']), field: 'pod-network.wireguard.extra-pod-ips[0]', fragment: 'the prefix length is missing' },
  { name: 'extra pod IPs not a list', base: dualStackDoc, mutate: (d) => (wg(d)['extra-pod-ips'] = 'fd00::15/64'), field: 'pod-network.wireguard.extra-pod-ips', fragment: 'is not a valid list: expected a list of up to 8 addresses' },
  { name: 'extra pod IP link-local', base: dualStackDoc, mutate: (d) => (wg(d)['extra-pod-ips'] = ['fe80::15/64']), field: 'pod-network.wireguard.extra-pod-ips[0]', fragment: 'is link-local: expected the pod\'s own address' },
  { name: 'extra pod IP repeats podip', base: dualStackDoc, mutate: (d) => (wg(d)['extra-pod-ips'] = ['10.244.1.21/24']), field: 'pod-network.wireguard.extra-pod-ips[0]', fragment: 'repeats podip' },
  { name: 'extra pod IP multicast', base: dualStackDoc, mutate: (d) => (wg(d)['extra-pod-ips'] = ['ff02::1/64']), field: 'pod-network.wireguard.extra-pod-ips[0]', fragment: 'not a unicast address' },
  { name: 'index negative', mutate: (d) => (net(d).index = -1), field: 'pod-network.index', fragment: 'expected an integer 0-2147483647' },
  { name: 'dedicated not a boolean', mutate: (d) => (net(d).dedicated = 'yes'), field: 'pod-network.dedicated', fragment: '"yes" is not a valid boolean: expected true or false' },
  { name: 'wireguard section missing for wireguard', mutate: (d) => delete net(d).wireguard, field: 'pod-network.wireguard', fragment: "missing: tunnel-type wireguard needs the pod VM's keys and port: expected an object with private-key" },
  { name: 'wireguard section not an object', mutate: (d) => (net(d).wireguard = 'on'), field: 'pod-network.wireguard', fragment: 'expected an object with private-key' },
  { name: 'unknown field in the wireguard section', mutate: (d) => (wg(d).endpoint = '192.0.2.1:51820'), field: 'pod-network.wireguard.endpoint', fragment: 'unknown field: valid fields are private-key, peer-public-key' },
  { name: 'wireguard section on a vxlan pod', base: vxlanDoc, mutate: (d) => (net(d).wireguard = wg(wireguardDoc())), field: 'pod-network.wireguard', fragment: 'expected no wireguard section unless tunnel-type is wireguard' },
  { name: 'vxlan port on a wireguard pod', mutate: (d) => (net(d)['vxlan-port'] = 4789), field: 'pod-network.vxlan-port', fragment: 'expected no vxlan-port (or 0) unless tunnel-type is vxlan' },
  { name: 'vxlan without the worker address', base: vxlanDoc, mutate: (d) => (net(d)['worker-node-ip'] = ''), field: 'pod-network.worker-node-ip', fragment: "missing: tunnel-type vxlan needs the worker's address" },
  { name: 'vxlan ID beyond 24 bits', base: vxlanDoc, mutate: (d) => (net(d)['vxlan-id'] = 2 ** 24), field: 'pod-network.vxlan-id', fragment: 'expected an integer 1-16777215' },
  { name: 'vxlan port 70000', base: vxlanDoc, mutate: (d) => (net(d)['vxlan-port'] = 70000), field: 'pod-network.vxlan-port', fragment: 'expected an integer 1-65535' },
  { name: 'pod-network not an object', mutate: (d) => (d['pod-network'] = [1]), field: 'pod-network', fragment: 'an array is not a valid object: expected an object with podip' },
  { name: 'pod-network missing', mutate: (d) => delete d['pod-network'], field: 'pod-network', fragment: 'missing: expected an object with podip' },
  { name: 'pod-name not a string', mutate: (d) => (d['pod-name'] = 7), field: 'pod-name', fragment: '7 is not a valid string: expected a string' },
  { name: 'private key pasted as the interface name', mutate: (d) => (net(d).interface = VM_PRIVATE), field: 'pod-network.interface', fragment: 'a 44-character base64 string (not shown) is not a valid interface name' },
];

const SECRETS = [VM_PRIVATE, PRESHARED];

describe('bad documents', () => {
  it.each(bad)('$name', ({ base = wireguardDoc, mutate, field, fragment }) => {
    const doc = base();
    mutate(doc);
    const e = thrown(() => parseApfDocument(doc));
    expect(e.code).toBe('EINVAL');
    expect(e.context.field).toBe(field);
    // Each row breaks one field, so exactly one problem is reported, on one line.
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message.startsWith(`${field}: `)).toBe(true);
    expect(e.message).toContain(fragment);
    for (const secret of SECRETS) expect(leaks(e.describe(), secret)).toBe(false);
  });

  it('reports every bad field in one error, one a line, in document order', () => {
    const doc = wireguardDoc();
    net(doc).podip = '10.244.1.21';
    route(doc, 3).gw = 'nope';
    net(doc).mtu = 10;
    wg(doc)['private-key'] = VM_PRIVATE.slice(0, 30);
    wg(doc)['listen-port'] = 70000;
    const e = thrown(() => parseApfJson(JSON.stringify(doc), '/run/peerpod/apf.json'));
    expect(e.context).toMatchObject({ op: 'parse-apf', source: '/run/peerpod/apf.json', field: 'pod-network.podip' });
    expect(e.message.split('\n').map((line) => line.split(':')[0])).toEqual([
      'pod-network.podip',
      'pod-network.routes[3].gw',
      'pod-network.mtu',
      'pod-network.wireguard.private-key',
      'pod-network.wireguard.listen-port',
    ]);
    for (const secret of SECRETS) expect(leaks(e.describe(), secret)).toBe(false);
  });

  it('still checks the wireguard section when the tunnel type is wrong', () => {
    const doc = wireguardDoc();
    net(doc)['tunnel-type'] = 'wg';
    wg(doc)['listen-port'] = 0;
    const e = thrown(() => parseApfDocument(doc));
    expect(e.message).toBe(
      'pod-network.tunnel-type: unknown tunnel type "wg": valid types are vxlan, wireguard\n' +
        'pod-network.wireguard.listen-port: 0 is not a valid port: expected an integer 1-65535',
    );
  });

  it('names paths in CAA spelling when parsing pod-network alone', () => {
    const e = thrown(() => parsePodNetwork({ ...net(wireguardDoc()), mtu: 'big' }));
    expect(e.context).toMatchObject({ op: 'parse-pod-network', field: 'pod-network.mtu' });
    expect(thrown(() => parsePodNetwork('x')).message).toBe(
      'pod-network: "x" is not a valid object: expected an object with podip, interface, tunnel-type, mtu, …',
    );
  });
});

describe('bad JSON text', () => {
  const rows: { name: string; text: string; line: number; column: number; fragment: string }[] = [
    {
      name: 'a missing comma',
      text: '{\n  "pod-network": {\n    "podip": "10.244.1.21/24"\n    "interface": "eth0"\n  }\n}',
      line: 4,
      column: 5,
      fragment: "expected ',' or '}'",
    },
    { name: 'cut short', text: '{"pod-network": {"podip": ', line: 1, column: 27, fragment: 'unexpected end of input: expected a value' },
    { name: 'a trailing comma', text: '{"pod-name": "x",}', line: 1, column: 18, fragment: 'expected a field name in double quotes' },
    // V8's own message here quotes the text after the fault: the start of the private key.
    {
      name: 'a key in single quotes',
      text: `{"pod-network": {"wireguard": {"private-key": '${VM_PRIVATE}'}}}`,
      line: 1,
      column: 47,
      fragment: 'expected a value',
    },
    { name: 'empty text', text: '', line: 1, column: 1, fragment: 'unexpected end of input: expected a value' },
  ];

  it.each(rows)('$name', ({ text, line, column, fragment }) => {
    const e = thrown(() => parseApfJson(text, '/media/cidata/user-data'));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toBe(`/media/cidata/user-data: not valid JSON at line ${line}, column ${column}: ${fragment}`);
    expect(e.context).toMatchObject({ op: 'parse-apf', source: '/media/cidata/user-data', line, column });
    expect(e.cause).toBeUndefined();
    expect(leaks(e.describe(), VM_PRIVATE)).toBe(false);
  });

  it('says the document is not an object when it is valid JSON of another shape', () => {
    const e = thrown(() => parseApfJson('[]', 'apf.json'));
    expect(e.message).toBe('apf.json: an array is not a valid object: expected an object with pod-network');
    expect(e.context.field).toBe('apf.json');
  });
});

describe('round trip (property)', () => {
  const byte = fc.integer({ min: 0, max: 255 });
  const masked = (bytes: number[], length: number) =>
    bytes.map((b, i) => b & ((0xff << (8 - Math.max(0, Math.min(8, length - 8 * i)))) & 0xff));
  // Written independently of src/ip.ts, and deliberately not canonical for IPv6.
  const v4 = (bytes: number[]) => bytes.join('.');
  const v6 = (bytes: number[], upper: boolean) => {
    const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16).padStart(4, '0'));
    const s = groups.join(':');
    return upper ? s.toUpperCase() : s;
  };
  const family = fc.constantFrom(4 as const, 6 as const);
  const address = (f: 4 | 6) => fc.array(byte, { minLength: f === 4 ? 4 : 16, maxLength: f === 4 ? 4 : 16 });
  const text = (f: 4 | 6, bytes: number[], upper: boolean) => (f === 4 ? v4(bytes) : v6(bytes, upper));
  // A unicast address: neither unspecified nor multicast.
  const unicast = (f: 4 | 6) =>
    address(f).map((b) => {
      b[0] = f === 4 ? 10 + (b[0]! % 200) : 0xfd;
      return b;
    });
  const prefixOf = (f: 4 | 6) =>
    fc.tuple(unicast(f), fc.integer({ min: 0, max: f === 4 ? 32 : 128 }), fc.boolean()).map(([b, len, up]) => `${text(f, b, up)}/${len}`);
  const ifname = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,14}$/).filter((s) => s !== '.' && s !== '..');
  const mac = fc.array(byte, { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
  const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

  const routeFor = (f: 4 | 6) =>
    fc.record(
      {
        dst: fc.oneof(
          fc.constant(''),
          fc.tuple(address(f), fc.integer({ min: 0, max: f === 4 ? 32 : 128 }), fc.boolean()).map(
            ([b, len, up]) => `${text(f, masked(b, len), up)}/${len}`,
          ),
        ),
        gw: fc.oneof(fc.constant(''), fc.tuple(unicast(f), fc.boolean()).map(([b, up]) => text(f, b, up))),
        dev: fc.oneof(fc.constant(''), ifname),
        protocol: fc.oneof(fc.constantFrom('boot', 'kernel', 'static', 'dhcp', 'bird', '99'), fc.integer({ min: 0, max: 255 })),
        scope: fc.constantFrom('universe', 'site', 'link', 'host', 'nowhere'),
      },
      { requiredKeys: ['dst', 'gw'] },
    );

  const podNetworkJson = family.chain((f) =>
    fc.record({
      podip: prefixOf(f),
      'pod-hw-addr': fc.oneof(fc.constant(''), mac),
      interface: ifname,
      'worker-node-ip': fc.oneof(fc.constant(''), family.chain(prefixOf)),
      routes: fc.oneof(fc.constant(null), fc.array(routeFor(f), { maxLength: 4 })),
      neighbors: fc.array(
        fc.record({
          ip: fc.tuple(unicast(f), fc.boolean()).map(([b, up]) => text(f, b, up)),
          'hw-addr': mac,
          dev: ifname,
          state: optional(fc.constantFrom('none', 'reachable', 'permanent', 'noarp')),
        }),
        { maxLength: 2 },
      ),
      mtu: fc.integer({ min: f === 4 ? 68 : 1280, max: 65535 }),
      index: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      dedicated: fc.boolean(),
      'external-net-via-pod-vm': fc.boolean(),
      tunnel: fc.oneof(
        fc.record({
          'tunnel-type': fc.constant('vxlan'),
          'worker-node-ip': prefixOf(f),
          'vxlan-port': fc.integer({ min: 0, max: 65535 }),
          'vxlan-id': fc.integer({ min: 0, max: 2 ** 24 - 1 }),
        }),
        fc.record({
          'tunnel-type': fc.constant('wireguard'),
          wireguard: fc.record(
            {
              'private-key': key.map((k) => SecretKey.fromBytes('private key', k).reveal()),
              'peer-public-key': key.map((k) => PublicKey.fromBytes(k).toBase64()),
              'preshared-key': fc.oneof(fc.constant(''), key.map((k) => SecretKey.fromBytes('preshared key', k).reveal())),
              'listen-port': fc.integer({ min: 1, max: 65535 }),
              'persistent-keepalive': fc.integer({ min: 0, max: 65535 }),
              mtu: fc.integer({ min: 1280, max: 65535 }),
            },
            { requiredKeys: ['private-key', 'peer-public-key', 'listen-port', 'mtu'] },
          ),
        }),
      ),
    }).map(({ tunnel, ...common }) => ({ ...common, ...tunnel })),
  );

  it('reads every valid pod-network, and writing then reading again changes nothing', () => {
    fc.assert(
      fc.property(podNetworkJson, (json) => {
        const p = parsePodNetwork(json);
        const once = podNetworkToJson(p);
        const again = parsePodNetwork(JSON.parse(JSON.stringify(once)));
        expect(podNetworkToJson(again)).toEqual(once);
        expect(podNetworkToJson(parsePodNetwork(once))).toEqual(once);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps a whole apf.json document stable too', () => {
    fc.assert(
      fc.property(podNetworkJson, fc.string({ maxLength: 20 }), (json, name) => {
        const doc = parseApfJson(JSON.stringify({ 'pod-network': json, 'pod-name': name, 'tls-server-key': 'x' }), 'gen');
        const once = apfDocumentToJson(doc);
        expect(apfDocumentToJson(parseApfJson(JSON.stringify(once), 'gen'))).toEqual(once);
      }),
      { numRuns: 100 },
    );
  });
});
