// The project's version, from package.json, for every entry point's --version. Imported (not
// read at run time) so that the bundled pod-VM agent carries it too.
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;

/** What `--version` prints: "<program> <version>". */
export function versionLine(program: string): string {
  return `${program} ${VERSION}\n`;
}
