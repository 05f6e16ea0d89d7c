#!/usr/bin/env node
// peerpod-wg-agent: the pod-VM side. Reads apf.json as CAA's process-user-data writes it and brings
// up (or removes) the WireGuard end of the pod's tunnel inside the VM's pod netns.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { PeerpodError } from '../src/errors.js';
import { parseApfJson } from '../src/podnetwork/schema.js';
import { podVmDriver, type TunnelRegistry } from '../src/tunnel/registry.js';
import { VxlanPodVmDriver } from '../src/tunnel/vxlan/podvm.js';
import { WireguardPodVmDriver } from '../src/tunnel/wireguard/podvm.js';
import { fail, makeRuntime } from './wiring.js';

const DEFAULT_APF = '/run/peerpod/apf.json';
const DEFAULT_POD_NETNS = '/run/netns/podns';

const HELP = `peerpod-wg-agent: the pod-VM end of a peer pod's tunnel (wireguard, or vxlan as CAA does it)

Usage:
  peerpod-wg-agent setup    [--config <apf.json>] [--pod-netns <path>]
  peerpod-wg-agent teardown [--config <apf.json>] [--pod-netns <path>]

setup     Creates the WireGuard device in this (root) netns listening on the pod-network's
          wireguard.listen-port, moves it into the pod netns under the pod's interface name, and
          sets the pod IP, MTU and routes. Re-running it adopts a device already in place.
teardown  Removes that device. Idempotent.

Options:
  --config FILE     apf.json as CAA writes it (default ${DEFAULT_APF})
  --pod-netns PATH  the pod netns (default ${DEFAULT_POD_NETNS})
  --run-dir DIR     pid and log files of wireguard-go (env WG_RUN_DIR, default /run/peerpod-wg)
  --backend B       auto | userspace | kernel (env WG_BACKEND, default auto)
  --log-level L     pino level for the JSON logs on stderr (env LOG_LEVEL, default warn)
  -h, --help        this text

Exit codes: 0 success, 1 failure, 2 bad input.
`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      'pod-netns': { type: 'string' },
      'run-dir': { type: 'string' },
      backend: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb] = positionals;
  if (values.help === true || verb === undefined || verb === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (verb !== 'setup' && verb !== 'teardown') {
    throw new PeerpodError('EINVAL', `unknown command "${verb}": valid commands are setup, teardown`);
  }
  const configPath = values.config ?? DEFAULT_APF;
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (e) {
    throw new PeerpodError('EINVAL', `cannot read --config ${configPath}`, { field: 'config' }, e);
  }
  const apf = parseApfJson(text, configPath);
  const rt = makeRuntime({
    name: 'peerpod-wg-agent',
    ...(values['run-dir'] === undefined ? {} : { runDir: values['run-dir'] }),
    ...(values.backend === undefined ? {} : { backend: values.backend }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  });
  const registry: TunnelRegistry = {
    wireguard: { podVm: () => new WireguardPodVmDriver({ backend: rt.backend, netns: rt.netns }) },
    vxlan: { podVm: () => new VxlanPodVmDriver({ netns: rt.netns }) },
  };
  const driver = podVmDriver(registry, apf.podNetwork.tunnel.type, 'pod-network.tunnel-type');
  const podNetns = values['pod-netns'] ?? DEFAULT_POD_NETNS;
  const req = { podNetns, podNetwork: apf.podNetwork };
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
