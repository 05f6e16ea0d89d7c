#!/usr/bin/env node
// wgctl: the operator CLI of the worker side. inspect/setup/teardown are CAA's three tunnel verbs
// for one pod netns; status shows every tunnel this worker keeps. It parses flags, wires the real
// dependencies (cmd/wiring.ts) and prints; the work is done by the tunnel driver.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { PeerpodError } from '../src/errors.js';
import { integerSetting } from '../src/integer-setting.js';
import { findJsonSyntaxFault } from '../src/podnetwork/json-text.js';
import { parsePodNetwork, podNetworkToJson } from '../src/podnetwork/schema.js';
import { StateLock } from '../src/state/lock.js';
import { DEFAULT_STATE_DIR, podIdOf, writeAtomic } from '../src/state/store.js';
import { TUNNEL_TYPES } from '../src/podnetwork/types.js';
import { workerDriver } from '../src/tunnel/registry.js';
import { callSidecar, unwrap } from '../src/sidecar/client.js';
import { DEFAULT_SOCKET } from '../src/sidecar/config.js';
import { formatStatusDetail, formatStatusTable, problemRows, tunnelStatus, type TunnelStatus } from '../src/tunnel/status.js';
import { DEFAULT_KEEPALIVE, DEFAULT_LISTEN_PORT, SETUP_STEPS, type SetupStep } from '../src/tunnel/wireguard/worker.js';
import { VERSION, versionLine } from '../src/version.js';
import { fail, makeRuntime, parseFlags } from './wiring.js';
import { makeWorker } from './worker-wiring.js';

const HELP = `wgctl: WireGuard tunnels between this worker node and its peer-pod VMs

Usage:
  wgctl inspect  --netns <pod netns path> [--tunnel-type T] [--listen-port N] [--keepalive S] [--output FILE]
  wgctl setup    --netns <pod netns path> --pod-vm-ip <ip>[,<ip>] --config <pod-network JSON file|->
  wgctl teardown --netns <pod netns path> [--config <file>]
  wgctl status   [<pod|netns|device>] [--json]

inspect   Reads the pod's primary interface (IP, MAC, MTU, routes, permanent neighbours), makes the
          pod's keys and prints the "pod-network" JSON for apf.json. It contains the pod VM's
          private key: with --output it goes to FILE (mode 0600) instead of stdout.
setup     Creates the WireGuard device, moves it into the pod netns and routes the pod IP through
          it. The first --pod-vm-ip is the pod VM's endpoint. Safe to re-run; a failure rolls back.
teardown  Removes everything setup and inspect made for the pod, including its keys. Idempotent.
status    One row per tunnel: pod, netns, device, the peer endpoint as learned, handshake age,
          bytes, keepalive and state (connecting, up, stale, down); one tunnel in detail when
          named. --json prints objects with pod, netns, device, endpoint, latestHandshake (unix
          seconds, 0 = never), rxBytes, txBytes, keepalive, state.

When the sidecar (peerpod-wg-sidecar) answers on its socket, every command goes through it;
--direct works on the state folder and the devices directly instead.

Options:
  --tunnel-type T     wireguard | vxlan, for inspect (env TUNNEL_TYPE, default wireguard); setup
                      and teardown follow the config and the pod's state
  --pod NS/NAME       the Kubernetes pod, recorded at inspect and shown by status
  --socket PATH       the sidecar's API socket (env WG_SOCKET, default ${DEFAULT_SOCKET})
  --direct            do not use the sidecar even if it runs
  --state-dir DIR     durable state and the worker's private keys (env WG_STATE_DIR,
                      default ${DEFAULT_STATE_DIR})
  --run-dir DIR       pid and log files of wireguard-go (env WG_RUN_DIR, default /run/peerpod-wg)
  --listen-port N     the pod VM's UDP port (env WG_PORT, default ${DEFAULT_LISTEN_PORT})
  --keepalive S       PersistentKeepalive in seconds, 0 disables (env WG_KEEPALIVE, default ${DEFAULT_KEEPALIVE})
  VXLAN_PORT          (env) UDP port of the vxlan tunnel type (default 4789)
  VXLAN_MIN_ID        (env) the first VNI of the vxlan tunnel type (default 555000)
  --backend B         auto | userspace | kernel (env WG_BACKEND, default auto)
  WG_LOCK_WAIT_MS     (env) working directly, how long to wait for the state folder's lock held
                      by another wgctl or a sidecar before failing with its pid (default 30000)
  --log-level L       pino level for the JSON logs on stderr (env LOG_LEVEL, default warn)
  --version           print the version (${VERSION})
  -h, --help          this text

Exit codes: 0 success, 1 failure, 2 bad input.
`;

