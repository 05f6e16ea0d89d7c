// CAA-chart patch 0006 (integrations/caa/patches/0006-chart-wireguard-sidecar.patch), offline:
// the templates the patch adds are rendered (test/chart/go-template.ts) with the patch's own
// values.yaml defaults, its daemonset.yaml hooks are put where their context lines say into a
// stand-in of CAA's rendered DaemonSet (test/fixtures/caa-chart/), and the result is validated
// with kubernetes-models plus the reference checks the API server makes. The sidecar's env goes
// through our own config parser, so the chart and the daemon cannot drift apart. CAA's real chart
// is rendered by hand (docs/deploy.md, "Checking the patch against CAA's chart").
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { DaemonSet, type IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IContainer as Container } from 'kubernetes-models/v1/Container';
import type { IPodSpec as PodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IVolume as Volume } from 'kubernetes-models/v1/Volume';
import { parse } from 'yaml';
import { sidecarConfigFromEnv } from '../../src/sidecar/config.js';
import { additions, newFileText, parsePatch, placeAdditions, type PatchedFile } from '../chart/chart-patch.js';
import { GoTemplates, TemplateFail } from '../chart/go-template.js';

// Tests run from dist/test/unit; the patch and the fixtures stay in the source tree.
const read = (path: string): string => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
const CHART = 'src/cloud-api-adaptor/install/charts/peerpods';
const patch = parsePatch(read('integrations/caa/patches/0006-chart-wireguard-sidecar.patch'));
const standIn = read('test/fixtures/caa-chart/daemonset-aws.stand-in.yaml');

function patched(path: string): PatchedFile {
  const f = patch.find((p) => p.path === `${CHART}/${path}`);
  if (f === undefined) throw new Error(`the patch does not touch ${CHART}/${path}`);
  return f;
}

/** The wireguard block the patch adds to CAA's values.yaml: the defaults an operator gets. */
const defaults = (parse(additions(patched('values.yaml')).flatMap((a) => a.added).join('\n')) as { wireguard: Record<string, unknown> }).wireguard;

/** CAA's values that the stand-in was rendered with (see its header). */
const caaValues = {
  provider: 'aws',
  providerConfigs: { aws: { PODVM_AMI_ID: '' } },
  daemonset: { updateStrategy: { maxUnavailable: 1, maxSurge: 0 } },
  secrets: { mode: 'create', existingSecretName: '' },
};

type Values = Record<string, unknown>;
function merge(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && b !== null && typeof b === 'object' ? merge(b as Values, v as Values) : v;
  }
  return out;
}

/** Patch 0006's DaemonSet for these values (over CAA's and the patch's defaults), as text. */
function renderText(over: Values = {}): string {
  const values = merge(merge(caaValues, { wireguard: defaults }), over);
  const templates = new GoTemplates({
    helpers: {
      // CAA's _helpers.tpl: the Secret that cloud-api-adaptor-con's envFrom names.
      'peerpods.secretName': (data) => {
        const s = (data as { Values: { secrets: { mode: string; existingSecretName: string } } }).Values.secrets;
        return s.mode === 'reference' ? s.existingSecretName : 'peer-pods-secret';
      },
    },
  });
  templates.add(newFileText(patched('templates/_wireguard.tpl')));
  const data = { Values: values, Release: { Namespace: 'confidential-containers-system', Name: 'peerpods', Service: 'Helm' } };
  return placeAdditions(standIn, additions(patched('templates/daemonset.yaml')), (t) => templates.render(templates.add(t), data));
}

function render(over: Values = {}): IDaemonSet {
  return parse(renderText(over)) as IDaemonSet;
}

function podSpecOf(ds: IDaemonSet): PodSpec {
  const spec = ds.spec?.template.spec;
  if (spec === undefined) throw new Error('no pod spec');
  return spec;
}

