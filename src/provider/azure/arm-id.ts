// ARM resource ids ("/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/…/name") taken
// apart, since ARM hands out ids but its SDK methods take resource group and name. Pure.
import { PeerpodError } from '../../errors.js';

export interface ArmRef {
  readonly subscription: string;
  readonly resourceGroup: string;
  readonly name: string;
}

/** Parses an id of one resource type ("Microsoft.Network/networkSecurityGroups"), case-insensitively. */
export function parseArmId(id: string, type: string, op: string): ArmRef {
  const parts = id.split('/');
  // ['', 'subscriptions', S, 'resourceGroups', RG, 'providers', NS, TYPE, NAME]
  const [empty, subs, subscription, groups, resourceGroup, providers, ns, kind, name, ...rest] = parts;
  const ok =
    empty === '' &&
    subs?.toLowerCase() === 'subscriptions' &&
    groups?.toLowerCase() === 'resourcegroups' &&
    providers?.toLowerCase() === 'providers' &&
    `${ns ?? ''}/${kind ?? ''}`.toLowerCase() === type.toLowerCase() &&
    rest.length === 0 &&
    !!subscription && !!resourceGroup && !!name;
  if (!ok || subscription === undefined || resourceGroup === undefined || name === undefined) {
    throw new PeerpodError('EINVAL', `${JSON.stringify(id)} is not a ${type} id: expected /subscriptions/…/resourceGroups/…/providers/${type}/<name>`, {
      op,
      field: 'id',
    });
  }
  return { subscription, resourceGroup, name };
}
