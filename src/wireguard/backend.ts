// The WireGuard backend seam (after wgctrl-go's wginternal.Client): one small interface that the
// userspace backend (wireguard-go + UAPI) and the kernel backend (generic netlink) both implement.
// A backend works in the netns of the calling process: that is where a device is born and where
// its UDP socket stays. Moving the device elsewhere is the netns layer's job, not the backend's.
import type { Device, DeviceConfig } from './config.js';

export type BackendKind = 'userspace' | 'kernel';

export interface CreateOptions {
  /** Set before anything else: wireguard-go stops seeing MTU changes once its TUN has moved. */
  mtu: number;
}

export interface WireGuardBackend {
  readonly kind: BackendKind;
  /**
   * Create device `name` in the caller's netns with the given MTU. If a healthy device of that name
   * already exists it is kept as it is (so a re-run after a crash converges); a dead leftover
   * (stale socket, orphaned link) is cleared first.
   */
  create(name: string, opts: CreateOptions): Promise<void>;
  /** Names of the devices this backend can reach from here. */
  devices(): Promise<string[]>;
  /** The device as the data plane reports it. PeerpodError ENOTFOUND when there is none. */
  device(name: string): Promise<Device>;
  /** Apply a change (absent fields are left as they are). */
  configure(name: string, config: DeviceConfig): Promise<void>;
  /**
   * Whether this backend instance made device `name`: its traces (the pid file of a live daemon)
   * are in this backend's own run folder. Start-up garbage collection removes only such devices,
   * never one that another sidecar, a test or `wgctl --direct --run-dir …` made. A backend with no
   * such traces (kernel) owns nothing.
   */
  owns(name: string): Promise<boolean>;
  /** Remove the device wherever it now lives, with its process and socket. Already gone is success. */
  remove(name: string): Promise<void>;
  /** Release held resources (sockets). The devices stay. */
  close(): Promise<void>;
}
