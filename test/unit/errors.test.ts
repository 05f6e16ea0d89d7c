import { describe, expect, it } from '@jest/globals';
import { PeerpodError, describeError } from '../../src/errors.js';

describe('PeerpodError', () => {
  it('names the context and keeps the cause', () => {
    const cause = new Error('RTNETLINK answers: File exists');
    const e = new PeerpodError('ENETNS', 'cannot add address', { op: 'addr-add', netns: '/run/netns/x', iface: 'eth0' }, cause);
    expect(e.cause).toBe(cause);
    expect(describeError(e)).toBe(
      'ENETNS: cannot add address [op=addr-add netns=/run/netns/x iface=eth0]: RTNETLINK answers: File exists',
    );
  });
  it('lists cleanup errors after the first error without replacing it', () => {
    const e = new PeerpodError('ESETUP', 'setup failed');
    e.cleanupErrors.push(new PeerpodError('ENETNS', 'link busy'));
    expect(e.describe()).toMatch(/^setup failed\n {2}\(while rolling back: link busy\)$/);
  });
});
