package udftest

import (
	"encoding/hex"
	"testing"

	"github.com/sailstream/sailstream/telemetry"
)

type telemetryReading = telemetry.Reading

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
