// apf.json and its `pod-network` object (CAA's tunneler.Config) with our `wireguard` section inside:
// read from parsed JSON into PodNetwork values, and written back in the spelling and field order Go
// writes. Reading reports every problem at once, each with its path in CAA's spelling and what would
// be valid. Writing is the one place the pod VM's keys are revealed, because apf.json is where they
// must go. Pure: reading the file, and keeping the worker's copy of it away from debug dumps, is the
// caller's job.
//
// Lenient where CAA is: Go's zero values ("" for a missing address or MAC, 0 for a missing port, null
// for an empty list) read as "absent", field names match regardless of case, and unknown fields of
// pod-network, routes and neighbours are dropped (CAA may add some). Strict where a wrong value would
// misconfigure the pod's network, and in our own `wireguard` section, where an unknown field is an
// error: a setting the pod VM silently ignored could weaken the tunnel without anyone noticing.
import { type ErrorContext, PeerpodError } from '../errors.js';
import {
  boolean,
  integer,
  ifname,
  ipAddress,
  ipPrefix,
  macAddress,
  oneOf,
  port,
  publicKey,
  routeProtocol,
  routeProtocolText,
  secretKey,
  text,
  tunnelType,
} from './fields.js';
import { formatIpPrefix, parseIpAddress, type IpFamily, type IpPrefix } from '../ip.js';
import { findJsonSyntaxFault } from './json-text.js';
import { JsonSection, Problems } from './problems.js';
import {
  IPV6_MIN_MTU,
  NEIGHBOR_STATES,
  ROUTE_SCOPES,
  TUNNEL_TYPES,
  type ApfDocument,
  type NeighborState,
  type PodNeighbor,
  type PodNetwork,
  type PodRoute,
  type RouteScope,
  type TunnelOptions,
  type TunnelType,
  type WireguardTunnel,
} from './types.js';

export * from './types.js';
export { formatIpPrefix } from '../ip.js';

export interface PodNetworkReadOptions {
  /**
   * Tunnel types the reader can set up (default: all of TUNNEL_TYPES). Any other reads as an
   * unknown tunnel type, with this list as the valid ones.
   */
  readonly tunnelTypes?: readonly TunnelType[];
  /**
   * Whether wireguard.private-key must be there (default). The worker's setup needs only the VM's
   * public key, which it recorded at inspect, so its callers need not pass the private key around.
   */
  readonly vmPrivateKey?: 'required' | 'optional';
}

/** Seconds; what the worker side uses too, and the usual value for a peer behind NAT. */
export const DEFAULT_PERSISTENT_KEEPALIVE = 25;

/** Field names of our section, in the order we write them. */
export const WIREGUARD_FIELDS = [
  'private-key',
  'peer-public-key',
  'preshared-key',
  'listen-port',
  'persistent-keepalive',
  'mtu',
  'extra-pod-ips',
] as const;

// Linux drops IPv4 from a device whose MTU is below 68 (RFC 791's minimum) and IPv6 from one below
// 1280 (RFC 8200's), so a smaller MTU would leave the pod without its address. 65535 is the largest
// IP packet without IPv6 jumbograms.
const MAX_MTU = 65535;
const MIN_MTU: Record<IpFamily, number> = { 4: 68, 6: IPV6_MIN_MTU };
/** More would be a CNI we do not know of; the limit keeps a hostile document from growing the rules. */
const MAX_EXTRA_POD_IPS = 8;
const EXTRA_POD_IPS_EXPECTED = `a list of up to ${MAX_EXTRA_POD_IPS} addresses with prefix length, such as ["fd00:10:244:1::15/64"]`;
// IPv6's minimum, so the tunnel can carry an IPv6 or dual-stack pod. Any cloud underlay leaves more
// than that after WireGuard's 80 bytes, so a smaller value means the worker got its sums wrong.
const wireguardMtu = integer('MTU', MIN_MTU[6], MAX_MTU);
const podMtu = (family: IpFamily) =>
  integer(`MTU for an IPv${family} pod`, MIN_MTU[family], MAX_MTU);
// A Go int in CAA; 2^31-1 keeps it exact in JSON and in a 32-bit int.
const podIndex = integer('index', 0, 2 ** 31 - 1);
const vxlanId = integer('VXLAN ID', 1, 2 ** 24 - 1);
const keepalive = integer('keepalive', 0, 65535, 'an integer 0-65535 (seconds; 0 disables)');

