// The Azure adapter against a fake ARM behind the SDK's `httpClient` option: the exact URLs and
// request bodies on the wire (userData that decodes to our cloud-config, the flattened VM model
// serialised under `properties`, one UDP NSG rule for the worker's CIDR), idempotence (an identical
// rule is never written again, a gone VM is success), and ARM errors that name the operation and the
// resource. The fake answers every request itself: nothing reaches Azure.
import { beforeEach, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { PeerpodError } from '../../src/errors.js';
import { APF_JSON_PATH } from '../../src/podnetwork/cloud-init.js';
import type { AzureProviderConfig } from '../../src/provider/config.js';
import { AZURE_USERDATA_LIMIT, createAzureProvider, parseArmId } from '../../src/provider/azure/index.js';
import type { CloudProvider } from '../../src/provider/provider.js';
import { FakeArm, SUB, credential, type Json } from './fake-arm.js';
import { caught } from '../support/errors.js';

const APF = readFileSync(new URL('../../../test/fixtures/podnetwork/apf-wireguard.json', import.meta.url), 'utf8');
const ARM = 'https://management.azure.com';
const NSG_ID = `/subscriptions/${SUB}/resourceGroups/net-rg/providers/Microsoft.Network/networkSecurityGroups/podvm-nsg`;
const SUBNET_ID = `/subscriptions/${SUB}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods`;
const WORKER_CIDR = '203.0.113.7/32';
const RULE = 'peerpod-wg-udp-51900-03e9b06641'; // sha256("203.0.113.7/32"), first 10 hex digits

const CONFIG: AzureProviderConfig = {
  provider: 'azure',
  subscriptionId: SUB,
  resourceGroup: 'pods-rg',
  region: 'eastus',
  instanceSize: 'Standard_DC2as_v5',
  imageId: `/subscriptions/${SUB}/resourceGroups/img-rg/providers/Microsoft.Compute/images/podvm`,
  subnetId: SUBNET_ID,
  nsgId: NSG_ID,
  sshUsername: 'peerpod',
  sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test',
  nsgPriority: 1000,
  usePublicIp: false,
  disableCvm: false,
  tunnel: { port: 51900, sourceCidr: WORKER_CIDR, allowAnySource: false },
};

let arm: FakeArm;
function provider(config: Partial<AzureProviderConfig> = {}): CloudProvider {
  return createAzureProvider({ ...CONFIG, ...config }, { credential, httpClient: arm, maxRetries: 0 });
}

beforeEach(() => {
  arm = new FakeArm();
});

describe('createInstance', () => {
  it('PUTs the VM with userData = base64(our cloud-config), every setting under properties, then reads its NIC', async () => {
    const instance = await provider().createInstance({ name: 'podvm-nginx-3f2a1b0c', userdata: APF });

    const vmPath = `/subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Compute/virtualMachines/podvm-nginx-3f2a1b0c`;
    expect(instance).toEqual({ id: vmPath, ips: { private: ['10.1.0.4'] } });
    expect(arm.calls()).toEqual([
      `PUT ${vmPath}`,
      `GET /subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Network/networkInterfaces/podvm-nginx-3f2a1b0c-nic`,
    ]);
    const put = arm.seen[0]!;
    expect(arm.seen.every((s) => s.origin === ARM)).toBe(true);
    expect(put.apiVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(put.authorization).toBe('Bearer fake-token');
    const props = put.body!['properties'] as Json;
    const userData = Buffer.from(props['userData'] as string, 'base64').toString('utf8');
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    expect(parse(userData)).toEqual({ write_files: [{ path: APF_JSON_PATH, content: APF }] });
    expect({ ...put.body, properties: { ...props, userData: '<checked above>' } }).toEqual({
      location: 'eastus',
      properties: {
        hardwareProfile: { vmSize: 'Standard_DC2as_v5' },
        storageProfile: {
          imageReference: { id: CONFIG.imageId },
          osDisk: {
            name: 'podvm-nginx-3f2a1b0c-disk',
            createOption: 'FromImage',
            caching: 'ReadWrite',
            deleteOption: 'Delete',
            managedDisk: { storageAccountType: 'Standard_LRS', securityProfile: { securityEncryptionType: 'VMGuestStateOnly' } },
          },
        },
        osProfile: {
          computerName: 'podvm-nginx-3f2a1b0c',
          adminUsername: 'peerpod',
          linuxConfiguration: {
            disablePasswordAuthentication: true,
            ssh: { publicKeys: [{ path: '/home/peerpod/.ssh/authorized_keys', keyData: CONFIG.sshPublicKey }] },
          },
        },
        networkProfile: {
          networkApiVersion: '2020-11-01',
          networkInterfaceConfigurations: [
            {
              name: 'podvm-nginx-3f2a1b0c-nic',
              properties: {
                primary: true,
                deleteOption: 'Delete',
                networkSecurityGroup: { id: NSG_ID },
                ipConfigurations: [{ name: 'podvm-nginx-3f2a1b0c-ip', properties: { primary: true, subnet: { id: SUBNET_ID } } }],
              },
            },
          ],
        },
        securityProfile: { securityType: 'ConfidentialVM', uefiSettings: { secureBootEnabled: false, vTpmEnabled: true } },
        userData: '<checked above>',
      },
    });
    // customData is what waagent/cloud-init read; CAA's process-user-data reads userData from IMDS.
    expect(JSON.stringify(put.body)).not.toContain('customData');
  });

  it('with USE_PUBLIC_IP gives the NIC a public IP that dies with the VM, and returns its address', async () => {
    const instance = await provider({ usePublicIp: true, disableCvm: true }).createInstance({ name: 'podvm-pub', userdata: APF });
    expect(instance.ips).toEqual({ private: ['10.1.0.4'], public: ['198.51.100.20'] });
    const props = arm.seen[0]!.body!['properties'] as Json;
    const nic = (props['networkProfile'] as { networkInterfaceConfigurations: { properties: { ipConfigurations: Json[] } }[] }).networkInterfaceConfigurations[0]!;
    expect(nic.properties.ipConfigurations[0]).toEqual({
      name: 'podvm-pub-ip',
      properties: {
        primary: true,
        subnet: { id: SUBNET_ID },
        publicIPAddressConfiguration: {
          name: 'podvm-pub-pip',
          sku: { name: 'Standard', tier: 'Regional' },
          properties: { deleteOption: 'Delete', publicIPAllocationMethod: 'Static' },
        },
      },
    });
    expect(props['securityProfile']).toBeUndefined();
    expect((props['storageProfile'] as { osDisk: { managedDisk: Json } }).osDisk.managedDisk).toEqual({ storageAccountType: 'Standard_LRS' });
    expect(arm.calls()[2]).toBe(`GET /subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Network/publicIPAddresses/podvm-pub-pip`);
  });

  it('takes a community gallery image by its gallery id', async () => {
    await provider({ imageId: '/CommunityGalleries/cocopodvm-d0e4/Images/podvm/Versions/0.13.0' }).createInstance({ name: 'podvm-a', userdata: APF });
    const storage = (arm.seen[0]!.body!['properties'] as { storageProfile: Json }).storageProfile;
    expect(storage['imageReference']).toEqual({ communityGalleryImageId: '/CommunityGalleries/cocopodvm-d0e4/Images/podvm/Versions/0.13.0' });
  });

  it('refuses userdata over 64 KB of base64 before any request', async () => {
    const doc = JSON.parse(APF) as Json;
    doc['tls-server-cert'] = 'x'.repeat(AZURE_USERDATA_LIMIT);
    const e = await caught(provider().createInstance({ name: 'podvm-big', userdata: JSON.stringify(doc) }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toMatch(/^userdata for podvm-big is \d+ characters in base64: Azure allows 65536 \(64 KB\)$/);
    expect(arm.seen).toHaveLength(0);
  });

  it('names the operation and the VM when ARM refuses, and deletes nothing it did not create', async () => {
    arm.fail('PUT', /virtualMachines/, 403, 'AuthorizationFailed', "The client 'x' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write'.");
    const e = await caught(provider().createInstance({ name: 'podvm-a', userdata: APF }));
    expect(e.code).toBe('ECLOUD');
    expect(e.message).toBe(
      "virtualMachines.createOrUpdate failed for VM podvm-a in resource group pods-rg: AuthorizationFailed: The client 'x' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write'.",
    );
    expect(e.context).toMatchObject({
      op: 'virtualMachines.createOrUpdate',
      cloud: 'azure',
      vm: 'podvm-a',
      cloudCode: 'AuthorizationFailed',
      httpStatus: 403,
      permission: 'Microsoft.Compute/virtualMachines/write',
    });
    expect(e.cause).toBeInstanceOf(Error);
    expect(arm.calls()).toHaveLength(1);
  });

  it('deletes the VM again when its addresses cannot be read, and keeps the first error', async () => {
    arm.fail('GET', /networkInterfaces/, 429, 'TooManyRequests', 'Too many requests');
    const e = await caught(provider().createInstance({ name: 'podvm-a', userdata: APF }));
    expect(e.message).toBe('networkInterfaces.get failed for NIC podvm-a-nic of VM podvm-a: TooManyRequests: Too many requests');
    expect(e.context).toMatchObject({ op: 'networkInterfaces.get', vm: 'podvm-a', nic: 'podvm-a-nic', httpStatus: 429 });
    expect(arm.calls().slice(-2)).toEqual([
      `GET /subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Compute/virtualMachines/podvm-a`,
      `DELETE /subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Compute/virtualMachines/podvm-a`,
    ]);
    expect(arm.vms.size).toBe(0);
    expect(e.cleanupErrors).toEqual([]);
  });
});

describe('deleteInstance', () => {
  it('deletes a VM by its resource id (its NIC, disk and public IP go with it)', async () => {
    const { id } = await provider().createInstance({ name: 'podvm-a', userdata: APF });
    arm.seen.length = 0;
    expect(await provider().deleteInstance(id)).toEqual({ existed: true });
    expect(arm.calls()).toEqual([`GET ${id}`, `DELETE ${id}`]);
  });

  it('treats a VM that is already gone as success, without a DELETE', async () => {
    const id = `/subscriptions/${SUB}/resourceGroups/pods-rg/providers/Microsoft.Compute/virtualMachines/podvm-gone`;
    expect(await provider().deleteInstance(id)).toEqual({ existed: false });
    expect(arm.calls()).toEqual([`GET ${id}`]);
  });

  it('refuses an id that is not a VM of this subscription', async () => {
    await expect(provider().deleteInstance('podvm-a')).rejects.toMatchObject({ code: 'EINVAL', context: { field: 'id' } });
    const other = '/subscriptions/ffffffff-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x';
    await expect(provider().deleteInstance(other)).rejects.toMatchObject({ code: 'EINVAL' });
    expect(arm.seen).toHaveLength(0);
  });

  it('names the operation and the VM on errors', async () => {
    const { id } = await provider().createInstance({ name: 'podvm-a', userdata: APF });
    arm.fail('DELETE', /virtualMachines/, 409, 'OperationNotAllowed', 'Operation is not allowed');
    const e = await caught(provider().deleteInstance(id));
    expect(e.message).toBe('virtualMachines.delete failed for VM podvm-a in resource group pods-rg: OperationNotAllowed: Operation is not allowed');
  });
});

describe('ensureTunnelPort', () => {
  const request = { port: 51900, protocol: 'udp', sourceCidr: WORKER_CIDR } as const;
  const nsgPath = `/subscriptions/${SUB}/resourceGroups/net-rg/providers/Microsoft.Network/networkSecurityGroups/podvm-nsg`;
  const rulePath = `${nsgPath}/securityRules/${RULE}`;
  const ruleBody = (priority: number): Json => ({
    properties: {
      description: `peerpod-wireguard: WireGuard udp/51900 from the worker ${WORKER_CIDR}`,
      protocol: 'Udp',
      sourcePortRange: '*',
      destinationPortRange: '51900',
      sourceAddressPrefix: WORKER_CIDR,
      destinationAddressPrefix: '*',
      access: 'Allow',
      priority,
      direction: 'Inbound',
    },
  });

  it('gets the rule first, then creates it: UDP, the port, the worker CIDR, the lowest free priority', async () => {
    arm.otherRules = [
      { name: 'ssh', properties: { priority: 1000, direction: 'Inbound', access: 'Allow' } },
      { name: 'https', properties: { priority: 1001, direction: 'Inbound', access: 'Allow' } },
      { name: 'egress', properties: { priority: 1002, direction: 'Outbound', access: 'Allow' } },
    ];
    expect(await provider().ensureTunnelPort(request)).toEqual({ changed: true, rule: `podvm-nsg/${RULE} udp/51900 from ${WORKER_CIDR}` });
    expect(arm.calls()).toEqual([`GET ${rulePath}`, `GET ${nsgPath}`, `PUT ${rulePath}`]);
    expect(arm.seen[2]!.body).toEqual(ruleBody(1002));
  });

  it('makes no write when the same rule is there, however often it is called', async () => {
    const p = provider();
    const results = [await p.ensureTunnelPort(request), await p.ensureTunnelPort(request), await p.ensureTunnelPort(request)];
    expect(results.map((r) => r.changed)).toEqual([true, false, false]);
    expect(arm.calls().filter((c) => c.startsWith('PUT'))).toHaveLength(1);
    expect(arm.calls().slice(3)).toEqual([`GET ${rulePath}`, `GET ${rulePath}`]);
  });

  it('puts back a rule someone changed, at the priority it holds', async () => {
    arm.rules.set(RULE, { name: RULE, properties: { ...(ruleBody(1234)['properties'] as Json), sourceAddressPrefix: '0.0.0.0/0' } });
    expect((await provider().ensureTunnelPort(request)).changed).toBe(true);
    expect(arm.calls()).toEqual([`GET ${rulePath}`, `PUT ${rulePath}`]);
    expect(arm.seen[1]!.body).toEqual(ruleBody(1234));
  });

  it('keeps one rule per worker CIDR, so workers behind different NATs can share the NSG', async () => {
    await provider().ensureTunnelPort(request);
    await provider().ensureTunnelPort({ ...request, sourceCidr: '198.51.100.0/24' });
    expect([...arm.rules.keys()]).toEqual([RULE, expect.stringMatching(/^peerpod-wg-udp-51900-[0-9a-f]{10}$/)]);
    expect([...arm.rules.values()].map((r) => (r['properties'] as Json)['priority'])).toEqual([1000, 1001]);
  });

  it('refuses ::/0 unless any source is allowed, before any request', async () => {
    await expect(provider().ensureTunnelPort({ ...request, sourceCidr: '::/0' })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(arm.seen).toHaveLength(0);
  });

  it('names the operation, the NSG and the rule when ARM refuses or throttles', async () => {
    arm.fail('PUT', /securityRules/, 403, 'AuthorizationFailed', 'no securityRules/write');
    const e = await caught(provider().ensureTunnelPort(request));
    expect(e.message).toBe(`securityRules.createOrUpdate failed for NSG podvm-nsg rule ${RULE} (udp/51900 from ${WORKER_CIDR}): AuthorizationFailed: no securityRules/write`);
    expect(e.context).toMatchObject({ op: 'securityRules.createOrUpdate', nsg: 'podvm-nsg', rule: RULE, resourceGroup: 'net-rg', port: 51900, httpStatus: 403 });
    // The message names no action, so the operation we called does.
    expect(e.context['permission']).toBe('Microsoft.Network/networkSecurityGroups/securityRules/write');

    arm = new FakeArm();
    arm.fail('GET', /securityRules/, 429, 'TooManyRequests', 'slow down');
    const t = await caught(provider().ensureTunnelPort(request));
    expect(t.message).toBe(`securityRules.get failed for NSG podvm-nsg rule ${RULE}: TooManyRequests: slow down`);
    expect(t.context['permission']).toBeUndefined();

    arm = new FakeArm();
    arm.fail('GET', /securityRules/, 403, 'LinkedAuthorizationFailed', "The client 'x' does not have authorization to perform action 'Microsoft.Network/networkSecurityGroups/read' over scope 'y'");
    expect((await caught(provider().ensureTunnelPort(request))).context['permission']).toBe('Microsoft.Network/networkSecurityGroups/read');
  });

  it('reports a missing NSG as ENOTFOUND', async () => {
    arm.fail('GET', /networkSecurityGroups\/podvm-nsg$/, 404, 'ResourceNotFound', "The Resource 'podvm-nsg' was not found.");
    const e = await caught(provider().ensureTunnelPort(request));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.message).toBe("networkSecurityGroups.get failed for NSG podvm-nsg: ResourceNotFound: The Resource 'podvm-nsg' was not found.");
  });
});

describe('parseArmId', () => {
  it('takes an id apart, case-insensitively in its fixed parts', () => {
    expect(parseArmId(NSG_ID.replace('resourceGroups', 'resourcegroups'), 'Microsoft.Network/networkSecurityGroups', 'x')).toEqual({
      subscription: SUB,
      resourceGroup: 'net-rg',
      name: 'podvm-nsg',
    });
    expect(() => parseArmId(`${NSG_ID}/securityRules/r`, 'Microsoft.Network/networkSecurityGroups', 'x')).toThrow(/is not a Microsoft.Network\/networkSecurityGroups id/);
    expect(() => parseArmId(SUBNET_ID, 'Microsoft.Network/networkSecurityGroups', 'x')).toThrow(PeerpodError);
  });
});
