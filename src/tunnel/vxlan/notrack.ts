// Connection tracking off for a tunnel's UDP flows, in the netns that holds the VXLAN socket (the
// worker's host netns, the pod VM's root netns). VXLAN sends to a fixed port from a source port
// that changes with the inner flow, so conntrack sees every packet as a new, never-answered flow and
// fills its table (CAA issue #2015, fixed by PR #2023). Like CAA, each tunnel gets two rules in the
// raw table, tagged with its VNI, in chains of their own that the base chains jump to:
//
//   raw OUTPUT     -j peerpod-vxlan-OUTPUT      -d <remote> -p udp --dport <port> -j NOTRACK  "peerpod [vni:N]"
//   raw PREROUTING -j peerpod-vxlan-PREROUTING  -s <remote> -p udp --dport <port> -j NOTRACK  "peerpod [vni:N]"
//
// Our chains are not CAA's (peerpod-OUTPUT/-PREROUTING), so the two never remove each other's
// rules. A chain and its jump go when its last rule goes. The VNI is unique per worker, so the tag
// names exactly one tunnel's rules. Rule shapes and the parser of `iptables -S` are pure.
import type { Netns } from '../../netns/netns.js';
import type { VxlanSpec } from './device.js';

export const NOTRACK_CHAINS = {
  OUTPUT: 'peerpod-vxlan-OUTPUT',
  PREROUTING: 'peerpod-vxlan-PREROUTING',
} as const;
type Base = keyof typeof NOTRACK_CHAINS;
const BASES: readonly Base[] = ['OUTPUT', 'PREROUTING'];

export function notrackComment(vni: number): string {
  return `peerpod [vni:${vni}]`;
}

export interface NotrackRule {
  chain: string;
  /** Match on the remote: as destination on the way out, as source on the way in. */
  direction: '-d' | '-s';
  remote: string;
  port: number;
  vni: number;
}

/** The two rules a tunnel needs. */
export function notrackRules(s: VxlanSpec): NotrackRule[] {
  return [
    { chain: NOTRACK_CHAINS.OUTPUT, direction: '-d', remote: s.remote, port: s.port, vni: s.vni },
    { chain: NOTRACK_CHAINS.PREROUTING, direction: '-s', remote: s.remote, port: s.port, vni: s.vni },
  ];
}

/** The rule's match and target, as given to -A, -C and -D. */
export function notrackSpec(r: NotrackRule): string[] {
  return ['-m', 'comment', '--comment', notrackComment(r.vni), r.direction, r.remote,
    '-p', 'udp', '-m', 'udp', '--dport', String(r.port), '-j', 'NOTRACK'];
}

/** Split one line of `iptables -S` into words, as iptables quoted them. */
export function splitIptablesLine(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    let word = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        word += line[i];
        i++;
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') word += line[i++];
    }
    words.push(word);
  }
  return words;
}

export interface ListedNotrackRule {
  chain: string;
  /** The rule as iptables printed it, without "-A <chain>": what -D takes back. */
  spec: string[];
  vni?: number;
  direction?: '-d' | '-s';
  /** Without the "/32" iptables adds. */
  remote?: string;
  port?: number;
}

/** The rules of our chains in `iptables -t raw -S` output. */
export function parseNotrackRules(text: string): ListedNotrackRule[] {
  const ours = new Set<string>(Object.values(NOTRACK_CHAINS));
  const out: ListedNotrackRule[] = [];
  for (const line of text.split('\n')) {
    const words = splitIptablesLine(line.trim());
    const chain = words[1];
    if (words[0] !== '-A' || chain === undefined || !ours.has(chain)) continue;
    const spec = words.slice(2);
    const rule: ListedNotrackRule = { chain, spec };
    const after = (flag: string): string | undefined => {
      const i = spec.indexOf(flag);
      return i < 0 ? undefined : spec[i + 1];
    };
    const vni = /^peerpod \[vni:(\d+)\]$/.exec(after('--comment') ?? '')?.[1];
    if (vni !== undefined) rule.vni = Number(vni);
    for (const direction of ['-d', '-s'] as const) {
      const addr = after(direction);
      if (addr !== undefined) {
        rule.direction = direction;
        rule.remote = addr.replace(/\/32$/, '');
      }
    }
    const port = after('--dport');
    if (port !== undefined) rule.port = Number(port);
    out.push(rule);
  }
  return out;
}

