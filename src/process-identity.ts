// Whether a pid is still the process we started, read from /proc: alive (no zombie), with the same
// command name, start time or arguments. A pid is reused once its process is reaped, so every
// signal we send to a long-lived child (qemu, wireguard-go, virtiofsd) and every takeover of a
// lock asks here first. Reading only: what to do with the answer (signal, wait, take over) stays
// with the caller. Linux only; the caller must share the pid namespace it asks about.
import { readFile, readdir } from 'node:fs/promises';

/** What /proc/<pid>/stat says about a process (field numbers as in proc(5)). */
export interface ProcessStat {
  /** Field 2: the command name as the kernel keeps it, the executable's base name cut to 15 characters. */
  comm: string;
  /** Field 3: R, S, D, Z (zombie), X (dead), … */
  state: string;
  /** Field 22: clock ticks after boot. With the pid it names one process for the machine's uptime. */
  startTime: string;
  /** The fields after the command name: field n is fields[n - 3]. */
  fields: string[];
}

/** What `match` a live process must have; absent fields are not compared. */
export interface ProcessMatch {
  /** The executable's base name (compared as the kernel keeps it, cut to 15 characters). */
  comm?: string;
  /** Its start time when it was ours (processStartTime). */
  startTime?: string;
  /** A test on its arguments, argv[0] included (empty once an exiting process released its memory). */
  args?: (argv: readonly string[]) => boolean;
}

/** The text of a /proc/<pid>/stat file, parsed; null when it is none. */
export function parseProcStat(text: string): ProcessStat | null {
  // The command name is in parentheses and may itself hold ')' or spaces: the fields follow the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const fields = text.slice(close + 2).trimEnd().split(' ');
  const state = fields[0] ?? '';
  if (state === '') return null;
  return { comm: text.slice(open + 1, close), state, startTime: fields[19] ?? '', fields };
}

function isAlive(state: string): boolean {
  return state !== 'Z' && state !== 'X';
}

/** The stat of `pid` (or of its thread `tid`); null when there is no such process. */
export async function processStat(pid: number, tid?: number | string): Promise<ProcessStat | null> {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  try {
    return parseProcStat(await readFile(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The arguments `pid` was started with (argv[0] first); null when there is no such process. */
export async function processArgs(pid: number): Promise<string[] | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  return text === '' ? [] : text.replace(/\0$/, '').split('\0');
}

/** The start time of `pid` while it is alive (not a zombie), or null: what a lock records of its holder. */
export async function processStartTime(pid: number): Promise<string | null> {
  const stat = await processStat(pid);
  return stat === null || !isAlive(stat.state) || stat.startTime === '' ? null : stat.startTime;
}

/** Whether `pid` is alive (not a zombie) and has all of `match`: still the process we started. */
export async function isLiveProcess(pid: number, match: ProcessMatch): Promise<boolean> {
  const stat = await processStat(pid);
  if (stat === null || !isAlive(stat.state)) return false;
  if (match.comm !== undefined && stat.comm !== match.comm.slice(0, 15)) return false;
  if (match.startTime !== undefined && stat.startTime !== match.startTime) return false;
  if (match.args === undefined) return true;
  const argv = await processArgs(pid);
  return argv !== null && match.args(argv);
}

/**
 * How many threads of `pid` still run (neither zombie nor dead): 0 once it has fully exited. While
 * a multi-threaded daemon exits, its main thread can be a zombie while others still hold its files.
 */
export async function liveThreadCount(pid: number): Promise<number> {
  let tids: string[];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  const stats = await Promise.all(tids.map((tid) => processStat(pid, tid)));
  return stats.filter((s) => s !== null && isAlive(s.state)).length;
}
