// `wg show` for a pod VM that has no wireguard-tools: prints one kernel WireGuard device of the
// netns it runs in as JSON, keys public only (never the private or preshared key). Lab images carry
// it as /opt/peerpod-lab/lib/wg-show.mjs (./tools.ts); run it inside the pod netns: `ip netns exec podns node wg-show.mjs eth0`.
import { realExec } from '../../src/exec.js';
import { KernelBackend } from '../../src/wireguard/kernel/backend.js';

async function main(name: string | undefined): Promise<void> {
  if (name === undefined) throw new Error('usage: wg-show <interface>');
  const backend = new KernelBackend({ exec: realExec });
  try {
    const d = await backend.device(name);
    const view = {
      name: d.name,
      publicKey: d.publicKey?.toBase64() ?? null,
      listenPort: d.listenPort,
      peers: d.peers.map((p) => ({
        publicKey: p.publicKey.toBase64(),
        endpoint: p.endpoint,
        allowedIPs: p.allowedIPs,
        latestHandshake: p.lastHandshakeSec,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepalive,
      })),
    };
    process.stdout.write(`${JSON.stringify(view)}\n`);
  } finally {
    await backend.close();
  }
}

main(process.argv[2]).catch((e: unknown) => {
  process.stderr.write(`wg-show: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
