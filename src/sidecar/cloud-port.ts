// At start, the sidecar makes sure the pod VMs' firewall (the AWS security group, the Azure NSG)
// lets WireGuard in: UDP WG_PORT from the worker's egress range WG_WORKER_CIDR, nothing wider.
// What to do is decided once from the environment (cloudPortPlanFromEnv, pure); CloudPortRule then
// tries in the background until the rule is there, and never stops the sidecar from serving:
//
//   off ─────────────────────────────── not managed (disabled, no CLOUD_PROVIDER, no adapter, no SG/NSG)
//   pending ──ensureTunnelPort──▶ open    rule added, or the same rule already there
//      │                    └───▶ denied  a permission is missing  ─┐ retried with backoff,
//      └────────────────────────▶ failing anything else, timeouts ─┘ 5 s doubling to 5 min
//
// "Could not check" (a timeout, throttling, a 5xx, no credentials) is never taken for success.
// The cloud SDK is loaded only by the provider factory it is given (src/provider/registry.ts), and
// only when the plan says to manage the rule. Logging and exposing the state is left to the caller
// of `status` (metrics, /readyz).
import { PeerpodError, describeError } from '../errors.js';
import { firewallConfigFromEnv, parseBool, tunnelPortRequest, type Env, type FirewallConfig } from '../provider/config.js';
import { PROVIDER_NAMES, type CloudFirewall, type TunnelPortResult } from '../provider/provider.js';
import { realClock, realSleep, type Clock, type Sleep } from './time.js';

export const CLOUD_PORT_STATES = ['off', 'pending', 'open', 'denied', 'failing'] as const;
export type CloudPortState = (typeof CLOUD_PORT_STATES)[number];

/** What the sidecar does about the pod VMs' firewall. */
export type CloudPortPlan =
  | {
      readonly manage: false;
      /** CLOUD_PROVIDER as given ('' when unset). */
      readonly provider: string;
      readonly why: string;
      /** True when the environment looks as if the rule was wanted, but a variable is missing. */
      readonly incomplete: boolean;
    }
  | { readonly manage: true; readonly config: FirewallConfig };

const SWITCH = 'WG_MANAGE_CLOUD_RULE';
const FIREWALL_VARIABLE = { aws: 'AWS_SG_IDS', azure: 'AZURE_NSG_ID' } as const;

/**
 * WG_MANAGE_CLOUD_RULE unset: manage the rule when CLOUD_PROVIDER names a cloud we have an adapter
 * for, its security group or NSG variable is set, and WG_WORKER_CIDR is set; otherwise say why not.
 * true: all of those are required. false: never. A value that is set but bad is an EINVAL naming
 * every bad variable, as for the rest of the sidecar's configuration.
 */
export function cloudPortPlanFromEnv(env: Env): CloudPortPlan {
  const set = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const provider = set('CLOUD_PROVIDER') ?? '';
  const off = (why: string, incomplete = false): CloudPortPlan => ({ manage: false, provider, why, incomplete });
  const switchText = set(SWITCH);
  const manage = switchText === undefined ? undefined : parseBool(switchText);
  if (switchText !== undefined && manage === undefined) {
    throw new PeerpodError(
      'EINVAL',
      `${SWITCH}: ${JSON.stringify(switchText)} is not valid: expected true or false (or 1, 0), or unset to open the port when CLOUD_PROVIDER and its security group/NSG variable are set`,
      { op: 'sidecar-config', field: SWITCH },
    );
  }
  if (manage === false) return off(`${SWITCH}=${switchText}: the operator manages the pod VMs' firewall`);
  if (manage === undefined) {
    if (provider === '') return off('CLOUD_PROVIDER is not set');
    if (!(PROVIDER_NAMES as readonly string[]).includes(provider)) {
      return off(`CLOUD_PROVIDER=${provider}: no firewall adapter for it (there are ${PROVIDER_NAMES.join(', ')})`);
    }
    const variable = FIREWALL_VARIABLE[provider as keyof typeof FIREWALL_VARIABLE];
    if (set(variable) === undefined) return off(`${variable} is not set`);
    if (set('WG_WORKER_CIDR') === undefined) {
      return off(
        `WG_WORKER_CIDR is not set: set it to the worker's egress address as ${provider} sees it (e.g. 203.0.113.7/32) to open udp/${set('WG_PORT') ?? 'WG_PORT'} to it, or ${SWITCH}=false if you manage the rule yourself`,
        true,
      );
    }
  }
  return { manage: true, config: firewallConfigFromEnv(env) };
}

