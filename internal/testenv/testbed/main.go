// Command testbed starts the real services the tests use, runs a command
// with their addresses in its environment, stops the services and exits
// with the command's exit code:
//
//	go run ./internal/testenv/testbed [-services mosquitto,kafka,postgres,azurite] [-keep] -- go test ./...
//
// It exports SAILSTREAM_TEST_MQTT (tcp://127.0.0.1:PORT),
// SAILSTREAM_TEST_KAFKA (127.0.0.1:PORT), SAILSTREAM_TEST_POSTGRES
// (postgres://...), SAILSTREAM_TEST_AZURITE (a connection string) and, when every service it knows
// was started, SAILSTREAM_TEST_REQUIRE_SERVICES=1, so that a test whose
// service is missing fails instead of being skipped (see package testenv).
//
// Services start in parallel on free 127.0.0.1 ports, each in a temporary
// directory. They are stopped by pid (SIGTERM, then SIGKILL) when the
// command ends or when the test bed gets SIGINT or SIGTERM (which it passes
// on to the command first); on Linux the kernel kills them if the test bed
// itself is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sailstream/sailstream/internal/testenv"
)

// service is one thing the test bed can start.
type service struct {
	name  string
	start func(ctx context.Context, dir string) (running, error)
}

// running is a started service.
type running interface {
	Stop() error
	LogTail(n int) string
	Pid() int
	Dir() string
}

var known = []service{
	{"mosquitto", func(ctx context.Context, dir string) (running, error) {
		m, err := testenv.StartMosquitto(ctx, testenv.MosquittoOptions{Dir: dir})
		if err != nil {
			return nil, err
		}
		os.Setenv(testenv.EnvMQTT, m.URL())
		return m, nil
	}},
	{"kafka", func(ctx context.Context, dir string) (running, error) {
		k, err := testenv.StartKafka(ctx, testenv.KafkaOptions{Dir: dir})
		if err != nil {
			return nil, err
		}
		os.Setenv(testenv.EnvKafka, strings.Join(k.Brokers(), ","))
		return k, nil
	}},
	{"postgres", func(ctx context.Context, dir string) (running, error) {
		pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Dir: dir})
		if err != nil {
			return nil, err
		}
		os.Setenv(testenv.EnvPostgres, pg.URL())
		return pg, nil
	}},
	{"azurite", func(ctx context.Context, dir string) (running, error) {
		a, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{Dir: dir})
		if err != nil {
			return nil, err
		}
		os.Setenv(testenv.EnvAzurite, a.ConnectionString())
		return a, nil
	}},
}

func main() {
	os.Exit(run())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testbed: "+format+"\n", args...)
}

