//go:build unix

package redistest

import "syscall"

var stopSignal, contSignal = syscall.SIGSTOP, syscall.SIGCONT
