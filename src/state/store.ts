// Durable per-pod state of the worker side: one folder per pod under <state-dir>/pods/<id>/, with a
// record (record.json) and the worker's private key (worker.key, mode 0600, never anywhere else).
// Every write is atomic: temp file, fsync, rename, fsync of the folder. What the record means and
// when it changes is the tunnel driver's business; this module only stores and loads. A corrupt
// record is moved aside by list(), never a reason to stop (record-check.ts).
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerpodError } from '../errors.js';
import { SecretKey, type SecretKind } from '../wireguard/keys.js';
import { CORRUPT_SUFFIX, corruptName, recordProblem, type StateProblem } from './record-check.js';

export const DEFAULT_STATE_DIR = '/var/lib/peerpod-wireguard';

/**
 * Where a pod's setup stands; the state machine, every transition and its cause, is drawn and
 * checked in phase.ts. orphaned: the pod netns is gone and so is the data plane; the record and
 * keys wait for a teardown. tearing-down: a teardown started; only its end (no record) follows.
 */
export type PodPhase = 'inspected' | 'setting-up' | 'ready' | 'tearing-down' | 'orphaned';

interface PodRecordBase {
  id: string;
  netns: string;
  /** "namespace/name" of the Kubernetes pod, when the caller said so. */
  pod?: string;
  device: string;
  podIP: string;
  mtu: number;
  podVmIPs: string[];
  phase: PodPhase;
  updatedAt: string;
}

export interface WireguardPodRecord extends PodRecordBase {
  tunnelType: 'wireguard';
  /** The pod's CNI interface in its netns (eth0). */
  podInterface: string;
  /** The pod's addresses besides podIP (a dual-stack pod's IPv6 one); absent when none. */
  extraPodIPs?: string[];
  /** Public half of the pod VM's key pair; the private half went into apf.json only. */
  vmPublicKey: string;
  workerPublicKey: string;
  vmListenPort: number;
  keepalive: number;
}

export interface VxlanPodRecord extends PodRecordBase {
  tunnelType: 'vxlan';
  vni: number;
  port: number;
}

/** One pod's durable state; the fields after the base depend on the tunnel type. */
export type PodRecord = WireguardPodRecord | VxlanPodRecord;

/** A pod's id: stable across restarts, derived from the only thing CAA always passes, the netns path. */
export function podIdOf(netnsPath: string): string {
  return createHash('sha256').update(netnsPath).digest('hex').slice(0, 12);
}

/**
 * A tunnel configured before its pod netns is known. CAA's Configure hands us the pod-network it
 * inspected, but no netns path; setup later names the netns and carries the worker's public key
 * back, which is how the two meet (pendingIdOf). Kept under <state-dir>/pending/<id>/ with the
 * worker's key and the preshared key (0600); setup moves the folder to pods/<pod id>.
 */
export interface PendingTunnel {
  id: string;
  /** "namespace/name" of the Kubernetes pod, when the caller said so. */
  pod?: string;
  podIP?: string;
  vmPublicKey: string;
  workerPublicKey: string;
  vmListenPort: number;
  keepalive: number;
  mtu: number;
  createdAt: string;
}

/** A pending tunnel's id: derived from the worker's public key, which setup's config carries. */
export function pendingIdOf(workerPublicKey: string): string {
  return createHash('sha256').update(`pending:${workerPublicKey}`).digest('hex').slice(0, 12);
}

