// The pod VM's process-user-data, as CAA's image runs it before its agents: take apf.json out of
// the userdata's cloud-config (NoCloud seed first, then the clouds' metadata services, retrying as
// CAA does) and write it to /run/peerpod/apf.json, atomically and mode 0600 (it holds the VM's
// WireGuard private key). Bundled into the guest image as lib/process-user-data.mjs. Reading the
// userdata is src/userdata's job; bringing the tunnel up from the file is the agent's.
import { open, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { APF_JSON_PATH } from '../src/podnetwork/cloud-init.js';
import { fetchApfFromUserdata } from '../src/userdata/index.js';

async function main(): Promise<void> {
  const target = process.env['PEERPOD_APF_JSON'] ?? APF_JSON_PATH;
  const got = await fetchApfFromUserdata();
  await mkdir(dirname(target), { recursive: true, mode: 0o755 });
  const tmp = `${target}.tmp-${process.pid}`;
  const f = await open(tmp, 'w', 0o600);
  try {
    await f.writeFile(got.apfJson);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, target);
  process.stdout.write(`process-user-data: wrote ${target} from ${got.source} (${got.where})\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`process-user-data: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
