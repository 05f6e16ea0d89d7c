// Extra programs for a guest image that are not the product: bundles of the caller's choosing (the
// lab gives its backend contract runner, its TCP transfer and a `wg show`, lab/guest/tools.ts),
// put in a folder of their own next to the agent artifact and run with the artifact's node:
//   <dir>/lib/<name>.mjs, and the netlink and koffi addons the bundles load from beside them.
// The agent artifact (./agent-artifact.ts) stays what a pod VM ships; which tools, and where they
// go in the image, is the caller's choice (image.ts's `guestTools`).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerpodError } from '../../src/errors.js';
import { bundleForNode, cloudSdksIn, koffiAddon, netlinkAddon, PROJECT_ROOT } from '../bundle.js';

export interface GuestTools {
  /** Absolute folder in the guest, e.g. /opt/peerpod-lab. */
  installDir: string;
  /** Bundle name → the tsc-emitted .js entry point. */
  entries: Record<string, string>;
}

export async function buildGuestTools(tools: GuestTools, outDir: string): Promise<{ dir: string; digest: string }> {
  if (!/^\/[a-z0-9/_-]+$/.test(tools.installDir) || tools.installDir.includes('..')) {
    throw new PeerpodError('EINVAL', `guest tools folder ${JSON.stringify(tools.installDir)} must be an absolute path of [a-z0-9/_-]`, {
      op: 'guest-tools',
      field: 'installDir',
    });
  }
  for (const [name, path] of Object.entries(tools.entries)) {
    if (!existsSync(path)) {
      throw new PeerpodError('ENOTFOUND', `${path} is missing: run \`npx tsc -p .\` before building the image (guest tool ${name})`, {
        op: 'guest-tools',
      });
    }
  }
  const work = `${outDir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'lib'), { recursive: true });
  const { inputs } = await bundleForNode({ entries: tools.entries, outDir: join(work, 'lib') });
  const leaked = cloudSdksIn(inputs);
  if (leaked.length > 0) {
    throw new PeerpodError('EINVAL', `a cloud SDK would be bundled into a guest tool: ${leaked.slice(0, 3).join(', ')}`, { op: 'guest-tools' });
  }
  await copyFile(netlinkAddon(PROJECT_ROOT), join(work, 'lib', 'netlink.node'));
  await copyFile(koffiAddon(PROJECT_ROOT), join(work, 'lib', 'koffi.node'));
  const hash = createHash('sha256').update(tools.installDir);
  for (const name of [...Object.keys(tools.entries).sort().map((n) => `lib/${n}.mjs`), 'lib/netlink.node', 'lib/koffi.node']) {
    hash.update(name).update(await readFile(join(work, name)));
  }
  await rm(outDir, { recursive: true, force: true });
  await rename(work, outDir);
  return { dir: outDir, digest: hash.digest('hex') };
}
