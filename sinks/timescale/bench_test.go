package timescale

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkWrite measures the write path (COPY into the staging table,
// INSERT … ON CONFLICT DO NOTHING, COMMIT) of new rows into the test bed's
// PostgreSQL, by batch size. rows/s is the figure to watch.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{500, 2000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			w, _ := migrated(b)
			ctx := context.Background()
			batch := rowsOf(b, readings(0, size, 6))
			b.ReportAllocs()
			for b.Loop() {
				// New keys each round: seq moves past the previous batch's.
				for j := range batch {
					batch[j].e.Seq += uint64(size)
				}
				if err := w.write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
			if dup := testutil.ToFloat64(w.m.rowsDuplicate); dup != 0 {
				b.Fatalf("%g rows were duplicates: the benchmark did not write new rows", dup)
			}
		})
	}
}
