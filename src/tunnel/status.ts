// One status row per tunnel of this worker, from the durable records and what the data plane
// reports now. Never carries key material: the rows are printed and served as they are.
import type { NetnsFactory } from '../netns/netns.js';
import type { StateProblem } from '../state/record-check.js';
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
  /** For a state `corrupt` row: the file and what is wrong with it. */
  problem?: string;
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
      const dev = await deps.backend.device(r.device, { netns: r.netns }).catch(() => null);
      const vmKey = PublicKey.fromBase64(r.vmPublicKey);
      const peer = dev?.peers.find((p) => p.publicKey.equals(vmKey)) ?? null;
      rows.push({
        ...base,
        endpoint: peer?.endpoint ?? null,
        latestHandshake: peer?.lastHandshakeSec ?? 0,
        rxBytes: peer?.rxBytes ?? 0,
        txBytes: peer?.txBytes ?? 0,
        keepalive: peer?.persistentKeepalive ?? r.keepalive,
        state: r.phase === 'orphaned' ? 'gone' : tunnelState(peer, nowSec),
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

/** One row, state `corrupt`, per record the store could not use: status names them all. */
export function problemRows(problems: readonly StateProblem[]): (TunnelStatus & { pod: string })[] {
  return problems.map((p) => ({
    pod: '',
    netns: '',
    tunnelType: '',
    device: '',
    endpoint: null,
    latestHandshake: 0,
    rxBytes: 0,
    txBytes: 0,
    keepalive: 0,
    phase: 'corrupt',
    state: 'corrupt',
    problem: `${p.file}: ${p.problem}`,
  }));
}

function age(sec: number, now: number): string {
  if (sec === 0) return 'never';
  const d = Math.max(0, now - sec);
  return d < 120 ? `${d}s` : `${Math.floor(d / 60)}m${d % 60}s`;
}

/** The table `wgctl status` prints. */
export function formatStatusTable(rows: readonly (TunnelStatus & { pod?: string })[], nowSec: number): string {
  const table = [['POD', 'NETNS', 'DEVICE', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX', 'KEEPALIVE', 'STATE']];
  for (const r of rows) {
    table.push([r.pod || '-', r.netns || '-', r.device || '-', r.endpoint ?? '-', age(r.latestHandshake, nowSec), String(r.rxBytes),
      String(r.txBytes), r.keepalive === 0 ? 'off' : `${r.keepalive}s`, r.state]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** `wgctl status <pod>`: one tunnel, one field a line. */
export function formatStatusDetail(r: TunnelStatus & { pod?: string }, nowSec: number): string {
  const lines: [string, string][] = [
    ['pod', r.pod || '-'],
    ['netns', r.netns],
    ['tunnel type', r.tunnelType],
    ['device', r.device],
    ['state', r.state],
    ['phase', r.phase],
    ['endpoint', r.endpoint ?? '-'],
    ['latest handshake', r.latestHandshake === 0 ? 'never' : `${age(r.latestHandshake, nowSec)} ago (${new Date(r.latestHandshake * 1000).toISOString()})`],
    ['received', `${r.rxBytes} B`],
    ['sent', `${r.txBytes} B`],
    ['keepalive', r.keepalive === 0 ? 'off' : `${r.keepalive}s`],
    ...(r.problem === undefined ? [] : [['problem', r.problem] as [string, string]]),
  ];
  return lines.map(([k, v]) => `${(k + ':').padEnd(18)}${v}`).join('\n') + '\n';
}
