// The house rules of the source tree, as hack/check-imports.mjs enforces them: src/ imports nothing
// from lab/, tools/, bench/ or test/, and the folders of src/ form no loop. The check runs on this
// tree (it must pass) and on a small tree with each fault planted (it must name every one).
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const check = join(repo, 'hack', 'check-imports.mjs');

function runCheck(args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(process.execPath, [check, ...args], { encoding: 'utf8', stdio: 'pipe' }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, out: err.stdout + err.stderr };
  }
}

describe('source layout', () => {
  it('this tree passes: src/ holds only the product, with no import loops', () => {
    const r = runCheck([]);
    expect(r.out).toMatch(/^check-imports: ok/);
    expect(r.code).toBe(0);
  });

  it('names each planted fault: src/ reaching into lab/ and test/, a folder loop, a file loop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pw-layout-'));
    try {
      const files: Record<string, string> = {
        'src/a/uses-lab.ts': "import { lab } from '../../lab/lab.js';\nexport const a = lab;\n",
        'src/a/uses-test.ts': "export { thrown } from '../../test/support/errors.js';\n",
        'src/b/one.ts': "import { two } from '../c/two.js';\nexport const one = two;\n",
        'src/c/two.ts': "import type { one } from '../b/one.js';\nexport const two = 2 as typeof one;\n",
        'src/d/x.ts': "export { y } from './y.js';\nexport const x = 1;\n",
        'src/d/y.ts': "export { x } from './x.js';\nexport const y = 1;\n",
        'cmd/tool.ts': "import '../tools/build.js';\n",
        'lab/lab.ts': "import { one } from '../src/b/one.js';\nexport const lab = one;\n",
      };
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), text);
      }
      const r = runCheck(['--root', dir]);
      expect(r.code).toBe(1);
      expect(r.out).toContain("src/a/uses-lab.ts:1: src/ imports '../../lab/lab.js'");
      expect(r.out).toContain("src/a/uses-test.ts:1: src/ imports '../../test/support/errors.js'");
      expect(r.out).toMatch(/folder cycle: src\/b -> src\/c .*src\/c -> src\/b/);
      expect(r.out).toMatch(/file cycle: src\/d\/x\.ts -> src\/d\/y\.ts -> src\/d\/x\.ts/);
      expect(r.out).toContain("cmd/tool.ts:1: cmd/ imports '../tools/build.js'");
      expect(r.out).not.toContain('lab/lab.ts:'); // the lab may import the product
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
