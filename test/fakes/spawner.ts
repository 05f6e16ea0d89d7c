// A Spawner for unit tests: programs are registered by name with what they do once started (write
// output, exit, or run until signalled), and a program nobody registered is refused as the real
// spawner refuses a missing one (EEXEC naming it). Every process is recorded with its argv,
// options and the signals it got; a test can make one exit or crash whenever it likes. Output to
// an open fd is really written there, through the process's own copy of the fd (as a child has),
// so a log file fills as with a real process, after the caller closed its fd. Starts nothing.
import { closeSync, openSync, writeSync } from 'node:fs';
import { PeerpodError } from '../../src/errors.js';
import { spawnFailed, type OutputSink, type ProcessExit, type SpawnedProcess, type Spawner, type SpawnOptions } from '../../src/spawn.js';

/** What a program does once started; returning without exiting leaves it running. */
export type FakeProgram = (proc: FakeProcess) => void | Promise<void>;

/** Above the kernel's largest pid_max (2^22): no real process can have one, so a stray kill hits nothing. */
let nextPid = 4_194_305;

export class FakeProcess implements SpawnedProcess {
  readonly argv: readonly string[];
  readonly opts: SpawnOptions;
  readonly pid = nextPid++;
  /** Every signal sent, in order, whether or not it ended the process. */
  readonly signals: NodeJS.Signals[] = [];
  /** Signals it survives (a daemon that traps SIGTERM); every other signal ends it. */
  readonly ignores = new Set<NodeJS.Signals>();
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | null = null;
  #settle!: (e: ProcessExit) => void;

  /** Its own copies of the fds its output goes to, closed when it ends. */
  readonly #sinks: { stdout: OutputSink; stderr: OutputSink };

  constructor(argv: readonly string[], opts: SpawnOptions) {
    this.argv = argv;
    this.opts = opts;
    this.exited = new Promise((r) => (this.#settle = r));
    // A child inherits a copy of an fd; the caller may close its own right after spawn().
    const copy = (sink: OutputSink | undefined): OutputSink => (typeof sink === 'number' ? openSync(`/proc/self/fd/${sink}`, 'a') : (sink ?? 'ignore'));
    const stdout = copy(opts.stdout);
    this.#sinks = { stdout, stderr: opts.stderr === opts.stdout ? stdout : copy(opts.stderr) };
  }

  get exit(): ProcessExit | null {
    return this.#exit;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.#exit !== null) return;
    this.signals.push(signal);
    if (!this.ignores.has(signal)) this.#end({ code: null, signal });
  }

  /** It ends by itself with `code`. */
  exitWith(code: number): void {
    this.#end({ code, signal: null });
  }

  /** It dies of `signal` that nobody sent (a crash). */
  crash(signal: NodeJS.Signals = 'SIGSEGV'): void {
    this.#end({ code: null, signal });
  }

  /** It prints `text` on stdout or stderr, wherever the options sent that stream. */
  write(stream: 'stdout' | 'stderr', text: string): void {
    if (this.#exit !== null) throw new Error(`FakeProcess ${this.argv.join(' ')} has exited and cannot write`);
    deliver(this.#sinks[stream], text);
  }

  #end(e: ProcessExit): void {
    if (this.#exit !== null) return;
    for (const fd of new Set([this.#sinks.stdout, this.#sinks.stderr])) if (typeof fd === 'number') closeSync(fd);
    this.#exit = e;
    this.#settle(e);
  }
}

function deliver(sink: OutputSink | undefined, text: string): void {
  if (typeof sink === 'function') sink(Buffer.from(text, 'utf8'));
  else if (typeof sink === 'number') writeSync(sink, text);
}

export class FakeSpawner implements Spawner {
  /** Every process started, in order. */
  readonly processes: FakeProcess[] = [];
  readonly #programs = new Map<string, FakeProgram>();

  /** Register `name` (argv[0], exactly); by default it runs until signalled. */
  program(name: string, behaviour: FakeProgram = () => undefined): this {
    this.#programs.set(name, behaviour);
    return this;
  }

  /** The processes started with argv[0] `name`. */
  started(name: string): FakeProcess[] {
    return this.processes.filter((p) => p.argv[0] === name);
  }

  async spawn(argv: readonly string[], opts: SpawnOptions = {}): Promise<FakeProcess> {
    const name = argv[0];
    if (name === undefined) throw new PeerpodError('EINVAL', 'empty command line', { op: 'spawn' });
    const behaviour = this.#programs.get(name);
    if (behaviour === undefined) {
      throw spawnFailed(argv, Object.assign(new Error(`FakeSpawner knows no program ${name}: register it with program()`), { code: 'ENOENT' }));
    }
    const proc = new FakeProcess([...argv], opts);
    this.processes.push(proc);
    // Like a real child, it starts running after spawn() has handed it over.
    setImmediate(() => {
      void Promise.resolve(behaviour(proc)).catch((e: unknown) => {
        if (proc.exit !== null) return;
        proc.write('stderr', `${String(e)}\n`);
        proc.exitWith(2);
      });
    });
    return proc;
  }
}
