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
import { randomBytes } from 'node:crypto';
import { PeerpodError } from '../errors.js';
import type { Exec, ExecOptions, ExecResult } from '../exec.js';

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
}

/** One peer pod and its pod VM. */
export interface LabSlot {
  index: number;
  pod: string;
  vm: string;
  vmPod: string;
  podIP: string;
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
} as const;

export class Lab {
  readonly prefix: string;
  readonly nat: boolean;
  readonly podMtu: number;
  readonly underlayMtu: number;
  readonly pods: number;
  readonly natRandomPorts: boolean;
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
    if (!Number.isInteger(this.pods) || this.pods < 1 || this.pods > 60) {
      throw new PeerpodError('EINVAL', `lab pods ${this.pods}: expected 1-60`);
    }
  }

  slot(i: number): LabSlot {
    const p = this.prefix;
    const suffix = i === 0 ? '' : String(i);
    return {
      index: i,
      pod: `${p}-pod${suffix}`,
      vm: `${p}-vm${suffix}`,
      vmPod: `${p}-vmpod${suffix}`,
      podIP: `198.18.1.${21 + i}`,
      vmIP: `203.0.113.${10 + i}`,
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

  private async iptables(ns: string, rules: string[][]): Promise<void> {
    for (const r of rules) await this.exec(ns, ['iptables', '-w', '5', ...r]);
  }

  async create(): Promise<void> {
    const n = this.ns;
    try {
      for (const name of this.namespaces) {
        await this.#exec(['ip', 'netns', 'add', name]);
        this.#created.push(name);
        await this.#exec(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      }
      const pm = String(this.podMtu);
      const um = String(this.underlayMtu);
      await this.ipBatch(n.worker, [
        ['link', 'add', 'br0', 'mtu', pm, 'type', 'bridge'],
        ['address', 'add', `${LAB.podGateway}/${LAB.podPrefix}`, 'dev', 'br0'],
        ['link', 'set', 'br0', 'up'],
        ['link', 'add', 'cli0', 'mtu', pm, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', pm, 'netns', n.client],
        ['link', 'set', 'cli0', 'master', 'br0', 'up'],
        ...this.slots.flatMap((sl) => [
          ['link', 'add', `pod${sl.index}`, 'mtu', pm, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', pm, 'netns', sl.pod],
          ['link', 'set', `pod${sl.index}`, 'master', 'br0', 'up'],
        ]),
        ['link', 'add', 'up0', 'mtu', um, 'type', 'veth', 'peer', 'name', 'lan0', 'mtu', um, 'netns', n.nat],
        ['address', 'add', `${LAB.workerIP}/24`, 'dev', 'up0'],
        ['link', 'set', 'up0', 'up'],
        ['route', 'add', 'default', 'via', LAB.natLanIP],
      ]);
      for (const [ns, ip] of [[n.client, LAB.clientIP] as const, ...this.slots.map((sl) => [sl.pod, sl.podIP] as const)]) {
        await this.ipBatch(ns, [
          ['address', 'add', `${ip}/${LAB.podPrefix}`, 'dev', 'eth0'],
          ['link', 'set', 'eth0', 'up'],
          ['route', 'add', 'default', 'via', LAB.podGateway],
        ]);
      }
      await this.ipBatch(n.nat, [
        ['address', 'add', `${LAB.natLanIP}/24`, 'dev', 'lan0'],
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
        ['address', 'add', `${LAB.natWanIP}/24`, 'dev', 'wan0'],
        ['link', 'set', 'wan0', 'up'],
      ]);
      for (const sl of this.slots) {
        await this.ipBatch(sl.vm, [
          ['address', 'add', `${sl.vmIP}/24`, 'dev', 'eth0'],
          ['link', 'set', 'eth0', 'up'],
          ['route', 'add', 'default', 'via', LAB.natWanIP],
        ]);
      }
      await this.sysctl(n.worker, { 'net.ipv4.ip_forward': 1 });
      await this.sysctl(n.nat, { 'net.ipv4.ip_forward': 1 });
      // The node SNATs pod egress, as a Kubernetes node does for traffic leaving the cluster.
      await this.iptables(n.worker, [
        ['-t', 'nat', '-A', 'POSTROUTING', '-s', LAB.podSubnet, '-o', 'up0', '-j', 'MASQUERADE'],
      ]);
      // Without NAT the router only forwards: both sides reach each other by their default routes.
      if (this.nat) await this.iptables(n.nat, this.natRules(this.natRandomPorts));
    } catch (e) {
      await this.destroy().catch(() => undefined);
      throw new PeerpodError('ESETUP', `cannot build lab ${this.prefix}`, { op: 'lab-create' }, e);
    }
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
