package procs

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// Whatever the sandbox prints as a listing, parsing it ends, returns
// only well-formed processes, and never reads more than it was given.
func FuzzParseListing(f *testing.F) {
	for _, s := range []string{
		"",
		"AKP p.abc 12 1 1 - - 2\n{}",
		`AKP p.abc 12 0 0 3 - 14` + "\n" + `{"cmd":"sh"}  AKP p.x 1 0 0 137 9 0` + "\n",
		"AKP p.abc 12 0 0 - - 99999999999\n",
		"AKP ../x 1 0 0 0 0 0\n",
		"AKP p.a 1 0 0 0 0 5\nabc",
		strings.Repeat("A", 600),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		procs, err := parseListing(bytes.NewReader(in))
		if err != nil {
			return
		}
		for _, p := range procs {
			if p.PID <= 0 || !validID(p.ID) || p.State < Running || p.State > Lost {
				t.Fatalf("%+v from %q", p, in)
			}
			if p.State == Exited && (p.Exit.Code < 0 || p.Exit.Signal < 0) {
				t.Fatalf("exit %+v", p.Exit)
			}
		}
	})
}

// Whatever the sandbox prints as output frames, reading them ends with
// frames no bigger than maxFrame, or an error.
func FuzzFrameReader(f *testing.F) {
	for _, s := range []string{
		"O 3\nabcE 2\nxyX 0 -\n",
		"X 137 9\n",
		"X - -\n",
		"R\n",
		"O 999999999\n",
		"O -1\n",
		"X 300 -\n",
		"O 5\nab",
		strings.Repeat("O", 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newFrameReader(bytes.NewReader(in))
		total := 0
		for range len(in) + 2 {
			fr, err := r.next()
			if err != nil {
				return
			}
			if len(fr.data) > maxFrame || fr.end && fr.state == Exited && (fr.exit.Code > 255 || fr.exit.Code < 0) {
				t.Fatalf("frame %+v", fr)
			}
			total += len(fr.data)
			if total > len(in) {
				t.Fatalf("read %d bytes of data from %d", total, len(in))
			}
			if fr.end {
				return
			}
		}
		t.Fatalf("more frames than bytes in %q", in)
	})
}

func TestParseListing(t *testing.T) {
	in := "AKP p.a1 12 1 1 - - 13\n" + `{"cmd":"top"}` +
		"AKP p.b2 13 0 0 137 9 0\n" +
		"AKP p.c3 14 0 0 1 9 0\n" +
		"AKP p.d4 15 0 1 - - 0\n" +
		"AKP p.e5 16 0 0 - - 3\n{x}"
	procs, err := parseListing(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{
		{ID: "p.a1", PID: 12, State: Running, Spec: Spec{Cmd: "top"}},
		{ID: "p.b2", PID: 13, State: Exited, Exit: Exit{Code: 137, Signal: 9}},
		{ID: "p.c3", PID: 14, State: Exited, Exit: Exit{Code: 1}},
		{ID: "p.d4", PID: 15, State: Running},
		{ID: "p.e5", PID: 16, State: Lost},
	}
	if len(procs) != len(want) {
		t.Fatalf("%d processes: %+v", len(procs), procs)
	}
	for i := range want {
		if procs[i].ID != want[i].ID || procs[i].PID != want[i].PID || procs[i].State != want[i].State || procs[i].Exit != want[i].Exit || procs[i].Spec.Cmd != want[i].Spec.Cmd {
			t.Errorf("%d: %+v, want %+v", i, procs[i], want[i])
		}
	}
	for _, bad := range []string{"AKP p.a 1 1 1 - - 99999\n", "AKP x 1 1 1 - - 0\n", "hello\n", "AKP p.a 1 1 1 - - 5\nab", strings.Repeat("x", 1000)} {
		if _, err := parseListing(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestFrameReader(t *testing.T) {
	r := newFrameReader(strings.NewReader("O 3\nabcE 2\nxyX 143 15\n"))
	var got []frame
	for {
		f, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if len(got) != 3 || string(got[0].data) != "abc" || !got[1].stderr || string(got[1].data) != "xy" || !got[2].end || got[2].exit != (Exit{Code: 143, Signal: 15}) {
		t.Fatalf("%+v", got)
	}
	for _, bad := range []string{"O 0\n", "O 999999999\n", "Q 1\nx", "X 256 -\n", "O 4\nab"} {
		if _, err := newFrameReader(strings.NewReader(bad)).next(); err == nil {
			t.Errorf("%q read", bad)
		}
	}
}

// Whatever a terminal prints before its process starts, TerminalPID reads
// at most 4 KiB of it and answers a PID only from the marker line.
func FuzzTerminalPID(f *testing.F) {
	for _, s := range []string{"AKTTY tok 12\r\n", "motd\r\nAKTTY tok 7\r\nrest", "AKTTY tok x\n", "AKTTY other 5\n", strings.Repeat("x", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		pid, err := TerminalPID(r, "tok")
		if err != nil {
			return
		}
		if pid <= 0 || !bytes.Contains(in, []byte("AKTTY tok ")) {
			t.Fatalf("pid %d from %q", pid, in)
		}
	})
}

func TestTerminalPID(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("banner\r\nAKTTY tok 42\r\n$ "))
	if pid, err := TerminalPID(r, "tok"); err != nil || pid != 42 {
		t.Fatalf("%d %v", pid, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "$ " {
		t.Errorf("the program's output became %q", rest)
	}
	for _, bad := range []string{"AKTTY tok x\r\n", "AKTTY nottok 5\n", strings.Repeat("y", 5000) + "\nAKTTY tok 1\n", ""} {
		if _, err := TerminalPID(bufio.NewReader(strings.NewReader(bad)), "tok"); err == nil {
			t.Errorf("%.40q gave a pid", bad)
		}
	}
}
