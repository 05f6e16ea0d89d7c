// The per-pod state machine (src/state/phase.ts): the transitions each cause needs are legal, the
// ones that would resurrect or skip a step are not, the drawing names every phase, and a checked
// store refuses an illegal write before it lands.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPeerpodError } from '../../src/errors.js';
import { checkedPodStore, checkTransition, isLegalTransition, PHASE_TRANSITIONS } from '../../src/state/phase.js';
import { FilePodStore, podIdOf, type PodPhase } from '../../src/state/store.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { thrown } from '../support/errors.js';
import { seedReadyPod } from './fakes.js';

const PHASES: readonly PodPhase[] = ['inspected', 'setting-up', 'ready', 'orphaned', 'tearing-down'];
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('the pod state machine', () => {
  it.each([
    [null, 'inspected', 'inspect, or setup adopting a configured tunnel'],
    ['inspected', 'setting-up', 'setup'],
    ['setting-up', 'ready', 'setup done, or reconcile finished an interrupted setup'],
    ['setting-up', 'inspected', 'setup failed and was rolled back'],
    ['ready', 'setting-up', "CAA's setup again"],
    ['inspected', 'orphaned', 'pod netns gone'],
    ['setting-up', 'orphaned', 'pod netns gone'],
    ['ready', 'orphaned', 'pod netns gone'],
    ['orphaned', 'setting-up', 'a netns at that path again'],
  ] as const)('allows %s → %s (%s)', (from, to, _cause) => {
    expect(isLegalTransition(from, to)).toBe(true);
  });

  it('allows a teardown to start from every phase, and every phase to keep itself (a field update)', () => {
    for (const p of PHASES) expect([p, isLegalTransition(p, 'tearing-down'), isLegalTransition(p, p)]).toEqual([p, true, true]);
  });

  it('tearing-down is final: nothing but the removal follows it, and the refusal says what to do', () => {
    for (const to of PHASES.filter((p) => p !== 'tearing-down')) expect([to, isLegalTransition('tearing-down', to)]).toEqual([to, false]);
    expect(thrown(() => checkTransition('tearing-down', 'setting-up', '/run/netns/x')).message).toMatch(/teardown is unfinished: run the teardown again first$/);
  });

  it.each([
    [null, 'ready', 'a record appearing ready (a resurrected pod)'],
    [null, 'orphaned', 'a removed pod orphaned by a stale health check'],
    [null, 'setting-up', 'setup without inspect'],
    [null, 'tearing-down', 'a removed pod marked again'],
    ['inspected', 'ready', 'ready without setting up'],
    ['ready', 'inspected', 'a ready pod rolled back outside a setup'],
    ['orphaned', 'ready', 'an orphaned pod ready without setup'],
    ['orphaned', 'inspected', 'an orphaned pod back to inspected'],
  ] as const)('refuses %s → %s (%s)', (from, to, _cause) => {
    expect(isLegalTransition(from, to)).toBe(false);
    const e = thrown(() => checkTransition(from, to, '/run/netns/x'));
    expect([e.code, e.context.op, e.context.netns]).toEqual(['ESTATE', 'phase', '/run/netns/x']);
    expect(e.message).toContain(`${from ?? '(no record)'} → ${to}`);
  });

  it('has a row for every phase, and its drawing in src/state/phase.ts names each one', async () => {
    expect(Object.keys(PHASE_TRANSITIONS).sort()).toEqual(['none', ...PHASES].sort());
    const source = await readFile(join(repo, 'src', 'state', 'phase.ts'), 'utf8');
    const drawing = source.slice(0, source.indexOf('\nimport '));
    for (const p of PHASES) expect([p, drawing.includes(`[${p}]`)]).toEqual([p, true]);
  });
});

describe('checkedPodStore', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pwt-phase-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an illegal write before it lands, and lets a legal one through', async () => {
    const raw = new FilePodStore(dir);
    const store = checkedPodStore(raw);
    const rec = await seedReadyPod(raw, '/run/netns/pwt-phase-a');
    await store.write({ ...rec, phase: 'tearing-down' });
    const e = await store.write({ ...rec, phase: 'ready', pod: 'default/ghost' }).catch((x: unknown) => x);
    expect(isPeerpodError(e, 'ESTATE') && e.context.op).toBe('phase');
    expect(await raw.read(rec.id)).toEqual({ ...rec, phase: 'tearing-down' });
    await store.remove(rec.id);
    await expect(store.write({ ...rec, phase: 'orphaned' })).rejects.toThrow(/\(no record\) → orphaned/);
    expect(await raw.read(rec.id)).toBeNull();
  });

  it('does not check over a record that cannot be read (corrupt): there is no known phase', async () => {
    const raw = new FilePodStore(dir);
    const store = checkedPodStore(raw);
    const rec = await seedReadyPod(raw, '/run/netns/pwt-phase-b');
    await writeFile(join(dir, 'pods', rec.id, 'record.json'), '{"id": ');
    await store.write({ ...rec, phase: 'orphaned' });
    expect((await raw.read(rec.id))?.phase).toBe('orphaned');
  });

  it('lets a configured tunnel be adopted as inspected only', async () => {
    const raw = new FilePodStore(dir);
    const store = checkedPodStore(raw);
    const worker = generateKeyPair();
    const pending = { id: '0000000000aa', vmPublicKey: generateKeyPair().publicKey.toBase64(), workerPublicKey: worker.publicKey.toBase64(), vmListenPort: 51900, keepalive: 25, mtu: 1420, createdAt: new Date(0).toISOString() };
    await store.writePending(pending, { worker: worker.privateKey });
    const netns = '/run/netns/pwt-phase-c';
    const rec = { ...(await seedReadyPod(new FilePodStore(join(dir, 'elsewhere')), netns)), id: podIdOf(netns) };
    await expect(store.adoptPending(pending.id, rec)).rejects.toThrow(/\(no record\) → ready/);
    expect(await store.readPending(pending.id)).not.toBeNull();
    expect(await store.adoptPending(pending.id, { ...rec, phase: 'inspected' })).toBe(true);
  });

  it('wraps a store once', () => {
    const store = checkedPodStore(new FilePodStore(dir));
    expect(checkedPodStore(store)).toBe(store);
  });
});
