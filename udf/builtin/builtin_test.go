package builtin

import (
	"bytes"
	"context"
	"testing"

	"github.com/sailstream/sailstream/udf/internal/guestbuild"
)

// TestFresh rebuilds the speed UDF from source and compares it with the
// embedded one, so a stale committed .wasm cannot hide.
func TestFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go guest")
	}
	fresh, err := guestbuild.Go(context.Background(), "../examples/speed")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, Speed) {
		t.Fatalf("udf/builtin/speed.wasm (%d bytes) is stale: building udf/examples/speed gives %d different bytes; run `go generate ./udf/builtin`", len(Speed), len(fresh))
	}
}
