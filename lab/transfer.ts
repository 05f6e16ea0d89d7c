// A checksummed TCP transfer for the lab, run as a process inside a namespace:
//   node transfer.js serve <ip> <port>             receives one connection, prints {bytes, sha256}
//   node transfer.js send <ip> <port> <bytes> <seed>  sends deterministic bytes, prints {bytes, sha256, ms}
// Both sides hash what actually crossed the wire, so equal digests prove an intact transfer.
import { createCipheriv, createHash } from 'node:crypto';
import { createConnection, createServer } from 'node:net';

function stream(seed: string, bytes: number): Buffer[] {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const chunks: Buffer[] = [];
  const zero = Buffer.alloc(64 * 1024);
  for (let left = bytes; left > 0; left -= zero.length) chunks.push(c.update(zero.subarray(0, Math.min(left, zero.length))));
  return chunks;
}

function serve(host: string, port: number): void {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let bytes = 0;
    sock.on('data', (b: Buffer) => {
      h.update(b);
      bytes += b.length;
    });
    sock.on('end', () => {
      process.stdout.write(JSON.stringify({ bytes, sha256: h.digest('hex') }) + '\n');
      sock.end();
      server.close();
    });
  });
  server.listen(port, host, () => process.stderr.write('listening\n'));
  setTimeout(() => process.exit(3), 60_000).unref();
}

function send(host: string, port: number, bytes: number, seed: string): void {
  const chunks = stream(seed, bytes);
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  const start = process.hrtime.bigint();
  const sock = createConnection({ host, port }, () => {
    for (const c of chunks) sock.write(c);
    sock.end();
  });
  sock.on('close', () => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    process.stdout.write(JSON.stringify({ bytes, sha256: h.digest('hex'), ms }) + '\n');
  });
  sock.on('error', (e) => {
    process.stderr.write(`transfer: ${e.message}\n`);
    process.exit(1);
  });
  setTimeout(() => process.exit(3), 60_000).unref();
}

const [mode, host, port, bytes, seed] = process.argv.slice(2);
if (mode === 'serve' && host && port) serve(host, Number(port));
else if (mode === 'send' && host && port && bytes && seed) send(host, Number(port), Number(bytes), seed);
else {
  process.stderr.write('usage: transfer.js serve <ip> <port> | send <ip> <port> <bytes> <seed>\n');
  process.exit(2);
}
