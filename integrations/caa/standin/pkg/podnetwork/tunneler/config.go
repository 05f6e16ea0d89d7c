// STAND-IN, for offline builds only (see tunneler.go): CAA's configurator interface and network
// configuration, written from their API.
package tunneler

type TunnelerConfigurator interface {
	Tunneler
	Configure(*NetworkConfig, *Config) error
}

type NetworkConfig struct {
	TunnelType          string
	HostInterface       string
	VXLAN               VXLANConfig
	ExternalNetViaPodVM bool
	PodSubnetCIDRs      SubnetCIDRs
}

type VXLANConfig struct {
	Port  int
	MinID int
}

type SubnetCIDRs []string
