// A renderer for the small part of Go's text/template and Helm that CAA-chart patch 0006 uses
// (integrations/caa/patches/), so that CI can render the patch's templates without Helm or Go.
// Supported: text with {{- -}} trimming, comments, `define`, `if`/`else if`/`else`/`end`, field
// chains on `.`, string/number/boolean literals, parentheses, pipelines, and the functions below.
// Everything else (range, with, variables, templates, other functions) is refused with an error
// naming it, so a patch that outgrows this subset fails its test instead of rendering wrongly.
// Helm's own helpers are not here: the caller stubs the ones a test needs (`helpers`).
import { stringify } from 'yaml';

export type Helper = (data: unknown) => string;

interface Text { kind: 'text'; text: string }
interface Action { kind: 'action'; pipe: Pipe }
interface If { kind: 'if'; branches: { cond: Pipe; body: Node[] }[]; otherwise: Node[] }
type Node = Text | Action | If;

type Operand =
  | { kind: 'field'; path: string[] }
  | { kind: 'literal'; value: unknown }
  | { kind: 'call'; name: string; args: Operand[] }
  | { kind: 'group'; pipe: Pipe };
type Pipe = Operand[]; // each stage gets the previous stage's value as its last argument

const KNOWN = new Set(['eq', 'ne', 'and', 'or', 'not', 'toString', 'index', 'default', 'dict', 'printf', 'fail', 'quote', 'toYaml', 'nindent', 'indent', 'include']);

/** The failure of a `fail` call, as Helm reports it. */
export class TemplateFail extends Error {}

export class GoTemplates {
  readonly #defines = new Map<string, Node[]>();
  readonly #helpers: Readonly<Record<string, Helper>>;

  constructor(opts: { helpers?: Readonly<Record<string, Helper>> } = {}) {
    this.#helpers = opts.helpers ?? {};
  }

  /** Parse a file of templates; its `define`s become includable. Returns its top-level nodes. */
  add(source: string): Node[] {
    const tokens = tokenize(source);
    let pos = 0;
    const parseBody = (inside: string): { nodes: Node[]; end: string } => {
      const nodes: Node[] = [];
      while (pos < tokens.length) {
        const t = tokens[pos++]!;
        if (t.kind === 'text') {
          if (t.text !== '') nodes.push(t);
          continue;
        }
        const [word = '', ...rest] = t.words;
        if (word === 'end' || word === 'else') {
          if (inside === 'top') throw new Error(`{{ ${t.source} }} closes nothing`);
          return { nodes, end: t.source };
        }
        if (word === 'define') {
          const name = literalString(rest, t.source);
          const body = parseBody('define');
          if (body.end !== 'end') throw new Error(`{{ define ${name} }} closed by {{ ${body.end} }}`);
          this.#defines.set(name, body.nodes);
        } else if (word === 'if') {
          const branches = [{ cond: parsePipe(rest, t.source), body: [] as Node[] }];
          let otherwise: Node[] = [];
          for (;;) {
            const body = parseBody('if');
            branches[branches.length - 1]!.body = body.nodes;
            if (body.end === 'end') break;
            const words = body.end.split(/\s+/);
            if (words[1] === 'if') {
              branches.push({ cond: parsePipe(tokenWords(body.end).slice(2), body.end), body: [] });
              continue;
            }
            const tail = parseBody('else');
            if (tail.end !== 'end') throw new Error(`{{ else }} closed by {{ ${tail.end} }}`);
            otherwise = tail.nodes;
            break;
          }
          nodes.push({ kind: 'if', branches, otherwise });
        } else if (['range', 'with', 'template', 'block', 'break', 'continue'].includes(word) || word.startsWith('$')) {
          throw new Error(`unsupported template syntax: {{ ${t.source} }}`);
        } else {
          nodes.push({ kind: 'action', pipe: parsePipe(t.words, t.source) });
        }
      }
      if (inside !== 'top') throw new Error(`{{ ${inside} }} is never closed`);
      return { nodes, end: '' };
    };
    return parseBody('top').nodes;
  }

