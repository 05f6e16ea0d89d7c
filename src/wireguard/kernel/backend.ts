// The kernel WireGuard backend: devices are links of kind "wireguard", created and deleted with
// iproute2 through the exec edge (`ip link add NAME mtu M type wireguard`, `ip link del`), listed
// with `ip -j link show type wireguard`, and read and configured over generic netlink
// (WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE) with the pure codec in ./codec.ts.
//
// Like the userspace backend it creates devices in the netns of the calling process: a device is
// born here and its UDP socket stays here. Generic netlink resolves WGDEVICE_A_IFNAME in the netns
// of the netlink socket, so a device that moved into a pod netns is reached with `where.netns`:
// the backend then opens a generic netlink socket inside that netns (a setns window,
// ./netns-socket.ts) and keeps it, one per netns path, until release(netns) or until the path
// names another netns (its inode changed) or none (then ENOTFOUND, and the socket is dropped).
// Deleting a moved device runs `ip link del` in its netns (nsenter --net=PATH). A socket holds its
// netns alive: a pod netns that CNI deleted lives on (with the device) until the socket is closed,
// which the next call naming it does (the path is gone), as does the teardown's release().
//
// Whether this kernel has WireGuard at all is answered by kernelWireGuardAvailable() (for the
// backend choice in cmd/wiring.ts), without loading the netlink addon.
import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { release } from 'node:os';
import { PeerpodError } from '../../errors.js';
import type { Exec } from '../../exec.js';
import { checkCreateMtu, type CreateOptions, type WireGuardBackend, type Where } from '../backend.js';
import type { Device, DeviceConfig } from '../config.js';
import { WG_CMD, WG_GENL_NAME, WG_GENL_VERSION, checkIfname, decodeGetDevice, encodeGetDevice, encodeSetDevice } from './codec.js';
import { ERRNO, GenlError, errnoName, netlinkTransport, type GenlTransport } from './genl.js';

export interface KernelBackendOptions {
  /** Runs `ip`. */
  exec: Exec;
  /** Generic netlink; default: a socket in this process's netns, opened on first use. */
  genl?: GenlTransport;
  /** Generic netlink inside another netns; default: a socket opened there through a setns window. */
  genlIn?: (netnsPath: string) => GenlTransport;
}

/** One cached socket into a pod netns, with the identity of the netns it was opened in. */
interface PodSocket {
  genl: GenlTransport;
  family: Promise<number> | null;
  /** dev:ino of the netns file when the socket was opened. */
  identity: string;
}

const IP_TIMEOUT_MS = 10_000;

export class KernelBackend implements WireGuardBackend {
  readonly kind = 'kernel' as const;
  readonly #exec: Exec;
  readonly #genl: GenlTransport;
  readonly #genlIn: (netnsPath: string) => GenlTransport;
  #family: Promise<number> | null = null;
  readonly #pods = new Map<string, PodSocket>();

  constructor(opts: KernelBackendOptions) {
    this.#exec = opts.exec;
    this.#genl = opts.genl ?? netlinkTransport();
    this.#genlIn = opts.genlIn ?? ((netns) => netlinkTransport({ netns }));
  }

  /** How many pod netns sockets are open (for tests and the bench). */
  get podSockets(): number {
    return this.#pods.size;
  }

  async create(name: string, opts: CreateOptions): Promise<void> {
    checkIfname(name);
    const { mtu } = opts;
    checkCreateMtu(name, mtu);
    const kind = await this.#linkKind(name);
    // A live device is kept as it is (its configuration and MTU belong to whoever made it).
    if (kind === 'wireguard') return;
    if (kind !== null) {
      // Not ours to delete: a link of another kind would be someone else's.
      throw new PeerpodError('EBACKEND', `cannot create WireGuard device ${name}: a link of kind ${kind || 'unknown'} has that name`, {
        op: 'create',
        iface: name,
      });
    }
    try {
      await this.#exec(['ip', 'link', 'add', 'dev', name, 'mtu', String(mtu), 'type', 'wireguard'], { timeoutMs: IP_TIMEOUT_MS });
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      const why = /Unknown device type|not supported|Operation not supported/i.test(text)
        ? 'this kernel has no WireGuard (module wireguard not available)'
        : 'ip link add failed';
      throw new PeerpodError('EBACKEND', `cannot create WireGuard device ${name}: ${why}`, { op: 'create', iface: name }, e);
    }
  }

