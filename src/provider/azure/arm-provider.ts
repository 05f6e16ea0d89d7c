// The Azure adapter: one PUT creates the pod VM with our cloud-config as `userData` (what CAA sets,
// and what its process-user-data reads back from IMDS compute/userData; `customData` is not set),
// together with its NIC, OS disk and optional public IP, all marked to be deleted with the VM. One
// NSG rule lets WireGuard in: UDP, the pod VM's port, from the worker only. The only module that
// talks to ARM; the TokenCredential and, in tests, the HTTP client come from the caller.
//
// arm-compute 24 takes flattened models (`userData`, `hardwareProfile` at the top level) and
// serialises them under `properties` itself: an old-style `properties: {…}` would be dropped without
// a word, so the tests assert the request bodies as they go on the wire.
import { createHash } from 'node:crypto';
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute';
import { NetworkManagementClient, type NetworkManagementClientOptionalParams, type SecurityRule } from '@azure/arm-network';
import { PeerpodError, type ErrorCode } from '../../errors.js';
import { cloudConfigForApf } from '../../podnetwork/cloud-init.js';
import type { AzureFirewallConfig, AzureProviderConfig } from '../config.js';
import {
  CLOUD_FAILURE,
  checkInstanceName,
  checkTunnelPort,
  cloudError,
  type CloudFirewall,
  type CloudInstance,
  type CloudProvider,
  type CreateInstanceRequest,
  type DeleteInstanceResult,
  type InstanceIps,
  type TunnelPortRequest,
  type TunnelPortResult,
} from '../provider.js';
import { parseSourceCidr, readSourceCidr } from '../source-cidr.js';
import { parseArmId } from './arm-id.js';

/** Azure: userData "should be base64 encoded … The size can't exceed 64 KB"; CAA checks the base64. */
export const AZURE_USERDATA_LIMIT = 64 * 1024;
/** NSG priorities: 100 is the highest a custom rule may take, 4096 the lowest. */
const MAX_PRIORITY = 4096;
// Lets the VM create (and later delete) its NIC and public IP itself, from networkInterfaceConfigurations.
const VM_NETWORK_API_VERSION = '2020-11-01';

type TokenCredential = ConstructorParameters<typeof ComputeManagementClient>[0];
type ClientOptions = NetworkManagementClientOptionalParams;
type HttpClient = NonNullable<ClientOptions['httpClient']>;

export interface AzureProviderOptions {
  readonly credential: TokenCredential;
  /** Replaces the SDK's HTTP client (tests point it at a fake; nothing reaches Azure then). */
  readonly httpClient?: HttpClient;
  /** The SDK's retries on 429 and 5xx (default: the SDK's own, 3). */
  readonly maxRetries?: number;
}

export function createAzureProvider(config: AzureProviderConfig, options: AzureProviderOptions): CloudProvider {
  return new ArmProvider(config, options);
}

/** Only the NSG rule, from the little config it needs (the sidecar's case). */
export function createAzureFirewall(config: AzureFirewallConfig, options: AzureProviderOptions): CloudFirewall {
  return new NsgFirewall(new NetworkManagementClient(options.credential, config.subscriptionId, clientOptions(options)), config);
}

function clientOptions(options: AzureProviderOptions): ClientOptions {
  return {
    ...(options.httpClient !== undefined && { httpClient: options.httpClient }),
    ...(options.maxRetries !== undefined && { retryOptions: { maxRetries: options.maxRetries } }),
  };
}

/** One inbound rule in the pod VMs' NSG. */
class NsgFirewall implements CloudFirewall {
  readonly name = 'azure' as const;
  readonly #network: NetworkManagementClient;
  readonly #nsgId: string;
  readonly #nsgPriority: number;

  constructor(network: NetworkManagementClient, config: Pick<AzureFirewallConfig, 'nsgId' | 'nsgPriority'>) {
    this.#network = network;
    this.#nsgId = config.nsgId;
    this.#nsgPriority = config.nsgPriority;
  }

