package mesh

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestConfigValidate(t *testing.T) {
	key := testKey(t)
	good := func() Config {
		return Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}}
	}
	if err := (&Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + testID}}).Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	tests := map[string]func(*Config){
		"nil key":          func(c *Config) { c.Key = nil },
		"no listen":        func(c *Config) { c.Listen = nil },
		"bad listen":       func(c *Config) { c.Listen = []string{"/ip4/nope"} },
		"listen with p2p":  func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/0/p2p/" + testID} },
		"bootstrap no id":  func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"} },
		"bootstrap no tpt": func(c *Config) { c.Bootstrap = []string{"/p2p/" + testID} },
		"dup protocol": func(c *Config) {
			c.Protocols = []ProtocolLimit{{ID: "/x/1", StreamsInbound: 1, Memory: 1}, {ID: "/x/1", StreamsInbound: 1, Memory: 1}}
		},
		"zero streams":       func(c *Config) { c.Protocols = []ProtocolLimit{{ID: "/x/1", Memory: 1}} },
		"zero memory":        func(c *Config) { c.Protocols = []ProtocolLimit{{ID: "/x/1", StreamsInbound: 1}} },
		"empty proto":        func(c *Config) { c.Protocols = []ProtocolLimit{{StreamsInbound: 1, Memory: 1}} },
		"low above hi":       func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 },
		"retry min>max":      func(c *Config) { c.RetryMin, c.RetryMax = 10, 5 },
		"short psk":          func(c *Config) { c.Listen = c.Listen[:1]; c.PSK = make([]byte, 5) },
		"psk with quic":      func(c *Config) { c.PSK = make([]byte, 32) },
		"reprovide too long": func(c *Config) { c.ReprovideInterval = ProvideValidity },
		"negative keep":      func(c *Config) { c.KeepInterval = -1 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := good()
			mutate(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
