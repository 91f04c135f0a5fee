package blob

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Prefix is the top folder of the archive; objects live under
// Prefix/YYYY/MM/DD/HH/.
const Prefix = "raw"

// ErrBadObject marks an object whose name or content is not in the archive
// format.
var ErrBadObject = errors.New("blob: not an archive object")

// Record is one archived Kafka record. Key and Value are nil when the Kafka
// record had none (a nil key and an empty one are kept apart).
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Headers   []kgo.RecordHeader
	Value     []byte
}

// line is the JSON form of a Record: bytes that are valid UTF-8 are a JSON
// string (which encoding/json round-trips exactly), others go to the
// *_base64 twin.
type line struct {
	Topic       string       `json:"topic"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	Timestamp   string       `json:"timestamp"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   *string      `json:"key_base64,omitempty"`
	Headers     []headerLine `json:"headers,omitempty"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 *string      `json:"value_base64,omitempty"`
}

type headerLine struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// bytesField returns b as (text, base64): one of them set, or neither for
// nil.
func bytesField(b []byte) (text, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func fieldBytes(name string, text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, fmt.Errorf("%w: both %s and %s_base64", ErrBadObject, name, name)
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s_base64: %v", ErrBadObject, name, err)
		}
		return b, nil
	}
	return nil, nil
}

func toLine(r *kgo.Record) line {
	l := line{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano),
	}
	l.Key, l.KeyBase64 = bytesField(r.Key)
	l.Value, l.ValueBase64 = bytesField(r.Value)
	if len(r.Headers) > 0 {
		l.Headers = make([]headerLine, len(r.Headers))
		for i, h := range r.Headers {
			l.Headers[i].Key = h.Key
			v := h.Value
			if v == nil {
				v = []byte{} // Kafka header values are kept as (possibly empty) bytes
			}
			l.Headers[i].Value, l.Headers[i].ValueBase64 = bytesField(v)
		}
	}
	return l
}

func (l *line) record() (Record, error) {
	ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
	if err != nil {
		return Record{}, fmt.Errorf("%w: timestamp: %v", ErrBadObject, err)
	}
	r := Record{Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Timestamp: ts.UTC()}
	if r.Key, err = fieldBytes("key", l.Key, l.KeyBase64); err != nil {
		return Record{}, err
	}
	if r.Value, err = fieldBytes("value", l.Value, l.ValueBase64); err != nil {
		return Record{}, err
	}
	for _, h := range l.Headers {
		v, err := fieldBytes("header value", h.Value, h.ValueBase64)
		if err != nil {
			return Record{}, err
		}
		if v == nil {
			v = []byte{}
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: v})
	}
	return r, nil
}

// encodeObject returns the gzip NDJSON object for recs. The output depends
// only on recs: the gzip header carries no name and no modification time,
// so a retried upload writes the same bytes.
func encodeObject(recs []*kgo.Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	// zw.Header is zero: no Name, ModTime zero (written as 0), OS 255.
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(toLine(r)); err != nil {
			return nil, fmt.Errorf("blob: encoding offset %d: %w", r.Offset, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeObject returns the records of an archive object (gzip NDJSON).
func DecodeObject(data []byte) ([]Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadObject, err)
	}
	defer zr.Close()
	var recs []Record
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadObject, len(recs)+1, err)
		}
		r, err := l.record()
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrBadObject, err)
	}
	return recs, nil
}

// HourPrefix returns the folder of the UTC hour of t: raw/YYYY/MM/DD/HH/.
func HourPrefix(t time.Time) string {
	return Prefix + "/" + t.UTC().Format("2006/01/02/15") + "/"
}

// ObjectName returns the name of the object holding offsets first..last of
// topic's partition, whose first record has Kafka timestamp ts.
func ObjectName(ts time.Time, topic string, partition int32, first, last int64) string {
	return fmt.Sprintf("%s%s-%d-%d-%d.ndjson.gz", HourPrefix(ts), topic, partition, first, last)
}

// partitionPrefix is the name prefix of the object of topic's partition
// that starts at first, in the hour of ts.
func partitionPrefix(ts time.Time, topic string, partition int32, first int64) string {
	return fmt.Sprintf("%s%s-%d-%d-", HourPrefix(ts), topic, partition, first)
}

// Object is a parsed object name.
type Object struct {
	Name        string
	Hour        time.Time // the UTC hour of its folder
	Topic       string
	Partition   int32
	First, Last int64
}

// ParseName parses an object name made by ObjectName.
func ParseName(name string) (Object, error) {
	bad := fmt.Errorf("%w: %q", ErrBadObject, name)
	dir, file := path.Split(name)
	hour, err := time.Parse(Prefix+"/2006/01/02/15/", dir)
	if err != nil {
		return Object{}, bad
	}
	base, ok := strings.CutSuffix(file, ".ndjson.gz")
	if !ok {
		return Object{}, bad
	}
	// topic may contain '-': the numbers are the last three fields.
	parts := strings.Split(base, "-")
	if len(parts) < 4 {
		return Object{}, bad
	}
	n := len(parts)
	p, err1 := strconv.ParseInt(parts[n-3], 10, 32)
	first, err2 := strconv.ParseInt(parts[n-2], 10, 64)
	last, err3 := strconv.ParseInt(parts[n-1], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first > last || first < 0 {
		return Object{}, bad
	}
	return Object{
		Name: name, Hour: hour.UTC(), Topic: strings.Join(parts[:n-3], "-"),
		Partition: int32(p), First: first, Last: last,
	}, nil
}
