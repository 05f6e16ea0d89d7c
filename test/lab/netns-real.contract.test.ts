// The Netns contract (test/contract/netns.contract.ts) against IprouteNetns: the kernel, through
// iproute2, iptables and nsenter. Each case gets two namespaces of its own, named with a prefix
// unique to this run, deleted when the case ends (and any left over, in afterAll). No case touches
// this process's own netns. Needs root; skips loudly without it.
import { afterAll, beforeAll, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../../src/exec.js';
import { IprouteNetns, type Netns } from '../../src/netns/netns.js';
import { GAPS, NETNS_CONTRACT } from '../contract/netns.contract.js';
import { describeLab } from './root.js';

describeLab('Netns contract: IprouteNetns (iproute2, iptables, nsenter)', () => {
  const prefix = `pnc${randomBytes(2).toString('hex')}`;
  let dir = '';
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pnc-'));
    // A plain file: nsenter can open it but cannot enter it, so exists() cannot tell.
    await writeFile(join(dir, 'not-a-netns'), '');
  });

  afterAll(async () => {
    const listed = await realExec(['ip', 'netns', 'list']);
    for (const line of listed.stdout.split('\n')) {
      const name = line.split(' ')[0] ?? '';
      if (name.startsWith(`${prefix}-`)) await realExec(['ip', 'netns', 'del', name], { okCodes: [0, 1] });
    }
    await rm(dir, { recursive: true, force: true });
  });

  const at = (path: string) => new IprouteNetns(path, realExec);

  for (const c of NETNS_CONTRACT) {
    const gap = GAPS.real[c.name];
    if (gap !== undefined) {
      it.skip(`${c.name} (gap: ${gap})`, () => undefined);
      continue;
    }
    it(c.name, async () => {
      const [a, b] = [`${prefix}-${++n}a`, `${prefix}-${n}b`];
      await realExec(['ip', 'netns', 'add', a]);
      await realExec(['ip', 'netns', 'add', b]);
      try {
        await c.run({
          impl: 'real',
          ns: at(`/run/netns/${a}`),
          other: at(`/run/netns/${b}`) as Netns & { readonly path: string },
          absent: at(`/run/netns/${prefix}-none`),
          unsure: at(join(dir, 'not-a-netns')),
        });
      } finally {
        await realExec(['ip', 'netns', 'del', a], { okCodes: [0, 1] });
        await realExec(['ip', 'netns', 'del', b], { okCodes: [0, 1] });
      }
    }, 60_000);
  }
});
