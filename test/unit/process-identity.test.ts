// Whether a pid is still the process we started: /proc/<pid>/stat parsed (a command name may hold
// ')' and spaces), a zombie or a gone pid is never ours, and each of comm, start time and arguments
// must match when given. Asked about this test's own process, which needs no root.
import { describe, expect, it } from '@jest/globals';
import {
  isLiveProcess,
  liveThreadCount,
  parseProcStat,
  processArgs,
  processStartTime,
  processStat,
} from '../../src/process-identity.js';

// pid_max is at most 2^22, so this pid never exists.
const NO_PID = 2 ** 22 + 1;

function statLine(comm: string, state: string): string {
  // Fields 3 to 52 as the kernel writes them; field 22 (start time) is 4242.
  const fields = [state, ...Array.from({ length: 49 }, (_, i) => String(i + 4))];
  fields[22 - 3] = '4242';
  return `1234 (${comm}) ${fields.join(' ')}\n`;
}

describe('parseProcStat', () => {
  it('reads the command name, state and start time, numbering fields as proc(5) does', () => {
    const s = parseProcStat(statLine('wireguard-go', 'S'));
    expect(s).toEqual(expect.objectContaining({ comm: 'wireguard-go', state: 'S', startTime: '4242' }));
    expect(s?.fields[14 - 3]).toBe('14');
    expect(s?.fields.at(-1)).toBe('52'); // the newline is not part of the last field
  });

  it('takes the fields after the last ")": a command name may hold ") " itself', () => {
    expect(parseProcStat(statLine('a) Z (b', 'R'))).toEqual(expect.objectContaining({ comm: 'a) Z (b', state: 'R', startTime: '4242' }));
  });

  it('is null for text that is no stat line', () => {
    expect(parseProcStat('')).toBeNull();
    expect(parseProcStat('1234 no parentheses')).toBeNull();
    expect(parseProcStat('1234 (name)')).toBeNull();
  });
});

describe('isLiveProcess, on this test process', () => {
  it('is true when each given field matches, and false when any one differs', async () => {
    const self = await processStat(process.pid);
    expect(self).not.toBeNull();
    const startTime = await processStartTime(process.pid);
    expect(startTime).toBe(self!.startTime);
    expect(await isLiveProcess(process.pid, {})).toBe(true);
    expect(await isLiveProcess(process.pid, { comm: self!.comm, startTime: startTime!, args: (argv) => argv.length > 0 })).toBe(true);
    expect(await isLiveProcess(process.pid, { comm: `${self!.comm}x` })).toBe(false);
    expect(await isLiveProcess(process.pid, { startTime: String(Number(startTime) - 1) })).toBe(false);
    expect(await isLiveProcess(process.pid, { args: () => false })).toBe(false);
  });

  it('is false, and the readers are null or 0, for a pid that does not exist', async () => {
    expect(await isLiveProcess(NO_PID, {})).toBe(false);
    expect(await processStat(NO_PID)).toBeNull();
    expect(await processArgs(NO_PID)).toBeNull();
    expect(await processStartTime(NO_PID)).toBeNull();
    expect(await liveThreadCount(NO_PID)).toBe(0);
  });

  it('counts the live threads of a running process (node has several)', async () => {
    expect(await liveThreadCount(process.pid)).toBeGreaterThan(1);
    expect((await processArgs(process.pid))?.length).toBeGreaterThan(0);
  });
});
