// Names of the VXLAN devices. A device is born in the host (or VM root) netns, where the kernel
// insists on unique names, and keeps its birth name in the worker's pod netns, so that it is found
// again after a restart from the pod id alone. On the pod VM it takes the pod's interface name once
// it is inside the pod netns.

/** Worker side: "pvx" + the pod id (12 hex characters) = 15 characters, the kernel's limit. */
export function workerVxlanDeviceName(podId: string): string {
  return `pvx${podId}`;
}

/** Pod-VM side, before the move and rename: "pvv" + the VNI (at most 8 digits). */
export function podVmVxlanDeviceName(vni: number): string {
  return `pvv${vni}`;
}
