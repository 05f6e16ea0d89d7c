// The edge for long-lived child processes (wireguard-go, qemu, virtiofsd): what src/exec.ts is for
// short commands, without its timeout, because these must outlive the call that starts them. It
// takes argv (never a shell), starts the program, and hands back its pid, its exit as a promise and
// a way to signal it; its output goes to a callback, to an open file (a log) or nowhere. A program
// that cannot be started at all is PeerpodError EEXEC naming it. How long a process lives, when to
// signal it and whether a pid read back from disk is still ours are the callers' business. The
// `Spawner` type is the seam: unit tests pass a fake (test/fakes/spawner.ts), entry points pass
// `realSpawner`.
import { spawn as spawnChild } from 'node:child_process';
import { PeerpodError } from './errors.js';

/** Where one output stream of the process goes: each chunk to a callback, an open fd (a log file), or nowhere. */
export type OutputSink = ((chunk: Buffer) => void) | number | 'ignore';

export interface SpawnOptions {
  /** The whole environment of the process; default: ours. */
  env?: NodeJS.ProcessEnv;
  /**
   * Its own session, and it does not keep our event loop alive: a Ctrl-C meant for us does not
   * reach it, and it may outlive us (a daemon). Default false.
   */
  detached?: boolean;
  /** Default 'ignore'. */
  stdout?: OutputSink;
  /** Default 'ignore'. */
  stderr?: OutputSink;
}

/** How a process ended: an exit code, or the signal that ended it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  readonly pid: number;
  /** Null while it runs. */
  readonly exit: ProcessExit | null;
  /** Settles (never rejects) when it has ended. */
  readonly exited: Promise<ProcessExit>;
  /** Send a signal (default SIGTERM); nothing happens once it has ended, so a reused pid is never hit. */
  kill(signal?: NodeJS.Signals): void;
}

export interface Spawner {
  /** Start `argv`; resolves once the process runs, EEXEC when the program cannot be started. */
  spawn(argv: readonly string[], opts?: SpawnOptions): Promise<SpawnedProcess>;
}

/** EEXEC for a program that could not be started (missing, not executable). */
export function spawnFailed(argv: readonly string[], cause: unknown): PeerpodError {
  const why = cause instanceof Error ? `: ${cause.message}` : '';
  return new PeerpodError('EEXEC', `cannot start ${argv[0] ?? ''}${why}`, { op: 'spawn', cmd: argv.join(' ') }, cause);
}

function stdioOf(sink: OutputSink | undefined): 'pipe' | 'ignore' | number {
  return typeof sink === 'function' ? 'pipe' : (sink ?? 'ignore');
}

export const realSpawner: Spawner = {
  spawn(argv, opts = {}) {
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      if (cmd === undefined) {
        reject(new PeerpodError('EINVAL', 'empty command line', { op: 'spawn' }));
        return;
      }
      const child = spawnChild(cmd, args, {
        detached: opts.detached === true,
        stdio: ['ignore', stdioOf(opts.stdout), stdioOf(opts.stderr)],
        env: opts.env ?? process.env,
      });
      if (typeof opts.stdout === 'function') child.stdout?.on('data', opts.stdout);
      if (typeof opts.stderr === 'function') child.stderr?.on('data', opts.stderr);
      let exit: ProcessExit | null = null;
      const exited = new Promise<ProcessExit>((done) => {
        // 'close', not 'exit': by then every chunk of its output has been handed to the callbacks.
        child.on('close', (code, signal) => done((exit = { code, signal })));
      });
      // Listen before anything awaits: a missing binary is reported as an 'error' on the next tick.
      // Kept for the process's life: a later 'error' (a failed kill) must not go unheard.
      child.on('error', (e) => reject(spawnFailed(argv, e)));
      child.once('spawn', () => {
        if (opts.detached === true) child.unref();
        resolve({
          pid: child.pid!,
          get exit() {
            return exit;
          },
          exited,
          kill(signal: NodeJS.Signals = 'SIGTERM') {
            if (exit === null && child.exitCode === null && child.signalCode === null) child.kill(signal);
          },
        });
      });
    });
  },
};
