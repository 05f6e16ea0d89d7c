// The sidecar as a real process inside the lab's worker host netns, for the lab tests and the
// benchmark: start it with its own state, socket and log, wait until it is ready, stop it by the
// pid we started (SIGTERM leaves the tunnels up, SIGKILL simulates a crash), and remove the
// wireguard-go daemons it leaves behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { realExec } from '../src/exec.js';
import { realSpawner } from '../src/spawn.js';
import { callSidecar } from '../src/sidecar/client.js';
import { podVmDeviceName } from '../src/tunnel/wireguard/names.js';
import { PublicKey } from '../src/wireguard/keys.js';
import { UserspaceBackend } from '../src/wireguard/userspace/backend.js';
import type { LabFlow } from './flow.js';
import type { Lab } from './lab.js';

export const SIDECAR = fileURLToPath(new URL('../cmd/peerpod-wg-sidecar.js', import.meta.url));

export class LabSidecar {
  readonly socket: string;
  readonly logPath: string;
  readonly stateDir: string;
  readonly runDir: string;
  #child: ChildProcess | null = null;

  constructor(
    readonly lab: Lab,
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv = {},
  ) {
    this.socket = join(dir, 'sidecar.sock');
    this.logPath = join(dir, 'sidecar.log');
    this.stateDir = join(dir, 'state');
    this.runDir = join(dir, 'run');
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    const fd = openSync(this.logPath, 'a');
    this.#child = spawn('ip', ['netns', 'exec', this.lab.ns.worker, process.execPath, SIDECAR], {
      env: { ...process.env, WG_SOCKET: this.socket, WG_STATE_DIR: this.stateDir, WG_RUN_DIR: this.runDir, LOG_LEVEL: 'debug', ...this.env },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    for (let i = 0; i < 400; i++) {
      const ok = await callSidecar(this.socket, 'GET', '/readyz', undefined, 1000).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (this.#child.exitCode !== null) throw new Error(`the sidecar exited with ${this.#child.exitCode}; see ${this.logPath}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the sidecar did not become ready');
  }

  /** `ip netns exec` execs node, so the child's pid is the sidecar's own. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.#child;
    this.#child = null;
    if (p === null || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }

  /**
   * Best effort, after stop() (a running sidecar would make them again): remove the wireguard-go
   * daemons that outlive it, the worker's by this state folder's records and each pod VM's by its
   * flow's worker key. Kernel devices need none of this; they die with their namespaces.
   */
  async removeDaemons(flows: readonly LabFlow[]): Promise<void> {
    const worker = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: this.runDir });
    for (const id of await readdir(join(this.stateDir, 'pods')).catch(() => [] as string[])) {
      await worker.remove(`pwg${id}`).catch(() => undefined);
    }
    for (const f of flows) {
      const key = (f.podNetworkJson['wireguard'] as Record<string, string> | undefined)?.['peer-public-key'];
      if (key === undefined) continue;
      const vm = new UserspaceBackend({ exec: realExec, spawner: realSpawner, runDir: f.vmRunDir });
      await vm.remove(podVmDeviceName(PublicKey.fromBase64(key))).catch(() => undefined);
    }
  }
}
