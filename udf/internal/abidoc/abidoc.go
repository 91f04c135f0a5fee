// Package abidoc reads the byte-level worked example of udf/ABI.md, so that
// the host's and the Go SDK's tests hold the document to the encoders
// (one reader: the document's layout is parsed in one place).
package abidoc

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Dumps returns the hex dumps of the worked example in the ABI document at
// path, keyed by the line that opens them ("input", "output").
func Dumps(path string) (map[string][]byte, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var cur string
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "input (") || strings.HasPrefix(line, "output ("):
			cur = strings.Fields(line)[0]
		case cur != "" && strings.HasPrefix(line, "```"):
			cur = ""
		case cur != "" && len(line) > 6:
			data, _, _ := strings.Cut(line[6:], "   ")
			b, err := hex.DecodeString(strings.ReplaceAll(data, " ", ""))
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", path, line, err)
			}
			out[cur] = append(out[cur], b...)
		}
	}
	return out, nil
}
