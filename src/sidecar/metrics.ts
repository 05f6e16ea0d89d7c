// Prometheus text exposition for the sidecar. The per-peer series use the names and labels of
// prometheus_wireguard_exporter (interface, public_key, allowed_ips), so existing dashboards work;
// wireguard_latest_handshake_seconds is a unix timestamp, as there. Our own series are prefixed
// peerpod_wg_. Written by hand: a dozen series do not need a metrics library.
import { CLOUD_PORT_STATES, type CloudPortStatus } from './cloud-port.js';
import type { ServiceCounters } from './service.js';
import type { TunnelStatus } from '../tunnel/status.js';
import type { Device } from '../wireguard/config.js';

const STATES = ['connecting', 'up', 'stale', 'down', 'unreachable', 'gone'] as const;
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function labels(l: Record<string, string>): string {
  return '{' + Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`).join(',') + '}';
}

export function renderMetrics(
  rows: readonly (TunnelStatus & { pod: string })[],
  devices: ReadonlyMap<string, Device>,
  counters: ServiceCounters,
  cloudPortRule?: CloudPortStatus,
): string {
  const out: string[] = [];
  const corrupt = rows.filter((r) => r.state === 'corrupt').length;
  rows = rows.filter((r) => r.state !== 'corrupt');
  const series = (name: string, help: string, type: string, lines: string[]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  const peers = [...devices.values()].flatMap((d) =>
    d.peers.map((p) => ({ l: { interface: d.name, public_key: p.publicKey.toBase64(), allowed_ips: p.allowedIPs.join(',') }, p })),
  );
  series('wireguard_sent_bytes_total', 'Bytes sent to the peer', 'counter', peers.map(({ l, p }) => `wireguard_sent_bytes_total${labels(l)} ${p.txBytes}`));
  series('wireguard_received_bytes_total', 'Bytes received from the peer', 'counter', peers.map(({ l, p }) => `wireguard_received_bytes_total${labels(l)} ${p.rxBytes}`));
  series(
    'wireguard_latest_handshake_seconds',
    'UNIX timestamp seconds of the latest handshake (0 = never)',
    'gauge',
    peers.map(({ l, p }) => `wireguard_latest_handshake_seconds${labels(l)} ${p.lastHandshakeSec}`),
  );
  series(
    'peerpod_wg_tunnel_state',
    'The state of each tunnel: 1 for its current state, 0 for the others',
    'gauge',
    rows.flatMap((r) =>
      STATES.map((s) => `peerpod_wg_tunnel_state${labels({ pod: r.pod, netns: r.netns, device: r.device, tunnel_type: r.tunnelType, state: s })} ${r.state === s ? 1 : 0}`),
    ),
  );
  series('peerpod_wg_tunnels', 'Tunnels this worker keeps', 'gauge', [`peerpod_wg_tunnels ${rows.length}`]);
  series('peerpod_wg_corrupt_records', 'Pod records that could not be read (moved aside; see /v1/status)', 'gauge', [
    `peerpod_wg_corrupt_records ${corrupt}`,
  ]);
  const counts = BUCKETS.map((b) => counters.setupSeconds.filter((s) => s <= b).length);
  const sum = counters.setupSeconds.reduce((a, b) => a + b, 0);
  series('peerpod_wg_setup_duration_seconds', 'Time a setup call took', 'histogram', [
    ...BUCKETS.map((b, i) => `peerpod_wg_setup_duration_seconds_bucket{le="${b}"} ${counts[i] ?? 0}`),
    `peerpod_wg_setup_duration_seconds_bucket{le="+Inf"} ${counters.setupSeconds.length}`,
    `peerpod_wg_setup_duration_seconds_sum ${sum}`,
    `peerpod_wg_setup_duration_seconds_count ${counters.setupSeconds.length}`,
  ]);
  series('peerpod_wg_handshake_nudges_total', 'Fresh handshakes started by the health loop', 'counter', [`peerpod_wg_handshake_nudges_total ${counters.nudges}`]);
  series('peerpod_wg_idle_probes_total', 'Keepalives sent by the health loop to idle tunnels', 'counter', [`peerpod_wg_idle_probes_total ${counters.probes}`]);
  series('peerpod_wg_unreachable_total', 'Times a pod VM stopped answering (no handshake within 10 s of a probe after 20 s of silence)', 'counter', [
    `peerpod_wg_unreachable_total ${counters.unreachable}`,
  ]);
  series('peerpod_wg_heals_total', 'Tunnels re-created after their device or process died', 'counter', [`peerpod_wg_heals_total ${counters.heals}`]);
  if (cloudPortRule !== undefined) {
    const { provider, state } = cloudPortRule;
    series(
      'peerpod_wg_cloud_port_rule',
      "The pod VMs' cloud firewall rule for WG_PORT: 1 for its current state (off, pending, open, denied, failing), 0 for the others",
      'gauge',
      CLOUD_PORT_STATES.map((s) => `peerpod_wg_cloud_port_rule${labels({ provider, state: s })} ${s === state ? 1 : 0}`),
    );
  }
  return out.join('\n') + '\n';
}
