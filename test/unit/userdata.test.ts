// The pod VM's userdata readers against real HTTP servers on 127.0.0.1 that behave like the clouds'
// metadata services: Azure IMDS refuses a request without "Metadata: true" (400) and answers
// userData in base64; AWS IMDSv2 wants a PUT for a session token first and refuses a GET without a
// valid one (401). Plus the NoCloud file, and fetchApfFromUserdata: CAA's order, retries until the
// metadata appears, the deadline, and one error that reports what every source said.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudConfigForApf } from '../../src/podnetwork/cloud-init.js';
import { fetchApfFromUserdata } from '../../src/userdata/fetch.js';
import { awsImdsV2Source, azureImdsSource, caaUserdataSources, noCloudSource, type UserdataSource } from '../../src/userdata/sources.js';
import { caught } from '../support/errors.js';

const USERDATA = '#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: "{}"\n';

interface FakeImds {
  readonly server: Server;
  readonly url: string;
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

/** Starts `handler` on 127.0.0.1, on a port of the kernel's choosing. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeImds> {
  const requests: FakeImds['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Azure IMDS, as documented: the Metadata header is required, userData comes back base64. */
function azureImds(userData: () => string | undefined): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://imds');
    if (req.headers['metadata'] !== 'true') {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"Bad request. Required metadata header not specified"}');
      return;
    }
    if (url.pathname !== '/metadata/instance/compute/userData' || url.searchParams.get('api-version') !== '2021-01-01' || url.searchParams.get('format') !== 'text') {
      res.writeHead(404).end('{"error":"Not found"}');
      return;
    }
    const data = userData();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(data === undefined ? '' : Buffer.from(data).toString('base64'));
  };
}

/** AWS IMDSv2 with HttpTokens=required: PUT a token (TTL header 1-21600), then GET with it. */
function awsImds(userData: () => string | undefined): (req: IncomingMessage, res: ServerResponse) => void {
  const tokens = new Set<string>();
  return (req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21600)) {
        res.writeHead(400).end();
        return;
      }
      const token = `tok-${tokens.size + 1}`;
      tokens.add(token);
      res.writeHead(200, { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) }).end(token);
      return;
    }
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (req.method !== 'GET' || typeof token !== 'string' || !tokens.has(token)) {
      res.writeHead(401).end();
      return;
    }
    if (req.url !== '/latest/user-data') {
      res.writeHead(404).end();
      return;
    }
    const data = userData();
    if (data === undefined) res.writeHead(404, { 'content-type': 'text/html' }).end('<?xml version="1.0"?><title>404 - Not Found</title>');
    else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(data);
  };
}

const signal = new AbortController().signal;
const dir = mkdtempSync(join(tmpdir(), 'pwt-userdata-'));
let azure: FakeImds;
let aws: FakeImds;
let azureData: string | undefined = USERDATA;
let awsData: string | undefined = USERDATA;

beforeAll(async () => {
  azure = await serve(azureImds(() => azureData));
  aws = await serve(awsImds(() => awsData));
});
afterAll(async () => {
  await azure.close();
  await aws.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the fake metadata services behave like the real ones', () => {
  it('Azure refuses a request without the Metadata header', async () => {
    const res = await fetch(`${azure.url}/metadata/instance/compute/userData?api-version=2021-01-01&format=text`);
    expect(res.status).toBe(400);
  });
  it('AWS refuses a GET without a token', async () => {
    const res = await fetch(`${aws.url}/latest/user-data`);
    expect(res.status).toBe(401);
  });
});

describe('azureImdsSource', () => {
  it('GETs compute/userData with Metadata: true and decodes the base64', async () => {
    azure.requests.length = 0;
    expect(await azureImdsSource({ baseUrl: azure.url }).read(signal)).toBe(USERDATA);
    expect(azure.requests).toHaveLength(1);
    expect(azure.requests[0]).toMatchObject({ method: 'GET', url: '/metadata/instance/compute/userData?api-version=2021-01-01&format=text', headers: { metadata: 'true' } });
  });

  it('says when the VM has no userData, and when the answer is not base64', async () => {
    azureData = undefined;
    expect((await caught(azureImdsSource({ baseUrl: azure.url }).read(signal))).message).toBe(
      `GET ${azure.url}/metadata/instance/compute/userData?api-version=2021-01-01&format=text: this VM has no userData`,
    );
    azureData = USERDATA;
    const notBase64 = await serve((_req, res) => res.writeHead(200).end('#cloud-config'));
    try {
      const e = await caught(azureImdsSource({ baseUrl: notBase64.url }).read(signal));
      expect(e.code).toBe('EINVAL');
      expect(e.message).toMatch(/the userData is not base64$/);
    } finally {
      await notBase64.close();
    }
  });

  it('reports the status and the service’s words', async () => {
    const strict = await serve((_req, res) => res.writeHead(400, 'Bad Request').end('{"error":"Bad request. Required metadata header not specified"}'));
    try {
      const e = await caught(azureImdsSource({ baseUrl: strict.url }).read(signal));
      expect(e.message).toBe(
        `GET ${strict.url}/metadata/instance/compute/userData?api-version=2021-01-01&format=text: HTTP 400 Bad Request: {"error":"Bad request. Required metadata header not specified"}`,
      );
      expect(e.context).toMatchObject({ op: 'read-userdata', source: 'azure-imds', status: 400 });
    } finally {
      await strict.close();
    }
  });
});

