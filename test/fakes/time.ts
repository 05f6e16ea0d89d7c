// Time that a test moves: a clock and a sleep (src/sidecar/time.ts) whose wakeups come only from
// advance(), so loops run their ticks without any real wait. A sleep honours its AbortSignal as the
// real one does: it rejects at once and is forgotten.
import type { Clock, Sleep } from '../../src/sidecar/time.js';

interface Sleeper {
  at: number;
  wake: () => void;
}

export class FakeTime {
  #now: number;
  readonly #sleepers = new Set<Sleeper>();
  readonly #waiting: (() => void)[] = [];

  constructor(start = 1_000_000) {
    this.#now = start;
  }

  readonly now: Clock = () => this.#now;

  readonly sleep: Sleep = (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const sleeper: Sleeper = {
        at: this.#now + ms,
        wake: () => {
          signal.removeEventListener('abort', onAbort);
          this.#sleepers.delete(sleeper);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.#sleepers.delete(sleeper);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.add(sleeper);
      for (const w of this.#waiting.splice(0)) w();
    });

  /** Sleeps under way (a stopped loop leaves none). */
  get sleeping(): number {
    return this.#sleepers.size;
  }

  /** Resolves when the next sleep starts: a loop has finished what its last wakeup began. */
  nextSleep(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Move the clock on by `ms` and wake every sleep that ends by then. */
  advance(ms: number): void {
    this.#now += ms;
    for (const s of [...this.#sleepers].sort((a, b) => a.at - b.at)) if (s.at <= this.#now) s.wake();
  }
}
