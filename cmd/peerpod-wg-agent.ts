#!/usr/bin/env node
// peerpod-wg-agent: the pod-VM side. Reads apf.json as CAA's process-user-data writes it and brings
// up (or removes) the WireGuard end of the pod's tunnel inside the VM's pod netns.
import { readFile } from 'node:fs/promises';
import { PeerpodError } from '../src/errors.js';
import { parseApfDocument, parseApfJson, type ApfDocument } from '../src/podnetwork/schema.js';
import { podVmDriver, type TunnelRegistry } from '../src/tunnel/registry.js';
import { VxlanPodVmDriver } from '../src/tunnel/vxlan/podvm.js';
import { WireguardPodVmDriver } from '../src/tunnel/wireguard/podvm.js';
import { fail, makeRuntime, parseFlags, pickVerb } from './wiring.js';

const DEFAULT_APF = '/run/peerpod/apf.json';
const DEFAULT_POD_NETNS = '/run/netns/podns';

const HELP = `peerpod-wg-agent: the pod-VM end of a peer pod's tunnel (wireguard, or vxlan as CAA does it)

Usage:
  peerpod-wg-agent setup    [--config <apf.json>|-] [--pod-netns <path>] [--interface-only]
  peerpod-wg-agent teardown [--config <apf.json>|-] [--pod-netns <path>]

setup     Creates the WireGuard device in this (root) netns listening on the pod-network's
          wireguard.listen-port, moves it into the pod netns under the pod's interface name, and
          sets the pod IP, MTU and routes. Re-running it adopts a device already in place.
teardown  Removes that device. Idempotent.

Under CAA's podnode (TUNNEL_TYPE=wireguard with CAA's Go driver), agent-protocol-forwarder runs
this agent through the pod-node tunneler: \`setup --interface-only --config -\` with the
pod-network on stdin. CAA adds the routes and neighbours itself right after, so the agent must
not (the systemd unit is then not used).

Options:
  --config FILE     apf.json as CAA writes it, or a bare pod-network object; - reads it from
                    stdin (default ${DEFAULT_APF}; when that default is absent, the userdata
                    is read directly, as with --userdata)
  --interface-only  bring up the interface with the pod IP and MTU only: no routes, no
                    neighbours (they are the caller's: CAA's podnode adds them)
  --userdata        read apf.json from the userdata: the NoCloud seed (/media/cidata/user-data),
                    then Azure IMDS, then AWS IMDSv2, retrying every 5 s for up to 3 min
  --pod-netns PATH  the pod netns (default ${DEFAULT_POD_NETNS})
  --run-dir DIR     pid and log files of wireguard-go (env WG_RUN_DIR, default /run/peerpod-wg)
  --backend B       auto | userspace | kernel (env WG_BACKEND, default auto)
  --log-level L     pino level for the JSON logs on stderr (env LOG_LEVEL, default warn)
  --version         print the version
  -h, --help        this text

Exit codes: 0 success, 1 failure, 2 bad input.
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** apf.json, or the bare pod-network object that CAA's pod-node tunneler hands over. */
function parseApfOrPodNetwork(text: string, source: string): ApfDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return parseApfJson(text, source); // its error says where the fault is, without quoting it
  }
  const bare = typeof json === 'object' && json !== null && !Array.isArray(json) && !('pod-network' in json);
  return parseApfDocument(bare ? { 'pod-network': json } : json);
}

/**
 * apf.json from --config; or, when it was not given and /run/peerpod/apf.json is absent (no
 * process-user-data on this image), straight from the userdata sources in CAA's order.
 */
async function loadApf(config: string | undefined, fromUserdata: boolean) {
  if (!fromUserdata) {
    const path = config ?? DEFAULT_APF;
    try {
      const text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
      return parseApfOrPodNetwork(text, path === '-' ? 'stdin' : path);
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      if (!missing || config !== undefined) {
        if (missing) throw new PeerpodError('EINVAL', `cannot read --config ${path}: no such file`, { field: 'config' }, e);
        throw e;
      }
    }
  }
  // Loaded only here: the userdata readers are not needed when apf.json is on disk.
  const { fetchApfFromUserdata } = await import('../src/userdata/index.js');
  return (await fetchApfFromUserdata()).document;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      userdata: { type: 'boolean' },
      'pod-netns': { type: 'string' },
      'run-dir': { type: 'string' },
      backend: { type: 'string' },
      'log-level': { type: 'string' },
      'interface-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  const verb = pickVerb({ name: 'peerpod-wg-agent', help: HELP, verbs: ['setup', 'teardown'] }, values, positionals);
  if (verb === undefined) return;
  const apf = await loadApf(values.config, values.userdata === true);
  const rt = makeRuntime({
    name: 'peerpod-wg-agent',
    side: 'pod-vm',
    runDir: values['run-dir'],
    backend: values.backend,
    logLevel: values['log-level'],
  });
  const registry: TunnelRegistry = {
    wireguard: { podVm: () => new WireguardPodVmDriver({ backend: rt.backend, netns: rt.netns }) },
    vxlan: { podVm: () => new VxlanPodVmDriver({ netns: rt.netns }) },
  };
  const driver = podVmDriver(registry, apf.podNetwork.tunnel.type, 'pod-network.tunnel-type');
  const podNetns = values['pod-netns'] ?? DEFAULT_POD_NETNS;
  const req = { podNetns, podNetwork: apf.podNetwork, interfaceOnly: values['interface-only'] === true };
  const who = { pod: `${apf.podNamespace ?? ''}/${apf.podName ?? ''}`, netns: podNetns };
  if (verb === 'setup') {
    const r = await driver.setup(req);
    rt.log.info({ ...who, device: r.device, iface: r.interface, mtu: r.mtu, adopted: r.adopted }, 'pod VM tunnel up');
    process.stdout.write(`${r.adopted ? 'adopted' : 'created'} ${r.interface} (mtu ${r.mtu}) in ${podNetns}\n`);
  } else {
    await driver.teardown(req);
    rt.log.info(who, 'pod VM tunnel removed');
    process.stdout.write(`removed the tunnel of ${podNetns}\n`);
  }
  await rt.backend.close();
}

main(process.argv.slice(2)).catch(fail);
