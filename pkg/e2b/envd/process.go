package envd

import "github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"

// processService answers process.Process. (Being written: every RPC
// answers Unimplemented until then.)
type processService struct {
	processpbconnect.UnimplementedProcessHandler
}

func newProcessService() *processService { return &processService{} }