export interface PodStore {
  readonly dir: string;
  read(id: string): Promise<PodRecord | null>;
  write(record: PodRecord): Promise<void>;
  /** Every readable record; a corrupt one is moved aside and reported, never thrown. */
  list(): Promise<PodRecord[]>;
  /** Records moved aside (in folders that have no record since) or unreadable at the last list(). */
  problems(): Promise<StateProblem[]>;
  remove(id: string): Promise<void>;
  readKey(id: string, name: string, kind?: SecretKind): Promise<SecretKey | null>;
  writeKey(id: string, name: string, key: SecretKey): Promise<void>;
  removeKey(id: string, name: string): Promise<void>;
  /** Store a pending tunnel with its keys (worker.key, psk.key). */
  writePending(p: PendingTunnel, keys: { worker: SecretKey; psk?: SecretKey }): Promise<void>;
  readPending(id: string): Promise<PendingTunnel | null>;
  listPending(): Promise<PendingTunnel[]>;
  /**
   * Make a pending tunnel a pod's: its folder, keys included, becomes pods/<record.id> holding
   * `record`. False when there is no such pending tunnel; ESTATE when the pod already has state.
   */
  adoptPending(pendingId: string, record: PodRecord): Promise<boolean>;
  removePending(id: string): Promise<void>;
}

/** Write a whole file or nothing: temp file (mode set even if it existed), fsync, rename, folder fsync. */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // the umask may have narrowed or the file may have existed
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dh = await open(join(path, '..'), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** A state file's JSON; undefined when it does not exist. */
async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PeerpodError('ESTATE', `cannot read ${path}`, { op: 'state-read' }, e);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    // Not the SyntaxError as cause: V8 quotes the text around the fault.
    throw new PeerpodError('ESTATE', `state file ${path} is not valid JSON`, { op: 'state-read', corrupt: 1 });
  }
}

