// The PeerpodError a call throws, for assertions on its code, message and context.
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
