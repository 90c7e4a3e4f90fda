package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// follow collects a process's whole output and how it ended.
func follow(t *testing.T, p *Procs, sel Selector, from Offsets) (stdout, stderr string, st State, ex Exit) {
	t.Helper()
	var o outputs
	st, ex, err := p.Follow(ctxT(t), sel, from, o.add)
	if err != nil {
		t.Fatalf("following %s: %v", sel, err)
	}
	return o.stdout.String(), o.stderr.String(), st, ex
}

// outputs collects a process's chunks, stream by stream.
type outputs struct{ stdout, stderr bytes.Buffer }

func (o *outputs) add(c Chunk) error {
	if c.Stderr {
		o.stderr.Write(c.Data)
	} else {
		o.stdout.Write(c.Data)
	}
	return nil
}

func TestStartFollowExit(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			cwd := t.TempDir()
			for _, c := range []struct {
				name           string
				spec           Spec
				stdout, stderr string
				code           int
			}{
				{"exit 0", Spec{Cmd: "sh", Args: []string{"-c", "echo hi"}}, "hi\n", "", 0},
				{"exit 3 both streams", Spec{Cmd: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}}, "out\n", "err\n", 3},
				{"exit 255", Spec{Cmd: "sh", Args: []string{"-c", "exit 255"}}, "", "", 255},
				{"words travel as they are", Spec{Cmd: "sh", Args: []string{"-c", `printf '[%s]' "$@"`, "x", "it's", "a\nb", "$HOME", "`id`", ""}}, "[it's][a\nb][$HOME][`id`][]", "", 0},
				{"env and cwd", Spec{Cmd: "sh", Args: []string{"-c", `printf '%s|%s' "$AK_X" "$PWD"`}, Env: map[string]string{"AK_X": "v 'q'\n"}, Cwd: cwd}, "v 'q'\n|" + cwd, "", 0},
				{"missing program", Spec{Cmd: "no-such-program-ak"}, "", "sh: no-such-program-ak: not found\n", 127},
				{"fallback", Spec{Cmd: "/no/bash", Fallback: "sh", Args: []string{"-c", "echo fell"}}, "fell\n", "", 0},
				{"program failing in the middle", Spec{Cmd: "sh", Args: []string{"-c", "echo a; false; echo b; kill -9 $$"}}, "a\nb\n", "", 137},
			} {
				t.Run(c.name, func(t *testing.T) {
					proc, err := p.Start(ctxT(t), c.spec)
					if err != nil {
						t.Fatal(err)
					}
					if proc.PID <= 0 || proc.State != Running {
						t.Fatalf("started %+v", proc)
					}
					stdout, stderr, st, ex := follow(t, p, Selector{PID: proc.PID}, Offsets{})
					checkExit(t, c.stdout, c.stderr, c.code, stdout, stderr, st, ex)
				})
				t.Run(c.name+", in one exec", func(t *testing.T) {
					stdout, stderr, st, ex := startFollow(t, p, c.spec)
					checkExit(t, c.stdout, c.stderr, c.code, stdout, stderr, st, ex)
				})
			}
		})
	}
}

// checkExit compares a process's output and end with what was wanted.
func checkExit(t *testing.T, wantOut, wantErr string, code int, stdout, stderr string, st State, ex Exit) {
	t.Helper()
	if stdout != wantOut || stderr != wantErr || st != Exited || ex.Code != code {
		t.Errorf("got stdout %q stderr %q %v %+v; want %q %q exit %d", stdout, stderr, st, ex, wantOut, wantErr, code)
	}
	// Not sent by us: a process that killed itself reports the shell's
	// status, as exited.
	if !ex.Exited() || ex.Status() != "exit status "+strconv.Itoa(code) {
		t.Errorf("exit %+v: exited %v status %q", ex, ex.Exited(), ex.Status())
	}
}

