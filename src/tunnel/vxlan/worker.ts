// The worker side of the `vxlan` tunnel, at parity with CAA's vxlan tunneler (workernode.go), with
// the VNI kept in the pod's record instead of in memory.
//
// The phases a pod's record goes through are drawn and enforced in ../../state/phase.ts; a failed
// setup rolls the network back and keeps the record (and its VNI).
//
// inspect reads the pod netns, gives the pod a VNI (the one it already has, or the lowest free one
// at or above the minimum, see vni.ts) and returns the pod-network for apf.json with the worker's
// own address as the VXLAN remote of the pod VM. setup makes the NOTRACK rules (notrack.ts), creates
// the VXLAN device in the host netns (where its UDP socket must live) with the pod VM as remote,
// moves it into the pod netns, and mirrors the pod's interface and the device into each other
// (mirror.ts). Every step compares with what the kernel reports, so setup re-run after a crash
// converges, and a device whose VNI, remote or port is wrong is made again. The checks, the record,
// the rollback and teardown's order are the lifecycle both worker drivers share
// (../worker-lifecycle.ts); this file gives its hooks.
//
// Unlike CAA, the device keeps its host-unique name ("pvx" + pod id) in the pod netns rather than
// becoming "vxlan1", so that status and teardown find it from the pod id alone.
import { readdir } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { PeerpodError } from '../../errors.js';
import type { Netns } from '../../netns/netns.js';
import type { IpPrefix, PodNetwork, VxlanTunnel } from '../../podnetwork/types.js';
import { podIdOf, type PodRecord, type VxlanPodRecord } from '../../state/store.js';
import type { WorkerSetupRequest } from '../driver.js';
import { inspectPodNetns, toPodNetwork } from '../inspect-pod.js';
import { WorkerLifecycle, type RemovalCause, type WorkerLifecycleDeps } from '../worker-lifecycle.js';
import { isVxlanLike, vxlanAddCommand, vxlanLink, vxlanLinks, vxlanOf, type VxlanSpec } from './device.js';
import { ensureMirror, removeMirrorsInto } from './mirror.js';
import { workerVxlanDeviceName } from './names.js';
import { ensureNotrack, removeNotrack } from './notrack.js';
import { Serial } from './serial.js';
import { DEFAULT_MIN_VNI, DEFAULT_VXLAN_PORT, allocateVni, checkMinVni, vnisInUse } from './vni.js';

/** Where CNI plugins and containerd put pod netns; scanned for VXLAN links when choosing a VNI. */
export const DEFAULT_NETNS_DIR = '/run/netns';
/** How many pod netns are read at once while looking for VNIs in use. */
const SCAN_CONCURRENCY = 8;

export type VxlanWorkerDeps = WorkerLifecycleDeps<VxlanSetupStep>;

export type VxlanSetupStep = 'recorded' | 'notrack' | 'created' | 'moved' | 'mirrored';
export const VXLAN_SETUP_STEPS: readonly VxlanSetupStep[] = ['recorded', 'notrack', 'created', 'moved', 'mirrored'];

export interface VxlanWorkerOptions {
  /** UDP port of the tunnels (VXLAN_PORT). */
  port?: number;
  /** The lowest VNI handed out (CAA's -vxlan-min-id). */
  minId?: number;
  /**
   * A folder of netns files whose VXLAN links count as in use when choosing a VNI, besides the host
   * netns and the netns of every record; null looks at those two only.
   */
  netnsDir?: string | null;
}

export class VxlanWorkerDriver extends WorkerLifecycle<VxlanPodRecord, VxlanSetupStep> {
  readonly type = 'vxlan' as const;
  readonly #port: number;
  readonly #minId: number;
  readonly #netnsDir: string | null;
  /** Choosing a VNI is look-then-write; two inspects at once must not pick the same one. */
  readonly #allocation = new Serial();
  readonly #iptables = new Serial();

