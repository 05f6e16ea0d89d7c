// One qemu guest: start it (inside a network namespace, on a TAP made there first), follow its
// serial console for the markers the image's /init prints, run commands through the lab control
// channel (the second serial port), and stop it. The guest is the process we spawned and nothing
// else: every signal goes to that pid after /proc says it is still our qemu.
//
// Why these flags (measured, see docs/podvm.md): TCG, because /dev/kvm here is PVM-backed and runs
// only PVM guest kernels (KVM only where kvm_intel/kvm_amd is loaded); `-cpu qemu64`, because with
// `max` the guest picks instructions TCG emulates slowly; a 32 MB translation cache, which keeps the
// host RSS near 230 MB. Building the image and the seed, and the TAP's lifetime, are
// local-provider.ts's job.
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError } from '../../errors.js';
import type { ProcessExit, SpawnedProcess, Spawner } from '../../spawn.js';
import { isLiveProcess } from '../../process-identity.js';
import { AGENT_FAILED, AGENT_READY, CONTROL_PROTOCOL, GUEST_ERROR, MARK } from './guest-protocol.js';

export const QEMU = 'qemu-system-x86_64';
/**
 * Guest RAM. The initramfs (~95 MB, mostly node) is unpacked into RAM while its packed copy is still
 * there: at 256 MB the unpacking ran out of memory, 320 MB was slow, 384 MB boots normally and
 * leaves ~220 MB free once the agent is up.
 */
export const DEFAULT_GUEST_MIB = 384;
/** The virtio-serial port of the lab command channel; the kernel command line names it (peerpod.ctl=). */
export const CONTROL_PORT_NAME = 'peerpod.ctl';

export interface QemuGuestOptions {
  /** Starts qemu (under `ip netns exec` when `netns` is set). */
  spawner: Spawner;
  /** Runs qemu under `ip netns exec <netns>`, so the TAP it opens is that namespace's; absent: our own netns. */
  netns?: string;
  /** The guest's NIC on a TAP; absent: no NIC (a guest whose whole network is its own namespaces). */
  tap?: string;
  mac?: string;
  kernel: string;
  initrd: string;
  /** Kernel command line. */
  append: string;
  /** The NoCloud seed ISO, attached as a cdrom; absent: none. */
  seedIso?: string;
  /** Unix socket path of the lab command channel (a virtio-serial port); none when absent. */
  controlSocket?: string;
  /** A host folder over virtiofs: the socket of a running virtiofsd, and the tag the guest mounts. */
  virtiofs?: { socket: string; tag: string };
  memoryMiB?: number;
  /** vCPUs (default 1; TCG runs each on its own host thread). */
  cpus?: number;
  /** Every console line, for logs or a console file. */
  onConsole?: (line: string) => void;
}

export interface GuestMarks {
  /** ms after spawn at which each marker line arrived, by name ("init", "modules", …, "ready"). */
  hostMs: Record<string, number>;
  /** Guest uptime in seconds printed with each PEERPOD-MARK. */
  guestS: Record<string, number>;
}

/** Whether KVM would work for a stock kernel: only with a real (not PVM) KVM module loaded. */
export function kvmUsable(): boolean {
  if (!existsSync('/dev/kvm')) return false;
  try {
    const mods = readFileSync('/proc/modules', 'utf8');
    return /^kvm_(intel|amd) /m.test(mods);
  } catch {
    return false;
  }
}

/** The qemu argv (pure). */
export function qemuArgv(o: Omit<QemuGuestOptions, 'spawner'>, accel: 'kvm' | 'tcg'): string[] {
  const argv = [
    QEMU,
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-machine', 'pc',
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,tb-size=32', '-cpu', 'qemu64']),
    '-smp', String(o.cpus ?? 1),
    '-m', `${o.memoryMiB ?? DEFAULT_GUEST_MIB}M`,
    // virtiofs (vhost-user) needs the guest's RAM shared with virtiofsd.
    ...(o.virtiofs === undefined
      ? []
      : ['-object', `memory-backend-memfd,id=mem,size=${o.memoryMiB ?? DEFAULT_GUEST_MIB}M,share=on`, '-numa', 'node,memdev=mem']),
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    '-append', o.append,
    '-chardev', 'stdio,id=con,signal=off',
    '-serial', 'chardev:con',
  ];
  if (o.controlSocket !== undefined) {
    argv.push(
      '-device', 'virtio-serial-pci,id=vser0',
      '-chardev', `socket,id=ctl,path=${o.controlSocket},server=on,wait=off`,
      '-device', `virtserialport,bus=vser0.0,chardev=ctl,name=${CONTROL_PORT_NAME}`,
    );
  }
  if (o.tap !== undefined) {
    argv.push(
      '-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
      // romfile= : no iPXE option ROM; we boot the kernel directly.
      '-device', `virtio-net-pci,netdev=n0${o.mac === undefined ? '' : `,mac=${o.mac}`},romfile=`,
    );
  }
  if (o.seedIso !== undefined) {
    argv.push(
      '-device', 'virtio-scsi-pci,id=scsi0',
      '-drive', `if=none,id=seed,file=${o.seedIso},format=raw,media=cdrom,readonly=on`,
      '-device', 'scsi-cd,drive=seed,bus=scsi0.0',
    );
  }
  if (o.virtiofs !== undefined) {
    argv.push('-chardev', `socket,id=fs0,path=${o.virtiofs.socket}`, '-device', `vhost-user-fs-pci,chardev=fs0,tag=${o.virtiofs.tag}`);
  }
  argv.push('-device', 'virtio-rng-pci', '-no-reboot');
  return argv;
}

