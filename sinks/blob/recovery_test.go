package blob

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/internal/testenv"
)

// TestIntegrationAzuriteRestart kills Azurite while the archiver has
// records to upload: the uploads fail and are retried until Azurite is
// back, and the archive ends up complete with no overlap.
func TestIntegrationAzuriteRestart(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	az := testenv.NewAzurite(t, testenv.AzuriteOptions{})
	store, err := NewAzureStore(AzureConfig{ConnectionString: az.ConnectionString(), Container: "archive"})
	if err != nil {
		t.Fatal(err)
	}
	topic := createTopic(t, brokers, 3)
	all := testRecords(120, hourBase())
	first := produce(t, brokers, topic, all[:60])
	reg := prometheus.NewRegistry()
	stop := runArchiver(t, Config{KafkaBrokers: brokers, Group: testenv.Unique("blob-g-"), Topic: topic, Store: store,
		BatchSize: 7, BatchTimeout: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Registerer: reg})
	defer stop()
	waitCoverage(t, store, topic, ends(first, 3), time.Minute)

	// Let Azurite save what it acknowledged (a SIGKILL loses the last
	// AzuriteSaveInterval of metadata, an emulator artefact), then kill it.
	time.Sleep(testenv.AzuriteSaveInterval + 2*time.Second)
	if err := az.Kill(); err != nil {
		t.Fatal(err)
	}
	second := produce(t, brokers, topic, all[60:])
	deadline := time.Now().Add(30 * time.Second)
	for counter(t, reg, "sailstream_blob_upload_retries_total") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no upload retried while Azurite was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := az.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := waitCoverage(t, store, topic, ends(append(first, second...), 3), time.Minute)
	checkSame(t, all, got)
}

// crashStore writes objects for real but, after the first after puts,
// never returns from Put: like a process that died after an upload and
// before committing its offsets.
type crashStore struct {
	Store
	after   int32
	puts    atomic.Int32
	crashed chan struct{}
	once    sync.Once
}

func (s *crashStore) Put(ctx context.Context, name string, data []byte) error {
	if s.puts.Add(1) <= s.after {
		return s.Store.Put(ctx, name, data)
	}
	err := s.Store.Put(context.Background(), name, data)
	s.once.Do(func() { close(s.crashed) })
	if err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestIntegrationCrashRedelivery stops an archiver after it wrote objects
// whose offsets it never committed, and restarts it with another batch
// size, so the redelivered batches would end at other offsets than the
// objects already written: the archive still holds every offset exactly
// once. Then a new group (all commits lost) re-reads the whole topic and
// writes nothing new.
func TestIntegrationCrashRedelivery(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := tc.store(t)
			topic := createTopic(t, brokers, 3)
			recs := produce(t, brokers, topic, testRecords(300, hourBase()))
			group := testenv.Unique("blob-g-")
			crash := &crashStore{Store: store, after: 4, crashed: make(chan struct{})}
			stop := runArchiver(t, Config{KafkaBrokers: brokers, Group: group, Topic: topic, Store: crash,
				BatchSize: 5, BatchTimeout: time.Hour})
			select {
			case <-crash.crashed:
			case <-time.After(time.Minute):
				t.Fatal("archiver wrote nothing")
			}
			time.Sleep(200 * time.Millisecond) // let the other partitions' uploads land too
			stop()
			written, err := store.List(context.Background(), Prefix+"/")
			if err != nil {
				t.Fatal(err)
			}
			if len(written) <= int(crash.after) {
				t.Fatalf("only %d objects before the crash", len(written))
			}

			reg := prometheus.NewRegistry()
			stop = runArchiver(t, Config{KafkaBrokers: brokers, Group: group, Topic: topic, Store: store,
				BatchSize: 1000, BatchTimeout: 300 * time.Millisecond, Registerer: reg})
			got := waitCoverage(t, store, topic, ends(recs, 3), time.Minute)
			stop()
			checkSame(t, recs, got)
			if counter(t, reg, "sailstream_blob_resumed_records_total") == 0 {
				t.Error("the restarted archiver found no object to resume after")
			}
			checkCommitted(t, brokers, group, topic, ends(recs, 3))

			before, _ := store.List(context.Background(), Prefix+"/")
			reg = prometheus.NewRegistry()
			stop = runArchiver(t, Config{KafkaBrokers: brokers, Group: testenv.Unique("blob-g2-"), Topic: topic, Store: store,
				BatchSize: 3, BatchTimeout: 100 * time.Millisecond, Registerer: reg})
			deadline := time.Now().Add(time.Minute)
			for counter(t, reg, "sailstream_blob_resumed_records_total") < float64(len(recs)) {
				if time.Now().After(deadline) {
					t.Fatalf("new group skipped %v of %d records", counter(t, reg, "sailstream_blob_resumed_records_total"), len(recs))
				}
				time.Sleep(50 * time.Millisecond)
			}
			stop()
			after, _ := store.List(context.Background(), Prefix+"/")
			if len(after) != len(before) || counter(t, reg, "sailstream_blob_objects_total") != 0 {
				t.Errorf("a new group re-archived: %d objects before, %d after", len(before), len(after))
			}
			coverage(t, store, topic, ends(recs, 3))
		})
	}
}

// TestIntegrationRebalance runs two archivers in one group while records
// arrive, and stops one of them mid-stream: partitions move twice, and the
// archive still holds every offset exactly once.
func TestIntegrationRebalance(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	store := dirStore(t)
	topic := createTopic(t, brokers, 4)
	all := testRecords(400, hourBase())
	for i, r := range all {
		r.Key = []byte(fmt.Sprintf("boat-%d", i%16)) // over all four partitions
	}
	group := testenv.Unique("blob-g-")
	cfg := Config{KafkaBrokers: brokers, Group: group, Topic: topic, Store: store, BatchSize: 9, BatchTimeout: 100 * time.Millisecond}
	stopA := runArchiver(t, cfg)
	defer stopA()
	produce(t, brokers, topic, all[:100])
	stopB := runArchiver(t, cfg)
	defer stopB()
	for i := 100; i < 300; i += 20 {
		produce(t, brokers, topic, all[i:i+20])
		time.Sleep(50 * time.Millisecond)
	}
	stopA()
	produce(t, brokers, topic, all[300:])
	got := waitCoverage(t, store, topic, ends(all, 4), time.Minute)
	stopB()
	checkSame(t, all, got)
	checkCommitted(t, brokers, group, topic, ends(all, 4))
}
