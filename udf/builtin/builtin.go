// Package builtin embeds the default UDF, so `sailstream up` runs the speed
// UDF without a guest toolchain on the machine.
//
// speed.wasm is built from udf/examples/speed and committed; TestFresh
// rebuilds it from source and fails when the committed file is stale. After
// changing the speed UDF, the SDK or package motion, run
//
//	go generate ./udf/builtin
//
// (the build is reproducible: -trimpath, and no build ID differences for the
// same Go version).
package builtin

import _ "embed"

//go:generate sh -c "cd ../examples/speed && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o ../../builtin/speed.wasm ."

// Speed is the default UDF: distance, speed and course from the device's
// previous reading (udf/examples/speed).
//
//go:embed speed.wasm
var Speed []byte
