// Reads a `git diff` patch (integrations/caa/patches/) and puts what it adds to a template into a
// rendered stand-in of that template, where the patch's context lines say. Used by
// test/unit/chart.test.ts; the rendering itself is go-template.ts.

export interface HunkLine {
  op: ' ' | '+' | '-';
  text: string;
}

export interface PatchedFile {
  /** Path in the patched repository, from `+++ b/…` (or `--- a/…` for a deletion). */
  path: string;
  isNew: boolean;
  hunks: HunkLine[][];
}

export function parsePatch(text: string): PatchedFile[] {
  const files: PatchedFile[] = [];
  let file: PatchedFile | undefined;
  let hunk: HunkLine[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --git ')) {
      file = { path: line.replace(/^diff --git a\/\S+ b\//, ''), isNew: false, hunks: [] };
      files.push(file);
      hunk = undefined;
    } else if (file === undefined) {
      continue;
    } else if (hunk === undefined && line.startsWith('new file mode')) {
      file.isNew = true;
    } else if (line.startsWith('@@ ')) {
      hunk = [];
      file.hunks.push(hunk);
    } else if (hunk !== undefined && (line.startsWith(' ') || line.startsWith('+') || line.startsWith('-'))) {
      hunk.push({ op: line[0] as HunkLine['op'], text: line.slice(1) });
    } else if (hunk !== undefined && line === '') {
      continue; // the end of the patch
    } else if (hunk !== undefined && !line.startsWith('\\')) {
      throw new Error(`unreadable patch line: ${JSON.stringify(line)}`);
    }
  }
  return files;
}

/** The whole text of a file the patch creates. */
export function newFileText(file: PatchedFile): string {
  if (!file.isNew) throw new Error(`${file.path} is not a new file`);
  return file.hunks.flat().map((l) => l.text).join('\n') + '\n';
}

/** A run of added lines with the context lines around it, within its hunk. */
export interface Addition {
  before: string[];
  added: string[];
  after: string[];
}

export function additions(file: PatchedFile): Addition[] {
  const out: Addition[] = [];
  for (const hunk of file.hunks) {
    let i = 0;
    while (i < hunk.length) {
      if (hunk[i]!.op !== '+') {
        i++;
        continue;
      }
      let end = i;
      while (end < hunk.length && hunk[end]!.op === '+') end++;
      const context = (from: number, step: 1 | -1): string[] => {
        const lines: string[] = [];
        for (let j = from; j >= 0 && j < hunk.length && hunk[j]!.op === ' '; j += step) lines.push(hunk[j]!.text);
        return step === 1 ? lines : lines.reverse();
      };
      const a = { before: context(i - 1, -1), added: hunk.slice(i, end).map((l) => l.text), after: context(end, 1) };
      // diff may show the same insertion shifted (an added "{{- end }}" before an existing one);
      // slide it down as far as it goes, so that one insertion always reads the same.
      while (a.added.length > 0 && a.after.length > 0 && a.added[0] === a.after[0]) {
        a.before.push(a.added.shift()!);
        a.added.push(a.after.shift()!);
      }
      out.push(a);
      i = end;
    }
  }
  return out;
}

const isAction = (line: string): boolean => line.trimStart().startsWith('{{');

/**
 * Insert each addition, rendered by `render`, into `rendered` (the lines of the unpatched template
 * as rendered), before the plain lines of its `after` context that come before any template action.
 * The plain `before` lines after the last action must come right before that point; the place must
 * be unique. A rendered addition must be whole lines, as Helm's output of `{{- … }}` hooks is.
 */
export function placeAdditions(rendered: string, found: Addition[], render: (template: string) => string): string {
  const lines = rendered.split('\n');
  for (const a of found) {
    const afterLines = a.after.slice(0, indexOrLength(a.after.findIndex(isAction), a.after));
    const lastAction = a.before.map(isAction).lastIndexOf(true);
    const beforeLines = a.before.slice(lastAction + 1);
    if (afterLines.length === 0) throw new Error(`an addition has no plain line after it to place it by: ${a.added.join(' / ')}`);
    const places: number[] = [];
    for (let i = beforeLines.length; i + afterLines.length <= lines.length; i++) {
      const matches = (want: string[], at: number): boolean => want.every((w, k) => lines[at + k] === w);
      if (matches(afterLines, i) && matches(beforeLines, i - beforeLines.length)) places.push(i);
    }
    if (places.length !== 1) {
      throw new Error(`${places.length} places in the stand-in fit the addition before ${JSON.stringify(afterLines[0])}: expected exactly one`);
    }
    const out = render('\n' + a.added.join('\n') + '\n');
    const m = /^(?:\n([\s\S]*))?\n$/.exec(out);
    if (m === null) throw new Error(`an addition did not render as whole lines: ${JSON.stringify(out)}`);
    if (m[1] !== undefined) lines.splice(places[0]!, 0, ...m[1].split('\n'));
  }
  return lines.join('\n');
}

function indexOrLength(i: number, list: unknown[]): number {
  return i < 0 ? list.length : i;
}
