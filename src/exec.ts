// The single edge through which every child process is started: argv arrays (never a shell), a
// timeout, optional stdin. Failures become PeerpodError EEXEC carrying the command, the exit code
// and stderr. The `Exec` type is the seam: unit tests pass a fake, entry points pass `realExec`.
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
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new PeerpodError('EEXEC', `cannot run ${cmd}`, { op: 'exec', cmd: argv.join(' ') }, e));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? -1,
      };
      const ok = opts.okCodes ?? [0];
      if (timedOut) {
        reject(new PeerpodError('EEXEC', `${cmd} timed out`, { op: 'exec', cmd: argv.join(' ') }));
      } else if (!ok.includes(result.code)) {
        const why = result.stderr.trim() || result.stdout.trim() || `signal ${signal ?? 'none'}`;
        reject(
          new PeerpodError('EEXEC', `${cmd} exited with code ${result.code}: ${why}`, {
            op: 'exec',
            cmd: argv.join(' '),
            exitCode: result.code,
          }),
        );
      } else {
        resolve(result);
      }
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading its input; its exit code tells the story */
    });
    child.stdin.end(opts.input ?? '');
  });
