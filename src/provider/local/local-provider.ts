// The local provider: pod VMs as qemu guests on this machine, behind the same verbs as the cloud
// adapters (createInstance with apf.json as userdata, deleteInstance, ensureTunnelPort). A guest
// boots the image from tools/podvm-image/ with its userdata on a NoCloud seed ISO, and its NIC is a
// TAP in a network namespace (the lab's VM-side namespace), bridged there to the underlay. Its
// address comes from a small pool, passed on the kernel command line as a DHCP server would hand
// it out, and returned as the instance's private IP. The pool may be IPv6 link-local ("fe80::10/64")
// on TAPs without a bridge: each TAP is then its own link, the host end gets `hostAddress`, and the
// private IP carries the TAP as its zone ("fe80::10%pwq…"), which is how the worker reaches it.
//
// Every instance has a folder under `stateDir/<name>/` (instance.json, seed.iso, console.log,
// control.sock), so deleteInstance works from the folder alone, after a restart too: it stops the
// qemu whose pid is recorded (only after /proc confirms it is that instance's qemu), deletes the
// TAP and the folder. Building the image and the namespace it plugs into are left to others
// (tools/podvm-image/, and lab/lab-vm.ts for the lab).
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError } from '../../errors.js';
import type { Exec } from '../../exec.js';
import type { Spawner } from '../../spawn.js';
import { isLiveProcess } from '../../process-identity.js';
import type { PodVmImage } from './guest-protocol.js';
import {
  checkInstanceName,
  checkTunnelPort,
  type CloudInstance,
  type CloudProvider,
  type CreateInstanceRequest,
  type DeleteInstanceResult,
  type TunnelPortRequest,
  type TunnelPortResult,
} from '../provider.js';
import { CONTROL_PORT_NAME, DEFAULT_GUEST_MIB, QEMU, QemuGuest } from './qemu.js';
import { writeSeedIso } from './seed.js';

export interface LocalNetwork {
  /** Namespace (name under /run/netns) where the TAPs are made and qemu runs. */
  netns: string;
  /** A bridge in that namespace, joined to the underlay, that the TAPs are put on; none: each TAP is a link of its own. */
  bridge?: string;
  /** Addresses to hand out, with their prefix length ("203.0.113.10/24", or IPv6 such as "fe80::10/64"). */
  addresses: readonly string[];
  /** The guests' IPv4 default gateway; none on a link-local link. */
  gateway?: string;
  /** An address for the host end of each TAP (without a bridge), such as "fe80::1/64". */
  hostAddress?: string;
}

export interface LocalProviderOptions {
  exec: Exec;
  /** Starts the guests' qemu. */
  spawner: Spawner;
  /** The boot image; asked once, on the first createInstance. */
  image: () => Promise<PodVmImage>;
  network: LocalNetwork;
  /** Per-instance folders. */
  stateDir: string;
  memoryMiB?: number;
  /** Serve the lab command channel (tests only). Default false. */
  controlChannel?: boolean;
  /** Every console line of every guest. */
  onConsole?: (name: string, line: string) => void;
}

interface InstanceRecord {
  name: string;
  address: string;
  tap: string;
  netns: string;
  pid: number | null;
  startedAt: number;
}

/**
 * A CloudProvider whose name is 'local'. ProviderName (../provider.ts) lists only the clouds today,
 * so the name is widened here; see docs/podvm.md for the change that makes 'local' a provider name.
 */
export type LocalCloudProvider = Omit<CloudProvider, 'name'> & { readonly name: 'local' };

export class LocalProvider implements LocalCloudProvider {
  readonly name = 'local' as const;
  readonly #o: LocalProviderOptions;
  readonly #guests = new Map<string, QemuGuest>();
  readonly #logs = new Map<string, WriteStream>();
  #image: Promise<PodVmImage> | null = null;

  constructor(opts: LocalProviderOptions) {
    this.#o = opts;
  }

  /** The running guest of an instance started by this process (for markers and the lab channel). */
  guest(id: string): QemuGuest | undefined {
    return this.#guests.get(id);
  }

