// Which WireGuard backend a process gets (cmd/wiring.ts): `auto` is kernel WireGuard wherever the
// module is present or loadable, on the worker as on the pod VM, and wireguard-go otherwise;
// `kernel` without the module fails, naming what was looked at.
import { describe, expect, it } from '@jest/globals';
import { chooseBackend } from '../../cmd/wiring.js';

const yes = () => ({ available: true, why: '/sys/module/wireguard exists' });
const no = () => ({ available: false, why: 'no /sys/module/wireguard' });

describe('backend choice', () => {
  it('auto picks kernel WireGuard on the worker and on the pod VM when the module is there', () => {
    expect(chooseBackend('auto', { runDir: '/tmp/x', side: 'worker', probe: yes }).kind).toBe('kernel');
    expect(chooseBackend('auto', { runDir: '/tmp/x', side: 'pod-vm', probe: yes }).kind).toBe('kernel');
  });

  it('auto falls back to wireguard-go without the module', () => {
    expect(chooseBackend('auto', { runDir: '/tmp/x', side: 'worker', probe: no }).kind).toBe('userspace');
  });

  it('userspace is always wireguard-go; kernel without the module is EUNSUPPORTED with the reason', () => {
    expect(chooseBackend('userspace', { runDir: '/tmp/x', probe: yes }).kind).toBe('userspace');
    expect(() => chooseBackend('kernel', { runDir: '/tmp/x', probe: no })).toThrow(/no \/sys\/module\/wireguard/);
  });
});
