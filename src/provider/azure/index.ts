// The Azure adapter's entry, loaded only through the registry's dynamic import, so that the ARM SDKs
// are loaded only where this provider is actually used.
export { AZURE_USERDATA_LIMIT, createAzureFirewall, createAzureProvider, type AzureProviderOptions } from './arm-provider.js';
export { parseArmId, type ArmRef } from './arm-id.js';
