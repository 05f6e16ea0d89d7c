// Where a pod VM finds its userdata, one reader per place, in the order CAA's process-user-data
// looks: the NoCloud file (libvirt, BYOM, SFTP delivery), Azure IMDS, AWS IMDSv2. Each returns the
// raw userdata text or throws a PeerpodError saying what that place answered. No cloud SDK: node:fs
// and node:http only, with base URLs that tests point at 127.0.0.1. Retrying, choosing among the
// places and reading apf.json out of the text are fetch.ts's job.
import { readFile } from 'node:fs/promises';
import { PeerpodError } from '../errors.js';
import { httpAsk, type HttpAnswer } from './http.js';

export interface UserdataSource {
  /** Short name for logs and errors: "nocloud", "azure-imds", "aws-imdsv2". */
  readonly name: string;
  /** The file or URL it reads. */
  readonly where: string;
  read(signal: AbortSignal): Promise<string>;
}

export const NOCLOUD_USER_DATA = '/media/cidata/user-data';
/** Link-local address of both clouds' instance metadata services. */
export const IMDS_BASE_URL = 'http://169.254.169.254';
const AZURE_USERDATA_PATH = '/metadata/instance/compute/userData?api-version=2021-01-01&format=text';
const AWS_TOKEN_PATH = '/latest/api/token';
const AWS_USERDATA_PATH = '/latest/user-data';
/** IMDSv2's longest token lifetime; one token is asked for per read, so any value would do. */
const AWS_TOKEN_TTL_SECONDS = 21600;
const DEFAULT_REQUEST_TIMEOUT_MS = 3000;
// Azure accepts at most 64 KB of base64 userData; AWS 16 KB raw. Anything far larger is not ours.
const MAX_ANSWER_BYTES = 256 * 1024;

export interface HttpSourceOptions {
  /** Scheme, host and port of the metadata service (default http://169.254.169.254). */
  readonly baseUrl?: string;
  /** One request's deadline (default 3 s): off-cloud, the link-local address may never answer. */
  readonly requestTimeoutMs?: number;
}

export function noCloudSource(path: string = NOCLOUD_USER_DATA): UserdataSource {
  return {
    name: 'nocloud',
    where: path,
    async read(signal) {
      try {
        return await readFile(path, { encoding: 'utf8', signal });
      } catch (e) {
        const code = (e as { code?: unknown } | undefined)?.code;
        const problem = code === 'ENOENT' ? 'does not exist' : `cannot be read (${typeof code === 'string' ? code : String(e)})`;
        throw new PeerpodError('ENOTFOUND', `${path} ${problem}`, { op: 'read-userdata', source: 'nocloud', path }, e);
      }
    },
  };
}

/** Azure IMDS: GET compute/userData with "Metadata: true"; the answer is the base64 the VM was given. */
export function azureImdsSource(options: HttpSourceOptions = {}): UserdataSource {
  const url = new URL(AZURE_USERDATA_PATH, options.baseUrl ?? IMDS_BASE_URL);
  const context = { op: 'read-userdata', source: 'azure-imds', url: url.href };
  return {
    name: 'azure-imds',
    where: url.href,
    async read(signal) {
      const answer = await ask(context, { method: 'GET', url, headers: { Metadata: 'true' } }, signal, options);
      if (answer.status !== 200) throw statusError(context, 'GET', url, answer);
      const text = answer.body.trim();
      if (text === '') throw new PeerpodError('ENOTFOUND', `GET ${url.href}: this VM has no userData`, context);
      // Strict, as Go's base64.StdEncoding is: Buffer.from would skip bad characters silently.
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
        throw new PeerpodError('EINVAL', `GET ${url.href}: the userData is not base64`, context);
      }
      return Buffer.from(text, 'base64').toString('utf8');
    },
  };
}

/** AWS IMDSv2: PUT a session token, then GET user-data with it. The answer is the raw userdata. */
export function awsImdsV2Source(options: HttpSourceOptions = {}): UserdataSource {
  const tokenUrl = new URL(AWS_TOKEN_PATH, options.baseUrl ?? IMDS_BASE_URL);
  const url = new URL(AWS_USERDATA_PATH, options.baseUrl ?? IMDS_BASE_URL);
  const context = { op: 'read-userdata', source: 'aws-imdsv2', url: url.href };
  return {
    name: 'aws-imdsv2',
    where: url.href,
    async read(signal) {
      const token = await ask(context, { method: 'PUT', url: tokenUrl, headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(AWS_TOKEN_TTL_SECONDS) } }, signal, options);
      if (token.status !== 200 || token.body === '') throw statusError(context, 'PUT', tokenUrl, token);
      const answer = await ask(context, { method: 'GET', url, headers: { 'X-aws-ec2-metadata-token': token.body.trim() } }, signal, options);
      if (answer.status === 404) throw new PeerpodError('ENOTFOUND', `GET ${url.href}: this instance has no user-data (HTTP 404)`, context);
      if (answer.status !== 200) throw statusError(context, 'GET', url, answer);
      return answer.body;
    },
  };
}

export interface CaaSourcesOptions {
  readonly noCloudPath?: string;
  readonly azureBaseUrl?: string;
  readonly awsBaseUrl?: string;
  readonly requestTimeoutMs?: number;
}

/** The three places in process-user-data's order: the file first, as it costs no network. */
export function caaUserdataSources(options: CaaSourcesOptions = {}): UserdataSource[] {
  const timeout = options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs };
  return [
    noCloudSource(options.noCloudPath),
    azureImdsSource({ ...timeout, ...(options.azureBaseUrl !== undefined && { baseUrl: options.azureBaseUrl }) }),
    awsImdsV2Source({ ...timeout, ...(options.awsBaseUrl !== undefined && { baseUrl: options.awsBaseUrl }) }),
  ];
}

type Context = { op: string; source: string; url: string };

async function ask(
  context: Context,
  request: { method: 'GET' | 'PUT'; url: URL; headers: Record<string, string> },
  signal: AbortSignal,
  options: HttpSourceOptions,
): Promise<HttpAnswer> {
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  try {
    return await httpAsk({ ...request, signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), maxBytes: MAX_ANSWER_BYTES });
  } catch (e) {
    // Duck-typed: node's errors may come from another realm (a test runner's vm context).
    const err = e as { name?: unknown; code?: unknown; message?: unknown } | undefined;
    let reason: string;
    if (err?.name === 'AbortError') reason = signal.aborted ? 'stopped' : `no answer within ${timeoutMs} ms`;
    else if (typeof err?.code === 'string') reason = err.code;
    else reason = typeof err?.message === 'string' ? err.message : String(e);
    throw new PeerpodError('ENOTFOUND', `${request.method} ${request.url.href}: ${reason}`, context, e);
  }
}

function statusError(context: Context, method: string, url: URL, answer: HttpAnswer): PeerpodError {
  // A metadata service's error text helps ("Required metadata header not specified"); keep it short.
  const body = answer.body.trim().replace(/\s+/g, ' ').slice(0, 200);
  return new PeerpodError('ENOTFOUND', `${method} ${url.href}: HTTP ${answer.status} ${answer.statusText}${body ? `: ${body}` : ''}`, {
    ...context,
    status: answer.status,
  });
}