const ROUTES_EXPECTED = 'an array of routes (or null)';
const ROUTE_EXPECTED = 'an object with dst, gw, dev, protocol, scope';
const NEIGHBORS_EXPECTED = 'an array of neighbors (or null)';
const NEIGHBOR_EXPECTED = 'an object with ip, hw-addr, dev, state';
const WIREGUARD_EXPECTED = `an object with ${WIREGUARD_FIELDS.join(', ')}`;
const POD_NETWORK_EXPECTED = 'an object with podip, interface, tunnel-type, mtu, …';

/** Reads a `pod-network` object. Throws one EINVAL naming every bad field ("pod-network.mtu: …"). */
export function parsePodNetwork(json: unknown, options: PodNetworkReadOptions = {}): PodNetwork {
  const problems = new Problems();
  const section = JsonSection.open(json, { label: 'pod-network', prefix: 'pod-network' }, POD_NETWORK_EXPECTED, problems);
  const podNetwork = section && readPodNetwork(section, options);
  return finish(podNetwork, problems, { op: 'parse-pod-network' });
}

/** Reads a parsed apf.json. Fields other than pod-network, pod-namespace and pod-name are ignored. */
export function parseApfDocument(json: unknown, options: PodNetworkReadOptions = {}): ApfDocument {
  return readApf(json, options, { op: 'parse-apf' });
}

/** Reads apf.json from its text; `source` (a path, "userdata", …) names it in errors. */
export function parseApfJson(text: string, source: string, options: PodNetworkReadOptions = {}): ApfDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // V8's message quotes the text near the fault, which may be a key: never pass it on, nor the cause.
    const fault = findJsonSyntaxFault(text);
    const where = fault ? ` at line ${fault.line}, column ${fault.column}: ${fault.problem}` : '';
    const context: ErrorContext = { op: 'parse-apf', source };
    if (fault) Object.assign(context, { line: fault.line, column: fault.column });
    throw new PeerpodError('EINVAL', `${source}: not valid JSON${where}`, context);
  }
  return readApf(json, options, { op: 'parse-apf', source });
}

/** What CAA's Configure hands over: the pod-network its Inspect read, before any tunnel section. */
export interface InspectedPodNetwork {
  readonly podIp?: IpPrefix;
  readonly interfaceName?: string;
  /** MTU of the pod's interface on the worker. */
  readonly mtu: number;
}

/**
 * Reads the pod-network that CAA inspected, for Configure: tunnel-type must be wireguard and mtu
 * is required; a wireguard section already there (a Configure retried on the same config) is
 * ignored, since Configure makes a new one. Everything else CAA fills in rides along untouched.
 */
export function parseInspectedPodNetwork(json: unknown, prefix = 'podNetwork'): InspectedPodNetwork {
  const problems = new Problems();
  const s = JsonSection.open(json, { label: prefix, prefix }, POD_NETWORK_EXPECTED, problems);
  let result: InspectedPodNetwork | undefined;
  if (s) {
    const podIp = s.optional('podip', ipPrefix({ unicast: true }), ['']);
    const interfaceName = s.optional('interface', ifname, ['']);
    s.required('tunnel-type', tunnelType(['wireguard'] as const));
    const mtu = s.required('mtu', podMtu(podIp?.family ?? 4));
    if (mtu !== undefined) {
      result = { mtu, ...(podIp !== undefined && { podIp }), ...(interfaceName !== undefined && { interfaceName }) };
    }
  }
  return finish(result, problems, { op: 'configure' });
}

function readApf(json: unknown, options: PodNetworkReadOptions, context: ErrorContext): ApfDocument {
  const problems = new Problems();
  const doc = JsonSection.open(json, { label: 'apf.json', prefix: '' }, 'an object with pod-network', problems);
  let result: ApfDocument | undefined;
  if (doc) {
    const network = doc.section('pod-network', POD_NETWORK_EXPECTED);
    const podNetwork = network && readPodNetwork(network, options);
    // Go writes "" for both when unset. Neither shapes the network, so any string will do.
    const podNamespace = doc.optional('pod-namespace', text, ['']);
    const podName = doc.optional('pod-name', text, ['']);
    if (podNetwork) {
      result = {
        podNetwork,
        ...(podNamespace !== undefined && { podNamespace }),
        ...(podName !== undefined && { podName }),
      };
    }
  }
  return finish(result, problems, context);
}

function finish<T>(value: T | undefined, problems: Problems, context: ErrorContext): T {
  problems.throwIfAny(context);
  // Unreachable: every path that yields undefined has recorded a problem.
  if (value === undefined) throw new PeerpodError('EINVAL', 'invalid pod-network', context);
  return value;
}

