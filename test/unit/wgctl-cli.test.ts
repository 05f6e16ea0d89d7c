// The entry points as processes, where they answer before touching any namespace: versions,
// arguments they refuse, wgctl's state-folder lock, and what wgctl says about input it cannot use.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../src/exec.js';
import { StateLock } from '../../src/state/lock.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';

const bin = (name: string) => fileURLToPath(new URL(`../../cmd/${name}.js`, import.meta.url));
const WGCTL = bin('wgctl');

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwt-wgctl-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const wgctl = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  realExec([process.execPath, WGCTL, ...args, '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--socket', join(dir, 'none.sock')], {
    okCodes: [0, 1, 2],
    env: { ...process.env, ...env },
  });

describe('wgctl working directly', () => {
  it('waits a bounded time for the state folder and then says who holds it', async () => {
    const lock = await StateLock.acquire(join(dir, 'state'), { command: 'peerpod-wg-sidecar' });
    try {
      const started = Date.now();
      const r = await wgctl(['teardown', '--netns', '/run/netns/pwt-none'], { WG_LOCK_WAIT_MS: '300' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`in use by pid ${process.pid} \\(peerpod-wg-sidecar\\) since .*; waited 300 ms`));
    } finally {
      await lock.release();
    }
  });
});

describe('wgctl integer settings', () => {
  it('refuses a bad one with exit code 2, naming the flag or variable and what is valid', async () => {
    const flag = await wgctl(['inspect', '--netns', '/run/netns/pwt-none', '--listen-port', '70000']);
    expect([flag.code, flag.stderr]).toEqual([2, expect.stringContaining('--listen-port: "70000" is not valid: expected an integer 1-65535')]);
    const env = await wgctl(['inspect', '--netns', '/run/netns/pwt-none'], { WG_KEEPALIVE: '-1' });
    expect([env.code, env.stderr]).toEqual([2, expect.stringContaining('WG_KEEPALIVE: "-1" is not valid: expected an integer 0-65535')]);
  });
});

describe('every entry point', () => {
  it('prints its version from package.json', async () => {
    const { version } = JSON.parse(await readFile(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };
    for (const name of ['wgctl', 'peerpod-wg-agent', 'peerpod-wg-sidecar']) {
      const r = await realExec([process.execPath, bin(name), '--version']);
      expect(r.stdout).toBe(`${name} ${version}\n`);
    }
  });

  it('the sidecar refuses unknown arguments with exit code 2, before it starts anything', async () => {
    for (const args of [['--state-dir', '/tmp/x'], ['serve']]) {
      const r = await realExec([process.execPath, bin('peerpod-wg-sidecar'), ...args], { okCodes: [0, 1, 2], timeoutMs: 10_000 });
      expect([args[0], r.code]).toEqual([args[0], 2]);
      expect(r.stderr).toMatch(/EINVAL: (Unknown option '--state-dir'|unexpected arguments "serve")/);
    }
  });
});

describe('wgctl --config that is not JSON', () => {
  it('says where and what, and never echoes the text (it may hold a key)', async () => {
    // A key that starts with a letter, so the fault is always at its first character (one that
    // starts with a digit would read as a number and fail one character later).
    let secret = generateKeyPair().privateKey.reveal();
    while (!/^[A-Za-z]/.test(secret)) secret = generateKeyPair().privateKey.reveal();
    const path = join(dir, 'pn.json');
    // A key someone forgot to quote: V8's own message would quote the text around it.
    await writeFile(path, `{\n  "wireguard": {"private-key": ${secret}, "listen-port": 51900}\n}\n`);
    const r = await wgctl(['setup', '--direct', '--netns', '/run/netns/pwt-none', '--pod-vm-ip', '203.0.113.10', '--config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not valid JSON: line 2 column 32: expected a value/);
    expect(r.stderr).not.toContain(secret.slice(0, 8));
  });
});
