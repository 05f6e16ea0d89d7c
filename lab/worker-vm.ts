// A qemu guest that plays the worker node, for the lab: this host has no WireGuard module, the
// guest's Debian cloud kernel has one. The host's project folder is shared over virtiofs at the
// same path (virtiofsd, the C daemon qemu 7.2 ships), so inside the guest `node dist/…` runs what
// the host built; the guest's network is only its own namespaces (no NIC), so nothing it does
// reaches the host's. Commands run through the lab command channel (QemuGuest.run).
//
//   host: virtiofsd (the project folder) ══ qemu (TCG) ══ guest: /init, modules, the same folder mounted
//                                                         namespaces, sidecar, wgctl, kernel WireGuard
//
// Everything started here is stopped by stop(): qemu and virtiofsd by the pids we spawned (after
// /proc says they are still ours), and the folder with the sockets and the console log.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError } from '../src/errors.js';
import type { Exec } from '../src/exec.js';
import { realSpawner, type SpawnedProcess } from '../src/spawn.js';
import { buildWorkerVmImage, WORKER_SHARE_TAG, type WorkerVmImage } from '../tools/podvm-image/worker-image.js';
import { isLiveProcess } from '../src/process-identity.js';
import { QemuGuest } from '../src/provider/local/qemu.js';
import { qemuUnavailable } from './lab-vm.js';

export const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

/** Why a worker guest cannot run here, or null. */
export function workerVmUnavailable(): string | null {
  const why = qemuUnavailable();
  if (why !== null) return why;
  if (!existsSync(VIRTIOFSD)) return `${VIRTIOFSD} is missing (Debian's qemu-system-common 7.2 ships it)`;
  return null;
}

export interface WorkerVm {
  guest: QemuGuest;
  image: WorkerVmImage;
  /** Boot time, ms from qemu start to the guest's ready marker. */
  bootMs: number;
  stop(): Promise<void>;
}

export interface StartWorkerVmOptions {
  exec: Exec;
  /** The folder to share, mounted at the same path in the guest. */
  projectRoot: string;
  memoryMiB?: number;
  cpus?: number;
  readyTimeoutMs?: number;
  onConsole?: (line: string) => void;
}

export async function startWorkerVm(opts: StartWorkerVmOptions): Promise<WorkerVm> {
  const why = workerVmUnavailable();
  if (why !== null) throw new PeerpodError('EUNSUPPORTED', `no worker guest: ${why}`, { op: 'start-worker-vm' });
  const image = await buildWorkerVmImage({ exec: opts.exec, projectRoot: opts.projectRoot });
  const dir = await mkdtemp('/run/peerpod-worker-vm-');
  const fsSocket = join(dir, 'virtiofs.sock');
  let fsd: SpawnedProcess | null = null;
  let guest: QemuGuest | null = null;
  const stop = async (): Promise<void> => {
    await guest?.stop().catch(() => undefined);
    const p = fsd;
    if (p !== null && p.exit === null && (await isLiveProcess(p.pid, { comm: 'virtiofsd' }))) {
      p.kill('SIGTERM');
      await Promise.race([p.exited, sleep(5_000)]);
      if (p.exit === null && (await isLiveProcess(p.pid, { comm: 'virtiofsd' }))) p.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Through the spawner, not exec: it lives as long as the guest; stop() ends it by this handle.
    let fsErr = '';
    fsd = await realSpawner.spawn([VIRTIOFSD, `--socket-path=${fsSocket}`, '-o', `source=${opts.projectRoot}`, '-o', 'cache=auto'], {
      stderr: (b) => (fsErr = (fsErr + b.toString()).slice(-2000)),
    });
    for (let i = 0; i < 100 && !existsSync(fsSocket); i++) {
      if (fsd.exit !== null) throw new PeerpodError('EBACKEND', `virtiofsd exited: ${fsErr}`, { op: 'start-worker-vm' });
      await sleep(50);
    }
    const memoryMiB = opts.memoryMiB ?? 1536;
    guest = new QemuGuest({
      spawner: realSpawner,
      kernel: image.kernel,
      initrd: image.initrd,
      append: 'console=ttyS0 quiet loglevel=4 panic=-1 peerpod.ctl=peerpod.ctl',
      controlSocket: join(dir, 'ctl.sock'),
      virtiofs: { socket: fsSocket, tag: WORKER_SHARE_TAG },
      memoryMiB,
      cpus: opts.cpus ?? 2,
      ...(opts.onConsole === undefined ? {} : { onConsole: opts.onConsole }),
    });
    await guest.start();
    await guest.waitReady(opts.readyTimeoutMs ?? 120_000);
    return { guest, image, bootMs: guest.marks.hostMs['ready'] ?? 0, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
