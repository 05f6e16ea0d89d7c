// The userdata format, both halves: the worker wraps apf.json in a `#cloud-config` whose write_files
// puts it at /run/peerpod/apf.json, and the pod VM takes it back out. Pure: values in, values out.
// Both sides import it: the worker's providers (provider/) to write userdata, the pod VM's
// userdata reader (userdata/) to read it. Fetching and uploading are left to them.
//
// The document is built as an object and serialised with `yaml`, never by string templates, so no
// content (a PEM key, a quote) can break the YAML. It is written as YAML 1.1, the dialect both of its
// readers speak: CAA's process-user-data (Go's yaml.v2) and cloud-init (PyYAML).
//
// CAA's process-user-data reads write_files with yaml.v2's UnmarshalStrict into {path, content}, so
// any other key (`permissions`, `owner`, `encoding`) makes it reject the whole userdata and retry
// until it times out. We therefore write only path and content by default; `permissions` is an
// option for images whose userdata real cloud-init processes.
import { parse, stringify } from 'yaml';
import { PeerpodError } from '../errors.js';
import { apfDocumentToJson, parseApfJson } from './schema.js';
import type { ApfDocument } from './types.js';

/**
 * apf.json for the pod VM: the text as CAA writes it (kept byte for byte, so CAA's other fields such
 * as its TLS material survive), or our typed document (written the way Go would write it).
 */
export type ApfUserdata = string | ApfDocument;

/** Where CAA's forwarder config lives on the pod VM (on process-user-data's allow-list). */
export const APF_JSON_PATH = '/run/peerpod/apf.json';
export const CLOUD_CONFIG_HEADER = '#cloud-config\n';

export interface CloudConfigOptions {
  /**
   * File mode for apf.json, as cloud-init's write_files spells it ("0600"). Only for images where
   * cloud-init, not CAA's process-user-data, applies the userdata: the latter refuses the key.
   */
  readonly permissions?: string;
}

export interface WriteFile {
  readonly path: string;
  readonly content: string;
  readonly permissions?: string;
}

export interface CloudConfig {
  readonly write_files: readonly WriteFile[];
}

const FILE_MODE = /^0?[0-7]{3}$/;

/** apf.json as text: a document is written the way Go writes it; text is checked, then kept as is. */
export function apfJsonText(userdata: ApfUserdata): string {
  if (typeof userdata !== 'string') return JSON.stringify(apfDocumentToJson(userdata));
  // Refuse to ship a document the pod VM would refuse anyway: failing here costs no VM.
  parseApfJson(userdata, 'userdata apf.json');
  return userdata;
}

/** The cloud-config object for one apf.json. */
export function cloudConfigObject(userdata: ApfUserdata, options: CloudConfigOptions = {}): CloudConfig {
  const file: WriteFile = { path: APF_JSON_PATH, content: apfJsonText(userdata) };
  if (options.permissions !== undefined) {
    if (!FILE_MODE.test(options.permissions)) {
      throw new PeerpodError('EINVAL', `permissions ${JSON.stringify(options.permissions)} is not a file mode: expected octal such as "0600"`, {
        op: 'build-cloud-config',
        field: 'permissions',
      });
    }
    return { write_files: [{ path: file.path, permissions: options.permissions, content: file.content }] };
  }
  return { write_files: [file] };
}

/** The userdata text: "#cloud-config" and the YAML document. */
export function cloudConfigForApf(userdata: ApfUserdata, options: CloudConfigOptions = {}): string {
  // lineWidth 0: never fold the one-line JSON; folding is valid YAML but needless risk for Go's parser.
  return CLOUD_CONFIG_HEADER + stringify(cloudConfigObject(userdata, options), { version: '1.1', lineWidth: 0 });
}

/**
 * Takes apf.json back out of a cloud-config's write_files. `source` names the userdata in errors
 * ("nocloud /media/cidata/user-data"). The JSON itself is not checked here: parseApfJson does that.
 */
export function apfJsonFromCloudConfig(text: string, source: string): string {
  const fail = (problem: string): never => {
    throw new PeerpodError('EINVAL', `${source}: ${problem}`, { op: 'read-cloud-config', source });
  };
  if (!text.startsWith('#cloud-config')) {
    fail(`not a cloud-config: expected it to start with "#cloud-config", got ${JSON.stringify(text.slice(0, 20))}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { version: '1.1' });
  } catch (e) {
    // yaml's messages quote the text near the fault, which may hold a key: report only where.
    const where = e instanceof Error && 'linePos' in e ? yamlPosition(e) : '';
    fail(`not valid YAML${where}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('expected a mapping with write_files');
  const files = (doc as Record<string, unknown>)['write_files'];
  if (!Array.isArray(files)) fail(`no write_files list, so no ${APF_JSON_PATH}`);
  const matches = (files as unknown[]).filter(
    (f): f is Record<string, unknown> => typeof f === 'object' && f !== null && (f as Record<string, unknown>)['path'] === APF_JSON_PATH,
  );
  if (matches.length === 0) fail(`write_files has no entry for ${APF_JSON_PATH}`);
  if (matches.length > 1) fail(`write_files has ${matches.length} entries for ${APF_JSON_PATH}: expected one`);
  const entry = matches[0] as Record<string, unknown>;
  if (entry['encoding'] !== undefined) {
    fail(`write_files entry for ${APF_JSON_PATH} has encoding ${JSON.stringify(entry['encoding'])}: expected plain text content`);
  }
  const content = entry['content'];
  if (typeof content !== 'string' || content === '') fail(`write_files entry for ${APF_JSON_PATH} has no content`);
  return content as string;
}

function yamlPosition(e: Error): string {
  const pos = (e as Error & { linePos?: readonly { line: number; col: number }[] }).linePos?.[0];
  return pos ? ` at line ${pos.line}, column ${pos.col}` : '';
}
