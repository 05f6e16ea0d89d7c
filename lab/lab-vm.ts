// A real pod VM in the namespace lab (lab/lab.ts): the lab's VM-side namespace `<p>-vm` stops
// being the VM and becomes the host side of one. Its eth0 (the veth to the NAT router's wan side)
// gives up the VM address and joins a bridge, and the local provider's TAP joins the same bridge,
// so the guest itself holds 203.0.113.10 behind the NAT, as a cloud VM would:
//
//   <p>-nat  wan ──veth── <p>-vm: eth0 ─┬─ br-vm ─┬─ TAP ══ qemu guest: eth0 203.0.113.10/24 (kernel WireGuard)
//                                        (no address)                           podns (the VM's pod netns)
//
// The lab's `<p>-vmpod` namespace is not used then: the pod netns lives inside the guest.
//
// With `link: 'link-local'` the guest hangs off the worker instead, as a local provider on the
// worker node itself would run it: its TAP is in `<p>-wk`, with no bridge and no IPv4, only
// fe80::1/64 (host) and fe80::10/64 (guest), and the tunnel runs to [fe80::10%<tap>]:port:
//
//   <p>-wk (worker host): TAP fe80::1/64 ══ qemu guest: eth0 fe80::10/64 (kernel WireGuard), podns
// `startQemuPodVm` is what the demo calls; it fails with EUNSUPPORTED, saying why, where qemu cannot
// run, and with EBACKEND (console tail included) when the guest does not come up; either way `<p>-vm`
// is left as the namespace VM needs it, so the caller can fall back to `LabFlow.agentSetup()`.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerpodError } from '../src/errors.js';
import type { Exec } from '../src/exec.js';
import { realSpawner } from '../src/spawn.js';
import { LAB, type Lab } from './lab.js';
import { buildPodVmImage, type PodVmImage } from '../tools/podvm-image/image.js';
import { labGuestTools } from './guest/tools.js';
import { LocalProvider, type LocalNetwork } from '../src/provider/local/local-provider.js';
import type { QemuGuest } from '../src/provider/local/qemu.js';

export const LAB_VM_BRIDGE = 'br-vm';
/** The link-local flavour's addresses: the worker's end of the TAP, and the guest's. */
export const LINK_LOCAL = { host: 'fe80::1/64', guest: 'fe80::10/64' } as const;

export interface LabVmNetwork {
  netns: string;
  bridge: string;
  address: string;
  gateway: string;
}

