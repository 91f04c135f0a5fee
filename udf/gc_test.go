package udf

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// TestLoopUnderGC guards against the way hostile code could stop the whole
// process rather than one call: Go cannot asynchronously preempt a goroutine
// running compiled Wasm, so if an endless guest loop never leaves the
// compiled code for Go, the next garbage collection waits for it forever
// (stop-the-world) and the deadline that should end the call never fires.
// The child process runs an endless loop while another goroutine forces a
// collection every few milliseconds; the parent kills it if it hangs, so a
// regression fails this test instead of hanging the suite.
func TestLoopUnderGC(t *testing.T) {
	if os.Getenv("SAILSTREAM_UDF_GC_CHILD") == "1" {
		loopUnderGC(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLoopUnderGC$", "-test.v")
	cmd.Env = append(os.Environ(), "SAILSTREAM_UDF_GC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("an endless guest loop under garbage collection hung the process:\n%s", out)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func loopUnderGC(t *testing.T) {
	m := load(t, "loop", Limits{CallTimeout: 100 * time.Millisecond, Instances: 1})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.GC()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := m.Process(context.Background(), nil, "boat-1", track(6, 10))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("call %d: error %v, want %v", i, err, ErrTimeout)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("call %d took %v with a 100ms deadline", i, d)
		}
	}
}
