package blob

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestObjectRoundTrip(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 27, 2, 59, 58, 123456789, time.FixedZone("x", 3600))
	in := []*kgo.Record{
		{Topic: "telemetry.raw", Partition: 2, Offset: 7, Timestamp: ts, Key: []byte("boat-1"),
			Headers: []kgo.RecordHeader{{Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("<&>")}},
			Value:   []byte(`{"device":"boat-1","note":"<tab>\t\u2028 é"}`)},
		{Topic: "telemetry.raw", Partition: 2, Offset: 8, Timestamp: ts, Key: []byte{0xff, 0x00, 'k'},
			Headers: []kgo.RecordHeader{{Key: "bin", Value: []byte{0xc3, 0x28}}, {Key: "empty", Value: nil}},
			Value:   []byte{0x80, 0x81, 0x00}},
		{Topic: "telemetry.raw", Partition: 2, Offset: 9, Timestamp: ts, Key: nil, Value: nil},
		{Topic: "telemetry.raw", Partition: 2, Offset: 10, Timestamp: ts, Key: []byte{}, Value: []byte{}},
	}
	data, err := encodeObject(in)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := encodeObject(in)
	if !bytes.Equal(data, again) {
		t.Fatal("encoding the same batch twice gave different bytes")
	}
	// gzip header: no mtime (bytes 4..7), no FNAME flag.
	if data[3]&0x08 != 0 || !bytes.Equal(data[4:8], []byte{0, 0, 0, 0}) {
		t.Fatalf("gzip header carries a name or mtime: % x", data[:10])
	}
	out, err := DecodeObject(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d records, want %d", len(out), len(in))
	}
	for i, r := range in {
		o := out[i]
		if o.Topic != r.Topic || o.Partition != r.Partition || o.Offset != r.Offset || !o.Timestamp.Equal(r.Timestamp) || o.Timestamp.Location() != time.UTC {
			t.Errorf("%d: got %+v", i, o)
		}
		if !bytes.Equal(o.Key, r.Key) || (o.Key == nil) != (r.Key == nil) {
			t.Errorf("%d: key %q, want %q", i, o.Key, r.Key)
		}
		if !bytes.Equal(o.Value, r.Value) || (o.Value == nil) != (r.Value == nil) {
			t.Errorf("%d: value %q, want %q", i, o.Value, r.Value)
		}
		var wantH []kgo.RecordHeader
		for _, h := range r.Headers {
			if h.Value == nil {
				h.Value = []byte{}
			}
			wantH = append(wantH, h)
		}
		if !reflect.DeepEqual(o.Headers, wantH) {
			t.Errorf("%d: headers %q, want %q", i, o.Headers, wantH)
		}
	}
	// The binary fields went to *_base64, the text ones stayed readable.
	var plain bytes.Buffer
	zr, _ := gunzip(data)
	plain.Write(zr)
	for _, want := range []string{`"key_base64":"/wBr"`, `"value_base64":"gIEA"`, `"key":"boat-1"`, `"timestamp":"2026-11-27T01:59:58.123456789Z"`, `<&>`} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("object lacks %s:\n%s", want, plain.String())
		}
	}
}

func TestParseName(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	name := ObjectName(ts, "my-raw-topic", 11, 100, 250)
	if name != "raw/2026/01/02/03/my-raw-topic-11-100-250.ndjson.gz" {
		t.Fatalf("name = %s", name)
	}
	o, err := ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	want := Object{Name: name, Hour: ts.Truncate(time.Hour), Topic: "my-raw-topic", Partition: 11, First: 100, Last: 250}
	if o != want {
		t.Fatalf("ParseName = %+v, want %+v", o, want)
	}
	for _, bad := range []string{"raw/2026/01/02/03/t-1-5-4.ndjson.gz", "raw/2026/01/02/t-1-2-3.ndjson.gz", "raw/2026/01/02/03/t-1-2.ndjson.gz", "raw/2026/01/02/03/t-1-2-3.json"} {
		if _, err := ParseName(bad); !errors.Is(err, ErrBadObject) {
			t.Errorf("ParseName(%q) = %v, want ErrBadObject", bad, err)
		}
	}
}

func TestDirStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"raw/2026/01/02/03/a-0-0-1.ndjson.gz", "raw/2026/01/02/03/a-0-2-3.ndjson.gz", "raw/2026/01/02/04/a-0-4-4.ndjson.gz"} {
		if err := s.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file of an interrupted Put is never listed.
	if err := os.WriteFile(filepath.Join(dir, "raw/2026/01/02/03/.tmp-a-0-9-9.ndjson.gz-1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "raw/2026/01/02/03/a-0-")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"raw/2026/01/02/03/a-0-0-1.ndjson.gz", "raw/2026/01/02/03/a-0-2-3.ndjson.gz"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	if all, _ := s.List(ctx, "raw/"); len(all) != 3 {
		t.Fatalf("List(raw/) = %q", all)
	}
	if none, err := s.List(ctx, "raw/1999/"); err != nil || len(none) != 0 {
		t.Fatalf("List of a missing folder = %q, %v", none, err)
	}
	b, err := s.Get(ctx, "raw/2026/01/02/04/a-0-4-4.ndjson.gz")
	if err != nil || string(b) != "raw/2026/01/02/04/a-0-4-4.ndjson.gz" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if _, err := s.Get(ctx, "raw/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "../escape", nil); err == nil {
		t.Fatal("Put outside the directory succeeded")
	}
}

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
