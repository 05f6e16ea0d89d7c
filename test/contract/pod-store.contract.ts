// The PodStore contract (src/state/store.ts): records, keys, pending tunnels and corrupt records,
// run against FilePodStore in a temp folder and MemoryPodStore (test/fakes/pod-store.ts), both in
// the unit tier. What only files can have is in GAPS, with the reason; those cases stay in
// test/unit/state-store.test.ts for the file store. Each case gets a fresh, empty store from the
// runner, with a way to damage a record as a disk or another program would.
import assert from 'node:assert/strict';
import type { StateProblem } from '../../src/state/record-check.js';
import { CORRUPT_SUFFIX } from '../../src/state/record-check.js';
import { pendingIdOf, podIdOf, type PodRecord, type PodStore, type WireguardPodRecord } from '../../src/state/store.js';
import { generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';
import { pendingTunnel, wireguardRecord } from '../support/pod-records.js';
import { rejects, type ContractCase } from './contract.js';

export interface PodStoreContractContext {
  /** Empty, and told (onProblem) about each record list() could not use: they land in `seen`. */
  store: PodStore;
  seen: StateProblem[];
  /** Replace the text of pod `id`'s record, bypassing the store. */
  plantRecordText: (id: string, text: string) => Promise<void>;
}

/** What the memory store cannot have, with the reason. */
export const GAPS = {
  memory: {
    'key files are 0600 and a key that others can read is refused':
      'file modes are a property of files; the memory store hands its keys to nobody else',
    'a record the OS will not let us read stays where it is and is reported as unreadable':
      'only a file system refuses a read (EACCES); memory always answers',
    'a write survives a crash whole or not at all (temp file, fsync, rename)':
      'memory does not survive a crash; the file store is tested for leftover temp files',
  },
} as const;

export const POD_STORE_CONTRACT: readonly ContractCase<PodStoreContractContext>[] = [
  {
    name: 'a record written is read and listed back as an equal copy that the caller may change',
    async run({ store }) {
      const a = wireguardRecord('/run/netns/a');
      const { podInterface: _i, vmPublicKey: _v, workerPublicKey: _w, vmListenPort: _l, keepalive: _k, ...base } = wireguardRecord('/run/netns/b');
      const b: PodRecord = { ...base, tunnelType: 'vxlan', vni: 555, port: 4789 };
      await store.write(a);
      await store.write(b);
      assert.deepEqual(await store.read(a.id), a);
      const all = await store.list();
      assert.deepEqual(all.map((r) => r.netns).sort(), ['/run/netns/a', '/run/netns/b']);
      const got = (await store.read(a.id))!;
      got.phase = 'ready';
      got.podVmIPs.push('203.0.113.99');
      assert.deepEqual(await store.read(a.id), a, 'changing what read() gave changes nothing stored');
    },
  },
  {
    name: 'a write replaces the whole record, never merges into the old one',
    async run({ store }) {
      const a = wireguardRecord('/run/netns/a', { extraPodIPs: ['fd00::21'], pod: 'default/web' });
      await store.write(a);
      const { extraPodIPs: _x, pod: _p, ...rest } = a;
      const next: WireguardPodRecord = { ...rest, phase: 'ready' };
      await store.write(next);
      assert.deepEqual(await store.read(a.id), next);
      assert.equal((await store.list()).length, 1);
    },
  },
  {
    name: 'an unknown pod reads as null; an id that is not 12 hex digits is EINVAL',
    async run({ store }) {
      assert.equal(await store.read(podIdOf('/run/netns/none')), null);
      assert.deepEqual(await store.list(), []);
      await rejects(store.read('../etc'), 'EINVAL', 'read ../etc');
      await rejects(store.write({ ...wireguardRecord('/run/netns/a'), id: 'ABC' }), 'EINVAL', 'write id ABC');
      await rejects(store.writeKey('x', 'worker', generateKeyPair().privateKey), 'EINVAL', 'writeKey id x');
      await rejects(store.remove('1234'), 'EINVAL', 'remove id 1234');
    },
  },
  {
    name: 'keys are written, read back by kind, removed (idempotent), and never appear in records or listings',
    async run({ store }) {
      const r = wireguardRecord('/run/netns/k');
      await store.write(r);
      const worker = generateKeyPair().privateKey;
      const psk = generatePresharedKey();
      await store.writeKey(r.id, 'worker', worker);
      await store.writeKey(r.id, 'psk', psk);
      assert.ok((await store.readKey(r.id, 'worker'))?.equals(worker));
      const back = await store.readKey(r.id, 'psk', 'preshared key');
      assert.ok(back?.equals(psk));
      assert.equal(back?.kind, 'preshared key');
      assert.equal(await store.readKey(r.id, 'other'), null);
      const shown = JSON.stringify([await store.list(), await store.read(r.id), await store.listPending(), await store.problems()]);
      for (const k of [worker, psk]) assert.ok(!shown.includes(k.reveal()), 'a key is in a record or listing');
      assert.ok(!String(back).includes(psk.reveal()) && !JSON.stringify(back).includes(psk.reveal()), 'a read key hides its text');
      const other = generateKeyPair().privateKey;
      await store.writeKey(r.id, 'worker', other);
      assert.ok((await store.readKey(r.id, 'worker'))?.equals(other), 'a key write replaces');
      await store.removeKey(r.id, 'worker');
      await store.removeKey(r.id, 'worker');
      assert.equal(await store.readKey(r.id, 'worker'), null);
      assert.ok((await store.readKey(r.id, 'psk', 'preshared key'))?.equals(psk), 'the other key stays');
    },
  },
  {
    name: 'keys without a record are kept but list nothing',
    async run({ store }) {
      const id = podIdOf('/run/netns/keys-only');
      const key = generateKeyPair().privateKey;
      await store.writeKey(id, 'worker', key);
      assert.deepEqual(await store.list(), []);
      assert.equal(await store.read(id), null);
      assert.ok((await store.readKey(id, 'worker'))?.equals(key));
    },
  },
  {
    name: 'remove drops the record with its keys, and is idempotent',
    async run({ store }) {
      const r = wireguardRecord('/run/netns/r');
      await store.write(r);
      await store.writeKey(r.id, 'worker', generateKeyPair().privateKey);
      await store.remove(r.id);
      await store.remove(r.id);
      await store.remove(podIdOf('/run/netns/never'));
      assert.equal(await store.read(r.id), null);
      assert.equal(await store.readKey(r.id, 'worker'), null);
      assert.deepEqual(await store.list(), []);
    },
  },
  {
    name: 'a pending tunnel is stored with its keys and adopted by a pod: keys move, pending is gone',
    async run({ store }) {
      const worker = generateKeyPair();
      const psk = generatePresharedKey();
      const p = pendingTunnel(worker.publicKey.toBase64(), { pod: 'default/web' });
      await store.writePending(p, { worker: worker.privateKey, psk });
      assert.deepEqual(await store.readPending(p.id), p);
      assert.deepEqual(await store.listPending(), [p]);
      assert.ok(!JSON.stringify(await store.listPending()).includes(worker.privateKey.reveal()), 'no key in pending listings');
      const record = wireguardRecord('/run/netns/adopt', { workerPublicKey: p.workerPublicKey, vmPublicKey: p.vmPublicKey });
      assert.equal(await store.adoptPending(p.id, record), true);
      assert.equal(await store.readPending(p.id), null);
      assert.deepEqual(await store.listPending(), []);
      assert.deepEqual(await store.read(record.id), record);
      assert.ok((await store.readKey(record.id, 'worker'))?.equals(worker.privateKey), 'worker key moved');
      assert.ok((await store.readKey(record.id, 'psk', 'preshared key'))?.equals(psk), 'psk moved');
      assert.equal(await store.adoptPending(p.id, record), false, 'adopted once only');
    },
  },
  {
    name: 'adopting into a pod that has state is ESTATE and leaves the pending tunnel; unknown pending is false',
    async run({ store }) {
      const worker = generateKeyPair();
      const p = pendingTunnel(worker.publicKey.toBase64(), { pod: 'default/web' });
      await store.writePending(p, { worker: worker.privateKey });
      const record = wireguardRecord('/run/netns/taken');
      await store.writeKey(record.id, 'worker', generateKeyPair().privateKey);
      await rejects(store.adoptPending(p.id, record), 'ESTATE', 'adopt into a pod with keys');
      assert.deepEqual(await store.readPending(p.id), p, 'pending untouched');
      assert.equal(await store.readKey(record.id, 'psk', 'preshared key'), null);
      assert.equal(await store.adoptPending(pendingIdOf('nobody'), record), false);
      await store.removePending(p.id);
      await store.removePending(p.id);
      assert.equal(await store.readPending(p.id), null);
      await rejects(store.readPending('nope'), 'EINVAL', 'readPending id nope');
    },
  },
  {
    name: 'a corrupt record is ESTATE to read; list() moves it aside, keeps its keys, reports it, and lists the others',
    async run({ store, seen, plantRecordText }) {
      const good = wireguardRecord('/run/netns/good');
      const bad = wireguardRecord('/run/netns/bad');
      const odd = wireguardRecord('/run/netns/odd');
      for (const r of [good, bad, odd]) await store.write(r);
      const key = generateKeyPair().privateKey;
      await store.writeKey(bad.id, 'worker', key);
      await plantRecordText(bad.id, `{"id": "${bad.id}", "netns": tr`);
      await plantRecordText(odd.id, JSON.stringify({ ...odd, phase: 'dancing' }));
      await rejects(store.read(bad.id), 'ESTATE', 'read of a record that is not JSON');
      await rejects(store.read(odd.id), 'ESTATE', 'read of a record with a bad phase');
      assert.deepEqual((await store.list()).map((r) => r.id), [good.id]);
      assert.deepEqual(seen.map((p) => p.id).sort(), [bad.id, odd.id].sort(), 'onProblem told');
      assert.equal(await store.read(bad.id), null, 'moved aside: no record any more');
      assert.ok((await store.readKey(bad.id, 'worker'))?.equals(key), 'keys kept');
      const problems = await store.problems();
      assert.deepEqual(problems.map((p) => p.id).sort(), [bad.id, odd.id].sort());
      for (const p of problems) assert.ok(p.file.includes(CORRUPT_SUFFIX), `${p.file} names the moved-aside record`);
      assert.ok(!JSON.stringify(problems).includes('"netns": tr'), 'the damaged text is not quoted');
      // Listing again changes nothing; a new record (a new inspect) ends the report for that pod.
      assert.equal((await store.list()).length, 1);
      assert.equal(seen.length, 2, 'nothing new to tell');
      await store.write(bad);
      assert.deepEqual((await store.problems()).map((p) => p.id), [odd.id]);
      await store.remove(odd.id);
      assert.deepEqual((await store.problems()).map((p) => p.id), []);
    },
  },
];
