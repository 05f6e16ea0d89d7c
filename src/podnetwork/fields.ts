// The kinds of value a pod-network field can hold (ports, interface names, MAC addresses, CIDRs,
// WireGuard keys, …), each with its check, its normal form and the words that say what would be
// valid. Pure. Which field has which kind, and rules that span fields, live in schema.ts.
import { PublicKey, SecretKey, type SecretKind } from '../wireguard/keys.js';
import {
  formatIpAddress,
  isMulticast,
  isUnspecified,
  maxPrefixLength,
  networkAddress,
  parseIpAddress,
  sameAddress,
  type IpPrefix,
} from '../ip.js';
import { accept, describeValue, invalid, reject, type FieldKind } from './problems.js';
import { ROUTE_PROTOCOL_NAMES } from './types.js';

export function integer(noun: string, min: number, max: number, expected = `an integer ${min}-${max}`): FieldKind<number> {
  return {
    expected,
    read: (v) =>
      typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? accept(v) : invalid(v, noun, expected),
  };
}

export const port = integer('port', 1, 65535);

export const boolean: FieldKind<boolean> = {
  expected: 'true or false',
  read: (v) => (typeof v === 'boolean' ? accept(v) : invalid(v, 'boolean', 'true or false')),
};

export const text: FieldKind<string> = {
  expected: 'a string',
  read: (v) => (typeof v === 'string' ? accept(v) : invalid(v, 'string', 'a string')),
};

const IFNAME_EXPECTED = "a Linux interface name: 1-15 bytes, without '/', ':' or whitespace, and not '.' or '..'";

/** Linux's dev_valid_name(): what the kernel itself would refuse, refused here with a reason. */
export const ifname: FieldKind<string> = {
  expected: IFNAME_EXPECTED,
  read(v) {
    if (typeof v !== 'string') return invalid(v, 'interface name', IFNAME_EXPECTED);
    const bytes = Buffer.byteLength(v, 'utf8');
    let why: string | undefined;
    if (bytes === 0) why = 'empty';
    // IFNAMSIZ is 16 including the terminating NUL.
    else if (bytes > 15) why = `${bytes} bytes long`;
    else if (v === '.' || v === '..') why = 'a directory name';
    else if (/[/:\s\0]/.test(v)) why = "contains '/', ':', whitespace or NUL";
    return why === undefined ? accept(v) : invalid(v, 'interface name', IFNAME_EXPECTED, why);
  },
};

const MAC_EXPECTED = 'a MAC address of 6, 8 or 20 bytes in hex, such as "0a:58:0a:f4:01:15"';

/** What Go's net.ParseMAC takes with ':' or '-' separators, printed as the kernel and Go print it. */
export const macAddress: FieldKind<string> = {
  expected: MAC_EXPECTED,
  read(v) {
    if (typeof v === 'string' && /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2})*$/i.test(v)) {
      const octets = v.split(/[:-]/);
      if ([6, 8, 20].includes(octets.length)) return accept(octets.join(':').toLowerCase());
    }
    return invalid(v, 'MAC address', MAC_EXPECTED);
  },
};

const IP_EXPECTED = 'an IPv4 or IPv6 address without prefix length, such as "10.244.1.1" or "fd00::1"';

export const ipAddress: FieldKind<string> = {
  expected: IP_EXPECTED,
  read(v) {
    if (typeof v !== 'string') return invalid(v, 'IP address', IP_EXPECTED);
    const parsed = parseIpAddress(v);
    if (parsed === 'zone') return invalid(v, 'IP address', IP_EXPECTED, 'a zone is not allowed: the dev names the link');
    if (parsed === 'syntax') {
      return invalid(v, 'IP address', IP_EXPECTED, v.includes('/') ? 'has a prefix length' : undefined);
    }
    return accept(formatIpAddress(parsed));
  },
};

const CIDR_EXPECTED = 'an address with a prefix length, such as "10.244.1.21/24" or "fd00::15/64"';

export interface PrefixRules {
  /** A route destination must be a network: the kernel refuses one with host bits set. */
  readonly network?: boolean;
  /** An interface address can be neither unspecified nor multicast. */
  readonly unicast?: boolean;
}

