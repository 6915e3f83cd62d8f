package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressLine shows the progress of a command that waits, on stderr: one
// line rewritten in place on a terminal, plain lines (only when something
// changed, bytes at most once a second) otherwise. Nothing goes to stdout,
// so --json output stays clean.
type progressLine struct {
	w      io.Writer
	tty    bool
	last   string
	lastAt time.Time
	shown  bool
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, tty: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// show displays s if it differs from what is shown.
func (p *progressLine) show(s string) {
	if s == p.last {
		return
	}
	p.last, p.lastAt, p.shown = s, time.Now(), true
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		return
	}
	fmt.Fprintln(p.w, s)
}

// throttled is show for fast-changing figures (bytes): off a terminal, at
// most one line a second unless final.
func (p *progressLine) throttled(s string, final bool) {
	if !p.tty && !final && p.shown && time.Since(p.lastAt) < time.Second {
		return
	}
	p.show(s)
}

// done ends the in-place line.
func (p *progressLine) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
	p.shown, p.last = false, ""
}
