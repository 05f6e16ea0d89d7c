// The sidecar's Azure credential without @azure/identity, against a recording fetch: workload identity
// sends the projected token as a client assertion to Entra, the managed identity asks IMDS, a token is
// reused until shortly before it expires, and a refusal names the endpoint and Entra's error code
// without ever echoing the federated token.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { azureCredentialFromEnv, azureIdentityKind } from '../../src/provider/azure/credential.js';

const SCOPE = 'https://management.azure.com/.default';
const ASSERTION = 'eyJhbGciOiJSUzI1NiJ9.federated-token-that-must-not-leak.sig';

function recordingFetch(answers: { status: number; body: unknown }[]) {
  const calls: { url: string; init: RequestInit | undefined }[] = [];
  const impl = (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: url instanceof Request ? url.url : url.toString(), init });
    const answer = answers.shift() ?? { status: 500, body: {} };
    return new Response(JSON.stringify(answer.body), { status: answer.status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { impl, calls };
}

describe('azureCredentialFromEnv', () => {
  it('with workload identity posts the projected token to Entra and caches the access token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pwt-azcred-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, `${ASSERTION}\n`);
      const env = { AZURE_TENANT_ID: 'tenant-1', AZURE_CLIENT_ID: 'client-1', AZURE_FEDERATED_TOKEN_FILE: file };
      expect(azureIdentityKind(env)).toBe('workload identity');
      let now = 1_000_000;
      const { impl, calls } = recordingFetch([{ status: 200, body: { access_token: 'at-1', expires_in: 3600 } }, { status: 200, body: { access_token: 'at-2', expires_in: 3600 } }]);
      const credential = azureCredentialFromEnv(env, { fetch: impl, now: () => now });

      expect(await credential.getToken(SCOPE)).toEqual({ token: 'at-1', expiresOnTimestamp: 1_000_000 + 3_600_000 });
      expect(calls[0]!.url).toBe('https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token');
      expect(Object.fromEntries(calls[0]!.init!.body as URLSearchParams)).toEqual({
        client_id: 'client-1',
        scope: SCOPE,
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: ASSERTION,
      });
      now += 50 * 60_000;
      expect((await credential.getToken(SCOPE))?.token).toBe('at-1');
      now += 6 * 60_000; // within five minutes of expiry: refreshed
      expect((await credential.getToken(SCOPE))?.token).toBe('at-2');
      expect(calls).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('otherwise asks IMDS for the managed identity, naming a user-assigned one by client id', async () => {
    const { impl, calls } = recordingFetch([{ status: 200, body: { access_token: 'at', expires_on: '1900000000' } }]);
    const credential = azureCredentialFromEnv({ AZURE_CLIENT_ID: 'mi-client' }, { fetch: impl });
    expect(await credential.getToken(SCOPE)).toEqual({ token: 'at', expiresOnTimestamp: 1_900_000_000_000 });
    const url = new URL(calls[0]!.url);
    expect(url.origin + url.pathname).toBe('http://169.254.169.254/metadata/identity/oauth2/token');
    expect(Object.fromEntries(url.searchParams)).toEqual({ 'api-version': '2018-02-01', resource: 'https://management.azure.com/', client_id: 'mi-client' });
    expect(calls[0]!.init!.headers).toEqual({ Metadata: 'true' });
  });

  it('names the endpoint, the status and the error code of a refusal, never the federated token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pwt-azcred-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, ASSERTION);
      const { impl } = recordingFetch([{ status: 400, body: { error: 'invalid_client', error_description: 'AADSTS70021: No matching federated identity record found.\nTrace ID: x' } }]);
      const credential = azureCredentialFromEnv({ AZURE_TENANT_ID: 't', AZURE_CLIENT_ID: 'c', AZURE_FEDERATED_TOKEN_FILE: file }, { fetch: impl });
      const e = await credential.getToken(SCOPE).catch((x: unknown) => x as Error);
      expect((e as Error).message).toBe(
        'getting a workload identity token from https://login.microsoftonline.com failed: HTTP 400 invalid_client: AADSTS70021: No matching federated identity record found.',
      );
      expect(JSON.stringify(e) + (e as Error).message).not.toContain('federated-token-that-must-not-leak');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
