// STAND-IN, for offline builds only: CAA's package
// github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler
// as our driver sees it, with patch 0001 (the WireGuard field) applied. Written from the package's
// API (types, fields, JSON names and interfaces), not CAA's code: it lets CI vet and test
// integrations/caa without a copy of CAA's tree. CAA's real package is the judge (docs/caa.md);
// keep every exported name, type and JSON tag here equal to it.
package tunneler

import (
	"encoding/json"
	"net/netip"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/util/netops"
)

type Tunneler interface {
	Setup(nsPath string, podNodeIPs []netip.Addr, config *Config) error
	Teardown(nsPath, hostInterface string, config *Config) error
}

type Config struct {
	PodIP               netip.Prefix    `json:"podip"`
	PodHwAddr           string          `json:"pod-hw-addr"`
	InterfaceName       string          `json:"interface"`
	WorkerNodeIP        netip.Prefix    `json:"worker-node-ip"`
	TunnelType          string          `json:"tunnel-type"`
	Routes              []*Route        `json:"routes"`
	Neighbors           []*Neighbor     `json:"neighbors"`
	MTU                 int             `json:"mtu"`
	Index               int             `json:"index"`
	VXLANPort           int             `json:"vxlan-port,omitempty"`
	VXLANID             int             `json:"vxlan-id,omitempty"`
	Dedicated           bool            `json:"dedicated"`
	ExternalNetViaPodVM bool            `json:"external-net-via-pod-vm"`
	WireGuard           json.RawMessage `json:"wireguard,omitempty"`
}

type Route struct {
	Dst      netip.Prefix         `json:"dst,omitempty"`
	GW       netip.Addr           `json:"gw,omitempty"`
	Dev      string               `json:"dev,omitempty"`
	Protocol netops.RouteProtocol `json:"protocol,omitempty"`
	Scope    netops.RouteScope    `json:"scope,omitempty"`
}

type Neighbor struct {
	IP           netip.Addr           `json:"ip,omitempty"`
	HardwareAddr string               `json:"hw-addr,omitempty"`
	Dev          string               `json:"dev,omitempty"`
	State        netops.NeighborState `json:"state,omitempty"`
}
