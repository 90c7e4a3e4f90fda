// Package cli is the plumbing the plugin's commands share, whether they
// live in pkg/cmd (the top-level commands) or in a family's package
// (pkg/cmd/pool, pkg/cmd/egress): the clients a command completes from the
// factory and the words it explains API errors in, the sandbox flags and
// the pool-claim flags, progress and terminal handling, kubectl get's
// printing trimmed per command, shell completion of names, the table from
// domain fields to flags, and signals. It holds no command: a new command
// goes in pkg/cmd (top level) or in its family's package, and what two of
// them share comes here. Being internal to pkg/cmd, nothing outside the
// command line can import it.
package cli
