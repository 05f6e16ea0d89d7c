// Builds the pod VM's boot image: Debian's cloud kernel (./kernel.ts) and one initramfs holding
// busybox (static), iproute2's `ip`, the kernel modules the guest needs (in load order), the agent
// artifact with its node (./agent-artifact.ts), the shared libraries of those binaries, and the
// generated /init (./init-script.ts). Everything lands in a cache folder, keyed by what went in, so
// a second build with the same inputs costs a few hashes; the first downloads ~27 MB of kernel.
// Booting it is src/provider/local/'s job.
//
// Cache: $PEERPOD_PODVM_CACHE, default /var/cache/peerpod-wireguard/podvm:
//   kernel/<release>/       the unpacked kernel package, with modules.dep
//   node/node-<id>          stripped copies of node
//   images/<key>/           initrd.cpio, image.json (what went in)
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Exec } from '../../src/exec.js';
import { AGENT_INSTALL_DIR, buildAgentArtifact } from './agent-artifact.js';
import { buildGuestTools, type GuestTools } from './guest-tools.js';
import { type CpioEntry, cpioEntryHead, cpioTrailer, pad4, parentDirs } from './cpio.js';
import { initScript } from './init-script.js';
import { ensureGuestKernel, moduleLoadOrder } from './kernel.js';

export const DEFAULT_CACHE_DIR = '/var/cache/peerpod-wireguard/podvm';

/**
 * Kernel modules the guest loads, by name; their dependencies come along. virtio_net needs
 * failover/net_failover; the NoCloud seed is a cdrom on virtio-scsi (sr_mod, cdrom, isofs);
 * virtio_console carries the lab's command channel.
 */
export const GUEST_MODULES = ['virtio_pci', 'virtio_net', 'virtio_scsi', 'sr_mod', 'isofs', 'virtio_rng', 'virtio_console', 'wireguard'] as const;

/**
 * Real tools instead of busybox applets: iproute2's `ip` does netns, batch and JSON, busybox's does
 * none of them; and busybox's nsenter runs its own `ip` applet rather than the `ip` on PATH.
 */
const REAL_TOOLS = new Set(['ip', 'nsenter']);

export function defaultCacheDir(): string {
  return process.env['PEERPOD_PODVM_CACHE'] ?? DEFAULT_CACHE_DIR;
}

export interface BuildImageOptions {
  exec: Exec;
  cacheDir?: string;
  /** Programs that are not the product, in a folder of their own (the lab's: lab/guest/tools.ts). */
  guestTools?: GuestTools;
  log?: (message: string) => void;
}

export type { PodVmImage } from '../../src/provider/local/guest-protocol.js';
import type { PodVmImage } from '../../src/provider/local/guest-protocol.js';

export interface FileSource {
  /** Path inside the image, relative. */
  path: string;
  /** Host file whose content goes there. */
  source: string;
  mode: number;
}

/** Shared libraries of a binary from `ldd` output; a static binary has none. */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)\s*$/.exec(line);
    if (m?.[1] !== undefined) out.push(m[1]);
  }
  return out;
}

export async function librariesOf(exec: Exec, binary: string): Promise<string[]> {
  const r = await exec(['ldd', binary], { okCodes: [0, 1], timeoutMs: 30_000 });
  return r.code === 0 ? parseLdd(r.stdout) : [];
}

export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

/** Write the archive: folders, device nodes, symlinks, then files, then the trailer. */
export async function writeCpio(path: string, entries: { dirs: string[]; links: [string, string][]; files: FileSource[]; init: string }): Promise<number> {
  const f = await open(path, 'w', 0o644);
  let ino = 1;
  let bytes = 0;
  const put = async (b: Buffer): Promise<void> => {
    await f.write(b);
    bytes += b.length;
  };
  try {
    const head = (e: CpioEntry): Promise<void> => put(cpioEntryHead(e, ino++));
    for (const d of entries.dirs) await head({ kind: 'dir', path: d });
    await head({ kind: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 });
    await head({ kind: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 });
    for (const [p, target] of entries.links) await head({ kind: 'symlink', path: p, target });
    const init = Buffer.from(entries.init, 'utf8');
    await head({ kind: 'file', path: 'init', size: init.length, mode: 0o755 });
    await put(Buffer.concat([init, Buffer.alloc(pad4(init.length))]));
    for (const file of entries.files) {
      const data = await readFile(file.source);
      await head({ kind: 'file', path: file.path, size: data.length, mode: file.mode });
      await put(data);
      await put(Buffer.alloc(pad4(data.length)));
    }
    await put(cpioTrailer());
    await f.sync();
  } finally {
    await f.close();
  }
  return bytes;
}

