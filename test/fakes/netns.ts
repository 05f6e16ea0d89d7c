// An in-memory netns layer for unit tests, no root: `FakeNetnsWorld` holds namespaces by path
// (`host` is the caller's own), and `FakeNetns` implements the product's `Netns` over it. It models
// links (veth pairs, wireguard, tun, vxlan, dummy, bridge: ifindex, MTU, MAC, up/down, moves between
// namespaces), addresses, routes (main and numbered tables, unicast/unreachable/blackhole), policy
// rules, neighbours (proxy too), sysctls, iptables/ip6tables, the tc ingress hook with the VXLAN
// mirror's one filter, and `exists()` (present, absent, or "could not check"). Reads print
// iproute2's JSON and come back through the product's own parsers, so they have exactly the real
// shapes. Writes go through the same argv the drivers send (`ip`, `ip -batch`, `tc`, `tc -batch`,
// `iptables -w 5`, `sysctl -q -w`, `cat /proc/sys/…`), interpreted here; a
// failure reads like the real tool's (same stderr, PeerpodError ENETNS naming op, netns, iface).
// Anything this file does not model is refused with PeerpodError EUNSUPPORTED naming the command,
// never faked as success. What the kernel does that this does not: GAPS in
// test/contract/netns.contract.ts. Deciding what to change is the drivers' job, not this file's.
import { PeerpodError } from '../../src/errors.js';
import {
  defaultRouteMtuOf,
  ipv6UnavailableIn,
  missingLink,
  parseAddresses,
  parseLinks,
  parseRoutes,
  ipBatch,
  readSysctlIn,
  sysctlPath,
  type Address,
  type Link,
  type Neighbour,
  type Netns,
  type NetnsFactory,
  type RawAddresses,
  type RawLink,
  type RawRoute,
  type Route,
  type Rule,
  writeSysctlsIn,
} from '../../src/netns/netns.js';
import { ROUTE_PROTOCOL_NAMES } from '../../src/podnetwork/types.js';
import { formatIpAddress, maxPrefixLength, networkAddress, parseIpAddress, type IpAddress, type IpFamily } from '../../src/ip.js';

export type FakeLinkKind = 'veth' | 'wireguard' | 'tun' | 'vxlan' | 'dummy' | 'bridge';
type Kind = FakeLinkKind | 'loopback';

interface FakeAddress {
  family: IpFamily;
  address: IpAddress;
  prefixlen: number;
  scope: string;
  nodad: boolean;
}

interface FakeLink {
  ifindex: number;
  name: string;
  kind: Kind;
  mtu: number;
  up: boolean;
  mac?: string;
  ns: NsState;
  peer?: FakeLink;
  vxlan?: { id: number; remote: string; port: number; learning: boolean };
  addresses: FakeAddress[];
  /** The qdisc on the ingress hook (ffff:), if any. */
  ingress?: 'ingress' | 'clsact';
  /** u32 match-all filters on the ingress hook that redirect every frame out of another device. */
  mirrors: { pref: number; to: FakeLink }[];
  /** Per-device sysctls: "ipv4.conf.rp_filter" → "0". */
  sysctls: Map<string, string>;
}

type RouteType = 'unicast' | 'unreachable' | 'blackhole' | 'prohibit';

interface FakeRoute {
  family: IpFamily;
  table: string;
  type: RouteType;
  dst: Prefix;
  gateway?: string;
  dev?: FakeLink;
  protocol?: string;
  scope?: string;
  metric: number;
  onlink?: boolean;
  /** The prefix route of an address (IPv6 shows it only while the device is up). */
  ofAddress?: FakeAddress;
}

interface FakeRule {
  priority: number;
  src?: Prefix;
  dst?: Prefix;
  iif?: string;
  fwmark?: string;
  table: string;
}

interface FakeNeighbour {
  dst: string;
  dev: FakeLink;
  proxy: boolean;
  lladdr?: string;
  state?: string;
}

interface Chain {
  builtin: boolean;
  rules: string[][];
}

interface NsState {
  path: string | null;
  links: Map<string, FakeLink>;
  routes: FakeRoute[];
  /** Tables that ever held a route, per family: iproute2 says "FIB table does not exist" of the others. */
  tables: Record<IpFamily, Set<string>>;
  rules: Record<IpFamily, FakeRule[]>;
  neighbours: FakeNeighbour[];
  sysctls: Map<string, string>;
  iptables: Record<IpFamily, Map<string, Map<string, Chain>>>;
}

interface Prefix {
  address: IpAddress;
  len: number;
}

/** A command failed the way the real tool fails: its stderr and exit code. */
class ToolError extends Error {
  constructor(
    readonly stderr: string,
    readonly exitCode: number,
  ) {
    super(stderr);
  }
}

/** How `exists()` of a path answers when a test says it cannot be checked. */
export type ExistsFault = 'timeout' | 'error';

export interface FailNextOptions {
  /** Only an operation in this netns (path, or null for host); any netns when absent. */
  netns?: string | null;
  /** Only a command whose argv (joined with spaces) contains this text or matches this pattern. */
  match?: string | RegExp;
}

export interface AddLinkOptions {
  kind: FakeLinkKind;
  mtu?: number;
  up?: boolean;
  /** The other end of a veth pair, made in the same netns. */
  peer?: string;
  vxlan?: { id: number; remote: string; port: number; learning?: boolean };
}

const DEFAULT_MTU: Record<Kind, number> = {
  loopback: 65536,
  veth: 1500,
  wireguard: 1420,
  tun: 1500,
  vxlan: 1500,
  dummy: 1500,
  bridge: 1500,
};

// Sysctls we model, with the kernel's defaults in a new netns (measured on 6.1).
const IPV4_CONF: Record<string, string> = { rp_filter: '0', accept_local: '0', forwarding: '0', proxy_arp: '0' };
const IPV4_NEIGH: Record<string, string> = { proxy_delay: '80' };
const IPV6_CONF: Record<string, string> = {
  disable_ipv6: '0',
  forwarding: '0',
  addr_gen_mode: '0',
  accept_ra: '1',
  dad_transmits: '1',
  router_solicitations: '-1',
};

const IPTABLES_CHAINS: Record<string, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** Options of the matches and targets we model, with how many values each takes. */
const MATCH_OPTIONS: Record<string, Record<string, number>> = {
  comment: { '--comment': 1 },
  udp: { '--dport': 1, '--sport': 1 },
  tcp: { '--dport': 1, '--sport': 1, '--tcp-flags': 2 },
  icmp6: { '--icmpv6-type': 1 },
  mark: { '--mark': 1 },
};
const TARGET_OPTIONS: Record<string, Record<string, number>> = {
  ACCEPT: {},
  DROP: {},
  RETURN: {},
  NOTRACK: {},
  TCPMSS: { '--clamp-mss-to-pmtu': 0, '--set-mss': 1 },
  MARK: { '--set-mark': 1, '--set-xmark': 1 },
};

const SCOPE_ORDER = ['global', 'link', 'host'];
const TABLE_NAMES: Record<string, string> = { '255': 'local', '254': 'main', '253': 'default' };

export class FakeNetnsWorld {
  readonly host: FakeNetns;
  /** Every command run in any netns, in order: what a driver test can assert on. */
  readonly log: { netns: string; argv: string[] }[] = [];
  readonly #spaces = new Map<string | null, NsState>();
  readonly #existsFaults = new Map<string, ExistsFault>();
  readonly #faults: FailNextOptions[] = [];
  readonly #ipv6: boolean;
  #nextIfindex = 2;
  #nextMac = 1;

  /** `ipv6: false` is a kernel booted with ipv6.disable=1: no net.ipv6 sysctls, no ip6tables. */
  constructor(opts: { ipv6?: boolean } = {}) {
    this.#ipv6 = opts.ipv6 ?? true;
    this.#spaces.set(null, this.#newSpace(null));
    this.host = new FakeNetns(this, null);
  }

