// Device names. wireguard-go keeps its control sockets in one folder for the whole host
// (/var/run/wireguard/<name>.sock), across all namespaces, so a name must be unique per host, not
// per pod netns. Names are derived from what identifies a pod on each side, so they are stable
// across restarts and never need to be stored to be found again.
import { createHash } from 'node:crypto';
import type { PublicKey } from '../../wireguard/keys.js';

/** Worker side: "pwg" + the pod id (12 hex characters of the netns path hash) = 15 characters. */
export function workerDeviceName(podId: string): string {
  return `pwg${podId}`;
}

/** Pod-VM side, before the device is renamed to the pod's interface name inside the pod netns. */
export function podVmDeviceName(workerPublicKey: PublicKey): string {
  return `pwv${createHash('sha256').update(workerPublicKey.toBase64()).digest('hex').slice(0, 12)}`;
}