function container(ds: IDaemonSet, name: string): Container {
  const c = podSpecOf(ds).containers.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no container ${name}`);
  return c;
}

function envOf(c: Container): Record<string, string> {
  return Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value ?? '']));
}

/** What the API server checks beyond the schema: names unique, every mount names a volume. */
function referenceProblems(spec: PodSpec): string[] {
  const problems: string[] = [];
  const dupes = (what: string, names: string[]): void => {
    for (const n of new Set(names)) if (names.filter((x) => x === n).length > 1) problems.push(`${what} ${n} twice`);
  };
  const volumes = (spec.volumes ?? []).map((v) => v.name);
  dupes('volume', volumes);
  dupes('container', spec.containers.map((c) => c.name));
  for (const c of spec.containers) {
    dupes(`${c.name}: mountPath`, (c.volumeMounts ?? []).map((m) => m.mountPath));
    dupes(`${c.name}: env`, (c.env ?? []).map((e) => e.name));
    for (const m of c.volumeMounts ?? []) if (!volumes.includes(m.name)) problems.push(`${c.name} mounts ${m.name}, which is no volume`);
  }
  return problems;
}

function validated(ds: IDaemonSet): IDaemonSet {
  new DaemonSet(ds).validate();
  expect(referenceProblems(podSpecOf(ds))).toEqual([]);
  return ds;
}

const volume = (ds: IDaemonSet, name: string): Volume | undefined => podSpecOf(ds).volumes?.find((v) => v.name === name);
const on = { wireguard: { enabled: true } };

describe('CAA chart patch 0006: the wireguard sidecar', () => {
  it('touches only the chart: values.yaml and daemonset.yaml gain lines, _wireguard.tpl is new', () => {
    expect(patch.map((f) => [f.path, f.isNew])).toEqual([
      [`${CHART}/templates/_wireguard.tpl`, true],
      [`${CHART}/templates/daemonset.yaml`, false],
      [`${CHART}/values.yaml`, false],
    ]);
    expect(patch.flatMap((f) => f.hunks.flat()).filter((l) => l.op === '-')).toEqual([]);
    // Four hooks, each switched by wireguard.enabled, each only includes of _wireguard.tpl.
    const hooks = additions(patched('templates/daemonset.yaml'));
    expect(hooks.map((h) => [h.added[0], h.added[h.added.length - 1]])).toEqual(Array(4).fill(['{{- if .Values.wireguard.enabled }}', '{{- end }}']));
    for (const h of hooks) for (const line of h.added.slice(1, -1)) expect(line).toMatch(/^ *\{\{- include "peerpods\.wireguard\.[A-Za-z]+" \. (\| nindent \d+ )?\}\}$/);
    expect(Object.keys(defaults)).toEqual(['enabled', 'image', 'port', 'backend', 'stateDir', 'metrics', 'workerCidr', 'privileged', 'logLevel', 'resources']);
    expect(defaults['enabled']).toBe(false);
  });

  it('changes nothing while wireguard.enabled is false (the default)', () => {
    expect(renderText()).toBe(standIn);
  });

  it('renders a valid DaemonSet whose CAA container gains only the socket env, TUNNEL_TYPE and the socket folder', () => {
    const before = parse(standIn) as IDaemonSet;
    const ds = validated(render(on));
    const spec = podSpecOf(ds);
    expect(spec.containers.map((c) => c.name)).toEqual(['cloud-api-adaptor-con', 'peerpod-wg-sidecar']);
    expect(spec.hostNetwork).toBe(true);
    // Everything but the containers and volumes is CAA's, untouched.
    const { containers: _c, volumes: _v, ...rest } = spec;
    const { containers: _c0, volumes: _v0, ...restBefore } = podSpecOf(before);
    expect(rest).toEqual(restBefore);

    const caaBefore = container(before, 'cloud-api-adaptor-con');
    const env = [...(caaBefore.env ?? [])];
    env.splice(env.findIndex((e) => e.name === 'POD_UID') + 1, 0, { name: 'TUNNEL_TYPE', value: 'wireguard' }, { name: 'WG_SOCKET', value: '/run/peerpod-wg/sidecar.sock' });
    const mounts = [...(caaBefore.volumeMounts ?? [])];
    mounts.splice(mounts.findIndex((m) => m.name === 'lib-modules') + 1, 0, { mountPath: '/run/peerpod-wg', name: 'peerpod-wg-socket' });
    // env wins over envFrom, so TUNNEL_TYPE=wireguard reaches CAA whatever peer-pods-cm holds.
    expect(container(ds, 'cloud-api-adaptor-con')).toEqual({ ...caaBefore, env, volumeMounts: mounts });
    expect(container(ds, 'cloud-api-adaptor-con').securityContext).toEqual({ capabilities: { add: ['NET_ADMIN', 'SYS_ADMIN'] } });
  });

  it('gives the sidecar exactly its capabilities, mounts and volumes', () => {
    const ds = validated(render(on));
    const sidecar = container(ds, 'peerpod-wg-sidecar');
    expect(sidecar.image).toBe('peerpod-wg-sidecar:latest');
    expect(sidecar.imagePullPolicy).toBe('IfNotPresent');
    // privileged only because /proc/sys is read-only otherwise (see values.yaml); the capabilities
    // are what is left once it is not: NET_ADMIN for links and iptables, SYS_ADMIN for setns.
    expect(sidecar.securityContext).toEqual({ privileged: true, capabilities: { add: ['NET_ADMIN', 'SYS_ADMIN'] } });
    expect(container(validated(render({ wireguard: { enabled: true, privileged: false } })), 'peerpod-wg-sidecar').securityContext).toEqual({
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'SYS_ADMIN'] },
    });
    expect(sidecar.volumeMounts).toEqual([
      { mountPath: '/run/peerpod-wg', name: 'peerpod-wg-socket' },
      { mountPath: '/var/lib/peerpod-wireguard', name: 'peerpod-wg-state' },
      { mountPath: '/run/netns', mountPropagation: 'HostToContainer', name: 'netns' },
      { mountPath: '/run/xtables.lock', name: 'xtables-lock' },
      { mountPath: '/dev/net/tun', name: 'peerpod-wg-tun' },
      { mountPath: '/var/run/wireguard', name: 'peerpod-wg-uapi' },
    ]);
    expect(podSpecOf(ds).volumes?.map((v) => v.name)).toEqual([
      'pods-dir', 'netns', 'xtables-lock', 'lib-modules',
      'peerpod-wg-socket', 'peerpod-wg-state', 'peerpod-wg-tun', 'peerpod-wg-uapi',
      'kata-direct-volumes-dir',
    ]);
    expect(['peerpod-wg-socket', 'peerpod-wg-state', 'peerpod-wg-tun', 'peerpod-wg-uapi'].map((n) => volume(ds, n))).toEqual([
      { emptyDir: {}, name: 'peerpod-wg-socket' },
      { hostPath: { path: '/var/lib/peerpod-wireguard', type: 'DirectoryOrCreate' }, name: 'peerpod-wg-state' },
      { hostPath: { path: '/dev/net/tun', type: 'CharDevice' }, name: 'peerpod-wg-tun' },
      { hostPath: { path: '/var/run/wireguard', type: 'DirectoryOrCreate' }, name: 'peerpod-wg-uapi' },
    ]);
    // netns and xtables-lock are CAA's own volumes, reused.
    expect(volume(ds, 'netns')).toEqual({ hostPath: { path: '/run/netns' }, name: 'netns' });
    expect(volume(ds, 'xtables-lock')).toEqual({ hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' }, name: 'xtables-lock' });
    expect(sidecar.resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' } });
    expect(sidecar.resources?.limits).toBeUndefined();
  });

  it('shares one socket folder between CAA and the sidecar, and its env is what the sidecar accepts', () => {
    const ds = validated(render(on));
    const sidecar = container(ds, 'peerpod-wg-sidecar');
    const caa = container(ds, 'cloud-api-adaptor-con');
    const env = envOf(sidecar);
    expect(env).toEqual({
      TUNNEL_TYPE: 'wireguard',
      WG_PORT: '51900',
      WG_BACKEND: 'auto',
      WG_STATE_DIR: '/var/lib/peerpod-wireguard',
      WG_SOCKET: '/run/peerpod-wg/sidecar.sock',
      WG_METRICS_ADDR: '127.0.0.1:9855',
      LOG_LEVEL: 'info',
    });
    // CAA's provider settings (CLOUD_PROVIDER, AWS_SG_IDS, AZURE_NSG_ID, …) come from peer-pods-cm;
    // no cloud credentials unless it opens the port (workerCidr).
    expect(sidecar.envFrom).toEqual([{ configMapRef: { name: 'peer-pods-cm' } }]);
    expect(envOf(caa)['WG_SOCKET']).toBe(env['WG_SOCKET']);

    const config = sidecarConfigFromEnv(env);
    const mountOf = (c: Container, volumeName: string): string | undefined => c.volumeMounts?.find((m) => m.name === volumeName)?.mountPath;
    expect(dirname(config.socket)).toBe(mountOf(sidecar, 'peerpod-wg-socket'));
    expect(dirname(config.socket)).toBe(mountOf(caa, 'peerpod-wg-socket'));
    expect(config.stateDir).toBe(mountOf(sidecar, 'peerpod-wg-state'));
    expect(config).toMatchObject({ tunnelType: 'wireguard', wgPort: 51900, backend: 'auto', logLevel: 'info' });
    for (const [probe, path] of [[sidecar.readinessProbe, '/readyz'], [sidecar.livenessProbe, '/healthz']] as const) {
      expect(probe?.httpGet).toEqual({ host: config.metricsAddr?.host, port: config.metricsAddr?.port, path });
    }
  });

  it('with the kernel backend mounts /lib/modules read-only instead of the TUN and the UAPI folder', () => {
    const ds = validated(render({ wireguard: { enabled: true, backend: 'kernel' } }));
    const mounts = container(ds, 'peerpod-wg-sidecar').volumeMounts ?? [];
    expect(mounts.slice(4)).toEqual([{ mountPath: '/lib/modules', name: 'lib-modules', readOnly: true }]);
    expect(volume(ds, 'lib-modules')).toEqual({ hostPath: { path: '/lib/modules', type: '' }, name: 'lib-modules' });
    expect(volume(ds, 'peerpod-wg-tun')).toBeUndefined();
    expect(volume(ds, 'peerpod-wg-uapi')).toBeUndefined();
    expect(envOf(container(ds, 'peerpod-wg-sidecar'))['WG_BACKEND']).toBe('kernel');
  });

  it("gives the sidecar CAA's cloud credentials only when it opens the port (workerCidr)", () => {
    const ds = validated(render({ wireguard: { enabled: true, workerCidr: '203.0.113.7/32' } }));
    const sidecar = container(ds, 'peerpod-wg-sidecar');
    expect(envOf(sidecar)['WG_WORKER_CIDR']).toBe('203.0.113.7/32');
    const caaSecret = container(ds, 'cloud-api-adaptor-con').envFrom?.find((e) => e.secretRef !== undefined);
    expect(caaSecret).toEqual({ secretRef: { name: 'peer-pods-secret' } });
    expect(sidecar.envFrom).toEqual([caaSecret, { configMapRef: { name: 'peer-pods-cm' } }]);
    const reference = render({ wireguard: { enabled: true, workerCidr: '203.0.113.7/32' }, secrets: { mode: 'reference', existingSecretName: 'aws-creds' } });
    expect(container(reference, 'peerpod-wg-sidecar').envFrom?.[0]).toEqual({ secretRef: { name: 'aws-creds' } });
  });

  it('refuses settings the sidecar cannot work with, naming the setting', () => {
    const failure = (over: Values): string => {
      try {
        renderText(merge(on, over));
      } catch (e) {
        if (e instanceof TemplateFail) return e.message;
        throw e;
      }
      return 'rendered';
    };
    expect(failure({ daemonset: { updateStrategy: { maxUnavailable: 0, maxSurge: 1 } } })).toMatch(/^wireguard\.enabled needs daemonset\.updateStrategy\.maxSurge=0/);
    expect(failure({ daemonset: { updateStrategy: { maxUnavailable: 1, maxSurge: '0%' } } })).toBe('rendered');
    expect(failure({ provider: 'libvirt', wireguard: { workerCidr: '203.0.113.7/32' } })).toMatch(
      /^wireguard\.workerCidr: the sidecar opens the WireGuard port only on aws and azure, not on libvirt; .* open UDP 51900 /,
    );
    expect(failure({ providerConfigs: { aws: { TUNNEL_TYPE: 'vxlan' } } })).toMatch(/providerConfigs\.aws\.TUNNEL_TYPE says otherwise/);
    expect(failure({ providerConfigs: { aws: { TUNNEL_TYPE: 'wireguard' } } })).toBe('rendered');
  });
});

describe('the Go-template subset renderer', () => {
  const t = new GoTemplates();
  const run = (source: string, data: unknown = {}): string => t.render(t.add(source), data);

  it('trims around {{- and -}} as text/template does, and drops comments', () => {
    expect(run('a  \n  {{- "b" -}}  \n c{{/* gone */}}')).toBe('abc');
    expect(run('x: {{ .a | quote }}\n{{- if .b }}\ny{{ else if .c }}\nz{{ else }}\nw{{ end }}', { a: 1, c: true })).toBe('x: "1"\nz');
    expect(run('{{- toYaml .r | nindent 2 }}', { r: { requests: { memory: '1Mi', cpu: 1 } } })).toBe('\n  requests:\n    cpu: 1\n    memory: 1Mi');
  });

  it('refuses what it does not implement, instead of rendering it wrongly', () => {
    expect(() => run('{{ range .a }}{{ end }}')).toThrow('unsupported template syntax: {{ range .a }}');
    expect(() => run('{{ $x := 1 }}')).toThrow('unsupported template syntax');
    expect(() => run('{{ lower "A" }}')).toThrow('unsupported template syntax "lower"');
    expect(() => run('{{ .a }}', { a: { b: 1 } })).toThrow('printing a map or list');
    expect(() => run('{{ .a.b }}')).toThrow('nil pointer evaluating .a.b');
  });
});
