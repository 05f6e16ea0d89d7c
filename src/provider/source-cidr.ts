// The one address range the pod VM's WireGuard port is opened to: the worker's egress address as the
// cloud sees it (after NAT). Parsed and printed in canonical form, so that a rule read back from the
// cloud compares equal to the one we asked for. Pure; which cloud rule carries it is the adapters'.
import { PeerpodError } from '../errors.js';
import { formatIpAddress, maxPrefixLength, networkAddress, parseIpAddress, sameAddress, type IpFamily } from '../ip.js';

export interface SourceCidr {
  /** Canonical "203.0.113.7/32" or "2001:db8::/64". */
  readonly cidr: string;
  readonly family: IpFamily;
  /** True for 0.0.0.0/0 and ::/0. */
  readonly anySource: boolean;
}

/** Why a text is not an acceptable source range, as a sentence ending in what is valid; or the range. */
export function readSourceCidr(text: string, allowAnySource: boolean): SourceCidr | string {
  const expected = 'expected an address or CIDR such as 203.0.113.7/32 or 2001:db8::/64';
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = parseIpAddress(addressText);
  if (typeof address === 'string') return `${JSON.stringify(text)} is not a CIDR: ${expected}`;
  const max = maxPrefixLength(address.family);
  let length = max;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    length = /^\d{1,3}$/.test(lengthText) ? Number(lengthText) : NaN;
    if (!(length >= 0 && length <= max)) {
      return `${JSON.stringify(text)} has a bad prefix length: expected 0-${max} for an IPv${address.family} address`;
    }
  }
  const network = networkAddress(address, length);
  if (!sameAddress(network, address)) {
    const net = `${formatIpAddress(network)}/${length}`;
    const host = `${formatIpAddress(address)}/${max}`;
    return `${JSON.stringify(text)} has host bits set: expected ${net} (the network) or ${host} (that one address)`;
  }
  const cidr = `${formatIpAddress(address)}/${length}`;
  const anySource = length === 0;
  if (anySource && !allowAnySource) {
    return `${cidr} would open the WireGuard port to the whole Internet: expected the worker's egress address (e.g. 203.0.113.7/32), or allow any source explicitly`;
  }
  return { cidr, family: address.family, anySource };
}

/** As readSourceCidr, throwing EINVAL for `op`, with `field` naming where the text came from. */
export function parseSourceCidr(text: string, options: { allowAnySource?: boolean; op: string; field: string }): SourceCidr {
  const result = readSourceCidr(text, options.allowAnySource === true);
  if (typeof result === 'string') {
    throw new PeerpodError('EINVAL', `${options.field}: ${result}`, { op: options.op, field: options.field });
  }
  return result;
}
