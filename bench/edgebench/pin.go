package main

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strconv"
)

// With -pin, Caddy gets CPU 0 to itself and everything else shares the
// other CPUs. Without it, Caddy, the backend and wrk compete for the same
// CPUs, and a Caddy that takes longer per request also makes the others
// sleep and wake more often: their wake-ups show up in everyone's CPU per
// request, and the cost of a handler looks 2–4× larger than it is.
// Pinning is how load generators are meant to be run; both ways are
// reported in BENCHMARKS.md.
var (
	caddyCPU  = "0"
	otherCPUs = "1-" + strconv.Itoa(runtime.NumCPU()-1)
)

func checkPin() error {
	if runtime.NumCPU() < 2 {
		return errors.New("-pin needs at least 2 CPUs")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("-pin needs taskset (Debian: util-linux)")
	}
	return nil
}

// command is exec.Command, run on cpus when pin is set. taskset execs the
// program, so the child's pid (and its /proc accounting) is the program's.
func command(pin bool, cpus, name string, args ...string) *exec.Cmd {
	if pin {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

func commandContext(ctx context.Context, pin bool, cpus, name string, args ...string) *exec.Cmd {
	if pin {
		return exec.CommandContext(ctx, "taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}
