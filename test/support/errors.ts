// The PeerpodError a call throws, or a promise rejects with, for assertions on its code, message
// and context. Anything else thrown is passed on; nothing thrown fails the test.
import { isPeerpodError, type PeerpodError } from '../../src/errors.js';

export function thrown(fn: () => unknown): PeerpodError {
  try {
    fn();
  } catch (e) {
    if (isPeerpodError(e)) return e;
    throw e;
  }
  throw new Error('expected a PeerpodError, and nothing was thrown');
}

export async function caught(p: Promise<unknown>): Promise<PeerpodError> {
  try {
    await p;
  } catch (e) {
    if (isPeerpodError(e)) return e;
    throw e;
  }
  throw new Error('expected a PeerpodError, and the promise resolved');
}
