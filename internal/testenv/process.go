package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is one service process that we started: it is stopped by its pid
// (SIGTERM, then SIGKILL after a grace period), never by name.
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     *os.File      // the process's stdout and stderr
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startProc starts cmd with its stdout and stderr appended to outPath. The
// process gets its own process group (a terminal's Ctrl-C reaches the test
// bed, which then stops it in order) and, on Linux, SIGKILL when the process
// that started it dies, so a killed test bed leaves nothing behind.
func startProc(name string, cmd *exec.Cmd, outPath string) (*proc, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	attr := sysProcAttr()
	if cmd.SysProcAttr != nil {
		attr.Credential = cmd.SysProcAttr.Credential // e.g. PostgreSQL's user, as root
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, cmd.Path, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL and waits for it. Calling it again after the process ended is a no-op.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGTERM to pid %d: %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.kill()
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGKILL to pid %d: %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: pid %d still running 10s after SIGKILL", p.name, p.pid())
	}
}

// waitReady calls probe every interval until it returns nil, the process
// exits, ctx ends or timeout passes. The error says which, with the last
// probe error.
func (p *proc) waitReady(ctx context.Context, timeout, interval time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if dead, err := p.exited(); dead {
			return fmt.Errorf("%s: process exited before it was ready: %v", p.name, err)
		}
		if last = probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after %s: %w (last probe: %v)", p.name, timeout, ctx.Err(), last)
		case <-p.done:
		case <-time.After(interval):
		}
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago. The listeners are held together so the kernel hands out n different
// ports, then closed so the service can bind them; a service that loses the
// race is restarted on new ports (see errAddrInUse).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logSaysAddrInUse reports whether a service's log shows that it lost the
// race for the port freePorts picked.
func logSaysAddrInUse(paths ...string) bool {
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("Address already in use")) || bytes.Contains(b, []byte("address already in use")) {
			return true
		}
	}
	return false
}

// tailFiles returns the last n lines of each file that exists and is not
// empty, each headed by its path.
func tailFiles(n int, paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", p, strings.Join(lines, "\n"))
	}
	return b.String()
}

// workDir returns dir, creating it, or a new temporary directory (which the
// caller owns and removes) when dir is empty.
func workDir(dir, pattern string) (path string, created bool, err error) {
	if dir == "" {
		d, err := os.MkdirTemp("", pattern)
		if err != nil {
			return "", false, err
		}
		return d, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	return dir, false, nil
}

// attempts is how often a service is started on new ports when it lost the
// race for the ones freePorts picked.
const attempts = 3

// startForTest starts a service of a test's own with start and stops it when
// the test ends; a failed start fails the test.
func startForTest[S interface{ Stop() error }](t testing.TB, start func() (S, error)) S {
	t.Helper()
	svc, err := start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Error(err)
		}
	})
	return svc
}
