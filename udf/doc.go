// Package udf runs user-defined functions: per-device logic compiled to
// WebAssembly, loaded and swapped while the pipeline runs, sandboxed so
// hostile code cannot stop it.
//
// A UDF is a pure function of (device state, batch of readings) → (new
// state, outputs), spoken over ABI v1 (ABI.md): one call per batch, a
// little-endian layout written into guest memory, export names that carry
// the ABI version. The host (wazero, compiler engine) compiles a module once
// (with an on-disk compilation cache, so a restart loads in milliseconds)
// and runs a small pool of instances of it, one per concurrent caller.
// Because an instance may be discarded and replaced at any time (after a
// trap, a timeout, memory exhaustion or malformed output), and because two
// workers may process the same device on different instances, the guest
// keeps nothing between calls: the host owns the state bytes.
//
// The surface: NewEngine, Engine.Load (compile and validate, off the hot
// path), Module.Process (one batch), Module.Isolate (find the poison
// readings of a failed batch), Output.Enriched (map a result to the
// enriched record).
package udf