/** The last attempt's error, as the status shows it. */
export interface CloudPortError {
  readonly code: string;
  readonly message: string;
  /** The IAM action or RBAC operation that is missing (state denied). */
  readonly permission?: string;
  /** The cloud's own error name (ThrottlingException, AuthorizationFailed, …). */
  readonly cloudCode?: string;
}

export interface CloudPortStatus {
  readonly provider: string;
  readonly state: CloudPortState;
  /** The security group or NSG, e.g. "security group sg-0123…" (when managed). */
  readonly firewall?: string;
  /** off: why the rule is not managed. */
  readonly why?: string;
  /** open: where the rule lives, and whether this start wrote it. */
  readonly rule?: string;
  readonly changed?: boolean;
  /** denied, failing: the last error and what to do about it. */
  readonly error?: CloudPortError;
  readonly remedy?: string;
  readonly attempts: number;
  /** denied, failing: when the next attempt starts (ms since the epoch). */
  readonly nextAttemptAt?: number;
}

/** The logger's shape we need; pino's Logger has it. */
export interface CloudPortLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface CloudPortDeps {
  /** Builds the provider's firewall (in the sidecar: registry.createFirewall, which loads the SDK). */
  readonly openFirewall: (config: FirewallConfig) => Promise<CloudFirewall>;
  readonly log: CloudPortLog;
  /** Shutdown: ends the attempts and the waits between them. */
  readonly signal: AbortSignal;
  readonly sleep?: Sleep;
  readonly now?: Clock;
  /** 0..1; spreads the retries of many workers. */
  readonly random?: () => number;
  /** An attempt with no answer by then is cut and counted as failing (default 60 s). */
  readonly attemptTimeoutMs?: number;
  /** The first wait after a failure (default 5 s); each next one doubles, up to maxBackoffMs (default 5 min). */
  readonly firstBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export class CloudPortRule {
  readonly #plan: CloudPortPlan;
  readonly #deps: CloudPortDeps;
  #status: CloudPortStatus;

  constructor(plan: CloudPortPlan, deps: CloudPortDeps) {
    this.#plan = plan;
    this.#deps = deps;
    this.#status = plan.manage
      ? { provider: plan.config.provider, state: 'pending', firewall: firewallOf(plan.config), attempts: 0 }
      : { provider: plan.provider, state: 'off', why: plan.why, attempts: 0 };
  }

  get status(): CloudPortStatus {
    return this.#status;
  }

  /** Tries until the rule is in place or the signal aborts. Never throws: failures go to the log and the status. */
  async run(): Promise<CloudPortStatus> {
    const plan = this.#plan;
    const { log } = this.#deps;
    if (!plan.manage) {
      const fields = { provider: plan.provider, cloudPortRule: 'off' };
      if (plan.incomplete) log.warn(fields, `not opening the pod VMs' WireGuard port in the cloud firewall: ${plan.why}`);
      else log.info(fields, `not managing the pod VMs' cloud firewall rule: ${plan.why}`);
      return this.#status;
    }
    const first = this.#deps.firstBackoffMs ?? 5_000;
    const max = this.#deps.maxBackoffMs ?? 300_000;
    let backoff = first;
    let firewall: CloudFirewall | undefined;
    while (!this.#deps.signal.aborted) {
      const attempts = this.#status.attempts + 1;
      try {
        firewall ??= await this.#deps.openFirewall(plan.config);
        const result = await this.#attempt(firewall, plan.config);
        this.#succeeded(result, attempts);
        return this.#status;
      } catch (e) {
        if (this.#deps.signal.aborted) break;
        const wait = Math.round(backoff * (0.8 + 0.4 * (this.#deps.random ?? Math.random)()));
        this.#failed(e, plan.config, attempts, wait);
        backoff = Math.min(backoff * 2, max);
        try {
          await (this.#deps.sleep ?? realSleep)(wait, this.#deps.signal);
        } catch {
          break; // shutdown
        }
      }
    }
    return this.#status;
  }

  async #attempt(firewall: CloudFirewall, config: FirewallConfig): Promise<TunnelPortResult> {
    const timeoutMs = this.#deps.attemptTimeoutMs ?? 60_000;
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new PeerpodError('ECLOUD', `${firewallOf(config)}: no answer from ${config.provider} within ${timeoutMs / 1000} s`, { op: 'ensure-tunnel-port', cloud: config.provider }));
    }, timeoutMs);
    const signal = AbortSignal.any([this.#deps.signal, deadline.signal]);
    // A call that ignores the signal must not hold the attempt: the race ends it either way.
    const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
    try {
      return await Promise.race([firewall.ensureTunnelPort({ ...tunnelPortRequest(config), signal }), aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  #succeeded(result: TunnelPortResult, attempts: number): void {
    const { provider } = this.#status;
    this.#status = { provider, state: 'open', ...(this.#status.firewall !== undefined && { firewall: this.#status.firewall }), rule: result.rule, changed: result.changed, attempts };
    this.#deps.log.info({ provider, cloudPortRule: 'open', rule: result.rule, changed: result.changed, attempts }, result.changed ? 'cloud firewall rule added' : 'cloud firewall rule already in place (unchanged)');
  }

  #failed(e: unknown, config: FirewallConfig, attempts: number, wait: number): void {
    const error = errorOf(e);
    const state: CloudPortState = error.permission === undefined ? 'failing' : 'denied';
    const remedy = remedyFor(config, error);
    const nextAttemptAt = (this.#deps.now ?? realClock)() + wait;
    const { provider, firewall } = this.#status;
    this.#status = { provider, state, ...(firewall !== undefined && { firewall }), error, remedy, attempts, nextAttemptAt };
    const what =
      state === 'denied'
        ? `cannot open the pod VMs' WireGuard port: the sidecar's ${provider} identity lacks ${error.permission ?? ''} on ${firewall ?? 'the firewall'}`
        : `could not make sure the pod VMs' WireGuard port is open in ${firewall ?? 'the cloud firewall'}`;
    this.#deps.log.error(
      { provider, cloudPortRule: state, permission: error.permission, cloudCode: error.cloudCode, attempts, retryInMs: wait, err: describeError(e) },
      `${what}; retrying in ${Math.round(wait / 1000)} s; tunnels keep being served. ${remedy}`,
    );
  }
}

function firewallOf(config: FirewallConfig): string {
  if (config.provider === 'aws') return `security group ${config.securityGroupIds[0] ?? '(none)'}`;
  const parts = config.nsgId.split('/');
  return `NSG ${parts[8] ?? config.nsgId} (resource group ${parts[4] ?? '?'})`;
}

function errorOf(e: unknown): CloudPortError {
  if (e instanceof PeerpodError) {
    const { permission, cloudCode } = e.context;
    return {
      code: e.code,
      message: e.message,
      ...(typeof permission === 'string' && { permission }),
      ...(typeof cloudCode === 'string' && { cloudCode }),
    };
  }
  // Not wrapped by an adapter: a credential chain that found nothing, a network error.
  const name = (e as { name?: unknown } | undefined)?.name;
  return { code: 'ECLOUD', message: e instanceof Error ? e.message : String(e), ...(typeof name === 'string' && { cloudCode: name }) };
}

function remedyFor(config: FirewallConfig, error: CloudPortError): string {
  const { port, sourceCidr } = config.tunnel;
  const yourself = `or add an inbound rule udp/${port} from ${sourceCidr} yourself and set ${SWITCH}=false`;
  if (error.permission !== undefined) {
    const doc = config.provider === 'aws' ? 'docs/aws.md, "IAM permissions the sidecar needs"' : 'docs/azure.md, "RBAC actions the sidecar\'s identity needs"';
    return `Grant ${error.permission} on ${firewallOf(config)} to the sidecar's identity (${doc}), ${yourself}.`;
  }
  return `Check the sidecar's ${config.provider} credentials and network access to the ${config.provider} API, ${yourself}.`;
}
