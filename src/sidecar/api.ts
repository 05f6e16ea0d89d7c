// The sidecar's local HTTP API (contract: docs/sidecar.md). CAA's three verbs, status, metrics and
// health, as JSON over a unix socket (mode 0600), and optionally /metrics, /healthz and /readyz
// over TCP. A malformed request gets a 4xx whose message names the field; the daemon stays up.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { PeerpodError, type ErrorCode } from '../errors.js';
import { parseInspectedPodNetwork, parsePodNetwork, podNetworkToJson, wireguardToJson } from '../podnetwork/schema.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import type { Device } from '../wireguard/config.js';
import type { CloudPortStatus } from './cloud-port.js';
import { renderMetrics } from './metrics.js';
import type { TunnelService } from './service.js';

const MAX_BODY = 1 << 20;

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  EINVAL: 400,
  EUNSUPPORTED: 400,
  ENOTFOUND: 404,
  ESTATE: 409,
};

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new PeerpodError('EINVAL', `request body is larger than ${MAX_BODY} bytes`, { field: 'body' });
    chunks.push(c as Buffer);
  }
  return parseBody(Buffer.concat(chunks).toString('utf8'));
}

/** A request body's JSON; an empty body is {}. */
export function parseBody(text: string): unknown {
  try {
    return JSON.parse(text === '' ? '{}' : text);
  } catch {
    // JSON.parse quotes the text around the fault, which may hold a key: say where, not what.
    throw new PeerpodError('EINVAL', 'request body is not valid JSON', { field: 'body' });
  }
}

function field(body: unknown, name: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
}

function netnsOf(body: unknown): string {
  const v = field(body, 'netns');
  if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0')) {
    throw new PeerpodError('EINVAL', 'netns: expected the absolute path of the pod netns, e.g. /run/netns/cni-1234', { field: 'netns' });
  }
  return v;
}

