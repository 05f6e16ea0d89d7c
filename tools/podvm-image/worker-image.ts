// The worker guest's boot image: the same Debian cloud kernel as the pod VM (it has the WireGuard
// module, which this host lacks), so that a qemu guest can play the worker node with kernel
// WireGuard. The initramfs holds busybox, node, and the real tools the worker plumbing and the lab
// use (iproute2's ip, nsenter, iptables-nft with its extensions, sysctl, ping, conntrack, ps,
// iperf3), their libraries, and the modules for namespaces, NAT and MSS clamping. Our programs are
// not in it: the guest mounts the host's project folder over virtiofs at the same path
// (./init-script.ts, workerInitScript), so the tests run the very dist/ the host built. Booting it
// is lab/worker-vm.ts's job. Cached like the pod VM image (./image.ts).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { koffiAddon, netlinkAddon, strippedNode } from '../bundle.js';
import type { Exec } from '../../src/exec.js';
import { defaultCacheDir, librariesOf, pruneImages, writeCpio, type FileSource, type PodVmImage } from './image.js';
import { parentDirs } from './cpio.js';
import { workerInitScript } from './init-script.js';
import { ensureGuestKernel, moduleLoadOrder } from './kernel.js';

/** Modules of the worker guest: the command channel, virtiofs, WireGuard, veth/bridge, nftables NAT and the xt matches we use. */
export const WORKER_GUEST_MODULES = [
  'virtio_pci', 'virtio_rng', 'virtio_console', 'virtiofs', 'wireguard', 'veth', 'bridge', 'tun',
  'nf_tables', 'nft_compat', 'nft_chain_nat', 'nft_ct', 'nf_conntrack_netlink', 'xt_MASQUERADE', 'xt_TCPMSS',
  'xt_conntrack', 'xt_tcpudp', 'xt_nat', 'xt_addrtype', 'xt_multiport',
  // For the bench's VXLAN rows (CAA's tunnel: tc mirred, raw-table NOTRACK).
  'vxlan', 'sch_ingress', 'cls_u32', 'act_mirred', 'xt_CT', 'xt_comment',
] as const;

/** Host binaries copied in at the same path (busybox covers the rest). */
const WORKER_TOOLS = [
  '/usr/sbin/ip', '/usr/bin/nsenter', '/usr/sbin/xtables-nft-multi', '/usr/sbin/sysctl', '/usr/bin/ping',
  '/usr/sbin/conntrack', '/usr/bin/ps', '/usr/bin/iperf3', '/usr/sbin/tc', '/usr/bin/wireguard-go', '/usr/bin/time',
];
/** iptables-nft is one binary under many names. */
const XTABLES_NAMES = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];
/** iptables loads its match and target extensions with dlopen, which ldd does not see. */
const XTABLES_EXTENSIONS = '/usr/lib/x86_64-linux-gnu/xtables';
/** Names the busybox applets must not take: the real tools above. */
const REAL = new Set(['ip', 'nsenter', 'sysctl', 'ping', 'ps', 'tc', 'time', ...XTABLES_NAMES]);

export const WORKER_SHARE_TAG = 'peerpod-project';

/** Where the kernel and initramfs are, as for the pod VM. */
export type WorkerVmImage = PodVmImage;

