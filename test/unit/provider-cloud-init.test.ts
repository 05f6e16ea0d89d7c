// The userdata codec: apf.json wrapped in a #cloud-config and taken back out, byte for byte, whatever
// the content; only the keys CAA's strict reader accepts, unless a file mode is asked for; and a
// reader that says what is wrong without echoing the document.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { apfDocumentToJson, parseApfJson } from '../../src/podnetwork/schema.js';
import {
  APF_JSON_PATH,
  apfJsonFromCloudConfig,
  apfJsonText,
  cloudConfigForApf,
  cloudConfigObject,
} from '../../src/podnetwork/cloud-init.js';
import { thrown } from '../support/errors.js';

const APF = readFileSync(new URL('../../../test/fixtures/podnetwork/apf-wireguard.json', import.meta.url), 'utf8');
const VXLAN = readFileSync(new URL('../../../test/fixtures/podnetwork/apf-vxlan.json', import.meta.url), 'utf8');

describe('cloudConfigForApf', () => {
  it('is "#cloud-config" and one write_files entry that puts apf.json in place, parsed back exactly', () => {
    const text = cloudConfigForApf(APF);
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(parse(text)).toEqual({ write_files: [{ path: '/run/peerpod/apf.json', content: APF }] });
    // The same under YAML 1.1, the dialect of both readers (Go's yaml.v2 and PyYAML).
    expect(parse(text, { version: '1.1' })).toEqual(parse(text));
    expect(apfJsonFromCloudConfig(text, 'test')).toBe(APF);
  });

  it('writes only path and content by default: CAA reads write_files strictly into {path, content}', () => {
    for (const apf of [APF, VXLAN]) {
      const doc = parse(cloudConfigForApf(apf)) as { write_files: Record<string, unknown>[] };
      expect(Object.keys(doc)).toEqual(['write_files']);
      for (const entry of doc.write_files) expect(Object.keys(entry).sort()).toEqual(['content', 'path']);
    }
  });

  it('adds a file mode, as a string, only when asked to', () => {
    const text = cloudConfigForApf(APF, { permissions: '0600' });
    expect(text).toContain("permissions: \"0600\"");
    expect(parse(text, { version: '1.1' })).toEqual({ write_files: [{ path: APF_JSON_PATH, permissions: '0600', content: APF }] });
    expect(thrown(() => cloudConfigObject(APF, { permissions: '600; rm' })).context).toMatchObject({ field: 'permissions' });
  });

  it('writes a typed document the way Go writes it', () => {
    const doc = parseApfJson(APF, 'fixture');
    const json = apfJsonFromCloudConfig(cloudConfigForApf(doc), 'test');
    expect(JSON.parse(json)).toEqual(apfDocumentToJson(doc));
    expect(json).toBe(JSON.stringify(apfDocumentToJson(doc)));
  });

  it('keeps CAA text byte for byte, including fields it does not model (TLS material)', () => {
    const compact = JSON.stringify(JSON.parse(APF));
    expect(apfJsonText(compact)).toBe(compact);
    expect(apfJsonFromCloudConfig(cloudConfigForApf(compact), 'test')).toBe(compact);
  });

  it('round-trips any string content exactly (quotes, newlines, YAML syntax, unicode)', () => {
    const tricky = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 200 }),
      fc.constantFrom('', '\n', 'a: b', '- x', '#not a comment', '"\'', '---\n...', '  leading', 'trailing  ', '\t', 'yes', 'on', '0600', '~', '\u2028', '\r\n'),
    );
    fc.assert(
      fc.property(tricky, tricky, (a, b) => {
        const doc = JSON.parse(APF) as Record<string, unknown>;
        doc['tls-server-key'] = a;
        doc['pod-name'] = b;
        for (const text of [JSON.stringify(doc), JSON.stringify(doc, null, 2) + '\n']) {
          const userdata = cloudConfigForApf(text);
          expect(apfJsonFromCloudConfig(userdata, 'test')).toBe(text);
          expect((parse(userdata, { version: '1.1' }) as { write_files: { content: string }[] }).write_files[0]!.content).toBe(text);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses apf.json the pod VM would refuse, before a VM exists', () => {
    expect(thrown(() => cloudConfigForApf('{"pod-network": {"tunnel-type": "wireguard"}')).code).toBe('EINVAL');
    expect(thrown(() => cloudConfigForApf('not json')).message).toMatch(/^userdata apf.json: not valid JSON/);
  });
});

describe('apfJsonFromCloudConfig', () => {
  const wrap = (yaml: string): string => `#cloud-config\n${yaml}`;

  it('reads a cloud-config written by CAA, with a block scalar and other files', () => {
    const caa = wrap(
      `write_files:\n  - path: /run/peerpod/auth.json\n    content: |\n      {}\n  - path: /run/peerpod/apf.json\n    content: |\n      {"pod-network": {}}\n`,
    );
    expect(apfJsonFromCloudConfig(caa, 'caa')).toBe('{"pod-network": {}}\n');
  });

  it('says what is wrong, naming the source', () => {
    const cases: [string, RegExp][] = [
      ['write_files: []', /^src: not a cloud-config: expected it to start with "#cloud-config"/],
      [wrap('runcmd: [ls]'), /^src: no write_files list, so no \/run\/peerpod\/apf.json$/],
      [wrap('- a\n- b'), /^src: expected a mapping with write_files$/],
      [wrap('write_files:\n  - path: /etc/x\n    content: y'), /^src: write_files has no entry for \/run\/peerpod\/apf.json$/],
      [wrap('write_files:\n  - path: /run/peerpod/apf.json\n    content: a\n  - path: /run/peerpod/apf.json\n    content: b'), /^src: write_files has 2 entries for/],
      [wrap('write_files:\n  - path: /run/peerpod/apf.json\n    encoding: b64\n    content: e30='), /has encoding "b64": expected plain text content$/],
      [wrap('write_files:\n  - path: /run/peerpod/apf.json'), /has no content$/],
    ];
    for (const [text, message] of cases) {
      const e = thrown(() => apfJsonFromCloudConfig(text, 'src'));
      expect(e.code).toBe('EINVAL');
      expect(e.message).toMatch(message);
    }
  });

  it('reports a YAML fault by position, never quoting the text (it may hold a key)', () => {
    const secret = 'c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQ=';
    const e = thrown(() => apfJsonFromCloudConfig(wrap(`write_files:\n  - path: "${secret}\n  content: [`), 'src'));
    expect(e.message).toMatch(/^src: not valid YAML at line \d+, column \d+$/);
    expect(e.message).not.toContain(secret);
    expect(e.cause).toBeUndefined();
  });
});
