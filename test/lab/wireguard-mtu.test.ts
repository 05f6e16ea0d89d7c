// The tunnel MTU comes from the underlay, never a hard-coded 1420: on a jumbo underlay (9000) with
// jumbo pods, WireGuard gets 9000 - 80 = 8920 on both ends, and a DF packet of that size crosses.
import { expect, it } from '@jest/globals';
import { LAB } from '../../lab/lab.js';
import { pingReceived } from '../../lab/flow.js';
import { describeLab, labFlowSuite } from './root.js';

describeLab('wireguard MTU from a jumbo underlay (lab)', () => {
  const { lab, flow } = labFlowSuite({ lab: { underlayMtu: 9000, podMtu: 9000 } });

  it('computes 8920 and gives it to both ends', async () => {
    expect((flow.podNetworkJson['wireguard'] as { mtu: number }).mtu).toBe(8920);
    const vm = (await lab.exec(lab.ns.vmPod, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim();
    expect(vm).toBe('8920');
    const links = JSON.parse((await lab.exec(lab.ns.pod, ['ip', '-j', 'link'])).stdout) as { ifname: string; mtu: number }[];
    expect(links.find((l) => l.ifname.startsWith('pwg'))?.mtu).toBe(8920);
  });

  it('carries a DF packet of the full tunnel MTU, and refuses one byte more with frag needed', async () => {
    const fits = await lab.exec(lab.ns.client, ['ping', '-M', 'do', '-s', String(8920 - 28), '-c', '3', '-i', '0.2', '-W', '2', LAB.podIP], {
      okCodes: [0, 1],
    });
    expect(pingReceived(fits.stdout).received).toBeGreaterThanOrEqual(2);
    const over = await lab.exec(lab.ns.client, ['ping', '-M', 'do', '-s', String(8920 - 27), '-c', '2', '-W', '2', LAB.podIP], {
      okCodes: [0, 1, 2],
    });
    expect(over.stdout + over.stderr).toMatch(/Frag needed|message too long/i);
  });
});
