// The local lab that the demo, the lab tests and the benchmark build (DESIGN.md §5), from real
// network namespaces, veth pairs, a bridge and a NAT router:
//
//   <p>-cli  (client pod) eth0 198.18.1.10 ─┐
//                                          ├─ br0 198.18.1.1 ── <p>-wk (worker host) up0 192.0.2.2
//   <p>-pod  (peer pod)   eth0 198.18.1.21 ─┘                        │
//                                                               lan0 192.0.2.1
//                                                           <p>-nat (NAT router: masquerade out wan0,
//                                                                    drop new inbound flows on wan0)
//                                                               wan0 203.0.113.1 (a bridge when pods > 1)
//                                                                    │
//                                             <p>-vm (pod VM root netns) eth0 203.0.113.10
//                                             <p>-vmpod (pod VM's pod netns, filled by the agent)
//
// Addresses come from documentation and benchmarking ranges (192.0.2.0/24, 203.0.113.0/24,
// 198.18.0.0/15) and exist only inside these namespaces. Names carry a per-run prefix, so that
// several labs can exist at once. With `nat: false` the router only routes (the VXLAN baseline).
//
// IPv6 (issue 12): `podStack: 'dual'` gives br0 and the pods fd00:198:18:1::/64 (ULA) besides
// 198.18.1.0/24 (client ::10, pod ::21, gateway ::1); `'ipv6'` gives them IPv6 alone. With
// `underlay: 6` the underlay is IPv6 only, from 2001:db8::/32 (worker up0 2001:db8:2::2, router
// lan0 2001:db8:2::1, wan0 2001:db8:113::1, VM eth0 2001:db8:113::10), and the router is a stateful
// IPv6 firewall without NAT66: ip6tables conntrack drops every flow that starts on the wan side.
import { randomBytes } from 'node:crypto';
import { PeerpodError } from '../src/errors.js';
import type { Exec, ExecOptions, ExecResult } from '../src/exec.js';

export interface LabOptions {
  exec: Exec;
  /** Namespace name prefix; random ("pw" + 4 hex) when absent. */
  prefix?: string;
  /** Masquerade and drop unsolicited inbound flows (default true). */
  nat?: boolean;
  /** MTU of the CNI veths of the pods (default 1500). */
  podMtu?: number;
  /** MTU of the underlay links worker ⇄ NAT ⇄ VM (default 1500). */
  underlayMtu?: number;
  /** Peer pods, each with its own pod VM (default 1). Slot 0 uses the names and addresses above. */
  pods?: number;
  /** The NAT picks random source ports (iptables --random), as some home routers do. */
  natRandomPorts?: boolean;
  /** The pods' (and client pod's) addresses: IPv4 (default), IPv6 alone, or both. */
  podStack?: PodStack;
  /** The underlay between worker and pod VMs: IPv4 through NAT (default), or IPv6 through a firewall. */
  underlay?: 4 | 6;
}

export type PodStack = 'ipv4' | 'ipv6' | 'dual';

/** One peer pod and its pod VM. */
export interface LabSlot {
  index: number;
  pod: string;
  vm: string;
  vmPod: string;
  /** The pod's podip: its IPv4 address, or its IPv6 one in an IPv6-only lab. */
  podIP: string;
  /** The pod's IPv6 address, when the lab's pods have IPv6. */
  podIP6?: string;
  /** The pod VM's underlay address (IPv6 with `underlay: 6`). */
  vmIP: string;
}

export const LAB = {
  podSubnet: '198.18.1.0/24',
  podGateway: '198.18.1.1',
  clientIP: '198.18.1.10',
  podIP: '198.18.1.21',
  podPrefix: 24,
  workerIP: '192.0.2.2',
  natLanIP: '192.0.2.1',
  natWanIP: '203.0.113.1',
  vmIP: '203.0.113.10',
  podSubnet6: 'fd00:198:18:1::/64',
  podGateway6: 'fd00:198:18:1::1',
  clientIP6: 'fd00:198:18:1::10',
  podIP6: 'fd00:198:18:1::21',
  workerIP6: '2001:db8:2::2',
  natLanIP6: '2001:db8:2::1',
  natWanIP6: '2001:db8:113::1',
  vmIP6: '2001:db8:113::10',
} as const;

