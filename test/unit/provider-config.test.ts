// Provider config from the environment under CAA's names: the happy paths for both clouds, every bad
// variable reported at once with its name and what is valid, and the worker CIDR rules (no
// 0.0.0.0/0 unless asked for, canonical form, no host bits).
import { describe, expect, it } from '@jest/globals';
import { DEFAULT_WG_PORT, firewallConfigFromEnv, providerConfigFromEnv, tunnelPortRequest, type Env } from '../../src/provider/config.js';
import { readSourceCidr } from '../../src/provider/source-cidr.js';
import { DEFAULT_LISTEN_PORT } from '../../src/tunnel/wireguard/worker.js';
import { thrown } from '../support/errors.js';

const SUB = '00000000-0000-0000-0000-0000000000a1';
const AWS: Env = {
  CLOUD_PROVIDER: 'aws',
  AWS_REGION: 'eu-west-1',
  PODVM_AMI_ID: 'ami-0123456789abcdef0',
  AWS_SG_IDS: 'sg-0123456789abcdef0, sg-0fedcba9876543210',
  WG_WORKER_CIDR: '203.0.113.7/32',
};
const AZURE: Env = {
  CLOUD_PROVIDER: 'azure',
  AZURE_SUBSCRIPTION_ID: SUB,
  AZURE_RESOURCE_GROUP: 'pods-rg',
  AZURE_REGION: 'eastus',
  AZURE_IMAGE_ID: '/CommunityGalleries/cocopodvm-d0e4/Images/podvm/Versions/0.13.0',
  AZURE_SUBNET_ID: `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods`,
  AZURE_NSG_ID: `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/networkSecurityGroups/podvm-nsg`,
  AZURE_SSH_PUBLIC_KEY: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n',
  WG_WORKER_CIDR: '203.0.113.7',
};

describe('providerConfigFromEnv', () => {
  it('reads AWS config with CAA defaults', () => {
    expect(providerConfigFromEnv(AWS)).toEqual({
      provider: 'aws',
      region: 'eu-west-1',
      imageId: 'ami-0123456789abcdef0',
      instanceType: 'm6a.large',
      securityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
      usePublicIp: false,
      disableCvm: false,
      tunnel: { port: 51900, sourceCidr: '203.0.113.7/32', allowAnySource: false },
    });
  });

  it('reads every optional AWS variable', () => {
    const config = providerConfigFromEnv({
      ...AWS,
      PODVM_INSTANCE_TYPE: 'c6a.xlarge',
      AWS_SUBNET_ID: 'subnet-0123456789abcdef0',
      SSH_KP_NAME: 'ops',
      USE_PUBLIC_IP: 'true',
      DISABLECVM: '1',
      WG_PORT: '51999',
      WG_APF_PERMISSIONS: '0600',
    });
    expect(config).toMatchObject({
      instanceType: 'c6a.xlarge',
      subnetId: 'subnet-0123456789abcdef0',
      keyName: 'ops',
      usePublicIp: true,
      disableCvm: true,
      apfPermissions: '0600',
      tunnel: { port: 51999 },
    });
  });

  it('reads Azure config with CAA defaults; a bare worker address becomes a /32', () => {
    expect(providerConfigFromEnv(AZURE)).toEqual({
      provider: 'azure',
      subscriptionId: SUB,
      resourceGroup: 'pods-rg',
      region: 'eastus',
      instanceSize: 'Standard_DC2as_v5',
      imageId: AZURE['AZURE_IMAGE_ID'],
      subnetId: AZURE['AZURE_SUBNET_ID'],
      nsgId: AZURE['AZURE_NSG_ID'],
      sshUsername: 'peerpod',
      sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host',
      nsgPriority: 1000,
      usePublicIp: false,
      disableCvm: false,
      tunnel: { port: 51900, sourceCidr: '203.0.113.7/32', allowAnySource: false },
    });
  });

  it('reports every bad variable at once, each by name with what is valid', () => {
    const e = thrown(() =>
      providerConfigFromEnv({ CLOUD_PROVIDER: 'aws', AWS_REGION: 'Ireland', AWS_SG_IDS: 'sg-1,default', WG_PORT: '70000', USE_PUBLIC_IP: 'yes' }),
    );
    expect(e.code).toBe('EINVAL');
    expect(e.message.split('\n')).toEqual([
      'WG_PORT: "70000" is not valid: expected an integer 1-65535',
      "WG_WORKER_CIDR: missing: expected the worker's egress address as the cloud sees it, e.g. 203.0.113.7/32",
      'USE_PUBLIC_IP: "yes" is not valid: expected true or false (or 1, 0)',
      'AWS_REGION: "Ireland" is not valid: expected a region such as eu-west-1',
      'PODVM_AMI_ID: missing: expected the pod VM image (ami-…)',
      'AWS_SG_IDS: "sg-1", "default" are not security group ids: expected sg-… ids, comma separated',
    ]);
    expect(e.context).toEqual({ op: 'provider-config', field: 'WG_PORT' });
  });

  it('names the valid providers for an unknown or missing CLOUD_PROVIDER', () => {
    expect(thrown(() => providerConfigFromEnv({ ...AWS, CLOUD_PROVIDER: 'libvirt' })).message).toBe(
      'CLOUD_PROVIDER: "libvirt" is not supported: valid providers are aws, azure',
    );
    expect(thrown(() => providerConfigFromEnv({ WG_WORKER_CIDR: '203.0.113.7/32' })).message).toBe('CLOUD_PROVIDER: missing: expected one of aws, azure');
  });

  it('refuses 0.0.0.0/0 unless WG_ALLOW_ANY_SOURCE=true', () => {
    expect(thrown(() => providerConfigFromEnv({ ...AWS, WG_WORKER_CIDR: '0.0.0.0/0' })).message).toBe(
      "WG_WORKER_CIDR: 0.0.0.0/0 would open the WireGuard port to the whole Internet: expected the worker's egress address (e.g. 203.0.113.7/32), or allow any source explicitly with WG_ALLOW_ANY_SOURCE=true",
    );
    expect(providerConfigFromEnv({ ...AWS, WG_WORKER_CIDR: '0.0.0.0/0', WG_ALLOW_ANY_SOURCE: 'true' }).tunnel).toEqual({
      port: 51900,
      sourceCidr: '0.0.0.0/0',
      allowAnySource: true,
    });
  });

  it('checks the Azure ids and that the NSG is in the same subscription', () => {
    const e = thrown(() =>
      providerConfigFromEnv({
        ...AZURE,
        AZURE_SUBSCRIPTION_ID: 'not-a-uuid',
        AZURE_NSG_ID: 'podvm-nsg',
        AZURE_SUBNET_ID: '/subscriptions/x/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet',
        AZURE_SSH_PUBLIC_KEY: 'AAAA',
        WG_NSG_PRIORITY: '50',
      }),
    );
    expect(e.message.split('\n').map((l) => l.split(':')[0])).toEqual(['AZURE_SUBSCRIPTION_ID', 'AZURE_SUBNET_ID', 'AZURE_NSG_ID', 'AZURE_SSH_PUBLIC_KEY', 'WG_NSG_PRIORITY']);
    const other = AZURE['AZURE_NSG_ID']!.replace(SUB, 'ffffffff-0000-0000-0000-000000000000');
    expect(thrown(() => providerConfigFromEnv({ ...AZURE, AZURE_NSG_ID: other })).message).toMatch(
      /^AZURE_NSG_ID: is in subscription ffffffff-0000-0000-0000-000000000000, not AZURE_SUBSCRIPTION_ID's /,
    );
  });

  it('treats an empty variable as unset, as CAA does', () => {
    expect(providerConfigFromEnv({ ...AWS, WG_PORT: '', PODVM_INSTANCE_TYPE: '' })).toMatchObject({ instanceType: 'm6a.large', tunnel: { port: 51900 } });
  });

  it('turns the tunnel settings into the ensureTunnelPort request', () => {
    expect(tunnelPortRequest(providerConfigFromEnv({ ...AWS, WG_PORT: '51901' }))).toEqual({
      port: 51901,
      protocol: 'udp',
      sourceCidr: '203.0.113.7/32',
      allowAnySource: false,
    });
  });

  it('defaults WG_PORT to the worker side default', () => {
    expect(DEFAULT_WG_PORT).toBe(DEFAULT_LISTEN_PORT);
  });
});

