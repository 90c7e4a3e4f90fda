//go:build !linux

package main

import "errors"

// systemMounter: the driver runs in the Linux guest only.
type systemMounter struct{}

var errNotLinux = errors.New("the test CSI driver mounts only on Linux")

func (systemMounter) bind(string, string, bool) error { return errNotLinux }
func (systemMounter) unbind(string) error             { return errNotLinux }
