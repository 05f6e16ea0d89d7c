// The netns layer: links, addresses, routes, rules, neighbours, sysctls and netfilter inside one
// network namespace, driven through iproute2 (`ip -json` to read, `ip -batch` to write several
// changes in one process) and run inside the namespace with nsenter. Every failure names the
// operation, the netns and the interface. Why iproute2 and not in-process netlink: see
// docs/decisions.md. What to change is decided by callers; this layer only reads and applies.
// `Netns` is the seam the drivers see; `IprouteNetns` is the real one, and the in-memory fake
// (test/fakes/netns.ts) passes the same contract (test/contract/netns.contract.ts).
import { PeerpodError, isPeerpodError } from '../errors.js';
import type { Exec } from '../exec.js';

export interface Link {
  ifindex: number;
  ifname: string;
  mtu: number;
  /** MAC address, absent on L3 devices (tun, wireguard). */
  address?: string;
  operstate: string;
  flags: string[];
  /** "veth", "tun", "wireguard", "vxlan", "bridge", … (from `ip -d`); absent for plain devices. */
  kind?: string;
  /** Name of the peer/parent (veth peer), when iproute2 knows it. */
  link?: string;
}

export interface Address {
  ifname: string;
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
}

export interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  type?: string;
  table?: string;
  flags?: string[];
}

export interface Rule {
  priority: number;
  src?: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  iif?: string;
  table: string;
}

export interface Neighbour {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

/** What nsenter prints when the netns file is not there (util-linux, C locale). */
const NETNS_ABSENT = /cannot open \S.*: No such file or directory/;

/**
 * One network namespace: what the drivers read (typed) and write (iproute2/iptables argv, which the
 * fake in test/fakes/netns.ts interprets for the forms the drivers send). `IprouteNetns` is the
 * real one.
 */
export interface Netns {
  /** The netns file, or `null` for the namespace of this process. */
  readonly path: string | null;
  /** For messages: the path, or "host" for our own namespace. */
  readonly label: string;
  /** Run a command inside the namespace; a failure is PeerpodError ENETNS naming op, netns, iface. */
  run(argv: readonly string[], op: string, iface?: string, input?: string): Promise<string>;
  ip(args: readonly string[], op: string, iface?: string): Promise<string>;
  /** Several `ip` commands in one process; stops at the first failing line, and names it. */
  batch(commands: readonly (readonly string[])[], op: string, iface?: string, family?: 4 | 6): Promise<void>;
  /** True / false when certain; PeerpodError ENETNS when it cannot tell. */
  exists(): Promise<boolean>;
  links(): Promise<Link[]>;
  link(name: string): Promise<Link | null>;
  /** The link, or PeerpodError ENOTFOUND naming the netns and the interface. */
  requireLink(name: string, op: string): Promise<Link>;
  addresses(ifname?: string): Promise<Address[]>;
  routes(opts?: { family?: 4 | 6; table?: string }): Promise<Route[]>;
  defaultRouteMtu(fallback?: number): Promise<number>;
  rules(family?: 4 | 6): Promise<Rule[]>;
  neighbours(opts?: { proxy?: boolean }): Promise<Neighbour[]>;
  readSysctl(key: string): Promise<string>;
  writeSysctls(values: Readonly<Record<string, string | number>>, iface?: string): Promise<void>;
  /** iptables, or ip6tables with `family` 6; `args` without `-w`. */
  iptables(args: readonly string[], op: string, iface?: string, family?: 4 | 6): Promise<string>;
  hasIptablesRule(table: string, chain: string, rule: readonly string[], family?: 4 | 6): Promise<boolean>;
  /** Why this namespace cannot carry IPv6, or null when it can. */
  ipv6Unavailable(): Promise<string | null>;
}

/** A network namespace addressed by path, driven by iproute2 through nsenter; `null` is the namespace of this process. */
export class IprouteNetns implements Netns {
  readonly path: string | null;
  readonly #exec: Exec;

