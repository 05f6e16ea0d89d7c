// The sidecar's local HTTP API (contract: docs/sidecar.md). CAA's three verbs, status, metrics and
// health, as JSON over a unix socket (mode 0600), and optionally /metrics, /healthz and /readyz
// over TCP. A malformed request gets a 4xx whose message names the field; the daemon stays up.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { PeerpodError, type ErrorCode } from '../errors.js';
import { parsePodNetwork } from '../podnetwork/schema.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import type { Device } from '../wireguard/config.js';
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
  const text = Buffer.concat(chunks).toString('utf8');
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
}

async function devicesOf(backend: WireGuardBackend, names: readonly string[]): Promise<Map<string, Device>> {
  const out = new Map<string, Device>();
  for (const n of names) {
    const d = await backend.device(n).catch(() => null);
    if (d !== null) out.set(n, d);
  }
  return out;
}

/** The request handler. `full` = the unix-socket API; false = the TCP listener (metrics and health only). */
export function apiHandler(deps: ApiDeps, full: boolean) {
  const { service } = deps;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sidecar');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    const send = (status: number, body: unknown, type = 'application/json'): void => {
      const text = type === 'application/json' ? JSON.stringify(body) + '\n' : String(body);
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      if (route === 'GET /healthz') return send(200, { ok: true });
      if (route === 'GET /readyz') return send(service.ready ? 200 : 503, { ready: service.ready });
      if (route === 'GET /metrics') {
        const rows = await service.status();
        const devices = await devicesOf(deps.backend, rows.filter((r) => r.tunnelType === 'wireguard').map((r) => r.device));
        return send(200, renderMetrics(rows, devices, service.counters), 'text/plain; version=0.0.4');
      }
      if (!full) return send(404, { error: { code: 'ENOTFOUND', message: `no route ${route} on this listener` } });
      if (route === 'GET /v1/status') return send(200, await service.status());
      if (req.method === 'GET' && url.pathname.startsWith('/v1/status/')) {
        const key = decodeURIComponent(url.pathname.slice('/v1/status/'.length));
        const row = (await service.status()).find((r) => r.pod === key || r.netns === key || r.device === key);
        if (row === undefined) throw new PeerpodError('ENOTFOUND', `no tunnel for pod, netns or device "${key}"`, { field: 'pod' });
        return send(200, row);
      }
      if (route === 'POST /v1/inspect') {
        const body = await readBody(req);
        const tunnelType = optionalString(body, 'tunnelType');
        const pod = optionalString(body, 'pod');
        const { podNetworkToJson } = await import('../podnetwork/schema.js');
        const pn = await service.inspect({
          netns: netnsOf(body),
          ...(tunnelType === undefined ? {} : { tunnelType }),
          ...(pod === undefined ? {} : { pod }),
        });
        return send(200, { podNetwork: podNetworkToJson(pn) });
      }
      if (route === 'POST /v1/setup') {
        const body = await readBody(req);
        const netns = netnsOf(body);
        const podVmIPs = podVmIPsOf(body);
        const podNetwork = parsePodNetwork(field(body, 'podNetwork'), { vmPrivateKey: 'optional' });
        const rec = await service.setup({ netns, podVmIPs, podNetwork });
        return send(200, { netns: rec.netns, device: rec.device, tunnelType: rec.tunnelType, phase: rec.phase });
      }
      if (route === 'POST /v1/teardown') {
        const body = await readBody(req);
        await service.teardown({ netns: netnsOf(body) });
        return send(200, { ok: true });
      }
      return send(404, { error: { code: 'ENOTFOUND', message: `no route ${route}: see docs/sidecar.md` } });
    } catch (e) {
      deps.onError?.(e, route);
      if (e instanceof PeerpodError) {
        const status = STATUS_OF[e.code] ?? 500;
        return send(status, { error: { code: e.code, message: e.describe(), field: e.context.field } });
      }
      return send(500, { error: { code: 'EINTERNAL', message: e instanceof Error ? e.message : String(e) } });
    }
  };
}

export function createApiServer(deps: ApiDeps, full: boolean): Server {
  const handler = apiHandler(deps, full);
  return createServer((req, res) => void handler(req, res));
}
