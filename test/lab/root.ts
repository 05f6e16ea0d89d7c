// Lab tests need root (network namespaces). Without it they skip, and say so loudly.
import { describe } from '@jest/globals';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export const describeLab: typeof describe = isRoot
  ? describe
  : ((name: string, fn: () => void) => {
      console.warn(`\n*** LAB TESTS SKIPPED (${name}): they need root to create network namespaces ***\n`);
      describe.skip(name, fn);
    }) as typeof describe;

/**
 * How much slower than this host the machine running the lab is: 1 here; the worker guest (qemu
 * TCG, test/lab/worker-guest.test.ts) sets PEERPOD_LAB_SLOWDOWN. Timeouts are multiplied by it and
 * absolute throughput floors divided by it; what a test asserts stays the same.
 */
export const LAB_SLOWDOWN = Math.max(1, Number(process.env['PEERPOD_LAB_SLOWDOWN'] ?? 1) || 1);
