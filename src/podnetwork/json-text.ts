// Where JSON text first goes wrong, as line and column, for error messages about apf.json. V8's own
// SyntaxError messages quote the text around the fault, and in apf.json that text can be a private
// key, so we locate the fault ourselves and say only what was expected there. Pure; JSON.parse still
// does the parsing.

export interface JsonSyntaxFault {
  /** UTF-16 offset of the fault. */
  readonly offset: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 units. */
  readonly column: number;
  /** What was wrong, without quoting the text: "expected ',' or '}'". */
  readonly problem: string;
}

class Fault extends Error {
  constructor(
    readonly offset: number,
    readonly expected: string,
  ) {
    super(`expected ${expected}`);
  }
}

/** The first syntax fault in `text` by RFC 8259, or undefined when it is valid JSON. */
export function findJsonSyntaxFault(text: string): JsonSyntaxFault | undefined {
  try {
    scan(text);
    return undefined;
  } catch (e) {
    if (!(e instanceof Fault)) throw e;
    const before = text.slice(0, e.offset);
    const line = before.split('\n').length;
    const column = e.offset - (before.lastIndexOf('\n') + 1) + 1;
    const problem = e.offset >= text.length ? `unexpected end of input: expected ${e.expected}` : `expected ${e.expected}`;
    return { offset: e.offset, line, column, problem };
  }
}

// Iterative rather than recursive, so that "[[[[…" cannot exhaust the stack.
function scan(text: string): void {
  let i = 0;
  const closers: ('}' | ']')[] = [];
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (c: string, what = `'${c}'`) => {
    skipSpace();
    if (text[i] !== c) throw new Fault(i, what);
    i++;
  };
  const digits = () => {
    const start = i;
    while (i < text.length && text[i]! >= '0' && text[i]! <= '9') i++;
    if (i === start) throw new Fault(i, 'a digit');
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) throw new Fault(i, "'\"' to close the string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) throw new Fault(i, 'an escape sequence instead of a control character in the string');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) throw new Fault(i, 'four hex digits after \\u');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          throw new Fault(i, 'a valid escape sequence');
        }
        continue;
      }
      i++;
    }
  };
  const key = () => {
    skipSpace();
    if (text[i] !== '"') throw new Fault(i, 'a field name in double quotes');
    string();
    expect(':');
  };

  for (;;) {
    // A value is due here.
    skipSpace();
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      skipSpace();
      const closer = c === '{' ? '}' : ']';
      if (text[i] === closer) {
        i++;
      } else {
        closers.push(closer);
        if (closer === '}') key();
        continue;
      }
    } else if (c === '"') {
      string();
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      if (c === '-') i++;
      if (text[i] === '0') i++;
      else digits();
      if (text[i] === '.') {
        i++;
        digits();
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits();
      }
    } else {
      const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
      if (word === undefined) throw new Fault(i, 'a value');
      i += word.length;
    }
    // A value has ended: close containers until one wants another value.
    for (;;) {
      skipSpace();
      const closer = closers.at(-1);
      if (closer === undefined) {
        if (i < text.length) throw new Fault(i, 'the end of input after the value');
        return;
      }
      if (text[i] === closer) {
        closers.pop();
        i++;
        continue;
      }
      if (text[i] !== ',') throw new Fault(i, `',' or '${closer}'`);
      i++;
      if (closer === '}') key();
      break;
    }
  }
}
