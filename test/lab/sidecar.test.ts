// The sidecar in a real lab of 51 peer pods, each with its own pod VM behind one NAT router that
// picks random ports: concurrent setups, restarts without a lost packet, healing, nudging, NAT
// rebinding, a pod VM that stops answering, garbage collection, a strict API, and no key anywhere
// it should not be.
//
//   client pod ─ br0 ─ worker host (sidecar + 51 wireguard-go) ══ NAT (random ports) ══ 51 pod VMs
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../../src/exec.js';
import { realSpawner } from '../../src/spawn.js';
import { LAB, Lab } from '../../lab/lab.js';
import { LabFlow, pingReceived, rebindingHealMs } from '../../lab/flow.js';
import { LabSidecar } from '../../lab/sidecar-process.js';
import { callSidecar, type SidecarReply } from '../../src/sidecar/client.js';
import { podVmDeviceName } from '../../src/tunnel/wireguard/names.js';
import { PublicKey } from '../../src/wireguard/keys.js';
import { UapiClient } from '../../src/wireguard/uapi/client.js';
import { UserspaceBackend } from '../../src/wireguard/userspace/backend.js';
import { describeLab } from './root.js';

const PODS = 51;
const LATE = PODS - 1; // the pod whose VM agent starts 100 s after the worker's setup
const AGENT_DELAY_MS = 100_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RowJson {
  pod: string;
  netns: string;
  device: string;
  endpoint: string | null;
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  state: string;
}

