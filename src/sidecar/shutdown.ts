// Stopping the sidecar without cutting a verb in half: the listeners stop taking connections, idle
// keep-alive connections are closed, and requests in flight (a setup, say) finish and are answered,
// for up to `timeoutMs`; only then is what is left cut. The loops stop through the daemon's one
// AbortSignal. The tunnels themselves stay up: that is the caller's promise, not this module's.
import type { Server } from 'node:http';

export type DrainOutcome = 'drained' | 'timed out';

export async function drainServers(servers: readonly Server[], timeoutMs: number): Promise<DrainOutcome> {
  const closed = Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
        }),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<DrainOutcome>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), timeoutMs);
  });
  const outcome = await Promise.race([closed.then((): DrainOutcome => 'drained'), late]);
  clearTimeout(timer);
  if (outcome === 'timed out') for (const s of servers) s.closeAllConnections();
  return outcome;
}

/** Resolves when `signal` aborts (at once if it has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
