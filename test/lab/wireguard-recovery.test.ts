// Crash and bad-input behaviour of the worker command, in a real lab:
// - wgctl setup killed (SIGKILL) right after each of its steps, then run again, converges to a
//   working tunnel;
// - every malformed input is refused with an error that names the field, and leaves nothing
//   configured.
import { expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { realExec } from '../../src/exec.js';
import { LAB, Lab } from '../../lab/lab.js';
import { pingReceived } from '../../lab/flow.js';
import { SETUP_STEPS } from '../../src/tunnel/wireguard/worker.js';
import { describeLab, labFlowSuite } from './root.js';

async function podNetnsSnapshot(lab: Lab): Promise<string> {
  const parts = await Promise.all([
    lab.exec(lab.ns.pod, ['ip', '-br', 'link']),
    lab.exec(lab.ns.pod, ['ip', 'rule']),
    lab.exec(lab.ns.pod, ['ip', 'route', 'show', 'table', 'all']),
    lab.exec(lab.ns.pod, ['ip', 'neigh', 'show', 'proxy']),
    lab.exec(lab.ns.pod, ['iptables', '-w', '5', '-t', 'mangle', '-S']),
    lab.exec(lab.ns.worker, ['ip', '-br', 'link']),
  ]);
  // Neighbour and link state flicker; compare names and config, not counters.
  return parts.map((p) => p.stdout.replace(/\s+(UP|DOWN|UNKNOWN|LOWERLAYERDOWN)\s+/g, ' ')).join('\n---\n');
}

describeLab('worker setup recovery and bad input (lab)', () => {
  const { lab, flow } = labFlowSuite({
    setUp: async (f) => {
      await f.inspect();
      await f.agentSetup();
    },
  });

  it.each(SETUP_STEPS.map((s) => [s]))('converges after setup is killed right after step "%s"', async (step) => {
    const killed = await flow.wgctl(flow.setupArgs(), { PEERPOD_WG_TEST_CRASH_AFTER: step });
    expect(killed.code).not.toBe(0);
    await flow.setup();
    const r = await lab.exec(lab.ns.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', LAB.podIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBeGreaterThanOrEqual(2);
    // Exactly one device and one wireguard-go for this pod, whatever the crash left.
    const status = JSON.parse((await flow.wgctl(['status', '--json'])).stdout) as { device: string }[];
    expect(status).toHaveLength(1);
    const ps = (await realExec(['ps', '-eo', 'args='])).stdout.split('\n');
    expect(ps.filter((l) => l.startsWith('wireguard-go') && l.includes(status[0]!.device))).toHaveLength(1);
    await flow.teardown();
    await flow.inspect(); // teardown forgot the pod; CAA would inspect a new one
    await flow.agentTeardown();
    await flow.agentSetup();
  }, 60_000);

  const badInputs: [string, (pn: Record<string, unknown>, wg: Record<string, unknown>) => void, RegExp][] = [
    ['a bad VM private key', (_p, wg) => (wg['private-key'] = 'not-a-key'), /wireguard\.private-key/],
    ['a bad worker public key', (_p, wg) => (wg['peer-public-key'] = 'AAAA'), /wireguard\.peer-public-key/],
    ['a bad preshared key', (_p, wg) => (wg['preshared-key'] = 42), /wireguard\.preshared-key/],
    ['a port out of range', (_p, wg) => (wg['listen-port'] = 70000), /wireguard\.listen-port.*1-65535/],
    ['a bad pod IP', (p) => (p['podip'] = '198.18.1.300/24'), /podip/],
    ['a pod IP without prefix', (p) => (p['podip'] = '198.18.1.21'), /podip/],
    ['a bad route CIDR', (p) => (p['routes'] = [{ dst: '198.18.0.0/33', gw: '', dev: 'eth0' }]), /routes\[0\]\.dst/],
    ['a missing interface', (p) => delete p['interface'], /interface.*missing/],
    ['an unknown tunnel type', (p) => (p['tunnel-type'] = 'ipsec'), /unknown tunnel type.*vxlan, wireguard/],
    ['a missing wireguard section', (p) => delete p['wireguard'], /wireguard/],
    ['a negative keepalive', (_p, wg) => (wg['persistent-keepalive'] = -1), /persistent-keepalive/],
    // IPv6 (issue 12): the pod's further addresses, and IPv6's 1280-byte minimum MTU.
    ['extra pod IPs that are no list', (_p, wg) => (wg['extra-pod-ips'] = 'fd00:198:18:1::21/64'), /wireguard\.extra-pod-ips: .* is not a valid list/],
    ['an extra pod IP without prefix', (_p, wg) => (wg['extra-pod-ips'] = ['fd00:198:18:1::21']), /wireguard\.extra-pod-ips\[0\]: .*prefix length is missing/],
    ['a link-local extra pod IP', (_p, wg) => (wg['extra-pod-ips'] = ['fe80::21/64']), /wireguard\.extra-pod-ips\[0\]: .* is link-local/],
    ['an extra pod IP that repeats podip', (_p, wg) => (wg['extra-pod-ips'] = ['198.18.1.21/24']), /wireguard\.extra-pod-ips\[0\]: .* repeats podip/],
    ['an IPv6 extra pod IP with a pod MTU below 1280', (p, wg) => {
      wg['extra-pod-ips'] = ['fd00:198:18:1::21/64'];
      p['mtu'] = 1279;
    }, /pod-network\.mtu: 1279 is below 1280, IPv6's minimum MTU, but the pod has the IPv6 address fd00:198:18:1::21\/64/],
    ['an IPv6 podip with a pod MTU below 1280', (p) => {
      p['podip'] = 'fd00:198:18:1::21/64';
      p['mtu'] = 1200;
    }, /pod-network\.mtu: 1200 is not a valid MTU for an IPv6 pod: expected an integer 1280-65535/],
    ['a tunnel MTU below 1280', (_p, wg) => (wg['mtu'] = 1200), /wireguard\.mtu: 1200 is not a valid MTU: expected an integer 1280-65535/],
  ];

  it.each(badInputs)('refuses %s, naming the field, and configures nothing', async (_name, mutate, message) => {
    const before = await podNetnsSnapshot(lab);
    const pn = JSON.parse(await readFile(flow.podNetworkPath, 'utf8')) as Record<string, unknown>;
    mutate(pn, pn['wireguard'] as Record<string, unknown>);
    const path = `${flow.dir}/bad.json`;
    await writeFile(path, JSON.stringify(pn));
    const r = await flow.wgctl(['setup', '--netns', lab.path(lab.ns.pod), '--pod-vm-ip', LAB.vmIP, '--config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    const wg = JSON.parse(await readFile(flow.podNetworkPath, 'utf8')) as { wireguard: Record<string, string> };
    expect(r.stderr).not.toContain(wg.wireguard['private-key']);
    expect(await podNetnsSnapshot(lab)).toBe(before);
  });

  it.each([
    ['a bad pod VM IP', ['--pod-vm-ip', '203.0.113.300'], /pod-vm-ip/],
    ['a missing pod VM IP', ['--pod-vm-ip', ''], /pod-vm-ip/],
    ['a missing netns', ['--netns', '/run/netns/does-not-exist'], /does not exist/],
    ['invalid JSON', ['--config', '/dev/null'], /not valid JSON/],
    ['a link-local pod VM IP without a zone', ['--pod-vm-ip', 'fe80::10'], /fe80::10 is link-local but has no zone: expected the worker's interface/],
    ['a link-local pod VM IP whose zone is no interface here', ['--pod-vm-ip', 'fe80::10%nosuch0'], /pod VM IP fe80::10%nosuch0: no interface nosuch0 on this worker/],
    ['a zone on a global pod VM IP', ['--pod-vm-ip', '2001:db8::10%eth0'], /only a link-local IPv6 address \(fe80::\/10\) takes a zone/],
  ])('refuses %s on the command line', async (_name, override, message) => {
    const before = await podNetnsSnapshot(lab);
    const args = flow.setupArgs();
    for (let i = 0; i < override.length; i += 2) {
      const at = args.indexOf(override[i] as string);
      args[at + 1] = override[i + 1] as string;
    }
    const r = await flow.wgctl(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(await podNetnsSnapshot(lab)).toBe(before);
  });

  it('rolls back a setup that fails halfway (no pod interface)', async () => {
    const before = await podNetnsSnapshot(lab);
    const pn = JSON.parse(await readFile(flow.podNetworkPath, 'utf8')) as Record<string, unknown>;
    pn['interface'] = 'eth9';
    const path = `${flow.dir}/eth9.json`;
    await writeFile(path, JSON.stringify(pn));
    const r = await flow.wgctl(['setup', '--netns', lab.path(lab.ns.pod), '--pod-vm-ip', LAB.vmIP, '--config', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/eth9/);
    expect(await podNetnsSnapshot(lab)).toBe(before);
  });
});
