// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"encoding/json"

	"github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/pkg/podnetwork/tunneler"
)

// secretFields are the fields of our section that only the pod VM may see.
var secretFields = []string{"private-key", "preshared-key"}

// WithoutSecrets returns config for a copy of apf.json kept on the worker (CAA's debug copy): the
// same, except that our section holds no private or preshared key. config itself is not changed.
// A section that cannot be read is dropped whole rather than copied.
func WithoutSecrets(config *tunneler.Config) *tunneler.Config {
	if config == nil || len(config.WireGuard) == 0 {
		return config
	}
	c := *config
	var section map[string]json.RawMessage
	if err := json.Unmarshal(config.WireGuard, &section); err != nil {
		c.WireGuard = nil
		return &c
	}
	for _, f := range secretFields {
		delete(section, f)
	}
	redacted, err := json.Marshal(section)
	if err != nil {
		c.WireGuard = nil
		return &c
	}
	c.WireGuard = redacted
	return &c
}