/** Build (or take from the cache) the kernel and initramfs of the pod VM. */
export async function buildPodVmImage(opts: BuildImageOptions): Promise<PodVmImage> {
  const t0 = Date.now();
  const { exec } = opts;
  const log = opts.log ?? (() => undefined);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await mkdir(cacheDir, { recursive: true });

  const kernel = await ensureGuestKernel({ exec, cacheDir });
  const modules = (await moduleLoadOrder(exec, kernel, GUEST_MODULES)).map((m) => relative(kernel.root, m));

  // The artifact is rebuilt every time (a second); the image only when its digest changed.
  const agentTmp = join(cacheDir, 'agent-build');
  const agent = await buildAgentArtifact({ exec, outDir: agentTmp, cacheDir });
  const agentRel = AGENT_INSTALL_DIR.slice(1);
  const tools = opts.guestTools === undefined ? null : await buildGuestTools(opts.guestTools, join(cacheDir, 'guest-tools-build'));
  const toolsRel = opts.guestTools?.installDir.slice(1) ?? null;

  const files: FileSource[] = [];
  const busybox = '/bin/busybox';
  const ip = await realpath('/usr/sbin/ip').catch(() => realpath('/sbin/ip'));
  const nsenter = await realpath('/usr/bin/nsenter');
  files.push({ path: 'bin/busybox', source: busybox, mode: 0o755 });
  files.push({ path: 'usr/sbin/ip', source: ip, mode: 0o755 });
  files.push({ path: 'usr/bin/nsenter', source: nsenter, mode: 0o755 });
  for (const f of await listFiles(agent.dir)) {
    const st = await stat(f);
    files.push({ path: join(agentRel, relative(agent.dir, f)), source: f, mode: st.mode & 0o777 });
  }
  if (tools !== null && toolsRel !== null) {
    for (const f of await listFiles(tools.dir)) {
      const st = await stat(f);
      files.push({ path: join(toolsRel, relative(tools.dir, f)), source: f, mode: st.mode & 0o777 });
    }
  }
  for (const m of modules) files.push({ path: m, source: join(kernel.root, m), mode: 0o644 });
  const libs = new Set<string>();
  for (const bin of [busybox, ip, nsenter, join(agent.dir, 'bin', 'node')]) for (const l of await librariesOf(exec, bin)) libs.add(l);
  // The loader and libraries go where ldd found them; the binaries name those paths.
  for (const l of [...libs].sort()) files.push({ path: l.slice(1), source: await realpath(l), mode: 0o755 });

  const applets = (await exec([busybox, '--list'])).stdout.split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  const taken = new Set(files.map((f) => f.path));
  const links: [string, string][] = applets
    .filter((a) => !REAL_TOOLS.has(a) && !taken.has(`bin/${a}`) && !taken.has(`usr/bin/${a}`))
    .map((a) => [`bin/${a}`, 'busybox'] as [string, string]);

  const init = initScript({ modules, agentDir: agentRel });
  const dirs = parentDirs([...files.map((f) => f.path), ...links.map(([p]) => p), 'dev/x', 'proc/x', 'sys/x', 'run/x', 'tmp/x', 'media/cidata/x', 'root/x']);

  const hash = createHash('sha256').update(kernel.release).update(init).update(agent.digest).update(tools?.digest ?? 'no guest tools');
  for (const f of files) {
    if (f.path.startsWith(agentRel) || (toolsRel !== null && f.path.startsWith(toolsRel))) continue; // covered by their digests
    const st = await stat(f.source);
    hash.update(`${f.path}:${f.source}:${st.size}:${st.mtimeMs}:${f.mode}`);
  }
  for (const [p, t] of links) hash.update(`${p}->${t}`);
  const key = hash.digest('hex').slice(0, 16);

  const imageDir = join(cacheDir, 'images', key);
  const initrd = join(imageDir, 'initrd.cpio');
  let built = false;
  if (!existsSync(join(imageDir, 'image.json'))) {
    log(`building pod VM image ${key} (kernel ${kernel.release}, ${modules.length} modules, ${files.length} files)`);
    const work = `${imageDir}.tmp-${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const bytes = await writeCpio(join(work, 'initrd.cpio'), { dirs, links, files, init });
    await writeFile(
      join(work, 'image.json'),
      JSON.stringify({ key, kernelRelease: kernel.release, modules, initrdBytes: bytes, agentDigest: agent.digest, bundleBytes: agent.bundleBytes }, null, 2),
    );
    await rm(imageDir, { recursive: true, force: true });
    await rename(work, imageDir);
    await rm(agent.dir, { recursive: true, force: true });
    if (tools !== null) await rm(tools.dir, { recursive: true, force: true });
    built = true;
    await pruneImages(join(cacheDir, 'images'), key);
  } else {
    await rm(agent.dir, { recursive: true, force: true });
    if (tools !== null) await rm(tools.dir, { recursive: true, force: true });
  }
  const initrdBytes = (await stat(initrd)).size;
  return { kernelRelease: kernel.release, kernel: kernel.vmlinuz, initrd, initrdBytes, key, built, ms: Date.now() - t0 };
}

/** Keep the three newest images (and the one just used). */
export async function pruneImages(dir: string, keep: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  const images = await Promise.all(
    entries
      .filter((e) => e.isDirectory() && !e.name.includes('.tmp-'))
      .map(async (e) => ({ name: e.name, mtime: (await stat(join(dir, e.name))).mtimeMs })),
  );
  images.sort((a, b) => b.mtime - a.mtime);
  for (const old of images.slice(3)) {
    if (old.name !== keep) await rm(join(dir, old.name), { recursive: true, force: true });
  }
}
