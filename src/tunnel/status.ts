// One status row per tunnel of this worker, from the durable records and what the data plane
// reports now. Never carries key material: the rows are printed and served as they are.
import type { NetnsFactory } from '../netns/netns.js';
import type { PodRecord } from '../state/store.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { PublicKey } from '../wireguard/keys.js';
import { tunnelState, type TunnelState } from './health.js';

export interface TunnelStatus {
  netns: string;
  tunnelType: string;
  device: string;
  /** The peer's endpoint as the data plane has it (learned or configured). */
  endpoint: string | null;
  /** Unix seconds of the latest handshake, 0 = never (VXLAN has none). */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  keepalive: number;
  phase: string;
  state: TunnelState;
}

export async function tunnelStatus(
  records: readonly PodRecord[],
  deps: { backend: WireGuardBackend; netns: NetnsFactory },
  nowSec: number,
): Promise<TunnelStatus[]> {
  const rows: TunnelStatus[] = [];
  for (const r of records) {
    const base = { netns: r.netns, tunnelType: r.tunnelType, device: r.device, phase: r.phase };
    if (r.tunnelType === 'wireguard') {
      const dev = await deps.backend.device(r.device).catch(() => null);
      const vmKey = PublicKey.fromBase64(r.vmPublicKey);
      const peer = dev?.peers.find((p) => p.publicKey.equals(vmKey)) ?? null;
      rows.push({
        ...base,
        endpoint: peer?.endpoint ?? null,
        latestHandshake: peer?.lastHandshakeSec ?? 0,
        rxBytes: peer?.rxBytes ?? 0,
        txBytes: peer?.txBytes ?? 0,
        keepalive: peer?.persistentKeepalive ?? r.keepalive,
        state: tunnelState(peer, nowSec),
      });
    } else {
      // VXLAN has no handshake: the link in the pod netns is all there is to see.
      const link = await deps.netns.at(r.netns).link(r.device).catch(() => null);
      const ip = r.podVmIPs[0];
      rows.push({
        ...base,
        endpoint: ip === undefined ? null : `${ip}:${r.port}`,
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        keepalive: 0,
        state: link === null ? (r.phase === 'ready' ? 'down' : 'connecting') : 'up',
      });
    }
  }
  return rows;
}
