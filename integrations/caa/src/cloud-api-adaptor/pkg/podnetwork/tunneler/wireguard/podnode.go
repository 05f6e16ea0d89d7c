// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
)

// PodNodeOptions say how the pod-VM side runs peerpod-wg-agent.
type PodNodeOptions struct {
	// Agent is the peerpod-wg-agent program (default: PEERPOD_WG_AGENT, else found on PATH).
	Agent string
	// Timeout bounds one run (default 1 minute).
	Timeout time.Duration
}

type podNodeTunneler struct {
	opts PodNodeOptions
}

// NewPodNodeTunneler is the pod-VM side, with the agent from PEERPOD_WG_AGENT or PATH.
func NewPodNodeTunneler() (tunneler.Tunneler, error) {
	return NewPodNodeTunnelerWithOptions(PodNodeOptions{})
}

// NewPodNodeTunnelerWithOptions is the pod-VM side with explicit options.
func NewPodNodeTunnelerWithOptions(o PodNodeOptions) (tunneler.Tunneler, error) {
	if o.Agent == "" {
		agent, err := findProgram("PEERPOD_WG_AGENT", "peerpod-wg-agent")
		if err != nil {
			return nil, err
		}
		o.Agent = agent
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	return &podNodeTunneler{opts: o}, nil
}

// Setup creates the pod's WireGuard interface in the pod netns at nsPath, with the pod IP (and
// its prefix, so the kernel adds the subnet route that CAA's podnode replaces) and the MTU. The
// routes and neighbours are CAA's podnode's to add, right after.
func (t *podNodeTunneler) Setup(nsPath string, podNodeIPs []netip.Addr, config *tunneler.Config) error {
	return t.run("setup", config, "setup", "--interface-only", "--config", "-", "--pod-netns", nsPath)
}

// Teardown removes the pod's WireGuard interface. Already gone is success.
func (t *podNodeTunneler) Teardown(nsPath, hostInterface string, config *tunneler.Config) error {
	return t.run("teardown", config, "teardown", "--config", "-", "--pod-netns", nsPath)
}

// run starts the agent from the calling thread (so in its netns, the VM's root netns) with the
// pod-network on stdin: the VM's private key never touches a file here.
func (t *podNodeTunneler) run(op string, config *tunneler.Config, args ...string) error {
	if len(config.WireGuard) == 0 {
		return &Error{Op: "pod VM " + op, Code: "EINVAL", Field: "wireguard", Message: "the pod-network has no wireguard section: the worker's Configure did not run"}
	}
	body, err := json.Marshal(config)
	if err != nil {
		return &Error{Op: "pod VM " + op, Code: "EINVAL", Message: fmt.Sprintf("cannot encode the pod-network: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.opts.Agent, args...)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		code := "EBACKEND"
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 2 {
			code = "EINVAL" // the agent's exit code for bad input
		}
		return &Error{Op: "pod VM " + op, Code: code, Message: fmt.Sprintf("%s %s: %v: %s", t.opts.Agent, op, err, lastErrorLine(stderr.Bytes()))}
	}
	return nil
}
