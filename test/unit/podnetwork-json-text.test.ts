import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { findJsonSyntaxFault } from '../../src/podnetwork/json-text.js';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('findJsonSyntaxFault', () => {
  it.each([
    ['{"a": 1,\n "b" 2}', 2, 6, "expected ':'"],
    ['[1, 2', 1, 6, "unexpected end of input: expected ',' or ']'"],
    ['{"a": "x\ty"}', 1, 9, 'expected an escape sequence instead of a control character in the string'],
    ['{"a": "\\q"}', 1, 8, 'expected a valid escape sequence'],
    ['-', 1, 2, 'unexpected end of input: expected a digit'],
    ['01', 1, 2, 'expected the end of input after the value'],
    ['{} {}', 1, 4, 'expected the end of input after the value'],
    ['\uFEFF{}', 1, 1, 'expected a value'],
  ])('%j: line %i, column %i', (text, line, column, problem) => {
    expect(findJsonSyntaxFault(text)).toMatchObject({ line, column, problem });
  });

  it('survives nesting deeper than any stack', () => {
    expect(findJsonSyntaxFault('['.repeat(200_000))).toMatchObject({ offset: 200_000 });
  });

  it('finds nothing in valid JSON (property)', () => {
    fc.assert(fc.property(fc.json(), (text) => expect(findJsonSyntaxFault(text)).toBeUndefined()));
  });

  it('finds a fault exactly when JSON.parse throws (property)', () => {
    const piece = fc.constantFrom('{', '}', '[', ']', ',', ':', ' ', '\n', '"', '\\', 'a', 'u', '0', '1', '-', '.', 'e', '+', 'true', 'null', 'fals', '\t', '\u0001');
    const near = fc.json().chain((text) =>
      fc.tuple(fc.nat({ max: text.length }), fc.array(piece, { maxLength: 2 }), fc.nat({ max: 2 })).map(
        ([at, insert, drop]) => text.slice(0, at) + insert.join('') + text.slice(at + drop),
      ),
    );
    const junk = fc.array(piece, { maxLength: 12 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(near, junk), (text) => {
        expect(findJsonSyntaxFault(text) === undefined).toBe(parses(text));
      }),
      { numRuns: 2000 },
    );
  });
});
