package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// WaitFlags are --wait and --timeout of a command that can wait for the
// cluster to reach what it asked for (created, ready, gone). Options embed
// it, so that o.Wait and o.Timeout read as their own.
type WaitFlags struct {
	Wait    bool
	Timeout time.Duration
}

// NewWaitFlags waits by default, for at most timeout.
func NewWaitFlags(timeout time.Duration) WaitFlags {
	return WaitFlags{Wait: true, Timeout: timeout}
}

// AddWaitFlags registers --wait ("Wait until " + until) and --timeout.
func (f *WaitFlags) AddWaitFlags(fl *pflag.FlagSet, until string) {
	fl.BoolVar(&f.Wait, "wait", f.Wait, "Wait until "+until)
	fl.DurationVar(&f.Timeout, "timeout", f.Timeout, "How long to wait; 0 waits for ever")
}

// Validate refuses a negative --timeout (0 is for ever).
func (f *WaitFlags) Validate() error {
	if f.Timeout < 0 {
		return fmt.Errorf("--timeout must not be negative")
	}
	return nil
}