  /** Render parsed nodes (or a define, by name) with `.` = data. */
  render(what: Node[] | string, data: unknown): string {
    const nodes = typeof what === 'string' ? this.#defines.get(what) : what;
    if (nodes === undefined) throw new Error(`no template named ${JSON.stringify(what)}`);
    return nodes.map((n) => this.#node(n, data)).join('');
  }

  #node(n: Node, data: unknown): string {
    if (n.kind === 'text') return n.text;
    if (n.kind === 'action') return print(this.#pipe(n.pipe, data));
    for (const b of n.branches) if (truthy(this.#pipe(b.cond, data))) return this.render(b.body, data);
    return this.render(n.otherwise, data);
  }

  #pipe(pipe: Pipe, data: unknown): unknown {
    let value: unknown;
    pipe.forEach((stage, i) => {
      if (i === 0) value = this.#operand(stage, data);
      else if (stage.kind === 'call') value = this.#call(stage.name, [...stage.args.map((a) => this.#operand(a, data)), value]);
      else throw new Error('only a function can follow |');
    });
    return value;
  }

  #operand(o: Operand, data: unknown): unknown {
    switch (o.kind) {
      case 'literal':
        return o.value;
      case 'group':
        return this.#pipe(o.pipe, data);
      case 'call':
        return this.#call(o.name, o.args.map((a) => this.#operand(a, data)));
      case 'field':
        return o.path.reduce<unknown>((v, key, i) => {
          if (v === null || v === undefined) throw new Error(`nil pointer evaluating .${o.path.slice(0, i).join('.')}.${key}`);
          return typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
        }, data);
    }
  }

  #call(name: string, args: unknown[]): unknown {
    const str = (v: unknown): string => print(v);
    switch (name) {
      case 'eq':
        return args.slice(1).some((a) => a === args[0]);
      case 'ne':
        return args[0] !== args[1];
      case 'and':
        return args.find((a) => !truthy(a)) ?? args[args.length - 1];
      case 'or':
        return args.find((a) => truthy(a)) ?? args[args.length - 1];
      case 'not':
        return !truthy(args[0]);
      case 'toString':
        return str(args[0]);
      case 'index':
        return args.slice(1).reduce<unknown>((v, k) => {
          if (v === null || v === undefined) throw new Error('error calling index: index of untyped nil');
          return (v as Record<string, unknown>)[String(k)];
        }, args[0]);
      case 'default':
        return truthy(args[1]) ? args[1] : args[0];
      case 'dict': {
        const d: Record<string, unknown> = {};
        for (let i = 0; i < args.length; i += 2) d[String(args[i])] = args[i + 1];
        return d;
      }
      case 'printf': {
        const rest = args.slice(1);
        return String(args[0]).replace(/%[svqd%]/g, (verb) => (verb === '%%' ? '%' : verb === '%q' ? JSON.stringify(str(rest.shift())) : str(rest.shift())));
      }
      case 'fail':
        throw new TemplateFail(String(args[0]));
      case 'quote':
        return JSON.stringify(args[0] === undefined || args[0] === null ? '' : str(args[0]));
      case 'toYaml':
        return stringify(args[0], { sortMapEntries: true, indentSeq: false }).replace(/\n$/, '');
      case 'nindent':
      case 'indent': {
        const pad = ' '.repeat(Number(args[0]));
        const body = str(args[1]).split('\n').map((l) => pad + l).join('\n');
        return name === 'nindent' ? `\n${body}` : body;
      }
      case 'include': {
        const template = String(args[0]);
        const helper = this.#helpers[template];
        if (helper !== undefined) return helper(args[1]);
        return this.render(template, args[1]);
      }
      default:
        throw new Error(`unsupported function ${name}`);
    }
  }
}

/** Go's truth: false, 0, nil, and empty strings, maps and lists are false. */
function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** How an action prints a value (Helm turns "<no value>" into ""). Maps and lists are refused. */
function print(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`printing a map or list is outside this renderer: ${JSON.stringify(v)}`);
}

type Token = Text | { kind: 'action'; source: string; words: string[] };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const re = /\{\{(-\s)?\s*([\s\S]*?)\s*(\s-)?\}\}/g;
  let last = 0;
  let trimNext = false;
  for (const m of source.matchAll(re)) {
    let text = source.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (m[1] !== undefined) text = text.replace(/\s+$/, '');
    tokens.push({ kind: 'text', text });
    trimNext = m[3] !== undefined;
    last = m.index + m[0].length;
    const inner = m[2] ?? '';
    if (inner.startsWith('/*')) {
      if (!inner.endsWith('*/')) throw new Error(`unclosed comment: {{${m[0]}}}`);
      continue;
    }
    tokens.push({ kind: 'action', source: inner, words: tokenWords(inner) });
  }
  let tail = source.slice(last);
  if (trimNext) tail = tail.replace(/^\s+/, '');
  tokens.push({ kind: 'text', text: tail });
  return tokens;
}

/** Split an action into words: strings, parentheses and pipes are words of their own. */
function tokenWords(inner: string): string[] {
  const words = inner.match(/"(?:[^"\\]|\\.)*"|[()|]|[^\s()|"]+/g);
  return words ?? [];
}

function literalString(words: string[], source: string): string {
  const w = words[0];
  if (words.length !== 1 || w === undefined || !w.startsWith('"')) throw new Error(`expected a string in {{ ${source} }}`);
  return JSON.parse(w) as string;
}

function parsePipe(words: string[], source: string): Pipe {
  let pos = 0;
  const operand = (): Operand => {
    const w = words[pos++];
    if (w === undefined) throw new Error(`unexpected end of {{ ${source} }}`);
    if (w === '(') {
      const pipe = pipeline();
      if (words[pos++] !== ')') throw new Error(`unbalanced ( in {{ ${source} }}`);
      return { kind: 'group', pipe };
    }
    if (w.startsWith('"')) return { kind: 'literal', value: JSON.parse(w) as string };
    if (/^-?\d+$/.test(w)) return { kind: 'literal', value: Number(w) };
    if (w === 'true' || w === 'false') return { kind: 'literal', value: w === 'true' };
    if (w === '.') return { kind: 'field', path: [] };
    if (/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(w)) return { kind: 'field', path: w.slice(1).split('.') };
    if (KNOWN.has(w)) return { kind: 'call', name: w, args: [] };
    throw new Error(`unsupported template syntax ${JSON.stringify(w)} in {{ ${source} }}`);
  };
  const command = (): Operand => {
    const first = operand();
    const args: Operand[] = [];
    while (pos < words.length && words[pos] !== '|' && words[pos] !== ')') args.push(operand());
    if (first.kind === 'call') return { kind: 'call', name: first.name, args };
    if (args.length > 0) throw new Error(`only a function takes arguments, in {{ ${source} }}`);
    return first;
  };
  const pipeline = (): Pipe => {
    const stages = [command()];
    while (words[pos] === '|') {
      pos++;
      stages.push(command());
    }
    return stages;
  };
  const pipe = pipeline();
  if (pos !== words.length) throw new Error(`unexpected ${JSON.stringify(words[pos])} in {{ ${source} }}`);
  return pipe;
}
