package blob

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
)

// consumeAll reads topic from the start until it has n records, then a
// little longer to catch extra ones.
func consumeAll(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	deadline := time.Now().Add(timeout)
	var settle time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if len(got) >= n && settle.IsZero() {
			settle = time.Now().Add(time.Second)
		}
		if !settle.IsZero() && time.Now().After(settle) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d records after %s, want %d", topic, len(got), timeout, n)
		}
	}
}

func TestIntegrationReplay(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testReplay(t, brokers, tc.store(t))
		})
	}
}

// testReplay archives records into store, replays a time range and a
// device pattern of them and checks what arrives.
func testReplay(t *testing.T, brokers []string, store Store) {
	topic := createTopic(t, brokers, 3)
	base := hourBase()
	recs := produce(t, brokers, topic, testRecords(150, base))
	stop := runArchiver(t, Config{KafkaBrokers: brokers, Group: testenv.Unique("blob-g-"), Topic: topic, Store: store,
		BatchSize: 13, BatchTimeout: 200 * time.Millisecond})
	waitCoverage(t, store, topic, ends(recs, 3), time.Minute)
	stop()

	from, to, devices := base.Add(20*time.Second), base.Add(100*time.Second), "boat-[13]"
	want := map[string]*kgo.Record{}
	for _, r := range recs {
		if ok, _ := path.Match(devices, string(r.Key)); ok && !r.Timestamp.Before(from) && r.Timestamp.Before(to) {
			want[fmt.Sprintf("%s/%d/%d", topic, r.Partition, r.Offset)] = r
		}
	}
	target := createTopic(t, brokers, 3)
	var progress []ReadProgress
	sum, err := Replay(context.Background(), ReplayConfig{
		ReadConfig:   ReadConfig{Store: store, From: from, To: to, Topic: topic, Devices: devices},
		KafkaBrokers: brokers, Target: target,
		Progress: func(p ReadProgress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != len(want) || sum.Filtered != len(recs)-len(want) || sum.Duplicates != 0 || sum.Objects == 0 || sum.Bytes == 0 {
		t.Errorf("summary %+v: want %d records, %d filtered", sum, len(want), len(recs)-len(want))
	}
	if len(progress) == 0 || progress[len(progress)-1].ObjectsDone != progress[len(progress)-1].ObjectsTotal {
		t.Errorf("progress %+v does not end complete", progress)
	}
	got := consumeAll(t, brokers, target, len(want), time.Minute)
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	lastOffset := map[string]int64{} // per device, in the source topic
	for _, r := range got {
		h := r.Headers[len(r.Headers)-1]
		if h.Key != HeaderReplayedFrom {
			t.Fatalf("last header %q, want the replay marker", h.Key)
		}
		orig := want[string(h.Value)]
		if orig == nil {
			t.Fatalf("replayed %s, which the filter excludes (or twice)", h.Value)
		}
		delete(want, string(h.Value))
		if !bytes.Equal(r.Key, orig.Key) || !bytes.Equal(r.Value, orig.Value) || !reflect.DeepEqual(r.Headers[:len(r.Headers)-1], orig.Headers) {
			t.Fatalf("%s: replayed key %q value %q headers %q; archived %q %q %q", h.Value, r.Key, r.Value, r.Headers, orig.Key, orig.Value, orig.Headers)
		}
		if o, ok := lastOffset[string(r.Key)]; ok && orig.Offset <= o {
			t.Fatalf("device %s: offset %d replayed after %d", r.Key, orig.Offset, o)
		}
		lastOffset[string(r.Key)] = orig.Offset
	}
}

func TestReadConfigValidate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := &DirStore{root: t.TempDir()}
	for _, c := range []ReadConfig{
		{From: now, To: now.Add(time.Hour)},
		{Store: s, To: now},
		{Store: s, From: now, To: now},
		{Store: s, From: now, To: now.Add(time.Hour), Devices: "boat-["},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	if err := (ReadConfig{Store: s, From: now, To: now.Add(time.Hour), Devices: "boat-*"}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestReadOverlap writes objects that overlap (as two archivers that both
// believed they owned a partition would) and checks that Read hands out
// each offset once, in offset order per partition, and merges partitions
// by timestamp.
func TestReadOverlap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := dirStore(t)
	base := time.Date(2026, 3, 4, 5, 59, 50, 0, time.UTC)
	rec := func(p int32, off int64) *kgo.Record {
		return &kgo.Record{Topic: "raw", Partition: p, Offset: off, Timestamp: base.Add(time.Duration(off) * time.Second),
			Key: []byte(fmt.Sprintf("boat-%d", p)), Value: []byte(fmt.Sprint(off))}
	}
	put := func(p int32, first, last int64) {
		var recs []*kgo.Record
		for o := first; o <= last; o++ {
			recs = append(recs, rec(p, o))
		}
		data, err := encodeObject(recs)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, ObjectName(recs[0].Timestamp, "raw", p, first, last), data); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 0, 4)
	put(0, 3, 7) // overlaps 3..4
	put(0, 5, 6) // inside the previous one
	put(0, 8, 15)
	put(1, 0, 15)
	// another topic in the same folders is left alone
	if err := store.Put(ctx, ObjectName(base, "other", 0, 0, 0), []byte("not gzip")); err != nil {
		t.Fatal(err)
	}
	var got []Record
	st, err := Read(ctx, ReadConfig{Store: store, From: base, To: base.Add(time.Hour), Topic: "raw"},
		func(r Record) error { got = append(got, r); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 32 || st.Records != 32 || st.Duplicates != 4 || st.Filtered != 0 {
		t.Fatalf("read %d records, stats %+v; want 32 records, 4 duplicates", len(got), st)
	}
	next := map[int32]int64{}
	for i, r := range got {
		if r.Offset != next[r.Partition] {
			t.Fatalf("record %d: partition %d offset %d, want %d", i, r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		if i > 0 && r.Timestamp.Before(got[i-1].Timestamp) {
			t.Fatalf("record %d goes back in time", i)
		}
	}
	// The time filter is exclusive at To and crosses the hour folders.
	got = got[:0]
	st, err = Read(ctx, ReadConfig{Store: store, From: base.Add(5 * time.Second), To: base.Add(12 * time.Second), Topic: "raw", Devices: "boat-1"},
		func(r Record) error { got = append(got, r); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 || got[0].Offset != 5 || got[6].Offset != 11 || got[0].Partition != 1 {
		t.Fatalf("filtered read: %+v (stats %+v)", got, st)
	}
}
