// A tiny ARM behind the Azure SDK's `httpClient` option: VMs, NICs, public IPs and one NSG
// (podvm-nsg) with its rules, kept in maps, with errors on demand. It answers every request itself
// and throws on any it has no route for, so nothing reaches Azure. Shared by the Azure adapter's
// tests and the sidecar's cloud-port tests.
import type { AzureProviderOptions } from '../../src/provider/azure/index.js';

type HttpClient = NonNullable<AzureProviderOptions['httpClient']>;
type PipelineRequest = Parameters<HttpClient['sendRequest']>[0];
type PipelineResponse = Awaited<ReturnType<HttpClient['sendRequest']>>;
export type Json = Record<string, unknown>;

export const SUB = '00000000-0000-0000-0000-0000000000a1';

export interface Seen {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly apiVersion: string | null;
  readonly body: Json | undefined;
  readonly authorization: string | undefined;
}

/** A tiny ARM: VMs, NICs, public IPs and one NSG with its rules, kept in maps; errors on demand. */
export class FakeArm implements HttpClient {
  readonly seen: Seen[] = [];
  readonly vms = new Map<string, Json>();
  readonly rules = new Map<string, Json>();
  /** Rules other people put in the NSG (they hold priorities). */
  otherRules: Json[] = [];
  readonly failures: { method: string; path: RegExp; status: number; code: string; message: string; times: number }[] = [];
  readonly hangs: { method: string; path: RegExp }[] = [];

  /** Answers matching requests with this ARM error, `times` times (default: always). */
  fail(method: string, path: RegExp, status: number, code: string, message: string, times = Infinity): void {
    this.failures.push({ method, path, status, code, message, times });
  }

  /** Never answers matching requests; they end only when their abortSignal fires. */
  hang(method: string, path: RegExp): void {
    this.hangs.push({ method, path });
  }

  async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
    const url = new URL(request.url);
    const body = typeof request.body === 'string' ? (JSON.parse(request.body) as Json) : undefined;
    this.seen.push({ origin: url.origin, method: request.method, path: url.pathname, apiVersion: url.searchParams.get('api-version'), body, authorization: request.headers.get('authorization') });
    const matches = (f: { method: string; path: RegExp }): boolean => f.method === request.method && f.path.test(url.pathname);
    if (this.hangs.some(matches)) {
      return new Promise((_, reject) => request.abortSignal?.addEventListener('abort', () => reject(new Error('The operation was aborted.')), { once: true }));
    }
    const failure = this.failures.find((f) => f.times > 0 && matches(f));
    if (failure) {
      failure.times--;
      return respond(request, failure.status, { error: { code: failure.code, message: failure.message } });
    }
    return this.#route(request, request.method, url.pathname, body);
  }

  #route(request: PipelineRequest, method: string, path: string, body: Json | undefined): PipelineResponse {
    const notFound = (what: string): PipelineResponse => respond(request, 404, { error: { code: 'ResourceNotFound', message: `The Resource '${what}' was not found.` } });
    let m = /\/virtualMachines\/([^/]+)$/.exec(path);
    if (m) {
      const name = m[1]!;
      if (method === 'PUT') {
        const nic = `/subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Network/networkInterfaces/${name}-nic`;
        const props = (body!['properties'] ?? {}) as Json;
        const vm = { ...body, id: path, name, properties: { ...props, provisioningState: 'Succeeded', networkProfile: { ...(props['networkProfile'] as Json), networkInterfaces: [{ id: nic }] } } };
        this.vms.set(name, vm);
        return respond(request, 201, vm);
      }
      const vm = this.vms.get(name);
      if (!vm) return method === 'DELETE' ? respond(request, 204) : notFound(name);
      if (method === 'GET') return respond(request, 200, vm);
      if (method === 'DELETE') {
        this.vms.delete(name);
        return respond(request, 200);
      }
    }
    m = /\/networkInterfaces\/([^/]+)-nic$/.exec(path);
    if (m && method === 'GET') {
      const vm = this.vms.get(m[1]!);
      if (!vm) return notFound(`${m[1]!}-nic`);
      const publicIp = JSON.stringify(vm).includes('publicIPAddressConfiguration')
        ? { publicIPAddress: { id: `/subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Network/publicIPAddresses/${m[1]!}-pip` } }
        : {};
      return respond(request, 200, { id: path, properties: { ipConfigurations: [{ name: 'ip', properties: { privateIPAddress: '10.1.0.4', ...publicIp } }] } });
    }
    m = /\/publicIPAddresses\/([^/]+)$/.exec(path);
    if (m && method === 'GET') return respond(request, 200, { id: path, properties: { ipAddress: '198.51.100.20' } });
    m = /\/networkSecurityGroups\/podvm-nsg\/securityRules\/([^/]+)$/.exec(path);
    if (m) {
      const name = m[1]!;
      if (method === 'GET') {
        const rule = this.rules.get(name);
        return rule ? respond(request, 200, rule) : notFound(name);
      }
      if (method === 'PUT') {
        const rule = { ...body, id: path, name, properties: { ...(body!['properties'] as Json), provisioningState: 'Succeeded' } };
        this.rules.set(name, rule);
        return respond(request, 200, rule);
      }
    }
    if (/\/networkSecurityGroups\/podvm-nsg$/.test(path) && method === 'GET') {
      return respond(request, 200, {
        id: path,
        properties: {
          securityRules: [...this.otherRules, ...this.rules.values()],
          defaultSecurityRules: [{ name: 'DenyAllInBound', properties: { priority: 65500, direction: 'Inbound', access: 'Deny' } }],
        },
      });
    }
    throw new Error(`fake ARM has no route for ${method} ${path}`);
  }

  /** The requests, without reads of the token and such: method and path. */
  calls(): string[] {
    return this.seen.map((s) => `${s.method} ${s.path}`);
  }
}

function respond(request: PipelineRequest, status: number, body?: unknown): PipelineResponse {
  const headers = new Map<string, string>([['content-type', 'application/json'], ['x-ms-request-id', 'fake']]);
  return {
    request,
    status,
    headers: {
      get: (n: string) => headers.get(n.toLowerCase()),
      has: (n: string) => headers.has(n.toLowerCase()),
      set: (n: string, v: string | number | boolean) => void headers.set(n.toLowerCase(), String(v)),
      delete: (n: string) => void headers.delete(n.toLowerCase()),
      toJSON: () => Object.fromEntries(headers),
      [Symbol.iterator]: () => headers.entries(),
    },
    ...(body !== undefined && { bodyAsText: JSON.stringify(body) }),
  };
}

/** A TokenCredential that hands out a fixed fake token. */
export const credential = { getToken: async () => ({ token: 'fake-token', expiresOnTimestamp: Date.now() + 3_600_000 }) };

