// The PodStore contract (test/contract/pod-store.contract.ts) against FilePodStore, each case in
// its own temp folder (no root), and against MemoryPodStore. The file-only cases (GAPS) are
// listed as skipped for the memory store, with the reason; they run in ./state-store.test.ts.
import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StateProblem } from '../../src/state/record-check.js';
import { FilePodStore } from '../../src/state/store.js';
import { GAPS, POD_STORE_CONTRACT, type PodStoreContractContext } from '../contract/pod-store.contract.js';
import { MemoryPodStore } from '../fakes/pod-store.js';

let root = '';
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pw-store-contract-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function fileContext(): Promise<PodStoreContractContext> {
  const dir = join(root, String(n++));
  const seen: StateProblem[] = [];
  const store = new FilePodStore(dir, { onProblem: (p) => seen.push(p) });
  return { store, seen, plantRecordText: (id, text) => writeFile(join(dir, 'pods', id, 'record.json'), text) };
}

async function memoryContext(): Promise<PodStoreContractContext> {
  const seen: StateProblem[] = [];
  const store = new MemoryPodStore({ onProblem: (p) => seen.push(p) });
  return { store, seen, plantRecordText: async (id, text) => store.plantRecordText(id, text) };
}

describe.each([
  ['FilePodStore', fileContext],
  ['MemoryPodStore', memoryContext],
])('PodStore contract: %s', (_name, make) => {
  it.each(POD_STORE_CONTRACT.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    await c.run(await make());
  });
});

describe('PodStore contract: MemoryPodStore gaps', () => {
  for (const [name, reason] of Object.entries(GAPS.memory)) it.skip(`${name} (file store only: ${reason})`, () => undefined);
});
