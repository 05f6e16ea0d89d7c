// Lab tests need root (network namespaces). Without it they skip, and say so loudly.
import { describe } from '@jest/globals';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export const describeLab: typeof describe = isRoot
  ? describe
  : ((name: string, fn: () => void) => {
      console.warn(`\n*** LAB TESTS SKIPPED (${name}): they need root to create network namespaces ***\n`);
      describe.skip(name, fn);
    }) as typeof describe;
