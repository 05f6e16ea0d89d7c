#!/usr/bin/env node
// The import check that `npm test` runs. It reads every TypeScript file under src/ and cmd/, and
// fails when:
//   - src/ imports anything outside src/ but package.json (the lab, tools, bench and tests depend on the product,
//     never the other way round), or cmd/ imports from lab/, tools/, bench/ or test/;
//   - two folders of src/ import each other, directly or round a longer loop (the folder graph
//     must be a DAG, so a reader can take the layers in order);
//   - a file imports itself round a loop of files.
// It parses import specifiers with a regular expression, which suffices because our code only
// imports with static `from '…'` clauses and `import('…')` calls on string literals.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// `--root DIR` checks another tree (the unit test gives it one with planted faults).
const rootAt = process.argv.indexOf('--root');
const root = rootAt > 0 ? resolve(process.argv[rootAt + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PRODUCT = ['src', 'cmd'];
const NOT_PRODUCT = ['lab', 'tools', 'bench', 'test'];

function tsFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;
function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const found = [];
  for (const m of text.matchAll(specifier)) {
    const spec = m[1];
    if (!spec.startsWith('.')) continue; // packages and node: builtins
    const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
    const line = text.slice(0, m.index).split('\n').length;
    found.push({ target, line, spec });
  }
  return found;
}

const problems = [];
const rel = (p) => relative(root, p);
const top = (p) => rel(p).split(sep)[0];
// The folder of a src/ file, one level down: src/tunnel/wireguard/x.ts → src/tunnel.
const folderOf = (p) => {
  const parts = rel(p).split(sep);
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0];
};

const files = PRODUCT.filter((d) => existsSync(join(root, d))).flatMap((d) => tsFiles(join(root, d)));
const graph = new Map();
const folderEdges = new Map(); // "a -> b" → first example "file:line"
for (const file of files) {
  const edges = [];
  for (const { target, line, spec } of importsOf(file)) {
    const where = `${rel(file)}:${line}`;
    if (top(file) === 'src' && top(target) !== 'src' && rel(target) !== 'package.json') {
      problems.push(`${where}: src/ imports '${spec}' (${rel(target)}); the product may import only from src/`);
      continue;
    }
    if (top(file) === 'cmd' && NOT_PRODUCT.includes(top(target))) {
      problems.push(`${where}: cmd/ imports '${spec}' (${rel(target)}); an entry point may import only from src/ and cmd/`);
      continue;
    }
    edges.push(target);
    if (top(file) === 'src' && top(target) === 'src') {
      const [a, b] = [folderOf(file), folderOf(target)];
      if (a !== b && !folderEdges.has(`${a} -> ${b}`)) folderEdges.set(`${a} -> ${b}`, where);
    }
  }
  graph.set(file, edges);
}

// Cycles: depth-first search, reporting each back edge's loop once.
function cycles(nodes, next) {
  const state = new Map();
  const stack = [];
  const found = [];
  const visit = (n) => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of next(n)) {
      if (state.get(m) === 'open') found.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of nodes) if (!state.has(n)) visit(n);
  return found;
}

const folders = new Map();
for (const key of folderEdges.keys()) {
  const [a, b] = key.split(' -> ');
  if (!folders.has(a)) folders.set(a, []);
  folders.get(a).push(b);
}
for (const loop of cycles([...folders.keys()].sort(), (n) => folders.get(n) ?? [])) {
  const steps = loop.slice(0, -1).map((a, i) => `${a} -> ${loop[i + 1]} (${folderEdges.get(`${a} -> ${loop[i + 1]}`)})`);
  problems.push(`folder cycle: ${steps.join(', ')}`);
}
for (const loop of cycles([...graph.keys()].sort(), (n) => (graph.get(n) ?? []).filter((t) => graph.has(t)))) {
  problems.push(`file cycle: ${loop.map(rel).join(' -> ')}`);
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-imports: ${p}`);
  console.error(`check-imports: ${problems.length} problem(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`check-imports: ok (${files.length} files in ${PRODUCT.join(', ')}; ${folderEdges.size} folder edges, no cycles, nothing from ${NOT_PRODUCT.join('/')})`);
