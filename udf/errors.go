package udf

import "errors"

// Errors a load returns. They are wrapped with details; test with errors.Is.
var (
	// ErrModuleTooLarge: the .wasm is bigger than Limits.MaxModuleBytes.
	ErrModuleTooLarge = errors.New("udf: module too large")
	// ErrInvalidModule: the bytes are not a valid WebAssembly module, or it
	// imports something the host does not provide, or its start function
	// failed.
	ErrInvalidModule = errors.New("udf: invalid module")
	// ErrMissingExport: a required export (see ABI.md) is missing or has the
	// wrong signature.
	ErrMissingExport = errors.New("udf: missing or mistyped export")
	// ErrABIVersion: the module speaks another ABI version than this host.
	ErrABIVersion = errors.New("udf: unsupported ABI version")
)

// Errors a batch call returns (as *CallError, which unwraps to one of
// these). All of them are the guest's fault: the batch's readings go to the
// dead-letter queue (after Isolate has found which ones), and the instance
// that failed is discarded, never reused.
var (
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access,
	// division by zero, stack exhaustion) or exited (a Go panic exits).
	ErrTrap = errors.New("udf: guest trapped")
	// ErrTimeout: the call ran past Limits.CallTimeout.
	ErrTimeout = errors.New("udf: guest call timed out")
	// ErrMemoryLimit: the guest ran out of memory under
	// Limits.MemoryPages.
	ErrMemoryLimit = errors.New("udf: guest memory limit reached")
	// ErrMalformedOutput: what the guest returned breaks the ABI (bounds,
	// counts, lengths, names, non-finite numbers, limits).
	ErrMalformedOutput = errors.New("udf: malformed guest output")
	// ErrGuest: the guest reported an error itself (status 1).
	ErrGuest = errors.New("udf: guest reported an error")
)

// ErrClosed is returned by calls on a closed Module.
var ErrClosed = errors.New("udf: module closed")

// CallError is the error of a failed batch call. Kind is one of ErrTrap,
// ErrTimeout, ErrMemoryLimit, ErrMalformedOutput or ErrGuest.
type CallError struct {
	Kind error
	// Err is the underlying cause (wazero's error, the decoder's message).
	Err error
	// Stderr holds the last bytes the guest wrote to standard error, such
	// as a Go panic message; empty when it wrote none.
	Stderr string
}

func (e *CallError) Error() string {
	msg := e.Err.Error()
	if !errors.Is(e.Err, e.Kind) {
		msg = e.Kind.Error() + ": " + msg
	}
	if e.Stderr != "" {
		msg += " (guest stderr: " + e.Stderr + ")"
	}
	return msg
}

// Unwrap gives both the kind and the cause to errors.Is and errors.As.
func (e *CallError) Unwrap() []error { return []error{e.Kind, e.Err} }
