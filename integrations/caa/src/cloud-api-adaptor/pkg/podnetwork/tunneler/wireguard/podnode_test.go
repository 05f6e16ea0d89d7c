// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
)

func TestPodNodeRunsTheAgentInterfaceOnly(t *testing.T) {
	agent, record := fakeProgram(t, "", 0)
	p, err := NewPodNodeTunnelerWithOptions(PodNodeOptions{Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	config := inspected()
	config.WireGuard = json.RawMessage(section)
	if err := p.Setup("/run/netns/podns", []netip.Addr{netip.MustParseAddr("192.0.2.20")}, config); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(record + ".args")
	if strings.TrimSpace(string(args)) != "setup --interface-only --config - --pod-netns /run/netns/podns" {
		t.Errorf("agent args = %q: the agent must leave the routes to CAA's podnode", args)
	}
	var sent tunneler.Config
	stdin, _ := os.ReadFile(record + ".stdin")
	if err := json.Unmarshal(stdin, &sent); err != nil || sent.PodIP != config.PodIP || len(sent.WireGuard) == 0 {
		t.Errorf("agent stdin = %s (%v): want the pod-network with its section", stdin, err)
	}
	if err := p.Teardown("/run/netns/podns", "ens3", config); err != nil {
		t.Fatal(err)
	}
	args, _ = os.ReadFile(record + ".args")
	if strings.TrimSpace(string(args)) != "teardown --config - --pod-netns /run/netns/podns" {
		t.Errorf("agent args = %q", args)
	}
}

func TestPodNodeAgentFailureIsNamed(t *testing.T) {
	agent, _ := fakeProgram(t, "", 2)
	p, _ := NewPodNodeTunnelerWithOptions(PodNodeOptions{Agent: agent})
	config := inspected()
	config.WireGuard = json.RawMessage(section)
	err := p.Setup("/run/netns/podns", nil, config)
	var e *Error
	if !errors.As(err, &e) || e.Code != "EINVAL" || !strings.Contains(e.Message, "EINVAL: something named") {
		t.Fatalf("err = %v, want the agent's error line with EINVAL", err)
	}
}

func TestPodNodeWithoutSectionNeverRunsTheAgent(t *testing.T) {
	agent, record := fakeProgram(t, "", 0)
	p, _ := NewPodNodeTunnelerWithOptions(PodNodeOptions{Agent: agent})
	err := p.Setup("/run/netns/podns", nil, inspected())
	var e *Error
	if !errors.As(err, &e) || e.Field != "wireguard" {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(record + ".args"); statErr == nil {
		t.Error("the agent ran")
	}
}

func TestAgentNotFoundNamesTheVariable(t *testing.T) {
	t.Setenv("PEERPOD_WG_AGENT", "")
	t.Setenv("PATH", t.TempDir())
	_, err := NewPodNodeTunneler()
	if err == nil || !strings.Contains(err.Error(), "PEERPOD_WG_AGENT") {
		t.Fatalf("err = %v, want PEERPOD_WG_AGENT named", err)
	}
}
