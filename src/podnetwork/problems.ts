// Reading a parsed JSON object field by field while collecting every problem, so that one
// PeerpodError can list them all with their paths in CAA's spelling ("pod-network.routes[1].gw").
// Also the one place that decides how a bad value is echoed, since secrets must never be. What a
// field may contain is fields.ts's business; which fields exist is schema.ts's.
import { PeerpodError, type ErrorContext } from '../errors.js';

export interface Problem {
  /** Field path in CAA's spelling. */
  readonly path: string;
  /** What was wrong and what would be valid, as "70000 is not a valid port: expected an integer 1-65535". */
  readonly text: string;
}

export class Problems {
  readonly #list: Problem[] = [];

  add(path: string, text: string): void {
    this.#list.push({ path, text });
  }

  get list(): readonly Problem[] {
    return this.#list;
  }

  /** Throws one EINVAL listing every problem, one a line; context.field names the first. */
  throwIfAny(context: ErrorContext): void {
    const [first] = this.#list;
    if (first === undefined) return;
    const message = this.#list.map((p) => `${p.path}: ${p.text}`).join('\n');
    throw new PeerpodError('EINVAL', message, { ...context, field: first.path });
  }
}

/** Either the value of a field, or what is wrong with it (a whole sentence ending in "expected …"). */
export type Reading<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

/** What one field may contain. */
export interface FieldKind<T> {
  /** What a valid value looks like; a missing field is reported as "missing: expected <this>". */
  readonly expected: string;
  read(value: unknown): Reading<T>;
}

export function accept<T>(value: T): Reading<T> {
  return { ok: true, value };
}

export function reject(problem: string): Reading<never> {
  return { ok: false, problem };
}

const ECHO_LIMIT = 50;
// Base64 of 32 bytes is 44 characters and its hex is 64. Any long run of base64 characters could be
// a key someone put in the wrong field, so it is described, never shown.
const KEY_LIKE = /^[A-Za-z0-9+/=_-]{40,}$/;

/** A bad value as an error message may show it: JSON-quoted, short, and never anything key-like. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    if (KEY_LIKE.test(value)) return `a ${value.length}-character base64 string (not shown)`;
    if (value.length > ECHO_LIMIT) return `a ${value.length}-character string (not shown)`;
    return JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** The usual sentence for a value of the wrong shape. */
export function invalid(value: unknown, noun: string, expected: string, why?: string): Reading<never> {
  return reject(`${describeValue(value)} is not a valid ${noun}${why ? ` (${why})` : ''}: expected ${expected}`);
}

const PLAIN_KEY = /^[A-Za-z0-9_-]{1,40}$/;

function childPath(prefix: string, key: string): string {
  const part = PLAIN_KEY.test(key) ? key : `[${describeValue(key)}]`;
  if (prefix === '') return part;
  return part.startsWith('[') ? `${prefix}${part}` : `${prefix}.${part}`;
}

type Fields = Readonly<Record<string, unknown>>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One JSON object being read. Fields not asked for are ignored unless rejectUnknown says otherwise. */
export class JsonSection {
  readonly #prefix: string;
  readonly #fields: Fields;
  readonly #problems: Problems;

  private constructor(prefix: string, fields: Fields, problems: Problems) {
    this.#prefix = prefix;
    this.#fields = fields;
    this.#problems = problems;
  }

  /**
   * Opens `value` as an object whose fields are named below `prefix` ("" for the document root).
   * A value that is no object is reported at `label`.
   */
  static open(
    value: unknown,
    at: { label: string; prefix: string },
    expected: string,
    problems: Problems,
  ): JsonSection | undefined {
    if (isFields(value)) return new JsonSection(at.prefix, value, problems);
    problems.add(at.label, value === undefined ? `missing: expected ${expected}` : invalidObject(value, expected));
    return undefined;
  }

  get problems(): Problems {
    return this.#problems;
  }

  path(key: string): string {
    return childPath(this.#prefix, key);
  }

  /**
   * The raw value of a field, found as Go's encoding/json finds it: the exact spelling first, then
   * any spelling that differs only in case. CAA's reader accepts "PodIP" for "podip", and an
   * apf.json it accepts must not lose a field here without a word.
   */
  raw(key: string): unknown {
    if (Object.hasOwn(this.#fields, key)) return this.#fields[key];
    const folded = Object.keys(this.#fields).find((k) => k.toLowerCase() === key);
    return folded === undefined ? undefined : this.#fields[folded];
  }

  /**
   * Whether a field carries a value. Absent and null count as unset, as for Go (null leaves a Go
   * field at its zero value), and so does any of `zeros`, the Go zero values CAA writes for "none".
   */
  isSet(key: string, zeros: readonly unknown[] = []): boolean {
    const v = this.raw(key);
    return v !== undefined && v !== null && !zeros.includes(v);
  }

  required<T>(key: string, kind: FieldKind<T>): T | undefined {
    if (!this.isSet(key)) {
      this.#problems.add(this.path(key), `missing: expected ${kind.expected}`);
      return undefined;
    }
    return this.#read(key, kind);
  }

  optional<T>(key: string, kind: FieldKind<T>, zeros: readonly unknown[] = []): T | undefined {
    return this.isSet(key, zeros) ? this.#read(key, kind) : undefined;
  }

  #read<T>(key: string, kind: FieldKind<T>): T | undefined {
    const reading = kind.read(this.raw(key));
    if (reading.ok) return reading.value;
    this.#problems.add(this.path(key), reading.problem);
    return undefined;
  }

  /** A nested object; undefined (with a problem recorded) when it is set but no object. */
  section(key: string, expected: string): JsonSection | undefined {
    const path = this.path(key);
    return JsonSection.open(this.raw(key), { label: path, prefix: path }, expected, this.#problems);
  }

  /**
   * An array field whose items `readItem` reads. Absent and null read as empty: Go writes a nil
   * slice as null. Undefined when the field or any item was bad.
   */
  list<T>(key: string, expected: string, readItem: (item: unknown, path: string) => T | undefined): T[] | undefined {
    if (!this.isSet(key)) return [];
    const value = this.raw(key);
    const path = this.path(key);
    if (!Array.isArray(value)) {
      this.#problems.add(path, `${describeValue(value)} is not a valid list: expected ${expected}`);
      return undefined;
    }
    const items = value.map((item, i) => readItem(item, `${path}[${i}]`));
    return items.every((item) => item !== undefined) ? items : undefined;
  }

  /** Reports every field whose name (ignoring case) is not among `known`. */
  rejectUnknown(known: readonly string[]): void {
    for (const key of Object.keys(this.#fields)) {
      if (known.includes(key.toLowerCase())) continue;
      this.#problems.add(this.path(key), `unknown field: valid fields are ${known.join(', ')}`);
    }
  }
}

function invalidObject(value: unknown, expected: string): string {
  return `${describeValue(value)} is not a valid object: expected ${expected}`;
}
