// The build context of the sidecar's container image (Dockerfile at the top of the repository):
// a folder the Dockerfile copies as it is, so that `podman build` needs no npm and no node of its
// own, only apt for wireguard-go and iproute2:
//   bin/node                     the build machine's node, stripped (Node 20), as for the pod VM
//   lib/peerpod-wg-sidecar.mjs   esbuild bundle of cmd/peerpod-wg-sidecar (no cloud SDK in it)
//   lib/chunk-*.mjs              the cloud SDKs, loaded only when CLOUD_PROVIDER asks for them)
//   lib/netlink.node             the `netlink` package's addon, for WG_BACKEND=kernel
//   lib/koffi.node               koffi's addon (setns: the kernel backend's sockets in pod netns)
// Made from the tsc output in dist/, so build first. Which tools and libraries go around it is the
// Dockerfile's business (packaging/image/rootfs.sh).
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleForNode, cloudSdksIn, DIST_ROOT, koffiAddon, netlinkAddon, strippedNode } from '../bundle.js';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';

/** Where the Dockerfile expects the context folder, relative to the repository. */
export const SIDECAR_IMAGE_CONTEXT = 'dist/sidecar-image';

export interface SidecarImageContext {
  dir: string;
  nodeVersion: string;
  bundleBytes: number;
  nodeBytes: number;
}

export async function buildSidecarImageContext(opts: { exec: Exec; outDir: string; cacheDir: string; node?: string }): Promise<SidecarImageContext> {
  // The image must run what the tests ran: Node 20, the project's engine.
  if (opts.node === undefined && !process.version.startsWith('v20.')) {
    throw new PeerpodError('EUNSUPPORTED', `the image ships the build machine's node, which is ${process.version}: build with Node 20`, {
      op: 'sidecar-image',
    });
  }
  const entry = join(DIST_ROOT, 'cmd', 'peerpod-wg-sidecar.js');
  if (!existsSync(entry)) {
    throw new PeerpodError('ENOTFOUND', `${entry} is missing: run \`npx tsc -p .\` first`, { op: 'sidecar-image' });
  }
  const addon = netlinkAddon();
  if (!existsSync(addon)) throw new PeerpodError('ENOTFOUND', `${addon} is missing: run npm ci`, { op: 'sidecar-image' });
  const ffi = koffiAddon();
  if (!existsSync(ffi)) throw new PeerpodError('ENOTFOUND', `${ffi} is missing: run npm ci`, { op: 'sidecar-image' });

  const work = `${opts.outDir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'bin'), { recursive: true });
  await mkdir(join(work, 'lib'));
  const { entryInputs } = await bundleForNode({ entries: { 'peerpod-wg-sidecar': entry }, outDir: join(work, 'lib'), splitting: true });
  // The cloud SDKs ride along for the firewall rule (CLOUD_PROVIDER), in chunks loaded only then.
  const leaked = cloudSdksIn(entryInputs['peerpod-wg-sidecar'] ?? []);
  if (leaked.length > 0) {
    throw new PeerpodError('EINVAL', `a cloud SDK would load with the sidecar at start: ${leaked.slice(0, 3).join(', ')}`, { op: 'sidecar-image' });
  }
  await copyFile(addon, join(work, 'lib', 'netlink.node'));
  await copyFile(ffi, join(work, 'lib', 'koffi.node'));
  await copyFile(await strippedNode(opts.exec, opts.node ?? process.execPath, opts.cacheDir), join(work, 'bin', 'node'));
  await chmod(join(work, 'bin', 'node'), 0o755);
  await rm(opts.outDir, { recursive: true, force: true });
  await rename(work, opts.outDir);
  return {
    dir: opts.outDir,
    nodeVersion: process.version,
    bundleBytes: (await stat(join(opts.outDir, 'lib', 'peerpod-wg-sidecar.mjs'))).size,
    nodeBytes: (await stat(join(opts.outDir, 'bin', 'node'))).size,
  };
}
