// The composition root shared by the entry points: the only place that builds real dependencies
// (processes, the WireGuard backend, namespaces, the state folder) from flags and environment.
import { pino, type Logger } from 'pino';
import { PeerpodError, describeError, isPeerpodError } from '../src/errors.js';
import { realExec } from '../src/exec.js';
import { netnsFactory, type NetnsFactory } from '../src/netns/netns.js';
import type { WireGuardBackend } from '../src/wireguard/backend.js';
import { DEFAULT_RUN_DIR, UserspaceBackend } from '../src/wireguard/userspace/backend.js';

export interface Runtime {
  backend: WireGuardBackend;
  netns: NetnsFactory;
  log: Logger;
}

export type BackendChoice = 'auto' | 'userspace' | 'kernel';

export function makeLogger(level: string | undefined, name: string): Logger {
  // Logs go to stderr as JSON lines, so that stdout stays for the command's own output.
  return pino({ name, level: level ?? 'warn', base: { pid: process.pid } }, pino.destination(2));
}

export function makeRuntime(opts: { runDir?: string; backend?: string; logLevel?: string; name: string }): Runtime {
  const choice = (opts.backend ?? process.env['WG_BACKEND'] ?? 'auto') as BackendChoice;
  if (!['auto', 'userspace', 'kernel'].includes(choice)) {
    throw new PeerpodError('EINVAL', `unknown backend "${String(choice)}": valid backends are auto, userspace, kernel`, {
      field: 'backend',
    });
  }
  if (choice === 'kernel') {
    throw new PeerpodError('EUNSUPPORTED', 'the kernel WireGuard backend is not built yet: use --backend userspace or auto', {
      field: 'backend',
    });
  }
  const backend = new UserspaceBackend({ exec: realExec, runDir: opts.runDir ?? process.env['WG_RUN_DIR'] ?? DEFAULT_RUN_DIR });
  return { backend, netns: netnsFactory(realExec), log: makeLogger(opts.logLevel ?? process.env['LOG_LEVEL'], opts.name) };
}

/** Print an error for a person and exit: 2 for bad input, 1 for everything else. */
export function fail(e: unknown): never {
  process.stderr.write(`error: ${describeError(e)}\n`);
  process.exit(isPeerpodError(e, 'EINVAL') ? 2 : 1);
}