  dir(id: string): string {
    return join(this.#o.stateDir, id);
  }

  async createInstance(request: CreateInstanceRequest): Promise<CloudInstance> {
    const { name } = request;
    checkInstanceName(name, 'createInstance');
    const ctx = { op: 'createInstance', instance: name, netns: this.#o.network.netns };
    if (existsSync(this.dir(name))) {
      throw new PeerpodError('EINVAL', `local instance ${name} already exists (${this.dir(name)}): delete it first`, ctx);
    }
    this.#image ??= this.#o.image();
    const image = await this.#image;
    const address = await this.#allocateAddress();
    const [ip, prefix] = address.split('/') as [string, string];
    const dir = this.dir(name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const digest = createHash('sha256').update(name).digest();
    const tap = `pwq${digest.subarray(0, 5).toString('hex')}`;
    const mac = `52:54:00:${[...digest.subarray(5, 8)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    const record: InstanceRecord = { name, address, tap, netns: this.#o.network.netns, pid: null, startedAt: Date.now() };
    await this.#save(record);
    try {
      request.signal?.throwIfAborted();
      const seed = await writeSeedIso(this.#o.exec, dir, name, request.userdata);
      // The TAP exists before qemu opens it, in qemu's own namespace; otherwise qemu would
      // quietly make a new one in whatever namespace it runs in.
      const { netns, bridge, gateway, hostAddress } = this.#o.network;
      await this.#o.exec(['ip', '-n', netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], { timeoutMs: 10_000 });
      if (bridge !== undefined) {
        await this.#o.exec(['ip', '-n', netns, 'link', 'set', 'dev', tap, 'master', bridge, 'up'], { timeoutMs: 10_000 });
      } else {
        const nodad = hostAddress?.includes(':') === true ? ['nodad'] : [];
        const cmds = [
          ...(hostAddress === undefined ? [] : [`address add ${hostAddress} dev ${tap} ${nodad.join(' ')}`]),
          `link set dev ${tap} up`,
        ];
        await this.#o.exec(['ip', '-n', netns, '-batch', '-'], { input: `${cmds.join('\n')}\n`, timeoutMs: 10_000 });
      }
      const log = createWriteStream(join(dir, 'console.log'), { mode: 0o600 });
      this.#logs.set(name, log);
      const guest = new QemuGuest({
        spawner: this.#o.spawner,
        netns,
        tap,
        mac,
        kernel: image.kernel,
        initrd: image.initrd,
        seedIso: seed,
        memoryMiB: this.#o.memoryMiB ?? DEFAULT_GUEST_MIB,
        append: [
          'console=ttyS0',
          'quiet',
          'loglevel=4',
          'panic=-1',
          ...(ip.includes(':')
            ? [`peerpod.ip6=${address}`]
            : [`ip=${ip}::${gateway ?? ''}:${prefixToMask(Number(prefix))}:${name}:eth0:off`]),
          ...(this.#o.controlChannel === true ? [`peerpod.ctl=${CONTROL_PORT_NAME}`] : []),
        ].join(' '),
        ...(this.#o.controlChannel === true ? { controlSocket: join(dir, 'control.sock') } : {}),
        onConsole: (line) => {
          log.write(`${line}\n`);
          this.#o.onConsole?.(name, line);
        },
      });
      await guest.start();
      this.#guests.set(name, guest);
      record.pid = guest.pid;
      record.startedAt = guest.startedAt;
      await this.#save(record);
      // A link-local address means nothing without its link: the TAP, on this host.
      return { id: name, ips: { private: [/^fe[89ab]/i.test(ip) ? `${ip}%${tap}` : ip] } };
    } catch (e) {
      const err = new PeerpodError('EBACKEND', `cannot start local pod VM ${name}`, ctx, e);
      await this.deleteInstance(name).catch((c: unknown) => err.cleanupErrors.push(c));
      throw err;
    }
  }

  async deleteInstance(id: string): Promise<DeleteInstanceResult> {
    checkInstanceName(id, 'deleteInstance');
    const dir = this.dir(id);
    if (!existsSync(dir)) return { existed: false };
    const record = await this.#load(id);
    const guest = this.#guests.get(id);
    if (guest !== undefined) {
      await guest.stop();
    } else if (record?.pid != null) {
      await stopRecordedQemu(record.pid, dir);
    }
    this.#guests.delete(id);
    const log = this.#logs.get(id);
    if (log !== undefined) await new Promise<void>((r) => log.end(r));
    this.#logs.delete(id);
    if (record !== null) {
      const r = await this.#o.exec(['ip', '-n', record.netns, 'link', 'del', 'dev', record.tap], { okCodes: [0, 1, 255], timeoutMs: 10_000 });
      if (r.code !== 0 && !/Cannot find device|does not exist|No such file/.test(r.stderr)) {
        throw new PeerpodError('EBACKEND', `cannot delete TAP ${record.tap} of ${id}: ${r.stderr.trim()}`, { op: 'deleteInstance', instance: id });
      }
    }
    await rm(dir, { recursive: true, force: true });
    return { existed: true };
  }

  async ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult> {
    checkTunnelPort(request, 'ensureTunnelPort');
    // Nothing filters between the lab's namespaces and the guest: the port is open already.
    return { changed: false, rule: `local: no firewall in front of the guests (udp/${request.port} open)` };
  }

  /** Names of the instances this provider has folders for. */
  async instances(): Promise<string[]> {
    return (await readdir(this.#o.stateDir).catch(() => [] as string[])).filter((n) => existsSync(join(this.dir(n), 'instance.json'))).sort();
  }

  async #allocateAddress(): Promise<string> {
    const used = new Set<string>();
    for (const n of await this.instances()) {
      const r = await this.#load(n);
      if (r !== null) used.add(r.address);
    }
    const free = this.#o.network.addresses.find((a) => !used.has(a));
    if (free === undefined) {
      throw new PeerpodError('EBACKEND', `no free address for a local pod VM: all of ${this.#o.network.addresses.join(', ')} are taken`, {
        op: 'createInstance',
      });
    }
    return free;
  }

  async #save(r: InstanceRecord): Promise<void> {
    const path = join(this.dir(r.name), 'instance.json');
    await writeFile(`${path}.tmp`, JSON.stringify(r, null, 2), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }

  async #load(id: string): Promise<InstanceRecord | null> {
    try {
      return JSON.parse(await readFile(join(this.dir(id), 'instance.json'), 'utf8')) as InstanceRecord;
    } catch {
      return null;
    }
  }
}

/** "24" → "255.255.255.0" */
export function prefixToMask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new PeerpodError('EINVAL', `prefix length ${prefix} is not 0-32`, { field: 'address' });
  const m = prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

/**
 * Stop a qemu that a previous process started: only when /proc says the pid is a live qemu whose
 * command line names this instance's folder, so a reused pid is never signalled.
 */
async function stopRecordedQemu(pid: number, dir: string): Promise<void> {
  const ours = (): Promise<boolean> => isLiveProcess(pid, { comm: QEMU, args: (argv) => argv.some((a) => a.includes(dir)) });
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (!(await ours())) return;
    process.kill(pid, signal);
    for (let i = 0; i < 50 && (await ours()); i++) await sleep(100);
  }
  if (await ours()) throw new PeerpodError('EBACKEND', `qemu (pid ${pid}) did not exit, not even after SIGKILL`, { op: 'deleteInstance', pid });
}
