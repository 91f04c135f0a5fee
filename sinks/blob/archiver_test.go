package blob

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
)

// azureStore returns a store on a container of its own in the test bed's
// Azurite.
func azureStore(t testing.TB) *AzureStore {
	t.Helper()
	s, err := NewAzureStore(AzureConfig{ConnectionString: testenv.AzuriteConnectionString(t), Container: testenv.Unique("t-")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeCases runs a test on each backend.
var storeCases = []struct {
	name  string
	store func(testing.TB) Store
}{
	{"azure", func(t testing.TB) Store { return azureStore(t) }},
	{"dir", func(t testing.TB) Store { return dirStore(t) }},
}

func dirStore(t testing.TB) *DirStore {
	t.Helper()
	s, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// createTopic creates a topic of its own with n partitions.
func createTopic(t testing.TB, brokers []string, n int32) string {
	t.Helper()
	topic := testenv.Unique("blob-raw-")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), n, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return topic
}

// produce writes recs (Topic filled in) synchronously and returns them with
// their partitions and offsets set.
func produce(t testing.TB, brokers []string, topic string, recs []*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// testRecords returns n records for devices boat-1..boat-5 with headers,
// one binary payload in seven, and Kafka timestamps from base one second
// apart (so a base a few minutes before an hour spans two hour folders).
func testRecords(n int, base time.Time) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		dev := fmt.Sprintf("boat-%d", i%5+1)
		v := []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"lat":52.4%d,"lon":21.0,"s":"<é\u2028>"}`, dev, i, i))
		if i%7 == 3 {
			v = []byte{0xff, byte(i), 0x00, 0xfe}
		}
		recs[i] = &kgo.Record{
			Key: []byte(dev), Value: v, Timestamp: base.Add(time.Duration(i) * time.Second),
			Headers: []kgo.RecordHeader{
				{Key: "mqtt_topic", Value: []byte("sailstream/devices/" + dev + "/telemetry")},
				{Key: "format", Value: []byte("json")},
				{Key: "seq", Value: []byte(fmt.Sprint(i))},
			},
		}
	}
	return recs
}

// runArchiver runs an archiver until the returned stop is called.
func runArchiver(t testing.TB, cfg Config) (stop func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after cancel")
			}
		})
	}
}

// coverage lists topic's objects and checks that they hold every offset
// below end[p] of each partition exactly once, that each object holds
// exactly the offsets its name says in one hour, and returns the records by
// partition and offset. It returns an error (to poll on) while offsets are
// missing, and fails the test on an overlap or a bad object.
func coverage(t testing.TB, s Store, topic string, end map[int32]int64) (map[int32][]Record, error) {
	t.Helper()
	ctx := context.Background()
	names, err := s.List(ctx, Prefix+"/")
	if err != nil {
		return nil, err
	}
	byPart := map[int32][]Object{}
	for _, n := range names {
		o, err := ParseName(n)
		if err != nil {
			t.Fatalf("stray object %s: %v", n, err)
		}
		if o.Topic == topic {
			byPart[o.Partition] = append(byPart[o.Partition], o)
		}
	}
	got := map[int32][]Record{}
	for p, want := range end {
		objs := byPart[p]
		sort.Slice(objs, func(i, j int) bool { return objs[i].First < objs[j].First })
		next := int64(0)
		for _, o := range objs {
			if o.First < next {
				t.Fatalf("partition %d: object %s overlaps the previous one (next offset %d)", p, o.Name, next)
			}
			if o.First > next {
				return nil, fmt.Errorf("partition %d: offsets %d..%d missing", p, next, o.First-1)
			}
			data, err := s.Get(ctx, o.Name)
			if err != nil {
				return nil, err
			}
			recs, err := DecodeObject(data)
			if err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
			for i, r := range recs {
				if r.Offset != o.First+int64(i) || r.Partition != p || r.Topic != topic || !r.Timestamp.Truncate(time.Hour).Equal(o.Hour) {
					t.Fatalf("%s: record %d is %s/%d/%d at %s", o.Name, i, r.Topic, r.Partition, r.Offset, r.Timestamp)
				}
			}
			if int64(len(recs)) != o.Last-o.First+1 {
				t.Fatalf("%s holds %d records", o.Name, len(recs))
			}
			got[p] = append(got[p], recs...)
			next = o.Last + 1
		}
		if next < want {
			return nil, fmt.Errorf("partition %d: offsets %d..%d missing", p, next, want-1)
		}
		if next > want {
			t.Fatalf("partition %d: archived up to %d, only %d produced", p, next-1, want-1)
		}
	}
	return got, nil
}

// ends returns the end offset of each partition of the produced records.
func ends(recs []*kgo.Record, partitions int32) map[int32]int64 {
	end := map[int32]int64{}
	for p := range partitions {
		end[p] = 0
	}
	for _, r := range recs {
		end[r.Partition] = max(end[r.Partition], r.Offset+1)
	}
	return end
}

// waitCoverage polls coverage until every offset is archived.
func waitCoverage(t testing.TB, s Store, topic string, end map[int32]int64, timeout time.Duration) map[int32][]Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := coverage(t, s, topic, end)
		if err == nil {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive incomplete after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSame fails unless the archived records are the produced ones.
func checkSame(t testing.TB, produced []*kgo.Record, got map[int32][]Record) {
	t.Helper()
	n := 0
	for _, rs := range got {
		n += len(rs)
	}
	if n != len(produced) {
		t.Fatalf("archived %d records, produced %d", n, len(produced))
	}
	for _, r := range produced {
		a := got[r.Partition][r.Offset]
		if !bytes.Equal(a.Key, r.Key) || !bytes.Equal(a.Value, r.Value) || !reflect.DeepEqual(a.Headers, r.Headers) ||
			!a.Timestamp.Equal(r.Timestamp.Truncate(time.Millisecond)) {
			t.Fatalf("partition %d offset %d: archived %+v, produced %+v", r.Partition, r.Offset, a, r)
		}
	}
}

// checkCommitted fails unless group committed end[p] for each partition.
func checkCommitted(t testing.TB, brokers []string, group, topic string, end map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range end {
		o, ok := offs.Lookup(topic, p)
		if want == 0 && !ok {
			continue
		}
		if !ok || o.At != want {
			t.Errorf("partition %d: committed %+v (found %v), want %d", p, o, ok, want)
		}
	}
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// hourBase is a time 3h ago, 40s before the end of its hour: records one
// second apart from it cross an hour boundary (Kafka accepts timestamps
// this old; newer than one hour ahead it would refuse).
func hourBase() time.Time {
	return time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour).Add(time.Hour - 40*time.Second)
}

func TestIntegrationArchive(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := tc.store(t)
			topic := createTopic(t, brokers, 3)
			recs := produce(t, brokers, topic, testRecords(150, hourBase()))
			reg := prometheus.NewRegistry()
			group := testenv.Unique("blob-g-")
			stop := runArchiver(t, Config{KafkaBrokers: brokers, Group: group, Topic: topic, Store: store,
				BatchSize: 11, BatchTimeout: 300 * time.Millisecond, Registerer: reg})
			defer stop()
			got := waitCoverage(t, store, topic, ends(recs, 3), time.Minute)
			checkSame(t, recs, got)
			stop()
			// An hour boundary was crossed: both hour folders exist.
			for _, h := range []time.Time{hourBase(), hourBase().Add(time.Hour)} {
				if names, _ := store.List(context.Background(), HourPrefix(h)); len(names) == 0 {
					t.Errorf("no object in %s", HourPrefix(h))
				}
			}
			if n := counter(t, reg, "sailstream_blob_records_total"); n != float64(len(recs)) {
				t.Errorf("records metric = %v, want %d", n, len(recs))
			}
			// Offsets are committed after the uploads.
			checkCommitted(t, brokers, group, topic, ends(recs, 3))
		})
	}
}