/** How long a direct command waits for another one (or a sidecar) to leave the state folder. */
const LOCK_WAIT_MS = 30_000;

function intFlag(value: string | undefined, env: string, field: string, min: number, max: number): number | undefined {
  const text = value ?? process.env[env];
  if (text === undefined) return undefined;
  return integerSetting(value !== undefined ? `--${field}` : env, text, min, max);
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
  } catch {
    // Not V8's message: it quotes the text around the fault, and this text holds a private key.
    const fault = findJsonSyntaxFault(text);
    const where = fault === undefined ? '' : `: line ${fault.line} column ${fault.column}: ${fault.problem}`;
    throw new PeerpodError('EINVAL', `--config ${path} is not valid JSON${where}`, { field: 'config' });
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

async function sidecarUp(socket: string): Promise<string | null> {
  if (!existsSync(socket)) return null;
  try {
    await callSidecar(socket, 'GET', '/healthz', undefined, 2_000);
    return socket;
  } catch {
    return null;
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags({
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
      pod: { type: 'string' },
      socket: { type: 'string' },
      direct: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version === true) {
    process.stdout.write(versionLine('wgctl'));
    return;
  }
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
    side: 'worker',
    ...(values['run-dir'] === undefined ? {} : { runDir: values['run-dir'] }),
    ...(values.backend === undefined ? {} : { backend: values.backend }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  });
  const onStep = crashHook();
  const listenPort = intFlag(values['listen-port'], 'WG_PORT', 'listen-port', 1, 65535);
  const keepalive = intFlag(values.keepalive, 'WG_KEEPALIVE', 'keepalive', 0, 65535);
  const vxlanPort = intFlag(undefined, 'VXLAN_PORT', 'VXLAN_PORT', 1, 65535);
  const vxlanMinId = intFlag(undefined, 'VXLAN_MIN_ID', 'VXLAN_MIN_ID', 1, 2 ** 24 - 1);
  const { registry, store } = makeWorker(rt, {
    stateDir: values['state-dir'] ?? process.env['WG_STATE_DIR'] ?? DEFAULT_STATE_DIR,
    ...(listenPort === undefined ? {} : { listenPort }),
    ...(keepalive === undefined ? {} : { keepalive }),
    ...(vxlanPort === undefined ? {} : { vxlanPort }),
    ...(vxlanMinId === undefined ? {} : { vxlanMinId }),
    ...(onStep ? { onStep } : {}),
  });

  // When the sidecar runs, it owns the tunnels: the verbs go through its API.
  const socket = values.socket ?? process.env['WG_SOCKET'] ?? DEFAULT_SOCKET;
  const sidecar = values.direct === true ? null : await sidecarUp(socket);
  if (verb !== 'status' && sidecar === null && values.direct !== true && existsSync(socket)) {
    process.stderr.write(`note: ${socket} exists but the sidecar does not answer; working directly\n`);
  }
  // Working directly: one process at a time on the state folder (src/state/lock.ts).
  if (verb !== 'status' && sidecar === null) {
    const waitMs = intFlag(undefined, 'WG_LOCK_WAIT_MS', 'WG_LOCK_WAIT_MS', 0, 3_600_000) ?? LOCK_WAIT_MS;
    const lock = await StateLock.acquire(store.dir, { command: `wgctl ${verb}`, waitMs });
    process.once('exit', () => lock.releaseSync());
  }
  const ask = async (method: string, path: string, body?: unknown): Promise<unknown> => unwrap(await callSidecar(socket, method, path, body));

  if (verb === 'inspect') {
    const netns = required(values.netns, 'netns', 'the pod netns path, e.g. /run/netns/cni-1234');
    const type = values['tunnel-type'] ?? process.env['TUNNEL_TYPE'];
    let json: unknown;
    if (sidecar !== null) {
      json = ((await ask('POST', '/v1/inspect', { netns, ...(type === undefined ? {} : { tunnelType: type }), ...(values.pod ? { pod: values.pod } : {}) })) as {
        podNetwork: unknown;
      }).podNetwork;
    } else {
      json = podNetworkToJson(await workerDriver(registry, type ?? 'wireguard', 'tunnel-type').inspect(netns));
    }
    const text = JSON.stringify(json, null, 2) + '\n';
    // Atomic and 0600 even over an existing file: it holds the pod VM's private key.
    if (values.output !== undefined) await writeAtomic(values.output, text, 0o600);
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
    const raw = await readConfig(required(values.config, 'config', 'the pod-network JSON from inspect'));
    const pn = parsePodNetwork(raw, { vmPrivateKey: 'optional' });
    let device: string;
    if (sidecar !== null) {
      device = ((await ask('POST', '/v1/setup', { netns, podVmIPs: ips, podNetwork: raw })) as { device: string }).device;
    } else {
      device = (await workerDriver(registry, pn.tunnel.type).setup({ netns, podVmIPs: ips, podNetwork: pn })).device;
    }
    rt.log.info({ netns, device, op: 'setup' }, 'tunnel set up');
    process.stdout.write(`tunnel ${device} set up in ${netns} to ${ips[0] ?? ''}\n`);
  } else if (verb === 'teardown') {
    const netns = required(values.netns, 'netns', 'the pod netns path');
    const pn = values.config === undefined ? null : parsePodNetwork(await readConfig(values.config), { vmPrivateKey: 'optional' });
    if (sidecar !== null) {
      await ask('POST', '/v1/teardown', { netns });
    } else {
      const rec = await store.read(podIdOf(netns)).catch(() => null);
      const type = rec?.tunnelType ?? pn?.tunnel.type;
      // Without a record or a config, every driver removes whatever it may have left: all are idempotent.
      const types = type === undefined ? TUNNEL_TYPES.filter((t) => registry[t].worker !== undefined) : [type];
      for (const t of types) await workerDriver(registry, t).teardown({ netns });
    }
    rt.log.info({ netns, op: 'teardown' }, 'tunnel torn down');
    process.stdout.write(`tunnel for ${netns} torn down\n`);
  } else {
    const now = Math.floor(Date.now() / 1000);
    const one = positionals[1];
    let rows: (TunnelStatus & { pod?: string })[];
    if (sidecar !== null) {
      rows = (await ask('GET', '/v1/status')) as (TunnelStatus & { pod: string })[];
    } else {
      if (values.direct !== true) process.stderr.write(`the sidecar is not running (nothing answers on ${socket}); reading the state folder directly\n`);
      const records = await store.list();
      rows = (await tunnelStatus(records, { backend: rt.backend, netns: rt.netns }, now)).map((r, i) => ({ pod: records[i]?.pod ?? '', ...r }));
      rows.push(...problemRows(await store.problems()));
    }
    if (one !== undefined) {
      const row = rows.find((r) => r.pod === one || r.netns === one || r.device === one);
      if (row === undefined) throw new PeerpodError('ENOTFOUND', `no tunnel for pod, netns or device "${one}"`, { field: 'pod' });
      if (values.json === true) process.stdout.write(JSON.stringify(row, null, 2) + '\n');
      else process.stdout.write(formatStatusDetail(row, now));
    } else if (values.json === true) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    } else {
      process.stdout.write(formatStatusTable(rows, now));
    }
  }
  await rt.backend.close();
}

main(process.argv.slice(2)).catch(fail);
