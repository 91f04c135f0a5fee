package core

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
)

// TestStateRoundTrip writes a partition's changed devices to changelog
// records and reads them into an empty partition: last released reading,
// dedup window, reorder buffer (with the raw records), UDF state and the
// watermark must come back as they were, and only changed devices are
// written.
func TestStateRoundTrip(t *testing.T) {
	p, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Guarantee: GuaranteeExactlyOnce})
	if err != nil {
		t.Fatal(err)
	}
	src := p.partition(2, time.Now())
	var off int64
	for _, r := range []struct {
		dev string
		seq uint64
		at  time.Duration
	}{{"a", 1, 0}, {"a", 2, time.Second}, {"b", 1, 500 * time.Millisecond}, {"a", 3, 4 * time.Second}, {"b", 2, 5 * time.Second}} {
		rd := reading(r.dev, r.seq, t0.Add(r.at), 52.4, 21.0)
		if v, _ := src.admit(rd); v != accepted {
			t.Fatalf("%s/%d: %v, want accepted", r.dev, r.seq, v)
		}
		rec := &kgo.Record{Key: []byte(r.dev), Value: []byte("raw"), Offset: off, LeaderEpoch: 3, Timestamp: t0,
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
		off++
		src.hold(pendingReading{rec: rec, r: rd})
	}
	src.release(t0.Add(2*time.Second), false, nil) // a/1, a/2, b/1
	src.deviceUDF("a").setLive("speed", []byte{1, 2, 3})
	recs, err := p.stateRecords(2, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || len(src.dirty) != 0 {
		t.Fatalf("%d records, %d still dirty; want 2 and 0", len(recs), len(src.dirty))
	}
	if again, _ := p.stateRecords(2, src, nil); len(again) != 0 {
		t.Errorf("unchanged state written again: %d records", len(again))
	}

	dst := newPartitionState(*p.cfg.MaxOutOfOrder)
	for _, r := range recs {
		if r.Partition != 2 || r.Topic != p.cfg.Topics.State {
			t.Errorf("record to %s/%d, want %s/2", r.Topic, r.Partition, p.cfg.Topics.State)
		}
		r.Topic = p.cfg.Topics.State
		if err := p.applyState(2, dst, r); err != nil {
			t.Fatal(err)
		}
	}
	if !dst.maxEvent.Equal(src.maxEvent) || dst.buffered != src.buffered || dst.buffered != 2 {
		t.Errorf("max event %v buffered %d, want %v %d (2)", dst.maxEvent, dst.buffered, src.maxEvent, src.buffered)
	}
	for dev, want := range src.dev {
		got := dst.dev[dev]
		if got == nil || got.hasLast != want.hasLast || !got.last.Time.Equal(want.last.Time) || got.last.Seq != want.last.Seq {
			t.Errorf("%s: last %+v, want %+v", dev, got, want)
			continue
		}
		if !reflect.DeepEqual(got.seen, want.seen) {
			t.Errorf("%s: dedup window differs", dev)
		}
		if len(got.buf) != len(want.buf) {
			t.Fatalf("%s: %d buffered, want %d", dev, len(got.buf), len(want.buf))
		}
		for i := range want.buf {
			g, w := got.buf[i], want.buf[i]
			if g.r.Seq != w.r.Seq || !g.r.Time.Equal(w.r.Time) || g.rec.Offset != w.rec.Offset || g.rec.LeaderEpoch != w.rec.LeaderEpoch ||
				string(g.rec.Value) != string(w.rec.Value) || !reflect.DeepEqual(g.rec.Headers, w.rec.Headers) {
				t.Errorf("%s buf[%d] = %+v %+v, want %+v %+v", dev, i, g.r, g.rec, w.r, w.rec)
			}
		}
	}
	if u := dst.udf["a"]; u == nil || u.liveState("speed") == nil || string(u.state) != "\x01\x02\x03" {
		t.Errorf("udf state of a = %+v, want speed [1 2 3]", u)
	}
	// A restored duplicate is still recognised.
	if v, _ := dst.admit(reading("a", 2, t0.Add(time.Second), 52.4, 21.0)); v != duplicate {
		t.Errorf("redelivered a/2 after restore: %v, want duplicate", v)
	}
}

// TestPackSeen round-trips full and sparse dedup windows (a device that
// restarted its numbering, event times going back) through packSeen, and
// checks a device counting up once a second costs at most 6 bytes an entry.
func TestPackSeen(t *testing.T) {
	full := make([]dedupSlot, dedupWindow)
	base := t0.UnixNano()
	for seq := uint64(5000); seq < 5000+dedupWindow; seq++ {
		full[seq%dedupWindow] = dedupSlot{seq: seq, t: base + int64(seq)*int64(time.Second)}
	}
	odd := make([]dedupSlot, dedupWindow)
	odd[3] = dedupSlot{seq: 3, t: base}
	odd[7] = dedupSlot{seq: dedupWindow + 7, t: base - int64(time.Hour)} // time going back
	odd[1] = dedupSlot{seq: 1, t: base + 1}
	for name, w := range map[string][]dedupSlot{"full": full, "sparse": odd, "empty": make([]dedupSlot, dedupWindow)} {
		b := packSeen(w)
		entries, err := unpackSeen(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make([]dedupSlot, dedupWindow)
		for _, e := range entries {
			got[e.Seq%dedupWindow] = dedupSlot{seq: e.Seq, t: e.T}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: window differs after packSeen/unpackSeen", name)
		}
		if name == "full" && len(b) > 6*dedupWindow+16 { // the first entry is absolute
			t.Errorf("full window packed in %d bytes, want at most %d", len(b), 6*dedupWindow+16)
		}
	}
	if _, err := unpackSeen([]byte{0x80}); err == nil {
		t.Error("truncated varint: want an error")
	}
}

// TestStateBadRecord: a changelog record that does not decode is skipped
// at restore, counted and left in the topic; the core carries on and its
// device starts afresh instead of the core failing on every start.
func TestStateBadRecord(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topics := Topics{Raw: "raw", Enriched: "enriched", Late: "late", DLQ: "dlq", State: "state"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: topics.Raw, Partitions: 1},
		kafkatopic.Spec{Name: topics.State, Partitions: 1, Configs: map[string]*string{"cleanup.policy": &compact}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.State, Key: []byte("boat-1"), Value: []byte(`{"seenz":`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceRaw(ctx, t, cl, topics.Raw, []string{"boat-1"}, 1, 2)

	reg := prometheus.NewRegistry()
	p, stop := startProcessor(t, Config{
		KafkaBrokers: brokers, Group: "core-bad-state", Topics: topics, Partitions: 1,
		Now: func() time.Time { return t0.Add(time.Hour) }, MaxOutOfOrder: new(time.Duration(0)), Registerer: reg,
	})
	defer stop()
	got := collect(ctx, t, brokers, map[string]int{topics.Enriched: 2})
	if es := decodeEnriched(t, got[topics.Enriched]); es[0].Seq != 1 || es[0].DistanceM != 0 {
		t.Errorf("first enriched %+v, want boat-1/1 from empty state", es[0])
	}
	if n := metricValue(t, p.m.stateBad); n != 1 {
		t.Errorf("state_bad_records_total = %g, want 1", n)
	}
}
