// The provider registry: a typed map loaded lazily, unknown names answered with the valid ones, and
// the promise that matters for the pod VM: nothing outside src/provider/<cloud>/ loads a cloud SDK.
// That is checked twice: statically over the source, and by watching what a fresh node process
// actually loads when it imports the registry, the config, the codec and the VM-side readers.
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PeerpodError } from '../../src/errors.js';
import type { ProviderConfig } from '../../src/provider/config.js';
import { PROVIDER_NAMES } from '../../src/provider/provider.js';
import { createFirewall, createProvider, isProviderName, loadProviderModule } from '../../src/provider/registry.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST = join(ROOT, 'dist');
const SDK = /^@(?:aws-sdk|azure|azure-rest|smithy)\//;

const AWS_CONFIG: ProviderConfig = {
  provider: 'aws',
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm6a.large',
  securityGroupIds: ['sg-0123456789abcdef0'],
  usePublicIp: false,
  disableCvm: false,
  tunnel: { port: 51900, sourceCidr: '203.0.113.7/32', allowAnySource: false },
};

describe('registry', () => {
  it('has an adapter for every provider name and nothing else', () => {
    for (const name of PROVIDER_NAMES) expect(isProviderName(name)).toBe(true);
    expect(isProviderName('local')).toBe(false);
    expect(isProviderName('toString')).toBe(false);
  });

  it('loads an adapter on demand', async () => {
    const aws = await loadProviderModule('aws');
    expect(typeof aws.createAwsProvider).toBe('function');
    const provider = await createProvider(AWS_CONFIG);
    expect(provider.name).toBe('aws');
  });

  it('builds the firewall rule alone from its smaller config', async () => {
    const { region, securityGroupIds, tunnel } = AWS_CONFIG;
    const firewall = await createFirewall({ provider: 'aws', region, securityGroupIds, tunnel });
    expect(firewall.name).toBe('aws');
    const azure = { provider: 'azure', subscriptionId: 'x', nsgId: 'y', nsgPriority: 1000, tunnel } as const;
    await expect(createFirewall(azure)).rejects.toMatchObject({ code: 'EINVAL', message: /needs a TokenCredential/ });
  });

  it('names the valid providers for an unknown one', async () => {
    const expected = { code: 'EINVAL', message: 'unknown cloud provider "libvirt": valid providers are aws, azure' };
    await expect(loadProviderModule('libvirt')).rejects.toMatchObject(expected);
    await expect(createProvider({ ...AWS_CONFIG, provider: 'libvirt' } as unknown as ProviderConfig)).rejects.toMatchObject(expected);
  });

  it('asks for an Azure credential instead of inventing one', async () => {
    const azure = { ...AWS_CONFIG, provider: 'azure' } as unknown as ProviderConfig;
    const e = await createProvider(azure).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PeerpodError);
    expect((e as PeerpodError).message).toMatch(/needs a TokenCredential/);
  });
});

describe('cloud SDKs stay inside src/provider/<cloud>/', () => {
  function sources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return sources(path);
      return path.endsWith('.ts') ? [path] : [];
    });
  }

  it('no other source file imports one (not even a type)', () => {
    const offenders: string[] = [];
    for (const file of [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'cmd'))]) {
      const rel = relative(ROOT, file);
      if (/^src\/provider\/(?:aws|azure)\//.test(rel)) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        if (SDK.test(m[1]!)) offenders.push(`${rel}: ${m[1]!}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  async function loadedPackages(modules: string[]): Promise<string[]> {
    const dir = mkdtempSync(join(tmpdir(), 'pwt-sdk-'));
    try {
      const log = join(dir, 'resolved.log');
      writeFileSync(log, '');
      // Module hooks run on their own thread in Node 20, so they report through a file.
      writeFileSync(
        join(dir, 'hooks.mjs'),
        `import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(log, result.url + '\\n');
  return result;
}
`,
      );
      writeFileSync(
        join(dir, 'register.mjs'),
        `import { register } from 'node:module';
register(${JSON.stringify(new URL(`file://${join(dir, 'hooks.mjs')}`).href)}, { data: { log: ${JSON.stringify(log)} } });
`,
      );
      const imports = modules.map((m) => `await import(${JSON.stringify(new URL(`file://${join(DIST, m)}`).href)});`).join('\n');
      await run(process.execPath, ['--no-warnings', '--import', join(dir, 'register.mjs'), '--input-type=module', '-e', imports], { cwd: ROOT });
      const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      const packages = urls
        .map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1])
        .filter((p): p is string => p !== undefined);
      return [...new Set(packages)].sort();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('importing the registry, config, codec, the VM-side readers and the sidecar\'s cloud-port wiring loads no SDK', async () => {
    const loaded = await loadedPackages([
      'src/provider/registry.js',
      'src/provider/config.js',
      'src/podnetwork/cloud-init.js',
      'src/provider/provider.js',
      'src/provider/azure/credential.js',
      'src/userdata/index.js',
      'src/sidecar/config.js',
      'src/sidecar/cloud-port.js',
      'cmd/wiring.js',
      'cmd/cloud-port-wiring.js',
    ]);
    expect(loaded.filter((p) => SDK.test(`${p}/`))).toEqual([]);
    expect(loaded).toContain('yaml');
  });

  it('while loading an adapter does load its SDK (so the check above can see one)', async () => {
    const loaded = await loadedPackages(['src/provider/aws/index.js']);
    expect(loaded).toContain('@aws-sdk/client-ec2');
  });
});
