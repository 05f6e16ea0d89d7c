// Time for the sidecar's loops, as injectable values: a clock (milliseconds) and a sleep that ends
// when the daemon's AbortSignal aborts, so no timer outlives the part that set it. Tests pass
// their own (test/fakes/time.ts) and drive time without waiting.
import { setTimeout as sleepFor } from 'node:timers/promises';

export type Clock = () => number;

/** Resolves after `ms`; rejects (and drops its timer) as soon as `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const realClock: Clock = () => Date.now();

export const realSleep: Sleep = (ms, signal) => sleepFor(ms, undefined, { signal });
