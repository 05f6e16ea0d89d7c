// CAA's VXLAN tunnel (pkg/podnetwork/tunneler/vxlan), rebuilt by hand in a lab as the benchmark's
// baseline. Worker: a vxlan device born in the host netns (remote = pod VM, VNI 555000, port 4789),
// moved into the pod netns as vxlan1, and mirrored with eth0 both ways by tc (ingress qdisc, u32
// match-all, mirred egress redirect). Pod VM: a vxlan device (remote = worker) moved into the VM's
// pod netns, renamed eth0, with the pod's MAC, IP and default route, and MTU min(pod MTU, 1450) as
// CAA caps it unless told otherwise. Both sides add CAA's raw-table NOTRACK rules for the VXLAN UDP.
//
// CAA does this in-process over netlink; here it is ip/tc/iptables-restore in batches, so its
// timings carry a few process starts. It is a measurement fixture, not a driver.
import type { Exec } from '../src/exec.js';
import { LAB, type Lab } from '../lab/lab.js';

export const CAA_VXLAN_MAX_MTU = 1450;

export interface CaaVxlanOptions {
  lab: Lab;
  exec: Exec;
  vni?: number;
  port?: number;
  /** MTU of the pod VM's eth0 (default: min(lab pod MTU, 1450), as CAA's podnode.go). */
  podVmMtu?: number;
}

const WORKER_HOST_DEV = 'ppvxlan1';
const WORKER_POD_DEV = 'vxlan1';
const VM_HOST_DEV = 'vxlan0';
const POD_IFACE = 'eth0';

export class CaaVxlan {
  readonly #lab: Lab;
  readonly #exec: Exec;
  readonly vni: number;
  readonly port: number;
  readonly podVmMtu: number;

  constructor(opts: CaaVxlanOptions) {
    this.#lab = opts.lab;
    this.#exec = opts.exec;
    this.vni = opts.vni ?? 555000;
    this.port = opts.port ?? 4789;
    this.podVmMtu = opts.podVmMtu ?? Math.min(opts.lab.podMtu, CAA_VXLAN_MAX_MTU);
  }

  private ip(ns: string, cmds: string[][]): Promise<unknown> {
    return this.#exec(['ip', '-n', ns, '-batch', '-'], { input: cmds.map((c) => c.join(' ')).join('\n') + '\n' });
  }

  private tc(ns: string, cmds: string[][]): Promise<unknown> {
    return this.#exec(['tc', '-n', ns, '-batch', '-'], { input: cmds.map((c) => c.join(' ')).join('\n') + '\n' });
  }

  /** CAA's NOTRACK pair for VXLAN to and from `peer`, appended (-A) or deleted (-D). */
  private notrack(ns: string, peer: string, op: '-A' | '-D'): Promise<unknown> {
    const comment = ['-m', 'comment', '--comment', `"peerpod [vni:${this.vni}]"`];
    const udp = ['-p', 'udp', '-m', 'udp', '--dport', String(this.port), '-j', 'NOTRACK'];
    const rules = [
      ['*raw'],
      [op, 'OUTPUT', ...comment, '-d', `${peer}/32`, ...udp],
      [op, 'PREROUTING', ...comment, '-s', `${peer}/32`, ...udp],
      ['COMMIT'],
    ];
    return this.#exec(['ip', 'netns', 'exec', ns, 'iptables-restore', '-w', '5', '--noflush'], {
      input: rules.map((r) => r.join(' ')).join('\n') + '\n',
    });
  }

  /** The worker pod's eth0 MAC, which CAA's Inspect puts into apf.json as pod-hw-addr. */
  async podMac(): Promise<string> {
    const r = await this.#exec(['ip', '-n', this.#lab.ns.pod, '-j', 'link', 'show', 'dev', POD_IFACE]);
    const links = JSON.parse(r.stdout) as { address?: string }[];
    const mac = links[0]?.address;
    if (mac === undefined) throw new Error(`no MAC on ${POD_IFACE} in ${this.#lab.ns.pod}`);
    return mac;
  }

  /** The pod-VM side (CAA's podNodeTunneler.Setup plus the pod's default route). */
  async setupPodVm(podMac: string): Promise<void> {
    const n = this.#lab.ns;
    await this.notrack(n.vm, LAB.workerIP, '-A');
    await this.ip(n.vm, [
      ['link', 'add', VM_HOST_DEV, 'type', 'vxlan', 'id', String(this.vni), 'remote', LAB.workerIP, 'dstport', String(this.port)],
      ['link', 'set', VM_HOST_DEV, 'netns', n.vmPod],
    ]);
    await this.ip(n.vmPod, [
      ['link', 'set', VM_HOST_DEV, 'name', POD_IFACE],
      ['link', 'set', POD_IFACE, 'address', podMac],
      ['link', 'set', POD_IFACE, 'mtu', String(this.podVmMtu)],
      ['address', 'add', `${LAB.podIP}/${LAB.podPrefix}`, 'dev', POD_IFACE],
      ['link', 'set', POD_IFACE, 'up'],
      ['route', 'add', 'default', 'via', LAB.podGateway],
    ]);
  }

  /** The worker side (CAA's workerNodeTunneler.Setup). */
  async setupWorker(): Promise<void> {
    const n = this.#lab.ns;
    await this.notrack(n.worker, LAB.vmIP, '-A');
    await this.ip(n.worker, [
      ['link', 'add', WORKER_HOST_DEV, 'type', 'vxlan', 'id', String(this.vni), 'remote', LAB.vmIP, 'dstport', String(this.port)],
      ['link', 'set', WORKER_HOST_DEV, 'netns', n.pod],
    ]);
    await this.ip(n.pod, [
      ['link', 'set', WORKER_HOST_DEV, 'name', WORKER_POD_DEV],
      ['link', 'set', WORKER_POD_DEV, 'up'],
    ]);
    await this.tc(n.pod, [...CaaVxlan.redirect(POD_IFACE, WORKER_POD_DEV), ...CaaVxlan.redirect(WORKER_POD_DEV, POD_IFACE)]);
  }

  async teardownWorker(): Promise<void> {
    const n = this.#lab.ns;
    await this.tc(n.pod, [
      ['qdisc', 'del', 'dev', POD_IFACE, 'ingress'],
      ['qdisc', 'del', 'dev', WORKER_POD_DEV, 'ingress'],
    ]);
    await this.ip(n.pod, [['link', 'del', WORKER_POD_DEV]]);
    await this.notrack(n.worker, LAB.vmIP, '-D');
  }

  async teardownPodVm(): Promise<void> {
    const n = this.#lab.ns;
    await this.ip(n.vmPod, [['link', 'del', POD_IFACE]]);
    await this.notrack(n.vm, LAB.workerIP, '-D');
  }

  /** Everything that `from` receives leaves through `to`: CAA's netops RedirectAdd. */
  static redirect(from: string, to: string): string[][] {
    return [
      ['qdisc', 'add', 'dev', from, 'ingress'],
      ['filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0',
        'action', 'mirred', 'egress', 'redirect', 'dev', to],
    ];
  }
}
