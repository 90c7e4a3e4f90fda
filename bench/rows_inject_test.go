package main

import (
	"context"
	"strings"
	"testing"
)

// Every side of the key-route rows runs once, and goes the way its row
// says: the route's answers come only with the key the proxy added and
// are counted by the proxy, token for token; a proxy holding the wrong
// key fails the route's side.
func TestInjectRows(t *testing.T) {
	ctx := context.Background()
	if err := needInject(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopInjectBench)
	for _, row := range injectRows() {
		for _, side := range []Side{row.Ours, row.Kubectl} {
			s, err := side.Run(ctx, nil, 0)
			if err != nil {
				t.Fatalf("%s, %s: %v", row.Name, side.Label, err)
			}
			if s.Ops == 0 || s.Wall <= 0 {
				t.Errorf("%s, %s: sample %+v", row.Name, side.Label, s)
			}
		}
	}

	b := injectRunning
	good := b.proxy.Keys.(injectKeys)[injectPod]
	bad := good
	bad.Credentials = append(bad.Credentials[:0:0], good.Credentials...)
	bad.Credentials[0].Key = "sk-not-the-one"
	b.proxy.Keys = injectKeys{injectPod: bad}
	defer func() { b.proxy.Keys = injectKeys{injectPod: good} }()
	_, err := injectRequestSide("route", true).Run(ctx, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the route with the wrong key: %v, want the API's 401", err)
	}
}