  async devices(): Promise<string[]> {
    const r = await this.#exec(['ip', '-j', 'link', 'show', 'type', 'wireguard'], { timeoutMs: IP_TIMEOUT_MS });
    const rows = r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { ifname?: string }[]);
    return rows.map((x) => x.ifname).filter((n): n is string => typeof n === 'string').sort();
  }

  async device(name: string, where?: Where): Promise<Device> {
    const payload = encodeGetDevice(name);
    const { genl, family } = await this.#reach('device', name, where);
    let replies: Buffer[];
    try {
      replies = await genl.request({ family, cmd: WG_CMD.GET_DEVICE, version: WG_GENL_VERSION, payload, dump: true });
    } catch (e) {
      throw this.#error(e, 'device', name);
    }
    if (replies.length === 0) throw new PeerpodError('ENOTFOUND', `WireGuard device ${name} does not exist here`, { op: 'device', iface: name });
    return decodeGetDevice(name, replies);
  }

  async configure(name: string, config: DeviceConfig, where?: Where): Promise<void> {
    // Encoding first: a bad value is refused before anything reaches the kernel.
    const payloads = encodeSetDevice(name, config);
    const { genl, family } = await this.#reach('configure', name, where);
    for (const payload of payloads) {
      try {
        await genl.request({ family, cmd: WG_CMD.SET_DEVICE, version: WG_GENL_VERSION, payload });
      } catch (e) {
        throw this.#error(e, 'configure', name);
      }
    }
  }

  async remove(name: string, where?: Where): Promise<void> {
    checkIfname(name);
    const netns = where?.netns;
    if (netns !== undefined && !existsSync(netns)) return; // the netns is gone, and the device with it
    const ipIn = (args: string[]): string[] => (netns === undefined ? ['ip', ...args] : ['nsenter', `--net=${netns}`, '--', 'ip', ...args]);
    const kind = await this.#linkKind(name, ipIn);
    if (kind === null) return; // gone, or (without where) moved into a pod netns
    if (kind !== 'wireguard') {
      throw new PeerpodError('EBACKEND', `will not delete ${name}: it is a link of kind ${kind || 'unknown'}, not WireGuard`, {
        op: 'remove',
        iface: name,
      });
    }
    const r = await this.#exec(ipIn(['link', 'del', 'dev', name]), { timeoutMs: IP_TIMEOUT_MS, okCodes: [0, 1] });
    // Deleted by someone else between the two calls is success too.
    if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) {
      throw new PeerpodError('EBACKEND', `cannot delete WireGuard device ${name}: ${r.stderr.trim()}`, { op: 'remove', iface: name });
    }
  }

  async owns(_name: string): Promise<boolean> {
    // A kernel device leaves no trace of who made it: never garbage-collected by name.
    return false;
  }

  async release(netns: string): Promise<void> {
    this.#pods.get(netns)?.genl.close();
    this.#pods.delete(netns);
  }

  async close(): Promise<void> {
    this.#genl.close();
    this.#family = null;
    for (const p of this.#pods.values()) p.genl.close();
    this.#pods.clear();
  }

  /** The socket and family id that reach `name` where it lives now. */
  async #reach(op: string, name: string, where: Where | undefined): Promise<{ genl: GenlTransport; family: number }> {
    const netns = where?.netns;
    if (netns === undefined) return { genl: this.#genl, family: await this.#familyId(op, name) };
    let identity: string;
    try {
      const st = await stat(netns);
      identity = `${st.dev}:${st.ino}`;
    } catch (e) {
      await this.release(netns);
      throw new PeerpodError('ENOTFOUND', `WireGuard device ${name}: its netns ${netns} is gone`, { op, iface: name, netns }, e);
    }
    let pod = this.#pods.get(netns);
    if (pod !== undefined && pod.identity !== identity) {
      // The path names another netns now (the pod's was deleted and the name reused).
      await this.release(netns);
      pod = undefined;
    }
    if (pod === undefined) {
      pod = { genl: this.#genlIn(netns), family: null, identity };
      this.#pods.set(netns, pod);
    }
    const p = pod;
    p.family ??= p.genl.familyId(WG_GENL_NAME);
    try {
      return { genl: p.genl, family: await p.family };
    } catch (e) {
      // Nothing half-open is kept: the next call opens afresh.
      await this.release(netns);
      if (e instanceof PeerpodError) throw new PeerpodError(e.code, `${e.message} (device ${name} in netns ${netns})`, { op, iface: name, netns }, e);
      throw this.#familyError(e, op, name);
    }
  }

  /** The kind of link `name` here, '' for a link without one, null when there is none. */
  async #linkKind(name: string, ipIn: (args: string[]) => string[] = (a) => ['ip', ...a]): Promise<string | null> {
    const r = await this.#exec(ipIn(['-j', '-d', 'link', 'show', 'dev', name]), { timeoutMs: IP_TIMEOUT_MS, okCodes: [0, 1, 255] });
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr)) return null;
      throw new PeerpodError('EBACKEND', `cannot look up link ${name}: ${r.stderr.trim()}`, { op: 'link-kind', iface: name });
    }
    const rows = JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string } }[];
    return rows[0]?.linkinfo?.info_kind ?? '';
  }

  async #familyId(op: string, name: string): Promise<number> {
    this.#family ??= this.#genl.familyId(WG_GENL_NAME);
    try {
      return await this.#family;
    } catch (e) {
      this.#family = null;
      throw this.#familyError(e, op, name);
    }
  }

  #familyError(e: unknown, op: string, name: string): PeerpodError {
    if (e instanceof GenlError && e.errno === ERRNO.ENOENT) {
      return new PeerpodError('EBACKEND', 'this kernel has no WireGuard generic netlink family (module wireguard not loaded)', {
        op,
        iface: name,
      }, e);
    }
    if (e instanceof PeerpodError) return e;
    const why = e instanceof Error ? e.message : String(e);
    return new PeerpodError('EBACKEND', `cannot reach kernel WireGuard over generic netlink: ${why}`, { op, iface: name }, e);
  }

  #error(e: unknown, op: string, name: string): PeerpodError {
    if (e instanceof PeerpodError) return e;
    if (e instanceof GenlError) {
      if (e.errno === ERRNO.ENODEV) {
        return new PeerpodError('ENOTFOUND', `WireGuard device ${name} does not exist here`, { op, iface: name, errno: errnoName(e.errno) }, e);
      }
      if (e.errno === ERRNO.EOPNOTSUPP) {
        return new PeerpodError('ENOTFOUND', `${name} is not a WireGuard device`, { op, iface: name, errno: errnoName(e.errno) }, e);
      }
      return new PeerpodError('EBACKEND', `kernel WireGuard refused ${op} of ${name}: ${errnoName(e.errno)}`, { op, iface: name, errno: errnoName(e.errno) }, e);
    }
    return new PeerpodError('EBACKEND', `kernel WireGuard ${op} of ${name} failed`, { op, iface: name }, e);
  }
}

/**
 * Whether this kernel can make WireGuard links: the module is loaded or built in
 * (/sys/module/wireguard), or listed in modules.builtin or modules.dep for the running release,
 * so that `ip link add … type wireguard` loads it on demand. Synchronous and side-effect free,
 * for the backend choice; a kernel that says yes here but refuses later fails loudly in create().
 */
export function kernelWireGuardAvailable(root = '/'): { available: boolean; why: string } {
  if (existsSync(`${root}sys/module/wireguard`)) return { available: true, why: '/sys/module/wireguard exists' };
  const dir = `${root}lib/modules/${release()}`;
  for (const f of ['modules.builtin', 'modules.dep']) {
    try {
      const text = readFileSync(`${dir}/${f}`, 'utf8');
      if (/(^|\/)wireguard\.ko(\.[a-z]+)?:?(\s|$)/m.test(text)) return { available: true, why: `wireguard is in ${dir}/${f}` };
    } catch {
      // No such file: nothing to learn from it.
    }
  }
  return { available: false, why: `no /sys/module/wireguard, and wireguard.ko is not in ${dir}/modules.builtin or modules.dep` };
}