function readPodNetwork(s: JsonSection, options: PodNetworkReadOptions): PodNetwork | undefined {
  const podIp = s.required('podip', ipPrefix({ unicast: true }));
  const podHwAddr = s.optional('pod-hw-addr', macAddress, ['']);
  const interfaceName = s.required('interface', ifname);
  const workerNodeIp = s.optional('worker-node-ip', ipPrefix({ unicast: true }), ['']);
  const type = s.required('tunnel-type', tunnelType(options.tunnelTypes ?? TUNNEL_TYPES));
  const routes = s.list('routes', ROUTES_EXPECTED, (item, path) => readRoute(item, path, s.problems));
  const neighbors = s.list('neighbors', NEIGHBORS_EXPECTED, (item, path) => readNeighbor(item, path, s.problems));
  // Before podip is known good, judge the MTU by IPv4's smaller minimum rather than not at all.
  const mtu = s.required('mtu', podMtu(podIp?.family ?? 4));
  const index = s.optional('index', podIndex) ?? 0;
  const dedicated = s.optional('dedicated', boolean) ?? false;
  const externalNetViaPodVm = s.optional('external-net-via-pod-vm', boolean) ?? false;
  const tunnel = readTunnel(s, type, workerNodeIp, options.vmPrivateKey);
  const extra = tunnel?.type === 'wireguard' ? (tunnel.extraPodIps ?? []) : [];
  if (podIp !== undefined) checkExtraPodIps(s, podIp, extra);
  const v6 = extra.find((a) => a.family === 6);
  if (v6 !== undefined && mtu !== undefined && mtu < IPV6_MIN_MTU) {
    s.problems.add(
      s.path('mtu'),
      `${mtu} is below ${IPV6_MIN_MTU}, IPv6's minimum MTU, but the pod has the IPv6 address ${formatIpPrefix(v6)} ` +
        `(wireguard.extra-pod-ips): expected an integer ${IPV6_MIN_MTU}-${MAX_MTU}`,
    );
    return undefined;
  }

  if (!podIp || !interfaceName || !routes || !neighbors || mtu === undefined || !tunnel) return undefined;
  return {
    podIp,
    ...(podHwAddr !== undefined && { podHwAddr }),
    interfaceName,
    ...(workerNodeIp !== undefined && { workerNodeIp }),
    routes,
    neighbors,
    mtu,
    index,
    dedicated,
    externalNetViaPodVm,
    tunnel,
  };
}

/**
 * The options of the one tunnel type named. The other type's fields must be unset: a document with
 * both was written by a worker that disagrees with itself, and guessing which half it meant could
 * bring up a tunnel the worker is not listening for (or ship a private key nobody uses).
 */
function readTunnel(
  s: JsonSection,
  type: TunnelType | undefined,
  workerNodeIp: IpPrefix | undefined,
  vmPrivateKey: 'required' | 'optional' = 'required',
): TunnelOptions | undefined {
  // Go omits a zero VXLAN port or ID, and treats an explicit 0 the same.
  const vxlanPort = s.optional('vxlan-port', port, [0]);
  const vxlanIdValue = s.optional('vxlan-id', vxlanId, [0]);
  const hasWireguard = s.isSet('wireguard');

  if (type === 'vxlan') {
    if (hasWireguard) {
      s.problems.add(s.path('wireguard'), 'is set but tunnel-type is vxlan: expected no wireguard section unless tunnel-type is wireguard');
    }
    if (!s.isSet('worker-node-ip', [''])) {
      s.problems.add(s.path('worker-node-ip'), `missing: tunnel-type vxlan needs the worker's address as the VXLAN remote: expected ${ipPrefix().expected}`);
    }
    if (hasWireguard || !workerNodeIp) return undefined;
    const tunnel: TunnelOptions = {
      type: 'vxlan',
      ...(vxlanPort !== undefined && { port: vxlanPort }),
      ...(vxlanIdValue !== undefined && { id: vxlanIdValue }),
    };
    return tunnel;
  }

  if (type === 'wireguard') {
    for (const key of ['vxlan-port', 'vxlan-id']) {
      if (s.isSet(key, [0])) {
        s.problems.add(s.path(key), `is set but tunnel-type is wireguard: expected no ${key} (or 0) unless tunnel-type is vxlan`);
      }
    }
    if (!hasWireguard) {
      s.problems.add(s.path('wireguard'), `missing: tunnel-type wireguard needs the pod VM's keys and port: expected ${WIREGUARD_EXPECTED}`);
      return undefined;
    }
  }

  // With an unknown or missing tunnel type, the section is still checked, so every problem shows at once.
  const section = hasWireguard ? s.section('wireguard', WIREGUARD_EXPECTED) : undefined;
  const wireguard = section && readWireguard(section, vmPrivateKey);
  return type === 'wireguard' ? wireguard : undefined;
}