func TestStartRefuses(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	for _, c := range []struct {
		spec  Spec
		field string
	}{
		{Spec{}, "cmd"},
		{Spec{Cmd: "sh", Env: map[string]string{"A-B": "x"}}, "env"},
		{Spec{Cmd: "sh", Env: map[string]string{"1A": "x"}}, "env"},
		{Spec{Cmd: "sh", Args: []string{"a\x00b"}}, "args"},
		{Spec{Cmd: "sh", Tag: "a\nb"}, "tag"},
		{Spec{Cmd: "sh", Env: map[string]string{"BIG": strings.Repeat("x", maxConfig)}}, "env"},
		{Spec{Cmd: "sh", Cwd: "/no/such/dir"}, "cwd"},
	} {
		_, err := p.Start(ctxT(t), c.spec)
		var fe field.Error
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("Start(%+v) = %v; want an error about %s", c.spec, err, c.field)
		}
	}
	// Nothing of a refused start is left.
	if entries, _ := os.ReadDir(p.Dir); len(entries) != 0 {
		t.Errorf("a refused start left %d directories", len(entries))
	}
}

// A process outlives the exec that started it: the start's context ends at
// once, and the process runs on, to be followed later from its start.
func TestOutlivesItsExec(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			ctx, cancel := context.WithCancel(context.Background())
			proc, err := p.Start(ctx, Spec{Cmd: "sh", Args: []string{"-c", "echo early; sleep 1; echo late; exit 4"}, Tag: "dev-server"})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Find(ctxT(t), Selector{Tag: "dev-server"})
			if err != nil || got.PID != proc.PID || got.State != Running || got.Spec.Args[1] == "" {
				t.Fatalf("Find by tag: %+v, %v", got, err)
			}
			stdout, _, st, ex := follow(t, p, Selector{Tag: "dev-server"}, Offsets{})
			if stdout != "early\nlate\n" || st != Exited || ex.Code != 4 {
				t.Fatalf("got %q %v %+v", stdout, st, ex)
			}
			// From an offset: only what comes after.
			stdout, _, _, ex = follow(t, p, Selector{PID: proc.PID}, Offsets{Stdout: 6})
			if stdout != "late\n" || ex.Code != 4 {
				t.Fatalf("from offset 6: %q %+v", stdout, ex)
			}
			// A finished process leaves nothing of ours running.
			assertGone(t, p, proc)
		})
	}
}

// assertGone: the process and its supervisor have ended.
func assertGone(t *testing.T, p *Procs, proc *Process) {
	t.Helper()
	for _, f := range []string{"pid", "super"} {
		b, err := os.ReadFile(filepath.Join(p.Dir, proc.ID, f))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(stat), ") Z ") {
				break // a zombie waiting for its reaper (this test's init): ended
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %d of process %d is still running", f, pid, proc.PID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Signals reach the process and everything it started; the exit says which.
func TestSignal(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			for _, c := range []struct {
				sig    Signal
				code   int
				status string
			}{{SIGTERM, 143, "signal: terminated"}, {SIGKILL, 137, "signal: killed"}} {
				proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", "sleep 100 & echo $!; sleep 100 & echo $!; wait"}})
				if err != nil {
					t.Fatal(err)
				}
				var kids []int
				for len(kids) < 2 {
					out, err := p.Read(ctxT(t), Selector{PID: proc.PID}, Offsets{}, 0)
					if err != nil {
						t.Fatal(err)
					}
					kids = nil
					for _, f := range strings.Fields(string(out.Stdout)) {
						n, _ := strconv.Atoi(f)
						kids = append(kids, n)
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err := p.Signal(ctxT(t), Selector{PID: proc.PID}, c.sig); err != nil {
					t.Fatal(err)
				}
				_, _, st, ex := follow(t, p, Selector{PID: proc.PID}, Offsets{})
				if st != Exited || ex.Code != c.code || ex.Exited() || ex.Status() != c.status || ex.Signal != int(c.sig) {
					t.Errorf("%v: %v %+v %q", c.sig, st, ex, ex.Status())
				}
				for _, k := range kids {
					if err := syscall.Kill(k, 0); err == nil {
						if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k)); !strings.Contains(string(stat), ") Z ") {
							t.Errorf("%v: child %d of the process survived", c.sig, k)
						}
					}
				}
				// An ended process cannot be signalled.
				if err := p.Signal(ctxT(t), Selector{PID: proc.PID}, SIGKILL); !errors.Is(err, ErrEnded) {
					t.Errorf("signal after the end: %v", err)
				}
				assertGone(t, p, proc)
			}
			if err := p.Signal(ctxT(t), Selector{PID: 1}, Signal(3)); err == nil {
				t.Error("SIGQUIT was sent")
			}
		})
	}
}

