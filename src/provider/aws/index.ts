// The AWS adapter's entry, loaded only through the registry's dynamic import, so that the EC2 SDK is
// loaded only where this provider is actually used.
export { AWS_USERDATA_LIMIT, createAwsFirewall, createAwsProvider, type AwsProviderOptions } from './ec2-provider.js';
