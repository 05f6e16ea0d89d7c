// The pod-VM agent as one artifact, a folder (and, for shipping, a tarball of it) that a VM image
// takes as it is:
//   bin/node                     the build machine's node, stripped (Node 20)
//   bin/peerpod-wg-agent         a two-line launcher
//   lib/peerpod-wg-agent.mjs     esbuild bundle of cmd/peerpod-wg-agent (ESM, createRequire banner)
//   lib/process-user-data.mjs    the guest's process-user-data (./guest/process-user-data.ts)
//   lib/backend-contract.mjs     only with `lab: true`: the backend contract runner and
//   lib/lab-transfer.mjs         the lab's checksummed TCP transfer, and
//   lib/wg-show.mjs              a `wg show` for kernel WireGuard without wireguard-tools (lab images)
//   lib/netlink.node             the `netlink` package's prebuilt addon (kernel backend only)
//   systemd/peerpod-wg-agent.service
// The bundles are made from the tsc output in dist/ (what the tests ran), so build first. The
// build fails if a cloud SDK found its way into a pod-VM bundle. Putting the folder into an image
// is image.ts's job.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PeerpodError } from '../errors.js';
import type { Exec } from '../exec.js';

/** dist/ of this build (this file is dist/src/podvm-image/agent-artifact.js). */
export const DIST_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PROJECT_ROOT = join(DIST_ROOT, '..');
/** Where the artifact lives in a pod VM. */
export const AGENT_INSTALL_DIR = '/opt/peerpod-wg-agent';

const FORBIDDEN_IN_POD_VM = [/node_modules\/@aws-sdk\//, /node_modules\/@azure\//, /node_modules\/@smithy\//];

export interface AgentArtifactOptions {
  exec: Exec;
  /** The folder to (re)create. */
  outDir: string;
  /** Include the lab tools: the backend contract runner, the TCP transfer, wg-show (lab images). */
  lab?: boolean;
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

/** A copy of `node` without debug symbols (99 → 86 MB here), cached by the source's identity. */
async function strippedNode(exec: Exec, node: string, cacheDir: string): Promise<string> {
  const st = await stat(node);
  const key = createHash('sha256').update(`${node}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16);
  const out = join(cacheDir, 'node', `node-${key}`);
  if (existsSync(out)) return out;
  await mkdir(join(cacheDir, 'node'), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  await copyFile(node, tmp);
  await exec(['strip', '--strip-all', tmp], { timeoutMs: 120_000 }).catch(async (e: unknown) => {
    // No binutils: ship it unstripped, only larger.
    void e;
  });
  await chmod(tmp, 0o755);
  await rename(tmp, out);
  return out;
}

export async function buildAgentArtifact(opts: AgentArtifactOptions): Promise<AgentArtifact> {
  const entries: Record<string, string> = {
    'peerpod-wg-agent': join(DIST_ROOT, 'cmd', 'peerpod-wg-agent.js'),
    'process-user-data': join(DIST_ROOT, 'src', 'podvm-image', 'guest', 'process-user-data.js'),
  };
  if (opts.lab === true) {
    entries['backend-contract'] = join(DIST_ROOT, 'test', 'contract', 'backend-contract-main.js');
    entries['lab-transfer'] = join(DIST_ROOT, 'src', 'lab', 'transfer.js');
    entries['wg-show'] = join(DIST_ROOT, 'src', 'podvm-image', 'guest', 'wg-show.js');
  }
  for (const [name, path] of Object.entries(entries)) {
    if (!existsSync(path)) {
      throw new PeerpodError('ENOTFOUND', `${path} is missing: run \`npx tsc -p .\` before building the agent artifact (${name})`, {
        op: 'agent-artifact',
      });
    }
  }
  const addon = join(PROJECT_ROOT, 'node_modules', 'netlink', 'prebuilds', 'linux-x64', 'node.napi.node');
  if (!existsSync(addon)) throw new PeerpodError('ENOTFOUND', `${addon} is missing: run npm ci`, { op: 'agent-artifact' });

  // esbuild is a devDependency: only a build machine has it.
  const esbuild = await import('esbuild');
  const work = `${opts.outDir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'bin'), { recursive: true });
  await mkdir(join(work, 'lib'));
  await mkdir(join(work, 'systemd'));
  const result = await esbuild.build({
    entryPoints: entries,
    outdir: join(work, 'lib'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    // Smaller source parses faster: under TCG every 100 KB costs the agent ~80 ms of start-up.
    minify: true,
    keepNames: true,
    // CommonJS inside an ESM bundle (pino, netlink) uses require and __dirname; give it real ones.
    banner: {
      js: [
        "import { createRequire as __peerpodCreateRequire } from 'node:module';",
        "import { dirname as __peerpodDirname } from 'node:path';",
        "import { fileURLToPath as __peerpodFileURLToPath } from 'node:url';",
        'const require = __peerpodCreateRequire(import.meta.url);',
        'const __filename = __peerpodFileURLToPath(import.meta.url);',
        'const __dirname = __peerpodDirname(__filename);',
      ].join(' '),
    },
    plugins: [
      {
        // netlink finds its addon with node-gyp-build relative to its package folder, which does
        // not exist in a bundle: load the addon shipped beside the bundle instead.
        name: 'netlink-addon-beside-bundle',
        setup(build) {
          build.onResolve({ filter: /^node-gyp-build$/ }, () => ({ path: 'node-gyp-build', namespace: 'peerpod-addon' }));
          build.onLoad({ filter: /.*/, namespace: 'peerpod-addon' }, () => ({
            contents: "module.exports = () => require('./netlink.node');",
            loader: 'js',
          }));
          build.onResolve({ filter: /^\.\/netlink\.node$/ }, () => ({ path: './netlink.node', external: true }));
        },
      },
    ],
  });
  const inputs = Object.keys(result.metafile.inputs);
  const leaked = inputs.filter((i) => FORBIDDEN_IN_POD_VM.some((re) => re.test(i)));
  if (leaked.length > 0) {
    throw new PeerpodError('EINVAL', `a cloud SDK would be bundled into the pod-VM agent: ${leaked.slice(0, 3).join(', ')}`, { op: 'agent-artifact' });
  }
  await copyFile(addon, join(work, 'lib', 'netlink.node'));
  await copyFile(await strippedNode(opts.exec, opts.node ?? process.execPath, opts.cacheDir), join(work, 'bin', 'node'));
  await chmod(join(work, 'bin', 'node'), 0o755);
  await writeFile(join(work, 'bin', 'peerpod-wg-agent'), LAUNCHER, { mode: 0o755 });
  await copyFile(join(PROJECT_ROOT, 'packaging', 'systemd', 'peerpod-wg-agent.service'), join(work, 'systemd', 'peerpod-wg-agent.service'));

  const hash = createHash('sha256');
  let bundleBytes = 0;
  for (const name of [...Object.keys(entries).map((n) => `lib/${n}.mjs`), 'lib/netlink.node', 'bin/peerpod-wg-agent', 'systemd/peerpod-wg-agent.service']) {
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