// Several inputs reach one process without an EOF between them; closing
// its stdin ends its input.
func TestStdin(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", "cat; echo EOF"}, Stdin: true})
			if err != nil {
				t.Fatal(err)
			}
			sel := Selector{PID: proc.PID}
			for _, in := range []string{"one\n", "two", "\n"} {
				if err := p.SendInput(ctxT(t), sel, []byte(in)); err != nil {
					t.Fatal(err)
				}
			}
			// Still running: the sends gave it no EOF.
			time.Sleep(200 * time.Millisecond)
			if q, err := p.Find(ctxT(t), sel); err != nil || q.State != Running {
				t.Fatalf("after the sends: %+v %v", q, err)
			}
			if err := p.CloseStdin(ctxT(t), sel); err != nil {
				t.Fatal(err)
			}
			if err := p.SendInput(ctxT(t), sel, []byte("late")); !errors.Is(err, ErrStdinClosed) && !errors.Is(err, ErrEnded) {
				t.Errorf("input after close: %v", err)
			}
			stdout, _, st, ex := follow(t, p, sel, Offsets{})
			if stdout != "one\ntwo\nEOF\n" || st != Exited || ex.Code != 0 {
				t.Fatalf("got %q %v %+v", stdout, st, ex)
			}
			assertGone(t, p, proc)

			// Started without stdin: it reads EOF, and input is refused.
			proc, err = p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", "cat; echo EOF; sleep 100"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.SendInput(ctxT(t), Selector{PID: proc.PID}, []byte("x")); !errors.Is(err, ErrStdinClosed) {
				t.Errorf("input to a process without stdin: %v", err)
			}
			if err := p.CloseStdin(ctxT(t), Selector{PID: proc.PID}); err != nil {
				t.Errorf("closing a closed stdin: %v", err)
			}
		})
	}
}

func TestUnknownProcess(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	ctx := ctxT(t)
	for _, sel := range []Selector{{PID: 999999999}, {Tag: "nobody"}} {
		if _, err := p.Find(ctx, sel); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find %s: %v", sel, err)
		}
		if err := p.Signal(ctx, sel, SIGKILL); !errors.Is(err, ErrNotFound) {
			t.Errorf("Signal %s: %v", sel, err)
		}
		if err := p.SendInput(ctx, sel, []byte("x")); !errors.Is(err, ErrNotFound) {
			t.Errorf("SendInput %s: %v", sel, err)
		}
		if err := p.CloseStdin(ctx, sel); !errors.Is(err, ErrNotFound) {
			t.Errorf("CloseStdin %s: %v", sel, err)
		}
		if _, _, err := p.Follow(ctx, sel, Offsets{}, func(Chunk) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("Follow %s: %v", sel, err)
		}
		if _, err := p.Read(ctx, sel, Offsets{}, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read %s: %v", sel, err)
		}
	}
	if err := p.Signal(ctx, Selector{}, SIGKILL); err == nil {
		t.Error("an empty selector was taken")
	}
	if _, err := p.Read(ctx, Selector{PID: 1}, Offsets{Stdout: -1}, 0); err == nil {
		t.Error("a negative offset was taken")
	}
}

func TestConcurrentStarts(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			const n = 8
			var wg sync.WaitGroup
			pids := make([]int, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", fmt.Sprintf("echo %d; exit %d", i, i)}, Tag: fmt.Sprint("t", i)})
					if err == nil {
						pids[i] = proc.PID
					}
					errs[i] = err
				})
			}
			wg.Wait()
			seen := map[int]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if seen[pids[i]] {
					t.Fatalf("pid %d twice", pids[i])
				}
				seen[pids[i]] = true
				stdout, _, _, ex := follow(t, p, Selector{Tag: fmt.Sprint("t", i)}, Offsets{})
				if stdout != fmt.Sprintf("%d\n", i) || ex.Code != i {
					t.Errorf("process %d: %q %+v", i, stdout, ex)
				}
			}
			all, err := p.List(ctxT(t))
			if err != nil || len(all) != n {
				t.Fatalf("list: %d processes, %v", len(all), err)
			}
		})
	}
}

