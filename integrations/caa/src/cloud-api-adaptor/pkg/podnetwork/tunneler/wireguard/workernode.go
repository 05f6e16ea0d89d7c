// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
)

const (
	// TunnelType is the name CAA registers this driver under (TUNNEL_TYPE).
	TunnelType = "wireguard"
	// DefaultSocket is where peerpod-wg-sidecar serves its API (its WG_SOCKET default).
	DefaultSocket = "/run/peerpod-wg/sidecar.sock"

	// ModeSidecar reaches the peerpod-wg-sidecar daemon over its socket (production).
	ModeSidecar = "sidecar"
	// ModeExec runs one `peerpod-wg-sidecar call` child per call, in the calling thread's netns.
	ModeExec = "exec"
)

// WorkerOptions say how the worker tunneler reaches peerpod-wg-sidecar.
type WorkerOptions struct {
	// Mode is ModeSidecar (default) or ModeExec.
	Mode string
	// Socket is the daemon's API socket, for ModeSidecar (default DefaultSocket).
	Socket string
	// Command is the peerpod-wg-sidecar program, for ModeExec (default: found on PATH).
	Command string
	// Timeout bounds one call (default 2 minutes: a setup under load takes seconds).
	Timeout time.Duration
}

// WorkerOptionsFromEnv reads PEERPOD_WG_WORKER_MODE, WG_SOCKET and PEERPOD_WG_SIDECAR.
func WorkerOptionsFromEnv() WorkerOptions {
	return WorkerOptions{
		Mode:    os.Getenv("PEERPOD_WG_WORKER_MODE"),
		Socket:  os.Getenv("WG_SOCKET"),
		Command: os.Getenv("PEERPOD_WG_SIDECAR"),
	}
}

type workerNodeTunneler struct {
	sidecar sidecar
}

// NewWorkerNodeTunneler is the worker side, configured from the environment (WorkerOptionsFromEnv).
func NewWorkerNodeTunneler() (tunneler.Tunneler, error) {
	return NewWorkerNodeTunnelerWithOptions(WorkerOptionsFromEnv())
}

// NewWorkerNodeTunnelerWithOptions is the worker side with explicit options.
func NewWorkerNodeTunnelerWithOptions(o WorkerOptions) (tunneler.Tunneler, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	switch o.Mode {
	case "", ModeSidecar:
		socket := o.Socket
		if socket == "" {
			socket = DefaultSocket
		}
		return &workerNodeTunneler{sidecar: newSocketSidecar(socket, timeout)}, nil
	case ModeExec:
		command := o.Command
		if command == "" {
			var err error
			if command, err = findProgram("PEERPOD_WG_SIDECAR", "peerpod-wg-sidecar"); err != nil {
				return nil, err
			}
		}
		return &workerNodeTunneler{sidecar: &execSidecar{command: command, timeout: timeout}}, nil
	default:
		return nil, fmt.Errorf("wireguard: PEERPOD_WG_WORKER_MODE=%q: valid modes are %q (the daemon's socket, the default) and %q (a child process per call)", o.Mode, ModeSidecar, ModeExec)
	}
}

type configureRequest struct {
	PodNetwork    *tunneler.Config `json:"podNetwork"`
	HostInterface string           `json:"hostInterface,omitempty"`
}

type configureReply struct {
	WireGuard json.RawMessage `json:"wireguard"`
}

// Configure adds our section to the pod-network that CAA's Inspect read: the pod's keys, the pod
// VM's port, the keepalive and the tunnel MTU, made and kept by the sidecar.
func (t *workerNodeTunneler) Configure(n *tunneler.NetworkConfig, config *tunneler.Config) error {
	if config.TunnelType != TunnelType {
		return &Error{Op: "configure", Code: "EINVAL", Field: "tunnel-type", Message: fmt.Sprintf("tunnel type is %q, but this is the %s driver", config.TunnelType, TunnelType)}
	}
	// A retried Configure gets a fresh section; the old one must not ride along to the sidecar.
	request := *config
	request.WireGuard = nil
	var reply configureReply
	if err := t.sidecar.call("configure", "/v1/configure", configureRequest{PodNetwork: &request, HostInterface: n.HostInterface}, &reply); err != nil {
		return err
	}
	if len(reply.WireGuard) == 0 || string(reply.WireGuard) == "null" {
		return &Error{Op: "configure", Code: "EBACKEND", Message: "the sidecar's reply has no wireguard section"}
	}
	config.WireGuard = reply.WireGuard
	return nil
}

type setupRequest struct {
	Netns      string           `json:"netns"`
	PodVMIPs   []string         `json:"podVmIPs"`
	PodNetwork *tunneler.Config `json:"podNetwork"`
}

type teardownRequest struct {
	Netns string `json:"netns"`
}

// Setup builds the pod's tunnel in the pod netns at nsPath: the device is born in the sidecar's
// netns (the host's), configured with the pod VM as its peer, moved into the pod netns, and the
// pod IP is routed through it. The first pod VM IP is the endpoint; with config.Dedicated, the
// second, as for vxlan. Safe to retry.
func (t *workerNodeTunneler) Setup(nsPath string, podNodeIPs []netip.Addr, config *tunneler.Config) error {
	if len(config.WireGuard) == 0 {
		return &Error{Op: "setup", Code: "ESTATE", Field: "wireguard", Message: fmt.Sprintf("pod netns %s: the pod-network has no wireguard section: Configure was not called", nsPath)}
	}
	ips := make([]string, 0, len(podNodeIPs))
	for _, ip := range podNodeIPs {
		ips = append(ips, ip.String())
	}
	var reply struct{}
	return t.sidecar.call("setup", "/v1/setup", setupRequest{Netns: nsPath, PodVMIPs: ips, PodNetwork: config}, &reply)
}

// Teardown removes everything of the pod's tunnel, its keys included. Already gone is success.
func (t *workerNodeTunneler) Teardown(nsPath, hostInterface string, config *tunneler.Config) error {
	var reply struct{}
	return t.sidecar.call("teardown", "/v1/teardown", teardownRequest{Netns: nsPath}, &reply)
}