  /** Make a namespace (as `ip netns add`), with its loopback down. */
  addNetns(path: string): FakeNetns {
    if (this.#spaces.has(path)) throw new Error(`FakeNetnsWorld: netns ${path} exists already`);
    this.#spaces.set(path, this.#newSpace(path));
    return this.at(path);
  }

  /** Remove a namespace (as `ip netns del` of its last user): its devices go, and a veth's peer with them. */
  deleteNetns(path: string): void {
    const space = this.#spaces.get(path);
    if (space === undefined) throw new Error(`FakeNetnsWorld: no netns ${path}`);
    for (const l of [...space.links.values()]) this.destroyLink(l);
    this.#spaces.delete(path);
  }

  /** A handle on a namespace, present or not (like IprouteNetns, it does not check). */
  at(path: string | null): FakeNetns {
    return path === null ? this.host : new FakeNetns(this, path);
  }

  factory(): NetnsFactory {
    return { host: () => this.host, at: (p) => this.at(p) };
  }

  /** Make `exists()` of `path` fail with "could not check" (a timeout or another failure); null undoes it. */
  existsFails(path: string, how: ExistsFault | null): void {
    if (how === null) this.#existsFaults.delete(path);
    else this.#existsFaults.set(path, how);
  }

  /** The next operation that matches fails with PeerpodError ENETNS, as a failing tool would. */
  failNext(opts: FailNextOptions = {}): void {
    this.#faults.push(opts);
  }

  /** Make a link as a WireGuard backend or a CNI would (not through `ip`); returns its ifindex. */
  addLink(netns: string | null, name: string, opts: AddLinkOptions): number {
    const space = this.space(netns);
    if (space === undefined) throw new Error(`FakeNetnsWorld: no netns ${netns ?? 'host'}`);
    if ((opts.kind === 'veth') !== (opts.peer !== undefined)) throw new Error('FakeNetnsWorld.addLink: a veth, and only a veth, has a peer');
    for (const n of [name, opts.peer]) {
      if (n !== undefined && space.links.has(n)) throw new Error(`FakeNetnsWorld.addLink: ${n} exists in netns ${netns ?? 'host'}`);
    }
    // The kernel makes a veth's peer first: it gets the lower ifindex.
    const peer = opts.peer === undefined ? undefined : this.createLink(space, opts.peer, 'veth', opts.mtu);
    const l = this.createLink(space, name, opts.kind, opts.mtu);
    if (peer !== undefined) {
      l.peer = peer;
      peer.peer = l;
    }
    if (opts.vxlan !== undefined) l.vxlan = { learning: true, ...opts.vxlan };
    l.up = opts.up ?? false;
    return l.ifindex;
  }

  /** @internal */
  space(path: string | null): NsState | undefined {
    return this.#spaces.get(path);
  }

  /** @internal */
  existsFault(path: string): ExistsFault | undefined {
    return this.#existsFaults.get(path);
  }

  /** @internal The first pending fault that this command in this netns matches, taken off the list. */
  takeFault(path: string | null, argv: readonly string[]): boolean {
    const line = argv.join(' ');
    const i = this.#faults.findIndex(
      (f) =>
        (f.netns === undefined || f.netns === path) &&
        (f.match === undefined || (typeof f.match === 'string' ? line.includes(f.match) : f.match.test(line))),
    );
    if (i < 0) return false;
    this.#faults.splice(i, 1);
    return true;
  }

  /** @internal */
  get ipv6(): boolean {
    return this.#ipv6;
  }

  /** @internal */
  createLink(space: NsState, name: string, kind: Kind, mtu?: number): FakeLink {
    if (space.links.has(name)) throw new ToolError('RTNETLINK answers: File exists', 2);
    const l: FakeLink = {
      ifindex: kind === 'loopback' ? 1 : this.#nextIfindex++,
      name,
      kind,
      mtu: mtu ?? DEFAULT_MTU[kind],
      up: false,
      ns: space,
      addresses: [],
      mirrors: [],
      sysctls: new Map(),
    };
    if (kind !== 'wireguard' && kind !== 'tun') l.mac = kind === 'loopback' ? '00:00:00:00:00:00' : this.#mac();
    this.#enter(l, space);
    return l;
  }

  /** @internal Delete a link; a veth takes its peer along. */
  destroyLink(l: FakeLink): void {
    this.#leave(l);
    if (l.peer !== undefined) this.#leave(l.peer);
  }

  /** @internal Move a link to another netns, as the kernel does: down, no addresses, routes or neighbours, per-device sysctls of the new netns. */
  moveLink(l: FakeLink, to: NsState, name: string): void {
    if (to.links.has(name)) throw new ToolError('RTNETLINK answers: File exists', 2);
    this.#leave(l);
    l.name = name;
    l.up = false;
    l.addresses = [];
    delete l.ingress;
    l.mirrors = [];
    this.#enter(l, to);
  }

