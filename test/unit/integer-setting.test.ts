// The one parser for integer settings (environment variables, command-line flags): whole decimal
// digits within the range, and one wording for a bad value that names the setting, quotes what was
// given and says what is valid.
import { describe, expect, it } from '@jest/globals';
import { integerSetting, readInteger } from '../../src/integer-setting.js';
import { thrown } from '../support/errors.js';

describe('readInteger', () => {
  it.each([
    ['0', 0, 65535, 0],
    ['65535', 1, 65535, 65535],
    ['007', 1, 10, 7],
  ])('reads %j in %d-%d as %d', (text, min, max, value) => {
    expect(readInteger(text, min, max)).toEqual({ ok: true, value });
  });

  it.each(['', ' 1', '1 ', '+1', '-1', '1.5', '1e3', '0x10', 'x', '70000', '99999999999999999999999'])('refuses %j, saying what is valid', (text) => {
    expect(readInteger(text, 1, 65535)).toEqual({ ok: false, problem: `${JSON.stringify(text)} is not valid: expected an integer 1-65535` });
  });

  it('refuses a value below the minimum', () => {
    expect(readInteger('1279', 1280, 65535)).toEqual({ ok: false, problem: '"1279" is not valid: expected an integer 1280-65535' });
  });
});

describe('integerSetting', () => {
  it('gives the value, or an EINVAL that names the setting in its message and context', () => {
    expect(integerSetting('--listen-port', '51900', 1, 65535)).toBe(51900);
    const e = thrown(() => integerSetting('WG_LOCK_WAIT_MS', 'soon', 0, 3_600_000));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toBe('WG_LOCK_WAIT_MS: "soon" is not valid: expected an integer 0-3600000');
    expect(e.context.field).toBe('WG_LOCK_WAIT_MS');
  });
});
