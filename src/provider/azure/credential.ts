// An ARM TokenCredential for the sidecar's pod, without @azure/identity: AKS workload identity
// (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE, as its webhook injects them, the
// same identity CAA uses) when those are set, else the node's managed identity from IMDS
// (AZURE_CLIENT_ID picks a user-assigned one). Tokens are cached until five minutes before they
// expire. Neither the federated token nor an access token ever appears in an error: errors carry the
// endpoint, the HTTP status and Entra's error code and description. No Azure SDK is loaded here.
import { readFile } from 'node:fs/promises';
import { PeerpodError } from '../../errors.js';
import type { Env } from '../config.js';
import type { AzureProviderOptions } from './arm-provider.js';

// The SDK's own types, taken from what the adapter accepts (type-only: nothing is loaded).
type TokenCredential = AzureProviderOptions['credential'];
type AccessToken = NonNullable<Awaited<ReturnType<TokenCredential['getToken']>>>;
type GetTokenOptions = Parameters<TokenCredential['getToken']>[1];

const IMDS_TOKEN = 'http://169.254.169.254/metadata/identity/oauth2/token';
const DEFAULT_AUTHORITY = 'https://login.microsoftonline.com/';
const REFRESH_BEFORE_MS = 5 * 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface AzureCredentialOptions {
  /** Replaces the global fetch (tests). */
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

/** Which identity the sidecar would use, for its start-up log. */
export function azureIdentityKind(env: Env): 'workload identity' | 'managed identity' {
  return env['AZURE_FEDERATED_TOKEN_FILE'] && env['AZURE_TENANT_ID'] && env['AZURE_CLIENT_ID'] ? 'workload identity' : 'managed identity';
}

export function azureCredentialFromEnv(env: Env, options: AzureCredentialOptions = {}): TokenCredential {
  const fetchImpl = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const clientId = env['AZURE_CLIENT_ID'] || undefined;
  const workload = azureIdentityKind(env) === 'workload identity';
  let cached: { scope: string; token: AccessToken } | undefined;

  async function request(scope: string, signal: AbortSignal): Promise<AccessToken> {
    let url: string;
    let init: RequestInit;
    if (workload) {
      const authority = env['AZURE_AUTHORITY_HOST'] || DEFAULT_AUTHORITY;
      url = new URL(`${env['AZURE_TENANT_ID'] ?? ''}/oauth2/v2.0/token`, authority.endsWith('/') ? authority : `${authority}/`).href;
      // Re-read each time: the kubelet rotates the projected token.
      const assertion = (await readFile(env['AZURE_FEDERATED_TOKEN_FILE'] ?? '', 'utf8')).trim();
      const form = new URLSearchParams({
        client_id: clientId ?? '',
        scope,
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      });
      init = { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' }, signal };
    } else {
      const query = new URLSearchParams({ 'api-version': '2018-02-01', resource: scope.replace(/\/\.default$/, '/') });
      if (clientId !== undefined) query.set('client_id', clientId);
      url = `${IMDS_TOKEN}?${query.toString()}`;
      init = { headers: { Metadata: 'true' }, signal };
    }
    const where = workload ? `workload identity token from ${new URL(url).origin}` : 'managed identity token from IMDS';
    let response: Response;
    let body: Record<string, unknown>;
    try {
      response = await fetchImpl(url, init);
      body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    } catch (e) {
      throw new PeerpodError('ECLOUD', `getting a ${where} failed: ${e instanceof Error ? e.message : String(e)}`, { op: 'azure-credential', cloud: 'azure' }, e);
    }
    const accessToken = body['access_token'];
    if (!response.ok || typeof accessToken !== 'string') {
      const code = typeof body['error'] === 'string' ? body['error'] : 'no access_token';
      const description = typeof body['error_description'] === 'string' ? `: ${body['error_description'].split('\n')[0] ?? ''}` : '';
      throw new PeerpodError('ECLOUD', `getting a ${where} failed: HTTP ${response.status} ${code}${description}`, {
        op: 'azure-credential',
        cloud: 'azure',
        httpStatus: response.status,
        cloudCode: code,
      });
    }
    // Entra answers expires_in (seconds from now); IMDS answers expires_on (a unix time, as text).
    const expiresOn = Number(body['expires_on']);
    const expiresIn = Number(body['expires_in']);
    const expiresOnTimestamp = Number.isFinite(expiresOn) && expiresOn > 0 ? expiresOn * 1000 : now() + (Number.isFinite(expiresIn) ? expiresIn : 300) * 1000;
    return { token: accessToken, expiresOnTimestamp };
  }

  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      const scope = Array.isArray(scopes) ? (scopes[0] ?? '') : scopes;
      if (cached !== undefined && cached.scope === scope && cached.token.expiresOnTimestamp - REFRESH_BEFORE_MS > now()) return cached.token;
      const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      const signal = options?.abortSignal ? AbortSignal.any([options.abortSignal as AbortSignal, timeout]) : timeout;
      const token = await request(scope, signal);
      cached = { scope, token };
      return token;
    },
  };
}
