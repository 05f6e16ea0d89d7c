// The pod VM's way to its apf.json: ask each userdata source in CAA's order (NoCloud file, Azure
// IMDS, AWS IMDSv2), take apf.json out of the first cloud-config that has it, and, as CAA's
// process-user-data does, try again every few seconds (the metadata may not be there yet at boot)
// until a deadline. When every attempt fails, one error reports what each source said last.
// Writing the file, and setting up the tunnel from it, are the agent's job.
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerpodError } from '../errors.js';
import { parseApfJson } from '../podnetwork/schema.js';
import type { ApfDocument } from '../podnetwork/types.js';
import { APF_JSON_PATH, apfJsonFromCloudConfig } from '../podnetwork/cloud-init.js';
import { caaUserdataSources, type UserdataSource } from './sources.js';

/** CAA's process-user-data retries every 5 s. */
export const DEFAULT_RETRY_INTERVAL_MS = 5000;
/** And gives up after 180 s (its --timeout default). */
export const DEFAULT_DEADLINE_MS = 180_000;

export interface FetchApfOptions {
  /** In the order to try them (default: caaUserdataSources()). */
  readonly sources?: readonly UserdataSource[];
  readonly retryIntervalMs?: number;
  /** The overall deadline, from the call; an attempt still running then is cut short. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
  /** Told about every failed read, for logs. */
  readonly onFailure?: (failure: { readonly source: string; readonly attempt: number; readonly error: unknown }) => void;
}

export interface FetchedApf {
  /** The source that had it ("azure-imds"), and the file or URL it read. */
  readonly source: string;
  readonly where: string;
  /** apf.json exactly as it was shipped. */
  readonly apfJson: string;
  readonly document: ApfDocument;
  /** Rounds through the sources, counting the successful one. */
  readonly attempts: number;
}

export async function fetchApfFromUserdata(options: FetchApfOptions = {}): Promise<FetchedApf> {
  const sources = options.sources ?? caaUserdataSources();
  const retryIntervalMs = options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const started = Date.now();
  const stop = AbortSignal.any([AbortSignal.timeout(deadlineMs), ...(options.signal ? [options.signal] : [])]);
  const said = new Map<string, string>(sources.map((s) => [s.name, `${s.where}: not tried`]));

  let attempts = 0;
  while (!stop.aborted) {
    attempts++;
    for (const source of sources) {
      if (stop.aborted) break;
      let apfJson: string;
      try {
        apfJson = apfJsonFromCloudConfig(await source.read(stop), `${source.name} userdata (${source.where})`);
      } catch (e) {
        const message = (e as { message?: unknown } | undefined)?.message;
        said.set(source.name, typeof message === 'string' ? message : String(e));
        options.onFailure?.({ source: source.name, attempt: attempts, error: e });
        continue;
      }
      // A cloud-config that carries apf.json is the answer; if apf.json itself is wrong, asking
      // again will not fix it, so that error is final.
      const document = parseApfJson(apfJson, `apf.json from ${source.name}`);
      return { source: source.name, where: source.where, apfJson, document, attempts };
    }
    if (stop.aborted || Date.now() + retryIntervalMs >= started + deadlineMs) break;
    await sleep(retryIntervalMs, undefined, { signal: stop }).catch(() => undefined);
  }

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const why = options.signal?.aborted ? 'stopped' : `gave up at the ${deadlineMs / 1000} s deadline`;
  const lines = sources.map((s) => `  ${s.name}: ${said.get(s.name) ?? ''}`);
  throw new PeerpodError(
    'ENOTFOUND',
    `no userdata with ${APF_JSON_PATH} after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${seconds} s (${why}):\n${lines.join('\n')}`,
    { op: 'fetch-userdata', attempts },
  );
}
