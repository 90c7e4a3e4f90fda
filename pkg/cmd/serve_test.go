package cmd

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestServeListensOnLoopbackUnlessTLS(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.8.9.1": true, "::1": true, "localhost": true, "LocalHost": true,
		"0.0.0.0": false, "": false, "::": false, "192.168.1.2": false, "example.com": false, "localhost.evil.com": false,
	} {
		if got := loopback(host); got != want {
			t.Errorf("loopback(%q) = %v, want %v", host, got, want)
		}
	}
	for _, c := range []struct {
		listen, cert, key string
		want              string
	}{
		{"0.0.0.0:3044", "", "", "not a loopback address"},
		{":3044", "", "", "not a loopback address"},
		{"3044", "", "", "is not HOST:PORT"},
		{"127.0.0.1:3044", "cert.pem", "", "go together"},
	} {
		o := NewServeOptions(genericiooptions.NewTestIOStreamsDiscard())
		o.Listen, o.TLSCertFile, o.TLSKeyFile = c.listen, c.cert, c.key
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--listen %s (cert %q, key %q): %v, want an error saying %q", c.listen, c.cert, c.key, err, c.want)
		}
	}
}
