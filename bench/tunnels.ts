// `node dist/bench/tunnels.js [--quick]`: one side-by-side table of the data-plane and control-plane
// cost of each way to reach a peer pod's VM, each in a lab of its own (lab/lab.ts):
//
//   none       plain routing, client pod → the VM's root netns address (routing-only lab)
//   vxlan      CAA's VXLAN tunnel by hand (bench/caa-vxlan.ts), VM pod MTU 1450 (routing-only lab)
//   vxlan 1500 the same without CAA's MTU cap: outer packets fragment
//   vxlan NAT  the same through the NAT router: expected to get no reply (DESIGN.md §5)
//   wireguard  our tunnel via the real CLIs (lab/flow.ts), through the NAT router: wireguard-go
//              at both ends, and where the kernel has WireGuard (a qemu guest, bench/guest.ts) also
//              kernel WireGuard at both ends, as a row of its own
//
// All labs are up at once and measured in rotating rounds, so that other load on a shared machine
// falls on every row alike; the table shows medians and their range. Throughput is iperf3 TCP,
// client pod ⇄ VM pod; RTT is ping percentiles; the control-plane cost is CPU and peak RSS of
// wgctl and peerpod-wg-agent (/usr/bin/time) and of the wireguard-go daemons (/proc). Progress
// goes to stderr, the report to stdout. Every namespace, iperf3 server and daemon it starts is
// removed before it exits, failure or not.
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { realExec } from '../src/exec.js';
import { LabFlow } from '../lab/flow.js';
import { LAB, Lab } from '../lab/lab.js';
import { kernelWireGuardAvailable } from '../src/wireguard/kernel/backend.js';
import { CaaVxlan } from './caa-vxlan.js';
import {
  CostMeter,
  IperfServer,
  ProcessProbe,
  clockTicksPerSecond,
  cpuPercentDuring,
  epochMs,
  firstReplyMs,
  haveGnuTime,
  iperf,
  pingTimes,
  rttOf,
  type ProcessCost,
} from './measure.js';

interface BenchConfig {
  /** Measurement rounds; each round measures every lab once, in a rotated order. */
  rounds: number;
  seconds: number;
  omitSeconds: number;
  /** Pings per lab per round. */
  pings: number;
  pingIntervalS: number;
}

interface ControlPlaneCost {
  setupCpuMs: number;
  teardownCpuMs: number;
  peakRssKiB: number;
}

interface Row {
  tunnel: string;
  path: string;
  /** Receiver-side bit/s of each round. */
  toVm: number[];
  fromVm: number[];
  pingTimes: number[];
  pingsSent: number;
  /** From the start of the worker-side setup (the pod VM side already up) to the first ping reply. */
  firstReplyMs: number | null;
  /** Worker side plus pod-VM side. */
  teardownMs: number | null;
  ctl: ControlPlaneCost | null;
  /** wireguard-go CPU of each round, both daemons added, in % of one core, during each iperf3 direction. */
  wgCpuToVm: number[];
  wgCpuFromVm: number[];
  /** Why the row has no (or incomplete) numbers. */
  failure: string | null;
  /** Whether that failure is the expected result (VXLAN through NAT). */
  expectedFailure: boolean;
  details: string[];
}

const emptyRow = (tunnel: string, path: string): Row => ({
  tunnel,
  path,
  toVm: [],
  fromVm: [],
  pingTimes: [],
  pingsSent: 0,
  firstReplyMs: null,
  teardownMs: null,
  ctl: null,
  wgCpuToVm: [],
  wgCpuFromVm: [],
  failure: null,
  expectedFailure: false,
  details: [],
});

const benchStart = performance.now();
const progress = (text: string): void =>
  void process.stderr.write(`bench: [${((performance.now() - benchStart) / 1000).toFixed(1).padStart(5)} s] ${text}\n`);
const errorText = (e: unknown): string => ((e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '');
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

// Cleanups of every lab that exists, run on SIGINT/SIGTERM as well as in `finally`.
const cleanups = new Set<() => Promise<void>>();
// Set by SIGINT/SIGTERM: the measuring loop then starts nothing new.
let stopping = false;
// Every lab this run built, to check at the end that none of their namespaces is left.
const labPrefixes = new Set<string>();

/** `fn` runs once; later calls (the signal handler and a `finally` racing) share its promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= fn());
}

function newLab(nat: boolean): Lab {
  const lab = new Lab({ exec: realExec, nat });
  labPrefixes.add(lab.prefix);
  return lab;
}

interface Target {
  /** Where the iperf3 servers run and what ping aims at. */
  ns: string;
  ip: string;
}