/** The ids (12 hex digits) of the folders in `dir`, sorted; none when it does not exist. */
async function idsIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((i) => /^[0-9a-f]{12}$/.test(i)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export interface FilePodStoreOptions {
  /** Told about each record list() could not use (to log it). */
  onProblem?: (p: StateProblem) => void;
  now?: () => Date;
}

export class FilePodStore implements PodStore {
  readonly dir: string;
  readonly #opts: FilePodStoreOptions;
  #unreadable: StateProblem[] = [];
  constructor(dir: string, opts: FilePodStoreOptions = {}) {
    this.dir = dir;
    this.#opts = opts;
  }

  private podDir(id: string): string {
    return this.dirOf('pods', id);
  }

  private dirOf(kind: 'pods' | 'pending', id: string): string {
    if (!/^[0-9a-f]{12}$/.test(id)) throw new PeerpodError('EINVAL', `invalid ${kind === 'pods' ? 'pod' : 'pending tunnel'} id ${JSON.stringify(id)}`);
    return join(this.dir, kind, id);
  }

  private async ensure(id: string): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const d = this.podDir(id);
    await mkdir(d, { recursive: true, mode: 0o700 });
    return d;
  }

  async read(id: string): Promise<PodRecord | null> {
    const path = join(this.podDir(id), 'record.json');
    const value = await readJsonFile<unknown>(path);
    if (value === undefined) return null;
    const problem = recordProblem(value, id);
    if (problem !== null) throw new PeerpodError('ESTATE', `state file ${path} is not a pod record: ${problem}`, { op: 'state-read', corrupt: 1 });
    return value as PodRecord;
  }

  async write(record: PodRecord): Promise<void> {
    const d = await this.ensure(record.id);
    await writeAtomic(join(d, 'record.json'), JSON.stringify(record, null, 2) + '\n', 0o600);
  }

  async list(): Promise<PodRecord[]> {
    const out: PodRecord[] = [];
    const unreadable: StateProblem[] = [];
    for (const id of await idsIn(join(this.dir, 'pods'))) {
      try {
        const r = await this.read(id);
        if (r !== null) out.push(r);
      } catch (e) {
        const p = await this.putAside(id, e);
        if (p === null) continue; // someone else moved it aside or rewrote it meanwhile
        if (!p.file.includes(CORRUPT_SUFFIX)) unreadable.push(p);
        this.#opts.onProblem?.(p);
      }
    }
    this.#unreadable = unreadable;
    return out;
  }

  /** Move a corrupt record aside, keeping the keys; an unreadable one stays where it is. */
  private async putAside(id: string, e: unknown): Promise<StateProblem | null> {
    const from = join(this.podDir(id), 'record.json');
    const message = e instanceof Error ? e.message.replace(`state file ${from} `, '') : String(e);
    if (!(e instanceof PeerpodError && e.context['corrupt'] === 1)) return { id, file: from, problem: message };
    const to = join(this.podDir(id), corruptName(this.#opts.now?.() ?? new Date()));
    try {
      await rename(from, to);
    } catch (r) {
      if ((r as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return { id, file: from, problem: `${message}; cannot move it aside: ${(r as Error).message}` };
    }
    return { id, file: to, problem: `${message}; moved aside, the keys are kept` };
  }

  async problems(): Promise<StateProblem[]> {
    const out: StateProblem[] = [...this.#unreadable];
    for (const id of await idsIn(join(this.dir, 'pods')).catch(() => [] as string[])) {
      const files = await readdir(this.podDir(id)).catch(() => [] as string[]);
      if (files.includes('record.json')) continue; // inspected again since: served, not a problem
      for (const f of files.filter((n) => n.startsWith(`record.json${CORRUPT_SUFFIX}`)).sort()) {
        out.push({ id, file: join(this.podDir(id), f), problem: 'a corrupt record moved aside; the keys are kept until teardown' });
      }
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    await rm(this.podDir(id), { recursive: true, force: true });
  }

  async readKey(id: string, name: string, kind: SecretKind = 'private key'): Promise<SecretKey | null> {
    const path = join(this.podDir(id), `${name}.key`);
    try {
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0) {
        throw new PeerpodError('ESTATE', `key file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); expected 0600`, {
          op: 'state-read',
        });
      }
      return SecretKey.fromBase64(kind, (await readFile(path, 'utf8')).trim());
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async writePending(p: PendingTunnel, keys: { worker: SecretKey; psk?: SecretKey }): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const d = this.dirOf('pending', p.id);
    await mkdir(d, { recursive: true, mode: 0o700 });
    await writeAtomic(join(d, 'worker.key'), keys.worker.reveal() + '\n', 0o600);
    if (keys.psk !== undefined) await writeAtomic(join(d, 'psk.key'), keys.psk.reveal() + '\n', 0o600);
    // Written last: a pending folder without it is an interrupted configure, and is never adopted.
    await writeAtomic(join(d, 'pending.json'), JSON.stringify(p, null, 2) + '\n', 0o600);
  }

  async readPending(id: string): Promise<PendingTunnel | null> {
    return (await readJsonFile<PendingTunnel>(join(this.dirOf('pending', id), 'pending.json'))) ?? null;
  }

  async listPending(): Promise<PendingTunnel[]> {
    const out: PendingTunnel[] = [];
    for (const id of await idsIn(join(this.dir, 'pending'))) {
      const p = await this.readPending(id).catch(() => null);
      if (p !== null) out.push(p);
    }
    return out;
  }

  async adoptPending(pendingId: string, record: PodRecord): Promise<boolean> {
    const from = this.dirOf('pending', pendingId);
    if ((await this.readPending(pendingId)) === null) return false;
    const to = this.podDir(record.id);
    if (await stat(to).then(() => true, () => false)) {
      throw new PeerpodError('ESTATE', `pod ${record.id} (netns ${record.netns}) already has tunnel state: tear it down first`, {
        op: 'adopt-pending',
        netns: record.netns,
      });
    }
    // The record goes in first, so the pod's folder is complete the moment the rename makes it appear.
    await writeAtomic(join(from, 'record.json'), JSON.stringify(record, null, 2) + '\n', 0o600);
    await mkdir(join(this.dir, 'pods'), { recursive: true, mode: 0o700 });
    await rename(from, to);
    await rm(join(to, 'pending.json'), { force: true });
    return true;
  }

  async removePending(id: string): Promise<void> {
    await rm(this.dirOf('pending', id), { recursive: true, force: true });
  }

  async removeKey(id: string, name: string): Promise<void> {
    await rm(join(this.podDir(id), `${name}.key`), { force: true });
  }

  async writeKey(id: string, name: string, key: SecretKey): Promise<void> {
    const d = await this.ensure(id);
    await writeAtomic(join(d, `${name}.key`), key.reveal() + '\n', 0o600);
  }
}
