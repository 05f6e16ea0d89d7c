// The pod VM's userdata readers: no cloud SDK, only node:fs and node:http, so the agent stays small.
export { DEFAULT_DEADLINE_MS, DEFAULT_RETRY_INTERVAL_MS, fetchApfFromUserdata, type FetchApfOptions, type FetchedApf } from './fetch.js';
export {
  IMDS_BASE_URL,
  NOCLOUD_USER_DATA,
  awsImdsV2Source,
  azureImdsSource,
  caaUserdataSources,
  noCloudSource,
  type CaaSourcesOptions,
  type HttpSourceOptions,
  type UserdataSource,
} from './sources.js';