describe('awsImdsV2Source', () => {
  it('PUTs for a token, then GETs user-data with it', async () => {
    aws.requests.length = 0;
    expect(await awsImdsV2Source({ baseUrl: aws.url }).read(signal)).toBe(USERDATA);
    expect(aws.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['PUT /latest/api/token', 'GET /latest/user-data']);
    expect(aws.requests[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
    expect(aws.requests[1]!.headers['x-aws-ec2-metadata-token']).toMatch(/^tok-\d+$/);
  });

  it('says when the instance has no user-data (404)', async () => {
    awsData = undefined;
    try {
      const e = await caught(awsImdsV2Source({ baseUrl: aws.url }).read(signal));
      expect(e.code).toBe('ENOTFOUND');
      expect(e.message).toBe(`GET ${aws.url}/latest/user-data: this instance has no user-data (HTTP 404)`);
    } finally {
      awsData = USERDATA;
    }
  });

  it('reports a refused token (IMDS hop limit, or an IMDSv1-only emulator)', async () => {
    const v1 = await serve((req, res) => (req.method === 'PUT' ? res.writeHead(403, 'Forbidden').end() : res.writeHead(200).end(USERDATA)));
    try {
      expect((await caught(awsImdsV2Source({ baseUrl: v1.url }).read(signal))).message).toBe(`PUT ${v1.url}/latest/api/token: HTTP 403 Forbidden`);
    } finally {
      await v1.close();
    }
  });

  it('gives up on a service that never answers, after the request timeout', async () => {
    const silent = await serve(() => undefined);
    try {
      const started = Date.now();
      const e = await caught(awsImdsV2Source({ baseUrl: silent.url, requestTimeoutMs: 100 }).read(signal));
      expect(e.message).toBe(`PUT ${silent.url}/latest/api/token: no answer within 100 ms`);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
  });

  it('reports a refused connection', async () => {
    const gone = await serve(() => undefined);
    await gone.close();
    expect((await caught(awsImdsV2Source({ baseUrl: gone.url }).read(signal))).message).toBe(`PUT ${gone.url}/latest/api/token: ECONNREFUSED`);
  });
});

describe('noCloudSource', () => {
  it('reads the file, and says when it is not there', async () => {
    const path = join(dir, 'user-data');
    writeFileSync(path, USERDATA);
    expect(await noCloudSource(path).read(signal)).toBe(USERDATA);
    const e = await caught(noCloudSource(join(dir, 'missing')).read(signal));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.message).toBe(`${join(dir, 'missing')} does not exist`);
  });

  it('is first in CAA’s order, then Azure IMDS, then AWS IMDSv2', () => {
    expect(caaUserdataSources().map((s) => [s.name, s.where])).toEqual([
      ['nocloud', '/media/cidata/user-data'],
      ['azure-imds', 'http://169.254.169.254/metadata/instance/compute/userData?api-version=2021-01-01&format=text'],
      ['aws-imdsv2', 'http://169.254.169.254/latest/user-data'],
    ]);
  });
});

describe('fetchApfFromUserdata', () => {
  const APF = readFileSync(new URL('../../../test/fixtures/podnetwork/apf-wireguard.json', import.meta.url), 'utf8');
  const OUR_USERDATA = cloudConfigForApf(APF);
  const missingFile = join(dir, 'no-cidata');

  it('takes the NoCloud file first, without asking the network', async () => {
    const path = join(dir, 'cidata-user-data');
    writeFileSync(path, OUR_USERDATA);
    azure.requests.length = 0;
    aws.requests.length = 0;
    const got = await fetchApfFromUserdata({ sources: caaUserdataSources({ noCloudPath: path, azureBaseUrl: azure.url, awsBaseUrl: aws.url }) });
    expect(got).toMatchObject({ source: 'nocloud', where: path, apfJson: APF, attempts: 1 });
    expect(got.document.podName).toBe('nginx-7c5ddbdf54-x8qlz');
    expect(azure.requests).toHaveLength(0);
    expect(aws.requests).toHaveLength(0);
  });

  it('falls through to Azure IMDS, then to AWS IMDSv2', async () => {
    azureData = OUR_USERDATA;
    try {
      const onAzure = await fetchApfFromUserdata({ sources: caaUserdataSources({ noCloudPath: missingFile, azureBaseUrl: azure.url, awsBaseUrl: aws.url }) });
      expect(onAzure).toMatchObject({ source: 'azure-imds', apfJson: APF, attempts: 1 });
    } finally {
      azureData = USERDATA;
    }
    awsData = OUR_USERDATA;
    try {
      // On AWS the Azure path answers nothing useful; here that is a closed port.
      const closed = await serve(() => undefined);
      await closed.close();
      const failures: string[] = [];
      const onAws = await fetchApfFromUserdata({
        sources: caaUserdataSources({ noCloudPath: missingFile, azureBaseUrl: closed.url, awsBaseUrl: aws.url }),
        onFailure: (f) => failures.push(f.source),
      });
      expect(onAws).toMatchObject({ source: 'aws-imdsv2', apfJson: APF, attempts: 1 });
      expect(failures).toEqual(['nocloud', 'azure-imds']);
    } finally {
      awsData = USERDATA;
    }
  });

  it('retries every interval until the userdata appears (it may lag behind boot)', async () => {
    let asked = 0;
    const late = await serve(azureImds(() => (++asked < 3 ? undefined : OUR_USERDATA)));
    try {
      const started = Date.now();
      const got = await fetchApfFromUserdata({ sources: [azureImdsSource({ baseUrl: late.url })], retryIntervalMs: 50, deadlineMs: 5000 });
      expect(got).toMatchObject({ source: 'azure-imds', attempts: 3 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    } finally {
      await late.close();
    }
  });

  it('retries a cloud-config without apf.json, as CAA retries one it cannot parse', async () => {
    let asked = 0;
    const source: UserdataSource = { name: 'flaky', where: 'memory', read: async () => (++asked === 1 ? '#cloud-config\nwrite_files: []\n' : OUR_USERDATA) };
    expect(await fetchApfFromUserdata({ sources: [source], retryIntervalMs: 10, deadlineMs: 2000 })).toMatchObject({ attempts: 2 });
  });

  it('stops at the deadline with one error that reports what each source said', async () => {
    azureData = undefined;
    awsData = '#cloud-config\nwrite_files: []\n';
    const started = Date.now();
    try {
      const e = await caught(
        fetchApfFromUserdata({
          sources: caaUserdataSources({ noCloudPath: missingFile, azureBaseUrl: azure.url, awsBaseUrl: aws.url }),
          retryIntervalMs: 100,
          deadlineMs: 450,
        }),
      );
      const elapsed = Date.now() - started;
      expect(e.code).toBe('ENOTFOUND');
      const [head, ...lines] = e.message.split('\n');
      expect(head).toMatch(/^no userdata with \/run\/peerpod\/apf.json after [45] attempts in 0\.\d s \(gave up at the 0.45 s deadline\):$/);
      expect(lines).toEqual([
        `  nocloud: ${missingFile} does not exist`,
        `  azure-imds: GET ${azure.url}/metadata/instance/compute/userData?api-version=2021-01-01&format=text: this VM has no userData`,
        `  aws-imdsv2: aws-imdsv2 userdata (${aws.url}/latest/user-data): write_files has no entry for /run/peerpod/apf.json`,
      ]);
      expect(elapsed).toBeLessThan(1500);
    } finally {
      azureData = USERDATA;
      awsData = USERDATA;
    }
  });

  it('cuts a hanging request short at the deadline', async () => {
    const silent = await serve(() => undefined);
    try {
      const started = Date.now();
      const e = await caught(fetchApfFromUserdata({ sources: [awsImdsV2Source({ baseUrl: silent.url, requestTimeoutMs: 60_000 })], deadlineMs: 200 }));
      expect(Date.now() - started).toBeLessThan(1500);
      expect(e.message).toMatch(/after 1 attempt in 0\.\d s/);
    } finally {
      await silent.close();
    }
  });

  it('fails at once, without retrying, when apf.json itself is invalid', async () => {
    let asked = 0;
    const source: UserdataSource = {
      name: 'bad',
      where: 'memory',
      read: async () => {
        asked++;
        return '#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: "{\\"pod-network\\": {}}"\n';
      },
    };
    const e = await caught(fetchApfFromUserdata({ sources: [source], retryIntervalMs: 10, deadlineMs: 2000 }));
    expect(e.code).toBe('EINVAL');
    expect(asked).toBe(1);
  });

  it('stops when its signal is aborted, and says so', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const e = await caught(fetchApfFromUserdata({ sources: [noCloudSource(missingFile)], retryIntervalMs: 20, signal: controller.signal }));
    expect(e.message).toMatch(/\(stopped\):\n {2}nocloud: /);
  });
});
