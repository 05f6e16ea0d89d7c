#!/usr/bin/env node
// peerpod-wg-sidecar: the long-lived worker-side daemon next to CAA. It owns the per-pod tunnels,
// serves CAA's three verbs plus status and metrics on a unix socket, reconciles on start and
// keeps tunnels healthy (src/sidecar/service.ts). Its long-running parts (the listeners, reconcile,
// the health loop, the cloud firewall rule) share one AbortSignal, which SIGTERM and SIGINT abort:
// requests in flight finish, every part stops, no timer is left, and the tunnels stay up.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname } from 'node:path';
import { describeError, PeerpodError } from '../src/errors.js';
import { createApiServer, handleRequest, parseBody } from '../src/sidecar/api.js';
import { callSidecar } from '../src/sidecar/client.js';
import { sidecarConfigFromEnv } from '../src/sidecar/config.js';
import { TunnelService } from '../src/sidecar/service.js';
import { drainServers, untilAborted } from '../src/sidecar/shutdown.js';
import { StateLock } from '../src/state/lock.js';
import { versionLine } from '../src/version.js';
import { makeCloudPortRule } from './cloud-port-wiring.js';
import { fail, makeRuntime, parseFlags } from './wiring.js';
import { makeWorker } from './worker-wiring.js';

const HELP = `peerpod-wg-sidecar: the worker-side daemon of peerpod-wireguard

Usage:
  peerpod-wg-sidecar                     the daemon (configured by environment variables only)
  peerpod-wg-sidecar call METHOD PATH    one request, without the daemon: the JSON body is read
                                         from stdin, the reply's JSON is printed on stdout; exit 0
                                         on success, 1 with the {"error": …} reply otherwise. It
                                         works in this process's own netns and state folder
                                         (CAA's tuntest: a worker netns with no daemon in it),
                                         holding the state folder's lock for that one request.
  peerpod-wg-sidecar --version | --help

Serves on the unix socket WG_SOCKET (mode 0600):
  POST /v1/configure {podNetwork, pod?, hostInterface?} → {wireguard}  (CAA's Configure)
  POST /v1/inspect {netns, tunnelType?, pod?}        → {podNetwork}
  POST /v1/setup {netns, podVmIPs: [ip,...], podNetwork} → {netns, device, tunnelType, phase}
  POST /v1/teardown {netns}                          → {ok: true}
  GET  /v1/status, GET /v1/status/<pod|netns|device>
  GET  /metrics, /healthz, /readyz
and /metrics, /healthz, /readyz also on WG_METRICS_ADDR when set. Contract: docs/sidecar.md.

Environment (all validated at start; see docs/sidecar.md):
  TUNNEL_TYPE             wireguard | vxlan: the type inspect makes (default wireguard)
  WG_PORT                 the pod VMs' UDP port (default 51900)
  WG_KEEPALIVE            PersistentKeepalive seconds, 0 disables (default 25)
  WG_MTU                  an upper bound for the tunnel MTU (default: none; derived from the underlay)
  WG_STATE_DIR            durable state and worker keys (default /var/lib/peerpod-wireguard)
  WG_RUN_DIR              wireguard-go pid and log files (default /run/peerpod-wg)
  WG_SOCKET               the API socket (default /run/peerpod-wg/sidecar.sock)
  WG_METRICS_ADDR         ip:port for metrics and health over TCP (default: off)
  WG_BACKEND              auto | userspace | kernel (default auto)
  WG_HEALTH_TICK_MS       health loop period (default 250)
  WG_IDLE_PROBE_MS        keepalive to a tunnel idle this long, so NAT rebinding heals fast;
                          0 disables (default 1000)
  WG_FAST_NUDGE_WINDOW_MS how long after setup a connecting tunnel is nudged every 250 ms
                          (default 300000; then every 5 s)
  VXLAN_PORT, VXLAN_MIN_ID  for TUNNEL_TYPE=vxlan (defaults 4789, 555000)
  LOG_LEVEL               pino level of the JSON logs on stdout (default info)

Cloud firewall rule (at start, in the background; see "Cloud firewall rule" in docs/sidecar.md):
  CLOUD_PROVIDER          aws | azure: open udp/WG_PORT from WG_WORKER_CIDR in the pod VMs'
                          security group (AWS_REGION, AWS_SG_IDS: the first group) or NSG
                          (AZURE_SUBSCRIPTION_ID, AZURE_NSG_ID, WG_NSG_PRIORITY); other values,
                          or those unset: nothing is done, and the log says why
  WG_WORKER_CIDR          the worker's egress address as the cloud sees it, e.g. 203.0.113.7/32
                          (a bare address is a /32); 0.0.0.0/0 needs WG_ALLOW_ANY_SOURCE=true
  WG_MANAGE_CLOUD_RULE    false: never touch the firewall; true: the variables above are required;
                          unset: manage the rule when they are set
  Missing permissions, throttling and timeouts are logged, shown on /readyz and as
  peerpod_wg_cloud_port_rule{provider,state}, and retried (5 s doubling to 5 min); tunnels keep
  being served meanwhile.
`;

/** How long SIGTERM waits for requests in flight (a setup takes well under a second). */
const DRAIN_MS = 20_000;