export async function buildWorkerVmImage(opts: { exec: Exec; projectRoot: string; cacheDir?: string; log?: (m: string) => void }): Promise<WorkerVmImage> {
  const t0 = Date.now();
  const { exec } = opts;
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await mkdir(cacheDir, { recursive: true });
  const kernel = await ensureGuestKernel({ exec, cacheDir });
  const modules = (await moduleLoadOrder(exec, kernel, WORKER_GUEST_MODULES)).map((m) => relative(kernel.root, m));

  const files: FileSource[] = [{ path: 'bin/busybox', source: '/bin/busybox', mode: 0o755 }];
  const node = await strippedNode(exec, process.execPath, cacheDir);
  files.push({ path: 'usr/local/bin/node', source: node, mode: 0o755 });
  const binaries = ['/bin/busybox', node];
  for (const tool of WORKER_TOOLS) {
    if (!existsSync(tool)) continue; // iperf3, conntrack, wireguard-go, time are optional: what needs them says so
    files.push({ path: tool.slice(1), source: await realpath(tool), mode: 0o755 });
    binaries.push(tool);
  }
  for (const f of await readdir(XTABLES_EXTENSIONS).catch(() => [] as string[])) {
    const src = join(XTABLES_EXTENSIONS, f);
    files.push({ path: src.slice(1), source: await realpath(src), mode: 0o644 });
  }
  for (const m of modules) files.push({ path: m, source: join(kernel.root, m), mode: 0o644 });
  // The native addons the guest loads from the shared folder need their libraries too (jest's
  // resolver wants librt, for one).
  const unrs = join(opts.projectRoot, 'node_modules', '@unrs', 'resolver-binding-linux-x64-gnu');
  const addons = [koffiAddon(opts.projectRoot), netlinkAddon(opts.projectRoot), ...(await readdir(unrs).catch(() => [] as string[])).filter((f) => f.endsWith('.node')).map((f) => join(unrs, f))];
  const libs = new Set<string>();
  for (const b of [...binaries, ...addons.filter((a) => existsSync(a))]) for (const l of await librariesOf(exec, b)) libs.add(l);
  for (const l of [...libs].sort()) files.push({ path: l.slice(1), source: await realpath(l), mode: 0o755 });

  const links: [string, string][] = XTABLES_NAMES.map((n) => [`usr/sbin/${n}`, 'xtables-nft-multi']);
  const applets = (await exec(['/bin/busybox', '--list'])).stdout.split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  const taken = new Set(files.map((f) => f.path));
  for (const a of applets) {
    if (!REAL.has(a) && !taken.has(`bin/${a}`) && !taken.has(`usr/bin/${a}`)) links.push([`bin/${a}`, 'busybox']);
  }
  const init = workerInitScript({ modules, share: { tag: WORKER_SHARE_TAG, mountpoint: opts.projectRoot } });
  const dirs = parentDirs([...files.map((f) => f.path), ...links.map(([p]) => p), 'dev/x', 'proc/x', 'sys/x', 'run/x', 'tmp/x', 'root/x', 'etc/x', `${opts.projectRoot.slice(1)}/x`]);

  const hash = createHash('sha256').update('worker').update(kernel.release).update(init);
  for (const f of files) {
    const st = await stat(f.source);
    hash.update(`${f.path}:${f.source}:${st.size}:${st.mtimeMs}:${f.mode}`);
  }
  for (const [p, t] of links) hash.update(`${p}->${t}`);
  const key = `worker-${hash.digest('hex').slice(0, 16)}`;
  const imageDir = join(cacheDir, 'images', key);
  const initrd = join(imageDir, 'initrd.cpio');
  let built = false;
  if (!existsSync(join(imageDir, 'image.json'))) {
    opts.log?.(`building worker guest image ${key} (kernel ${kernel.release}, ${modules.length} modules, ${files.length} files)`);
    const work = `${imageDir}.tmp-${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const bytes = await writeCpio(join(work, 'initrd.cpio'), { dirs, links, files, init });
    await writeFile(join(work, 'image.json'), JSON.stringify({ key, kernelRelease: kernel.release, modules, initrdBytes: bytes }, null, 2));
    await rm(imageDir, { recursive: true, force: true });
    await rename(work, imageDir);
    built = true;
    await pruneImages(join(cacheDir, 'images'), key);
  }
  return { kernelRelease: kernel.release, kernel: kernel.vmlinuz, initrd, initrdBytes: (await stat(initrd)).size, key, built, ms: Date.now() - t0 };
}
