// One contract for every tunnel type, run through the real CLIs in the same lab shapes: the tunnel
// carries ping and a checksummed TCP transfer both ways on a routed underlay, and teardown leaves
// nothing behind. Behind a NAT that drops unsolicited inbound flows the outcomes differ, and both
// are asserted: wireguard crosses it (the worker initiates), vxlan does not (DESIGN.md §5).
import { describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { LAB, type Lab } from '../../lab/lab.js';
import { labTransfer, pingReceived } from '../../lab/flow.js';
import { describeLab, labFlowSuite } from './root.js';

type Type = 'wireguard' | 'vxlan';
const CASES: { type: Type; nat: boolean; carries: boolean }[] = [
  { type: 'wireguard', nat: false, carries: true },
  { type: 'wireguard', nat: true, carries: true },
  { type: 'vxlan', nat: false, carries: true },
  { type: 'vxlan', nat: true, carries: false },
];

async function sha256Transfer(lab: Lab, from: string, to: string, ip: string, port: number): Promise<boolean> {
  const r = await labTransfer(lab, from, to, ip, port, 4 << 20, 'contract');
  return r.received.sha256 === r.sent.sha256 && r.received.bytes === r.sent.bytes;
}

describeLab('tunnel contract (lab)', () => {
  describe.each(CASES)('$type, NAT $nat', ({ type, nat, carries }) => {
    const { lab, flow } = labFlowSuite({ lab: { nat }, flow: { tunnelType: type } });

    it(carries ? 'carries ping both ways' : 'does not carry traffic (expected behind this NAT)', async () => {
      const there = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.3', '-W', '1', LAB.podIP], { okCodes: [0, 1] });
      const back = await lab.exec(lab.ns.vmPod, ['ping', '-c', '3', '-i', '0.3', '-W', '1', LAB.clientIP], { okCodes: [0, 1] });
      if (carries) {
        expect(pingReceived(there.stdout).received).toBeGreaterThanOrEqual(2);
        expect(pingReceived(back.stdout).received).toBe(3);
      } else {
        expect(pingReceived(there.stdout).received).toBe(0);
        expect(pingReceived(back.stdout).received).toBe(0);
      }
    }, 30_000);

    if (carries) {
      it('carries a checksummed TCP transfer both ways', async () => {
        expect(await sha256Transfer(lab, lab.ns.client, lab.ns.vmPod, LAB.podIP, 5401)).toBe(true);
        expect(await sha256Transfer(lab, lab.ns.vmPod, lab.ns.client, LAB.clientIP, 5402)).toBe(true);
      }, 60_000);
    }

    it('tears down (twice) leaving no device, tc, rule, iptables rule, socket or state', async () => {
      await flow.teardown();
      await flow.agentTeardown();
      await flow.teardown();
      await flow.agentTeardown();
      const podLinks = (await lab.exec(lab.ns.pod, ['ip', '-br', 'link'])).stdout;
      expect(podLinks).not.toMatch(/^(pwg|pvx)/m);
      expect((await lab.exec(lab.ns.pod, ['tc', 'qdisc', 'show', 'dev', 'eth0'])).stdout).not.toContain('ingress');
      expect((await lab.exec(lab.ns.pod, ['ip', 'rule'])).stdout).toMatch(/^0:\s+from all lookup local/m);
      expect((await lab.exec(lab.ns.worker, ['ip', '-br', 'link'])).stdout).not.toMatch(/^(pwg|pvx)/m);
      for (const ns of [lab.ns.worker, lab.ns.vm]) {
        expect((await lab.exec(ns, ['iptables', '-w', '5', '-t', 'raw', '-S'])).stdout).not.toContain('peerpod');
      }
      expect((await lab.exec(lab.ns.vmPod, ['ip', '-br', 'link'])).stdout).not.toMatch(/^eth0/m);
      expect(JSON.parse((await flow.wgctl(['status', '--json'])).stdout)).toEqual([]);
      expect(await readdir(`${flow.stateDir}/pods`).catch(() => [])).toEqual([]);
    }, 60_000);
  });
});