func run() int {
	names := make([]string, len(known))
	for i, s := range known {
		names[i] = s.name
	}
	fs := flag.NewFlagSet("testbed", flag.ContinueOnError)
	servicesFlag := fs.String("services", strings.Join(names, ","), "comma-separated services to start (\"none\" for none): "+strings.Join(names, ", "))
	keep := fs.Bool("keep", false, "keep the services' directories (config, data, logs) and print where they are")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: testbed [flags] -- CMD [ARGS...]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return 2
	}

	var chosen []service
	if *servicesFlag != "none" && *servicesFlag != "" {
		for _, n := range strings.Split(*servicesFlag, ",") {
			n = strings.TrimSpace(n)
			i := slices.IndexFunc(known, func(s service) bool { return s.name == n })
			if i < 0 {
				logf("unknown service %q (known: %s)", n, strings.Join(names, ", "))
				return 2
			}
			if !slices.ContainsFunc(chosen, func(s service) bool { return s.name == n }) {
				chosen = append(chosen, known[i])
			}
		}
	}

	// SIGINT/SIGTERM: during start-up cancel it; while the command runs
	// pass the signal on and let it end; then stop the services.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gotSig os.Signal
	var sigMu sync.Mutex
	startDone := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			sigMu.Lock()
			gotSig = s
			sigMu.Unlock()
			logf("got %v while starting services: stopping", s)
			cancel()
		case <-startDone:
		}
	}()

	up, err := startAll(ctx, chosen, *keep)
	close(startDone)
	defer stopAll(up, *keep)
	sigMu.Lock()
	sig := gotSig
	sigMu.Unlock()
	if sig != nil {
		return 128 + int(sig.(syscall.Signal))
	}
	if err != nil {
		logf("%v", err)
		return 1
	}
	if len(chosen) == len(known) {
		os.Setenv(testenv.EnvRequire, "1")
	} else {
		logf("not all services started: tests that need a missing one are skipped")
	}
	for _, v := range []string{testenv.EnvMQTT, testenv.EnvKafka, testenv.EnvPostgres, testenv.EnvAzurite, testenv.EnvRequire} {
		if x := os.Getenv(v); x != "" {
			logf("%s=%s", v, x)
		}
	}

	code := runCommand(argv, sigs)
	if code != 0 {
		for _, r := range up {
			if r.svc.Pid() == 0 {
				continue
			}
			if err := syscall.Kill(r.svc.Pid(), 0); err != nil {
				logf("%s (pid %d) is gone; its log ends:\n%s", r.name, r.svc.Pid(), r.svc.LogTail(40))
			}
		}
	}
	return code
}

type started struct {
	name string
	svc  running
}

// startAll starts the services in parallel. On error it stops those that
// started and returns an error with the failed ones' log tails (each
// starter puts its log tail in its error).
func startAll(ctx context.Context, svcs []service, keep bool) ([]started, error) {
	type result struct {
		started
		err error
		dur time.Duration
	}
	results := make([]result, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Go(func() {
			t0 := time.Now()
			dir := ""
			if keep {
				d, err := os.MkdirTemp("", "sailstream-testbed-"+s.name+"-")
				if err != nil {
					results[i].err = err
					return
				}
				dir = d
			}
			r, err := s.start(ctx, dir)
			results[i] = result{started{s.name, r}, err, time.Since(t0)}
		})
	}
	wg.Wait()
	var ok []started
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("starting %s failed after %.1fs: %w", r.name, r.dur.Seconds(), r.err))
			continue
		}
		logf("%s ready in %.1fs (pid %d)", r.name, r.dur.Seconds(), r.svc.Pid())
		ok = append(ok, r.started)
	}
	if len(errs) > 0 {
		stopAll(ok, keep)
		return nil, errors.Join(errs...)
	}
	return ok, nil
}

func stopAll(ss []started, keep bool) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() {
			t0 := time.Now()
			if err := s.svc.Stop(); err != nil {
				logf("stopping %s: %v", s.name, err)
				return
			}
			if keep {
				logf("%s stopped in %.1fs; kept %s", s.name, time.Since(t0).Seconds(), s.svc.Dir())
			} else {
				logf("%s stopped in %.1fs", s.name, time.Since(t0).Seconds())
			}
		})
	}
	wg.Wait()
}

// runCommand runs argv with the test bed's environment and returns its exit
// code. A signal to the test bed is passed on to the command; if it has not
// ended 60s later it is killed.
func runCommand(argv []string, sigs <-chan os.Signal) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = cmdAttr()
	if err := cmd.Start(); err != nil {
		logf("%v", err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	var forwarded os.Signal
wait:
	for {
		select {
		case err = <-done:
			break wait
		case s := <-sigs:
			forwarded = s
			logf("got %v: passing it on to %s", s, argv[0])
			cmd.Process.Signal(s)
			go func() {
				time.Sleep(60 * time.Second)
				cmd.Process.Kill()
			}()
		}
	}
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal())
		}
		return ee.ExitCode()
	}
	if forwarded != nil {
		return 128 + int(forwarded.(syscall.Signal))
	}
	logf("%v", err)
	return 1
}
