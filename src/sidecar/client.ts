// A client of the sidecar's unix-socket API, for wgctl: when the sidecar runs, the CLI's verbs go
// through it (so that one process owns the tunnels); when it does not, the CLI says so or works
// directly.
import { request } from 'node:http';
import { PeerpodError, type ErrorCode } from '../errors.js';

export interface SidecarReply {
  status: number;
  body: unknown;
}

export function callSidecar(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<SidecarReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        agent: false,
        timeout: timeoutMs,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const type = res.headers['content-type'] ?? '';
          resolve({ status: res.statusCode ?? 0, body: type.startsWith('application/json') ? (JSON.parse(text) as unknown) : text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const down = e.code === 'ENOENT' || e.code === 'ECONNREFUSED';
      reject(
        new PeerpodError(
          down ? 'ENOTFOUND' : 'EBACKEND',
          down ? `the sidecar is not running (no one listens on ${socketPath})` : `cannot reach the sidecar on ${socketPath}`,
          { op: `${method} ${path}` },
          e,
        ),
      );
    });
    req.end(payload);
  });
}

/** The reply's body, or the sidecar's error as a PeerpodError with its code and field. */
export function unwrap(reply: SidecarReply): unknown {
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  const err = (reply.body as { error?: { code?: string; message?: string; field?: string } }).error;
  throw new PeerpodError((err?.code ?? 'EBACKEND') as ErrorCode, err?.message ?? `sidecar answered ${reply.status}`, {
    field: err?.field,
    httpStatus: reply.status,
  });
}