  async ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult> {
    const op = 'securityRules.createOrUpdate';
    checkTunnelPort(request, op);
    const source = parseSourceCidr(request.sourceCidr, { op, field: 'sourceCidr', ...(request.allowAnySource !== undefined && { allowAnySource: request.allowAnySource }) });
    const nsg = parseArmId(this.#nsgId, 'Microsoft.Network/networkSecurityGroups', op);
    // One rule per (port, source), so workers with different egress addresses can share an NSG.
    // Rule names may not contain ':' or '/', so the source goes in as a short hash.
    const ruleName = `peerpod-wg-udp-${request.port}-${createHash('sha256').update(source.cidr).digest('hex').slice(0, 10)}`;
    const where = `NSG ${nsg.name} rule ${ruleName}`;
    const rule = `${nsg.name}/${ruleName} udp/${request.port} from ${source.cidr}`;
    const context = { nsg: nsg.name, rule: ruleName, resourceGroup: nsg.resourceGroup };
    const desired: SecurityRule = {
      description: `peerpod-wireguard: WireGuard udp/${request.port} from the worker ${source.cidr}`,
      protocol: 'Udp',
      sourceAddressPrefix: source.cidr,
      sourcePortRange: '*',
      destinationAddressPrefix: '*',
      destinationPortRange: String(request.port),
      access: 'Allow',
      direction: 'Inbound',
    };

    let existing: SecurityRule | undefined;
    try {
      existing = await this.#network.securityRules.get(nsg.resourceGroup, nsg.name, ruleName, abortable(request.signal));
    } catch (e) {
      if (statusOf(e) !== 404) throw azureError('securityRules.get', where, context, e);
    }
    if (existing && sameRule(existing, desired)) return { changed: false, rule };

    // Someone changed our rule: put it back, at the priority it already holds. A new rule takes the
    // lowest free inbound priority from the configured one up, so the choice only depends on the NSG.
    let priority = existing?.priority;
    if (priority === undefined) {
      let taken: number[];
      try {
        const group = await this.#network.networkSecurityGroups.get(nsg.resourceGroup, nsg.name, abortable(request.signal));
        taken = (group.securityRules ?? []).filter((r) => r.direction === 'Inbound').map((r) => r.priority ?? -1);
      } catch (e) {
        throw azureError('networkSecurityGroups.get', `NSG ${nsg.name}`, context, e);
      }
      priority = freePriority(this.#nsgPriority, taken);
      if (priority === undefined) {
        throw new PeerpodError(CLOUD_FAILURE, `${where}: no free inbound priority from ${this.#nsgPriority} to ${MAX_PRIORITY}`, { op, ...context });
      }
    }
    try {
      await this.#network.securityRules.beginCreateOrUpdateAndWait(nsg.resourceGroup, nsg.name, ruleName, { ...desired, priority }, abortable(request.signal));
    } catch (e) {
      throw azureError(op, `${where} (udp/${request.port} from ${source.cidr})`, { ...context, port: request.port }, e);
    }
    return { changed: true, rule };
  }
}

class ArmProvider implements CloudProvider {
  readonly name = 'azure' as const;
  readonly #config: AzureProviderConfig;
  readonly #compute: ComputeManagementClient;
  readonly #network: NetworkManagementClient;
  readonly #firewall: NsgFirewall;

  constructor(config: AzureProviderConfig, options: AzureProviderOptions) {
    this.#config = config;
    this.#compute = new ComputeManagementClient(options.credential, config.subscriptionId, clientOptions(options));
    this.#network = new NetworkManagementClient(options.credential, config.subscriptionId, clientOptions(options));
    this.#firewall = new NsgFirewall(this.#network, config);
  }

  async createInstance(request: CreateInstanceRequest): Promise<CloudInstance> {
    const op = 'virtualMachines.createOrUpdate';
    const { name } = request;
    checkInstanceName(name, op);
    const permissions = this.#config.apfPermissions === undefined ? {} : { permissions: this.#config.apfPermissions };
    const userData = Buffer.from(cloudConfigForApf(request.userdata, permissions), 'utf8').toString('base64');
    if (userData.length > AZURE_USERDATA_LIMIT) {
      throw new PeerpodError('EINVAL', `userdata for ${name} is ${userData.length} characters in base64: Azure allows ${AZURE_USERDATA_LIMIT} (64 KB)`, {
        op,
        field: 'userdata',
        vm: name,
        bytes: userData.length,
        limit: AZURE_USERDATA_LIMIT,
      });
    }
    const rg = this.#config.resourceGroup;
    let vm: VirtualMachine;
    try {
      vm = await this.#compute.virtualMachines.createOrUpdate(rg, name, this.#vmParameters(name, userData), abortable(request.signal));
    } catch (e) {
      const first = azureError(op, `VM ${name} in resource group ${rg}`, { vm: name, resourceGroup: rg }, e);
      // ARM refused the request itself (4xx): nothing was created, and a VM of that name that
      // exists is not ours to delete. Otherwise the VM may be half made: remove it.
      if (!isClientError(e)) await this.#cleanUp(name, first);
      throw first;
    }
    const id = vm.id ?? `/subscriptions/${this.#config.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;
    try {
      return { id, ips: await this.#ips(vm) };
    } catch (e) {
      // Nobody else knows this VM's id yet: delete it, or it would run (and bill) unseen.
      const first = e instanceof PeerpodError ? e : azureError('networkInterfaces.get', `VM ${name}`, { vm: name }, e);
      await this.#cleanUp(name, first);
      throw first;
    }
  }

  async deleteInstance(id: string): Promise<DeleteInstanceResult> {
    const op = 'virtualMachines.delete';
    const ref = parseArmId(id, 'Microsoft.Compute/virtualMachines', op);
    if (ref.subscription.toLowerCase() !== this.#config.subscriptionId.toLowerCase()) {
      throw new PeerpodError('EINVAL', `VM ${id} is in subscription ${ref.subscription}, not ${this.#config.subscriptionId}`, { op, vm: id, field: 'id' });
    }
    return this.#deleteVm(ref.resourceGroup, ref.name);
  }

  ensureTunnelPort(request: TunnelPortRequest): Promise<TunnelPortResult> {
    return this.#firewall.ensureTunnelPort(request);
  }

  #vmParameters(name: string, userData: string): VirtualMachine {
    const c = this.#config;
    const image = c.imageId.toLowerCase().startsWith('/communitygalleries/') ? { communityGalleryImageId: c.imageId } : { id: c.imageId };
    return {
      location: c.region,
      hardwareProfile: { vmSize: c.instanceSize },
      storageProfile: {
        imageReference: image,
        osDisk: {
          name: `${name}-disk`,
          createOption: 'FromImage',
          caching: 'ReadWrite',
          deleteOption: 'Delete',
          managedDisk: {
            storageAccountType: 'Standard_LRS',
            ...(!c.disableCvm && { securityProfile: { securityEncryptionType: 'VMGuestStateOnly' } }),
          },
        },
      },
      osProfile: {
        computerName: name,
        adminUsername: c.sshUsername,
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ssh: { publicKeys: [{ path: `/home/${c.sshUsername}/.ssh/authorized_keys`, keyData: c.sshPublicKey }] },
        },
      },
      networkProfile: {
        networkApiVersion: VM_NETWORK_API_VERSION,
        networkInterfaceConfigurations: [
          {
            name: `${name}-nic`,
            primary: true,
            deleteOption: 'Delete',
            networkSecurityGroup: { id: c.nsgId },
            ipConfigurations: [
              {
                name: `${name}-ip`,
                primary: true,
                subnet: { id: c.subnetId },
                ...(c.usePublicIp && {
                  publicIPAddressConfiguration: {
                    name: `${name}-pip`,
                    deleteOption: 'Delete',
                    sku: { name: 'Standard', tier: 'Regional' },
                    publicIPAllocationMethod: 'Static',
                  },
                }),
              },
            ],
          },
        ],
      },
      ...(!c.disableCvm && {
        securityProfile: { securityType: 'ConfidentialVM', uefiSettings: { secureBootEnabled: false, vTpmEnabled: true } },
      }),
      userData,
    };
  }