  constructor(path: string | null, exec: Exec) {
    this.path = path;
    this.#exec = exec;
  }

  /** For messages: the path, or "host" for our own namespace. */
  get label(): string {
    return this.path ?? 'host';
  }

  /** The argv prefix that runs a command inside this namespace. */
  wrap(argv: readonly string[]): string[] {
    return this.path === null ? [...argv] : ['nsenter', `--net=${this.path}`, '--', ...argv];
  }

  async run(argv: readonly string[], op: string, iface?: string, input?: string): Promise<string> {
    try {
      const opts = input === undefined ? {} : { input };
      return (await this.#exec(this.wrap(argv), opts)).stdout;
    } catch (e) {
      const detail = e instanceof PeerpodError ? e.message : String(e);
      throw new PeerpodError('ENETNS', `${op} failed: ${detail}`, { op, netns: this.label, iface }, e);
    }
  }

  async ip(args: readonly string[], op: string, iface?: string): Promise<string> {
    return this.run(['ip', ...args], op, iface);
  }

  private async ipJson<T>(args: readonly string[], op: string, iface?: string): Promise<T[]> {
    const out = await this.ip(['-json', ...args], op, iface);
    if (out.trim() === '') return [];
    try {
      return JSON.parse(out) as T[];
    } catch (e) {
      throw new PeerpodError('ENETNS', `${op}: iproute2 printed unreadable JSON`, { op, netns: this.label, iface }, e);
    }
  }

  async batch(commands: readonly (readonly string[])[], op: string, iface?: string, family?: 4 | 6): Promise<void> {
    return ipBatch(this, commands, op, iface, family);
  }

  /**
   * True when the netns can be entered, false only when its file is confirmed absent (nsenter
   * says "cannot open …: No such file or directory"). Anything else (a timeout, a missing nsenter,
   * a file that is not a netns yet) is "could not check": PeerpodError ENETNS, never false,
   * because callers remove a pod's tunnel when its netns is gone.
   */
  async exists(): Promise<boolean> {
    if (this.path === null) return true;
    try {
      // LC_ALL=C: the message that proves absence must not be translated.
      await this.#exec(this.wrap(['true']), { timeoutMs: 5_000, env: { ...process.env, LC_ALL: 'C' } });
      return true;
    } catch (e) {
      if (isPeerpodError(e, 'EEXEC') && e.context.exitCode !== undefined && NETNS_ABSENT.test(e.message)) return false;
      throw new PeerpodError('ENETNS', `cannot tell whether netns ${this.path} exists`, { op: 'netns-exists', netns: this.path }, e);
    }
  }

  async links(): Promise<Link[]> {
    return parseLinks(await this.ipJson<RawLink>(['-details', 'link', 'show'], 'list links'));
  }

  async link(name: string): Promise<Link | null> {
    return (await this.links()).find((l) => l.ifname === name) ?? null;
  }

  async requireLink(name: string, op: string): Promise<Link> {
    return (await this.link(name)) ?? missingLink(this, name, op);
  }

  async addresses(ifname?: string): Promise<Address[]> {
    const args = ['address', 'show', ...(ifname === undefined ? [] : ['dev', ifname])];
    return parseAddresses(await this.ipJson<RawAddresses>(args, 'list addresses', ifname));
  }

  async routes(opts: { family?: 4 | 6; table?: string } = {}): Promise<Route[]> {
    const args = [`-${opts.family ?? 4}`, 'route', 'show', 'table', opts.table ?? 'main'];
    const raw = await this.ipJson<RawRoute>(args, 'list routes').catch((e: unknown) => {
      // A table nothing was ever added to does not exist yet (iproute2 6.x says so): no routes.
      if (isPeerpodError(e, 'ENETNS') && /FIB table does not exist/.test(e.message)) return [];
      throw e;
    });
    return parseRoutes(raw);
  }

  async defaultRouteMtu(fallback = 1500): Promise<number> {
    return defaultRouteMtuOf(this, fallback);
  }

  async rules(family: 4 | 6 = 4): Promise<Rule[]> {
    return this.ipJson<Rule>([`-${family}`, 'rule', 'show'], 'list rules');
  }

  async neighbours(opts: { proxy?: boolean } = {}): Promise<Neighbour[]> {
    const args = ['neighbour', 'show', ...(opts.proxy ? ['proxy'] : [])];
    return this.ipJson<Neighbour>(args, 'list neighbours');
  }

  async readSysctl(key: string): Promise<string> {
    return readSysctlIn(this, key);
  }

  async writeSysctls(values: Readonly<Record<string, string | number>>, iface?: string): Promise<void> {
    return writeSysctlsIn(this, values, iface);
  }

  /** iptables, or ip6tables with `family` 6. */
  async iptables(args: readonly string[], op: string, iface?: string, family: 4 | 6 = 4): Promise<string> {
    return this.run([IPTABLES[family], '-w', '5', ...args], op, iface);
  }

  /** True when `iptables -C` (`ip6tables -C` with `family` 6) finds the rule. */
  async hasIptablesRule(table: string, chain: string, rule: readonly string[], family: 4 | 6 = 4): Promise<boolean> {
    try {
      await this.#exec(this.wrap([IPTABLES[family], '-w', '5', '-t', table, '-C', chain, ...rule]));
      return true;
    } catch {
      return false;
    }
  }

  async ipv6Unavailable(): Promise<string | null> {
    return ipv6UnavailableIn(this);
  }
}

// What every Netns derives the same way from its reads, and the parsers of iproute2's JSON (the
// fake prints the same JSON, so its reads come back through these too).

/** ENOTFOUND for an interface that is not in the netns: names both. */
export function missingLink(ns: Netns, name: string, op: string): never {
  throw new PeerpodError('ENOTFOUND', `${op}: no interface ${name} in netns ${ns.label}`, { op, netns: ns.label, iface: name });
}

/**
 * The MTU of the way out: the device of the IPv4 default route, else of the IPv6 one (an IPv6-only
 * underlay), or `fallback` when there is none.
 */
export async function defaultRouteMtuOf(ns: Netns, fallback = 1500): Promise<number> {
  const isDefault = (r: Route) => r.dst === 'default' && r.dev !== undefined;
  const def =
    (await ns.routes({ family: 4 })).find(isDefault) ??
    ((await ns.ipv6Unavailable()) === null ? (await ns.routes({ family: 6 })).find(isDefault) : undefined);
  const link = def?.dev === undefined ? null : await ns.link(def.dev);
  return link?.mtu ?? fallback;
}

/**
 * Whether a namespace can carry IPv6: the kernel has it (no ipv6.disable=1) and it is not switched
 * off for the namespace's new devices. Says why not, or null when it can.
 */
export async function ipv6UnavailableIn(ns: Netns): Promise<string | null> {
  let disabled: string;
  try {
    disabled = await ns.readSysctl('net.ipv6.conf.default.disable_ipv6');
  } catch {
    return 'the kernel has no IPv6 (booted with ipv6.disable=1, or built without it)';
  }
  return disabled === '0' ? null : 'net.ipv6.conf.default.disable_ipv6 is 1';
}

/**
 * Apply several `ip` commands in one process. Stops at the first failing line, and names it.
 * A batch line cannot carry `-6`, so commands that need a family (rules, default routes) are
 * batched per family.
 */
export async function ipBatch(
  ns: Netns,
  commands: readonly (readonly string[])[],
  op: string,
  iface?: string,
  family?: 4 | 6,
): Promise<void> {
  if (commands.length === 0) return;
  const script = commands.map((c) => c.map(quoteBatchWord).join(' ')).join('\n') + '\n';
  await ns.run(['ip', ...(family === undefined ? [] : [`-${family}`]), '-batch', '-'], op, iface, script);
}

export async function readSysctlIn(ns: Netns, key: string): Promise<string> {
  return (await ns.run(['cat', sysctlPath(key)], `read sysctl ${key}`)).trim();
}

/**
 * Write sysctls in one process. Keys are dotted names (net.ipv4.conf.eth0.rp_filter); the values
 * are written inside the namespace, where /proc/sys/net shows the namespace's own settings.
 */
export async function writeSysctlsIn(ns: Netns, values: Readonly<Record<string, string | number>>, iface?: string): Promise<void> {
  const entries = Object.entries(values);
  if (entries.length === 0) return;
  // One `sh -c` would need a shell; instead sysctl(8) takes several assignments in one call.
  const args = entries.map(([k, v]) => `${k}=${String(v)}`);
  await ns.run(['sysctl', '-q', '-w', ...args], `write sysctl ${args.join(' ')}`, iface);
}

/** One entry of `ip -json -details link show` (the fields we read): a Link's, with the kind nested. */
export interface RawLink extends Omit<Link, 'kind'> {
  link_type?: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export function parseLinks(raw: readonly RawLink[]): Link[] {
  return raw.map((r) => {
    const l: Link = { ifindex: r.ifindex, ifname: r.ifname, mtu: r.mtu, operstate: r.operstate, flags: r.flags };
    if (r.address !== undefined && r.link_type === 'ether') l.address = r.address;
    if (r.linkinfo?.info_kind !== undefined) l.kind = r.linkinfo.info_kind;
    if (r.link !== undefined) l.link = r.link;
    return l;
  });
}

/** One entry of `ip -json address show`. */
export interface RawAddresses {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope: string }[];
}

export function parseAddresses(raw: readonly RawAddresses[]): Address[] {
  const out: Address[] = [];
  for (const r of raw) {
    for (const a of r.addr_info ?? []) {
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      out.push({ ifname: r.ifname, family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope });
    }
  }
  return out;
}

/** One entry of `ip -json route show`. */
export type RawRoute = Route & { prefsrc?: string; metric?: number; pref?: string };

export function parseRoutes(raw: readonly RawRoute[]): Route[] {
  return raw.map((r) => {
    const route: Route = { dst: r.dst };
    if (r.gateway !== undefined) route.gateway = r.gateway;
    if (r.dev !== undefined) route.dev = r.dev;
    if (r.protocol !== undefined) route.protocol = r.protocol;
    if (r.scope !== undefined) route.scope = r.scope;
    if (r.type !== undefined) route.type = r.type;
    if (r.table !== undefined) route.table = r.table;
    if (r.flags !== undefined) route.flags = r.flags;
    return route;
  });
}

const IPTABLES = { 4: 'iptables', 6: 'ip6tables' } as const;

export function sysctlPath(key: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(key) || key.includes('..')) {
    throw new PeerpodError('EINVAL', `invalid sysctl name ${JSON.stringify(key)}`, { op: 'sysctl' });
  }
  return '/proc/sys/' + key.replaceAll('.', '/');
}

function quoteBatchWord(w: string): string {
  // ip -batch splits on whitespace and honours double quotes; our words never contain either,
  // but reject them rather than send something iproute2 would read differently.
  if (w === '' || /[\s"\\#]/.test(w)) {
    throw new PeerpodError('EINVAL', `cannot pass ${JSON.stringify(w)} to ip -batch`, { op: 'ip-batch' });
  }
  return w;
}

/** One factory per process, so that callers do not build Netns objects from globals. */
export interface NetnsFactory {
  host(): Netns;
  at(path: string): Netns;
}

export function netnsFactory(exec: Exec): NetnsFactory {
  return { host: () => new IprouteNetns(null, exec), at: (p) => new IprouteNetns(p, exec) };
}
