// The composition root shared by the entry points: the only place that builds real dependencies
// (processes, the WireGuard backend, namespaces, the logger) from flags and environment. What only
// the worker side builds (the state folder, the worker drivers) is in ./worker-wiring.ts, so that the
// pod-VM agent's bundle carries none of it.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type Logger } from 'pino';
import { PeerpodError, describeError, isPeerpodError } from '../src/errors.js';
import { realExec } from '../src/exec.js';
import { realSpawner } from '../src/spawn.js';
import { netnsFactory, type NetnsFactory } from '../src/netns/netns.js';
import type { WireGuardBackend } from '../src/wireguard/backend.js';
import { KernelBackend, kernelWireGuardAvailable } from '../src/wireguard/kernel/backend.js';
import { DEFAULT_RUN_DIR, UserspaceBackend } from '../src/wireguard/userspace/backend.js';
import { versionLine } from '../src/version.js';

export interface Runtime {
  backend: WireGuardBackend;
  netns: NetnsFactory;
  log: Logger;
}

export type BackendChoice = 'auto' | 'userspace' | 'kernel';

export function makeLogger(level: string | undefined, name: string, fd: 1 | 2 = 2): Logger {
  // The CLIs log to stderr, so that stdout stays for their own output; the daemon logs to stdout.
  return pino({ name, level: level ?? 'warn', base: { pid: process.pid } }, pino.destination({ fd, sync: true }));
}

/**
 * Which end of the tunnel a process is. Both sides take kernel WireGuard under `auto` when the
 * kernel has it (the worker reaches devices in pod netns through `where`, docs/podvm.md "Reaching
 * a moved device"). Kept for callers and logs: the choice no longer differs by side.
 */
export type Side = 'worker' | 'pod-vm';

/** Absent (or undefined: a flag not given) runDir, backend and logLevel fall back to WG_RUN_DIR, WG_BACKEND and LOG_LEVEL. */
export function makeRuntime(opts: {
  runDir?: string | undefined;
  backend?: string | undefined;
  logLevel?: string | undefined;
  name: string;
  logTo?: 1 | 2;
  side?: Side;
}): Runtime {
  const choice = (opts.backend ?? process.env['WG_BACKEND'] ?? 'auto') as BackendChoice;
  if (!['auto', 'userspace', 'kernel'].includes(choice)) {
    throw new PeerpodError('EINVAL', `unknown backend "${String(choice)}": valid backends are auto, userspace, kernel`, {
      field: 'backend',
    });
  }
  const side = opts.side ?? 'worker';
  const backend = chooseBackend(choice, { runDir: opts.runDir ?? process.env['WG_RUN_DIR'] ?? DEFAULT_RUN_DIR, side });
  return { backend, netns: netnsFactory(realExec), log: makeLogger(opts.logLevel ?? process.env['LOG_LEVEL'], opts.name, opts.logTo ?? 2) };
}

/**
 * 'kernel' needs a kernel with WireGuard and fails here, naming what was looked at, without one.
 * 'auto' takes kernel WireGuard wherever the module is loaded or loadable (production workers and
 * the cloud kernel of the pod VM have it: no process per tunnel, and devices outlive any restart
 * of ours) and wireguard-go otherwise.
 */
export function chooseBackend(choice: BackendChoice, opts: { runDir: string; side?: Side; probe?: () => { available: boolean; why: string } }): WireGuardBackend {
  const userspace = (): WireGuardBackend => new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: opts.runDir });
  if (choice === 'userspace') return userspace();
  const probe = (opts.probe ?? kernelWireGuardAvailable)();
  if (probe.available) return new KernelBackend({ exec: realExec });
  if (choice === 'kernel') {
    throw new PeerpodError('EUNSUPPORTED', `this kernel has no WireGuard (${probe.why}): use --backend userspace or auto`, {
      field: 'backend',
    });
  }
  return userspace();
}

/** parseArgs (strict by default), with its complaints (unknown option, missing value) as EINVAL: exit code 2. */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config); // strict unless the config says otherwise
  } catch (e) {
    if (e instanceof TypeError && String((e as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      throw new PeerpodError('EINVAL', `${e.message}; see --help`, { op: 'arguments' });
    }
    throw e;
  }
}

/**
 * The verb of a CLI with verbs (wgctl, the agent). Undefined once --version, --help or a missing
 * verb had it print its version or help: nothing else is to be done. Any other word is EINVAL,
 * naming the valid verbs.
 */
export function pickVerb<V extends string>(
  cli: { name: string; help: string; verbs: readonly V[] },
  values: { help?: boolean | undefined; version?: boolean | undefined },
  positionals: readonly string[],
): V | undefined {
  if (values.version === true) {
    process.stdout.write(versionLine(cli.name));
    return undefined;
  }
  const [verb] = positionals;
  if (values.help === true || verb === undefined || verb === 'help') {
    process.stdout.write(cli.help);
    return undefined;
  }
  if (!(cli.verbs as readonly string[]).includes(verb)) {
    throw new PeerpodError('EINVAL', `unknown command "${verb}": valid commands are ${cli.verbs.join(', ')}`);
  }
  return verb as V;
}

/** Print an error for a person and exit: 2 for bad input, 1 for everything else. */
export function fail(e: unknown): never {
  process.stderr.write(`error: ${describeError(e)}\n`);
  process.exit(isPeerpodError(e, 'EINVAL') ? 2 : 1);
}
