package main

import (
	"strings"
	"testing"
)

func TestInlineListenIsChecked(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"listen: 127.0.0.1:8080\ninline:\n  enabled: true\n  listen: nowhere\n  upstreams: [{url: 'http://am:9093'}]\n",
			`c.yaml:4: inline.listen: "nowhere" is not host:port`},
		{"listen: 127.0.0.1:8080\ninline:\n  enabled: true\n  listen: 127.0.0.1:8080\n  upstreams: [{url: 'http://am:9093'}]\n",
			`c.yaml:4: inline.listen: "127.0.0.1:8080" is also the main listen address`},
	} {
		_, err := parseConfig("c.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
	cfg, err := parseConfig("c.yaml", []byte("listen: 127.0.0.1:8080\ninline:\n  enabled: true\n  listen: 0.0.0.0:9093\n  upstreams: [{url: 'http://am:9093'}]\n"))
	if err != nil || cfg.Inline.Listen != "0.0.0.0:9093" {
		t.Errorf("a good inline.listen: %v, %q", err, cfg.Inline.Listen)
	}
}