export class Lab {
  readonly prefix: string;
  readonly nat: boolean;
  readonly podMtu: number;
  readonly underlayMtu: number;
  readonly pods: number;
  readonly natRandomPorts: boolean;
  readonly podStack: PodStack;
  readonly underlay: 4 | 6;
  readonly #exec: Exec;
  #created: string[] = [];

  constructor(opts: LabOptions) {
    this.#exec = opts.exec;
    this.prefix = opts.prefix ?? `pw${randomBytes(2).toString('hex')}`;
    if (!/^[a-z][a-z0-9]{1,7}$/.test(this.prefix)) {
      throw new PeerpodError('EINVAL', `lab prefix ${JSON.stringify(this.prefix)}: expected 2-8 lowercase letters/digits`);
    }
    this.nat = opts.nat ?? true;
    this.podMtu = opts.podMtu ?? 1500;
    this.underlayMtu = opts.underlayMtu ?? 1500;
    this.pods = opts.pods ?? 1;
    this.natRandomPorts = opts.natRandomPorts ?? false;
    this.podStack = opts.podStack ?? 'ipv4';
    this.underlay = opts.underlay ?? 4;
    if (!Number.isInteger(this.pods) || this.pods < 1 || this.pods > 60) {
      throw new PeerpodError('EINVAL', `lab pods ${this.pods}: expected 1-60`);
    }
  }

  slot(i: number): LabSlot {
    const p = this.prefix;
    const suffix = i === 0 ? '' : String(i);
    const podIP6 = `fd00:198:18:1::${21 + i}`;
    return {
      index: i,
      pod: `${p}-pod${suffix}`,
      vm: `${p}-vm${suffix}`,
      vmPod: `${p}-vmpod${suffix}`,
      podIP: this.podStack === 'ipv6' ? podIP6 : `198.18.1.${21 + i}`,
      ...(this.podStack === 'ipv4' ? {} : { podIP6 }),
      vmIP: this.underlay === 6 ? `2001:db8:113::${10 + i}` : `203.0.113.${10 + i}`,
    };
  }

  get slots(): LabSlot[] {
    return Array.from({ length: this.pods }, (_, i) => this.slot(i));
  }

  /** Every namespace of this lab. */
  get namespaces(): string[] {
    const n = this.ns;
    return [n.worker, n.client, n.nat, ...this.slots.flatMap((s) => [s.pod, s.vm, s.vmPod])];
  }

  get ns() {
    const p = this.prefix;
    return {
      worker: `${p}-wk`,
      client: `${p}-cli`,
      pod: `${p}-pod`,
      nat: `${p}-nat`,
      vm: `${p}-vm`,
      vmPod: `${p}-vmpod`,
    };
  }

  /** Path of a lab namespace, as CAA would pass a pod netns. */
  path(name: string): string {
    return `/run/netns/${name}`;
  }