export function ipPrefix(rules: PrefixRules = {}): FieldKind<IpPrefix> {
  const bad = (v: unknown, why?: string) => invalid(v, 'CIDR', CIDR_EXPECTED, why);
  return {
    expected: CIDR_EXPECTED,
    read(v) {
      if (typeof v !== 'string') return bad(v);
      const slash = v.lastIndexOf('/');
      if (slash < 0) return bad(v, parseIpAddress(v) === 'syntax' ? undefined : 'the prefix length is missing');
      const address = parseIpAddress(v.slice(0, slash));
      const lengthText = v.slice(slash + 1);
      if (address === 'zone') return bad(v, 'a zone is not allowed');
      if (address === 'syntax') return bad(v, 'bad address');
      // Go's netip refuses leading zeros and signs, and so do we.
      if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return bad(v, 'bad prefix length');
      const prefixLength = Number(lengthText);
      const max = maxPrefixLength(address.family);
      if (prefixLength > max) return bad(v, `prefix length ${prefixLength} is more than ${max} for IPv${address.family}`);
      if (rules.unicast && (isUnspecified(address) || isMulticast(address))) return bad(v, 'not a unicast address');
      const canonical = formatIpAddress(address);
      if (rules.network) {
        const network = networkAddress(address, prefixLength);
        if (!sameAddress(network, address)) {
          return reject(
            `${describeValue(v)} has host bits set: expected the network address ${formatIpAddress(network)}/${prefixLength}`,
          );
        }
      }
      return accept({ address: canonical, prefixLength, family: address.family });
    },
  };
}

/** One of a fixed list of names. The tunnel type words its message as CAA does. */
export function oneOf<T extends string>(noun: string, names: readonly T[]): FieldKind<T> {
  const expected = `one of ${names.join(', ')}`;
  return {
    expected,
    read: (v) => ((names as readonly unknown[]).includes(v) ? accept(v as T) : invalid(v, noun, expected)),
  };
}

export function tunnelType<T extends string>(valid: readonly T[]): FieldKind<T> {
  const list = `valid types are ${valid.join(', ')}`;
  return {
    expected: `a tunnel type: ${list}`,
    read: (v) =>
      (valid as readonly unknown[]).includes(v) ? accept(v as T) : reject(`unknown tunnel type ${describeValue(v)}: ${list}`),
  };
}

const PROTOCOL_NUMBERS = new Map(Array.from(ROUTE_PROTOCOL_NAMES, ([n, name]) => [name, n]));
const PROTOCOL_EXPECTED = 'a route protocol name such as "kernel", "boot" or "static", or a number 0-255';

/**
 * A route protocol as a number. CAA writes netlink's name for it ("kernel") or, for a number
 * netlink has no name for, its decimal string; a bare JSON number is taken too.
 */
export const routeProtocol: FieldKind<number> = {
  expected: PROTOCOL_EXPECTED,
  read(v) {
    let n = typeof v === 'number' ? v : undefined;
    if (typeof v === 'string') {
      if (v === 'unspec') n = 0;
      else if (/^(0|[1-9][0-9]{0,2})$/.test(v)) n = Number(v);
      else n = PROTOCOL_NUMBERS.get(v);
    }
    return n !== undefined && Number.isInteger(n) && n >= 0 && n <= 255
      ? accept(n)
      : invalid(v, 'route protocol', PROTOCOL_EXPECTED);
  },
};

/** CAA's spelling of a protocol number. */
export function routeProtocolText(n: number): string {
  return ROUTE_PROTOCOL_NAMES.get(n) ?? String(n);
}

const KEY_EXPECTED = '44 characters of base64 encoding 32 bytes, as "wg genkey" prints';

/** How a bad key is described: never its text, since a typo'd private key is still mostly a private key. */
function describeKeyInput(v: unknown): string {
  return typeof v === 'string' ? `the value (${v.length} characters, not shown)` : describeValue(v);
}

export function secretKey(kind: SecretKind): FieldKind<SecretKey> {
  return {
    expected: KEY_EXPECTED,
    read(v) {
      if (typeof v === 'string') {
        try {
          return accept(SecretKey.fromBase64(kind, v));
        } catch {
          // Answered below, in words that name the field's rule and never its text.
        }
      }
      return reject(`${describeKeyInput(v)} is not a valid key: expected ${KEY_EXPECTED}`);
    },
  };
}

export const publicKey: FieldKind<PublicKey> = {
  expected: KEY_EXPECTED,
  read(v) {
    if (typeof v === 'string') {
      try {
        return accept(PublicKey.fromBase64(v));
      } catch {
        // As above.
      }
    }
    return reject(`${describeKeyInput(v)} is not a valid key: expected ${KEY_EXPECTED}`);
  },
};