  #enter(l: FakeLink, space: NsState): void {
    l.ns = space;
    space.links.set(l.name, l);
    l.sysctls = new Map();
    for (const [k, v] of space.sysctls) {
      const m = /^net\.(ipv4\.conf|ipv6\.conf)\.default\.(.+)$/.exec(k);
      if (m !== null) l.sysctls.set(`${m[1]}.${m[2]}`, v);
    }
    for (const [k, v] of Object.entries(IPV4_NEIGH)) l.sysctls.set(`ipv4.neigh.${k}`, v);
  }

  #leave(l: FakeLink): void {
    const space = l.ns;
    if (space.links.get(l.name) === l) space.links.delete(l.name);
    space.routes = space.routes.filter((r) => r.dev !== l);
    space.neighbours = space.neighbours.filter((n) => n.dev !== l);
  }

  #mac(): string {
    const n = this.#nextMac++;
    return `02:fa:4e:${((n >> 16) & 0xff).toString(16).padStart(2, '0')}:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
  }

  #newSpace(path: string | null): NsState {
    const space: NsState = {
      path,
      links: new Map(),
      routes: [],
      tables: { 4: new Set(['main', 'local']), 6: new Set(['main', 'local']) },
      rules: {
        4: [
          { priority: 0, table: 'local' },
          { priority: 32766, table: 'main' },
          { priority: 32767, table: 'default' },
        ],
        6: [
          { priority: 0, table: 'local' },
          { priority: 32766, table: 'main' },
        ],
      },
      neighbours: [],
      sysctls: new Map([['net.ipv4.ip_forward', '0']]),
      iptables: { 4: newIptables(), 6: newIptables() },
    };
    for (const scope of ['all', 'default']) {
      for (const [k, v] of Object.entries(IPV4_CONF)) space.sysctls.set(`net.ipv4.conf.${scope}.${k}`, v);
      if (this.#ipv6) for (const [k, v] of Object.entries(IPV6_CONF)) space.sysctls.set(`net.ipv6.conf.${scope}.${k}`, v);
    }
    this.createLink(space, 'lo', 'loopback');
    return space;
  }
}

function newIptables(): Map<string, Map<string, Chain>> {
  return new Map(
    Object.entries(IPTABLES_CHAINS).map(([table, chains]) => [
      table,
      new Map(chains.map((c) => [c, { builtin: true, rules: [] }])),
    ]),
  );
}

export class FakeNetns implements Netns {
  readonly path: string | null;
  readonly #world: FakeNetnsWorld;

  constructor(world: FakeNetnsWorld, path: string | null) {
    this.#world = world;
    this.path = path;
  }

  get label(): string {
    return this.path ?? 'host';
  }

  async run(argv: readonly string[], op: string, iface?: string, input?: string): Promise<string> {
    return this.#do(argv, op, iface, (space) => this.#command(space, argv, input));
  }

  async ip(args: readonly string[], op: string, iface?: string): Promise<string> {
    return this.run(['ip', ...args], op, iface);
  }

  async batch(commands: readonly (readonly string[])[], op: string, iface?: string, family?: 4 | 6): Promise<void> {
    return ipBatch(this, commands, op, iface, family);
  }

  async exists(): Promise<boolean> {
    if (this.path === null) return true;
    const fault = this.#world.existsFault(this.path);
    if (fault !== undefined) {
      const cause = new PeerpodError('EEXEC', fault === 'timeout' ? 'nsenter timed out' : 'cannot run nsenter', {
        op: 'exec',
        cmd: `nsenter --net=${this.path} -- true`,
      });
      throw new PeerpodError('ENETNS', `cannot tell whether netns ${this.path} exists`, { op: 'netns-exists', netns: this.path }, cause);
    }
    return this.#world.space(this.path) !== undefined;
  }

  async links(): Promise<Link[]> {
    return parseLinks(JSON.parse(await this.ip(['-details', '-json', 'link', 'show'], 'list links')) as RawLink[]);
  }

  async link(name: string): Promise<Link | null> {
    return (await this.links()).find((l) => l.ifname === name) ?? null;
  }

  async requireLink(name: string, op: string): Promise<Link> {
    return (await this.link(name)) ?? missingLink(this, name, op);
  }

  async addresses(ifname?: string): Promise<Address[]> {
    const args = ['-json', 'address', 'show', ...(ifname === undefined ? [] : ['dev', ifname])];
    return parseAddresses(JSON.parse(await this.ip(args, 'list addresses', ifname)) as RawAddresses[]);
  }

  async routes(opts: { family?: 4 | 6; table?: string } = {}): Promise<Route[]> {
    const args = [`-${opts.family ?? 4}`, '-json', 'route', 'show', 'table', opts.table ?? 'main'];
    const out = await this.ip(args, 'list routes').catch((e: unknown) => {
      // As IprouteNetns: a table that never held a route reads as empty.
      if (e instanceof PeerpodError && e.code === 'ENETNS' && /FIB table does not exist/.test(e.message)) return '[]';
      throw e;
    });
    return parseRoutes(JSON.parse(out) as RawRoute[]);
  }

  async defaultRouteMtu(fallback = 1500): Promise<number> {
    return defaultRouteMtuOf(this, fallback);
  }

  async rules(family: 4 | 6 = 4): Promise<Rule[]> {
    return JSON.parse(await this.ip([`-${family}`, '-json', 'rule', 'show'], 'list rules')) as Rule[];
  }

  async neighbours(opts: { proxy?: boolean } = {}): Promise<Neighbour[]> {
    const args = ['-json', 'neighbour', 'show', ...(opts.proxy ? ['proxy'] : [])];
    return JSON.parse(await this.ip(args, 'list neighbours')) as Neighbour[];
  }

  async readSysctl(key: string): Promise<string> {
    return readSysctlIn(this, key);
  }

  async writeSysctls(values: Readonly<Record<string, string | number>>, iface?: string): Promise<void> {
    return writeSysctlsIn(this, values, iface);
  }

  async iptables(args: readonly string[], op: string, iface?: string, family: 4 | 6 = 4): Promise<string> {
    return this.run([family === 4 ? 'iptables' : 'ip6tables', '-w', '5', ...args], op, iface);
  }

  async hasIptablesRule(table: string, chain: string, rule: readonly string[], family: 4 | 6 = 4): Promise<boolean> {
    return this.iptables(['-t', table, '-C', chain, ...rule], 'check iptables rule', undefined, family).then(
      () => true,
      (e: unknown) => {
        // The real one says false for every failure; an unmodelled rule is a test bug, not "absent".
        if (e instanceof PeerpodError && e.code === 'EUNSUPPORTED') throw e;
        return false;
      },
    );
  }

  async ipv6Unavailable(): Promise<string | null> {
    return ipv6UnavailableIn(this);
  }

  /**
   * Everything in this netns, read the way the drivers read it (links without their ifindex, every
   * routing table that ever held a route, rules, neighbours, iptables of both families, the ingress
   * hooks): for "teardown leaves the netns as setup found it" assertions. Not part of Netns.
   */
  async snapshot(): Promise<Record<string, unknown>> {
    const space = this.#world.space(this.path);
    if (space === undefined) throw new Error(`FakeNetns.snapshot: no netns ${this.label}`);
    const out: Record<string, unknown> = {
      links: (await this.links()).map(({ ifindex: _i, ...l }) => l),
      addresses: await this.addresses(),
      rules4: await this.rules(4),
      rules6: await this.rules(6),
      neighbours: await this.neighbours(),
      proxies: await this.neighbours({ proxy: true }),
      ingress: [...space.links.values()].filter((l) => l.ingress !== undefined).map((l) => `${l.name}: ${l.ingress ?? ''} ${l.mirrors.map((m) => m.to.name).join(',')}`),
    };
    for (const family of [4, 6] as const) {
      for (const table of [...space.tables[family]].filter((t) => t !== 'local').sort()) {
        const routes = await this.routes({ family, table });
        if (routes.length > 0) out[`routes${family} ${table}`] = routes;
      }
      if (family === 6 && !this.#world.ipv6) continue;
      for (const table of Object.keys(IPTABLES_CHAINS)) {
        out[`${family === 4 ? 'iptables' : 'ip6tables'} ${table}`] = await this.iptables(['-t', table, '-S'], 'snapshot', undefined, family);
      }
    }
    return out;
  }

  /** Run one command against the world: the netns must exist, an injected fault fires, tool failures become ENETNS. */
  async #do<T>(argv: readonly string[], op: string, iface: string | undefined, fn: (space: NsState) => T): Promise<T> {
    await Promise.resolve();
    this.#world.log.push({ netns: this.label, argv: [...argv] });
    const fail = (detail: string, exitCode: number, cause?: unknown): never => {
      // Inside another netns the command runs under nsenter, whose exit the real error reports.
      const cmd = this.path === null ? (argv[0] ?? '') : 'nsenter';
      const exec = new PeerpodError('EEXEC', `${cmd} exited with code ${exitCode}: ${detail}`, { op: 'exec', cmd: argv.join(' '), exitCode }, cause);
      throw new PeerpodError('ENETNS', `${op} failed: ${exec.message}`, { op, netns: this.label, iface }, exec);
    };
    const space = this.#world.space(this.path);
    if (space === undefined) return fail(`nsenter: cannot open ${this.path ?? ''}: No such file or directory`, 1);
    if (this.#world.takeFault(this.path, argv)) return fail('injected fault (FakeNetnsWorld.failNext)', 1);
    try {
      return fn(space);
    } catch (e) {
      if (e instanceof ToolError) return fail(e.stderr, e.exitCode);
      throw e;
    }
  }

  #refuse(argv: readonly string[], why: string): never {
    throw new PeerpodError('EUNSUPPORTED', `FakeNetns does not model \`${argv.join(' ')}\`: ${why}`, {
      op: 'fake-netns',
      netns: this.label,
      cmd: argv.join(' '),
    });
  }

  #command(space: NsState, argv: readonly string[], input: string | undefined): string {
    const [cmd, ...args] = argv;
    switch (cmd) {
      case 'ip':
        return this.#ipTool(space, args, input, argv);
      case 'iptables':
      case 'ip6tables': {
        const rest = args[0] === '-w' ? args.slice(2) : args;
        return this.#iptablesTool(space, cmd === 'iptables' ? 4 : 6, rest, argv);
      }
      case 'sysctl':
        if (args[0] !== '-q' || args[1] !== '-w') return this.#refuse(argv, 'only `sysctl -q -w key=value…` is modelled');
        return this.#sysctlWrite(space, args.slice(2), argv);
      case 'tc':
        return this.#tcTool(space, args, input, argv);
      case 'cat': {
        const path = args[0];
        if (args.length !== 1 || path === undefined || !path.startsWith('/proc/sys/')) return this.#refuse(argv, 'only `cat /proc/sys/…` is modelled');
        return this.#sysctlRead(space, path.slice('/proc/sys/'.length).replaceAll('/', '.'), argv) + '\n';
      }
      default:
        return this.#refuse(argv, `${cmd ?? 'an empty command'} is not modelled (ip, tc, iptables, ip6tables, sysctl and cat /proc/sys are)`);
    }
  }

  // ---- ip ----

  #ipTool(space: NsState, args: readonly string[], input: string | undefined, argv: readonly string[]): string {
    let family: IpFamily | undefined;
    let json = false;
    let details = false;
    let i = 0;
    for (; i < args.length; i++) {
      const a = args[i];
      if (a === '-4' || a === '-6') family = a === '-4' ? 4 : 6;
      else if (a === '-json' || a === '-j') json = true;
      else if (a === '-details' || a === '-d') details = true;
      else break;
    }
    const rest = args.slice(i);
    if (rest[0] === '-batch') {
      if (rest[1] !== '-' || rest.length !== 2 || input === undefined) return this.#refuse(argv, 'only `ip -batch -` with input is modelled');
      const lines = input.split('\n').filter((l) => l.trim() !== '');
      lines.forEach((line, n) => {
        try {
          this.#ipCommand(space, line.trim().split(/\s+/), { family, json: false, details: false }, argv);
        } catch (e) {
          if (e instanceof ToolError) throw new ToolError(`${e.stderr}\nCommand failed -:${n + 1}`, 1);
          throw e;
        }
      });
      return '';
    }
    return this.#ipCommand(space, rest, { family, json, details }, argv);
  }

  #ipCommand(
    space: NsState,
    words: readonly string[],
    { family, json, details }: { family: IpFamily | undefined; json: boolean; details: boolean },
    argv: readonly string[],
  ): string {
    const [object, verb, ...rest] = words;
    const show = verb === 'show' || verb === 'list';
    if (show && !json) return this.#refuse(argv, 'the fake prints only -json');
    switch (object) {
      case 'link':
        if (show) return JSON.stringify(this.#showLinks(space, rest, argv).map((l) => rawLink(l, details)));
        return this.#linkCommand(space, verb, rest, argv);
      case 'address':
      case 'addr':
        if (show) return JSON.stringify(this.#showAddresses(space, rest, argv));
        return this.#addressCommand(space, verb, rest, argv);
      case 'route':
        if (show) return JSON.stringify(this.#showRoutes(space, family ?? 4, rest, argv));
        return this.#routeCommand(space, verb, rest, family, argv);
      case 'rule':
        if (show && rest.length === 0) return JSON.stringify(this.#showRules(space, family ?? 4));
        return this.#ruleCommand(space, verb, rest, family ?? 4, argv);
      case 'neighbour':
      case 'neigh':
        if (show) return JSON.stringify(this.#showNeighbours(space, rest, argv));
        return this.#neighbourCommand(space, verb, rest, argv);
      default:
        return this.#refuse(argv, `ip ${object ?? ''} is not modelled`);
    }
  }

  #dev(space: NsState, name: string | undefined): FakeLink {
    const l = name === undefined ? undefined : space.links.get(name);
    if (l === undefined) throw new ToolError(`Cannot find device "${name ?? ''}"`, 1);
    return l;
  }

  #linkCommand(space: NsState, verb: string | undefined, args: readonly string[], argv: readonly string[]): string {
    const words = [...args];
    if (verb === 'del' || verb === 'delete') {
      if (words[0] === 'dev') words.shift();
      if (words.length !== 1) return this.#refuse(argv, 'only `link del [dev] NAME`');
      this.#world.destroyLink(this.#dev(space, words[0]));
      return '';
    }
    if (verb === 'add') {
      return this.#linkAdd(space, words, argv);
    }
    if (verb !== 'set') return this.#refuse(argv, `ip link ${verb ?? ''} is not modelled`);
    if (words[0] === 'dev') words.shift();
    const l = this.#dev(space, words.shift());
    while (words.length > 0) {
      const w = words.shift();
      const value = (): string => words.shift() ?? this.#refuse(argv, `${w ?? ''} needs a value`);
      if (w === 'up' || w === 'down') l.up = w === 'up';
      else if (w === 'mtu') l.mtu = intOf(value(), argv, this);
      else if (w === 'address') {
        if (l.mac === undefined) throw new ToolError('RTNETLINK answers: Operation not supported', 2);
        l.mac = value().toLowerCase();
      } else if (w === 'name') {
        const name = value();
        if (space.links.has(name)) throw new ToolError('RTNETLINK answers: File exists', 2);
        space.links.delete(l.name);
        l.name = name;
        space.links.set(name, l);
      } else if (w === 'netns') {
        const target = value();
        if (/^\d+$/.test(target)) return this.#refuse(argv, 'a netns given by PID');
        const path = target.includes('/') ? target : `/run/netns/${target}`;
        const to = this.#world.space(path);
        if (to === undefined) throw new ToolError(`Cannot open network namespace "${target}": No such file or directory`, 1);
        let name = l.name;
        if (words[0] === 'name') {
          words.shift();
          name = value();
        }
        this.#world.moveLink(l, to, name);
      } else return this.#refuse(argv, `ip link set … ${w ?? ''} is not modelled`);
    }
    return '';
  }

  #linkAdd(space: NsState, words: string[], argv: readonly string[]): string {
    if (words[0] === 'name') words.shift();
    const name = words.shift();
    if (name === undefined) return this.#refuse(argv, 'ip link add needs a name');
    let mtu: number | undefined;
    let kind: FakeLinkKind | undefined;
    let peer: string | undefined;
    let vxlan: { id: number; remote: string; port: number; learning: boolean } | undefined;
    while (words.length > 0) {
      const w = words.shift();
      const value = (): string => words.shift() ?? this.#refuse(argv, `${w ?? ''} needs a value`);
      if (w === 'mtu') mtu = intOf(value(), argv, this);
      else if (w === 'type') {
        const k = value();
        if (!['veth', 'wireguard', 'tun', 'vxlan', 'dummy', 'bridge'].includes(k)) return this.#refuse(argv, `link type ${k}`);
        kind = k as FakeLinkKind;
        if (kind === 'vxlan') vxlan = { id: 0, remote: '', port: 0, learning: true };
      } else if (kind === 'veth' && w === 'peer') {
        if (words.shift() !== 'name') return this.#refuse(argv, 'only `peer name NAME`');
        peer = value();
      } else if (vxlan !== undefined && w === 'id') vxlan.id = intOf(value(), argv, this);
      else if (vxlan !== undefined && w === 'remote') vxlan.remote = value();
      else if (vxlan !== undefined && w === 'dstport') vxlan.port = intOf(value(), argv, this);
      else if (vxlan !== undefined && (w === 'nolearning' || w === 'learning')) vxlan.learning = w === 'learning';
      else return this.#refuse(argv, `ip link add … ${w ?? ''} is not modelled`);
    }
    if (kind === undefined) return this.#refuse(argv, 'ip link add needs a type');
    if (kind === 'veth' && peer === undefined) return this.#refuse(argv, 'a veth needs `peer name NAME` here');
    if (space.links.has(name) || (peer !== undefined && space.links.has(peer))) throw new ToolError('RTNETLINK answers: File exists', 2);
    const p = peer === undefined ? undefined : this.#world.createLink(space, peer, 'veth', mtu);
    const l = this.#world.createLink(space, name, kind, mtu);
    if (vxlan !== undefined) l.vxlan = vxlan;
    if (p !== undefined) {
      l.peer = p;
      p.peer = l;
    }
    return '';
  }

  #showLinks(space: NsState, args: readonly string[], argv: readonly string[]): FakeLink[] {
    let links = [...space.links.values()];
    const words = [...args];
    while (words.length > 0) {
      const w = words.shift();
      if (w === 'dev') {
        const name = words.shift();
        const l = space.links.get(name ?? '');
        if (l === undefined) throw new ToolError(`Device "${name ?? ''}" does not exist.`, 1);
        links = [l];
      } else if (w === 'type') {
        const t = words.shift();
        links = links.filter((l) => l.kind === t);
      } else return this.#refuse(argv, `ip link show … ${w ?? ''} is not modelled`);
    }
    return links.sort((a, b) => a.ifindex - b.ifindex);
  }

  #addressCommand(space: NsState, verb: string | undefined, args: readonly string[], argv: readonly string[]): string {
    if (verb !== 'add' && verb !== 'replace' && verb !== 'del' && verb !== 'delete') return this.#refuse(argv, `ip address ${verb ?? ''}`);
    const [text, devWord, devName, ...flags] = args;
    if (devWord !== 'dev' || flags.some((f) => f !== 'nodad')) return this.#refuse(argv, 'only `address add|replace|del PREFIX dev NAME [nodad]`');
    const p = prefixOf(text ?? '', undefined);
    if (p === undefined) throw new ToolError(`Error: any valid prefix is expected rather than "${text ?? ''}".`, 1);
    const l = this.#dev(space, devName);
    const same = (a: FakeAddress) => sameIp(a.address, p.address) && a.prefixlen === p.len;
    const i = l.addresses.findIndex(same);
    if (verb === 'del' || verb === 'delete') {
      if (i < 0) throw new ToolError('RTNETLINK answers: Cannot assign requested address', 2);
      const [gone] = l.addresses.splice(i, 1);
      space.routes = space.routes.filter((r) => r.ofAddress === undefined || r.ofAddress !== gone);
      return '';
    }
    if (i >= 0) {
      if (verb === 'add') throw new ToolError('RTNETLINK answers: File exists', 2);
      return '';
    }
    const family = p.address.family;
    if (family === 6 && l.sysctls.get('ipv6.conf.disable_ipv6') === '1') throw new ToolError('RTNETLINK answers: Permission denied', 2);
    const a: FakeAddress = { family, address: p.address, prefixlen: p.len, scope: scopeOfAddress(p.address), nodad: flags.includes('nodad') };
    l.addresses.push(a);
    // IPv4 makes none for a /32; IPv6 makes one for every prefix, a /128 included.
    if ((family === 6 || a.prefixlen < 32) && a.scope === 'global') {
      const r: FakeRoute = {
        family,
        table: 'main',
        type: 'unicast',
        dst: { address: networkAddress(a.address, a.prefixlen), len: a.prefixlen },
        dev: l,
        protocol: 'kernel',
        metric: family === 6 ? 256 : 0,
        ofAddress: a,
      };
      if (family === 4) r.scope = 'link';
      space.routes.push(r);
    }
    return '';
  }

  #showAddresses(space: NsState, args: readonly string[], argv: readonly string[]): RawAddresses[] {
    let links = [...space.links.values()].sort((a, b) => a.ifindex - b.ifindex);
    if (args.length > 0) {
      if (args[0] !== 'dev' || args.length !== 2) return this.#refuse(argv, 'only `address show [dev NAME]`');
      const l = space.links.get(args[1] ?? '');
      if (l === undefined) throw new ToolError(`Device "${args[1] ?? ''}" does not exist.`, 1);
      links = [l];
    }
    return links.map((l) => ({
      ifname: l.name,
      // IPv4 in the order added; IPv6 newest first, global before link-local (the kernel's lists).
      addr_info: [
        ...l.addresses.filter((a) => a.family === 4),
        ...l.addresses.filter((a) => a.family === 6).reverse().sort((a, b) => SCOPE_ORDER.indexOf(a.scope) - SCOPE_ORDER.indexOf(b.scope)),
      ].map((a) => ({
        family: a.family === 4 ? 'inet' : 'inet6',
        local: formatIpAddress(a.address),
        prefixlen: a.prefixlen,
        scope: a.scope,
      })),
    }));
  }

  #routeCommand(space: NsState, verb: string | undefined, args: readonly string[], family: IpFamily | undefined, argv: readonly string[]): string {
    if (verb === 'flush') {
      if (args[0] !== 'table' || args.length !== 2) return this.#refuse(argv, 'only `route flush table T`');
      const table = tableName(args[1] ?? '');
      const fams: IpFamily[] = family === undefined ? [4, 6] : [family];
      space.routes = space.routes.filter((r) => !(r.table === table && fams.includes(r.family)));
      return '';
    }
    if (verb !== 'add' && verb !== 'replace' && verb !== 'del' && verb !== 'delete') return this.#refuse(argv, `ip route ${verb ?? ''}`);
    const words = [...args];
    let type: RouteType = 'unicast';
    if (words[0] === 'unreachable' || words[0] === 'blackhole' || words[0] === 'prohibit' || words[0] === 'unicast') {
      type = words.shift() as RouteType;
    }
    const dstText = words.shift() ?? '';
    const r: Partial<FakeRoute> & { onlink?: boolean } = { type };
    let metric: number | undefined;
    let table = 'main';
    while (words.length > 0) {
      const w = words.shift();
      const value = (): string => words.shift() ?? this.#refuse(argv, `${w ?? ''} needs a value`);
      if (w === 'via') r.gateway = value();
      else if (w === 'dev') r.dev = this.#dev(space, value());
      else if (w === 'proto' || w === 'protocol') {
        // iproute2 prints a protocol by its name when it has one ("proto 2" reads back as kernel).
        const v = value();
        r.protocol = /^\d+$/.test(v) ? (ROUTE_PROTOCOL_NAMES.get(Number(v)) ?? v) : v;
      }
      else if (w === 'scope') r.scope = value();
      else if (w === 'table') table = tableName(value());
      else if (w === 'metric' || w === 'priority' || w === 'preference') metric = intOf(value(), argv, this);
      else if (w === 'onlink') r.onlink = true;
      else return this.#refuse(argv, `ip route … ${w ?? ''} is not modelled`);
    }
    const fam: IpFamily = family ?? (dstText.includes(':') || (r.gateway ?? '').includes(':') ? 6 : 4);
    const dst = dstText === 'default' ? { address: zero(fam), len: 0 } : prefixOf(dstText, fam);
    if (dst === undefined || dst.address.family !== fam) throw new ToolError(`Error: inet${fam === 6 ? '6' : ''} prefix is expected rather than "${dstText}".`, 1);
    if (fam === 4 && !sameIp(networkAddress(dst.address, dst.len), dst.address)) throw new ToolError('Error: Invalid prefix for given prefix length.', 2);
    dst.address = networkAddress(dst.address, dst.len);
    const m = metric ?? (fam === 6 ? 1024 : 0);
    const matches = (x: FakeRoute) =>
      x.family === fam && x.table === table && sameIp(x.dst.address, dst.address) && x.dst.len === dst.len && x.metric === m;
    const existing = space.routes.findIndex(matches);
    if (verb === 'del' || verb === 'delete') {
      const i = space.routes.findIndex(
        (x) =>
          x.family === fam && x.table === table && sameIp(x.dst.address, dst.address) && x.dst.len === dst.len &&
          (metric === undefined || x.metric === m) && (r.dev === undefined || x.dev === r.dev),
      );
      if (i < 0) throw new ToolError('RTNETLINK answers: No such process', 2);
      space.routes.splice(i, 1);
      return '';
    }
    if (type === 'unicast' && r.dev === undefined) return this.#refuse(argv, 'a unicast route needs `dev` here');
    if (r.gateway !== undefined && r.dev !== undefined && r.onlink !== true && !onLink(r.dev, r.gateway)) {
      throw new ToolError('Error: Nexthop has invalid gateway.', 2);
    }
    if (existing >= 0 && verb === 'add') throw new ToolError('RTNETLINK answers: File exists', 2);
    const route: FakeRoute = { family: fam, table, type, dst, metric: m };
    if (r.gateway !== undefined) route.gateway = r.gateway;
    if (r.dev !== undefined) route.dev = r.dev;
    if (r.protocol !== undefined) route.protocol = r.protocol;
    if (r.onlink === true) route.onlink = true;
    if (r.scope !== undefined) route.scope = r.scope;
    else if (fam === 4 && type === 'unicast' && r.gateway === undefined) route.scope = 'link';
    if (existing >= 0) space.routes[existing] = route;
    else space.routes.push(route);
    space.tables[fam].add(table);
    return '';
  }

  #showRoutes(space: NsState, family: IpFamily, args: readonly string[], argv: readonly string[]): RawRoute[] {
    if (args.length !== 0 && (args[0] !== 'table' || args.length !== 2)) return this.#refuse(argv, 'only `route show [table T]`');
    const table = tableName(args[1] ?? 'main');
    if (!space.tables[family].has(table)) throw new ToolError(`Error: ipv${family}: FIB table does not exist.\nDump terminated`, 2);
    if (table === 'local') return this.#refuse(argv, 'the local table is not modelled');
    const routes = space.routes.filter(
      (r) => r.family === family && r.table === table && !(r.ofAddress !== undefined && family === 6 && r.dev?.up !== true),
    );
    routes.sort((a, b) => compareIp(a.dst.address, b.dst.address) || a.dst.len - b.dst.len || a.metric - b.metric);
    return routes.map((r) => rawRoute(r));
  }

  #ruleCommand(space: NsState, verb: string | undefined, args: readonly string[], family: IpFamily, argv: readonly string[]): string {
    if (verb !== 'add' && verb !== 'del' && verb !== 'delete') return this.#refuse(argv, `ip rule ${verb ?? ''}`);
    const want: Partial<FakeRule> = {};
    const words = [...args];
    while (words.length > 0) {
      const w = words.shift();
      const value = (): string => words.shift() ?? this.#refuse(argv, `${w ?? ''} needs a value`);
      if (w === 'priority' || w === 'pref' || w === 'prio') want.priority = intOf(value(), argv, this);
      else if (w === 'from' || w === 'to') {
        const text = value();
        const p = text === 'all' ? undefined : prefixOf(text, family);
        if (text !== 'all' && (p === undefined || p.address.family !== family)) throw new ToolError(`Error: inet prefix is expected rather than "${text}".`, 1);
        if (p !== undefined) want[w === 'from' ? 'src' : 'dst'] = p;
      } else if (w === 'iif') want.iif = value();
      else if (w === 'fwmark') want.fwmark = `0x${intOf(value(), argv, this).toString(16)}`;
      else if (w === 'lookup' || w === 'table') want.table = tableName(value());
      else return this.#refuse(argv, `ip rule … ${w ?? ''} is not modelled`);
    }
    const list = space.rules[family];
    const same = (a: Prefix | undefined, b: Prefix | undefined) =>
      a === undefined ? b === undefined : b !== undefined && sameIp(a.address, b.address) && a.len === b.len;
    if (verb === 'add') {
      if (want.priority === undefined) return this.#refuse(argv, 'the fake needs an explicit priority');
      const rule: FakeRule = { priority: want.priority, table: want.table ?? 'main' };
      if (want.src !== undefined) rule.src = want.src;
      if (want.dst !== undefined) rule.dst = want.dst;
      if (want.iif !== undefined) rule.iif = want.iif;
      if (want.fwmark !== undefined) rule.fwmark = want.fwmark;
      if (list.some((x) => x.priority === rule.priority && x.table === rule.table && same(x.src, rule.src) && same(x.dst, rule.dst) &&
        x.iif === rule.iif && x.fwmark === rule.fwmark)) {
        throw new ToolError('RTNETLINK answers: File exists', 2);
      }
      const at = list.findIndex((x) => x.priority > rule.priority);
      list.splice(at < 0 ? list.length : at, 0, rule);
      return '';
    }
    const i = list.findIndex(
      (x) =>
        (want.priority === undefined || x.priority === want.priority) &&
        (want.table === undefined || x.table === want.table) &&
        (want.src === undefined || same(x.src, want.src)) &&
        (want.dst === undefined || same(x.dst, want.dst)) &&
        (want.iif === undefined || x.iif === want.iif) &&
        (want.fwmark === undefined || x.fwmark === want.fwmark),
    );
    if (i < 0) throw new ToolError('RTNETLINK answers: No such file or directory', 2);
    list.splice(i, 1);
    return '';
  }

  #showRules(space: NsState, family: IpFamily): Record<string, unknown>[] {
    return space.rules[family].map((r) => {
      const out: Record<string, unknown> = { priority: r.priority, src: 'all' };
      if (r.src !== undefined) {
        out['src'] = formatIpAddress(r.src.address);
        if (r.src.len !== maxPrefixLength(family)) out['srclen'] = r.src.len;
      }
      if (r.dst !== undefined) {
        out['dst'] = formatIpAddress(r.dst.address);
        if (r.dst.len !== maxPrefixLength(family)) out['dstlen'] = r.dst.len;
      }
      if (r.iif !== undefined) out['iif'] = r.iif;
      // The kernel flags a rule whose input device is not (or no longer) in the netns.
      if (r.iif !== undefined && !space.links.has(r.iif)) out['iif_detached'] = null;
      if (r.fwmark !== undefined) out['fwmark'] = r.fwmark;
      out['table'] = r.table;
      return out;
    });
  }

  #neighbourCommand(space: NsState, verb: string | undefined, args: readonly string[], argv: readonly string[]): string {
    if (verb !== 'add' && verb !== 'replace' && verb !== 'del' && verb !== 'delete') return this.#refuse(argv, `ip neighbour ${verb ?? ''}`);
    const words = [...args];
    const proxy = words[0] === 'proxy';
    if (proxy) words.shift();
    const dstText = words.shift() ?? '';
    const dst = parseIpAddress(dstText);
    if (typeof dst === 'string') throw new ToolError(`Error: any valid address is expected rather than "${dstText}".`, 1);
    let dev: FakeLink | undefined;
    let lladdr: string | undefined;
    let state: string | undefined;
    while (words.length > 0) {
      const w = words.shift();
      const value = (): string => words.shift() ?? this.#refuse(argv, `${w ?? ''} needs a value`);
      if (w === 'dev') dev = this.#dev(space, value());
      else if (w === 'lladdr' && !proxy) lladdr = value().toLowerCase();
      else if (w === 'nud' && !proxy) state = value().toUpperCase();
      else return this.#refuse(argv, `ip neighbour … ${w ?? ''} is not modelled`);
    }
    if (dev === undefined) throw new ToolError('Device and destination are required arguments.', 255);
    const key = formatIpAddress(dst);
    const i = space.neighbours.findIndex((n) => n.proxy === proxy && n.dst === key && n.dev === dev);
    if (verb === 'del' || verb === 'delete') {
      if (i < 0) throw new ToolError('RTNETLINK answers: No such file or directory', 2);
      space.neighbours.splice(i, 1);
      return '';
    }
    if (i >= 0 && verb === 'add') throw new ToolError('RTNETLINK answers: File exists', 2);
    const n: FakeNeighbour = { dst: key, dev, proxy };
    if (lladdr !== undefined) n.lladdr = lladdr;
    if (!proxy) n.state = state ?? 'PERMANENT';
    if (i >= 0) space.neighbours[i] = n;
    else space.neighbours.push(n);
    return '';
  }

  #showNeighbours(space: NsState, args: readonly string[], argv: readonly string[]): Record<string, unknown>[] {
    if (args.length > 1 || (args.length === 1 && args[0] !== 'proxy')) return this.#refuse(argv, 'only `neighbour show [proxy]`');
    const proxy = args[0] === 'proxy';
    return space.neighbours
      .filter((n) => n.proxy === proxy)
      .map((n) => {
        const out: Record<string, unknown> = { dst: n.dst, dev: n.dev.name };
        if (proxy) out['proxy'] = null;
        else {
          if (n.lladdr !== undefined) out['lladdr'] = n.lladdr;
          out['state'] = [n.state ?? 'PERMANENT'];
        }
        return out;
      });
  }

  // ---- tc: the ingress hook and the VXLAN worker's mirror (u32 match-all, mirred egress redirect) ----

  #tcTool(space: NsState, args: readonly string[], input: string | undefined, argv: readonly string[]): string {
    if (args[0] === '-batch') {
      if (args[1] !== '-' || args.length !== 2 || input === undefined) return this.#refuse(argv, 'only `tc -batch -` with input is modelled');
      input
        .split('\n')
        .filter((l) => l.trim() !== '')
        .forEach((line, n) => {
          try {
            this.#tcCommand(space, line.trim().split(/\s+/), false, argv);
          } catch (e) {
            if (e instanceof ToolError) throw new ToolError(`${e.stderr}\nCommand failed -:${n + 1}`, 1);
            throw e;
          }
        });
      return '';
    }
    const json = args[0] === '-json' || args[0] === '-j';
    return this.#tcCommand(space, json ? args.slice(1) : args, json, argv);
  }

  #tcCommand(space: NsState, words: readonly string[], json: boolean, argv: readonly string[]): string {
    const [object, verb, devWord, devName, ...rest] = words;
    if (devWord !== 'dev') return this.#refuse(argv, 'only `tc qdisc|filter VERB dev NAME …`');
    const l = this.#dev(space, devName);
    const line = rest.join(' ');
    if (object === 'qdisc') {
      if (verb === 'show' && rest.length === 0) {
        if (!json) return this.#refuse(argv, 'the fake prints only -json');
        const out: Record<string, unknown>[] = [];
        if (l.kind !== 'loopback') out.push({ kind: l.up ? 'noqueue' : 'noop', handle: '0:', root: true, refcnt: 2, options: {} });
        if (l.ingress !== undefined) out.push({ kind: l.ingress, handle: 'ffff:', parent: 'ffff:fff1', options: {} });
        return JSON.stringify(out);
      }
      if ((verb === 'add' || verb === 'del') && (line === 'ingress' || line === 'clsact')) {
        if (verb === 'add') {
          if (l.ingress !== undefined) throw new ToolError('Error: Exclusivity flag on, cannot modify.', 2);
          l.ingress = line;
        } else {
          if (l.ingress !== line) throw new ToolError('Error: Invalid handle.', 2);
          delete l.ingress;
          l.mirrors = [];
        }
        return '';
      }
      return this.#refuse(argv, 'only `qdisc show`, `qdisc add|del … ingress|clsact`');
    }
    if (object !== 'filter' || rest[0] !== 'parent' || rest[1] !== 'ffff:') return this.#refuse(argv, 'only filters on parent ffff:');
    if (verb === 'show' && rest.length === 2) {
      if (!json) return this.#refuse(argv, 'the fake prints only -json');
      if (l.ingress !== 'ingress') return '[]';
      return JSON.stringify(l.mirrors.flatMap((m) => mirrorFilterJson(m.pref, m.to.ns === l.ns && space.links.get(m.to.name) === m.to ? m.to.name : '*')));
    }
    if (l.ingress !== 'ingress') throw new ToolError("Error: Parent Qdisc doesn't exists.\nWe have an error talking to the kernel", 2);
    const pref = rest[2] === 'pref' ? Number(rest[3]) : NaN;
    if (!Number.isSafeInteger(pref)) return this.#refuse(argv, 'a filter needs `pref N` here');
    if (verb === 'del' && rest.length === 4) {
      const before = l.mirrors.length;
      l.mirrors = l.mirrors.filter((m) => m.pref !== pref);
      if (l.mirrors.length === before) throw new ToolError('Error: Filter with specified priority/protocol not found.', 2);
      return '';
    }
    const tail = rest.slice(4).join(' ');
    const m = /^protocol all u32 match u32 0 0 action mirred egress redirect dev (\S+)$/.exec(tail);
    if (verb === 'add' && m !== null) {
      const to = this.#dev(space, m[1]);
      if (l.mirrors.some((x) => x.pref === pref)) throw new ToolError('Error: Filter already exists.', 2);
      l.mirrors.push({ pref, to });
      return '';
    }
    return this.#refuse(argv, 'only the match-all mirred egress redirect filter of the VXLAN mirror');
  }

  // ---- sysctl ----

  /** Where a dotted key lives: the netns's own map, or a device's; undefined when there is no such file. */
  #sysctlSlot(space: NsState, key: string, argv: readonly string[]): { map: Map<string, string>; key: string } | undefined {
    if (key.startsWith('net.ipv6.') && !this.#world.ipv6) return undefined;
    const m = /^net\.(ipv4|ipv6)\.(conf|neigh)\.([^.]+)\.([a-z0-9_]+)$/.exec(key);
    if (m !== null) {
      const [, fam = '', group = '', dev = '', name = ''] = m;
      const known = fam === 'ipv4' ? (group === 'conf' ? IPV4_CONF : IPV4_NEIGH) : group === 'conf' ? IPV6_CONF : undefined;
      if (known === undefined || !(name in known)) return this.#refuse(argv, `sysctl ${key} is not modelled`);
      if (dev === 'all' || dev === 'default') return group === 'conf' ? { map: space.sysctls, key } : undefined;
      const l = space.links.get(dev);
      return l === undefined ? undefined : { map: l.sysctls, key: `${fam}.${group}.${name}` };
    }
    if (space.sysctls.has(key)) return { map: space.sysctls, key };
    return this.#refuse(argv, `sysctl ${key} is not modelled`);
  }

  #sysctlRead(space: NsState, key: string, argv: readonly string[]): string {
    const slot = this.#sysctlSlot(space, key, argv);
    const value = slot?.map.get(slot.key);
    if (value === undefined) throw new ToolError(`cat: /proc/sys/${key.replaceAll('.', '/')}: No such file or directory`, 1);
    return value;
  }

  #sysctlWrite(space: NsState, assignments: readonly string[], argv: readonly string[]): string {
    const errors: string[] = [];
    for (const a of assignments) {
      const eq = a.indexOf('=');
      if (eq <= 0) return this.#refuse(argv, `${a} is not key=value`);
      const key = a.slice(0, eq);
      const value = a.slice(eq + 1);
      sysctlPath(key);
      const slot = this.#sysctlSlot(space, key, argv);
      if (slot === undefined) {
        // sysctl(8) goes on with the next assignment, and fails at the end.
        errors.push(`sysctl: cannot stat /proc/sys/${key.replaceAll('.', '/')}: No such file or directory`);
        continue;
      }
      if (!/^-?\d+$/.test(value)) {
        errors.push(`sysctl: setting key "${key}": Invalid argument`);
        continue;
      }
      slot.map.set(slot.key, value);
      this.#sysctlSideEffects(space, key, value);
    }
    if (errors.length > 0) throw new ToolError(errors.join('\n'), 1);
    return '';
  }

  /** What the kernel does besides storing the value: "all" switches that reach every device. */
  #sysctlSideEffects(space: NsState, key: string, value: string): void {
    const everyDevice = (name: string) => {
      for (const l of space.links.values()) l.sysctls.set(name, value);
    };
    if (key === 'net.ipv6.conf.all.forwarding' || key === 'net.ipv6.conf.all.disable_ipv6') {
      const name = key.slice('net.ipv6.conf.all.'.length);
      space.sysctls.set(`net.ipv6.conf.default.${name}`, value);
      everyDevice(`ipv6.conf.${name}`);
    }
    if (key === 'net.ipv4.ip_forward' || key === 'net.ipv4.conf.all.forwarding') {
      space.sysctls.set('net.ipv4.ip_forward', value);
      space.sysctls.set('net.ipv4.conf.all.forwarding', value);
      space.sysctls.set('net.ipv4.conf.default.forwarding', value);
      everyDevice('ipv4.conf.forwarding');
    }
  }

  // ---- iptables ----

  #iptablesTool(space: NsState, family: IpFamily, args: readonly string[], argv: readonly string[]): string {
    const tool = family === 4 ? 'iptables' : 'ip6tables';
    if (family === 6 && !this.#world.ipv6) throw new ToolError(`${tool} v1.8.9 (nf_tables): Could not initialize: Address family not supported by protocol`, 3);
    const words = [...args];
    let tableArg = 'filter';
    if (words[0] === '-t') {
      words.shift();
      tableArg = words.shift() ?? '';
    }
    const table = space.iptables[family].get(tableArg);
    if (table === undefined) return this.#refuse(argv, `table ${tableArg} is not modelled`);
    const command = words.shift();
    const chainName = words[0]?.startsWith('-') === false ? words.shift() : undefined;
    const noChain = () => new ToolError(`${tool}: No chain/target/match by that name.`, 1);
    const chainOf = (): Chain => {
      const c = chainName === undefined ? undefined : table.get(chainName);
      if (c === undefined) throw noChain();
      return c;
    };
    const spec = (): string[] => canonicalRule(words, family, table, tool, argv, this);
    switch (command) {
      case '-S': {
        if (words.length > 0) return this.#refuse(argv, 'only `-S [CHAIN]`');
        if (chainName !== undefined) chainOf();
        return listRules(table, chainName);
      }
      case '-N':
        if (chainName === undefined || words.length > 0) return this.#refuse(argv, 'only `-N CHAIN`');
        if (table.has(chainName)) throw new ToolError(`${tool}: Chain already exists.`, 1);
        table.set(chainName, { builtin: false, rules: [] });
        return '';
      case '-X': {
        if (chainName === undefined || words.length > 0) return this.#refuse(argv, 'only `-X CHAIN`');
        const c = chainOf();
        const referenced = [...table.values()].some((x) => x.rules.some((r) => r[r.indexOf('-j') + 1] === chainName));
        if (c.builtin || c.rules.length > 0 || referenced) {
          throw new ToolError(`${tool} v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain ${chainName}`, 4);
        }
        table.delete(chainName);
        return '';
      }
      case '-F':
        if (words.length > 0) return this.#refuse(argv, 'only `-F [CHAIN]`');
        if (chainName === undefined) for (const c of table.values()) c.rules = [];
        else chainOf().rules = [];
        return '';
      case '-A':
      case '-I':
      case '-C':
      case '-D': {
        const c = chainOf();
        if ((command === '-I' || command === '-D') && /^\d+$/.test(words[0] ?? '')) {
          const n = Number(words.shift());
          if (command === '-D') {
            if (words.length > 0 || n < 1 || n > c.rules.length) throw new ToolError(`${tool}: Index of deletion too big.`, 1);
            c.rules.splice(n - 1, 1);
            return '';
          }
          const rule = spec();
          if (n < 1 || n > c.rules.length + 1) throw new ToolError(`${tool}: Index of insertion too big.`, 1);
          c.rules.splice(n - 1, 0, rule);
          return '';
        }
        const rule = spec();
        const i = c.rules.findIndex((r) => r.length === rule.length && r.every((w, k) => w === rule[k]));
        if (command === '-A') c.rules.push(rule);
        else if (command === '-I') c.rules.unshift(rule);
        else if (i < 0) throw new ToolError(`${tool}: Bad rule (does a matching rule exist in that chain?).`, 1);
        else if (command === '-D') c.rules.splice(i, 1);
        return '';
      }
      default:
        return this.#refuse(argv, `${tool} ${command ?? ''} is not modelled (-S -N -X -F -A -I -C -D are)`);
    }
  }
}