/**
 * One way to reach the pod VM, in a lab of its own: built once, measured in rounds beside the
 * others (so that other load on the machine falls on every row alike), then torn down.
 */
interface Subject {
  readonly row: Row;
  readonly lab: Lab;
  readonly target: Target;
  /** wireguard-go daemons to account during traffic (none on the kernel paths). */
  readonly probes: ProcessProbe[];
  /** Build the lab and the tunnel, and record the time to the first reply. */
  up(): Promise<void>;
  /** Tear the tunnel down as its driver would, timed. */
  down(): Promise<void>;
  /** Remove everything, whatever state it is in. Idempotent. */
  destroy(): Promise<void>;
}

/** No tunnel: the client pod reaches the VM's root netns by plain routing (the worker SNATs it). */
class RoutedSubject implements Subject {
  readonly row = emptyRow('none', 'routed, no NAT, no tunnel → VM root');
  readonly lab = newLab(false);
  readonly target = { ns: this.lab.ns.vm, ip: LAB.vmIP };
  readonly probes: ProcessProbe[] = [];

  async up(): Promise<void> {
    await this.lab.create();
  }
  async down(): Promise<void> {}
  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}

class VxlanSubject implements Subject {
  readonly row: Row;
  readonly lab: Lab;
  readonly target: Target;
  readonly probes: ProcessProbe[] = [];
  readonly #vxlan: CaaVxlan;

  constructor(opts: { podVmMtu?: number; nat: boolean }) {
    this.lab = newLab(opts.nat);
    this.target = { ns: this.lab.ns.vmPod, ip: LAB.podIP };
    this.#vxlan = new CaaVxlan({ lab: this.lab, exec: realExec, ...(opts.podVmMtu === undefined ? {} : { podVmMtu: opts.podVmMtu }) });
    const label = opts.podVmMtu === undefined ? 'vxlan' : `vxlan (pod MTU ${opts.podVmMtu})`;
    this.row = emptyRow(label, `${opts.nat ? 'through NAT' : 'routed, no NAT'}, VM pod MTU ${this.#vxlan.podVmMtu}`);
  }

  /** Build it; null when the first ping got no reply within `deadlineS`. */
  async tryUp(deadlineS: number): Promise<number | null> {
    await this.lab.create();
    // The pod VM side first, as it would be by the time CAA's worker Setup runs.
    await this.#vxlan.setupPodVm(await this.#vxlan.podMac());
    const t0 = epochMs();
    await this.#vxlan.setupWorker();
    this.row.firstReplyMs = await firstReplyMs(this.lab, this.lab.ns.client, LAB.podIP, t0, deadlineS);
    return this.row.firstReplyMs;
  }

  async up(): Promise<void> {
    if ((await this.tryUp(5)) === null) throw new Error('no ping reply through the tunnel within 5 s');
  }

  async down(): Promise<void> {
    const t0 = performance.now();
    await this.#vxlan.teardownWorker();
    await this.#vxlan.teardownPodVm();
    this.row.teardownMs = performance.now() - t0;
  }

  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}

/** Our tunnel, set up by the real CLIs through the NAT router, with their costs metered. */
class WireguardSubject implements Subject {
  readonly row: Row;
  readonly lab = newLab(true);
  readonly target = { ns: this.lab.ns.vmPod, ip: LAB.podIP };
  readonly probes: ProcessProbe[] = [];
  /** Per daemon, CPU % of each round, for the report. */
  readonly cpuToVm: number[][] = [];
  readonly cpuFromVm: number[][] = [];
  readonly #meter = new CostMeter(realExec);
  readonly #metered: boolean;
  readonly #flow: LabFlow;
  #ticksAtFirstReply: number[] = [];

