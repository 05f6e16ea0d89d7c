// The sidecar's cloud firewall rule with its real provider factory, apart from cmd/wiring.ts so
// that the other entry points (wgctl, the pod VM's agent, whose bundle must hold no cloud SDK)
// never import the provider registry.
import type { Logger } from 'pino';
import type { ProviderDeps } from '../src/provider/registry.js';
import { CloudPortRule, type CloudPortPlan } from '../src/sidecar/cloud-port.js';

/**
 * The pod VMs' cloud firewall rule at start, with the real provider factory. The registry (and so
 * the cloud SDK) is loaded only when the plan manages the rule; Azure's credential is the pod's
 * workload identity, or the node's managed identity (src/provider/azure/credential.ts).
 */
export function makeCloudPortRule(plan: CloudPortPlan, log: Logger, signal: AbortSignal): CloudPortRule {
  return new CloudPortRule(plan, {
    openFirewall: async (config) => {
      const { createFirewall } = await import('../src/provider/registry.js');
      let deps: ProviderDeps = {};
      if (config.provider === 'azure') {
        const { azureCredentialFromEnv, azureIdentityKind } = await import('../src/provider/azure/credential.js');
        log.info({ provider: 'azure', identity: azureIdentityKind(process.env) }, 'azure credential for the cloud firewall rule');
        deps = { azure: { credential: azureCredentialFromEnv(process.env) } };
      }
      return createFirewall(config, deps);
    },
    log,
    signal,
  });
}