  /** Run a command inside a lab namespace. */
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.#exec(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  private async ipBatch(ns: string | null, cmds: string[][]): Promise<void> {
    const script = cmds.map((c) => c.join(' ')).join('\n') + '\n';
    await this.#exec(ns === null ? ['ip', '-batch', '-'] : ['ip', '-n', ns, '-batch', '-'], { input: script });
  }

  private async sysctl(ns: string, kv: Record<string, string | number>): Promise<void> {
    await this.exec(ns, ['sysctl', '-q', '-w', ...Object.entries(kv).map(([k, v]) => `${k}=${String(v)}`)]);
  }

  private async iptables(ns: string, rules: string[][], family: 4 | 6 = 4): Promise<void> {
    for (const r of rules) await this.exec(ns, [family === 6 ? 'ip6tables' : 'iptables', '-w', '5', ...r]);
  }

  /** The client pod's address in the pods' first family (what a test pings from the VM pod). */
  get clientIP(): string {
    return this.podStack === 'ipv6' ? LAB.clientIP6 : LAB.clientIP;
  }

  async create(): Promise<void> {
    const n = this.ns;
    const v4pods = this.podStack !== 'ipv6';
    const v6pods = this.podStack !== 'ipv4';
    const v6 = this.underlay === 6;
    try {
      for (const name of this.namespaces) {
        await this.#exec(['ip', 'netns', 'add', name]);
        this.#created.push(name);
        await this.#exec(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      }
      const pm = String(this.podMtu);
      const um = String(this.underlayMtu);
      // nodad: the lab's addresses are unique by construction, and DAD would hold them for a second.
      const addr6 = (a: string, dev: string) => ['address', 'add', `${a}/64`, 'dev', dev, 'nodad'];
      await this.ipBatch(n.worker, [
        ['link', 'add', 'br0', 'mtu', pm, 'type', 'bridge'],
        ...(v4pods ? [['address', 'add', `${LAB.podGateway}/${LAB.podPrefix}`, 'dev', 'br0']] : []),
        ...(v6pods ? [addr6(LAB.podGateway6, 'br0')] : []),
        ['link', 'set', 'br0', 'up'],
        ['link', 'add', 'cli0', 'mtu', pm, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', pm, 'netns', n.client],
        ['link', 'set', 'cli0', 'master', 'br0', 'up'],
        ...this.slots.flatMap((sl) => [
          ['link', 'add', `pod${sl.index}`, 'mtu', pm, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', pm, 'netns', sl.pod],
          ['link', 'set', `pod${sl.index}`, 'master', 'br0', 'up'],
        ]),
        ['link', 'add', 'up0', 'mtu', um, 'type', 'veth', 'peer', 'name', 'lan0', 'mtu', um, 'netns', n.nat],
        v6 ? addr6(LAB.workerIP6, 'up0') : ['address', 'add', `${LAB.workerIP}/24`, 'dev', 'up0'],
        ['link', 'set', 'up0', 'up'],
        v6 ? ['route', 'add', '::/0', 'via', LAB.natLanIP6] : ['route', 'add', 'default', 'via', LAB.natLanIP],
      ]);
      const pods = [[n.client, LAB.clientIP, LAB.clientIP6] as const, ...this.slots.map((sl) => [sl.pod, `198.18.1.${21 + sl.index}`, sl.podIP6 ?? ''] as const)];
      for (const [ns, ip, ip6] of pods) {
        await this.ipBatch(ns, [
          ...(v4pods ? [['address', 'add', `${ip}/${LAB.podPrefix}`, 'dev', 'eth0']] : []),
          ...(v6pods ? [addr6(ip6, 'eth0')] : []),
          ['link', 'set', 'eth0', 'up'],
          ...(v4pods ? [['route', 'add', 'default', 'via', LAB.podGateway]] : []),
          ...(v6pods ? [['route', 'add', '::/0', 'via', LAB.podGateway6]] : []),
        ]);
      }
      await this.ipBatch(n.nat, [
        v6 ? addr6(LAB.natLanIP6, 'lan0') : ['address', 'add', `${LAB.natLanIP}/24`, 'dev', 'lan0'],
        ['link', 'set', 'lan0', 'up'],
        // The cloud side: one pod VM hangs off a plain veth; several share a bridge. (A bridge
        // there cut VXLAN's pod→VM throughput to a third in the benchmark, so one VM gets none.)
        ...(this.pods === 1
          ? [['link', 'add', 'wan0', 'mtu', um, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', um, 'netns', this.slot(0).vm]]
          : [
              ['link', 'add', 'wan0', 'mtu', um, 'type', 'bridge'],
              ...this.slots.flatMap((sl) => [
                ['link', 'add', `vm${sl.index}`, 'mtu', um, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', um, 'netns', sl.vm],
                ['link', 'set', `vm${sl.index}`, 'master', 'wan0', 'up'],
              ]),
            ]),
        v6 ? addr6(LAB.natWanIP6, 'wan0') : ['address', 'add', `${LAB.natWanIP}/24`, 'dev', 'wan0'],
        ['link', 'set', 'wan0', 'up'],
      ]);
      for (const sl of this.slots) {
        await this.ipBatch(sl.vm, [
          v6 ? addr6(sl.vmIP, 'eth0') : ['address', 'add', `${sl.vmIP}/24`, 'dev', 'eth0'],
          ['link', 'set', 'eth0', 'up'],
          v6 ? ['route', 'add', '::/0', 'via', LAB.natWanIP6] : ['route', 'add', 'default', 'via', LAB.natWanIP],
        ]);
      }
      await this.sysctl(n.worker, { 'net.ipv4.ip_forward': 1, ...(v6pods || v6 ? { 'net.ipv6.conf.all.forwarding': 1 } : {}) });
      await this.sysctl(n.nat, { 'net.ipv4.ip_forward': 1, ...(v6 ? { 'net.ipv6.conf.all.forwarding': 1 } : {}) });
      // The node SNATs pod egress, as a Kubernetes node does for traffic leaving the cluster.
      await this.iptables(n.worker, [
        ['-t', 'nat', '-A', 'POSTROUTING', '-s', LAB.podSubnet, '-o', 'up0', '-j', 'MASQUERADE'],
      ]);
      // Without NAT the router only forwards: both sides reach each other by their default routes.
      if (this.nat && v6) await this.iptables(n.nat, this.firewallRules6(), 6);
      else if (this.nat) await this.iptables(n.nat, this.natRules(this.natRandomPorts));
    } catch (e) {
      await this.destroy().catch(() => undefined);
      throw new PeerpodError('ESETUP', `cannot build lab ${this.prefix}`, { op: 'lab-create' }, e);
    }
  }

  /**
   * A stateful IPv6 firewall, as in front of a cloud VNet or a home network without NAT66: forward
   * and deliver what answers a flow from the lan side, drop every flow that starts on the wan side.
   * Neighbour discovery with the router itself is let through: conntrack does not track it.
   */
  firewallRules6(): string[][] {
    const nd = (type: string) => ['-A', 'INPUT', '-i', 'wan0', '-p', 'ipv6-icmp', '--icmpv6-type', type, '-j', 'ACCEPT'];
    return [
      ['-A', 'FORWARD', '-i', 'wan0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-A', 'FORWARD', '-i', 'wan0', '-j', 'DROP'],
      nd('neighbour-solicitation'),
      nd('neighbour-advertisement'),
      ['-A', 'INPUT', '-i', 'wan0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-A', 'INPUT', '-i', 'wan0', '-j', 'DROP'],
    ];
  }

  /** A home router: masquerade out wan0, and drop every flow that starts on the wan side. */
  natRules(random = false): string[][] {
    return [
      ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE', ...(random ? ['--random'] : [])],
      ['-A', 'FORWARD', '-i', 'wan0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-A', 'FORWARD', '-i', 'wan0', '-j', 'DROP'],
      ['-A', 'INPUT', '-i', 'wan0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-A', 'INPUT', '-i', 'wan0', '-j', 'DROP'],
    ];
  }

  /**
   * Delete the namespaces this lab created; their veths, bridges and TUNs go with them. Only its
   * own: if create() failed because another lab holds a name, that lab is left alone. Idempotent.
   */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const name of this.#created) {
      const r = await this.#exec(['ip', 'netns', 'del', name], { okCodes: [0, 1, 2, 255] }).catch((e: unknown) => e);
      if (r instanceof Error) errors.push(r);
    }
    this.#created = [];
    if (errors.length > 0) {
      throw new PeerpodError('ETEARDOWN', `lab ${this.prefix}: ${errors.length} namespaces could not be deleted`, {
        op: 'lab-destroy',
      }, errors[0]);
    }
  }
}
