// Command agentmock serves test/agentmock's scripted model APIs on one
// address, for a test whose agent runs elsewhere (in a sandbox on the real
// node): Anthropic's Messages API for Claude Code and OpenAI's Responses API
// for Codex, each playing its script, and what the mock saw as JSON at
// GET /_agentmock/state (add ?bodies=1 for the request bodies). Each request
// is logged to stderr: path, API, step played, status, the key it carried
// as a SHA-256 prefix (key=sha256:…, so a test tells which key arrived
// without a key in a log), User-Agent.
//
//	agentmock -listen 0.0.0.0:8080 -claude-dir /workspace
//	agentmock -listen 0.0.0.0:8080 -fail-status 500 -fail-message boom
//	agentmock -listen :443 -tls-cert c.pem -tls-key k.pem -fail-status 500 -fail-key sk-x
//
// Point Claude Code at it with ANTHROPIC_BASE_URL=http://HOST:PORT, and Codex
// with the flags agentmock.CodexFlags("http://HOST:PORT/v1") returns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/test/agentmock"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agentmock:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	claudeDir := flag.String("claude-dir", "/workspace", "Claude Code's working directory, an absolute path: its Read and Edit tools take absolute paths")
	failStatus := flag.Int("fail-status", 0, "answer every model request with this HTTP status and the API's error shape instead of the scripts")
	failMessage := flag.String("fail-message", "agentmock: failing as asked", "the error's message, with -fail-status")
	failKey := flag.String("fail-key", "", "with -fail-status, fail only the requests carrying this key; others play the scripts")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this PEM certificate (chain), with -tls-key")
	tlsKey := flag.String("tls-key", "", "the PEM private key of -tls-cert")
	flag.Parse()

	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.LUTC)
	opts := agentmock.Options{
		Claude: agentmock.ClaudeScript(*claudeDir),
		Codex:  agentmock.CodexScript(),
		OnRequest: func(r agentmock.Request) {
			log.Printf("%s %s api=%s model=%s step=%d status=%d body=%dB key=%s ua=%q", r.Method, r.Path, r.API, r.Model, r.Step, r.Status, r.BodySize, agentmock.KeyDigest(agentmock.Credential(r.Header)), r.Header.Get("User-Agent"))
		},
	}
	if *failStatus != 0 {
		opts.Fail = &agentmock.Failure{Status: *failStatus, Message: *failMessage}
		opts.FailKey = *failKey
	}
	m := agentmock.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/_agentmock/state", m.StateHandler())
	mux.Handle("/", m)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("serving on %s", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	serve := func() error { return srv.Serve(ln) }
	if *tlsCert != "" {
		serve = func() error { return srv.ServeTLS(ln, *tlsCert, *tlsKey) }
	}
	if err := serve(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