function optionalString(body: unknown, name: string): string | undefined {
  const v = field(body, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new PeerpodError('EINVAL', `${name}: expected a string`, { field: name });
  return v;
}

function podVmIPsOf(body: unknown): string[] {
  const v = field(body, 'podVmIPs');
  if (!Array.isArray(v) || v.length === 0) {
    throw new PeerpodError('EINVAL', 'podVmIPs: expected a non-empty array of IP addresses', { field: 'podVmIPs' });
  }
  return v.map((ip, i) => {
    if (typeof ip !== 'string' || isIP(ip) === 0) {
      throw new PeerpodError('EINVAL', `podVmIPs[${i}]: ${JSON.stringify(ip)} is not an IP address`, { field: `podVmIPs[${i}]` });
    }
    return ip;
  });
}

export interface ApiDeps {
  service: TunnelService;
  backend: WireGuardBackend;
  onError?: (e: unknown, route: string) => void;
  /** The cloud firewall rule's state, shown on /readyz and /metrics; it does not change readiness. */
  cloudPortRule?: () => CloudPortStatus;
}

async function devicesOf(backend: WireGuardBackend, tunnels: readonly { device: string; netns: string }[]): Promise<Map<string, Device>> {
  const out = new Map<string, Device>();
  for (const t of tunnels) {
    const d = await backend.device(t.device, { netns: t.netns }).catch(() => null);
    if (d !== null) out.set(t.device, d);
  }
  return out;
}

export interface ApiReply {
  status: number;
  body: unknown;
  /** Content type; JSON when absent. */
  type?: string;
}

/**
 * One request, from method, path and body to the reply, errors included. Shared by the socket API
 * and the one-shot mode (`peerpod-wg-sidecar call`), so both answer alike. `full` = the unix-socket
 * API; false = the TCP listener (metrics and health only).
 */
export async function handleRequest(
  deps: ApiDeps,
  full: boolean,
  method: string,
  rawUrl: string,
  body: () => Promise<unknown>,
): Promise<ApiReply> {
  const route = `${method} ${new URL(rawUrl, 'http://sidecar').pathname}`;
  try {
    return await answer(deps, full, method, rawUrl, body);
  } catch (e) {
    deps.onError?.(e, route);
    if (e instanceof PeerpodError) {
      const status = STATUS_OF[e.code] ?? 500;
      return { status, body: { error: { code: e.code, message: e.describe(), field: e.context.field } } };
    }
    return { status: 500, body: { error: { code: 'EINTERNAL', message: e instanceof Error ? e.message : String(e) } } };
  }
}

async function answer(deps: ApiDeps, full: boolean, method: string, rawUrl: string, body: () => Promise<unknown>): Promise<ApiReply> {
  const { service } = deps;
  const url = new URL(rawUrl, 'http://sidecar');
  const route = `${method} ${url.pathname}`;
  const ok = (b: unknown): ApiReply => ({ status: 200, body: b });
  if (route === 'GET /healthz') return ok({ ok: true });
  if (route === 'GET /readyz') {
    // A firewall rule we could not check leaves serving alone: a worker whose pod VMs' firewall
    // is already open keeps its tunnels. The state is there to be seen, not to gate.
    const cloud = deps.cloudPortRule?.();
    return { status: service.ready ? 200 : 503, body: { ready: service.ready, ...(cloud !== undefined && { cloudPortRule: cloud }) } };
  }
  if (route === 'GET /metrics') {
    const rows = await service.status();
    const devices = await devicesOf(deps.backend, rows.filter((r) => r.tunnelType === 'wireguard'));
    return { status: 200, body: renderMetrics(rows, devices, service.counters, deps.cloudPortRule?.()), type: 'text/plain; version=0.0.4' };
  }
  if (!full) return { status: 404, body: { error: { code: 'ENOTFOUND', message: `no route ${route} on this listener` } } };
  if (route === 'GET /v1/status') return ok(await service.status());
  if (method === 'GET' && url.pathname.startsWith('/v1/status/')) {
    const key = decodeURIComponent(url.pathname.slice('/v1/status/'.length));
    const row = (await service.status()).find((r) => r.pod === key || r.netns === key || r.device === key);
    if (row === undefined) throw new PeerpodError('ENOTFOUND', `no tunnel for pod, netns or device "${key}"`, { field: 'pod' });
    return ok(row);
  }
  if (route === 'POST /v1/inspect') {
    const b = await body();
    const tunnelType = optionalString(b, 'tunnelType');
    const pod = optionalString(b, 'pod');
    const pn = await service.inspect({
      netns: netnsOf(b),
      ...(tunnelType === undefined ? {} : { tunnelType }),
      ...(pod === undefined ? {} : { pod }),
    });
    return ok({ podNetwork: podNetworkToJson(pn) });
  }
  if (route === 'POST /v1/configure') {
    const b = await body();
    const inspected = parseInspectedPodNetwork(field(b, 'podNetwork'));
    const pod = optionalString(b, 'pod');
    const hostInterface = optionalString(b, 'hostInterface');
    const section = await service.configure({
      podMtu: inspected.mtu,
      ...(inspected.podIp === undefined ? {} : { podIP: inspected.podIp.address }),
      ...(hostInterface === undefined || hostInterface === '' ? {} : { hostInterface }),
      ...(pod === undefined ? {} : { pod }),
    });
    return ok({ wireguard: wireguardToJson(section) });
  }
  if (route === 'POST /v1/setup') {
    const b = await body();
    const netns = netnsOf(b);
    const podVmIPs = podVmIPsOf(b);
    const podNetwork = parsePodNetwork(field(b, 'podNetwork'), { vmPrivateKey: 'optional' });
    const rec = await service.setup({ netns, podVmIPs, podNetwork });
    return ok({ netns: rec.netns, device: rec.device, tunnelType: rec.tunnelType, phase: rec.phase });
  }
  if (route === 'POST /v1/teardown') {
    const b = await body();
    await service.teardown({ netns: netnsOf(b) });
    return ok({ ok: true });
  }
  return { status: 404, body: { error: { code: 'ENOTFOUND', message: `no route ${route}: see docs/sidecar.md` } } };
}

/** The HTTP handler around handleRequest. */
export function apiHandler(deps: ApiDeps, full: boolean) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const reply = await handleRequest(deps, full, req.method ?? 'GET', req.url ?? '/', () => readBody(req));
    const type = reply.type ?? 'application/json';
    const text = reply.type === undefined ? JSON.stringify(reply.body) + '\n' : String(reply.body);
    res.writeHead(reply.status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

export function createApiServer(deps: ApiDeps, full: boolean): Server {
  const handler = apiHandler(deps, full);
  return createServer((req, res) => void handler(req, res));
}
