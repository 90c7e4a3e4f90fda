package field

import (
	"errors"
	"strings"
)

// Step is a next step an error names, for an edge to word as its own
// command or tool: which step (Hint) and on what. The domain says what
// happened; what to run next is the edge's, as the CLI has commands and
// flags and the MCP server has tools and arguments.
type Step struct {
	Hint Hint
	// Name and Namespace are what the step acts on: a sandbox, a pool or
	// a Pod, as the Hint says.
	Name, Namespace string
	// Pool is the pool a claim came from or goes to.
	Pool string
	// Value is the one value the step needs (an agent, a secret's name).
	Value string
}

// The next steps the domain names. Each edge words every one of them
// (its tests check that against Hints).
const (
	// HintListSandboxes: no such sandbox; see which there are.
	HintListSandboxes Hint = "listSandboxes"
	// HintDeleteFirst: the sandbox Name exists; delete it to reuse the name.
	HintDeleteFirst Hint = "deleteFirst"
	// HintRemoveLeft: sandbox Name may be left behind; remove it.
	HintRemoveLeft Hint = "removeLeft"
	// HintReclaim: sandbox Name's claim from Pool never finished; remove
	// it or claim the name again.
	HintReclaim Hint = "reclaim"
	// HintClientDryRun: a server dry run cannot show it; a client one can.
	HintClientDryRun Hint = "clientDryRun"
	// HintWaitSandbox: the sandbox whose Pod is Name did not start in
	// time; wait longer or look at the Pod.
	HintWaitSandbox Hint = "waitSandbox"
	// HintListPools: no such pool (Name); see which there are or make it.
	HintListPools Hint = "listPools"
	// HintPoolExists: pool Name exists; resize it or delete it first.
	HintPoolExists Hint = "poolExists"
	// HintRemovePool: pool Name may be left behind; remove it.
	HintRemovePool Hint = "removePool"
	// HintTopUp: a pool in Namespace lacks a member; listing pools tops
	// them up.
	HintTopUp Hint = "topUp"
	// HintCheckMember: whether pool member Name was claimed is unknown;
	// look at its labels.
	HintCheckMember Hint = "checkMember"
	// HintScalePool: pool Name has size 0; scale it.
	HintScalePool Hint = "scalePool"
	// HintFixSize: pool Name's stored size is unreadable; set it again.
	HintFixSize Hint = "fixSize"
	// HintWaitPool: pool Name was not ready in time; wait longer or look.
	HintWaitPool Hint = "waitPool"
	// HintWaitClaim: no member of pool Name became ready in time; wait
	// longer, look, or claim without waiting.
	HintWaitClaim Hint = "waitClaim"
	// HintPoolForAgent: a pool of agent Value would fit the claim.
	HintPoolForAgent Hint = "poolForAgent"
	// HintSecretOnClaim: secret Value belongs to a claim of pool Pool.
	HintSecretOnClaim Hint = "secretOnClaim"
)

// Hints are all the next steps the domain names.
var Hints = []Hint{HintNoPool, HintListSandboxes, HintDeleteFirst, HintRemoveLeft, HintReclaim,
	HintClientDryRun, HintWaitSandbox, HintListPools, HintPoolExists, HintRemovePool, HintTopUp,
	HintCheckMember, HintScalePool, HintFixSize, HintWaitPool, HintWaitClaim, HintPoolForAgent,
	HintSecretOnClaim}

// Stepper is an error that names a next step after what happened.
type Stepper interface {
	error
	NextStep() Step
}

// Worder is an error that names fields, and says itself with an edge's
// name for each (field.Error, a sandbox's StartError).
type Worder interface {
	error
	Words(name func(field string) string) string
}

// WithStep is err, which says what happened, naming step as what to do
// next.
func WithStep(err error, step Step) error { return &stepError{err: err, step: step} }

type stepError struct {
	err  error
	step Step
}

func (e *stepError) Error() string  { return e.err.Error() }
func (e *stepError) Unwrap() error  { return e.err }
func (e *stepError) NextStep() Step { return e.step }

// Also is err followed by more, a second failure ("err; more"). It
// unwraps to err alone, as a "%w; %v" would, but Say words more's fields
// and next steps too.
func Also(err, more error) error { return &alsoError{err: err, more: more} }

type alsoError struct{ err, more error }

func (e *alsoError) Error() string { return e.err.Error() + "; " + e.more.Error() }
func (e *alsoError) Unwrap() error { return e.err }

// StepOf is the next step err's chain names first, or none.
func StepOf(err error) Step {
	var s Stepper
	if errors.As(err, &s) {
		return s.NextStep()
	}
	return Step{}
}

// NextStep is the step a field error names, if any.
func (e Error) NextStep() Step { return e.Step }

// Name is text, which names fields in backquotes, with name's name for
// each.
func Name(text string, name func(field string) string) string {
	return named.ReplaceAllStringFunc(text, func(m string) string {
		return name(m[1 : len(m)-1])
	})
}

// Say is err's message in an edge's words: every error in its chain that
// names fields (Worder) says them with name, and every one that names a
// next step (Stepper) is followed by step's words for it ("" for none).
// The rest of the message is kept word for word.
func Say(err error, name func(field string) string, step func(Step) string) string {
	msg := err.Error()
	// Outer errors first: an outer one's text holds the inner ones' as
	// the domain said them, so it is found before they are reworded.
	var walk func(error)
	walk = func(e error) {
		domain := e.Error()
		words := domain
		if w, ok := e.(Worder); ok {
			words = w.Words(name)
		}
		if s, ok := e.(Stepper); ok && s.NextStep().Hint != "" {
			if fe, ok := e.(Error); ok && strings.Contains(fe.Detail, "`"+stepMark+"`") {
				words = Name(fe.Detail, func(f string) string {
					if f == stepMark {
						return step(s.NextStep())
					}
					return name(f)
				})
			} else {
				words += step(s.NextStep())
			}
		}
		if words != domain {
			msg = strings.Replace(msg, domain, words, 1)
		}
		if a, ok := e.(*alsoError); ok {
			walk(a.more)
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if inner := u.Unwrap(); inner != nil {
				walk(inner)
			}
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if inner != nil {
					walk(inner)
				}
			}
		}
	}
	walk(err)
	return msg
}
