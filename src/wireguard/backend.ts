// The WireGuard backend seam (after wgctrl-go's wginternal.Client): one small interface that the
// userspace backend (wireguard-go + UAPI) and the kernel backend (generic netlink) both implement.
// A backend creates devices in the netns of the calling process: that is where a device is born and
// where its UDP socket stays. Moving the device elsewhere is the netns layer's job, not the
// backend's. Once moved, a device is named by `where` (the netns it lives in now): the kernel
// backend needs it (generic netlink resolves names in the netns of its socket, so it opens one
// there); the userspace backend ignores it (wireguard-go's UAPI socket stays in one host folder).
import { PeerpodError } from '../errors.js';
import type { Device, DeviceConfig } from './config.js';

export type BackendKind = 'userspace' | 'kernel';

export interface CreateOptions {
  /** Set before anything else: wireguard-go stops seeing MTU changes once its TUN has moved. */
  mtu: number;
}

/** The MTUs a device may be created with: from the IPv4 minimum (the kernel refuses less) to the largest a link has. */
export const DEVICE_MTU = { min: 68, max: 65_535 } as const;

/** EINVAL (op create, field mtu) unless `mtu` is one that device `iface` may be created with. */
export function checkCreateMtu(iface: string, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < DEVICE_MTU.min || mtu > DEVICE_MTU.max) {
    throw new PeerpodError('EINVAL', `mtu must be an integer from ${DEVICE_MTU.min} to ${DEVICE_MTU.max}, got ${String(mtu)}`, {
      op: 'create',
      iface,
      field: 'mtu',
    });
  }
}

/** Where a device lives now; absent `netns` = the caller's netns, where it was born. */
export interface Where {
  /** Path of the netns file, e.g. /run/netns/cni-1234. */
  netns?: string;
}

export interface WireGuardBackend {
  readonly kind: BackendKind;
  /**
   * Create device `name` in the caller's netns with the given MTU. If a healthy device of that name
   * already exists it is kept as it is (so a re-run after a crash converges); a dead leftover
   * (stale socket, orphaned link) is cleared first.
   */
  create(name: string, opts: CreateOptions): Promise<void>;
  /** Names of the devices this backend reaches without `where` (kernel: those still in the caller's netns). */
  devices(): Promise<string[]>;
  /** The device as the data plane reports it. PeerpodError ENOTFOUND when there is none (or its netns is gone). */
  device(name: string, where?: Where): Promise<Device>;
  /** Apply a change (absent fields are left as they are). */
  configure(name: string, config: DeviceConfig, where?: Where): Promise<void>;
  /**
   * Whether this backend instance made device `name`: its traces (the pid file of a live daemon)
   * are in this backend's own run folder. Start-up garbage collection removes only such devices,
   * never one that another sidecar, a test or `wgctl --direct --run-dir …` made. A backend with no
   * such traces (kernel) owns nothing.
   */
  owns(name: string): Promise<boolean>;
  /** Remove the device, with its process and socket. Already gone (device or netns) is success. */
  remove(name: string, where?: Where): Promise<void>;
  /** Drop what is held for one netns (kernel: its socket), when its pod is torn down. Idempotent. */
  release(netns: string): Promise<void>;
  /** Release held resources (sockets). The devices stay. */
  close(): Promise<void>;
}