function readWireguard(s: JsonSection, vmPrivateKey: 'required' | 'optional'): WireguardTunnel | undefined {
  s.rejectUnknown(WIREGUARD_FIELDS);
  const privateKey =
    vmPrivateKey === 'required' ? s.required('private-key', secretKey('private key')) : s.optional('private-key', secretKey('private key'), ['']);
  const peerPublicKey = s.required('peer-public-key', publicKey);
  // Go writes an unset string as "" (unless omitempty), so "" means no preshared key.
  const presharedKey = s.optional('preshared-key', secretKey('preshared key'), ['']);
  const listenPort = s.required('listen-port', port);
  const persistentKeepalive = s.optional('persistent-keepalive', keepalive) ?? DEFAULT_PERSISTENT_KEEPALIVE;
  const mtu = s.required('mtu', wireguardMtu);
  const extraPodIps = s.list('extra-pod-ips', EXTRA_POD_IPS_EXPECTED, (item, path) => {
    const reading = ipPrefix({ unicast: true }).read(item);
    if (!reading.ok) s.problems.add(path, reading.problem);
    return reading.ok ? reading.value : undefined;
  });

  // WireGuard silently ignores a peer whose key is the device's own, which would leave a dead tunnel.
  if (privateKey && peerPublicKey?.equals(privateKey.publicKey())) {
    s.problems.add(
      s.path('peer-public-key'),
      "is the pod VM's own public key (it belongs to private-key): expected the worker's public key",
    );
    return undefined;
  }
  if ((vmPrivateKey === 'required' && !privateKey) || !peerPublicKey || listenPort === undefined || mtu === undefined || !extraPodIps) return undefined;
  return {
    type: 'wireguard',
    ...(privateKey !== undefined && { privateKey }),
    peerPublicKey,
    ...(presharedKey !== undefined && { presharedKey }),
    listenPort,
    persistentKeepalive,
    mtu,
    ...(extraPodIps.length > 0 && { extraPodIps }),
  };
}

/**
 * Rules of `extra-pod-ips` that span fields: each address is the pod's own (not link-local, which
 * every link has), appears once, and is not `podip` again; a few at most.
 */
function checkExtraPodIps(s: JsonSection, podIp: IpPrefix, extra: readonly IpPrefix[]): void {
  const path = `${s.path('wireguard')}.extra-pod-ips`;
  if (extra.length > MAX_EXTRA_POD_IPS) {
    s.problems.add(path, `has ${extra.length} addresses: expected ${EXTRA_POD_IPS_EXPECTED}`);
  }
  const seen = new Set([podIp.address]);
  extra.forEach((a, i) => {
    const at = `${path}[${i}]`;
    if (a.family === 6 && /^fe[89ab]/.test(a.address)) {
      s.problems.add(at, `${JSON.stringify(formatIpPrefix(a))} is link-local: expected the pod's own address (every link has a link-local one)`);
    } else if (seen.has(a.address)) {
      s.problems.add(at, `${JSON.stringify(formatIpPrefix(a))} repeats ${a.address === podIp.address ? 'podip' : 'an address before it'}: expected each pod address once`);
    }
    seen.add(a.address);
  });
}

function readRoute(item: unknown, path: string, problems: Problems): PodRoute | undefined {
  const s = JsonSection.open(item, { label: path, prefix: path }, ROUTE_EXPECTED, problems);
  if (!s) return undefined;
  const before = problems.list.length;
  const dst = s.optional('dst', ipPrefix({ network: true }), ['']);
  const gw = s.optional('gw', ipAddress, ['']);
  const dev = s.optional('dev', ifname, ['']);
  const protocol = s.optional('protocol', routeProtocol, [0, 'unspec']);
  const scope = s.optional('scope', oneOf<RouteScope | 'universe'>('route scope', ['universe', ...ROUTE_SCOPES]), ['universe']);
  if (problems.list.length > before) return undefined;

  const gwFamily = gw === undefined ? undefined : familyOf(gw);
  if (dst && gwFamily !== undefined && gwFamily !== dst.family) {
    problems.add(
      s.path('gw'),
      `${JSON.stringify(gw)} is IPv${gwFamily} but dst ${formatIpPrefix(dst)} is IPv${dst.family}: expected an IPv${dst.family} gateway`,
    );
    return undefined;
  }
  return {
    ...(dst !== undefined && { dst }),
    ...(gw !== undefined && { gw }),
    ...(dev !== undefined && { dev }),
    ...(protocol !== undefined && protocol !== 0 && { protocol }),
    ...(scope !== undefined && scope !== 'universe' && { scope }),
  };
}

