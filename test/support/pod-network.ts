// A WireGuard pod's pod-network as CAA passes it to setup, for the sidecar's unit tests.
import type { PodNetwork } from '../../src/podnetwork/types.js';
import { generateKeyPair, type PublicKey } from '../../src/wireguard/keys.js';

/** Pod 198.18.1.21/24 on eth0, MTU 1500; the tunnel section names `worker` as its peer. */
export function podNetworkOf(worker: PublicKey = generateKeyPair().publicKey): PodNetwork {
  return {
    podIp: { address: '198.18.1.21', prefixLength: 24, family: 4 },
    interfaceName: 'eth0',
    routes: [],
    neighbors: [],
    mtu: 1500,
    index: 0,
    dedicated: false,
    externalNetViaPodVm: false,
    tunnel: { type: 'wireguard', privateKey: generateKeyPair().privateKey, peerPublicKey: worker, listenPort: 51900, persistentKeepalive: 25, mtu: 1420 },
  };
}
