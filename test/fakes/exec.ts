// A scripted Exec for unit tests: a test says which commands exist and what each answers (its
// output, an exit code with stderr, a program that is not there, or a hang until the timeout), and
// every other command is refused with an error that names its argv, never run and never answered
// by default. Failures are built by the same functions as realExec's (src/exec.ts), so callers see
// one error shape. Every call is recorded. It runs nothing and needs no root.
import { PeerpodError } from '../../src/errors.js';
import { execFailure, execNotStarted, execTimedOut, execTimeoutMs, type Exec, type ExecOptions, type ExecResult } from '../../src/exec.js';

/** Which commands a rule answers: the exact argv, a pattern on the argv joined by spaces, or a test. */
export type ArgvMatcher = readonly string[] | RegExp | ((argv: readonly string[]) => boolean);

/** What a matched command does. */
export type ExecAnswer =
  /** It runs and ends with `code` (default 0); okCodes decide whether that is a failure. */
  | { stdout?: string; stderr?: string; code?: number }
  /** The program is not there: it never starts. */
  | { missing: true }
  /** It never ends: the call fails when its timeout runs out. */
  | { hang: true }
  /** Computed from the call (stdin and env included); may throw. */
  | ((argv: readonly string[], opts: ExecOptions) => ExecResult | Promise<ExecResult>);

export interface ExecCall {
  argv: string[];
  opts: ExecOptions;
}

interface Rule {
  matches: (argv: readonly string[]) => boolean;
  answer: ExecAnswer;
  /** How many more calls it answers; Infinity for all. */
  left: number;
}

function matcherOf(m: ArgvMatcher): (argv: readonly string[]) => boolean {
  if (typeof m === 'function') return m;
  if (m instanceof RegExp) return (argv) => m.test(argv.join(' '));
  return (argv) => argv.length === m.length && argv.every((a, i) => a === m[i]);
}

function outcome(argv: readonly string[], result: ExecResult, opts: ExecOptions): ExecResult {
  const failure = execFailure(argv, result, opts);
  if (failure !== null) throw failure;
  return result;
}

export class FakeExec {
  readonly calls: ExecCall[] = [];
  readonly #rules: Rule[] = [];

  /** Answer commands that match; the latest rule that matches wins. */
  on(matcher: ArgvMatcher, answer: ExecAnswer): this {
    this.#rules.push({ matches: matcherOf(matcher), answer, left: Infinity });
    return this;
  }

  /** Answer the next matching command only, ahead of the lasting rules. */
  once(matcher: ArgvMatcher, answer: ExecAnswer): this {
    this.#rules.push({ matches: matcherOf(matcher), answer, left: 1 });
    return this;
  }

  /** The argv of every call, joined by spaces, in order. */
  commands(): string[] {
    return this.calls.map((c) => c.argv.join(' '));
  }

  /** The Exec to hand to the code under test. */
  readonly exec: Exec = async (argv, opts = {}) => {
    this.calls.push({ argv: [...argv], opts });
    if (argv[0] === undefined) throw new PeerpodError('EINVAL', 'empty command line', { op: 'exec' });
    const rule = this.#pick(argv);
    if (rule === undefined) {
      throw new PeerpodError('EEXEC', `FakeExec has no answer for ${JSON.stringify(argv)}: script it with on()`, { op: 'exec', cmd: argv.join(' ') });
    }
    const a = rule.answer;
    if (typeof a === 'function') return outcome(argv, await a(argv, opts), opts);
    if ('missing' in a) throw execNotStarted(argv, Object.assign(new Error(`spawn ${argv[0]} ENOENT`), { code: 'ENOENT' }));
    if ('hang' in a) {
      const ms = execTimeoutMs(opts);
      await new Promise((r) => setTimeout(r, ms));
      throw execTimedOut(argv, ms);
    }
    return outcome(argv, { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 }, opts);
  };

  #pick(argv: readonly string[]): Rule | undefined {
    const once = this.#rules.find((r) => r.left !== Infinity && r.left > 0 && r.matches(argv));
    if (once !== undefined) {
      once.left--;
      return once;
    }
    return [...this.#rules].reverse().find((r) => r.left === Infinity && r.matches(argv));
  }
}
