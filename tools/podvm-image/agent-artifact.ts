// The pod-VM agent as one artifact, a folder (and, for shipping, a tarball of it) that a VM image
// takes as it is:
//   bin/node                     the build machine's node, stripped (Node 20)
//   bin/peerpod-wg-agent         a two-line launcher
//   lib/peerpod-wg-agent.mjs     esbuild bundle of cmd/peerpod-wg-agent (ESM, createRequire banner)
//   lib/process-user-data.mjs    the guest's process-user-data (cmd/process-user-data.ts)
//   lib/netlink.node             the `netlink` package's prebuilt addon (kernel backend only)
//   lib/koffi.node               koffi's prebuilt addon (setns, to reach a device in another netns)
//   systemd/peerpod-wg-agent.service
// The bundles are made from the tsc output in dist/ (what the tests ran), so build first. The
// build fails if a cloud SDK found its way into a pod-VM bundle. Putting the folder into an image
// is image.ts's job; the lab's own guest tools are a folder of their own (./guest-tools.ts).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleForNode, cloudSdksIn, DIST_ROOT, koffiAddon, netlinkAddon, PROJECT_ROOT, strippedNode } from '../bundle.js';
import { PeerpodError } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';

/** Where the artifact lives in a pod VM. */
export const AGENT_INSTALL_DIR = '/opt/peerpod-wg-agent';

export interface AgentArtifactOptions {
  exec: Exec;
  /** The folder to (re)create. */
  outDir: string;
  /** The node binary to ship; default this process's. */
  node?: string;
  /** Where stripped node binaries are kept between builds. */
  cacheDir: string;
}

export interface AgentArtifact {
  dir: string;
  /** sha256 over the artifact's files, for cache keys. */
  digest: string;
  bundleBytes: number;
}

export const LAUNCHER = `#!/bin/sh
# peerpod-wg-agent launcher: the bundled agent on the node shipped beside it.
d=$(dirname "$(readlink -f "$0")")
exec "$d/node" "$d/../lib/peerpod-wg-agent.mjs" "$@"
`;

export async function buildAgentArtifact(opts: AgentArtifactOptions): Promise<AgentArtifact> {
  const entries: Record<string, string> = {
    'peerpod-wg-agent': join(DIST_ROOT, 'cmd', 'peerpod-wg-agent.js'),
    'process-user-data': join(DIST_ROOT, 'cmd', 'process-user-data.js'),
  };
  for (const [name, path] of Object.entries(entries)) {
    if (!existsSync(path)) {
      throw new PeerpodError('ENOTFOUND', `${path} is missing: run \`npx tsc -p .\` before building the agent artifact (${name})`, {
        op: 'agent-artifact',
      });
    }
  }
  const addon = netlinkAddon(PROJECT_ROOT);
  if (!existsSync(addon)) throw new PeerpodError('ENOTFOUND', `${addon} is missing: run npm ci`, { op: 'agent-artifact' });
  const ffi = koffiAddon(PROJECT_ROOT);
  if (!existsSync(ffi)) throw new PeerpodError('ENOTFOUND', `${ffi} is missing: run npm ci`, { op: 'agent-artifact' });

  const work = `${opts.outDir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'bin'), { recursive: true });
  await mkdir(join(work, 'lib'));
  await mkdir(join(work, 'systemd'));
  const { inputs } = await bundleForNode({ entries, outDir: join(work, 'lib') });
  const leaked = cloudSdksIn(inputs);
  if (leaked.length > 0) {
    throw new PeerpodError('EINVAL', `a cloud SDK would be bundled into the pod-VM agent: ${leaked.slice(0, 3).join(', ')}`, { op: 'agent-artifact' });
  }
  await copyFile(addon, join(work, 'lib', 'netlink.node'));
  await copyFile(ffi, join(work, 'lib', 'koffi.node'));
  await copyFile(await strippedNode(opts.exec, opts.node ?? process.execPath, opts.cacheDir), join(work, 'bin', 'node'));
  await chmod(join(work, 'bin', 'node'), 0o755);
  await writeFile(join(work, 'bin', 'peerpod-wg-agent'), LAUNCHER, { mode: 0o755 });
  await copyFile(join(PROJECT_ROOT, 'packaging', 'systemd', 'peerpod-wg-agent.service'), join(work, 'systemd', 'peerpod-wg-agent.service'));

  const hash = createHash('sha256');
  let bundleBytes = 0;
  for (const name of [...Object.keys(entries).map((n) => `lib/${n}.mjs`), 'lib/netlink.node', 'lib/koffi.node', 'bin/peerpod-wg-agent', 'systemd/peerpod-wg-agent.service']) {
    const data = await readFile(join(work, name));
    if (name.endsWith('.mjs')) bundleBytes += data.length;
    hash.update(name).update(data);
  }
  const nodeStat = await stat(join(work, 'bin', 'node'));
  hash.update(`bin/node:${nodeStat.size}:${opts.node ?? process.execPath}`);
  await rm(opts.outDir, { recursive: true, force: true });
  await rename(work, opts.outDir);
  return { dir: opts.outDir, digest: hash.digest('hex'), bundleBytes };
}
