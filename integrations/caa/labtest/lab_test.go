package caalab

// CAA's call sequence for TUNNEL_TYPE=wireguard, with the real peerpod-wg-sidecar and
// peerpod-wg-agent, in network namespaces made here (root only):
//
//   client pod ──┐                                                 ┌── VM pod netns
//   (10.99.x.2)  ├─ cni0 (10.99.x.1) ─ worker host ═══ veth ═══ pod VM root netns
//   peer pod ────┘   (the worker's pod netns of the pod whose VM this is: 10.99.x.3)
//
// 1. Configure (the worker's keys, from the sidecar), 2. the JSON CAA puts in apf.json (and its
// debug copy), 3. the pod-node Setup, then the routes and neighbours that CAA's podnode adds,
// 4. the worker Setup, 5. HTTP both ways, 6. teardown, leaving nothing behind. Two settings:
// production (the daemon on the worker's host network, CAA calling its socket) and CAA's tuntest
// (no daemon: calls from a thread inside the worker netns, ModeExec).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler/wireguard"
	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/util/netops"
)

type lab struct {
	t                                  *testing.T
	prefix                             string
	worker, client, pod, vmRoot, vmPod string // netns names
	stateDir, runDir                   string
	subnet                             string // "10.99.N"
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ip(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", ns}, args...)...)
}

func newLab(t *testing.T) *lab {
	if os.Geteuid() != 0 {
		t.Skip("!!! the CAA lab test needs root (network namespaces) !!!")
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	p := "pcaa" + hex.EncodeToString(b)
	l := &lab{t: t, prefix: p, worker: p + "-w", client: p + "-c", pod: p + "-p", vmRoot: p + "-v", vmPod: p + "-vp",
		stateDir: t.TempDir(), runDir: t.TempDir(), subnet: fmt.Sprintf("10.99.%d", 1+int(b[0])%250)}
	t.Cleanup(l.destroy)
	for _, ns := range []string{l.worker, l.client, l.pod, l.vmRoot, l.vmPod} {
		run(t, "ip", "netns", "add", ns)
		ip(t, ns, "link", "set", "lo", "up")
	}
	// Underlay: worker host ⇄ pod VM.
	ip(t, l.worker, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", l.vmRoot)
	ip(t, l.worker, "address", "add", "192.0.2.1/24", "dev", "eth0")
	ip(t, l.worker, "link", "set", "eth0", "up")
	ip(t, l.worker, "route", "add", "default", "via", "192.0.2.2")
	ip(t, l.vmRoot, "address", "add", "192.0.2.2/24", "dev", "eth0")
	ip(t, l.vmRoot, "link", "set", "eth0", "up")
	ip(t, l.vmRoot, "route", "add", "default", "via", "192.0.2.1")
	// The worker's CNI: a bridge and two pods.
	ip(t, l.worker, "link", "add", "cni0", "type", "bridge")
	ip(t, l.worker, "address", "add", l.subnet+".1/24", "dev", "cni0")
	ip(t, l.worker, "link", "set", "cni0", "up")
	for i, ns := range []string{l.client, l.pod} {
		veth := fmt.Sprintf("veth%d", i)
		ip(t, l.worker, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, l.worker, "link", "set", veth, "master", "cni0", "up")
		ip(t, ns, "address", "add", fmt.Sprintf("%s.%d/24", l.subnet, i+2), "dev", "eth0")
		ip(t, ns, "link", "set", "eth0", "up")
		ip(t, ns, "route", "add", "default", "via", l.subnet+".1")
	}
	return l
}

func (l *lab) path(ns string) string { return "/run/netns/" + ns }

// destroy kills only the wireguard-go processes whose pid files are in our run folder, then
// deletes our namespaces.
func (l *lab) destroy() {
	pids, _ := filepath.Glob(filepath.Join(l.runDir, "*.pid"))
	for _, f := range pids {
		var pid int
		if b, err := os.ReadFile(f); err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, ns := range []string{l.vmPod, l.vmRoot, l.pod, l.client, l.worker} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// sysSetns is setns(2)'s number, which Go 1.19's syscall package does not name.
func sysSetns() uintptr {
	switch runtime.GOARCH {
	case "arm64":
		return 268
	default: // amd64
		return 308
	}
}

// inNetns runs fn on a thread inside the named netns, as CAA's netops Namespace.Run does.
func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if _, _, e := syscall.RawSyscall(sysSetns(), target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %v", ns, e)
	}
	fnErr := fn()
	if _, _, e := syscall.RawSyscall(sysSetns(), self.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return fmt.Errorf("setns back: %v (this thread stays locked and dies with its goroutine)", e)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// inspected is what CAA's Inspect reads from the peer pod's netns (a plain bridge CNI), plus a
// Calico-style permanent neighbour, which CAA's podnode must be able to add on our interface.
func (l *lab) inspected() *tunneler.Config {
	return &tunneler.Config{
		PodIP:         netip.MustParsePrefix(l.subnet + ".3/24"),
		PodHwAddr:     "0a:58:0a:63:00:03",
		InterfaceName: "eth0",
		WorkerNodeIP:  netip.MustParsePrefix("192.0.2.1/24"),
		TunnelType:    wireguard.TunnelType,
		Routes: []*tunneler.Route{
			{GW: netip.MustParseAddr(l.subnet + ".1"), Dev: "eth0"},
			{Dst: netip.MustParsePrefix(l.subnet + ".0/24"), Dev: "eth0", Protocol: 2, Scope: 253},
		},
		Neighbors: []*tunneler.Neighbor{{IP: netip.MustParseAddr("169.254.1.1"), HardwareAddr: "ee:ee:ee:ee:ee:ee", Dev: "eth0", State: netops.NeighborStatePermanent}},
		MTU:       1500,
	}
}

// podnodeRoutes does what CAA's podnode does right after its tunneler's Setup: drop the subnet
// route the kernel added with a non-/32 pod IP, add the routes (without gateway first) and the
// neighbours. Any "file exists" here means the agent added routes it must leave to CAA.
func (l *lab) podnodeRoutes(c *tunneler.Config) {
	t := l.t
	if !c.PodIP.IsSingleIP() {
		ip(t, l.vmPod, "route", "del", c.PodIP.Masked().String(), "dev", c.InterfaceName)
	}
	var first, second []*tunneler.Route
	for _, r := range c.Routes {
		if r.GW.IsValid() {
			second = append(second, r)
		} else {
			first = append(first, r)
		}
	}
	for _, r := range append(first, second...) {
		dst := "default"
		if r.Dst.IsValid() {
			dst = r.Dst.String()
		}
		args := []string{"route", "add", dst}
		if r.GW.IsValid() {
			args = append(args, "via", r.GW.String())
		}
		args = append(args, "dev", r.Dev)
		if r.Protocol != 0 {
			args = append(args, "proto", r.Protocol.String())
		}
		if r.Scope != 0 {
			args = append(args, "scope", r.Scope.String())
		}
		ip(t, l.vmPod, args...)
	}
	for _, n := range c.Neighbors {
		ip(t, l.vmPod, "neighbour", "add", n.IP.String(), "lladdr", n.HardwareAddr, "dev", n.Dev, "nud", n.State.String())
	}
}

// startDaemon runs peerpod-wg-sidecar in the worker's host netns; it is stopped when the test ends.
func (l *lab) startDaemon(socket string) {
	t := l.t
	cmd := exec.Command("ip", "netns", "exec", l.worker, "peerpod-wg-sidecar")
	cmd.Env = append(os.Environ(), "WG_SOCKET="+socket, "WG_STATE_DIR="+l.stateDir, "WG_RUN_DIR="+l.runDir, "LOG_LEVEL=warn")
	log, _ := os.Create(filepath.Join(l.runDir, "sidecar.out"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); log.Close() })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := client.Get("http://sidecar/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	out, _ := os.ReadFile(filepath.Join(l.runDir, "sidecar.out"))
	t.Fatalf("the sidecar did not become ready: %s", out)
}

// serveHTTP answers "hello from <ns>" on addr inside a netns.
func (l *lab) serveHTTP(ns, addr string) {
	var lis net.Listener
	if err := inNetns(ns, func() (err error) { lis, err = net.Listen("tcp", addr); return }); err != nil {
		l.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello from "+ns) })}
	go func() { _ = srv.Serve(lis) }()
	l.t.Cleanup(func() { _ = srv.Close() })
}

// get fetches http://addr from a netns, retrying for up to 15 s (the handshake may be on its way).
func (l *lab) get(ns, addr, want string) {
	t := l.t
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var conn net.Conn
		if err := inNetns(ns, func() (err error) { conn, err = net.DialTimeout("tcp", addr, time.Second); return }); err != nil {
			last = err
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
		body, err := io.ReadAll(conn)
		conn.Close()
		if err == nil && strings.Contains(string(body), want) {
			return
		}
		last = fmt.Errorf("reply %q, err %v", body, err)
	}
	t.Fatalf("HTTP from %s to %s: %v", ns, addr, last)
}

// theCAASequence runs CAA's calls with the given worker tunneler; callWorker wraps each worker
// call (in production CAA calls from the host netns; in the tuntest setting, from a thread in
// the worker netns).
func (l *lab) theCAASequence(worker tunneler.TunnelerConfigurator, callWorker func(func() error) error) {
	t := l.t
	// 1. Configure, on the config CAA's Inspect built.
	config := l.inspected()
	if err := callWorker(func() error {
		return worker.Configure(&tunneler.NetworkConfig{TunnelType: wireguard.TunnelType}, config)
	}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	// 2. apf.json as CAA marshals it, and its debug copy on the worker.
	apf, err := json.Marshal(map[string]any{"pod-network": config, "pod-namespace": "default", "pod-name": "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	var onVM struct {
		PodNetwork *tunneler.Config `json:"pod-network"`
	}
	if err := json.Unmarshal(apf, &onVM); err != nil {
		t.Fatal(err)
	}
	var section map[string]any
	_ = json.Unmarshal(onVM.PodNetwork.WireGuard, &section)
	if section["private-key"] == nil || section["peer-public-key"] == nil || section["listen-port"] == nil {
		t.Fatalf("apf.json's wireguard section misses the pod VM's keys or port: has %v", keysOf(section))
	}
	debug, _ := json.Marshal(map[string]any{"pod-network": wireguard.WithoutSecrets(config)})
	if strings.Contains(string(debug), "private-key") || strings.Contains(string(debug), "preshared-key") ||
		strings.Contains(string(debug), section["private-key"].(string)) {
		t.Fatal("the worker's debug copy of apf.json holds a private or preshared key")
	}
	// 3. The pod VM: APF's podnode calls its tunneler's Setup from the VM's root netns, then adds routes.
	podNode, err := wireguard.NewPodNodeTunneler()
	if err != nil {
		t.Fatal(err)
	}
	vmIPs := []netip.Addr{netip.MustParseAddr("192.0.2.2")}
	if err := inNetns(l.vmRoot, func() error { return podNode.Setup(l.path(l.vmPod), vmIPs, onVM.PodNetwork) }); err != nil {
		t.Fatalf("pod-node Setup: %v", err)
	}
	l.podnodeRoutes(onVM.PodNetwork)
	// 4. The worker: StartVM's Setup.
	if err := callWorker(func() error { return worker.Setup(l.path(l.pod), vmIPs, config) }); err != nil {
		t.Fatalf("worker Setup: %v", err)
	}
	// The worker's device and its wireguard-go were born in the worker's host netns.
	l.assertBornInWorker()
	// The pod VM's private key is in no file of the worker's state or run folders (logs included).
	l.assertNowhere(section["private-key"].(string))
	// 5. HTTP both ways: a client pod on the worker to the VM's pod, and back.
	l.serveHTTP(l.vmPod, l.subnet+".3:8080")
	l.serveHTTP(l.client, l.subnet+".2:8080")
	l.get(l.client, l.subnet+".3:8080", "hello from "+l.vmPod)
	l.get(l.vmPod, l.subnet+".2:8080", "hello from "+l.client)
	// 6. Teardown, twice (idempotent), and nothing left.
	for i := 0; i < 2; i++ {
		if err := callWorker(func() error { return worker.Teardown(l.path(l.pod), "eth0", config) }); err != nil {
			t.Fatalf("worker Teardown #%d: %v", i+1, err)
		}
		if err := inNetns(l.vmRoot, func() error { return podNode.Teardown(l.path(l.vmPod), "eth0", onVM.PodNetwork) }); err != nil {
			t.Fatalf("pod-node Teardown #%d: %v", i+1, err)
		}
	}
	l.assertNothingLeft()
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func netnsInode(t *testing.T, path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func (l *lab) wireguardGoPids() []int {
	var pids []int
	files, _ := filepath.Glob(filepath.Join(l.runDir, "*.pid"))
	for _, f := range files {
		var pid int
		if b, err := os.ReadFile(f); err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil && syscall.Kill(pid, 0) == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func (l *lab) assertBornInWorker() {
	t := l.t
	worker := netnsInode(t, l.path(l.worker))
	pids := l.wireguardGoPids()
	if len(pids) == 0 {
		t.Fatal("no wireguard-go of ours runs (no pid file in the run folder)")
	}
	bornInWorker := false
	for _, pid := range pids {
		if netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)) == worker {
			bornInWorker = true
		}
	}
	if !bornInWorker {
		t.Fatal("no wireguard-go of ours lives in the worker's host netns: the device was born elsewhere")
	}
	if !strings.Contains(ip(t, l.pod, "-d", "link", "show"), "pwg") {
		t.Fatal("the worker's WireGuard device is not in the pod netns")
	}
}

func (l *lab) assertNowhere(secret string) {
	t := l.t
	for _, dir := range []string{l.stateDir, l.runDir} {
		_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), secret) {
				t.Errorf("%s holds the pod VM's private key", path)
			}
			return nil
		})
	}
}

func (l *lab) assertNothingLeft() {
	t := l.t
	if out := ip(t, l.pod, "link", "show"); strings.Contains(out, "pwg") {
		t.Errorf("a device is left in the worker's pod netns: %s", out)
	}
	if out := ip(t, l.worker, "link", "show"); strings.Contains(out, "pwg") {
		t.Errorf("a device is left in the worker's host netns: %s", out)
	}
	if out := ip(t, l.vmPod, "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("the VM's pod interface is left: %s", out)
	}
	// The sidecar may need a moment to reap a stopped wireguard-go.
	for deadline := time.Now().Add(5 * time.Second); len(l.wireguardGoPids()) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if pids := l.wireguardGoPids(); len(pids) > 0 {
		t.Errorf("wireguard-go processes are left: %v", pids)
	}
	for _, dir := range []string{"pods", "pending"} {
		if entries, _ := os.ReadDir(filepath.Join(l.stateDir, dir)); len(entries) > 0 {
			t.Errorf("state is left in %s/%s: %d entries", l.stateDir, dir, len(entries))
		}
	}
}

// Production: CAA and the sidecar share the host network; CAA calls the daemon's socket.
func TestCAASequenceWithTheSidecarDaemon(t *testing.T) {
	l := newLab(t)
	socket := filepath.Join(l.runDir, "sidecar.sock")
	l.startDaemon(socket)
	w, err := wireguard.NewWorkerNodeTunnelerWithOptions(wireguard.WorkerOptions{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WG_RUN_DIR", l.runDir) // the agent's wireguard-go pid files, for the checks
	l.theCAASequence(w.(tunneler.TunnelerConfigurator), func(f func() error) error { return f() })
}

// CAA's tuntest: the worker is a named netns entered by the calling thread, and no daemon runs.
func TestCAASequenceInAWorkerNetnsWithoutDaemon(t *testing.T) {
	l := newLab(t)
	t.Setenv("WG_STATE_DIR", l.stateDir)
	t.Setenv("WG_RUN_DIR", l.runDir)
	w, err := wireguard.NewWorkerNodeTunnelerWithOptions(wireguard.WorkerOptions{Mode: wireguard.ModeExec})
	if err != nil {
		t.Fatal(err)
	}
	l.theCAASequence(w.(tunneler.TunnelerConfigurator), func(f func() error) error { return inNetns(l.worker, f) })
}

// Bad input from CAA comes back with the sidecar's code, field and message.
func TestCAAErrorsNameTheField(t *testing.T) {
	l := newLab(t)
	t.Setenv("WG_STATE_DIR", l.stateDir)
	t.Setenv("WG_RUN_DIR", l.runDir)
	w, _ := wireguard.NewWorkerNodeTunnelerWithOptions(wireguard.WorkerOptions{Mode: wireguard.ModeExec})
	config := l.inspected()
	config.MTU = 20
	err := inNetns(l.worker, func() error { return w.(tunneler.TunnelerConfigurator).Configure(&tunneler.NetworkConfig{}, config) })
	var e *wireguard.Error
	if err == nil || !asError(err, &e) || e.Code != "EINVAL" || !strings.Contains(e.Message, "podNetwork.mtu") {
		t.Fatalf("Configure with mtu 20: err = %v, want EINVAL naming podNetwork.mtu", err)
	}
	// A section whose VM key is not the one configured with its worker key: refused, nothing set up.
	var a, b map[string]any
	for _, m := range []*map[string]any{&a, &b} {
		c := l.inspected()
		if err := inNetns(l.worker, func() error { return w.(tunneler.TunnelerConfigurator).Configure(&tunneler.NetworkConfig{}, c) }); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(c.WireGuard, m)
	}
	a["private-key"] = b["private-key"]
	mixed := l.inspected()
	mixed.WireGuard, _ = json.Marshal(a)
	err = inNetns(l.worker, func() error { return w.Setup(l.path(l.pod), []netip.Addr{netip.MustParseAddr("192.0.2.2")}, mixed) })
	if err == nil || !asError(err, &e) || e.Code != "EINVAL" || e.Field != "pod-network.wireguard.private-key" {
		t.Fatalf("Setup with a mixed section: err = %v, want EINVAL on pod-network.wireguard.private-key", err)
	}
	config = l.inspected()
	config.WireGuard = json.RawMessage(`{"private-key":"AAAA","peer-public-key":"BBBB","listen-port":51900,"mtu":1420}`)
	err = inNetns(l.worker, func() error { return w.Setup(l.path(l.pod), []netip.Addr{netip.MustParseAddr("192.0.2.2")}, config) })
	if err == nil || !asError(err, &e) || e.Code != "EINVAL" || !strings.Contains(e.Message, "pod-network.wireguard") || strings.Contains(e.Message, "AAAA") {
		t.Fatalf("Setup with bad keys: err = %v, want EINVAL naming the fields without echoing keys", err)
	}
}

func asError(err error, target **wireguard.Error) bool {
	e, ok := err.(*wireguard.Error)
	if ok {
		*target = e
	}
	return ok
}
