#!/usr/bin/env node
// wgctl: the operator CLI of the worker side. inspect/setup/teardown are CAA's three tunnel verbs
// for one pod netns; status shows every tunnel this worker keeps. It parses flags, wires the real
// dependencies (cmd/wiring.ts) and prints; the work is done by the tunnel driver.
import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { PeerpodError } from '../src/errors.js';
import { parsePodNetwork, podNetworkToJson } from '../src/podnetwork/schema.js';
import { DEFAULT_STATE_DIR, FilePodStore, podIdOf } from '../src/state/store.js';
import { TUNNEL_TYPES } from '../src/podnetwork/types.js';
import { workerDriver, type TunnelRegistry } from '../src/tunnel/registry.js';
import { VxlanWorkerDriver } from '../src/tunnel/vxlan/worker.js';
import { tunnelStatus } from '../src/tunnel/status.js';
import {
  DEFAULT_KEEPALIVE,
  DEFAULT_LISTEN_PORT,
  SETUP_STEPS,
  WireguardWorkerDriver,
  type SetupStep,
} from '../src/tunnel/wireguard/worker.js';
import { fail, makeRuntime } from './wiring.js';

const HELP = `wgctl: WireGuard tunnels between this worker node and its peer-pod VMs

Usage:
  wgctl inspect  --netns <pod netns path> [--tunnel-type T] [--listen-port N] [--keepalive S] [--output FILE]
  wgctl setup    --netns <pod netns path> --pod-vm-ip <ip>[,<ip>] --config <pod-network JSON file|->
  wgctl teardown --netns <pod netns path> [--config <file>]
  wgctl status   [--json]

inspect   Reads the pod's primary interface (IP, MAC, MTU, routes, permanent neighbours), makes the
          pod's keys and prints the "pod-network" JSON for apf.json. It contains the pod VM's
          private key: with --output it goes to FILE (mode 0600) instead of stdout.
setup     Creates the WireGuard device, moves it into the pod netns and routes the pod IP through
          it. The first --pod-vm-ip is the pod VM's endpoint. Safe to re-run; a failure rolls back.
teardown  Removes everything setup and inspect made for the pod, including its keys. Idempotent.
status    One row per tunnel: netns, device, endpoint, handshake age, bytes, keepalive, state.

Options:
  --tunnel-type T     wireguard | vxlan, for inspect (env TUNNEL_TYPE, default wireguard); setup
                      and teardown follow the config and the pod's state
  --state-dir DIR     durable state and the worker's private keys (env WG_STATE_DIR,
                      default ${DEFAULT_STATE_DIR})
  --run-dir DIR       pid and log files of wireguard-go (env WG_RUN_DIR, default /run/peerpod-wg)
  --listen-port N     the pod VM's UDP port (env WG_PORT, default ${DEFAULT_LISTEN_PORT})
  --keepalive S       PersistentKeepalive in seconds, 0 disables (env WG_KEEPALIVE, default ${DEFAULT_KEEPALIVE})
  VXLAN_PORT          (env) UDP port of the vxlan tunnel type (default 4789)
  VXLAN_MIN_ID        (env) the first VNI of the vxlan tunnel type (default 555000)
  --backend B         auto | userspace | kernel (env WG_BACKEND, default auto)
  --log-level L       pino level for the JSON logs on stderr (env LOG_LEVEL, default warn)
  -h, --help          this text

Exit codes: 0 success, 1 failure, 2 bad input.
`;

function intFlag(value: string | undefined, env: string, field: string, min: number, max: number): number | undefined {
  const text = value ?? process.env[env];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    const where = value !== undefined ? `--${field}` : env;
    throw new PeerpodError('EINVAL', `${where} ${JSON.stringify(text)}: expected an integer ${min}-${max}`, { field: where });
  }
  return n;
}

function required(value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') {
    throw new PeerpodError('EINVAL', `--${flag} is required: ${what}`, { field: flag });
  }
  return value;
}

async function readConfig(path: string): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
  } catch (e) {
    throw new PeerpodError('EINVAL', `cannot read --config ${path}`, { field: 'config' }, e);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PeerpodError('EINVAL', `--config ${path} is not valid JSON: ${(e as Error).message}`, { field: 'config' });
  }
  // Accept either the pod-network object itself or a whole apf.json around it.
  if (typeof doc === 'object' && doc !== null && 'pod-network' in doc) return (doc as Record<string, unknown>)['pod-network'];
  return doc;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function crashHook(): ((s: SetupStep) => void) | undefined {
  // For crash tests only: SIGKILL ourselves right after the named setup step.
  const at = process.env['PEERPOD_WG_TEST_CRASH_AFTER'];
  if (at === undefined) return undefined;
  if (!(SETUP_STEPS as readonly string[]).includes(at)) {
    throw new PeerpodError('EINVAL', `PEERPOD_WG_TEST_CRASH_AFTER=${at}: valid steps are ${SETUP_STEPS.join(', ')}`);
  }
  return (s) => {
    if (s === at) process.kill(process.pid, 'SIGKILL');
  };
}

