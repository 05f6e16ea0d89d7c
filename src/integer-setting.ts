// An integer setting read from text, as an environment variable or a command-line flag carries it:
// whole decimal digits within a range. The one parser, and the one wording for a bad value, which
// names the setting, quotes what it was given and says what would be valid:
//   WG_PORT: "70000" is not valid: expected an integer 1-65535
// Which settings exist, their ranges and defaults, and whether a bad one fails at once or is
// gathered with the others stay with each reader (cmd/wgctl.ts, src/sidecar/config.ts,
// src/provider/config.ts).
import { PeerpodError } from './errors.js';

/** The value, or what is wrong with the text and what would be valid (without the setting's name). */
export type IntegerReading = { readonly ok: true; readonly value: number } | { readonly ok: false; readonly problem: string };

/** `text` as an integer in [min, max]. */
export function readInteger(text: string, min: number, max: number): IntegerReading {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (n >= min && n <= max) return { ok: true, value: n };
  return { ok: false, problem: `${JSON.stringify(text)} is not valid: expected an integer ${min}-${max}` };
}

/** `text` given for `setting` (WG_PORT, --listen-port) as an integer in [min, max]; else EINVAL naming the setting. */
export function integerSetting(setting: string, text: string, min: number, max: number): number {
  const r = readInteger(text, min, max);
  if (r.ok) return r.value;
  throw new PeerpodError('EINVAL', `${setting}: ${r.problem}`, { field: setting });
}
