package core

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// BenchmarkEndToEnd measures core throughput against the real broker with
// each guarantee: 20,000 readings of 50 devices are on the raw topic before
// the processor starts; the time is from its joining the group until the offsets of
// all of them are committed (with exactly-once, in the transaction that
// holds their outputs; with at-least-once, after their outputs are acked).
// The first two run without the reorder buffer, to measure the guarantee's
// cost alone; the third is exactly-once with the default 2 s buffer, whose
// readings travel through the changelog (at-least-once cannot commit past
// buffered readings, so it has no comparable figure).
func BenchmarkEndToEnd(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	const devs, seqs = 50, 400
	for _, bc := range []struct {
		name      string
		guarantee string
		buffer    time.Duration
	}{
		{GuaranteeAtLeastOnce, GuaranteeAtLeastOnce, 0},
		{GuaranteeExactlyOnce, GuaranteeExactlyOnce, 0},
		{GuaranteeExactlyOnce + "/reorder-2s", GuaranteeExactlyOnce, DefaultMaxOutOfOrder},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += runEndToEnd(b, brokers, bc.guarantee, bc.buffer, devs, seqs)
			}
			b.ReportMetric(float64(devs*seqs*b.N)/total.Seconds(), "readings/s")
		})
	}
}

func runEndToEnd(b *testing.B, brokers []string, guarantee string, buffer time.Duration, devs int, seqs uint64) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	u := newUDFTopics("core-e2e-")
	u.Topics.State = u.id + ".state"
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: u.Raw, Partitions: 3}); err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	for seq := uint64(1); seq <= seqs; seq++ {
		for d := range devs {
			v, err := telemetry.Encode(eosReading(d, seq))
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: u.Raw, Key: []byte(eosReading(d, seq).Device), Value: v})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cfg := u.config(brokers, prometheus.NewRegistry())
	cfg.Logger = nil
	cfg.Guarantee = guarantee
	cfg.TransactionalID = u.id + "-core"
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	cfg.MaxOutOfOrder = new(buffer)
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	select {
	case <-p.Ready():
	case err := <-done:
		b.Fatalf("Run returned before ready: %v", err)
	}
	start := time.Now()
	adm := kadm.NewClient(prod)
	want := int64(devs) * int64(seqs)
	for {
		offs, err := adm.FetchOffsets(ctx, cfg.Group)
		if ctx.Err() != nil {
			b.Fatalf("not all committed: %v", err)
		}
		var n int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) { n += o.At })
		}
		if n >= want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
