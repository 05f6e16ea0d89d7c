// Files the worker side leaves on disk, with real namespaces and wireguard-go: `wgctl inspect
// --output` is written whole and 0600 even over an existing file, setup needs no VM private key,
// and wireguard-go's logs are bounded and go with their device.
//
//   client netns pwc<rand>: c0 198.18.200.3/24 ── veth ── pod netns pwf<rand>: eth0 198.18.200.2/24 (default route)
//   host: pwg<rand> (a device of the backend test, in no pod netns)
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import { SecretKey } from '../../src/wireguard/keys.js';
import { UapiClient } from '../../src/wireguard/uapi/client.js';
import { KEPT_LOG_BYTES, UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { describeLab } from './root.js';

const WGCTL = fileURLToPath(new URL('../../cmd/wgctl.js', import.meta.url));

describeLab('files of wgctl and wireguard-go (lab)', () => {
  const tag = randomBytes(3).toString('hex');
  const ns = `pwf${tag}`;
  const client = `pwc${tag}`;
  const device = `pwg${randomBytes(6).toString('hex')}`;
  let dir = '';
  let backend: UserspaceBackend;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pwt-files-'));
    backend = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, 'run') });
    await realExec(['ip', 'netns', 'add', ns]);
    await realExec(['ip', 'netns', 'add', client]);
    await realExec(['ip', '-n', client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await realExec(['ip', '-n', client, 'addr', 'add', '198.18.200.3/24', 'dev', 'c0']);
    await realExec(['ip', '-n', client, 'link', 'set', 'c0', 'up']);
    for (const c of [
      ['addr', 'add', '198.18.200.2/24', 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
      ['route', 'add', 'default', 'dev', 'eth0'],
    ]) {
      await realExec(['ip', '-n', ns, ...c]);
    }
  }, 30_000);

  afterAll(async () => {
    if (backend !== undefined && (await backend.owns(device))) await backend.remove(device);
    await realExec(['ip', 'netns', 'del', ns], { okCodes: [0, 1] });
    await realExec(['ip', 'netns', 'del', client], { okCodes: [0, 1] });
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it('inspect --output replaces an existing world-readable file whole, with mode 0600', async () => {
    const out = join(dir, 'pod-network.json');
    await writeFile(out, 'old and longer than nothing\n', { mode: 0o644 });
    const wgctl = (args: string[]) =>
      realExec([process.execPath, WGCTL, ...args, '--direct', '--netns', `/run/netns/${ns}`, '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run')]);
    await wgctl(['inspect', '--output', out]);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(await readFile(out, 'utf8')) as { podip: string; wireguard: Record<string, unknown> };
    expect(doc.podip).toBe('198.18.200.2/24');
    expect(typeof doc.wireguard['private-key']).toBe('string');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]);
    await wgctl(['teardown']);
  }, 30_000);

  it("sets up from a pod-network without the VM's private key, with the public key recorded at inspect", async () => {
    const out = join(dir, 'pn-full.json');
    const wgctl = (args: string[]) =>
      realExec([process.execPath, WGCTL, ...args, '--direct', '--netns', `/run/netns/${ns}`, '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run')]);
    await wgctl(['inspect', '--output', out]);
    const doc = JSON.parse(await readFile(out, 'utf8')) as { wireguard: Record<string, unknown> };
    const vmPublic = SecretKey.fromBase64('private key', doc.wireguard['private-key'] as string).publicKey().toBase64();
    delete doc.wireguard['private-key'];
    const stripped = join(dir, 'pn-no-private-key.json');
    await writeFile(stripped, JSON.stringify(doc));
    try {
      const r = await wgctl(['setup', '--pod-vm-ip', '203.0.113.10', '--config', stripped]);
      expect(r.stdout).toMatch(/^tunnel pwg[0-9a-f]{12} set up in/);
      const device = r.stdout.split(' ')[1]!;
      const peers = (await new UapiClient().get(device)).peers.map((p) => p.publicKey.toBase64());
      expect(peers).toEqual([vmPublic]);
    } finally {
      await wgctl(['teardown']);
    }
  }, 30_000);

  it('while the tunnel is down, the pod netns does not answer for the pod IP itself', async () => {
    const wgctl = (args: string[]) =>
      realExec([process.execPath, WGCTL, ...args, '--direct', '--netns', `/run/netns/${ns}`, '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run')]);
    const ping = async () =>
      (await realExec(['ip', 'netns', 'exec', client, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '198.18.200.2'], { okCodes: [0, 1, 2] })).stdout;
    const out = join(dir, 'pn-down.json');
    await wgctl(['inspect', '--output', out]);
    try {
      const device = (await wgctl(['setup', '--pod-vm-ip', '203.0.113.10', '--config', out])).stdout.split(' ')[1]!;
      // No pod VM behind it: nothing answers, and the pod netns must not either.
      expect(await ping()).toMatch(/ 0 received/);
      const pid = Number((await readFile(join(dir, 'run', `${device}.pid`), 'utf8')).trim());
      expect((await readFile(`/proc/${pid}/comm`, 'utf8')).trim()).toBe('wireguard-go');
      process.kill(pid, 'SIGKILL'); // the daemon this test's wgctl started
      for (let i = 0; i < 100; i++) {
        const links = (await realExec(['ip', '-n', ns, '-j', 'link'])).stdout;
        if (!links.includes(device)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await realExec(['ip', '-n', ns, '-j', 'link'])).stdout).not.toContain(device);
      expect(await ping()).toMatch(/ 0 received/);
    } finally {
      await wgctl(['teardown']);
    }
    expect((await realExec(['ip', '-n', ns, 'route', 'show', 'table', '2151'], { okCodes: [0, 2] })).stdout).toBe('');
    expect(await ping()).toMatch(/ 2 received/);
  }, 30_000);

  it("keeps at most the tail of a dead daemon's log, and removes both logs with the device", async () => {
    const log = backend.logFile(device);
    await backend.create(device, { mtu: 1420 });
    await backend.remove(device);
    expect(await readdir(join(dir, 'run'))).toEqual([]);
    // A daemon that died with a big log: the next one keeps its last KEPT_LOG_BYTES only.
    await writeFile(log, 'x'.repeat(3 * KEPT_LOG_BYTES) + 'the end\n');
    await backend.create(device, { mtu: 1420 });
    const kept = await readFile(`${log}.1`, 'utf8');
    expect(kept.length).toBe(KEPT_LOG_BYTES);
    expect(kept.endsWith('the end\n')).toBe(true);
    await backend.remove(device);
    expect(await readdir(join(dir, 'run'))).toEqual([]);
  }, 30_000);
});