describeLab('sidecar (lab, 51 pods)', () => {
  const lab = new Lab({ exec: realExec, pods: PODS, natRandomPorts: true });
  let dir = '';
  let socket = '';
  let logPath = '';
  let flows: LabFlow[] = [];
  const responses: string[] = [];
  let lateSetupAt = 0;

  const api = async (method: string, path: string, body?: unknown): Promise<SidecarReply> => {
    const r = await callSidecar(socket, method, path, body);
    if (!(method === 'POST' && path === '/v1/inspect')) responses.push(JSON.stringify(r.body));
    return r;
  };

  let proc: LabSidecar;
  const startSidecar = () => proc.start();
  const stopSidecar = (signal: NodeJS.Signals) => proc.stop(signal);

  const workerKeyOf = (f: LabFlow) => PublicKey.fromBase64((f.podNetworkJson['wireguard'] as Record<string, string>)['peer-public-key']!);
  const status = async () => (await api('GET', '/v1/status')).body as RowJson[];

  beforeAll(async () => {
    await lab.create();
    dir = await mkdtemp(join(tmpdir(), `${lab.prefix}-sc-`));
    proc = new LabSidecar(lab, dir);
    socket = proc.socket;
    logPath = proc.logPath;
    await startSidecar();
    flows = lab.slots.map((s) => new LabFlow({ exec: realExec, lab, slot: s.index, dir, env: { WG_SOCKET: socket } }));
    for (const f of flows) await f.init();
    // inspect through wgctl, which goes through the sidecar; pod VMs come up five at a time.
    for (let i = 0; i < PODS; i += 5) {
      await Promise.all(flows.slice(i, i + 5).map((f) => f.inspect()));
      await Promise.all(flows.slice(i, i + 5).filter((f) => f.slot.index !== LATE).map((f) => f.agentSetup()));
    }
    const late = flows[LATE]!;
    await late.setup();
    lateSetupAt = Date.now();
  }, 180_000);

  afterAll(async () => {
    await stopSidecar('SIGTERM');
    const worker = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, 'run') });
    const vm = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: join(dir, 'vm-run') });
    for (const f of flows) {
      if (f.podNetworkJson['wireguard'] !== undefined) await vm.remove(podVmDeviceName(workerKeyOf(f))).catch(() => undefined);
    }
    // The worker's devices, by the names the state records give.
    for (const id of await readdir(join(dir, 'state', 'pods')).catch(() => [] as string[])) {
      await worker.remove(`pwg${id}`).catch(() => undefined);
    }
    await lab.destroy();
    await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it('runs fifty concurrent setups on distinct pods, and every tunnel comes up', async () => {
    const started = Date.now();
    const replies = await Promise.all(
      flows
        .filter((f) => f.slot.index !== LATE)
        .map(async (f) => api('POST', '/v1/setup', { netns: lab.path(f.slot.pod), podVmIPs: [f.slot.vmIP], podNetwork: f.podNetworkJson })),
    );
    console.log(`50 concurrent setups took ${Date.now() - started} ms`);
    expect(replies.map((r) => r.status)).toEqual(Array(PODS - 1).fill(200));
    let rows: RowJson[] = [];
    for (let i = 0; i < 100; i++) {
      rows = await status();
      if (rows.filter((r) => r.state === 'up').length === PODS - 1) break;
      await sleep(100);
    }
    expect(rows.filter((r) => r.state === 'up')).toHaveLength(PODS - 1);
    for (const f of flows.slice(0, 3)) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', f.slot.podIP], { okCodes: [0, 1] });
      expect(pingReceived(r.stdout).received).toBe(2);
    }
  }, 120_000);

  it('shows every tunnel in wgctl status, and one in detail', async () => {
    const json = JSON.parse((await flows[0]!.wgctl(['status', '--json'])).stdout) as RowJson[];
    responses.push(JSON.stringify(json));
    expect(json).toHaveLength(PODS);
    const first = json.find((r) => r.netns === lab.path(flows[0]!.slot.pod));
    expect(first?.state).toBe('up');
    expect(first?.latestHandshake).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(first?.endpoint).toBe(`${flows[0]!.slot.vmIP}:51900`);
    expect(json.find((r) => r.netns === lab.path(flows[LATE]!.slot.pod))?.state).toBe('connecting');
    const table = (await flows[0]!.wgctl(['status'])).stdout;
    responses.push(table);
    expect(table.split('\n')[0]).toMatch(/^POD\s+NETNS\s+DEVICE\s+ENDPOINT\s+HANDSHAKE\s+RX\s+TX\s+KEEPALIVE\s+STATE$/);
    expect(table.trim().split('\n')).toHaveLength(PODS + 1);
    const metrics = (await api('GET', '/metrics')).body as string;
    expect(metrics).toMatch(new RegExp(`^wireguard_sent_bytes_total\\{interface="${first!.device}",public_key="[^"]+",allowed_ips="${flows[0]!.slot.podIP}/32"\\} [1-9]\\d*$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^wireguard_latest_handshake_seconds\\{interface="${first!.device}",.*\\} 1\\d{9}$`, 'm'));
    expect(metrics).toMatch(/^peerpod_wg_tunnel_state\{.*state="connecting"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^peerpod_wg_setup_duration_seconds_count ${PODS}$`, 'm'));
    const detail = (await flows[0]!.wgctl(['status', first!.device])).stdout;
    responses.push(detail);
    expect(detail).toMatch(/state:\s+up/);
    expect(detail).toMatch(/latest handshake:\s+\d+s ago/);
  }, 60_000);

  it('answers malformed requests with a 4xx naming the field, and stays up', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/v1/setup', '{not json', 400, /not valid JSON/],
      ['POST', '/v1/setup', { netns: 'relative/path', podVmIPs: ['203.0.113.10'], podNetwork: {} }, 400, /netns/],
      ['POST', '/v1/setup', { netns: lab.path(flows[0]!.slot.pod), podVmIPs: ['203.0.113.300'], podNetwork: flows[0]!.podNetworkJson }, 400, /podVmIPs\[0\]/],
      ['POST', '/v1/setup', { netns: lab.path(flows[0]!.slot.pod), podVmIPs: [], podNetwork: flows[0]!.podNetworkJson }, 400, /podVmIPs/],
      ['POST', '/v1/setup', { netns: lab.path(flows[0]!.slot.pod), podVmIPs: ['203.0.113.10'], podNetwork: { ...flows[0]!.podNetworkJson, 'tunnel-type': 'gre' } }, 400, /unknown tunnel type "gre": valid types are vxlan, wireguard/],
      ['POST', '/v1/inspect', { netns: lab.path(flows[0]!.slot.pod), tunnelType: 'ipsec' }, 400, /valid types are vxlan, wireguard/],
      ['POST', '/v1/inspect', { netns: '/run/netns/no-such-pod' }, 404, /no-such-pod/],
      ['GET', '/v1/status/no-such-pod', undefined, 404, /no-such-pod/],
      ['POST', '/v1/launch', {}, 404, /no route/],
    ];
    for (const [method, path, body, code, message] of cases) {
      const r =
        typeof body === 'string'
          ? await new Promise<SidecarReply>((resolve, reject) => {
              // A raw body: the client would encode a string as JSON.
              import('node:http').then(({ request }) => {
                const req = request({ socketPath: socket, method, path, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
                  let t = '';
                  res.on('data', (c: Buffer) => (t += c.toString()));
                  res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(t) as unknown }));
                });
                req.on('error', reject);
                req.end(body);
              }, reject);
            })
          : await api(method, path, body);
      responses.push(JSON.stringify(r.body));
      expect([path, r.status]).toEqual([path, code]);
      expect(JSON.stringify(r.body).replaceAll('\\"', '"')).toMatch(message);
    }
    expect((await api('GET', '/healthz')).status).toBe(200);
  }, 60_000);

  it('restarts after kill -9 with 20 tunnels under continuous ping: no ping lost, no device re-created, same state', async () => {
    const twenty = flows.slice(0, 20);
    const ifindexOf = async (f: LabFlow) => {
      const links = JSON.parse((await lab.exec(f.slot.pod, ['ip', '-j', 'link'])).stdout) as { ifname: string; ifindex: number }[];
      return links.find((l) => l.ifname.startsWith('pwg'))?.ifindex;
    };
    const before = await Promise.all(twenty.map(ifindexOf));
    const stateBefore = await readFile(join(dir, 'state', 'pods', (await readdir(join(dir, 'state', 'pods')))[0]!, 'record.json'), 'utf8');
    const rowsBefore = (await status()).map((r) => [r.netns, r.device, r.endpoint]);
    const pings = twenty.map((f) => lab.exec(lab.ns.client, ['ping', '-c', '50', '-i', '0.1', '-W', '2', f.slot.podIP], { okCodes: [0, 1], timeoutMs: 30_000 }));
    await sleep(1500);
    await stopSidecar('SIGKILL');
    await sleep(500);
    await startSidecar();
    const results = await Promise.all(pings);
    const lost = results.map((r) => pingReceived(r.stdout)).map((p) => p.sent - p.received);
    console.log(`pings lost across kill -9 and restart, per tunnel: ${lost.join(',')}`);
    expect(lost).toEqual(Array(20).fill(0));
    expect(await Promise.all(twenty.map(ifindexOf))).toEqual(before);
    const stateAfter = await readFile(join(dir, 'state', 'pods', (await readdir(join(dir, 'state', 'pods')))[0]!, 'record.json'), 'utf8');
    expect(stateAfter).toBe(stateBefore);
    expect((await status()).map((r) => [r.netns, r.device, r.endpoint])).toEqual(rowsBefore);
  }, 90_000);

  it('heals a tunnel whose wireguard-go was killed, within 5 s', async () => {
    const f = flows[1]!;
    const row = (await status()).find((r) => r.netns === lab.path(f.slot.pod))!;
    const pid = Number((await readFile(join(dir, 'run', `${row.device}.pid`), 'utf8')).trim());
    expect((await readFile(`/proc/${pid}/comm`, 'utf8')).trim()).toBe('wireguard-go');
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    let healedAt = 0;
    while (Date.now() - killedAt < 10_000) {
      const r = await lab.exec(lab.ns.client, ['ping', '-c', '1', '-W', '0.2', f.slot.podIP], { okCodes: [0, 1] });
      if (pingReceived(r.stdout).received === 1 && Date.now() - killedAt > 300) {
        healedAt = Date.now();
        break;
      }
      await sleep(50);
    }
    console.log(`wireguard-go killed: traffic flowed again after ${healedAt - killedAt} ms`);
    expect(healedAt).toBeGreaterThan(0);
    expect(healedAt - killedAt).toBeLessThan(5000);
  }, 30_000);

  it('heals a NAT rebinding (conntrack flushed, random ports) within 2 s in both directions', async () => {
    const f = flows[2]!;
    const measure = (from: string, to: string): Promise<number> => rebindingHealMs(lab, from, to);
    await sleep(1500); // let the tunnel go idle, the hard case
    const vmToWorker = await measure(f.slot.vmPod, LAB.clientIP);
    await sleep(1500);
    const workerToVm = await measure(lab.ns.client, f.slot.podIP);
    console.log(`NAT rebinding healed: pod VM → worker in ${vmToWorker} ms, worker → pod VM in ${workerToVm} ms`);
    expect(vmToWorker).toBeLessThan(2000);
    expect(workerToVm).toBeLessThan(2000);
  }, 90_000);

  it('brings a tunnel up within 0.5 s of a VM agent that starts 100 s after the worker setup', async () => {
    const f = flows[LATE]!;
    const wait = AGENT_DELAY_MS - (Date.now() - lateSetupAt);
    if (wait > 0) await sleep(wait);
    const row = (await status()).find((r) => r.netns === lab.path(f.slot.pod))!;
    expect(row.state).toBe('connecting');
    const uapi = new UapiClient();
    await f.agentSetup();
    const returned = Date.now();
    let upAt = 0;
    while (Date.now() - returned < 10_000) {
      const dev = await uapi.get(row.device);
      if ((dev.peers[0]?.lastHandshakeSec ?? 0) > 0) {
        upAt = Date.now();
        break;
      }
      await sleep(10);
    }
    console.log(`VM agent started ${Math.round((returned - lateSetupAt) / 1000)} s after setup: tunnel up ${upAt - returned} ms after the agent returned`);
    expect(upAt).toBeGreaterThan(0);
    expect(upAt - returned).toBeLessThan(500);
    const r = await lab.exec(lab.ns.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', f.slot.podIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBe(2);
  }, AGENT_DELAY_MS + 60_000);

  it('finds a pod VM that stops answering unreachable within 35 s, and up again once it is back', async () => {
    const f = flows[3]!;
    const rowOf = async () => (await status()).find((r) => r.netns === lab.path(f.slot.pod))!;
    expect((await rowOf()).state).toBe('up');
    await f.agentTeardown();
    const gone = Date.now();
    let state = '';
    while (Date.now() - gone < 40_000) {
      state = (await rowOf()).state;
      if (state === 'unreachable') break;
      await sleep(500);
    }
    console.log(`pod VM gone: unreachable after ${Date.now() - gone} ms`);
    expect(state).toBe('unreachable');
    expect(Date.now() - gone).toBeLessThan(35_000);
    expect((await api('GET', '/metrics')).body as string).toMatch(/^peerpod_wg_unreachable_total [1-9]\d*$/m);
    await f.agentSetup();
    const back = Date.now();
    while (Date.now() - back < 10_000 && (await rowOf()).state !== 'up') await sleep(200);
    console.log(`pod VM back: up after ${Date.now() - back} ms`);
    expect((await rowOf()).state).toBe('up');
    const r = await lab.exec(lab.ns.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', f.slot.podIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBe(2);
  }, 60_000);

  it('stops on SIGTERM leaving tunnels up, and after a restart removes the tunnel of a pod whose netns vanished meanwhile, keeping its keys until teardown', async () => {
    const gone = flows[21]!;
    const goneRow = (await status()).find((r) => r.netns === lab.path(gone.slot.pod))!;
    await stopSidecar('SIGTERM');
    const r = await lab.exec(lab.ns.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', flows[0]!.slot.podIP], { okCodes: [0, 1] });
    expect(pingReceived(r.stdout).received).toBe(2);
    await realExec(['ip', 'netns', 'del', gone.slot.pod]);
    await startSidecar();
    const deadline = Date.now() + 10_000;
    let left: string[] = ['?'];
    while (Date.now() < deadline) {
      const rows = await status();
      const procs = (await realExec(['ps', '-eo', 'args='])).stdout.split('\n').filter((l) => l.startsWith('wireguard-go') && l.includes(goneRow.device));
      const sock = await stat(`/var/run/wireguard/${goneRow.device}.sock`).then(() => ['socket'], () => []);
      left = [...rows.filter((x) => x.device === goneRow.device && x.state !== 'gone').map(() => 'state'), ...procs, ...sock];
      if (left.length === 0) break;
      await sleep(200);
    }
    expect(left).toEqual([]);
    expect(await stat(join(dir, 'run', `${goneRow.device}.pid`)).then(() => 'pid file', () => 'none')).toBe('none');
    // The keys go only with CAA's teardown.
    const podDir = join(dir, 'state', 'pods', goneRow.device.slice('pwg'.length));
    expect((await readdir(podDir)).sort()).toEqual(['psk.key', 'record.json', 'worker.key']);
    expect((await api('POST', '/v1/teardown', { netns: goneRow.netns })).status).toBe(200);
    expect(await stat(podDir).then(() => 'folder', () => 'none')).toBe('none');
  }, 60_000);

  it('never shows a private or preshared key in a log line, API response, status output or state file', async () => {
    const secrets: string[] = [];
    for (const f of flows) {
      const wg = f.podNetworkJson['wireguard'] as Record<string, string> | undefined;
      if (wg !== undefined) secrets.push(wg['private-key']!, wg['preshared-key']!);
    }
    const stateFiles: string[] = [];
    for (const f of await readdir(join(dir, 'state'), { recursive: true })) {
      const p = join(dir, 'state', f);
      if ((await stat(p)).isFile()) {
        const text = await readFile(p, 'utf8');
        if (f.endsWith('.key')) secrets.push(text.trim());
        else stateFiles.push(text);
      }
    }
    const log = await readFile(logPath, 'utf8');
    expect(log.split('\n').length).toBeGreaterThan(PODS);
    expect(secrets.length).toBeGreaterThan(PODS * 2);
    const haystacks = [log, ...responses, ...stateFiles, (await flows[0]!.wgctl(['status', '--json'])).stdout];
    for (const s of secrets) for (const h of haystacks) expect(h.includes(s)).toBe(false);
  }, 60_000);
});
