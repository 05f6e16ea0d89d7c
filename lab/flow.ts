// The real CAA flow, run in a lab as separate processes: `wgctl inspect` in the worker's host netns,
// apf.json written as CAA writes it, `peerpod-wg-agent setup` in the pod VM's root netns, then
// `wgctl setup`. Used by the demo and the lab tests, so both exercise exactly what a user runs.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Exec, ExecResult } from '../src/exec.js';
import type { Lab, LabSlot } from './lab.js';

const CMD_DIR = fileURLToPath(new URL('../cmd/', import.meta.url));
export const WGCTL = join(CMD_DIR, 'wgctl.js');
export const AGENT = join(CMD_DIR, 'peerpod-wg-agent.js');
export const TRANSFER = fileURLToPath(new URL('./transfer.js', import.meta.url));

export interface FlowOptions {
  exec: Exec;
  lab: Lab;
  listenPort?: number;
  keepalive?: number;
  /** wireguard (default) or vxlan. */
  tunnelType?: 'wireguard' | 'vxlan';
  /** Which of the lab's peer pods (default 0). */
  slot?: number;
  /** Share a state folder (and wireguard-go run folder) with other flows, e.g. for a sidecar. */
  dir?: string;
  /** Extra environment for wgctl (e.g. WG_SOCKET). */
  env?: NodeJS.ProcessEnv;
  /** The WireGuard backend of wgctl and the agent (WG_BACKEND); default theirs (auto). */
  backend?: 'userspace' | 'kernel';
}

export class LabFlow {
  readonly lab: Lab;
  readonly #exec: Exec;
  readonly listenPort: number;
  readonly keepalive: number;
  readonly tunnelType: 'wireguard' | 'vxlan';
  readonly slot: LabSlot;
  readonly #sharedDir: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  readonly #agentEnv: NodeJS.ProcessEnv | undefined;
  dir = '';
  podNetworkJson: Record<string, unknown> = {};

  constructor(opts: FlowOptions) {
    this.lab = opts.lab;
    this.#exec = opts.exec;
    this.listenPort = opts.listenPort ?? 51900;
    this.keepalive = opts.keepalive ?? 25;
    this.tunnelType = opts.tunnelType ?? 'wireguard';
    this.slot = opts.lab.slot(opts.slot ?? 0);
    this.#sharedDir = opts.dir;
    this.#env = { ...(opts.backend === undefined ? {} : { WG_BACKEND: opts.backend }), ...opts.env };
    this.#agentEnv = opts.backend === undefined ? undefined : { ...process.env, WG_BACKEND: opts.backend };
  }

  /** The pod VM agent's wireguard-go run folder (namespace flavour). */
  get vmRunDir(): string {
    return join(this.dir, 'vm-run');
  }

  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get runDir(): string {
    return join(this.dir, 'run');
  }
  get apfPath(): string {
    return join(this.dir, `apf-${this.slot.index}.json`);
  }
  get podNetworkPath(): string {
    return join(this.dir, `pod-network-${this.slot.index}.json`);
  }

  async init(): Promise<void> {
    this.dir = this.#sharedDir ?? (await mkdtemp(join(tmpdir(), `${this.lab.prefix}-`)));
  }

