// Generic netlink as the kernel backend needs it: resolve a family by name, send one request and
// collect its replies (every part of a dump), turn an NLMSG_ERROR into an errno. The `GenlTransport`
// interface is the seam; `netlinkTransport()` is the real one, built on the `netlink` package's raw
// socket (a small prebuilt N-API addon, MIT). It is loaded lazily, on the first request, so that
// processes which never use kernel WireGuard never load the addon. The socket lives in the netns of
// the process, or, with `netns`, in that netns: it is made inside a setns window
// (./netns-socket.ts), so it reaches the devices that moved there.
//
// Only the socket comes from the package: the controller request and the error parsing are ours
// and pure (the package reports errors as text and loses the errno).
import { PeerpodError } from '../../errors.js';
import { inNetns } from './netns-socket.js';
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, GENL_HDRLEN, NLM_F, nla, parseAttrs } from './codec.js';

export const NETLINK_GENERIC = 16;
export const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const CTRL_VERSION = 2;
const REQUEST_TIMEOUT_MS = 5_000;

/** errno values the backend tells apart. */
export const ERRNO = { ENOENT: 2, EPERM: 1, ENODEV: 19, EINVAL: 22, EOPNOTSUPP: 95, EADDRINUSE: 98 } as const;

export interface GenlRequest {
  family: number;
  cmd: number;
  version: number;
  /** Attributes after the genl header. */
  payload: Buffer;
  dump?: boolean;
}

/** A request the kernel refused, with its errno (positive). */
export class GenlError extends Error {
  override readonly name = 'GenlError';
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export interface GenlTransport {
  /** The numeric id of a family ("wireguard"). GenlError ENOENT when the kernel has none. */
  familyId(name: string): Promise<number>;
  /** The payloads (after the genl header) of the replies; [] for a plain acknowledgement. */
  request(req: GenlRequest): Promise<Buffer[]>;
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Pure parts

/** The payload of CTRL_CMD_GETFAMILY for `name`. */
export function encodeGetFamily(name: string): Buffer {
  return nla(CTRL_ATTR_FAMILY_NAME, Buffer.from(`${name}\0`, 'utf8'));
}

/** CTRL_ATTR_FAMILY_ID out of a GETFAMILY reply payload. */
export function decodeFamilyId(payload: Buffer): number {
  for (const a of parseAttrs(payload, 'CTRL_CMD_GETFAMILY reply')) {
    if (a.type === CTRL_ATTR_FAMILY_ID && a.data.length >= 2) return a.data.readUInt16LE(0);
  }
  throw new PeerpodError('EUAPI', 'CTRL_CMD_GETFAMILY reply without a family id', { op: 'genl-decode' });
}

/** The errno of an NLMSG_ERROR body (0 for an acknowledgement), positive. */
export function errnoOfErrorBody(body: Buffer): number {
  if (body.length < 4) throw new PeerpodError('EUAPI', `NLMSG_ERROR of ${body.length} bytes`, { op: 'genl-decode' });
  const v = body.readInt32LE(0);
  return v === 0 ? 0 : -v;
}

/** Node's name for an errno, for messages ("ENODEV"). */
export function errnoName(errno: number): string {
  const names: Record<number, string> = {
    1: 'EPERM',
    2: 'ENOENT',
    13: 'EACCES',
    16: 'EBUSY',
    19: 'ENODEV',
    22: 'EINVAL',
    90: 'EMSGSIZE',
    95: 'EOPNOTSUPP',
    98: 'EADDRINUSE',
    99: 'EADDRNOTAVAIL',
  };
  return names[errno] ?? `errno ${errno}`;
}

// ---------------------------------------------------------------------------------------------
// The real transport

/** What we use of the `netlink` package's NetlinkSocket. */
interface RawMessage {
  type: number;
  flags: number;
  data: Buffer;
}
interface PackageSocket {
  request(
    type: number,
    data: Uint8Array | Uint8Array[],
    options: { flags?: number; timeout?: number; checkError?: boolean },
  ): Promise<[RawMessage[], unknown]>;
  close(): void;
}

/** A generic netlink socket in this process's netns, or in the netns at `opts.netns`. */
export function netlinkTransport(opts: { netns?: string } = {}): GenlTransport {
  let socket: Promise<PackageSocket> | null = null;
  const open = (): Promise<PackageSocket> => {
    socket ??= import('netlink').then(async (mod) => {
      const nl = (mod as unknown as { default?: typeof mod }).default ?? mod;
      // The typings call both buffer sizes required; 1 MiB lets a dump of many peers arrive whole.
      const make = (): PackageSocket => nl.createNetlink(NETLINK_GENERIC, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
      return opts.netns === undefined ? make() : inNetns(opts.netns, make);
    });
    socket.catch(() => {
      socket = null;
    });
    return socket;
  };

  const request = async (req: GenlRequest): Promise<Buffer[]> => {
    const s = await open();
    const genlHeader = Buffer.from([req.cmd, req.version, 0, 0]);
    let msgs: RawMessage[];
    try {
      [msgs] = await s.request(req.family, [genlHeader, req.payload], {
        flags: req.dump === true ? NLM_F.DUMP : 0,
        timeout: REQUEST_TIMEOUT_MS,
        checkError: false,
      });
    } catch (e) {
      throw new GenlError(0, `netlink request failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const out: Buffer[] = [];
    for (const m of msgs) {
      if (m.type === NLMSG_ERROR) {
        const errno = errnoOfErrorBody(m.data);
        if (errno === 0) continue;
        throw new GenlError(errno, errnoName(errno));
      }
      if (m.type === NLMSG_DONE) continue;
      if (m.data.length < GENL_HDRLEN) throw new PeerpodError('EUAPI', `genl reply of ${m.data.length + NLMSG_HDRLEN} bytes`, { op: 'genl-decode' });
      out.push(m.data.subarray(GENL_HDRLEN));
    }
    return out;
  };

  return {
    async familyId(name) {
      const replies = await request({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: CTRL_VERSION, payload: encodeGetFamily(name) });
      const first = replies[0];
      if (first === undefined) throw new GenlError(ERRNO.ENOENT, `no generic netlink family ${name}`);
      return decodeFamilyId(first);
    },
    request,
    close() {
      if (socket !== null) void socket.then((s) => s.close(), () => undefined);
      socket = null;
    },
  };
}