  constructor(metered: boolean, backend: 'userspace' | 'kernel', labelled: boolean) {
    this.#metered = metered;
    this.row = backend === 'kernel'
      ? emptyRow('wireguard (kernel)', 'through NAT, kernel WireGuard both ends')
      : emptyRow(labelled ? 'wireguard (wireguard-go)' : 'wireguard', 'through NAT, wireguard-go both ends');
    this.#flow = new LabFlow({
      exec: metered ? this.#meter.exec : realExec,
      lab: this.lab,
      backend,
      // wgctl hands its verbs to a sidecar when one answers on WG_SOCKET. Point it at a path where
      // none can be, so that the bench measures wgctl doing the work itself and never drives a
      // sidecar that someone else runs on this machine.
      env: { WG_SOCKET: join(tmpdir(), `${this.lab.prefix}-no-sidecar.sock`) },
    });
  }

  async up(): Promise<void> {
    const flow = this.#flow;
    await this.lab.create();
    await flow.init();
    await this.#meter.open();
    await flow.inspect();
    await flow.agentSetup();
    const t0 = epochMs();
    await flow.setup();
    this.row.firstReplyMs = await firstReplyMs(this.lab, this.lab.ns.client, LAB.podIP, t0);
    if (this.row.firstReplyMs === null) throw new Error('no ping reply through the tunnel within 5 s');
    this.probes.push(
      ...(await ProcessProbe.fromPidFiles(flow.runDir, 'worker')),
      // LabFlow.agent() runs the agent with --run-dir <dir>/vm-run.
      ...(await ProcessProbe.fromPidFiles(flow.vmRunDir, 'pod VM')),
    );
    const want = this.row.tunnel === 'wireguard (kernel)' ? 0 : 2;
    if (this.probes.length !== want) progress(`${this.row.tunnel}: warning: found ${this.probes.length} wireguard-go daemons, expected ${want}`);
    this.#ticksAtFirstReply = await Promise.all(this.probes.map((d) => d.cpuTicks()));
  }

  async down(): Promise<void> {
    const hz = await clockTicksPerSecond(realExec);
    const peaks = await Promise.all(this.probes.map((d) => d.peakRssKiB()));
    const setupCosts = this.#meter.costs.slice();
    const t0 = performance.now();
    await this.#flow.teardown();
    await this.#flow.agentTeardown();
    this.row.teardownMs = performance.now() - t0;
    const teardownCosts = this.#meter.costs.slice(setupCosts.length);

    const d = this.row.details;
    if (this.#metered) {
      const all = [...setupCosts, ...teardownCosts];
      this.row.ctl = {
        setupCpuMs: sum(setupCosts.map((c) => c.cpuMs)),
        teardownCpuMs: sum(teardownCosts.map((c) => c.cpuMs)),
        peakRssKiB: Math.max(...all.map((c) => c.maxRssKiB)),
      };
      d.push('wireguard control plane, per CLI run (wall ms / CPU ms user+sys / peak RSS MiB):');
      for (const c of all) d.push(costLine(c));
    } else {
      d.push('wireguard control plane: not measured (no /usr/bin/time; Debian package "time")');
    }
    d.push('wireguard-go daemons (CPU ms until the first reply, 10 ms ticks / peak RSS MiB / median CPU % of a core pod→VM, VM→pod):');
    this.probes.forEach((p, i) => {
      const startMs = ((this.#ticksAtFirstReply[i] ?? NaN) / hz) * 1000;
      d.push(
        `  ${p.name.padEnd(26)} ${fmt(startMs, 0).padStart(6)} / ${fmt((peaks[i] ?? NaN) / 1024, 1).padStart(5)} / ` +
          `${fmt(median(this.cpuToVm[i] ?? []), 0)}, ${fmt(median(this.cpuFromVm[i] ?? []), 0)}`,
      );
    });
  }

  async destroy(): Promise<void> {
    await this.#flow.destroy();
    await this.#meter.close();
  }
}

/** VXLAN through the NAT router: expected to get no reply at all (DESIGN.md §5). */
async function vxlanThroughNat(): Promise<Row> {
  const s = new VxlanSubject({ nat: true });
  progress(`${s.row.tunnel} through NAT: lab ${s.lab.prefix}`);
  const cleanup = once(() => s.destroy());
  cleanups.add(cleanup);
  try {
    const deadlineS = 3;
    if ((await s.tryUp(deadlineS)) === null) {
      Object.assign(s.row, { failure: `no ping reply within ${deadlineS} s`, expectedFailure: true });
    } else {
      s.row.failure = 'got a reply through the NAT, which DESIGN.md §5 says cannot happen';
    }
  } catch (e) {
    s.row.failure = errorText(e);
  } finally {
    cleanups.delete(cleanup);
    await cleanup();
  }
  return s.row;
}

/**
 * Forget every learned path MTU on the way. A VM pod that has sent to the client once caches the
 * tunnel's PMTU for 10 minutes and then advertises a smaller MSS, which would hide the outer
 * fragmentation of the pod-MTU-1500 row after its first run. Each run starts from first contact.
 */
async function forgetPathMtu(s: Subject): Promise<void> {
  for (const ns of new Set([s.lab.ns.client, s.lab.ns.pod, s.target.ns])) {
    await realExec(['ip', '-n', ns, 'route', 'flush', 'cache']);
  }
}

/** One round for one subject: iperf3 both ways (the second with -R), then a batch of pings. */
async function measureRound(s: Subject, cfg: BenchConfig, hz: number): Promise<void> {
  const run = {
    lab: s.lab,
    clientNs: s.lab.ns.client,
    serverNs: s.target.ns,
    serverIP: s.target.ip,
    seconds: cfg.seconds,
    omitSeconds: cfg.omitSeconds,
  };
  await forgetPathMtu(s);
  const up = await cpuPercentDuring(s.probes, hz, () => iperf({ ...run, port: 5201, reverse: false }));
  await forgetPathMtu(s);
  const down = await cpuPercentDuring(s.probes, hz, () => iperf({ ...run, port: 5202, reverse: true }));
  const times = await pingTimes(s.lab, s.lab.ns.client, s.target.ip, cfg.pings, cfg.pingIntervalS);
  if (times.length === 0) throw new Error(`no ping reply from ${s.target.ip}`);
  s.row.toVm.push(up.result.bitsPerSecond);
  s.row.fromVm.push(down.result.bitsPerSecond);
  s.row.pingTimes.push(...times);
  s.row.pingsSent += cfg.pings;
  if (s.probes.length > 0) {
    s.row.wgCpuToVm.push(sum(up.percent));
    s.row.wgCpuFromVm.push(sum(down.percent));
  }
  if (s instanceof WireguardSubject) {
    up.percent.forEach((p, i) => (s.cpuToVm[i] ??= []).push(p));
    down.percent.forEach((p, i) => (s.cpuFromVm[i] ??= []).push(p));
  }
}

async function bench(cfg: BenchConfig): Promise<Row[]> {
  const hz = await clockTicksPerSecond(realExec);
  const natRow = await vxlanThroughNat();

  const metered = await haveGnuTime();
  const kernel = kernelWireGuardAvailable().available;
  const wireguards = [
    new WireguardSubject(metered, 'userspace', kernel),
    ...(kernel ? [new WireguardSubject(metered, 'kernel', true)] : []),
  ];
  const subjects: Subject[] = [
    new RoutedSubject(),
    new VxlanSubject({ nat: false }),
    new VxlanSubject({ nat: false, podVmMtu: 1500 }),
    ...wireguards,
  ];
  const live: Subject[] = [];
  const destroyAll = once(async () => {
    for (const s of subjects) await s.destroy().catch((e: unknown) => progress(`cleanup of lab ${s.lab.prefix}: ${errorText(e)}`));
  });
  cleanups.add(destroyAll);
  try {
    for (const s of subjects) {
      if (stopping) break;
      progress(`${s.row.tunnel}: building lab ${s.lab.prefix} and its tunnel`);
      try {
        await s.up();
        live.push(s);
      } catch (e) {
        s.row.failure = errorText(e);
        progress(`${s.row.tunnel}: ${s.row.failure}`);
      }
    }
    for (let round = 0; round < cfg.rounds; round++) {
      // Rotate the order, so that no row always runs first (or right after the busiest one).
      const order = live.map((_, i) => live[(i + round) % live.length]).filter((s): s is Subject => s !== undefined);
      for (const s of order) {
        if (stopping) break;
        if (s.row.failure !== null) continue;
        progress(`round ${round + 1}/${cfg.rounds}: ${s.row.tunnel}`);
        try {
          await measureRound(s, cfg, hz);
        } catch (e) {
          s.row.failure = errorText(e);
          progress(`${s.row.tunnel}: ${s.row.failure}`);
        }
      }
    }
    for (const s of live) {
      if (stopping) break;
      progress(`${s.row.tunnel}: teardown`);
      try {
        await s.down();
      } catch (e) {
        s.row.failure ??= `teardown: ${errorText(e)}`;
      }
    }
  } finally {
    cleanups.delete(destroyAll);
    await destroyAll();
  }
  // Table order: the three routed-lab rows, then the two through the NAT.
  return [...subjects.filter((s) => !(s instanceof WireguardSubject)).map((s) => s.row), natRow, ...wireguards.map((w) => w.row)];
}

// ---------------------------------------------------------------------------------------------
// The table

function fmt(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '—';
}

function costLine(c: ProcessCost): string {
  return `  ${c.label.padEnd(26)} ${fmt(c.wallMs, 0).padStart(6)} / ${fmt(c.cpuMs, 0).padStart(5)} / ${fmt(c.maxRssKiB / 1024, 1)}`;
}

/** Median Gbit/s of the rounds, with their range when there was more than one. */
function gbit(bps: readonly number[]): string {
  if (bps.length === 0) return '—';
  const g = bps.map((b) => b / 1e9);
  const m = fmt(median(g), 2);
  return g.length === 1 ? m : `${m} [${fmt(Math.min(...g), 2)}–${fmt(Math.max(...g), 2)}]`;
}

const ms = (n: number | null): string => (n === null ? '—' : fmt(n, 0));

function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—';
  const r = a / b;
  return `${r < 0.1 ? r.toFixed(3) : r.toFixed(2)}×`;
}

