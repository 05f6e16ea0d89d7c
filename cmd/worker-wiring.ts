// The worker side's composition root, shared by wgctl (direct mode) and the sidecar: the state
// folder and the worker drivers of every tunnel type, built on a Runtime (./wiring.ts).
import { checkedPodStore } from '../src/state/phase.js';
import { FilePodStore, type PodStore } from '../src/state/store.js';
import type { TunnelRegistry } from '../src/tunnel/registry.js';
import { VxlanWorkerDriver } from '../src/tunnel/vxlan/worker.js';
import { WireguardWorkerDriver, type SetupStep } from '../src/tunnel/wireguard/worker.js';
import type { Runtime } from './wiring.js';

export interface WorkerOptions {
  stateDir: string;
  listenPort?: number;
  keepalive?: number;
  maxMtu?: number;
  vxlanPort?: number;
  vxlanMinId?: number;
  /** Where VXLAN looks for pod netns when choosing a VNI (default /run/netns); null: records only. */
  vxlanNetnsDir?: string | null;
  onStep?: (step: SetupStep) => void;
}

export interface Worker {
  registry: TunnelRegistry;
  wireguard: WireguardWorkerDriver;
  /** The state folder, every record write checked against the pod state machine (src/state/phase.ts). */
  store: PodStore;
}

/** The worker side's drivers and state, shared by wgctl (direct mode) and the sidecar. */
export function makeWorker(rt: Runtime, o: WorkerOptions): Worker {
  const store = checkedPodStore(
    new FilePodStore(o.stateDir, {
      onProblem: (p) => rt.log.error({ pod: p.id, file: p.file, problem: p.problem }, 'a pod record could not be used'),
    }),
  );
  const wireguard = new WireguardWorkerDriver(
    {
      backend: rt.backend,
      netns: rt.netns,
      store,
      onDeviceChange: (c) => rt.log.info({ netns: c.netns, device: c.device, reasons: c.reasons }, 'WireGuard device differed from the record: rewritten'),
      ...(o.onStep ? { onStep: o.onStep } : {}),
    },
    {
      ...(o.listenPort === undefined ? {} : { listenPort: o.listenPort }),
      ...(o.keepalive === undefined ? {} : { keepalive: o.keepalive }),
      ...(o.maxMtu === undefined ? {} : { maxMtu: o.maxMtu }),
    },
  );
  const registry: TunnelRegistry = {
    wireguard: { worker: () => wireguard },
    vxlan: {
      worker: () =>
        new VxlanWorkerDriver(
          { netns: rt.netns, store },
          {
            ...(o.vxlanPort === undefined ? {} : { port: o.vxlanPort }),
            ...(o.vxlanMinId === undefined ? {} : { minId: o.vxlanMinId }),
            ...(o.vxlanNetnsDir === undefined ? {} : { netnsDir: o.vxlanNetnsDir }),
          },
        ),
    },
  };
  return { registry, wireguard, store };
}