describe('readSourceCidr', () => {
  it('canonicalises, and explains host bits and bad lengths', () => {
    expect(readSourceCidr('2001:DB8::0:7', false)).toEqual({ cidr: '2001:db8::7/128', family: 6, anySource: false });
    expect(readSourceCidr('198.51.100.0/24', false)).toEqual({ cidr: '198.51.100.0/24', family: 4, anySource: false });
    expect(readSourceCidr('203.0.113.7/24', false)).toBe('"203.0.113.7/24" has host bits set: expected 203.0.113.0/24 (the network) or 203.0.113.7/32 (that one address)');
    expect(readSourceCidr('203.0.113.7/33', false)).toBe('"203.0.113.7/33" has a bad prefix length: expected 0-32 for an IPv4 address');
    expect(readSourceCidr('worker', false)).toMatch(/^"worker" is not a CIDR/);
    expect(readSourceCidr('::/0', false)).toMatch(/whole Internet/);
    expect(readSourceCidr('::/0', true)).toEqual({ cidr: '::/0', family: 6, anySource: true });
  });
});

describe('firewallConfigFromEnv', () => {
  it('reads only where the rule goes: no image, size or key needed', () => {
    const { PODVM_AMI_ID: _ami, ...aws } = AWS;
    expect(firewallConfigFromEnv(aws)).toEqual({
      provider: 'aws',
      region: 'eu-west-1',
      securityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
      tunnel: { port: 51900, sourceCidr: '203.0.113.7/32', allowAnySource: false },
    });
    const { AZURE_IMAGE_ID: _i, AZURE_SUBNET_ID: _s, AZURE_SSH_PUBLIC_KEY: _k, AZURE_RESOURCE_GROUP: _g, AZURE_REGION: _r, ...azure } = AZURE;
    expect(firewallConfigFromEnv({ ...azure, WG_PORT: '51999', WG_NSG_PRIORITY: '2000' })).toEqual({
      provider: 'azure',
      subscriptionId: SUB,
      nsgId: AZURE['AZURE_NSG_ID'],
      nsgPriority: 2000,
      tunnel: { port: 51999, sourceCidr: '203.0.113.7/32', allowAnySource: false },
    });
  });

  it('reports every bad variable it reads at once, by name', () => {
    const e = thrown(() => firewallConfigFromEnv({ CLOUD_PROVIDER: 'aws', AWS_SG_IDS: 'default', WG_WORKER_CIDR: '0.0.0.0/0' }));
    expect(e.message.split('\n').map((l) => l.split(':')[0])).toEqual(['WG_WORKER_CIDR', 'AWS_REGION', 'AWS_SG_IDS']);
    expect(e.context).toMatchObject({ op: 'firewall-config', field: 'WG_WORKER_CIDR' });
  });
});
