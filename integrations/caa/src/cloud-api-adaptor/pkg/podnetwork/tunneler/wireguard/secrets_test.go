// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWithoutSecretsDropsOnlyTheKeys(t *testing.T) {
	config := inspected()
	config.WireGuard = json.RawMessage(section)
	debug := WithoutSecrets(config)
	text, _ := json.Marshal(debug)
	for _, secret := range []string{"vm-private", "psk", "private-key", "preshared-key"} {
		if strings.Contains(string(text), `"`+secret+`"`) {
			t.Errorf("the debug copy holds %q: %s", secret, text)
		}
	}
	if !strings.Contains(string(text), `"peer-public-key":"worker-public"`) || !strings.Contains(string(text), `"podip":"10.244.1.21/24"`) {
		t.Errorf("the debug copy lost public fields: %s", text)
	}
	if !strings.Contains(string(config.WireGuard), "vm-private") {
		t.Error("WithoutSecrets changed the config that goes to the pod VM")
	}
}

func TestWithoutSecretsOfOtherTunnels(t *testing.T) {
	config := inspected()
	if WithoutSecrets(config) != config {
		t.Error("a config without a wireguard section must come back as it is")
	}
	config.WireGuard = json.RawMessage(`{"private-key": "vm-private"`) // unreadable
	if got := WithoutSecrets(config); len(got.WireGuard) != 0 {
		t.Errorf("an unreadable section was kept: %s", got.WireGuard)
	}
}
