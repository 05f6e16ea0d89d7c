import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPeerpodError } from '../../src/errors.js';
import { FilePodStore, podIdOf, type PodRecord } from '../../src/state/store.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { wireguardRecord } from '../support/pod-records.js';

describe('FilePodStore', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pw-store-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const record = (netns: string): PodRecord => wireguardRecord(netns, { podVmIPs: [] });

  it('derives a stable 12-hex id from the netns path', () => {
    expect(podIdOf('/run/netns/cni-1')).toMatch(/^[0-9a-f]{12}$/);
    expect(podIdOf('/run/netns/cni-1')).toBe(podIdOf('/run/netns/cni-1'));
    expect(podIdOf('/run/netns/cni-1')).not.toBe(podIdOf('/run/netns/cni-2'));
  });

  it('writes records atomically and lists them back, leaving no temp files', async () => {
    const store = new FilePodStore(dir);
    const a = record('/run/netns/a');
    await store.write(a);
    await store.write({ ...a, phase: 'ready' });
    await store.write(record('/run/netns/b'));
    const all = await store.list();
    expect(all.map((r) => r.netns).sort()).toEqual(['/run/netns/a', '/run/netns/b']);
    expect((await store.read(a.id))?.phase).toBe('ready');
    expect(await readdir(join(dir, 'pods', a.id))).toEqual(['record.json']);
  });

  it('keeps keys in 0600 files only, and never in the record', async () => {
    const store = new FilePodStore(dir);
    const id = podIdOf('/run/netns/a');
    const key = generateKeyPair().privateKey;
    await store.writeKey(id, 'worker', key);
    const path = join(dir, 'pods', id, 'worker.key');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'pods', id))).mode & 0o777).toBe(0o700);
    expect((await store.readKey(id, 'worker'))?.equals(key)).toBe(true);
    expect(await readFile(join(dir, 'pods', id, 'record.json'), 'utf8')).not.toContain(key.reveal());
  });

  it('refuses a key file that others can read', async () => {
    const store = new FilePodStore(dir);
    const id = podIdOf('/run/netns/b');
    await store.writeKey(id, 'worker', generateKeyPair().privateKey);
    await chmod(join(dir, 'pods', id, 'worker.key'), 0o644);
    await expect(store.readKey(id, 'worker')).rejects.toThrow(/readable by others/);
  });

  it('lists around a corrupt record: moves it aside, keeps its keys, reports it, and lists the others', async () => {
    const own = await mkdtemp(join(tmpdir(), 'pw-store-corrupt-'));
    try {
      const seen: string[] = [];
      const store = new FilePodStore(own, { onProblem: (p) => seen.push(p.id), now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) });
      const good = record('/run/netns/good');
      const bad = record('/run/netns/bad');
      const odd = record('/run/netns/odd');
      for (const r of [good, bad, odd]) await store.write(r);
      await store.writeKey(bad.id, 'worker', generateKeyPair().privateKey);
      await writeFile(join(own, 'pods', bad.id, 'record.json'), '{"id": "' + bad.id + '", "netns": tr');
      await writeFile(join(own, 'pods', odd.id, 'record.json'), '[1, 2]');
      expect((await store.list()).map((r) => r.netns)).toEqual(['/run/netns/good']);
      expect(seen.sort()).toEqual([bad.id, odd.id].sort());
      expect((await readdir(join(own, 'pods', bad.id))).sort()).toEqual(['record.json.corrupt-2026-01-02T03-04-05-000Z', 'worker.key']);
      const problems = await store.problems();
      expect(problems.map((p) => [p.id, p.file.slice(own.length)]).sort()).toEqual(
        [
          [bad.id, `/pods/${bad.id}/record.json.corrupt-2026-01-02T03-04-05-000Z`],
          [odd.id, `/pods/${odd.id}/record.json.corrupt-2026-01-02T03-04-05-000Z`],
        ].sort(),
      );
      // Listing again changes nothing; a new inspect (a new record) ends the report for that pod.
      expect(await store.list()).toHaveLength(1);
      await store.write(bad);
      expect((await store.problems()).map((p) => p.id)).toEqual([odd.id]);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('reports a corrupt record as ESTATE, and removal is idempotent', async () => {
    const store = new FilePodStore(dir);
    const id = podIdOf('/run/netns/c');
    await store.write(record('/run/netns/c'));
    await writeFile(join(dir, 'pods', id, 'record.json'), '{not json');
    await store.read(id).then(
      () => expect('no error').toBe('an error'),
      (e: unknown) => expect(isPeerpodError(e, 'ESTATE')).toBe(true),
    );
    await store.remove(id);
    await store.remove(id);
    expect(await store.read(id)).toBeNull();
  });
});
