// The typed map from provider name to its adapter, loaded on first use by dynamic import. Importing
// this file loads no SDK and registers nothing: a cloud's SDK is loaded only when that cloud's
// provider is built. An unknown name fails with the list of valid ones. Building the credentials an
// adapter needs is left to the composition root (cmd/).
import { PeerpodError } from '../errors.js';
import type { AwsProviderOptions } from './aws/index.js';
import type { AzureProviderOptions } from './azure/index.js';
import type { FirewallConfig, ProviderConfig } from './config.js';
import { PROVIDER_NAMES, type CloudFirewall, type CloudProvider, type ProviderName } from './provider.js';

export interface ProviderModules {
  aws: typeof import('./aws/index.js');
  azure: typeof import('./azure/index.js');
}

const PROVIDER_MODULES: { readonly [N in ProviderName]: () => Promise<ProviderModules[N]> } = {
  aws: () => import('./aws/index.js'),
  azure: () => import('./azure/index.js'),
};

/** What each adapter needs besides its config. Azure has no default credential: the caller gives one. */
export interface ProviderDeps {
  readonly aws?: AwsProviderOptions;
  readonly azure?: AzureProviderOptions;
}

export function isProviderName(name: string): name is ProviderName {
  return Object.hasOwn(PROVIDER_MODULES, name);
}

/** Loads one adapter module; `name` may come from anywhere, so it is checked. */
export async function loadProviderModule<N extends ProviderName>(name: N): Promise<ProviderModules[N]>;
export async function loadProviderModule(name: string): Promise<ProviderModules[ProviderName]>;
export async function loadProviderModule(name: string): Promise<ProviderModules[ProviderName]> {
  if (!isProviderName(name)) throw unknownProvider(name);
  return PROVIDER_MODULES[name]();
}

/** Builds the provider that `config` names. */
export async function createProvider(config: ProviderConfig, deps: ProviderDeps = {}): Promise<CloudProvider> {
  switch (config.provider) {
    case 'aws':
      return (await loadProviderModule('aws')).createAwsProvider(config, deps.aws);
    case 'azure':
      return (await loadProviderModule('azure')).createAzureProvider(config, azureDeps(deps));
    default:
      // Config that bypassed the types (parsed JSON, a cast) still gets a clear answer.
      throw unknownProvider(String((config as { provider: unknown }).provider));
  }
}

/** Builds only the pod VMs' firewall rule for the cloud `config` names; loads the same SDK. */
export async function createFirewall(config: FirewallConfig, deps: ProviderDeps = {}): Promise<CloudFirewall> {
  switch (config.provider) {
    case 'aws':
      return (await loadProviderModule('aws')).createAwsFirewall(config, deps.aws);
    case 'azure':
      return (await loadProviderModule('azure')).createAzureFirewall(config, azureDeps(deps));
    default:
      throw unknownProvider(String((config as { provider: unknown }).provider));
  }
}

function azureDeps(deps: ProviderDeps): AzureProviderOptions {
  if (deps.azure === undefined) {
    throw new PeerpodError('EINVAL', 'the azure provider needs a TokenCredential (deps.azure.credential)', { op: 'create-provider', field: 'credential' });
  }
  return deps.azure;
}

function unknownProvider(name: string): PeerpodError {
  return new PeerpodError('EINVAL', `unknown cloud provider ${JSON.stringify(name)}: valid providers are ${PROVIDER_NAMES.join(', ')}`, {
    op: 'create-provider',
    field: 'CLOUD_PROVIDER',
  });
}
