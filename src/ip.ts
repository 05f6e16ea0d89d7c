// IP addresses and prefixes as pod-network spells them ("10.244.1.21", "fd00::15/64"): parsing into
// bytes and printing them back in canonical form. Validity is node:net's isIPv4/isIPv6; canonical text
// is what Go's netip and the kernel print (RFC 5952, IPv4-mapped IPv6 dotted), so desired state read
// from apf.json compares equal to what netlink later reports. Pure. What an address is for (pod IP,
// gateway, VXLAN remote) is left to the schema and the tunnel drivers.
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

/** An address with its prefix length, as "10.244.1.21/24". Host bits may be set. */
export interface IpPrefix {
  /** Canonical text of the address, without the prefix length. */
  readonly address: string;
  readonly prefixLength: number;
  readonly family: IpFamily;
}

export interface IpAddress {
  readonly family: IpFamily;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

/** Why a text is not an address: it carries a zone ("%eth0"), or it is no address at all. */
export type AddressFault = 'zone' | 'syntax';

export function parseIpAddress(text: string): IpAddress | AddressFault {
  if (isIPv4(text)) return { family: 4, bytes: Uint8Array.from(text.split('.'), Number) };
  // isIPv6 accepts a zone ("fe80::1%eth0"). Go's netip.Prefix does not, and in a route the zone
  // would only repeat (or contradict) the dev, so we refuse it everywhere.
  if (text.includes('%')) return isIPv6(text) ? 'zone' : 'syntax';
  if (isIPv6(text)) return { family: 6, bytes: ipv6Bytes(text) };
  return 'syntax';
}

function ipv6Bytes(text: string): Uint8Array {
  const words = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [parseInt(group, 16)];
      const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const gap = text.indexOf('::');
  const head = words(gap < 0 ? text : text.slice(0, gap));
  const tail = gap < 0 ? [] : words(text.slice(gap + 2));
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

export function formatIpAddress(address: IpAddress): string {
  const b = address.bytes;
  if (address.family === 4) return Array.from(b).join('.');
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  // Go's netip prints IPv4-mapped addresses dotted; matching it keeps our output diffable with CAA's.
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  // RFC 5952: the longest run of two or more zero words (the first on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/** The canonical text of an address given as text; undefined when it is not one. */
export function canonicalIp(text: string): string | undefined {
  const parsed = parseIpAddress(text);
  return typeof parsed === 'string' ? undefined : formatIpAddress(parsed);
}

export function formatIpPrefix(prefix: IpPrefix): string {
  return `${prefix.address}/${prefix.prefixLength}`;
}

export function maxPrefixLength(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** The address with every bit past the prefix length cleared. */
export function networkAddress(address: IpAddress, prefixLength: number): IpAddress {
  const bytes = address.bytes.map((byte, i) => {
    const keep = Math.max(0, Math.min(8, prefixLength - 8 * i));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
  return { family: address.family, bytes };
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.every((byte, i) => byte === b.bytes[i]);
}

export function isUnspecified(address: IpAddress): boolean {
  return address.bytes.every((b) => b === 0);
}

export function isMulticast(address: IpAddress): boolean {
  const first = address.bytes[0]!;
  return address.family === 4 ? first >= 224 && first <= 239 : first === 0xff;
}
