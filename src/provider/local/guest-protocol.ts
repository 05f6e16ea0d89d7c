// What a pod-VM guest image and the local provider agree on: the markers the image's /init prints on
// the serial console, and the lab command channel's words. The image builder (tools/podvm-image/)
// writes them into /init; qemu.ts reads them. Kept here, in the product, so that the provider does
// not depend on the tool that builds its images.

export const MARK = 'PEERPOD-MARK';
export const AGENT_READY = 'PEERPOD-AGENT-READY';
export const AGENT_FAILED = 'PEERPOD-AGENT-FAILED';
export const GUEST_ERROR = 'PEERPOD-ERROR';

/**
 * The control channel: the host writes `PPCMD <id> <base64 of a shell command>` lines; the guest
 * runs each command in the background (so several may run at once) and answers
 * `PPCMD-RESULT <id> <exit code> <base64 of stdout and stderr>`. It announces itself with
 * `PPCTL-READY` once the port is in raw mode. Only for lab images: a real pod VM has no such door.
 */
export const CONTROL_PROTOCOL = { command: 'PPCMD', result: 'PPCMD-RESULT', ready: 'PPCTL-READY' } as const;

/** A bootable guest: what the local provider needs of an image, whoever built it (tools/podvm-image/). */
export interface PodVmImage {
  kernelRelease: string;
  kernel: string;
  initrd: string;
  initrdBytes: number;
  key: string;
  /** false when the image came from the cache. */
  built: boolean;
  ms: number;
}