  constructor(deps: VxlanWorkerDeps, opts: VxlanWorkerOptions = {}) {
    super(deps);
    this.#port = opts.port ?? DEFAULT_VXLAN_PORT;
    if (!Number.isInteger(this.#port) || this.#port < 1 || this.#port > 65535) {
      throw new PeerpodError('EINVAL', `VXLAN port ${String(this.#port)}: expected an integer 1-65535`, { field: 'vxlan-port' });
    }
    this.#minId = checkMinVni(opts.minId ?? DEFAULT_MIN_VNI);
    this.#netnsDir = opts.netnsDir === undefined ? DEFAULT_NETNS_DIR : opts.netnsDir;
  }

  async inspect(netnsPath: string): Promise<PodNetwork> {
    const pod = await inspectPodNetns(this.netns.at(netnsPath));
    const workerNodeIp = await primaryAddress(this.netns.host());
    const id = podIdOf(netnsPath);
    const { store } = this;
    const vni = await this.#allocation.run(async () => {
      const previous = await store.read(id);
      if (previous !== null && previous.tunnelType !== 'vxlan') {
        throw new PeerpodError(
          'ESTATE',
          `pod netns ${netnsPath} already has a ${previous.tunnelType} tunnel record: tear it down before inspecting it for vxlan`,
          { op: 'inspect', netns: netnsPath },
        );
      }
      // Inspect twice for the same pod gives the same VNI, so a retried CreateVM stays valid with
      // a tunnel that may already be set up.
      const vni = previous?.vni ?? allocateVni(await this.vnisInUse(id), this.#minId);
      const record: VxlanPodRecord = {
        id,
        netns: netnsPath,
        tunnelType: 'vxlan',
        device: workerVxlanDeviceName(id),
        podIP: pod.podIP,
        mtu: pod.mtu,
        podVmIPs: previous?.podVmIPs ?? [],
        phase: previous?.phase ?? 'inspected',
        vni,
        port: this.#port,
        updatedAt: this.now(),
      };
      await store.write(record);
      return vni;
    });
    const vxlan: VxlanTunnel = { type: 'vxlan', port: this.#port, id: vni };
    // CAA's index is what it adds to the minimum ID; here the VNI comes first and the index follows.
    return { ...toPodNetwork(pod, vxlan), workerNodeIp, index: Math.max(0, vni - this.#minId) };
  }

  /**
   * VNIs in use on this worker: in the records, on VXLAN links of the host netns (devices not yet
   * moved), and on VXLAN links in the netns of every record and of the netns folder (devices that
   * CAA or a lost record left behind). A netns that vanishes while we look has nothing in use.
   */
  private async vnisInUse(except: string): Promise<Set<number>> {
    const records = await this.store.list();
    const paths = new Set(records.map((r) => r.netns));
    if (this.#netnsDir !== null) {
      const dir = this.#netnsDir;
      const names = await readdir(dir).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
        throw new PeerpodError('ESETUP', `cannot list the netns folder ${dir}`, { op: 'inspect' }, e);
      });
      for (const n of names) paths.add(join(dir, n));
    }
    const linkVnis = (await vxlanLinks(this.netns.host())).map((l) => l.vni);
    const queue = [...paths];
    const worker = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        const links = await vxlanLinks(this.netns.at(p)).catch(() => []);
        for (const l of links) linkVnis.push(l.vni);
      }
    };
    await Promise.all(Array.from({ length: SCAN_CONCURRENCY }, worker));
    return vnisInUse({ records, linkVnis, except });
  }

  protected deviceNameOf(podId: string): string {
    return workerVxlanDeviceName(podId);
  }

  protected checkRequest(req: WorkerSetupRequest): void {
    vxlanOf(req.podNetwork, req.netns, 'setup');
  }

  protected readonly noRecordHint = ': run inspect for this pod first';

  protected async check(req: WorkerSetupRequest, record: VxlanPodRecord): Promise<VxlanPodRecord> {
    const pn = req.podNetwork;
    const vxlan = vxlanOf(pn, req.netns, 'setup');
    const ctx = { op: 'setup', netns: req.netns };
    if (vxlan.id !== undefined && vxlan.id !== record.vni) {
      throw new PeerpodError(
        'EINVAL',
        `pod-network.vxlan-id ${vxlan.id} is not the VNI ${record.vni} kept for pod netns ${req.netns}: the config comes from another inspect`,
        { ...ctx, field: 'pod-network.vxlan-id' },
      );
    }
    if (vxlan.port !== undefined && vxlan.port !== record.port) {
      throw new PeerpodError(
        'EINVAL',
        `pod-network.vxlan-port ${vxlan.port} is not the port ${record.port} this pod was inspected with`,
        { ...ctx, field: 'pod-network.vxlan-port' },
      );
    }
    const remote = remoteOf(req);
    if (remote === undefined || !isIPv4(remote)) {
      throw new PeerpodError(
        'EINVAL',
        `pod VM IPs [${req.podVmIPs.join(', ')}]: expected an IPv4 address` +
          (pn.dedicated ? ' at the second place (dedicated interface)' : ''),
        { ...ctx, field: 'pod-vm-ip' },
      );
    }
    return { ...record, podIP: pn.podIp.address, mtu: pn.mtu, podVmIPs: [...req.podVmIPs] };
  }

  protected async build(next: VxlanPodRecord, _found: VxlanPodRecord, req: WorkerSetupRequest): Promise<void> {
    const device = next.device;
    const podNs = this.netns.at(req.netns);
    const podInterface = req.podNetwork.interfaceName;
    const want: VxlanSpec = { vni: next.vni, remote: remoteOf(req)!, port: next.port };
    const host = this.netns.host();
    await this.#iptables.run(() => ensureNotrack(host, want));
    this.step('notrack');
    let inPod = await vxlanLink(podNs, device);
    if (inPod !== null && !isVxlanLike(inPod, want)) {
      await podNs.ip(['link', 'del', 'dev', device], 'delete a VXLAN device of an older config', device);
      inPod = null;
    }
    // A device still in the host netns was born by a setup that stopped before the move.
    let born = await vxlanLink(host, device);
    if (born !== null && (inPod !== null || !isVxlanLike(born, want))) {
      await host.ip(['link', 'del', 'dev', device], 'delete a stray VXLAN device in the host netns', device);
      born = null;
    }
    if (inPod === null && born === null) {
      // Born here, so its UDP socket stays in the host netns when the device moves to the pod.
      await host.ip(vxlanAddCommand(device, want), 'create the VXLAN device', device);
    }
    this.step('created');
    if (inPod === null) {
      await host.ip(['link', 'set', 'dev', device, 'netns', req.netns], 'move the VXLAN device into the pod netns', device);
    }
    this.step('moved');
    // Per-device sysctls reset on a move. The device is a wire, not an interface of the pod
    // netns: keep the pod netns' own IPv6 chatter (router solicitations) out of the tunnel.
    await podNs.writeSysctls({ [`net.ipv6.conf.${device}.disable_ipv6`]: 1 }, device);
    if (!(inPod?.flags.includes('UP') ?? false)) {
      await podNs.ip(['link', 'set', 'dev', device, 'up'], 'bring the VXLAN device up', device);
    }
    await ensureMirror(podNs, podInterface, device);
    await ensureMirror(podNs, device, podInterface);
    this.step('mirrored');
  }

  /** Remove the mirrors, the device (in the pod netns or still in the host) and the NOTRACK rules. */
  protected async removeNetwork(netnsPath: string, device: string, record: PodRecord | null, _cause: RemovalCause): Promise<void> {
    const host = this.netns.host();
    const podNs: Netns = this.netns.at(netnsPath);
    const podExists = await podNs.exists();
    const inPod = podExists ? await vxlanLink(podNs, device) : null;
    const inHost = await vxlanLink(host, device);
    if (podExists) {
      await removeMirrorsInto(podNs, device);
      if (inPod !== null) await podNs.ip(['link', 'del', 'dev', device], 'delete the VXLAN device', device);
    }
    if (inHost !== null) await host.ip(['link', 'del', 'dev', device], 'delete the VXLAN device in the host netns', device);
    // Without a record, the device tells which VNI its rules are tagged with.
    const vni = record?.tunnelType === 'vxlan' ? record.vni : undefined;
    const vnis = new Set([vni, inPod?.vni, inHost?.vni].filter((v): v is number => v !== undefined));
    for (const v of vnis) await this.#iptables.run(() => removeNotrack(host, v));
  }
}

/** Like CAA: a dedicated interface on the pod VM is its second address. */
function remoteOf(req: WorkerSetupRequest): string | undefined {
  return req.podNetwork.dedicated ? req.podVmIPs[1] : req.podVmIPs[0];
}

/** The worker's address on the interface of its default route: the pod VM's VXLAN remote. */
export async function primaryAddress(host: Netns): Promise<IpPrefix> {
  const ctx = { op: 'inspect', netns: host.label };
  const def = (await host.routes({ family: 4 })).find((r) => r.dst === 'default' && r.dev !== undefined);
  if (def?.dev === undefined) {
    throw new PeerpodError('ENOTFOUND', `netns ${host.label} has no IPv4 default route: cannot tell the worker's address for the VXLAN remote`, ctx);
  }
  const addr = (await host.addresses(def.dev)).find((a) => a.family === 'inet' && a.scope === 'global');
  if (addr === undefined) {
    throw new PeerpodError('ENOTFOUND', `interface ${def.dev} of the default route has no IPv4 address`, { ...ctx, iface: def.dev });
  }
  return { address: addr.local, prefixLength: addr.prefixlen, family: 4 };
}

/** The VXLAN options of a pod-network, or a clear error naming the field. */
