// Package sdk holds the sailstream guest SDKs, one folder per language
// (go, assemblyscript, c; see udf/ABI.md), and embeds their sources so
// that `sailstream udf init` (package udf/scaffold) can copy the SDK into
// a new UDF project: a project then builds on its own, outside this
// repository, with nothing but its language's toolchain.
package sdk

import "embed"

// Sources holds the SDK sources: go/*.go (the Go SDK package, tests
// included: leave out *_test.go), c/*.h, and assemblyscript/assembly/*.ts
// with the package.json and package-lock.json that pin the compiler.
//
//go:embed go/*.go c/*.h assemblyscript/assembly/*.ts assemblyscript/package.json assemblyscript/package-lock.json
var Sources embed.FS
