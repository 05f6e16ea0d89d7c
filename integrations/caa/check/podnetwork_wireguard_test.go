// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package podnetwork

// CAA's own podnetwork flow with TUNNEL_TYPE=wireguard, for the by-hand check in CAA's real tree
// (hack/caa-check.sh copies this file into pkg/podnetwork; docs/caa.md): CAA's Inspect (which
// calls our Configure), apf.json's round trip, CAA's podnode Setup (our agent, then CAA's own
// routes), CAA's worker Setup, HTTP both ways, and both Teardowns. Root only; it needs
// peerpod-wg-sidecar and peerpod-wg-agent on PATH (or PEERPOD_WG_SIDECAR / PEERPOD_WG_AGENT).

import (
	"encoding/json"
	"net/netip"
	"testing"

	testutils "github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/internal/testing"
	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tuntest"
)

func TestPodNetworkFlowWireGuard(t *testing.T) {
	testutils.SkipTestIfNotRoot(t)
	t.Setenv("PEERPOD_WG_WORKER_MODE", "exec") // the worker is a netns entered by this thread
	t.Setenv("WG_STATE_DIR", t.TempDir())
	t.Setenv("WG_RUN_DIR", t.TempDir())

	workerNS, _ := tuntest.NewNamedNS(t, "test-wg-worker")
	defer tuntest.DeleteNamedNS(t, workerNS)
	workerPodNS, _ := tuntest.NewNamedNS(t, "test-wg-workerpod")
	defer tuntest.DeleteNamedNS(t, workerPodNS)
	podVMNS, _ := tuntest.NewNamedNS(t, "test-wg-podvm")
	defer tuntest.DeleteNamedNS(t, podVMNS)
	podNS, _ := tuntest.NewNamedNS(t, "test-wg-pod")
	defer tuntest.DeleteNamedNS(t, podNS)

	// Underlay: the worker's and the pod VM's primary interfaces, each with a default route.
	tuntest.VethAdd(t, workerNS, "enc0", podVMNS, "enc0")
	tuntest.AddrAdd(t, workerNS, "enc0", "192.168.77.1/24")
	tuntest.AddrAdd(t, podVMNS, "enc0", "192.168.77.2/24")
	tuntest.RouteAdd(t, workerNS, "", "192.168.77.2", "enc0")
	tuntest.RouteAdd(t, podVMNS, "", "192.168.77.1", "enc0")
	// The worker's CNI: cni0 and the pod's veth.
	tuntest.BridgeAdd(t, workerNS, "cni0")
	tuntest.AddrAdd(t, workerNS, "cni0", "10.128.0.1/24")
	tuntest.VethAdd(t, workerNS, "veth0", workerPodNS, "eth0")
	tuntest.LinkSetMaster(t, workerNS, "veth0", "cni0")
	tuntest.AddrAdd(t, workerPodNS, "eth0", "10.128.0.2/24")
	tuntest.RouteAdd(t, workerPodNS, "", "10.128.0.1", "eth0")

	workerNode, err := NewWorkerNode(&tunneler.NetworkConfig{TunnelType: "wireguard"})
	if err != nil {
		t.Fatalf("NewWorkerNode: %v", err)
	}
	var config *tunneler.Config
	if err := workerNS.Run(func() (err error) {
		config, err = workerNode.Inspect(workerPodNS.Path())
		return err
	}); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if len(config.WireGuard) == 0 {
		t.Fatal("Inspect returned no wireguard section: Configure did not run")
	}

	// apf.json's way to the pod VM.
	apf, _ := json.Marshal(map[string]*tunneler.Config{"pod-network": config})
	var onVM struct {
		PodNetwork *tunneler.Config `json:"pod-network"`
	}
	if err := json.Unmarshal(apf, &onVM); err != nil {
		t.Fatal(err)
	}
	if err := podVMNS.Run(func() error { return NewPodNode(podNS.Path(), "", onVM.PodNetwork).Setup() }); err != nil {
		t.Fatalf("podnode Setup: %v", err)
	}
	if err := workerNS.Run(func() error {
		return workerNode.Setup(workerPodNS.Path(), []netip.Addr{netip.MustParseAddr("192.168.77.2")}, config)
	}); err != nil {
		t.Fatalf("worker Setup: %v", err)
	}

	server := tuntest.StartHTTPServer(t, podNS, netip.MustParseAddrPort("10.128.0.2:8080"))
	defer server.Shutdown(t)
	back := tuntest.StartHTTPServer(t, workerNS, netip.MustParseAddrPort("10.128.0.1:8080"))
	defer back.Shutdown(t)
	tuntest.ConnectToHTTPServer(t, workerNS, netip.MustParseAddrPort("10.128.0.2:8080"), netip.MustParseAddrPort("10.128.0.1:0"))
	tuntest.ConnectToHTTPServer(t, podNS, netip.MustParseAddrPort("10.128.0.1:8080"), netip.MustParseAddrPort("10.128.0.2:0"))

	if err := workerNS.Run(func() error { return workerNode.Teardown(workerPodNS.Path(), config) }); err != nil {
		t.Fatalf("worker Teardown: %v", err)
	}
	if err := podVMNS.Run(func() error { return NewPodNode(podNS.Path(), "", onVM.PodNetwork).Teardown() }); err != nil {
		t.Fatalf("podnode Teardown: %v", err)
	}
}
