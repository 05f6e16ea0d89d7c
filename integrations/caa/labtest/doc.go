// Package caalab runs CAA's call sequence for TUNNEL_TYPE=wireguard against the real
// peerpod-wg-sidecar and peerpod-wg-agent, in network namespaces (root only; hack/go-test.sh).
package caalab