  /** Run wgctl in the worker's host netns. */
  wgctl(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
    return this.#exec(
      ['ip', 'netns', 'exec', this.lab.ns.worker, process.execPath, WGCTL, ...args,
        '--state-dir', this.stateDir, '--run-dir', this.runDir],
      // Never a sidecar someone runs on this machine: only one the caller points to with WG_SOCKET.
      { env: { ...process.env, WG_SOCKET: join(this.dir, 'no-sidecar.sock'), ...this.#env, ...env }, okCodes: [0, 1, 2, 137, -1] },
    );
  }

  /** Run the agent in the pod VM's root netns. */
  agent(args: readonly string[]): Promise<ExecResult> {
    return this.#exec(
      ['ip', 'netns', 'exec', this.slot.vm, process.execPath, AGENT, ...args, '--run-dir', this.vmRunDir],
      { okCodes: [0, 1, 2], ...(this.#agentEnv === undefined ? {} : { env: this.#agentEnv }) },
    );
  }

  private static check(r: ExecResult, what: string): ExecResult {
    if (r.code !== 0) throw new Error(`${what} exited with ${r.code}: ${r.stderr.trim()}`);
    return r;
  }

  async inspect(): Promise<Record<string, unknown>> {
    LabFlow.check(
      await this.wgctl(['inspect', '--netns', this.lab.path(this.slot.pod), '--tunnel-type', this.tunnelType,
        '--listen-port', String(this.listenPort),
        '--keepalive', String(this.keepalive), '--output', this.podNetworkPath]),
      'wgctl inspect',
    );
    await this.usePodNetwork(JSON.parse(await readFile(this.podNetworkPath, 'utf8')) as Record<string, unknown>);
    return this.podNetworkJson;
  }

  /** Take a `pod-network` object that an inspect made elsewhere (a sidecar), and write apf.json as CAA does. */
  async usePodNetwork(podNetwork: Record<string, unknown>): Promise<void> {
    this.podNetworkJson = podNetwork;
    await writeFile(this.podNetworkPath, JSON.stringify(podNetwork, null, 2), { mode: 0o600 });
    const apf = { 'pod-network': podNetwork, 'pod-namespace': 'default', 'pod-name': this.podName };
    await writeFile(this.apfPath, JSON.stringify(apf, null, 2), { mode: 0o600 });
  }

  /** The pod's name, as CAA would put it into apf.json. */
  get podName(): string {
    return `${this.lab.prefix}-${this.slot.index}`;
  }

  async agentSetup(): Promise<ExecResult> {
    return LabFlow.check(
      await this.agent(['setup', '--config', this.apfPath, '--pod-netns', this.lab.path(this.slot.vmPod)]),
      'peerpod-wg-agent setup',
    );
  }

  async agentTeardown(): Promise<ExecResult> {
    return LabFlow.check(
      await this.agent(['teardown', '--config', this.apfPath, '--pod-netns', this.lab.path(this.slot.vmPod)]),
      'peerpod-wg-agent teardown',
    );
  }

  setupArgs(): string[] {
    return ['setup', '--netns', this.lab.path(this.slot.pod), '--pod-vm-ip', this.slot.vmIP, '--config', this.podNetworkPath];
  }

  async setup(env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
    return LabFlow.check(await this.wgctl(this.setupArgs(), env), 'wgctl setup');
  }

  async teardown(): Promise<ExecResult> {
    return LabFlow.check(
      await this.wgctl(['teardown', '--netns', this.lab.path(this.slot.pod), '--config', this.podNetworkPath]),
      'wgctl teardown',
    );
  }

  /** Everything, in the order CAA would do it. */
  async up(): Promise<void> {
    await this.inspect();
    await this.agentSetup();
    await this.setup();
  }

  /** Best-effort removal of everything this flow made, then the lab and the temp folder. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    if (this.dir !== '') {
      for (const f of [() => this.teardown(), () => this.agentTeardown()]) {
        await f().catch((e: unknown) => errors.push(e));
      }
    }
    await this.lab.destroy().catch((e: unknown) => errors.push(e));
    if (this.dir !== '' && this.#sharedDir === undefined) await rm(this.dir, { recursive: true, force: true });
    if (errors.length > 0 && process.env['PEERPOD_LAB_DEBUG']) console.warn('lab cleanup:', errors);
  }
}

/** Parse "N packets transmitted, M received" from ping's summary. */
export function pingReceived(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

/**
 * A NAT rebinding and how long until `from` reaches `to` again: the NAT router forgets every
 * mapping (conntrack -F), then one ping at a time until a reply. ms, or Infinity after 30 s.
 */
export async function rebindingHealMs(lab: Lab, from: string, to: string): Promise<number> {
  await lab.exec(lab.ns.nat, ['conntrack', '-F'], { okCodes: [0, 1] });
  const t0 = Date.now();
  while (Date.now() - t0 < 30_000) {
    const r = await lab.exec(from, ['ping', '-c', '1', '-W', '0.1', to], { okCodes: [0, 1] });
    if (pingReceived(r.stdout).received === 1) return Date.now() - t0;
  }
  return Infinity;
}

export interface TransferReport {
  sent: { bytes: number; sha256: string; ms: number };
  received: { bytes: number; sha256: string };
}

/**
 * A checksummed TCP transfer between two lab namespaces: `transfer.js serve` in `to`, `send` from
 * `from`. Both reports come back; equal digests prove the bytes crossed intact.
 */
export async function labTransfer(lab: Lab, from: string, to: string, toIP: string, port: number, bytes: number, seed = 'lab'): Promise<TransferReport> {
  const server = spawn('ip', ['netns', 'exec', to, process.execPath, TRANSFER, 'serve', toIP, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stderr.on('data', (b: Buffer) => (b.toString().includes('listening') ? resolve() : undefined));
      server.on('exit', (c) => reject(new Error(`transfer server exited early (${String(c)})`)));
    });
    let got = '';
    server.stdout.on('data', (b: Buffer) => (got += b.toString()));
    const done = new Promise<void>((resolve) => server.on('exit', () => resolve()));
    const sent = await lab.exec(from, [process.execPath, TRANSFER, 'send', toIP, String(port), String(bytes), seed], { timeoutMs: 60_000 });
    await done;
    return {
      sent: JSON.parse(sent.stdout) as TransferReport['sent'],
      received: JSON.parse(got) as TransferReport['received'],
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}
