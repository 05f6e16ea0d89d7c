// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
)

// fakeSidecar answers the sidecar's API on a unix socket and records what it was asked.
type fakeSidecar struct {
	mu       sync.Mutex
	requests map[string]map[string]json.RawMessage
	replies  map[string]func() (int, string)
}

func startFakeSidecar(t *testing.T) (*fakeSidecar, string) {
	t.Helper()
	f := &fakeSidecar{requests: map[string]map[string]json.RawMessage{}, replies: map[string]func() (int, string){}}
	socket := filepath.Join(t.TempDir(), "sidecar.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req map[string]json.RawMessage
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("%s: request is not a JSON object: %v", r.URL.Path, err)
		}
		f.mu.Lock()
		f.requests[r.URL.Path] = req
		reply := f.replies[r.URL.Path]
		f.mu.Unlock()
		status, text := 200, `{"ok": true}`
		if reply != nil {
			status, text = reply()
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f, socket
}

func (f *fakeSidecar) request(t *testing.T, path string) map[string]json.RawMessage {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.requests[path]
	if !ok {
		t.Fatalf("the sidecar was not called on %s", path)
	}
	return r
}

const section = `{"private-key":"vm-private","peer-public-key":"worker-public","preshared-key":"psk","listen-port":51900,"persistent-keepalive":25,"mtu":1420}`

func inspected() *tunneler.Config {
	return &tunneler.Config{
		PodIP:         netip.MustParsePrefix("10.244.1.21/24"),
		InterfaceName: "eth0",
		WorkerNodeIP:  netip.MustParsePrefix("192.0.2.10/24"),
		TunnelType:    TunnelType,
		Routes:        []*tunneler.Route{{GW: netip.MustParseAddr("10.244.1.1"), Dev: "eth0"}},
		MTU:           1450,
		Index:         3,
	}
}

func worker(t *testing.T, socket string) tunneler.TunnelerConfigurator {
	t.Helper()
	w, err := NewWorkerNodeTunnelerWithOptions(WorkerOptions{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := w.(tunneler.TunnelerConfigurator)
	if !ok {
		t.Fatal("the worker tunneler has no Configure: CAA's NewWorkerNode would refuse it")
	}
	return c
}

func TestConfigureAddsTheSidecarsSection(t *testing.T) {
	f, socket := startFakeSidecar(t)
	f.replies["/v1/configure"] = func() (int, string) { return 200, `{"wireguard": ` + section + `}` }
	config := inspected()
	if err := worker(t, socket).Configure(&tunneler.NetworkConfig{TunnelType: TunnelType, HostInterface: "ens4"}, config); err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal(config.WireGuard, &got)
	_ = json.Unmarshal([]byte(section), &want)
	if got["peer-public-key"] != want["peer-public-key"] || got["mtu"] != want["mtu"] {
		t.Fatalf("config.WireGuard = %s, want the sidecar's section %s", config.WireGuard, section)
	}
	req := f.request(t, "/v1/configure")
	if string(req["hostInterface"]) != `"ens4"` {
		t.Errorf("hostInterface = %s, want \"ens4\"", req["hostInterface"])
	}
	var pn map[string]any
	_ = json.Unmarshal(req["podNetwork"], &pn)
	if pn["podip"] != "10.244.1.21/24" || pn["mtu"] != float64(1450) || pn["tunnel-type"] != TunnelType {
		t.Errorf("podNetwork sent = %v, want CAA's inspected config", pn)
	}
	if _, has := pn["wireguard"]; has {
		t.Error("Configure sent a wireguard section: a retried Configure must start afresh")
	}
}

func TestConfigureRefusesAnotherTunnelType(t *testing.T) {
	_, socket := startFakeSidecar(t)
	config := inspected()
	config.TunnelType = "vxlan"
	err := worker(t, socket).Configure(&tunneler.NetworkConfig{}, config)
	var e *Error
	if !errors.As(err, &e) || e.Code != "EINVAL" || e.Field != "tunnel-type" {
		t.Fatalf("err = %v, want EINVAL on tunnel-type", err)
	}
}

func TestSetupSendsNetnsIPsAndConfig(t *testing.T) {
	f, socket := startFakeSidecar(t)
	config := inspected()
	config.WireGuard = json.RawMessage(section)
	ips := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}
	if err := worker(t, socket).Setup("/run/netns/cni-1234", ips, config); err != nil {
		t.Fatal(err)
	}
	req := f.request(t, "/v1/setup")
	if string(req["netns"]) != `"/run/netns/cni-1234"` || string(req["podVmIPs"]) != `["198.51.100.7","198.51.100.8"]` {
		t.Errorf("setup request = netns %s, podVmIPs %s", req["netns"], req["podVmIPs"])
	}
	var pn tunneler.Config
	if err := json.Unmarshal(req["podNetwork"], &pn); err != nil || len(pn.WireGuard) == 0 {
		t.Errorf("podNetwork sent = %s (%v), want the config with its wireguard section", req["podNetwork"], err)
	}
	if err := worker(t, socket).Teardown("/run/netns/cni-1234", "ens4", config); err != nil {
		t.Fatal(err)
	}
	if got := string(f.request(t, "/v1/teardown")["netns"]); got != `"/run/netns/cni-1234"` {
		t.Errorf("teardown netns = %s", got)
	}
}

func TestSetupWithoutConfigureIsRefusedBeforeAnyCall(t *testing.T) {
	f, socket := startFakeSidecar(t)
	err := worker(t, socket).Setup("/run/netns/cni-1", []netip.Addr{netip.MustParseAddr("198.51.100.7")}, inspected())
	var e *Error
	if !errors.As(err, &e) || e.Code != "ESTATE" || e.Field != "wireguard" {
		t.Fatalf("err = %v, want ESTATE on field wireguard", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("the sidecar was called: %v", f.requests)
	}
}

func TestSidecarErrorsKeepCodeFieldAndMessage(t *testing.T) {
	f, socket := startFakeSidecar(t)
	f.replies["/v1/setup"] = func() (int, string) {
		return 400, `{"error": {"code": "EINVAL", "message": "podVmIPs[0]: \"x\" is not an IP address", "field": "podVmIPs[0]"}}`
	}
	config := inspected()
	config.WireGuard = json.RawMessage(section)
	err := worker(t, socket).Setup("/run/netns/cni-1", []netip.Addr{netip.MustParseAddr("198.51.100.7")}, config)
	var e *Error
	if !errors.As(err, &e) || e.Op != "setup" || e.Code != "EINVAL" || e.Field != "podVmIPs[0]" || !strings.Contains(e.Message, "not an IP address") {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "field podVmIPs[0]") {
		t.Errorf("Error() = %q, want the field named", err.Error())
	}
}

func TestNoSidecarIsAClearError(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "absent.sock")
	err := worker(t, socket).Teardown("/run/netns/cni-1", "", inspected())
	var e *Error
	if !errors.As(err, &e) || e.Code != "EBACKEND" || !strings.Contains(e.Message, socket) {
		t.Fatalf("err = %v, want EBACKEND naming %s", err, socket)
	}
}

func TestUnknownModeIsRefused(t *testing.T) {
	_, err := NewWorkerNodeTunnelerWithOptions(WorkerOptions{Mode: "grpc"})
	if err == nil || !strings.Contains(err.Error(), `"sidecar"`) || !strings.Contains(err.Error(), `"exec"`) {
		t.Fatalf("err = %v, want the valid modes listed", err)
	}
}

// fakeProgram writes a shell script that records its arguments and stdin, and answers as given.
func fakeProgram(t *testing.T, stdout string, exit int) (path, record string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "program")
	record = filepath.Join(dir, "record")
	script := "#!/bin/sh\necho \"$@\" > " + record + ".args\ncat > " + record + ".stdin\n" +
		"printf '%s' '" + stdout + "'\necho 'error: EINVAL: something named' >&2\nexit " + strconv.Itoa(exit) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, record
}

func TestExecModeRunsOneCallPerVerb(t *testing.T) {
	program, record := fakeProgram(t, `{"wireguard": `+section+`}`, 0)
	w, err := NewWorkerNodeTunnelerWithOptions(WorkerOptions{Mode: ModeExec, Command: program})
	if err != nil {
		t.Fatal(err)
	}
	config := inspected()
	if err := w.(tunneler.TunnelerConfigurator).Configure(&tunneler.NetworkConfig{}, config); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(record + ".args")
	if strings.TrimSpace(string(args)) != "call POST /v1/configure" {
		t.Errorf("args = %q", args)
	}
	stdin, _ := os.ReadFile(record + ".stdin")
	if !strings.Contains(string(stdin), `"podNetwork"`) || len(config.WireGuard) == 0 {
		t.Errorf("stdin = %s, section = %s", stdin, config.WireGuard)
	}
}

func TestExecModeErrorReply(t *testing.T) {
	program, _ := fakeProgram(t, `{"error": {"code": "ENOTFOUND", "message": "pod netns /run/netns/x does not exist", "field": "netns"}}`, 1)
	w, _ := NewWorkerNodeTunnelerWithOptions(WorkerOptions{Mode: ModeExec, Command: program})
	err := w.Teardown("/run/netns/x", "", inspected())
	var e *Error
	if !errors.As(err, &e) || e.Code != "ENOTFOUND" || e.Field != "netns" {
		t.Fatalf("err = %#v", err)
	}
}
