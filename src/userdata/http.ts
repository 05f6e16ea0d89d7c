// The one HTTP exchange the metadata readers need: a small request to a link-local metadata service,
// over node:http (no SDK, no proxy), with a deadline and a cap on the answer's size. Deciding what a
// status means is left to each source.
import { request } from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
}

export interface HttpAsk {
  readonly method: 'GET' | 'PUT';
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** Answers longer than this are refused (userdata is at most 64 KB in base64). */
  readonly maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;

export function httpAsk(ask: HttpAsk): Promise<HttpAnswer> {
  const maxBytes = ask.maxBytes ?? DEFAULT_MAX_BYTES;
  return new Promise((resolve, reject) => {
    const req = request(
      ask.url,
      {
        method: ask.method,
        headers: { ...ask.headers, ...(ask.method === 'PUT' && { 'content-length': '0' }) },
        signal: ask.signal,
        // No keep-alive: one exchange per attempt, and nothing left open between retries.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy(new Error(`answer is larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}