const HEADER = [
  'tunnel',
  'lab path',
  'pod→VM Gbit/s',
  'VM→pod Gbit/s',
  'RTT p50 ms',
  'RTT p99 ms',
  'setup→1st reply ms',
  'teardown ms',
  'ctl CPU ms setup / teardown',
  'ctl peak RSS MiB',
  'wg-go CPU % →/←',
];

function rowCells(r: Row): string[] {
  if (r.failure !== null && r.toVm.length === 0) {
    const why = r.expectedFailure ? `✗ ${r.failure} (expected)` : `✗ FAILED: ${r.failure}`;
    return [r.tunnel, r.path, why, '', '', '', '', '', '', '', ''];
  }
  const rtt = rttOf(r.pingTimes, r.pingsSent);
  return [
    r.tunnel,
    r.path,
    gbit(r.toVm),
    gbit(r.fromVm),
    fmt(rtt.p50, 3),
    fmt(rtt.p99, 3),
    ms(r.firstReplyMs),
    ms(r.teardownMs),
    r.ctl === null ? '—' : `${fmt(r.ctl.setupCpuMs, 0)} / ${fmt(r.ctl.teardownCpuMs, 0)}`,
    r.ctl === null ? '—' : fmt(r.ctl.peakRssKiB / 1024, 1),
    r.wgCpuToVm.length === 0 ? '—' : `${fmt(median(r.wgCpuToVm), 0)} / ${fmt(median(r.wgCpuFromVm), 0)}`,
  ];
}

