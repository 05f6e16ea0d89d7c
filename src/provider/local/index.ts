// The local provider's entry, for the provider registry's lazy import (as aws/ and azure/ have):
// pod VMs as qemu guests on this machine. Loading it loads no cloud SDK and starts nothing.
export { LocalProvider, prefixToMask, type LocalCloudProvider, type LocalNetwork, type LocalProviderOptions } from './local-provider.js';
export { QemuGuest, kvmUsable, qemuArgv, type GuestMarks, type QemuGuestOptions } from './qemu.js';
