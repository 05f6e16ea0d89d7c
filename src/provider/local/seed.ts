// The NoCloud seed of a local pod VM: an ISO 9660 image with volume id `cidata` holding
// `user-data` (the same #cloud-config that the cloud adapters send, from ../cloud-init.ts) and
// `meta-data` (instance id and host name), as CAA's libvirt provider attaches it. The texts are
// pure; making the ISO runs genisoimage through the exec edge.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Exec } from '../../exec.js';
import { cloudConfigForApf } from '../../podnetwork/cloud-init.js';
import type { ApfUserdata } from '../provider.js';

export function metaData(name: string): string {
  // YAML, but both values are checked instance names (letters, digits, hyphens): no quoting needed.
  return `instance-id: ${name}\nlocal-hostname: ${name}\n`;
}

/** Write `dir/seed.iso` for this instance; returns its path. */
export async function writeSeedIso(exec: Exec, dir: string, name: string, userdata: ApfUserdata): Promise<string> {
  const src = join(dir, 'seed');
  await mkdir(src, { recursive: true, mode: 0o700 });
  // user-data holds the VM's WireGuard private key: readable by root only, and deleted once the ISO is made.
  await writeFile(join(src, 'user-data'), cloudConfigForApf(userdata), { mode: 0o600 });
  await writeFile(join(src, 'meta-data'), metaData(name), { mode: 0o600 });
  const iso = join(dir, 'seed.iso');
  try {
    await exec(['genisoimage', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', join(src, 'user-data'), join(src, 'meta-data')], {
      timeoutMs: 30_000,
    });
    await chmod(iso, 0o600);
  } finally {
    await rm(src, { recursive: true, force: true });
  }
  return iso;
}
