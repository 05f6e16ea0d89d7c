// The sidecar's configuration, from the environment as CAA's DaemonSet passes it (ConfigMap
// peer-pods-cm) plus our own WG_* variables. Every variable is validated at start, and every bad
// one is reported at once, by name, with what would be valid. Documented in docs/sidecar.md.
import { isIP } from 'node:net';
import { PeerpodError, isPeerpodError } from '../errors.js';
import { readInteger } from '../integer-setting.js';
import { TUNNEL_TYPES, type TunnelType } from '../podnetwork/types.js';
import { DEFAULT_STATE_DIR } from '../state/store.js';
import { DEFAULT_KEEPALIVE, DEFAULT_LISTEN_PORT } from '../tunnel/wireguard/worker.js';
import { DEFAULT_RUN_DIR } from '../wireguard/userspace/backend.js';
import { cloudPortPlanFromEnv, type CloudPortPlan } from './cloud-port.js';

export const DEFAULT_SOCKET = '/run/peerpod-wg/sidecar.sock';

export interface SidecarConfig {
  tunnelType: TunnelType;
  wgPort: number;
  wgKeepalive: number;
  wgMtu?: number;
  stateDir: string;
  runDir: string;
  socket: string;
  /** host:port for /metrics, /healthz and /readyz over TCP, when set. */
  metricsAddr?: { host: string; port: number };
  vxlanPort?: number;
  vxlanMinId?: number;
  logLevel: string;
  backend: string;
  /** Health loop period. */
  tickMs: number;
  /** An idle tunnel (nothing sent or received for this long) gets a keepalive; 0 disables. */
  idleProbeMs: number;
  /** How long a connecting tunnel is nudged fast after its setup. */
  fastNudgeWindowMs: number;
  /** Whether to open WG_PORT in the pod VMs' cloud firewall at start (CLOUD_PROVIDER, WG_MANAGE_CLOUD_RULE, …). */
  cloudPortRule: CloudPortPlan;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function sidecarConfigFromEnv(env: NodeJS.ProcessEnv): SidecarConfig {
  const problems: string[] = [];
  const int = (name: string, min: number, max: number, dflt?: number): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return dflt;
    const r = readInteger(text, min, max);
    if (r.ok) return r.value;
    problems.push(`${name}: ${r.problem}`);
    return dflt;
  };
  const tunnelType = env['TUNNEL_TYPE'] ?? 'wireguard';
  if (!(TUNNEL_TYPES as readonly string[]).includes(tunnelType)) {
    problems.push(`TUNNEL_TYPE=${JSON.stringify(tunnelType)}: unknown tunnel type: valid types are ${TUNNEL_TYPES.join(', ')}`);
  }
  let metricsAddr: SidecarConfig['metricsAddr'];
  const m = env['WG_METRICS_ADDR'];
  if (m !== undefined && m !== '') {
    const match = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,5})$/.exec(m);
    const host = match?.[1] ?? match?.[2];
    const port = Number(match?.[3]);
    if (host === undefined || isIP(host) === 0 || !(port >= 1 && port <= 65535)) {
      problems.push(`WG_METRICS_ADDR=${JSON.stringify(m)}: expected ip:port, e.g. 127.0.0.1:9586 or [::1]:9586`);
    } else metricsAddr = { host, port };
  }
  const logLevel = env['LOG_LEVEL'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL=${JSON.stringify(logLevel)}: valid levels are ${LOG_LEVELS.join(', ')}`);
  const backend = env['WG_BACKEND'] ?? 'auto';
  if (!['auto', 'userspace', 'kernel'].includes(backend)) {
    problems.push(`WG_BACKEND=${JSON.stringify(backend)}: valid backends are auto, userspace, kernel`);
  }
  for (const name of ['WG_STATE_DIR', 'WG_RUN_DIR', 'WG_SOCKET']) {
    const v = env[name];
    if (v !== undefined && !v.startsWith('/')) problems.push(`${name}=${JSON.stringify(v)}: expected an absolute path`);
  }
  const wgPort = int('WG_PORT', 1, 65535, DEFAULT_LISTEN_PORT) ?? DEFAULT_LISTEN_PORT;
  const wgKeepalive = int('WG_KEEPALIVE', 0, 65535, DEFAULT_KEEPALIVE) ?? DEFAULT_KEEPALIVE;
  const wgMtu = int('WG_MTU', 1280, 65535);
  const vxlanPort = int('VXLAN_PORT', 1, 65535);
  const vxlanMinId = int('VXLAN_MIN_ID', 1, 2 ** 24 - 1);
  const tickMs = int('WG_HEALTH_TICK_MS', 50, 60_000, 250) ?? 250;
  const idleProbeMs = int('WG_IDLE_PROBE_MS', 0, 3_600_000, 1000) ?? 1000;
  const fastNudgeWindowMs = int('WG_FAST_NUDGE_WINDOW_MS', 0, 3_600_000, 300_000) ?? 300_000;
  let cloudPortRule: CloudPortPlan | undefined;
  try {
    cloudPortRule = cloudPortPlanFromEnv(env);
  } catch (e) {
    if (!isPeerpodError(e, 'EINVAL')) throw e;
    // One line per variable ("NAME: text"); a variable already reported above (WG_PORT) is not repeated.
    for (const line of e.message.split('\n')) {
      const name = line.split(':')[0];
      if (!problems.some((p) => p.split(/[=:]/)[0] === name)) problems.push(line);
    }
  }
  if (problems.length > 0 || cloudPortRule === undefined) {
    throw new PeerpodError('EINVAL', `invalid sidecar configuration:\n  ${problems.join('\n  ')}`, {
      op: 'config',
      field: problems[0]?.split(/[=:]/)[0],
    });
  }
  return {
    tunnelType: tunnelType as TunnelType,
    wgPort,
    wgKeepalive,
    ...(wgMtu === undefined ? {} : { wgMtu }),
    stateDir: env['WG_STATE_DIR'] ?? DEFAULT_STATE_DIR,
    runDir: env['WG_RUN_DIR'] ?? DEFAULT_RUN_DIR,
    socket: env['WG_SOCKET'] ?? DEFAULT_SOCKET,
    ...(metricsAddr === undefined ? {} : { metricsAddr }),
    ...(vxlanPort === undefined ? {} : { vxlanPort }),
    ...(vxlanMinId === undefined ? {} : { vxlanMinId }),
    logLevel,
    backend,
    tickMs,
    idleProbeMs,
    fastNudgeWindowMs,
    cloudPortRule,
  };
}