function listen(server: Server, target: string | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof target === 'string') server.listen(target, () => resolve());
    else server.listen(target.port, target.host, () => resolve());
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version === true) {
    process.stdout.write(versionLine('peerpod-wg-sidecar'));
    return;
  }
  const [verb, method, path, ...extra] = positionals;
  if (verb !== undefined && (verb !== 'call' || method === undefined || path === undefined || extra.length > 0)) {
    throw new PeerpodError('EINVAL', `unexpected arguments "${positionals.join(' ')}": expected none, or call METHOD PATH (see --help)`, {
      field: 'argv',
    });
  }
  const cfg = sidecarConfigFromEnv(process.env);
  const rt = makeRuntime({ name: 'peerpod-wg-sidecar', side: 'worker', runDir: cfg.runDir, backend: cfg.backend, logLevel: cfg.logLevel, logTo: verb === 'call' ? 2 : 1 });
  const worker = makeWorker(rt, {
    stateDir: cfg.stateDir,
    listenPort: cfg.wgPort,
    keepalive: cfg.wgKeepalive,
    ...(cfg.wgMtu === undefined ? {} : { maxMtu: cfg.wgMtu }),
    ...(cfg.vxlanPort === undefined ? {} : { vxlanPort: cfg.vxlanPort }),
    ...(cfg.vxlanMinId === undefined ? {} : { vxlanMinId: cfg.vxlanMinId }),
  });
  const service = new TunnelService({
    registry: worker.registry,
    wireguard: worker.wireguard,
    backend: rt.backend,
    netns: rt.netns,
    store: worker.store,
    log: rt.log,
    defaultTunnelType: cfg.tunnelType,
    tickMs: cfg.tickMs,
    idleProbeMs: cfg.idleProbeMs,
    fastNudgeWindowMs: cfg.fastNudgeWindowMs,
  });
  const onError = (e: unknown, route: string): void => {
    const bad = e instanceof PeerpodError && ['EINVAL', 'ENOTFOUND', 'ESTATE', 'EUNSUPPORTED'].includes(e.code);
    rt.log[bad ? 'info' : 'error']({ route, err: describeError(e) }, 'request failed');
  };

  // One sidecar (or direct wgctl, or one-shot call) per state folder; the others' commands are short.
  const lock = await StateLock.acquire(cfg.stateDir, { command: `peerpod-wg-sidecar${verb === 'call' ? ' call' : ''}`, waitMs: 30_000 });
  process.once('exit', () => lock.releaseSync());
  if (verb === 'call' && method !== undefined && path !== undefined) {
    // One request through the same handler as the socket API, then exit: no reconcile, no loops,
    // nothing of other pods touched. wireguard-go processes it starts outlive it, as with wgctl.
    const text = await readStdin();
    const reply = await handleRequest({ service, backend: rt.backend }, true, method.toUpperCase(), path, async () => parseBody(text));
    process.stdout.write((typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)) + '\n');
    await rt.backend.close();
    lock.releaseSync();
    process.exitCode = reply.status >= 200 && reply.status < 300 ? 0 : 1;
    return;
  }
  await mkdir(dirname(cfg.socket), { recursive: true, mode: 0o700 });
  if (existsSync(cfg.socket)) {
    const alive = await callSidecar(cfg.socket, 'GET', '/healthz', undefined, 2_000).then(() => true, () => false);
    if (alive) throw new PeerpodError('EBACKEND', `another sidecar already answers on ${cfg.socket}`, { op: 'start' });
    await rm(cfg.socket, { force: true });
  }
  // The daemon's long-running parts (the cloud rule, reconcile, the health loop, the listeners) stop on this one signal.
  const running = new AbortController();
  process.once('SIGTERM', () => running.abort('SIGTERM'));
  process.once('SIGINT', () => running.abort('SIGINT'));
  const cloudPortRule = makeCloudPortRule(cfg.cloudPortRule, rt.log, running.signal);
  const cloudPortStatus = () => cloudPortRule.status;
  const api = createApiServer({ service, backend: rt.backend, onError, cloudPortRule: cloudPortStatus }, true);
  await listen(api, cfg.socket);
  await chmod(cfg.socket, 0o600);
  const servers = [api];
  if (cfg.metricsAddr !== undefined) {
    const tcp = createApiServer({ service, backend: rt.backend, onError, cloudPortRule: cloudPortStatus }, false);
    await listen(tcp, cfg.metricsAddr);
    servers.push(tcp);
  }
  rt.log.info({ socket: cfg.socket, metrics: cfg.metricsAddr, tunnelType: cfg.tunnelType, backend: rt.backend.kind }, 'sidecar listening');
  const cloudPortRun = cloudPortRule.run(); // never throws; it must not hold up serving

  await service.reconcile(running.signal);
  let healthLoop = Promise.resolve();
  if (!running.signal.aborted) {
    rt.log.info({}, 'reconciled; ready');
    healthLoop = service.start(running.signal);
  }

  await untilAborted(running.signal);
  rt.log.info({ signal: running.signal.reason as unknown }, 'stopping: finishing the requests in flight; the tunnels stay up');
  const outcome = await drainServers(servers, DRAIN_MS);
  await Promise.all([healthLoop, cloudPortRun, service.idle()]);
  await rm(cfg.socket, { force: true });
  await rt.backend.close();
  await lock.release();
  rt.log.info({ outcome }, 'stopped');
  // Every part is done: the process ends by itself. Should a handle still hold it, say so and go.
  setTimeout(() => {
    rt.log.warn({}, 'something still holds the process 5 s after stopping; exiting anyway');
    process.exit(0);
  }, 5_000).unref();
}

main(process.argv.slice(2)).catch(fail);
