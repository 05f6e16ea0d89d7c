// One program as one ESM file for node, with no node_modules beside it: the esbuild bundle that
// the pod-VM agent artifact (tools/podvm-image/agent-artifact.ts) and the sidecar's container image
// (tools/sidecar-image/) ship, and the stripped node that runs it. What goes around the bundle
// (launchers, units, images) is their callers' job. esbuild is a devDependency: only a build
// machine has it, so it is loaded on demand.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Exec } from '../src/exec.js';

/** dist/ of this build (this file is dist/tools/bundle.js); bundles are made from its tsc output. */
export const DIST_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const PROJECT_ROOT = join(DIST_ROOT, '..');

const CLOUD_SDKS = [/node_modules\/@aws-sdk\//, /node_modules\/@azure\//, /node_modules\/@smithy\//];

/**
 * The inputs of a bundle that come from a cloud SDK. The pod VM needs none; the sidecar loads one
 * only when CLOUD_PROVIDER asks it to manage the firewall rule, from a chunk of its own.
 */
export function cloudSdksIn(inputs: readonly string[]): string[] {
  return inputs.filter((i) => CLOUD_SDKS.some((re) => re.test(i)));
}

export interface BundleOptions {
  /** Output name (without extension) → the tsc-emitted .js entry point. */
  entries: Record<string, string>;
  /** Where the <name>.mjs files go. */
  outDir: string;
  /**
   * Put what is loaded with import() into chunks of its own (chunk-*.mjs beside the entries), so
   * that it is read only when it is used (the sidecar's cloud SDKs).
   */
  splitting?: boolean;
}

export interface BundleResult {
  /** Every input esbuild read. */
  inputs: string[];
  /** The inputs in each entry's own output file, by entry name: what start-up loads. */
  entryInputs: Record<string, string[]>;
}

/**
 * Bundle each entry into <outDir>/<name>.mjs and return the input files esbuild read. The
 * `netlink` package's addon is loaded from `./netlink.node` beside the bundle, and koffi's from
 * `./koffi.node`, where the caller must put them (netlinkAddon(), koffiAddon()).
 */
export async function bundleForNode(opts: BundleOptions): Promise<BundleResult> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: opts.entries,
    outdir: opts.outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: opts.splitting === true,
    chunkNames: 'chunk-[hash]',
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
      {
        // koffi looks for its addon in sibling packages (@koromix/koffi-<platform>), which a bundle
        // does not have. Its addon alone is the whole API we use (load, func): take it from beside
        // the bundle. Loaded only where a setns window is opened (src/wireguard/kernel/netns-socket.ts).
        name: 'koffi-addon-beside-bundle',
        setup(build) {
          build.onResolve({ filter: /^koffi$/ }, () => ({ path: 'koffi', namespace: 'peerpod-koffi' }));
          build.onLoad({ filter: /.*/, namespace: 'peerpod-koffi' }, () => ({
            contents: "module.exports = require('./koffi.node');",
            loader: 'js',
          }));
          build.onResolve({ filter: /^\.\/koffi\.node$/ }, () => ({ path: './koffi.node', external: true }));
        },
      },
    ],
  });
  const entryInputs: Record<string, string[]> = {};
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    const name = Object.keys(opts.entries).find((n) => file.endsWith(`/${n}.mjs`));
    if (name !== undefined) entryInputs[name] = Object.keys(out.inputs);
  }
  return { inputs: Object.keys(result.metafile.inputs), entryInputs };
}

/** The `netlink` package's prebuilt addon, which a bundle loads from beside itself. */
export function netlinkAddon(projectRoot = PROJECT_ROOT): string {
  return join(projectRoot, 'node_modules', 'netlink', 'prebuilds', 'linux-x64', 'node.napi.node');
}

/** koffi's prebuilt addon for this platform, which a bundle loads from beside itself. */
export function koffiAddon(projectRoot = PROJECT_ROOT): string {
  return join(projectRoot, 'node_modules', '@koromix', `koffi-${process.platform}-${process.arch}`, `${process.platform}_${process.arch}`, 'koffi.node');
}

/** A copy of `node` without debug symbols (99 → 86 MB here), cached by the source's identity. */
export async function strippedNode(exec: Exec, node: string, cacheDir: string): Promise<string> {
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
