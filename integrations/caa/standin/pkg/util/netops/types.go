// STAND-IN, for offline builds only: the three named types of CAA's pkg/util/netops that
// tunneler.Config's routes and neighbours use, with the JSON spelling CAA gives them (netlink's
// names: "kernel", "link", "permanent"). Written from CAA's API and netlink's names, not CAA's
// code; the rest of netops (namespaces, links) is not needed by our driver.
package netops

import (
	"encoding/json"
	"fmt"
	"strconv"
)

type RouteProtocol int

type RouteScope uint8

type NeighborState uint16

const NeighborStatePermanent NeighborState = 0x80

var protocolNames = map[RouteProtocol]string{2: "kernel", 3: "boot", 4: "static", 16: "dhcp"}

var scopeNames = map[RouteScope]string{0: "universe", 200: "site", 253: "link", 254: "host", 255: "nowhere"}

var neighborStateNames = map[NeighborState]string{
	0x00: "none", 0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay",
	0x10: "probe", 0x20: "failed", 0x40: "noarp", 0x80: "permanent",
}

func (p RouteProtocol) String() string {
	if s, ok := protocolNames[p]; ok {
		return s
	}
	return strconv.Itoa(int(p))
}

func (s RouteScope) String() string {
	if n, ok := scopeNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

func (s NeighborState) String() string {
	if n, ok := neighborStateNames[s]; ok {
		return n
	}
	return "unknown"
}

func (p RouteProtocol) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }
func (s RouteScope) MarshalJSON() ([]byte, error)    { return json.Marshal(s.String()) }
func (s NeighborState) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (p *RouteProtocol) UnmarshalJSON(data []byte) error { return lookup("route protocol", data, protocolNames, p) }
func (s *RouteScope) UnmarshalJSON(data []byte) error    { return lookup("route scope", data, scopeNames, s) }
func (s *NeighborState) UnmarshalJSON(data []byte) error {
	return lookup("neighbor state", data, neighborStateNames, s)
}

func lookup[T comparable](what string, data []byte, names map[T]string, out *T) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return fmt.Errorf("invalid %s: %s: %w", what, data, err)
	}
	for v, n := range names {
		if n == text {
			*out = v
			return nil
		}
	}
	return fmt.Errorf("unknown %s: %s", what, text)
}
