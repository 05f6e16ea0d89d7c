// A PodStore kept in memory, for unit tests: the same folders as FilePodStore (pods/<id>,
// pending/<id>) as maps of "files" holding the same text, so a record read back is a fresh copy,
// a write replaces the whole record, an id that is not 12 hex digits is EINVAL, and a corrupt
// record planted with plantRecordText() is moved aside by list() and reported by problems() as the
// file store does. What it cannot have (file modes, a file the OS will not let us read) is
// declared in test/contract/pod-store.contract.ts. Keys are kept as their base64 text and come
// back as SecretKeys, which hide it.
import { PeerpodError } from '../../src/errors.js';
import { CORRUPT_SUFFIX, corruptName, recordProblem, type StateProblem } from '../../src/state/record-check.js';
import type { PendingTunnel, PodRecord, PodStore } from '../../src/state/store.js';
import { SecretKey, type SecretKind } from '../../src/wireguard/keys.js';

type Folder = Map<string, string>;
type Kind = 'pods' | 'pending';

export interface MemoryPodStoreOptions {
  now?: () => Date;
  /** Told about each record list() could not use, as FilePodStore's option. */
  onProblem?: (p: StateProblem) => void;
}

export class MemoryPodStore implements PodStore {
  /** Not a real folder: a label for messages and the `file` of problems. */
  readonly dir = 'memory:';
  readonly #folders: Record<Kind, Map<string, Folder>> = { pods: new Map(), pending: new Map() };
  readonly #opts: MemoryPodStoreOptions;

  constructor(opts: MemoryPodStoreOptions = {}) {
    this.#opts = opts;
  }

  /** The text of a pod's record.json, as if a disk had damaged it or another program written it. */
  plantRecordText(id: string, text: string): void {
    this.#folder('pods', id, true).set('record.json', text);
  }

  /** The names of the "files" in a pod's folder, sorted; [] when it has none. */
  filesOf(id: string): string[] {
    return [...(this.#folder('pods', id, false)?.keys() ?? [])].sort();
  }

  async read(id: string): Promise<PodRecord | null> {
    const text = this.#folder('pods', id, false)?.get('record.json');
    if (text === undefined) return null;
    const file = this.#path('pods', id, 'record.json');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new PeerpodError('ESTATE', `state file ${file} is not valid JSON`, { op: 'state-read', corrupt: 1 });
    }
    const problem = recordProblem(value, id);
    if (problem !== null) throw new PeerpodError('ESTATE', `state file ${file} is not a pod record: ${problem}`, { op: 'state-read', corrupt: 1 });
    return value as PodRecord;
  }

  async write(record: PodRecord): Promise<void> {
    this.#folder('pods', record.id, true).set('record.json', JSON.stringify(record, null, 2) + '\n');
  }

  async list(): Promise<PodRecord[]> {
    const out: PodRecord[] = [];
    for (const id of this.#ids('pods')) {
      try {
        const r = await this.read(id);
        if (r !== null) out.push(r);
      } catch (e) {
        const folder = this.#folder('pods', id, true);
        const aside = corruptName(this.#opts.now?.() ?? new Date());
        folder.set(aside, folder.get('record.json') ?? '');
        folder.delete('record.json');
        const message = (e as Error).message.replace(`state file ${this.#path('pods', id, 'record.json')} `, '');
        this.#opts.onProblem?.({ id, file: this.#path('pods', id, aside), problem: `${message}; moved aside, the keys are kept` });
      }
    }
    return out;
  }

  async problems(): Promise<StateProblem[]> {
    const out: StateProblem[] = [];
    for (const id of this.#ids('pods')) {
      const files = this.filesOf(id);
      if (files.includes('record.json')) continue;
      for (const f of files.filter((n) => n.startsWith(`record.json${CORRUPT_SUFFIX}`))) {
        out.push({ id, file: this.#path('pods', id, f), problem: 'a corrupt record moved aside; the keys are kept until teardown' });
      }
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    this.#check('pods', id);
    this.#folders.pods.delete(id);
  }

  async readKey(id: string, name: string, kind: SecretKind = 'private key'): Promise<SecretKey | null> {
    const text = this.#folder('pods', id, false)?.get(`${name}.key`);
    return text === undefined ? null : SecretKey.fromBase64(kind, text.trim());
  }

  async writeKey(id: string, name: string, key: SecretKey): Promise<void> {
    this.#folder('pods', id, true).set(`${name}.key`, key.reveal() + '\n');
  }

  async removeKey(id: string, name: string): Promise<void> {
    this.#folder('pods', id, false)?.delete(`${name}.key`);
  }

  async writePending(p: PendingTunnel, keys: { worker: SecretKey; psk?: SecretKey }): Promise<void> {
    const folder = this.#folder('pending', p.id, true);
    folder.set('worker.key', keys.worker.reveal() + '\n');
    if (keys.psk !== undefined) folder.set('psk.key', keys.psk.reveal() + '\n');
    folder.set('pending.json', JSON.stringify(p, null, 2) + '\n');
  }

  async readPending(id: string): Promise<PendingTunnel | null> {
    const text = this.#folder('pending', id, false)?.get('pending.json');
    if (text === undefined) return null;
    try {
      return JSON.parse(text) as PendingTunnel;
    } catch {
      throw new PeerpodError('ESTATE', `state file ${this.#path('pending', id, 'pending.json')} is not valid JSON`, { op: 'state-read', corrupt: 1 });
    }
  }

  async listPending(): Promise<PendingTunnel[]> {
    const out: PendingTunnel[] = [];
    for (const id of this.#ids('pending')) {
      const p = await this.readPending(id).catch(() => null);
      if (p !== null) out.push(p);
    }
    return out;
  }

  async adoptPending(pendingId: string, record: PodRecord): Promise<boolean> {
    if ((await this.readPending(pendingId)) === null) return false;
    if (this.#folder('pods', record.id, false) !== undefined) {
      throw new PeerpodError('ESTATE', `pod ${record.id} (netns ${record.netns}) already has tunnel state: tear it down first`, {
        op: 'adopt-pending',
        netns: record.netns,
      });
    }
    const folder = this.#folder('pending', pendingId, true);
    this.#folders.pending.delete(pendingId);
    folder.delete('pending.json');
    folder.set('record.json', JSON.stringify(record, null, 2) + '\n');
    this.#folders.pods.set(record.id, folder);
    return true;
  }

  async removePending(id: string): Promise<void> {
    this.#check('pending', id);
    this.#folders.pending.delete(id);
  }

  // -------------------------------------------------------------------------------------------

  #check(kind: Kind, id: string): void {
    if (!/^[0-9a-f]{12}$/.test(id)) throw new PeerpodError('EINVAL', `invalid ${kind === 'pods' ? 'pod' : 'pending tunnel'} id ${JSON.stringify(id)}`);
  }

  #folder(kind: Kind, id: string, create: true): Folder;
  #folder(kind: Kind, id: string, create: false): Folder | undefined;
  #folder(kind: Kind, id: string, create: boolean): Folder | undefined {
    this.#check(kind, id);
    let f = this.#folders[kind].get(id);
    if (f === undefined && create) this.#folders[kind].set(id, (f = new Map<string, string>()));
    return f;
  }

  #ids(kind: Kind): string[] {
    return [...this.#folders[kind].keys()].sort();
  }

  #path(kind: Kind, id: string, file: string): string {
    return `${this.dir}${kind}/${id}/${file}`;
  }
}
