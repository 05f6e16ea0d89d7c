// The UAPI client against a fake daemon on a unix socket in a temp dir: framing across chunks,
// errno handling, the timeout, and how a missing or stale socket becomes ENOTFOUND. No root needed.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { linkSync, mkdtempSync, rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerpodError } from '../../src/errors.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import { UapiClient, assertDeviceName } from '../../src/wireguard/uapi/client.js';
import { encodeSet } from '../../src/wireguard/uapi/codec.js';
import { caught } from '../support/errors.js';

type Behaviour = (request: string, socket: Socket) => void;

const dir = mkdtempSync(join(tmpdir(), 'pwt-uapi-'));
const servers: Server[] = [];
const requests: string[] = [];

/** A fake daemon for device `name`: it calls `behaviour` once a whole request (up to \n\n) arrived. */
async function fakeDaemon(name: string, behaviour: Behaviour): Promise<void> {
  const server = createServer((socket) => {
    let text = '';
    socket.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      if (text.endsWith('\n\n')) {
        requests.push(text);
        behaviour(text, socket);
      }
    });
    socket.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(join(dir, `${name}.sock`), resolve));
}

const PK = '58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376';
const GET_ANSWER = `listen_port=51900\npublic_key=${PK}\nprotocol_version=1\nendpoint=192.0.2.7:51900\nrx_bytes=5\nerrno=0\n\n`;

beforeAll(async () => {
  // Answers in three chunks, the blank line split between two of them.
  await fakeDaemon('chunky', (req, s) => {
    if (req !== 'get=1\n\n') return void s.end('errno=-22\n\n');
    const cut = GET_ANSWER.length - 1;
    s.write(GET_ANSWER.slice(0, 10));
    setTimeout(() => s.write(GET_ANSWER.slice(10, cut)), 5);
    setTimeout(() => s.write(GET_ANSWER.slice(cut)), 10);
  });
  await fakeDaemon('ok', (_req, s) => s.write('errno=0\n\n'));
  await fakeDaemon('refuses', (_req, s) => s.write('errno=-98\n\n'));
  await fakeDaemon('silent', () => undefined);
  await fakeDaemon('hangsup', (_req, s) => s.end('listen_port=1\n'));
  await fakeDaemon('chatty', (_req, s) => s.write('errno=0\n\nerrno=0\n\n'));
  // A socket file nobody listens on any more (what a killed daemon leaves): a hard link survives
  // the listener's unlink on close.
  await fakeDaemon('gone', () => undefined);
  linkSync(join(dir, 'gone.sock'), join(dir, 'stale.sock'));
  await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  rmSync(dir, { recursive: true, force: true });
});

describe('UapiClient', () => {
  const client = new UapiClient({ socketDir: dir, timeoutMs: 300 });

  it('puts sockets at <socketDir>/<name>.sock, /var/run/wireguard by default', () => {
    expect(client.socketPath('wg0')).toBe(join(dir, 'wg0.sock'));
    expect(new UapiClient().socketPath('wg0')).toBe('/var/run/wireguard/wg0.sock');
  });

  it('reads a get answer that arrives in pieces', async () => {
    const d = await client.get('chunky');
    expect(d.listenPort).toBe(51900);
    expect(d.peers.map((p) => [p.publicKey.toHex(), p.endpoint, p.rxBytes])).toEqual([[PK, '192.0.2.7:51900', 5]]);
  });

  it('sends the encoded set request whole and accepts errno=0', async () => {
    const cfg = { listenPort: 1234, peers: [{ publicKey: PublicKey.fromHex(PK), allowedIPs: ['198.18.0.1/32'] }] };
    await client.set('ok', cfg);
    expect(requests.at(-1)).toBe(encodeSet(cfg));
  });

  it('turns a refusal into EUAPI with the errno', async () => {
    const e = await caught(client.set('refuses', { listenPort: 1 }));
    expect(e.code).toBe('EUAPI');
    expect(e.context).toMatchObject({ errno: -98, iface: 'refuses' });
  });

  it('validates the config before it connects', async () => {
    const before = requests.length;
    const e = await caught(client.set('ok', { listenPort: 70000 }));
    expect(e.code).toBe('EINVAL');
    expect(requests.length).toBe(before);
  });

  it('gives ENOTFOUND when there is no socket', async () => {
    const e = await caught(client.get('nothere'));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.context.iface).toBe('nothere');
  });

  it('gives ENOTFOUND for a stale socket file (connection refused)', async () => {
    const e = await caught(client.set('stale', {}));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it('times out on a daemon that never answers', async () => {
    const t0 = Date.now();
    const e = await caught(client.get('silent'));
    expect(e.code).toBe('EUAPI');
    expect(e.message).toMatch(/did not answer within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('reports an answer cut short', async () => {
    const e = await caught(client.get('hangsup'));
    expect(e.code).toBe('EUAPI');
    expect(e.message).toMatch(/blank line/);
  });

  it('refuses bytes after the end of an answer', async () => {
    const e = await caught(client.set('chatty', {}));
    expect(e.code).toBe('EUAPI');
  });

  it.each(['', 'a'.repeat(16), '../etc', 'wg 0', 'wg/0', '.', '..', 'wg0\n'])('refuses device name %j', async (name) => {
    expect(() => assertDeviceName(name)).toThrow(PeerpodError);
    expect((await caught(client.get(name))).code).toBe('EINVAL');
  });

  it.each(['wg0', 'a'.repeat(15), 'pod-1.eth_0'])('accepts device name %j', (name) => {
    expect(() => assertDeviceName(name)).not.toThrow();
  });
});
