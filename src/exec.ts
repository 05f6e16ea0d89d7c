// The single edge through which every child process is started: argv arrays (never a shell), a
// timeout, optional stdin. Failures become PeerpodError EEXEC carrying the command, the exit code
// and stderr. The `Exec` type is the seam: unit tests pass a fake (test/fakes/exec.ts, which builds
// its failures with the same functions as here), entry points pass `realExec`.
import { spawn } from 'node:child_process';
import { PeerpodError } from './errors.js';

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  /** Exit codes that are not failures (default: only 0). */
  okCodes?: readonly number[];
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export type Exec = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

const DEFAULT_TIMEOUT_MS = 30_000;

/** The timeout a call gets when it names none. */
export function execTimeoutMs(opts: ExecOptions): number {
  return opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
}

/** The program could not be started at all (missing, not executable): no exit code. */
export function execNotStarted(argv: readonly string[], cause: unknown): PeerpodError {
  return new PeerpodError('EEXEC', `cannot run ${argv[0] ?? ''}`, { op: 'exec', cmd: argv.join(' ') }, cause);
}

/** The program ran longer than its timeout and was killed; `timeoutMs` in the context says so. */
export function execTimedOut(argv: readonly string[], timeoutMs: number): PeerpodError {
  return new PeerpodError('EEXEC', `${argv[0] ?? ''} timed out`, { op: 'exec', cmd: argv.join(' '), timeoutMs });
}

/** Null when the exit code of `result` is one of `okCodes` (default: 0); else EEXEC with the code and stderr. */
export function execFailure(argv: readonly string[], result: ExecResult, opts: ExecOptions, signal: string | null = null): PeerpodError | null {
  if ((opts.okCodes ?? [0]).includes(result.code)) return null;
  const why = result.stderr.trim() || result.stdout.trim() || `signal ${signal ?? 'none'}`;
  return new PeerpodError('EEXEC', `${argv[0] ?? ''} exited with code ${result.code}: ${why}`, {
    op: 'exec',
    cmd: argv.join(' '),
    exitCode: result.code,
  });
}

export const realExec: Exec = (argv, opts = {}) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new PeerpodError('EINVAL', 'empty command line', { op: 'exec' }));
      return;
    }
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timeoutMs = execTimeoutMs(opts);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(execNotStarted(argv, e));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? -1,
      };
      const failure = timedOut ? execTimedOut(argv, timeoutMs) : execFailure(argv, result, opts, signal);
      if (failure !== null) reject(failure);
      else resolve(result);
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading its input; its exit code tells the story */
    });
    child.stdin.end(opts.input ?? '');
  });