function ratioCells(name: string, a: Row, b: Row | undefined): string[] {
  if (b === undefined) return [name, 'ratio', '—', '—', '—', '—', '', '', '', '', ''];
  const ra = rttOf(a.pingTimes, a.pingsSent);
  const rb = rttOf(b.pingTimes, b.pingsSent);
  return [
    name,
    'ratio of medians',
    ratio(median(a.toVm), median(b.toVm)),
    ratio(median(a.fromVm), median(b.fromVm)),
    ratio(ra.p50, rb.p50),
    ratio(ra.p99, rb.p99),
    '', '', '', '', '',
  ];
}

function markdownTable(rows: string[][]): string {
  const widths = HEADER.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length), 3));
  const line = (r: string[]): string => `| ${r.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - [...c].length)).join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function versionOf(argv: string[]): Promise<string> {
  const r = await realExec(argv, { okCodes: [0, 1] }).catch(() => null);
  return (r?.stdout ?? '').split('\n')[0]?.trim() || 'unknown';
}

function report(rows: Row[], cfg: BenchConfig, quick: boolean, machine: string): string {
  const measured = (r: Row): boolean => r.toVm.length > 0;
  const vxlan = rows.find((r) => r.tunnel === 'vxlan' && measured(r));
  const none = rows.find((r) => r.tunnel === 'none' && measured(r));
  const body = rows.map(rowCells);
  for (const wg of rows.filter((r) => r.tunnel.startsWith('wireguard') && measured(r))) {
    body.push(ratioCells(`${wg.tunnel} ÷ vxlan`, wg, vxlan), ratioCells(`${wg.tunnel} ÷ none`, wg, none));
  }
  const goRow = rows.find((r) => r.tunnel === 'wireguard (wireguard-go)' && measured(r));
  const kernelRow = rows.find((r) => r.tunnel === 'wireguard (kernel)' && measured(r));
  if (goRow !== undefined && kernelRow !== undefined) body.push(ratioCells('kernel ÷ wireguard-go', kernelRow, goRow));
  const out = [
    machine,
    `Run: ${quick ? '--quick, ' : ''}${cfg.rounds} round${cfg.rounds > 1 ? 's' : ''}; each round runs, per lab, iperf3 TCP ` +
      `${cfg.seconds} s per direction${cfg.omitSeconds > 0 ? ` (after ${cfg.omitSeconds} s of slow start left out)` : ''} ` +
      `and ${cfg.pings} pings at ${cfg.pingIntervalS * 1000} ms. One lab per row, all up at once, measured in turn.`,
    '',
    markdownTable([HEADER, ...body]),
    '',
    'Gbit/s: median of the rounds [min–max]. RTT: percentiles over all pings of all rounds.',
    'setup→1st reply: from the start of the worker-side setup (pod VM side already up) to the first ping reply,',
    '  process starts included. teardown: worker side then pod VM side. ctl: wgctl and peerpod-wg-agent runs,',
    '  their waited-for children (ip, …) included, wireguard-go not. wg-go CPU: both daemons added, % of one',
    '  core, median over the rounds, during each iperf3 direction.',
    '',
  ];
  for (const r of rows) out.push(...r.details);
  for (const r of rows) {
    const lost = r.pingsSent - r.pingTimes.length;
    if (measured(r) && lost > 0) out.push(`${r.tunnel}: ${lost} of ${r.pingsSent} pings got no reply`);
    if (measured(r) && r.failure !== null) out.push(`${r.tunnel}: incomplete: ${r.failure}`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node dist/bench/tunnels.js [--quick]   (root; builds network namespaces)\n');
    return 0;
  }
  const unknown = argv.filter((a) => a !== '--quick');
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown argument ${unknown.join(' ')}: valid is --quick\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root: it creates network namespaces\n');
    return 1;
  }
  const quick = argv.includes('--quick');
  const cfg: BenchConfig = quick
    ? { rounds: 1, seconds: 1, omitSeconds: 0, pings: 50, pingIntervalS: 0.01 }
    : { rounds: 3, seconds: 3, omitSeconds: 1, pings: 70, pingIntervalS: 0.01 };

  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`${signal}: cleaning up`);
    stopping = true;
    void (async () => {
      await IperfServer.closeAll();
      for (const c of cleanups) await c().catch(() => undefined);
      IperfServer.killAllNow();
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // Other work on the machine skews every number; say how busy it was, so that a reader can judge.
  const loadAtStart = loadavg()[0] ?? NaN;
  const started = performance.now();
  const rows = await bench(cfg);
  const [wgGo, iperfV] = await Promise.all([versionOf(['wireguard-go', '--version']), versionOf(['iperf3', '--version'])]);
  const machine =
    `Machine: ${availableParallelism()} CPUs, kernel ${release()}, ${wgGo}, ${iperfV}; ` +
    `load average ${fmt(loadAtStart, 2)} before the run, ${fmt(loadavg()[0] ?? NaN, 2)} after (the bench adds to it).`;
  process.stdout.write(report(rows, cfg, quick, machine) + `\nBench took ${((performance.now() - started) / 1000).toFixed(0)} s.\n`);

  const left = (await realExec(['ip', 'netns', 'list'])).stdout
    .split('\n')
    .filter((l) => [...labPrefixes].some((p) => l.startsWith(`${p}-`)));
  if (left.length > 0) progress(`LEFT BEHIND: ${left.join(', ')}`);
  return rows.some((r) => r.failure !== null && !r.expectedFailure) || left.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
