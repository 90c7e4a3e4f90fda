package envd

import (
	"net/http"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb/filesystempbconnect"
)

// filesystemService answers filesystem.Filesystem and the /files routes.
// (Being written: every RPC answers Unimplemented until then.)
type filesystemService struct {
	filesystempbconnect.UnimplementedFilesystemHandler
}

func newFilesystemService() *filesystemService { return &filesystemService{} }

func (*filesystemService) download(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}

func (*filesystemService) upload(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}
