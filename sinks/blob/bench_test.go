package blob

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
)

// BenchmarkArchive archives a raw topic of benchRecords readings (six
// partitions, bridge-like headers and payloads) from the start, with a new
// consumer group and a new container or directory per iteration, and
// reports readings archived per second (Kafka fetch, encoding, gzip and
// upload). Run it under the test bed with -benchtime=Nx.
func BenchmarkArchive(b *testing.B) {
	const benchRecords = 100_000
	brokers := testenv.KafkaBrokers(b)
	conn := testenv.AzuriteConnectionString(b)
	topic := createTopic(b, brokers, 6)
	recs := testRecords(benchRecords, time.Now().Add(-10*time.Minute))
	ts := time.Now().Add(-10 * time.Minute)
	for i, r := range recs {
		r.Key = fmt.Appendf(nil, "boat-%d", i%60) // 60 devices over the 6 partitions
		r.Timestamp = ts
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		b.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cl.Close()

	stores := []struct {
		name string
		new  func(testing.TB) Store
	}{
		{"azurite", func(t testing.TB) Store {
			s, err := NewAzureStore(AzureConfig{ConnectionString: conn, Container: testenv.Unique("bench-")})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"dir", func(t testing.TB) Store { return dirStore(t) }},
	}
	for _, st := range stores {
		for _, batch := range []int{1000, 5000, 20000} {
			b.Run(fmt.Sprintf("store=%s/batch=%d", st.name, batch), func(b *testing.B) {
				var total time.Duration
				for range b.N {
					b.StopTimer()
					store := st.new(b)
					reg := prometheus.NewRegistry()
					a, err := New(Config{KafkaBrokers: brokers, Group: testenv.Unique("bench-g-"), Topic: topic, Store: store,
						BatchSize: batch, BatchTimeout: 200 * time.Millisecond, Registerer: reg})
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					b.StartTimer()
					start := time.Now()
					go func() { done <- a.Run(ctx) }()
					for counter(b, reg, "sailstream_blob_records_total") < benchRecords {
						time.Sleep(5 * time.Millisecond)
					}
					total += time.Since(start)
					b.StopTimer()
					cancel()
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(benchRecords*b.N)/total.Seconds(), "readings/s")
			})
		}
	}
}