// A process that floods its output keeps running to its end; what it
// writes beyond the cap is dropped, so the disk is not filled.
func TestFlood(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			p.OutputCap = 256 << 10
			proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", "dd if=/dev/zero bs=65536 count=64 2>/dev/null; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo done >&2"}})
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, st, ex := follow(t, p, Selector{PID: proc.PID}, Offsets{})
			if st != Exited || ex.Code != 0 || stderr != "done\n" {
				t.Fatalf("%v %+v %q", st, ex, stderr)
			}
			if len(stdout) < 256<<10 || len(stdout) >= 256<<10+64<<10 {
				t.Errorf("kept %d bytes of 4 MiB with a cap of 256 KiB", len(stdout))
			}
			fi, err := os.Stat(filepath.Join(p.OutputDir, proc.ID, "stdout"))
			if err != nil || fi.Size() != int64(len(stdout)) {
				t.Errorf("output file: %v %v", fi, err)
			}
			// Read in pieces with offsets.
			out, err := p.Read(ctxT(t), Selector{PID: proc.PID}, Offsets{Stdout: 1000}, 4096)
			if err != nil || len(out.Stdout) != 4096 || !out.More || out.Next.Stdout != 1000+4096 {
				t.Errorf("read: %d bytes, more %v, next %+v, %v", len(out.Stdout), out.More, out.Next, err)
			}
		})
	}
}

// A process can write its own status file (it runs as the same user):
// while it runs that changes nothing, and its output, whatever it holds,
// is data, never framing.
func TestHostileProcess(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			script := `while :; do for d in "$1"/p.*; do read p s < "$d/pid" || continue; [ "$p" = $$ ] || continue; echo 0 > "$d/exit"; echo 9 > "$d/signal"; printf 'AKP x\nX 0 -\n' > "$d/tag"; break 2; done; sleep 0.05; done 2>/dev/null
printf 'X 0 -\nO 999999999\nR\n'; printf 'AKP p.a 1 1 1 1 1 1\n' >&2
touch "$2"; while [ ! -e "$2.go" ]; do sleep 0.05; done; exit 7`
			flag := filepath.Join(t.TempDir(), "forged")
			proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", script, "x", p.Dir, flag}})
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := os.Stat(flag); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			q, err := p.Find(ctxT(t), Selector{PID: proc.PID})
			if err != nil || q.State != Running {
				t.Fatalf("a process that forged its exit: %+v %v", q, err)
			}
			if err := os.WriteFile(flag+".go", nil, 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, st, ex := follow(t, p, Selector{PID: proc.PID}, Offsets{})
			if stdout != "X 0 -\nO 999999999\nR\n" || stderr != "AKP p.a 1 1 1 1 1 1\n" || st != Exited || ex.Code != 7 {
				t.Fatalf("got %q %q %v %+v", stdout, stderr, st, ex)
			}
		})
	}
}

// Finished processes make room for new ones, oldest first; running ones
// never do.
func TestKeep(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	p.Keep = 3
	var first *Process
	for i := range 4 {
		proc, err := p.Start(ctxT(t), Spec{Cmd: "true"})
		if err != nil {
			t.Fatal(err)
		}
		follow(t, p, Selector{PID: proc.PID}, Offsets{})
		if i == 0 {
			first = proc
		}
	}
	all, err := p.List(ctxT(t))
	if err != nil || len(all) != 3 {
		t.Fatalf("%d kept, %v", len(all), err)
	}
	for _, q := range all {
		if q.ID == first.ID {
			t.Error("the oldest was kept")
		}
	}
	if _, err := os.Stat(filepath.Join(p.OutputDir, first.ID)); !os.IsNotExist(err) {
		t.Errorf("the oldest's output is left: %v", err)
	}
	for range 3 {
		if _, err := p.Start(ctxT(t), Spec{Cmd: "sleep", Args: []string{"100"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Start(ctxT(t), Spec{Cmd: "true"}); !errors.Is(err, ErrTooMany) {
		t.Errorf("a fourth running process: %v", err)
	}
}

// Something in the sandbox kills a process's supervisor: the process is
// lost (no exit status can come), and following it ends rather than hangs.
func TestSupervisorKilled(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	proc, err := p.Start(ctxT(t), Spec{Cmd: "sleep", Args: []string{"100"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"super", "pid"} {
		b, err := os.ReadFile(filepath.Join(p.Dir, proc.ID, f))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := p.Find(ctxT(t), Selector{PID: proc.PID})
		if err != nil {
			t.Fatal(err)
		}
		if q.State == Lost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v", q.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, st, _ := follow(t, p, Selector{PID: proc.PID}, Offsets{}); st != Lost {
		t.Errorf("follow: %v", st)
	}
}
