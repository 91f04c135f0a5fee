package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf/admin"
	"github.com/sailstream/sailstream/udf/registry"
)

// runCLI runs the built binary and returns its combined output and
// whether it exited 0.
func runCLI(t *testing.T, bin string, env []string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "SAILSTREAM_LOG_LEVEL=warn"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%v: %v", args, err)
		}
	}
	return string(out), err == nil
}

// TestUDFInitBuildTestDeploy is the guide's path (docs/udf.md) through the
// binary: init a Go UDF, build it, test it against its vectors (and see a
// broken vector fail with a diff), then deploy, list, shadow, promote and
// roll back through the admin API of a core-like server on the real Kafka.
func TestUDFInitBuildTestDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a Go UDF")
	}
	t.Parallel()
	bin := buildBinary(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"SAILSTREAM_SOURCE=" + repo}
	dir := filepath.Join(t.TempDir(), "hello")
	wasm := filepath.Join(dir, "hello.wasm")

	steps := []struct {
		args   []string
		ok     bool
		output string
	}{
		{[]string{"udf", "init", "--lang", "go", "hello", "--dir", dir}, true, "created go UDF"},
		{[]string{"udf", "init", "--lang", "go", "hello", "--dir", dir}, false, "not empty"},
		{[]string{"udf", "init", "--lang", "go", "bad name"}, false, "name"},
		{[]string{"udf", "build", dir}, true, "built " + wasm},
		{[]string{"udf", "test", wasm, "--vectors", filepath.Join(dir, "testdata")}, true, "2/2 cases passed"},
	}
	for _, st := range steps {
		out, ok := runCLI(t, bin, env, st.args...)
		if ok != st.ok || !strings.Contains(out, st.output) {
			t.Fatalf("%v: ok %v, output:\n%s\nwant ok %v and %q", st.args, ok, out, st.ok, st.output)
		}
	}
	// A vector that disagrees: a readable diff and a non-zero exit.
	vec := filepath.Join(dir, "testdata", "vectors.json")
	b, err := os.ReadFile(vec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vec, []byte(strings.Replace(string(b), `"state": "6b656570",
    "outputs"`, `"state": "6b656571",
    "outputs"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := runCLI(t, bin, env, "udf", "test", wasm, "--vectors", filepath.Join(dir, "testdata"))
	if ok || !strings.Contains(out, "1/2 cases passed") || !strings.Contains(out, "the state is kept") || !strings.Contains(out, "6b656571") {
		t.Fatalf("a wrong vector: ok %v, output:\n%s", ok, out)
	}

	// A second version of the same UDF, to shadow.
	dir2 := filepath.Join(t.TempDir(), "hello2")
	if out, ok := runCLI(t, bin, env, "udf", "init", "hello", "--dir", dir2); !ok {
		t.Fatal(out)
	}
	src, err := os.ReadFile(filepath.Join(dir2, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "main.go"), []byte(strings.Replace(string(src), `"0.1.0"`, `"2.0.0"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := runCLI(t, bin, env, "udf", "build", dir2); !ok {
		t.Fatal(out)
	}
	wasm2 := filepath.Join(dir2, "hello2.wasm")

	// Deploy through the admin API to the real Kafka.
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := testenv.Unique("udf.modules.")
	pub, err := registry.NewPublisher(registry.PublisherConfig{KafkaBrokers: brokers, Topic: topic,
		CacheDir: filepath.Join(os.TempDir(), "sailstream-udf-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", Token: "tok", Control: pub})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Run(ctx) }()
	<-srv.Ready()
	api := []string{"SAILSTREAM_ADMIN_URL=http://" + srv.Addr(), "SAILSTREAM_ADMIN_TOKEN=tok"}
	if err := os.WriteFile(filepath.Join(dir, "hello.json"), []byte(`{"version":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "garbage.wasm"), []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	apiSteps := []struct {
		env    []string
		args   []string
		ok     bool
		output string
	}{
		{[]string{"SAILSTREAM_ADMIN_URL=http://" + srv.Addr(), "SAILSTREAM_ADMIN_TOKEN=wrong"}, []string{"udf", "list"}, false, "401"},
		{api, []string{"udf", "deploy", filepath.Join(dir, "garbage.wasm")}, false, "422"},
		{api, []string{"udf", "deploy", wasm, "--route", "buoy-*"}, true, "live:   1.0.0"},
		{api, []string{"udf", "deploy", wasm, "--route", "buoy-*"}, true, "nothing to change"},
		{api, []string{"udf", "shadow", wasm2}, true, "shadow: 2.0.0"},
		{api, []string{"udf", "list"}, false, ""}, // checked below
		{api, []string{"udf", "promote", "hello"}, true, "live:   2.0.0"},
		{api, []string{"udf", "rollback", "hello"}, true, "live:   1.0.0"},
		{api, []string{"udf", "routes", "set", "boat-*=hello", "--default", "speed"}, true, "boat-* → hello; default → speed"},
		{api, []string{"udf", "routes", "set", "boat-*"}, false, "PATTERN=UDF"},
		{nil, []string{"udf", "list", "--json", "--kafka-brokers", strings.Join(brokers, ","), "--topic", topic}, true, `"version": "1.0.0"`},
	}
	for i, st := range apiSteps {
		out, ok := runCLI(t, bin, st.env, st.args...)
		if i == 5 {
			// shadow printed the deployment; list shows live and shadow
			if !ok || !strings.Contains(out, "hello") || !strings.Contains(out, "2.0.0") || !strings.Contains(out, "speed") {
				t.Fatalf("udf list: ok %v\n%s", ok, out)
			}
			continue
		}
		if ok != st.ok || !strings.Contains(out, st.output) {
			t.Fatalf("%v: ok %v, output:\n%s\nwant ok %v and %q", st.args, ok, out, st.ok, st.output)
		}
	}
	s, err := pub.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Deployments["hello"]
	if d.Live == nil || d.Live.Version != "1.0.0" || d.Shadow != nil || s.Routes.Resolve("boat-3") != "hello" || s.Routes.Resolve("buoy-1") != "speed" {
		t.Errorf("registry after the CLI: %+v routes %+v", d, s.Routes)
	}
}
