// The pod VM's kernel: Debian's cloud kernel, downloaded with `apt-get download`, unpacked with
// `dpkg -x` into the image cache (never installed on the host), and given a modules.dep with
// `depmod -b`. Which modules the guest loads, and in what order, comes from
// `modprobe -d ROOT --show-depends`. Parsing the tools' output is pure and kept here; building the
// initramfs from the result is image.ts's job.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';

/** The meta-package whose dependency names the current cloud kernel. */
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

export interface GuestKernel {
  /** "6.1.0-56-cloud-amd64" */
  readonly release: string;
  /** The unpacked package: boot/, lib/modules/<release>/. */
  readonly root: string;
  readonly vmlinuz: string;
}

/** "Depends: linux-image-6.1.0-56-cloud-amd64" in `apt-cache depends` output → the package names. */
export function parseAptDepends(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\|?Depends:\s*(linux-image-\S+)\s*$/.exec(line);
    if (m?.[1] !== undefined && !m[1].startsWith('<')) out.push(m[1]);
  }
  return out;
}

/** "linux-image-6.1.0-56-cloud-amd64" → "6.1.0-56-cloud-amd64" (the unsigned flavour too). */
export function kernelReleaseOf(pkg: string): string | null {
  const m = /^linux-image-(\d[^\s]*?-cloud-amd64)(?:-unsigned)?$/.exec(pkg);
  return m?.[1] ?? null;
}

export type ModuleStep = { kind: 'insmod'; path: string } | { kind: 'builtin'; name: string };

/**
 * `modprobe --show-depends` output: "insmod /abs/path.ko [params]" or "builtin name", dependencies
 * first. Unknown lines are errors, so a format change cannot silently drop a module.
 */
export function parseShowDepends(text: string): ModuleStep[] {
  const steps: ModuleStep[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '') continue;
    let m = /^insmod (\S+\.ko(?:\.[a-z]+)?)(?: .*)?$/.exec(line);
    if (m?.[1] !== undefined) {
      steps.push({ kind: 'insmod', path: m[1] });
      continue;
    }
    m = /^builtin (\S+)$/.exec(line);
    if (m?.[1] !== undefined) {
      steps.push({ kind: 'builtin', name: m[1] });
      continue;
    }
    throw new PeerpodError('EINVAL', `unexpected modprobe --show-depends line: ${JSON.stringify(line.slice(0, 120))}`, {
      op: 'module-order',
    });
  }
  return steps;
}

/** The union of several load orders, each module once, at its first position. */
export function mergeLoadOrders(orders: readonly (readonly ModuleStep[])[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const order of orders) {
    for (const s of order) {
      if (s.kind !== 'insmod' || seen.has(s.path)) continue;
      seen.add(s.path);
      out.push(s.path);
    }
  }
  return out;
}

/** Which cloud-kernel package apt offers now, or null when apt knows none (no `apt-get update` yet). */
export async function currentKernelPackage(exec: Exec): Promise<string | null> {
  const r = await exec(['apt-cache', 'depends', KERNEL_META_PACKAGE], { okCodes: [0, 100], timeoutMs: 60_000 });
  const pkgs = parseAptDepends(r.stdout).filter((p) => kernelReleaseOf(p) !== null);
  return pkgs[0] ?? null;
}

/**
 * The kernel under `cacheDir/kernel/<release>`, downloaded and unpacked if not yet there. Without
 * an apt answer, the newest kernel already in the cache is used, so a machine whose apt lists are
 * gone still boots what it booted before.
 */
export async function ensureGuestKernel(opts: { exec: Exec; cacheDir: string; pkg?: string }): Promise<GuestKernel> {
  const { exec } = opts;
  const base = join(opts.cacheDir, 'kernel');
  await mkdir(base, { recursive: true });
  let pkg = opts.pkg ?? (await currentKernelPackage(exec));
  if (pkg === null && !hasCachedKernel(base)) {
    // A fresh machine whose apt lists were never fetched: fetch them once.
    await aptUpdate(exec);
    pkg = await currentKernelPackage(exec);
  }
  let release = pkg === null ? null : kernelReleaseOf(pkg);
  if (pkg !== null && release === null) {
    throw new PeerpodError('EINVAL', `${pkg} is not a Debian cloud kernel package (linux-image-<release>-cloud-amd64)`, {
      op: 'guest-kernel',
    });
  }
  if (release === null) {
    const cached = (await readdir(base)).filter((d) => existsSync(join(base, d, '.complete'))).sort();
    release = cached.at(-1) ?? null;
    if (release === null) {
      throw new PeerpodError(
        'ENOTFOUND',
        `apt knows no ${KERNEL_META_PACKAGE} (run apt-get update) and the cache ${base} holds no kernel`,
        { op: 'guest-kernel' },
      );
    }
  }
  const root = join(base, release);
  const kernel: GuestKernel = { release, root, vmlinuz: join(root, 'boot', `vmlinuz-${release}`) };
  if (existsSync(join(root, '.complete'))) return kernel;

  // Unpack beside the final place and rename, so an interrupted build never looks complete.
  const work = `${root}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    // env -C: apt-get download writes into its working directory, and exec takes no cwd.
    const download = (): Promise<unknown> =>
      exec(['env', '-C', work, 'apt-get', 'download', '-q', '-o', 'APT::Sandbox::User=root', pkg ?? `linux-image-${release}`], {
        timeoutMs: 300_000,
      });
    // Stale lists name a version the mirror no longer has: refresh them and try once more.
    await download().catch(async () => {
      await aptUpdate(exec);
      await download();
    });
    const debs = (await readdir(work)).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) throw new PeerpodError('EEXEC', `apt-get download left ${debs.length} .deb files in ${work}`, { op: 'guest-kernel' });
    const deb = join(work, debs[0]!);
    await exec(['dpkg-deb', '-x', deb, join(work, 'root')], { timeoutMs: 300_000 });
    await rm(deb);
    await exec(['depmod', '-b', join(work, 'root'), release], { timeoutMs: 120_000 });
    await exec(['touch', join(work, 'root', '.complete')]);
    await rm(root, { recursive: true, force: true });
    await rename(join(work, 'root'), root);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return kernel;
}

function hasCachedKernel(base: string): boolean {
  try {
    return readdirSync(base).some((d) => existsSync(join(base, d, '.complete')));
  } catch {
    return false;
  }
}

async function aptUpdate(exec: Exec): Promise<void> {
  await exec(['apt-get', 'update', '-qq'], { timeoutMs: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** Absolute paths of the .ko files for `modules` and their dependencies, in load order. */
export async function moduleLoadOrder(exec: Exec, kernel: GuestKernel, modules: readonly string[]): Promise<string[]> {
  const orders: ModuleStep[][] = [];
  for (const m of modules) {
    const r = await exec(['modprobe', '-d', kernel.root, '-S', kernel.release, '--show-depends', m], { timeoutMs: 30_000 });
    orders.push(parseShowDepends(r.stdout));
  }
  return mergeLoadOrders(orders);
}