  /** The VM's addresses, read from the NICs it made (and their public IPs). */
  async #ips(vm: VirtualMachine): Promise<InstanceIps> {
    const privateIps: string[] = [];
    const publicIps: string[] = [];
    for (const nicRef of vm.networkProfile?.networkInterfaces ?? []) {
      if (nicRef.id === undefined) continue;
      const nicId = parseArmId(nicRef.id, 'Microsoft.Network/networkInterfaces', 'networkInterfaces.get');
      let nic;
      try {
        nic = await this.#network.networkInterfaces.get(nicId.resourceGroup, nicId.name);
      } catch (e) {
        throw azureError('networkInterfaces.get', `NIC ${nicId.name} of VM ${vm.name ?? ''}`, { vm: vm.name, nic: nicId.name }, e);
      }
      for (const ipc of nic.ipConfigurations ?? []) {
        if (ipc.privateIPAddress) privateIps.push(ipc.privateIPAddress);
        const pipRef = ipc.publicIPAddress?.id;
        if (!this.#config.usePublicIp || pipRef === undefined) continue;
        const pipId = parseArmId(pipRef, 'Microsoft.Network/publicIPAddresses', 'publicIPAddresses.get');
        try {
          const pip = await this.#network.publicIPAddresses.get(pipId.resourceGroup, pipId.name);
          if (pip.ipAddress) publicIps.push(pip.ipAddress);
        } catch (e) {
          throw azureError('publicIPAddresses.get', `public IP ${pipId.name} of VM ${vm.name ?? ''}`, { vm: vm.name, publicIp: pipId.name }, e);
        }
      }
    }
    if (privateIps.length === 0) {
      throw new PeerpodError(CLOUD_FAILURE, `VM ${vm.name ?? ''} has no private address`, { op: 'networkInterfaces.get', vm: vm.name });
    }
    if (this.#config.usePublicIp && publicIps.length === 0) {
      throw new PeerpodError(CLOUD_FAILURE, `VM ${vm.name ?? ''} has no public address, but USE_PUBLIC_IP is set`, { op: 'publicIPAddresses.get', vm: vm.name });
    }
    return { private: privateIps, ...(this.#config.usePublicIp && { public: publicIps }) };
  }

  async #deleteVm(resourceGroup: string, name: string): Promise<DeleteInstanceResult> {
    // ARM answers a DELETE of a missing VM with 204, like a delete that happened; asking first is
    // what lets us tell "already gone" apart.
    try {
      await this.#compute.virtualMachines.get(resourceGroup, name);
    } catch (e) {
      if (statusOf(e) === 404) return { existed: false };
      throw azureError('virtualMachines.get', `VM ${name} in resource group ${resourceGroup}`, { vm: name, resourceGroup }, e);
    }
    try {
      await this.#compute.virtualMachines.delete(resourceGroup, name);
    } catch (e) {
      if (statusOf(e) === 404) return { existed: false };
      throw azureError('virtualMachines.delete', `VM ${name} in resource group ${resourceGroup}`, { vm: name, resourceGroup }, e);
    }
    return { existed: true };
  }

  async #cleanUp(name: string, first: PeerpodError): Promise<void> {
    await this.#deleteVm(this.#config.resourceGroup, name).catch((cleanup: unknown) => first.cleanupErrors.push(cleanup));
  }
}