export class QemuGuest {
  readonly options: QemuGuestOptions;
  readonly accel: 'kvm' | 'tcg';
  readonly marks: GuestMarks = { hostMs: {}, guestS: {} };
  readonly console: string[] = [];
  #child: SpawnedProcess | null = null;
  #startedAt = 0;
  #exit: ProcessExit | null = null;
  #waiters: (() => void)[] = [];
  #control: Socket | null = null;
  #connecting: Promise<Socket> | null = null;
  #controlBuf = '';
  #controlReady = false;
  #pending = new Map<string, (r: { code: number; output: string }) => void>();
  #seq = 0;

  constructor(options: QemuGuestOptions) {
    this.options = options;
    this.accel = kvmUsable() ? 'kvm' : 'tcg';
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get startedAt(): number {
    return this.#startedAt;
  }

  get exited(): boolean {
    return this.#exit !== null;
  }

  /** Start qemu; a qemu that cannot be started is reported as one that exited at once (console, exited). */
  async start(): Promise<void> {
    const qemu = qemuArgv(this.options, this.accel);
    const argv = this.options.netns === undefined ? qemu : ['ip', 'netns', 'exec', this.options.netns, ...qemu];
    this.#startedAt = Date.now();
    let buf = '';
    const onData = (b: Buffer): void => {
      buf += b.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        this.#line(line);
      }
    };
    const onStderr = (b: Buffer): void => {
      for (const line of b.toString('utf8').split('\n').filter((l) => l.trim() !== '')) this.#line(`[qemu] ${line}`);
    };
    // Through the spawner, not exec: the guest outlives any timeout; stop() ends it by this handle.
    try {
      this.#child = await this.options.spawner.spawn(argv, { stdout: onData, stderr: onStderr });
    } catch (e) {
      this.#line(`[qemu] ${e instanceof Error ? e.message : String(e)}`);
      this.#exit = { code: -1, signal: null };
      this.#wake();
      return;
    }
    if (this.options.controlSocket !== undefined) void this.#connect().catch(() => undefined);
    void this.#child.exited.then((exit) => {
      this.#exit = exit;
      this.#wake();
    });
  }

  #line(line: string): void {
    this.console.push(line);
    if (this.console.length > 5000) this.console.shift();
    this.options.onConsole?.(line);
    const t = Date.now() - this.#startedAt;
    const m = new RegExp(`^${MARK} (\\S+) ([0-9.]+)`).exec(line);
    if (m?.[1] !== undefined) {
      this.marks.hostMs[m[1]] ??= t;
      this.marks.guestS[m[1]] ??= Number(m[2]);
    } else if (line.startsWith(AGENT_READY)) {
      this.marks.hostMs['ready'] ??= t;
    } else if (line.startsWith(AGENT_FAILED)) {
      this.marks.hostMs['failed'] ??= t;
    }
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The last console lines, for error messages. */
  tail(n = 25): string {
    return this.console.slice(-n).join('\n');
  }

  /** Wait until the agent reports ready; EBACKEND with the console tail when it fails or qemu exits. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.marks.hostMs['ready'] !== undefined) return;
      const why =
        this.marks.hostMs['failed'] !== undefined
          ? 'the agent failed in the guest'
          : this.#exit !== null
            ? `qemu exited (code ${this.#exit.code ?? 'none'}, signal ${this.#exit.signal ?? 'none'})`
            : Date.now() > deadline
              ? `the guest did not report ${AGENT_READY} within ${timeoutMs} ms`
              : null;
      if (why !== null) {
        const errors = this.console.filter((l) => l.startsWith(GUEST_ERROR));
        throw new PeerpodError('EBACKEND', `pod VM: ${why}${errors.length > 0 ? `; ${errors.join('; ')}` : ''}\n--- console tail ---\n${this.tail()}`, {
          op: 'boot',
          netns: this.options.netns ?? 'host',
        });
      }
      await this.#changed(Math.max(1, Math.min(500, deadline - Date.now())));
    }
  }

  /** Run a shell command in the guest (lab images only); resolves with its exit code and output. */
  async run(command: string, timeoutMs = 30_000): Promise<{ code: number; output: string }> {
    const sock = await this.#openControl(timeoutMs);
    const id = `c${++this.#seq}`;
    const done = new Promise<{ code: number; output: string }>((resolve) => this.#pending.set(id, resolve));
    sock.write(`${CONTROL_PROTOCOL.command} ${id} ${Buffer.from(command, 'utf8').toString('base64')}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PeerpodError('EEXEC', `guest command timed out after ${timeoutMs} ms: ${command.slice(0, 80)}`, { op: 'guest-run' })),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
  }

  /**
   * Connect to the control socket once, as soon as qemu has made it: the guest's port reads EOF
   * while no host is connected, so connecting early lets the guest say ready at once.
   */
  #connect(): Promise<Socket> {
    const path = this.options.controlSocket;
    if (path === undefined) return Promise.reject(new PeerpodError('EUNSUPPORTED', 'this guest was started without a control channel', { op: 'guest-run' }));
    this.#connecting ??= (async () => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (this.#exit !== null) throw new PeerpodError('EBACKEND', 'qemu has exited', { op: 'guest-run' });
        try {
          const s = await new Promise<Socket>((resolve, reject) => {
            const c = connect(path);
            c.once('connect', () => resolve(c));
            c.once('error', reject);
          });
          s.on('data', (b: Buffer) => this.#controlData(b));
          s.on('error', () => undefined);
          this.#control = s;
          return s;
        } catch {
          if (Date.now() > deadline) throw new PeerpodError('EBACKEND', `cannot connect to the guest control socket ${path}`, { op: 'guest-run' });
          await sleep(50);
        }
      }
    })();
    return this.#connecting;
  }

  async #openControl(timeoutMs: number): Promise<Socket> {
    const deadline = Date.now() + timeoutMs;
    const sock = await this.#connect();
    while (!this.#controlReady) {
      if (Date.now() > deadline || this.#exit !== null) {
        throw new PeerpodError('EBACKEND', `the guest control channel did not say ${CONTROL_PROTOCOL.ready}\n${this.tail()}`, { op: 'guest-run' });
      }
      await this.#changed(200);
    }
    return sock;
  }

  #controlData(b: Buffer): void {
    this.#controlBuf += b.toString('utf8');
    let nl: number;
    while ((nl = this.#controlBuf.indexOf('\n')) >= 0) {
      const line = this.#controlBuf.slice(0, nl).replace(/\r$/, '');
      this.#controlBuf = this.#controlBuf.slice(nl + 1);
      if (process.env['PEERPOD_DEBUG_CTL']) this.#line(`[ctl] ${line.slice(0, 100)}`);
      if (line.includes(CONTROL_PROTOCOL.ready)) {
        this.#controlReady = true;
        this.#wake();
        continue;
      }
      const m = new RegExp(`${CONTROL_PROTOCOL.result} (\\S+) (\\d+) ?(\\S*)`).exec(line);
      if (m?.[1] !== undefined) {
        this.#pending.get(m[1])?.({ code: Number(m[2]), output: Buffer.from(m[3] ?? '', 'base64').toString('utf8') });
      }
    }
  }

  /** Stop the guest: SIGTERM (qemu exits at once), then SIGKILL; only while /proc says it is our qemu. */
  async stop(): Promise<void> {
    this.#control?.destroy();
    this.#control = null;
    const child = this.#child;
    if (child === null) return;
    for (const [signal, graceMs] of [
      ['SIGTERM', 5_000],
      ['SIGKILL', 5_000],
    ] as const) {
      // Until ip has exec'd qemu, the pid is still called ip; either way it is our unreaped child.
      if (this.#exit !== null || !((await isLiveProcess(child.pid, { comm: QEMU })) || (await isLiveProcess(child.pid, { comm: 'ip' })))) break;
      child.kill(signal);
      const deadline = Date.now() + graceMs;
      while (this.#exit === null && Date.now() < deadline) await this.#changed(100);
    }
    if (this.#exit === null && (await isLiveProcess(child.pid, { comm: QEMU }))) {
      throw new PeerpodError('EBACKEND', `qemu (pid ${child.pid}) did not exit, not even after SIGKILL`, { op: 'stop', pid: child.pid });
    }
  }
}