function intOf(text: string, argv: readonly string[], ns: FakeNetns): number {
  const n = text.startsWith('0x') ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new PeerpodError('EUNSUPPORTED', `FakeNetns does not model \`${argv.join(' ')}\`: ${JSON.stringify(text)} is not a number`, {
      op: 'fake-netns',
      netns: ns.label,
    });
  }
  return n;
}

function zero(family: IpFamily): IpAddress {
  return { family, bytes: new Uint8Array(family === 4 ? 4 : 16) };
}

function prefixOf(text: string, family: IpFamily | undefined): Prefix | undefined {
  if (text === 'default' && family !== undefined) return { address: zero(family), len: 0 };
  const [addr = '', len] = text.split('/');
  const address = parseIpAddress(addr);
  if (typeof address === 'string') return undefined;
  const max = maxPrefixLength(address.family);
  const n = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(n >= 0 && n <= max)) return undefined;
  return { address, len: n };
}

function sameIp(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.every((x, i) => x === b.bytes[i]);
}

function compareIp(a: IpAddress, b: IpAddress): number {
  for (let i = 0; i < a.bytes.length; i++) {
    const d = (a.bytes[i] ?? 0) - (b.bytes[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function prefixText(p: Prefix): string {
  if (p.len === 0) return 'default';
  const a = formatIpAddress(p.address);
  return p.len === maxPrefixLength(p.address.family) ? a : `${a}/${p.len}`;
}

function scopeOfAddress(a: IpAddress): string {
  if (a.family === 4) return a.bytes[0] === 127 ? 'host' : 'global';
  if (a.bytes.every((b, i) => b === (i === 15 ? 1 : 0))) return 'host';
  return a.bytes[0] === 0xfe && ((a.bytes[1] ?? 0) & 0xc0) === 0x80 ? 'link' : 'global';
}

function tableName(t: string): string {
  return TABLE_NAMES[t] ?? t;
}

/**
 * Carrier: a veth has it when both ends are up; a bridge, with no ports modelled, never; the rest
 * when up. Without carrier the kernel says LOWERLAYERDOWN when the peer is in the same netns and down.
 */
function operstate(l: FakeLink): string {
  if (!l.up) return 'DOWN';
  if (l.kind === 'veth') return l.peer?.up === true ? 'UP' : l.peer?.ns === l.ns ? 'LOWERLAYERDOWN' : 'DOWN';
  if (l.kind === 'bridge') return 'DOWN';
  return 'UNKNOWN';
}

function hasCarrier(l: FakeLink): boolean {
  return l.up && (l.kind === 'veth' ? l.peer?.up === true : l.kind !== 'bridge');
}

/** What `tc -json filter show` prints for one u32 match-all redirect: the u32 head, its hash table, the rule. */
function mirrorFilterJson(pref: number, toDev: string): Record<string, unknown>[] {
  const head = { protocol: 'all', pref, kind: 'u32', chain: 0 };
  return [
    head,
    { ...head, options: { fh: '800:', ht_divisor: 1 } },
    {
      ...head,
      options: {
        fh: '800::800',
        order: 2048,
        key_ht: '800',
        bkt: '0',
        not_in_hw: true,
        match: { value: '0', mask: '0', offmask: '', off: 0 },
        actions: [{ order: 1, kind: 'mirred', mirred_action: 'redirect', direction: 'egress', to_dev: toDev, control_action: { type: 'stolen' }, index: 1, ref: 1, bind: 1 }],
      },
    },
  ];
}

/** A link as `ip -json link show` prints it; the kind (linkinfo) only with -details. */
function rawLink(l: FakeLink, details: boolean): RawLink {
  const base: Record<Kind, string[]> = {
    loopback: ['LOOPBACK'],
    veth: ['BROADCAST', 'MULTICAST'],
    bridge: ['BROADCAST', 'MULTICAST'],
    vxlan: ['BROADCAST', 'MULTICAST'],
    dummy: ['BROADCAST', 'NOARP'],
    wireguard: ['POINTOPOINT', 'NOARP'],
    tun: ['POINTOPOINT', 'MULTICAST', 'NOARP'],
  };
  const flags = [...base[l.kind]];
  if (l.up) flags.push('UP');
  if (hasCarrier(l)) flags.push('LOWER_UP');
  else if (l.up) flags.unshift('NO-CARRIER');
  // iproute2 marks a device whose peer, in the same netns, is down.
  if (l.peer !== undefined && l.peer.ns === l.ns && !l.peer.up) flags.push('M-DOWN');
  const raw: RawLink = {
    ifindex: l.ifindex,
    ifname: l.name,
    flags,
    mtu: l.mtu,
    operstate: l.kind === 'loopback' ? (l.up ? 'UNKNOWN' : 'DOWN') : operstate(l),
    link_type: l.kind === 'loopback' ? 'loopback' : l.mac === undefined ? 'none' : 'ether',
  };
  if (l.mac !== undefined) raw.address = l.mac;
  if (l.peer !== undefined) {
    if (l.peer.ns === l.ns) raw.link = l.peer.name;
    else raw.link_netnsid = 0;
  }
  if (l.kind !== 'loopback' && details) {
    raw.linkinfo = { info_kind: l.kind };
    if (l.vxlan !== undefined) {
      raw.linkinfo.info_data = { id: l.vxlan.id, remote: l.vxlan.remote, port: l.vxlan.port, learning: l.vxlan.learning };
    }
  }
  return raw;
}

/** Whether a gateway is on a subnet of the device (a route through it needs no `onlink`). */
function onLink(dev: FakeLink, gateway: string): boolean {
  const gw = parseIpAddress(gateway);
  if (typeof gw === 'string') return false;
  return dev.addresses.some((a) => a.family === gw.family && sameIp(networkAddress(a.address, a.prefixlen), networkAddress(gw, a.prefixlen)));
}

function rawRoute(r: FakeRoute): RawRoute {
  const raw: RawRoute = { dst: prefixText(r.dst) };
  if (r.type !== 'unicast') raw.type = r.type;
  if (r.gateway !== undefined) raw.gateway = r.gateway;
  if (r.dev !== undefined) raw.dev = r.dev.name;
  else if (r.family === 6 && r.type !== 'unicast') raw.dev = 'lo';
  if (r.protocol !== undefined && r.protocol !== 'boot') raw.protocol = r.protocol;
  if (r.scope !== undefined && r.scope !== 'universe' && r.scope !== 'global' && r.family === 4) raw.scope = r.scope;
  if (r.metric !== 0) raw.metric = r.metric;
  raw.flags = [
    ...(r.onlink === true ? ['onlink'] : []),
    ...(r.dev !== undefined && r.type === 'unicast' && !hasCarrier(r.dev) ? ['linkdown'] : []),
  ];
  return raw;
}

/** A rule's words as `iptables -S` prints them, which is also what -C and -D compare. */
function canonicalRule(
  words: readonly string[],
  family: IpFamily,
  table: Map<string, Chain>,
  tool: string,
  argv: readonly string[],
  ns: FakeNetns,
): string[] {
  const refuse = (why: string): never => {
    throw new PeerpodError('EUNSUPPORTED', `FakeNetns does not model \`${argv.join(' ')}\`: ${why}`, {
      op: 'fake-netns',
      netns: ns.label,
      cmd: argv.join(' '),
    });
  };
  const basics: Record<string, string> = {};
  const matches: { name: string; opts: string[] }[] = [];
  let target: { name: string; opts: string[] } | undefined;
  const w = [...words];
  while (w.length > 0) {
    const word = w.shift() ?? '';
    const value = (): string => w.shift() ?? refuse(`${word} needs a value`);
    if (target !== undefined) {
      const n = TARGET_OPTIONS[target.name]?.[word];
      if (n === undefined) refuse(`option ${word} of target ${target.name}`);
      if (word === '--set-mark' || word === '--set-xmark') {
        const v = value();
        target.opts.push('--set-xmark', v.includes('/') ? v : `${v}/0xffffffff`);
      } else target.opts.push(word, ...Array.from({ length: n ?? 0 }, value));
      continue;
    }
    if (word === '-s' || word === '-d') {
      const p = prefixOf(value(), family);
      if (p === undefined || p.address.family !== family) throw new ToolError(`${tool} v1.8.9 (nf_tables): host/network not found`, 2);
      basics[word] = `${formatIpAddress(networkAddress(p.address, p.len))}/${p.len}`;
    } else if (word === '-i' || word === '-o') basics[word] = value();
    else if (word === '-p') basics[word] = value().toLowerCase();
    else if (word === '-m') {
      const name = value();
      if (MATCH_OPTIONS[name] === undefined) refuse(`match ${name}`);
      matches.push({ name, opts: [] });
    } else if (word === '-j') {
      const name = value();
      if (TARGET_OPTIONS[name] === undefined && !table.has(name)) {
        // Targets are spelled in capitals (MASQUERADE, REJECT); a chain that is not there is an error.
        if (/^[A-Z]+$/.test(name)) refuse(`target ${name}`);
        throw new ToolError(`${tool} v1.8.9 (nf_tables): Chain '${name}' does not exist`, 2);
      }
      target = { name, opts: [] };
    } else if (word.startsWith('--')) {
      let m = [...matches].reverse().find((x) => MATCH_OPTIONS[x.name]?.[word] !== undefined);
      // `-p tcp --tcp-flags …` loads the tcp match by itself, and -S prints it.
      const proto = basics['-p'];
      if (m === undefined && proto !== undefined && MATCH_OPTIONS[proto]?.[word] !== undefined) {
        m = { name: proto, opts: [] };
        matches.push(m);
      }
      if (m === undefined) return refuse(`option ${word}`);
      m.opts.push(word, ...Array.from({ length: MATCH_OPTIONS[m.name]?.[word] ?? 0 }, value));
    } else refuse(`word ${word}`);
  }
  const out: string[] = [];
  for (const k of ['-s', '-d', '-i', '-o', '-p']) if (basics[k] !== undefined) out.push(k, basics[k]);
  for (const m of matches) out.push('-m', m.name, ...m.opts);
  if (target !== undefined) out.push('-j', target.name, ...target.opts);
  return out;
}

function quoteIptablesWord(w: string): string {
  return /^[A-Za-z0-9_./:,+-]+$/.test(w) ? w : `"${w.replace(/(["\\])/g, '\\$1')}"`;
}

function listRules(table: Map<string, Chain>, only: string | undefined): string {
  const lines: string[] = [];
  // Built-in chains in their order, then the user's sorted by name, as iptables-nft -S prints them.
  const all = [...table.entries()].filter(([name]) => only === undefined || name === only);
  const chains = [...all.filter(([, c]) => c.builtin), ...all.filter(([, c]) => !c.builtin).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))];
  for (const [name, c] of chains) if (c.builtin) lines.push(`-P ${name} ACCEPT`);
  for (const [name, c] of chains) if (!c.builtin) lines.push(`-N ${name}`);
  for (const [name, c] of chains) for (const r of c.rules) lines.push(['-A', name, ...r.map(quoteIptablesWord)].join(' '));
  return lines.map((l) => l + '\n').join('');
}