/** Whether an existing rule already does what ours must (its name, priority and text aside). */
function sameRule(existing: SecurityRule, desired: SecurityRule): boolean {
  const canonical = (prefix: string | undefined): string | undefined => {
    if (prefix === undefined) return undefined;
    const parsed = readSourceCidr(prefix, true);
    return typeof parsed === 'string' ? prefix : parsed.cidr;
  };
  return (
    existing.protocol === desired.protocol &&
    existing.access === desired.access &&
    existing.direction === desired.direction &&
    existing.sourcePortRange === desired.sourcePortRange &&
    existing.destinationPortRange === desired.destinationPortRange &&
    existing.destinationAddressPrefix === desired.destinationAddressPrefix &&
    canonical(existing.sourceAddressPrefix) === desired.sourceAddressPrefix &&
    (existing.sourceAddressPrefixes ?? []).length === 0 &&
    (existing.destinationPortRanges ?? []).length === 0
  );
}

function freePriority(from: number, taken: readonly number[]): number | undefined {
  const used = new Set(taken);
  for (let p = from; p <= MAX_PRIORITY; p++) if (!used.has(p)) return p;
  return undefined;
}

function statusOf(e: unknown): number | undefined {
  const status = (e as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function isClientError(e: unknown): boolean {
  const status = statusOf(e);
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

function azureError(op: string, what: string, context: Record<string, string | number | undefined>, e: unknown): PeerpodError {
  const status = statusOf(e);
  const armCode = (e as { code?: unknown } | undefined)?.code;
  let code: ErrorCode = CLOUD_FAILURE;
  if (status === 404) code = 'ENOTFOUND';
  else if (status === 400) code = 'EINVAL';
  const cloudCode = typeof armCode === 'string' ? armCode : undefined;
  return cloudError(code, what, { op, cloud: 'azure', ...context, cloudCode, httpStatus: status, permission: missingPermission(op, cloudCode, e) }, e);
}

// The RBAC operation behind each call we make, for a refusal whose message does not name one.
const RBAC_OPERATION: Readonly<Record<string, string>> = {
  'virtualMachines.createOrUpdate': 'Microsoft.Compute/virtualMachines/write',
  'virtualMachines.get': 'Microsoft.Compute/virtualMachines/read',
  'virtualMachines.delete': 'Microsoft.Compute/virtualMachines/delete',
  'networkInterfaces.get': 'Microsoft.Network/networkInterfaces/read',
  'publicIPAddresses.get': 'Microsoft.Network/publicIPAddresses/read',
  'networkSecurityGroups.get': 'Microsoft.Network/networkSecurityGroups/read',
  'securityRules.get': 'Microsoft.Network/networkSecurityGroups/securityRules/read',
  'securityRules.createOrUpdate': 'Microsoft.Network/networkSecurityGroups/securityRules/write',
};

/** ARM says "… does not have authorization to perform action 'X' over scope …"; X is what is missing. */
function missingPermission(op: string, cloudCode: string | undefined, e: unknown): string | undefined {
  if (cloudCode !== 'AuthorizationFailed' && cloudCode !== 'LinkedAuthorizationFailed') return undefined;
  const message = (e as { message?: unknown } | undefined)?.message;
  const named = typeof message === 'string' ? /perform action '([^']+)'/.exec(message)?.[1] : undefined;
  return named ?? RBAC_OPERATION[op];
}

function abortable(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}
