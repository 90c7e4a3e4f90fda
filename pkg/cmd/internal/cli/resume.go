package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// DefaultResumeTimeout bounds how long a command waits for a suspended
// sandbox it resumes on its own.
const DefaultResumeTimeout = 5 * time.Minute

// ResumePolicy is how a command that uses a sandbox (exec, cp, shell,
// attach, logs, port-forward, run NAME) treats one that is suspended:
// it resumes it first, saying so on Notice, unless NoResume.
type ResumePolicy struct {
	NoResume bool
	Timeout  time.Duration
	// Notice hears that a sandbox is being resumed (the command's stderr).
	Notice io.Writer
}

// AddNoResumeFlag registers --no-resume on a command that uses a sandbox.
func (p *ResumePolicy) AddNoResumeFlag(flags *pflag.FlagSet) {
	flags.BoolVar(&p.NoResume, "no-resume", p.NoResume, "Refuse a suspended sandbox instead of resuming it first")
}

// Options are the domain's resume options for this policy.
func (p *ResumePolicy) Options(name string, prepare func(context.Context, *sandbox.Spec) error) sandbox.ResumeOptions {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = DefaultResumeTimeout
	}
	return sandbox.ResumeOptions{
		Timeout:   timeout,
		Prepare:   prepare,
		LookupKey: os.LookupEnv,
		Resuming: func(since time.Time, why string) {
			if p.Notice != nil {
				fmt.Fprintf(p.Notice, "resuming sandbox/%s, %s\n", name, sandbox.DescribeSuspension(since, why, time.Now()))
			}
		},
	}
}
