import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { canonicalIp, formatIpAddress, networkAddress, parseIpAddress } from '../../src/ip.js';

describe('canonical IP text', () => {
  it.each([
    ['10.244.1.21', '10.244.1.21'],
    ['2001:0DB8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    // RFC 5952 4.2.2: a lone zero word stays; 4.2.3: the longest run, the first of equals.
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    // Go's netip prints IPv4-mapped addresses dotted, and only those.
    ['::FFFF:0a00:0001', '::ffff:10.0.0.1'],
    ['::1.2.3.4', '::102:304'],
  ])('%s → %s', (text, canonical) => {
    expect(canonicalIp(text)).toBe(canonical);
  });

  it('refuses zones and junk', () => {
    expect(parseIpAddress('fe80::1%eth0')).toBe('zone');
    expect(parseIpAddress('10.0.0.01')).toBe('syntax');
    expect(parseIpAddress('10.0.0.1/8')).toBe('syntax');
    expect(canonicalIp('1::2::3')).toBeUndefined();
  });

  it('agrees with the WHATWG URL serialiser, which follows RFC 5952 too (property)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const ours = canonicalIp(text);
        expect(ours).toBeDefined();
        expect(canonicalIp(ours!)).toBe(ours);
        if (ours!.startsWith('::ffff:') && ours!.includes('.')) return;
        expect(ours).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });

  it('clears host bits past the prefix length', () => {
    const net = (text: string, len: number) => {
      const a = parseIpAddress(text);
      if (typeof a === 'string') throw new Error(a);
      return formatIpAddress(networkAddress(a, len));
    };
    expect(net('10.244.1.21', 24)).toBe('10.244.1.0');
    expect(net('10.244.1.21', 13)).toBe('10.240.0.0');
    expect(net('10.244.1.21', 0)).toBe('0.0.0.0');
    expect(net('10.244.1.21', 32)).toBe('10.244.1.21');
    expect(net('fd00:10:244:1::15', 52)).toBe('fd00:10:244::');
  });
});