function sameRule(a: ListedNotrackRule, b: NotrackRule): boolean {
  return a.chain === b.chain && a.vni === b.vni && a.direction === b.direction && a.remote === b.remote && a.port === b.port;
}

/** What differs between the rules listed and the rules wanted for one VNI. */
export function notrackChanges(
  listed: readonly ListedNotrackRule[],
  want: readonly NotrackRule[],
  vni: number,
): { add: NotrackRule[]; remove: ListedNotrackRule[] } {
  const mine = listed.filter((r) => r.vni === vni);
  const add = want.filter((w) => !mine.some((r) => sameRule(r, w)));
  const keep = new Set<ListedNotrackRule>();
  for (const w of want) {
    const first = mine.find((r) => sameRule(r, w));
    if (first !== undefined) keep.add(first);
  }
  return { add, remove: mine.filter((r) => !keep.has(r)) };
}

async function listRaw(ns: Netns): Promise<string> {
  return ns.iptables(['-t', 'raw', '-S'], 'list raw table');
}

/**
 * Make the tunnel's two NOTRACK rules exist, and remove other rules tagged with its VNI (for an old
 * remote or port). Callers serialise calls per netns, as CAA does with its mutex.
 */
export async function ensureNotrack(ns: Netns, s: VxlanSpec): Promise<void> {
  const text = await listRaw(ns);
  for (const base of BASES) {
    const chain = NOTRACK_CHAINS[base];
    if (!text.split('\n').some((l) => l.trim() === `-N ${chain}`)) {
      await ns.iptables(['-t', 'raw', '-N', chain], `create chain ${chain}`).catch(async (e: unknown) => {
        // Another process may have made it in the meantime.
        if (!(await listRaw(ns)).split('\n').some((l) => l.trim() === `-N ${chain}`)) throw e;
      });
    }
    if (!(await ns.hasIptablesRule('raw', base, ['-j', chain]))) {
      await ns.iptables(['-t', 'raw', '-A', base, '-j', chain], `jump from ${base} to ${chain}`);
    }
  }
  const { add, remove } = notrackChanges(parseNotrackRules(text), notrackRules(s), s.vni);
  for (const r of remove) {
    await ns.iptables(['-t', 'raw', '-D', r.chain, ...r.spec], `remove a stale NOTRACK rule of VNI ${s.vni}`);
  }
  for (const r of add) {
    await ns.iptables(['-t', 'raw', '-A', r.chain, ...notrackSpec(r)], `add a NOTRACK rule for VNI ${s.vni}`);
  }
}

/** Remove every rule tagged with the VNI, then our chains if they are empty. Gone is fine. */
export async function removeNotrack(ns: Netns, vni: number): Promise<void> {
  const text = await listRaw(ns);
  const listed = parseNotrackRules(text);
  for (const r of listed.filter((l) => l.vni === vni)) {
    await ns.iptables(['-t', 'raw', '-D', r.chain, ...r.spec], `remove a NOTRACK rule of VNI ${vni}`);
  }
  const left = parseNotrackRules(await listRaw(ns));
  for (const base of BASES) {
    const chain = NOTRACK_CHAINS[base];
    if (left.some((r) => r.chain === chain)) continue;
    while (await ns.hasIptablesRule('raw', base, ['-j', chain])) {
      await ns.iptables(['-t', 'raw', '-D', base, '-j', chain], `remove the jump to ${chain}`);
    }
    if (text.split('\n').some((l) => l.trim() === `-N ${chain}`)) {
      await ns.iptables(['-t', 'raw', '-X', chain], `delete chain ${chain}`);
    }
  }
}
