// Command line for hack/ scripts: `node dist/tools/sidecar-image/main.js [DIR]` (re)makes the
// sidecar image's build context (./context.ts; default dist/sidecar-image) and prints it as JSON.
import { join } from 'node:path';
import { PROJECT_ROOT } from '../bundle.js';
import { realExec } from '../../src/exec.js';
import { defaultCacheDir } from '../podvm-image/image.js';
import { buildSidecarImageContext, SIDECAR_IMAGE_CONTEXT } from './context.js';

async function main(argv: string[]): Promise<void> {
  if (argv.length > 1 || argv[0]?.startsWith('-') === true) {
    process.stderr.write('usage: node dist/tools/sidecar-image/main.js [DIR]   (default dist/sidecar-image)\n');
    process.exitCode = 2;
    return;
  }
  const outDir = argv[0] ?? join(PROJECT_ROOT, SIDECAR_IMAGE_CONTEXT);
  const ctx = await buildSidecarImageContext({ exec: realExec, outDir, cacheDir: defaultCacheDir() });
  process.stdout.write(`${JSON.stringify(ctx, null, 2)}\n`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`sidecar-image: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