/** Turn `<p>-vm` into the host side of a qemu guest (idempotent). */
export async function prepareLabVmNetns(lab: Lab, exec: Exec): Promise<LabVmNetwork> {
  const ns = lab.ns.vm;
  const address = `${LAB.vmIP}/24`;
  const links = JSON.parse((await exec(['ip', '-n', ns, '-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const cmds: string[] = [];
  if (!links.some((l) => l.ifname === LAB_VM_BRIDGE)) {
    cmds.push(`link add ${LAB_VM_BRIDGE} type bridge`, `link set ${LAB_VM_BRIDGE} up`);
  }
  // Whatever the netns flavour gave eth0 now belongs to the guest.
  cmds.push('address flush dev eth0', `link set eth0 master ${LAB_VM_BRIDGE} up`);
  await exec(['ip', '-n', ns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
  return { netns: ns, bridge: LAB_VM_BRIDGE, address, gateway: LAB.natWanIP };
}

/** Give `<p>-vm` back its netns-flavour shape (eth0 with the VM address), e.g. after a failed boot. */
export async function restoreLabVmNetns(lab: Lab, exec: Exec): Promise<void> {
  const ns = lab.ns.vm;
  const cmds = ['link set eth0 nomaster', `link del ${LAB_VM_BRIDGE}`, `address replace ${LAB.vmIP}/24 dev eth0`, 'link set eth0 up', `route replace default via ${LAB.natWanIP}`];
  // -force: keep going past a bridge that is already gone.
  await exec(['ip', '-n', ns, '-force', '-batch', '-'], { input: `${cmds.join('\n')}\n`, okCodes: [0, 1] });
}

/** Why qemu cannot run here, or null when it can. */
export function qemuUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qemu pod VMs need root (TAP devices, namespaces)';
  const found = (process.env['PATH'] ?? '/usr/bin:/bin').split(':').some((d) => existsSync(join(d, 'qemu-system-x86_64')));
  if (!found) return 'qemu-system-x86_64 is not installed (hack/deps.sh installs qemu-system-x86)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  return null;
}

export interface QemuPodVm {
  provider: LocalProvider;
  name: string;
  ip: string;
  guest: QemuGuest;
  image: PodVmImage;
  /** Delete the instance (guest, TAP, seed, folder). */
  stop(): Promise<void>;
}

export interface StartQemuPodVmOptions {
  exec: Exec;
  /** Per-instance folders (default /run/peerpod-wireguard/<prefix>-podvm, removed by stop()). */
  stateDir?: string;
  controlChannel?: boolean;
  /** Guest RAM (default: the provider's). */
  memoryMiB?: number;
  onConsole?: (line: string) => void;
  /** Wait for the agent's ready marker (default true) up to this long (default 120 s). */
  readyTimeoutMs?: number;
  waitReady?: boolean;
  /** 'nat' (default): behind the lab's NAT, as a cloud VM; 'link-local': on a TAP of the worker, IPv6 link-local only. */
  link?: 'nat' | 'link-local';
}

/**
 * Boot a pod VM for the lab's pod with `apfJsonText` as its userdata, and wait until the agent
 * inside reports ready. EUNSUPPORTED (with the reason) when qemu cannot run on this machine.
 */
export async function startQemuPodVm(lab: Lab, apfJsonText: string, opts: StartQemuPodVmOptions): Promise<QemuPodVm> {
  const why = qemuUnavailable();
  if (why !== null) throw new PeerpodError('EUNSUPPORTED', `no qemu pod VM: ${why}`, { op: 'start-qemu-pod-vm' });
  const { exec } = opts;
  const linkLocal = opts.link === 'link-local';
  const network: LocalNetwork = linkLocal
    ? { netns: lab.ns.worker, addresses: [LINK_LOCAL.guest], hostAddress: LINK_LOCAL.host }
    : await prepareLabVmNetns(lab, exec).then((net) => ({ netns: net.netns, bridge: net.bridge, addresses: [net.address], gateway: net.gateway }));
  const restore = async (): Promise<void> => {
    if (!linkLocal) await restoreLabVmNetns(lab, exec).catch(() => undefined);
  };
  let image: PodVmImage;
  try {
    image = await buildPodVmImage({ exec, guestTools: labGuestTools() });
  } catch (e) {
    await restore();
    throw e;
  }
  const ownStateDir = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? join('/run', 'peerpod-wireguard', `${lab.prefix}-podvm`);
  const provider = new LocalProvider({
    exec,
    spawner: realSpawner,
    image: async () => image,
    network,
    stateDir,
    controlChannel: opts.controlChannel ?? false,
    ...(opts.memoryMiB === undefined ? {} : { memoryMiB: opts.memoryMiB }),
    ...(opts.onConsole === undefined ? {} : { onConsole: (_n: string, line: string) => opts.onConsole?.(line) }),
  });
  const name = `podvm-${lab.prefix}`;
  let instance;
  try {
    instance = await provider.createInstance({ name, userdata: apfJsonText });
  } catch (e) {
    if (ownStateDir) await rm(stateDir, { recursive: true, force: true });
    await restore();
    throw e;
  }
  const guest = provider.guest(name)!;
  const stop = async (): Promise<void> => {
    await provider.deleteInstance(name);
    if (ownStateDir) await rm(stateDir, { recursive: true, force: true });
  };
  if (opts.waitReady !== false) {
    try {
      await guest.waitReady(opts.readyTimeoutMs ?? 120_000);
    } catch (e) {
      // The caller may fall back to the namespace VM: leave `<p>-vm` as that flavour needs it.
      await stop().catch(() => undefined);
      await restore();
      throw e;
    }
  }
  return { provider, name, ip: instance.ips.private[0]!, guest, image, stop };
}
