// The lab's programs inside a qemu guest, beside the agent artifact and run with its node: the
// backend contract runner (kernel WireGuard in the guest), the checksummed TCP transfer, and a
// `wg show` without wireguard-tools. tools/podvm-image bundles whatever it is given here into
// LAB_TOOLS_DIR of the lab's images; a pod VM's real image has none of them.
import { fileURLToPath } from 'node:url';
import type { GuestTools } from '../../tools/podvm-image/guest-tools.js';
import { AGENT_INSTALL_DIR } from '../../tools/podvm-image/agent-artifact.js';

export const LAB_TOOLS_DIR = '/opt/peerpod-lab';
/** The guest's node (the agent artifact's). */
export const GUEST_NODE = `${AGENT_INSTALL_DIR}/bin/node`;

/** `node <tool>` inside the guest, as a command line. */
export function guestTool(name: 'backend-contract' | 'lab-transfer' | 'wg-show'): string {
  return `${GUEST_NODE} ${LAB_TOOLS_DIR}/lib/${name}.mjs`;
}

/** dist/ of this build (this file is dist/lab/guest/tools.js). */
const DIST = fileURLToPath(new URL('../../', import.meta.url));

export function labGuestTools(): GuestTools {
  return {
    installDir: LAB_TOOLS_DIR,
    entries: {
      'backend-contract': `${DIST}test/contract/backend-contract-main.js`,
      'lab-transfer': `${DIST}lab/transfer.js`,
      'wg-show': `${DIST}lab/guest/wg-show.js`,
    },
  };
}