function age(sec: number, now: number): string {
  if (sec === 0) return 'never';
  const d = Math.max(0, now - sec);
  return d < 120 ? `${d}s` : `${Math.floor(d / 60)}m${d % 60}s`;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      netns: { type: 'string' },
      'tunnel-type': { type: 'string' },
      'pod-vm-ip': { type: 'string' },
      config: { type: 'string' },
      output: { type: 'string' },
      'listen-port': { type: 'string' },
      keepalive: { type: 'string' },
      'state-dir': { type: 'string' },
      'run-dir': { type: 'string' },
      backend: { type: 'string' },
      'log-level': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb] = positionals;
  if (values.help === true || verb === undefined || verb === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (!['inspect', 'setup', 'teardown', 'status'].includes(verb)) {
    throw new PeerpodError('EINVAL', `unknown command "${verb}": valid commands are inspect, setup, teardown, status`);
  }
  const rt = makeRuntime({
    name: 'wgctl',
    ...(values['run-dir'] === undefined ? {} : { runDir: values['run-dir'] }),
    ...(values.backend === undefined ? {} : { backend: values.backend }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  });
  const store = new FilePodStore(values['state-dir'] ?? process.env['WG_STATE_DIR'] ?? DEFAULT_STATE_DIR);
  const onStep = crashHook();
  const listenPort = intFlag(values['listen-port'], 'WG_PORT', 'listen-port', 1, 65535);
  const keepalive = intFlag(values.keepalive, 'WG_KEEPALIVE', 'keepalive', 0, 65535);
  const vxlanPort = intFlag(undefined, 'VXLAN_PORT', 'VXLAN_PORT', 1, 65535);
  const minId = intFlag(undefined, 'VXLAN_MIN_ID', 'VXLAN_MIN_ID', 1, 2 ** 24 - 1);
  const registry: TunnelRegistry = {
    wireguard: {
      worker: () =>
        new WireguardWorkerDriver(
          { backend: rt.backend, netns: rt.netns, store, ...(onStep ? { onStep } : {}) },
          { ...(listenPort === undefined ? {} : { listenPort }), ...(keepalive === undefined ? {} : { keepalive }) },
        ),
    },
    vxlan: {
      worker: () =>
        new VxlanWorkerDriver(
          { netns: rt.netns, store },
          { ...(vxlanPort === undefined ? {} : { port: vxlanPort }), ...(minId === undefined ? {} : { minId }) },
        ),
    },
  };

  if (verb === 'inspect') {
    const netns = required(values.netns, 'netns', 'the pod netns path, e.g. /run/netns/cni-1234');
    const type = values['tunnel-type'] ?? process.env['TUNNEL_TYPE'] ?? 'wireguard';
    const pn = await workerDriver(registry, type, 'tunnel-type').inspect(netns);
    const text = JSON.stringify(podNetworkToJson(pn), null, 2) + '\n';
    if (values.output !== undefined) await writeFile(values.output, text, { mode: 0o600 });
    else process.stdout.write(text);
    rt.log.info({ netns, op: 'inspect' }, 'inspected pod netns');
  } else if (verb === 'setup') {
    const netns = required(values.netns, 'netns', 'the pod netns path');
    const ips = required(values['pod-vm-ip'], 'pod-vm-ip', 'the pod VM address(es), comma-separated')
      .split(',')
      .map((s) => s.trim());
    for (const ip of ips) {
      if (isIP(ip) === 0) {
        throw new PeerpodError('EINVAL', `--pod-vm-ip ${JSON.stringify(ip)} is not an IP address: expected e.g. 203.0.113.10`, {
          field: 'pod-vm-ip',
        });
      }
    }
    const pn = parsePodNetwork(await readConfig(required(values.config, 'config', 'the pod-network JSON from inspect')));
    const rec = await workerDriver(registry, pn.tunnel.type).setup({ netns, podVmIPs: ips, podNetwork: pn });
    rt.log.info({ netns, device: rec.device, op: 'setup' }, 'tunnel set up');
    process.stdout.write(`tunnel ${rec.device} set up in ${netns} to ${ips[0] ?? ''}\n`);
  } else if (verb === 'teardown') {
    const netns = required(values.netns, 'netns', 'the pod netns path');
    const pn = values.config === undefined ? null : parsePodNetwork(await readConfig(values.config));
    const rec = await store.read(podIdOf(netns)).catch(() => null);
    const type = rec?.tunnelType ?? pn?.tunnel.type;
    // Without a record or a config, every driver removes whatever it may have left: all are idempotent.
    const types = type === undefined ? TUNNEL_TYPES.filter((t) => registry[t].worker !== undefined) : [type];
    for (const t of types) await workerDriver(registry, t).teardown({ netns });
    rt.log.info({ netns, op: 'teardown' }, 'tunnel torn down');
    process.stdout.write(`tunnel for ${netns} torn down\n`);
  } else {
    const now = Math.floor(Date.now() / 1000);
    const rows = await tunnelStatus(await store.list(), { backend: rt.backend, netns: rt.netns }, now);
    if (values.json === true) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    const table = [['NETNS', 'DEVICE', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX', 'KEEPALIVE', 'STATE']];
    for (const r of rows) {
      table.push([r.netns, r.device, r.endpoint ?? '-', age(r.latestHandshake, now), String(r.rxBytes), String(r.txBytes),
        `${r.keepalive}s`, r.state]);
    }
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) process.stdout.write(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
  }
  await rt.backend.close();
}

main(process.argv.slice(2)).catch(fail);
