// Command line for the pod VM image builder, for people and hack/ scripts:
//   node dist/tools/podvm-image/main.js image              build (or reuse) the boot image, print it as JSON
//   node dist/tools/podvm-image/main.js agent DIR [TAR]    the agent artifact, and a tarball
// The work is done by ./image.ts and ./agent-artifact.ts; this only parses arguments and prints.
import { realExec } from '../../src/exec.js';
import { buildAgentArtifact } from './agent-artifact.js';
import { buildPodVmImage, defaultCacheDir } from './image.js';

async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb === 'image') {
    const image = await buildPodVmImage({ exec: realExec, log: (m) => process.stderr.write(`${m}\n`) });
    process.stdout.write(`${JSON.stringify(image, null, 2)}\n`);
    return;
  }
  if (verb === 'agent' && rest[0] !== undefined) {
    const a = await buildAgentArtifact({ exec: realExec, outDir: rest[0], cacheDir: defaultCacheDir() });
    if (rest[1] !== undefined) {
      // Owner and times are left as they are: the tarball is for shipping, not for cache keys.
      await realExec(['tar', '-C', a.dir, '--owner=0', '--group=0', '-czf', rest[1], '.'], { timeoutMs: 120_000 });
    }
    process.stdout.write(`${JSON.stringify({ ...a, tarball: rest[1] ?? null }, null, 2)}\n`);
    return;
  }
  process.stderr.write('usage: main.js image | main.js agent DIR [TARBALL]\n');
  process.exitCode = 2;
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`podvm-image: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