function readNeighbor(item: unknown, path: string, problems: Problems): PodNeighbor | undefined {
  const s = JsonSection.open(item, { label: path, prefix: path }, NEIGHBOR_EXPECTED, problems);
  if (!s) return undefined;
  // CAA's NeighborAdd refuses an entry without any of these three.
  const ip = s.required('ip', ipAddress);
  const hwAddr = s.required('hw-addr', macAddress);
  const dev = s.required('dev', ifname);
  const state = s.optional('state', oneOf<NeighborState | 'none'>('neighbor state', ['none', ...NEIGHBOR_STATES]), ['none']);
  if (ip === undefined || hwAddr === undefined || dev === undefined) return undefined;
  return { ip, hwAddr, dev, ...(state !== undefined && state !== 'none' && { state }) };
}

function familyOf(address: string): IpFamily | undefined {
  const parsed = parseIpAddress(address);
  return typeof parsed === 'string' ? undefined : parsed.family;
}

/**
 * pod-network as CAA's Go writes it (same names, same order, "" for an unset address), plus our
 * wireguard section. Reveals the pod VM's keys: call it only to build apf.json.
 */
export function podNetworkToJson(p: PodNetwork): Record<string, unknown> {
  const t = p.tunnel;
  return {
    podip: formatIpPrefix(p.podIp),
    'pod-hw-addr': p.podHwAddr ?? '',
    interface: p.interfaceName,
    'worker-node-ip': p.workerNodeIp ? formatIpPrefix(p.workerNodeIp) : '',
    'tunnel-type': t.type,
    routes: p.routes.map(routeToJson),
    neighbors: p.neighbors.map((n) => ({
      ip: n.ip,
      'hw-addr': n.hwAddr,
      dev: n.dev,
      ...(n.state !== undefined && { state: n.state }),
    })),
    mtu: p.mtu,
    index: p.index,
    ...(t.type === 'vxlan' && t.port !== undefined && { 'vxlan-port': t.port }),
    ...(t.type === 'vxlan' && t.id !== undefined && { 'vxlan-id': t.id }),
    dedicated: p.dedicated,
    'external-net-via-pod-vm': p.externalNetViaPodVm,
    ...(t.type === 'wireguard' && { wireguard: wireguardToJson(t) }),
  };
}

function routeToJson(r: PodRoute): Record<string, unknown> {
  return {
    dst: r.dst ? formatIpPrefix(r.dst) : '',
    gw: r.gw ?? '',
    ...(r.dev !== undefined && { dev: r.dev }),
    ...(r.protocol !== undefined && { protocol: routeProtocolText(r.protocol) }),
    ...(r.scope !== undefined && { scope: r.scope }),
  };
}

/** Our section as it goes into pod-network. Reveals the pod VM's keys: only for apf.json. */
export function wireguardToJson(t: WireguardTunnel): Record<string, unknown> {
  return {
    ...(t.privateKey !== undefined && { 'private-key': t.privateKey.reveal() }),
    'peer-public-key': t.peerPublicKey.toBase64(),
    ...(t.presharedKey !== undefined && { 'preshared-key': t.presharedKey.reveal() }),
    'listen-port': t.listenPort,
    'persistent-keepalive': t.persistentKeepalive,
    mtu: t.mtu,
    ...(t.extraPodIps !== undefined && t.extraPodIps.length > 0 && { 'extra-pod-ips': t.extraPodIps.map(formatIpPrefix) }),
  };
}

/**
 * apf.json's fields that we model. Everything else CAA puts there (TLS material, sc-pp-prv, …) is
 * never read into an ApfDocument, so it cannot be echoed from one.
 */
export function apfDocumentToJson(d: ApfDocument): Record<string, unknown> {
  return {
    'pod-network': podNetworkToJson(d.podNetwork),
    'pod-namespace': d.podNamespace ?? '',
    'pod-name': d.podName ?? '',
  };
}
