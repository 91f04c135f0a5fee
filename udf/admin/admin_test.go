package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/internal/guestbuild"
	"github.com/sailstream/sailstream/udf/registry"
)

// fakeControl records what the API asked for and answers with err.
type fakeControl struct {
	mu    sync.Mutex
	calls []string
	wasm  []byte
	man   registry.Manifest
	err   error
}

func (f *fakeControl) record(call string, wasm []byte, m registry.Manifest) (registry.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	f.wasm, f.man = wasm, m
	return registry.Result{Action: call, Name: m.Name, Changed: true}, f.err
}

func (f *fakeControl) Deploy(_ context.Context, w []byte, m registry.Manifest) (registry.Result, error) {
	return f.record("deploy", w, m)
}
func (f *fakeControl) Shadow(_ context.Context, w []byte, m registry.Manifest) (registry.Result, error) {
	return f.record("shadow", w, m)
}
func (f *fakeControl) Promote(_ context.Context, n string) (registry.Result, error) {
	return f.record("promote "+n, nil, registry.Manifest{})
}
func (f *fakeControl) Rollback(_ context.Context, n string) (registry.Result, error) {
	return f.record("rollback "+n, nil, registry.Manifest{})
}
func (f *fakeControl) SetRoutes(_ context.Context, r registry.Routes) (registry.Result, error) {
	return f.record(fmt.Sprintf("routes %v", r), nil, registry.Manifest{})
}
func (f *fakeControl) List(context.Context) (*registry.State, error) {
	_, err := f.record("list", nil, registry.Manifest{})
	s := registry.NewState()
	s.Deployments["geo"] = registry.Deployment{Name: "geo", Live: &registry.Ref{Version: "1", SHA256: "ab"}}
	s.Modules["ab"] = registry.Module{SHA256: "ab", Wasm: []byte("xyz")}
	return s, err
}

func TestConfigValidate(t *testing.T) {
	c := &fakeControl{}
	tests := []struct {
		cfg  Config
		want error // nil: valid; errAny: any error
	}{
		{Config{Control: c}, nil}, // DefaultAddr is loopback
		{Config{Addr: "127.0.0.1:0", Control: c}, nil},
		{Config{Addr: "localhost:0", Control: c}, nil},
		{Config{Addr: "[::1]:0", Control: c}, nil},
		{Config{Addr: "0.0.0.0:9470", Control: c}, ErrNoToken},
		{Config{Addr: ":9470", Control: c}, ErrNoToken},
		{Config{Addr: "192.168.1.5:9470", Control: c}, ErrNoToken},
		{Config{Addr: ":9470", Token: "t", Control: c}, nil},
		{Config{Addr: "127.0.0.1", Token: "t", Control: c}, errAny},
		{Config{Addr: "127.0.0.1:0"}, errAny},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%q token %q: %v", tt.cfg.Addr, tt.cfg.Token, err)
		case tt.want == errAny && err == nil, tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
			t.Errorf("%q token %q: err %v, want %v", tt.cfg.Addr, tt.cfg.Token, err, tt.want)
		}
		if _, nerr := New(tt.cfg); (nerr == nil) != (err == nil) {
			t.Errorf("%q: New and Validate disagree: %v vs %v", tt.cfg.Addr, nerr, err)
		}
	}
}

var errAny = errors.New("any error")

func newTestServer(t *testing.T, token string, c Control) *httptest.Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Control: c})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func request(t *testing.T, method, url, auth, contentType string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.String()
}

func TestAuth(t *testing.T) {
	c := &fakeControl{}
	ts := newTestServer(t, "s3cret", c)
	tests := []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/udfs", "", 401},
		{"GET", "/udfs", "Bearer wrong", 401},
		{"GET", "/udfs", "Bearer s3cret2", 401},
		{"GET", "/udfs", "Bearer ", 401},
		{"GET", "/udfs", "Basic czNjcmV0", 401},
		{"GET", "/udfs", "s3cret", 401},
		{"POST", "/udfs/geo/deploy", "", 401},
		{"POST", "/udfs/geo/promote", "Bearer nope", 401},
		{"PUT", "/routes", "", 401},
		{"GET", "/healthz", "", 200},
		{"GET", "/udfs", "Bearer s3cret", 200},
		{"POST", "/udfs/geo/promote", "Bearer s3cret", 200},
	}
	for _, tt := range tests {
		code, hdr, body := request(t, tt.method, ts.URL+tt.path, tt.auth, "", nil)
		if code != tt.want {
			t.Errorf("%s %s with %q: %d %s, want %d", tt.method, tt.path, tt.auth, code, body, tt.want)
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without a WWW-Authenticate: Bearer header")
		}
	}
	if got := fmt.Sprint(c.calls); got != "[list promote geo]" {
		t.Errorf("control called %s; unauthorised requests must not reach it", got)
	}
}

func TestNoTokenOnLoopbackIsOpen(t *testing.T) {
	ts := newTestServer(t, "", &fakeControl{})
	if code, _, body := request(t, "GET", ts.URL+"/udfs", "", "", nil); code != 200 || !strings.Contains(body, `"geo"`) || !strings.Contains(body, `"size":3`) {
		t.Errorf("GET /udfs: %d %s", code, body)
	}
}

func TestUpload(t *testing.T) {
	wasm := []byte("\x00asm module bytes")
	multi := func(manifest string) ([]byte, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("module", "fence.wasm")
		_, _ = fw.Write(wasm)
		if manifest != "" {
			_ = mw.WriteField("manifest", manifest)
		}
		_ = mw.Close()
		return b.Bytes(), mw.FormDataContentType()
	}
	mbody, mtype := multi(`{"version":"7","routes":["buoy-*"],"limits":{"memory_mib":8,"call_timeout":"250ms"}}`)
	nbody, ntype := multi("")
	tests := []struct {
		name, path, ctype string
		body              []byte
		wantCode          int
		wantCall          string
		check             func(*testing.T, registry.Manifest)
	}{
		{"raw body, manifest in the query", "/udfs/geo/deploy?version=7&route=buoy-*&route=boat-1&memory_mib=8&call_timeout=250ms&default=true",
			"application/wasm", wasm, 200, "deploy", func(t *testing.T, m registry.Manifest) {
				if m.Name != "geo" || m.Version != "7" || fmt.Sprint(m.Routes) != "[buoy-* boat-1]" || !m.Default ||
					m.Limits.MemoryMiB != 8 || time.Duration(m.Limits.CallTimeout) != 250*time.Millisecond {
					t.Errorf("manifest %+v", m)
				}
			}},
		{"raw body, whole manifest in the query", `/udfs/shadow?manifest={"name":"geo","version":"8"}`,
			"application/octet-stream", wasm, 200, "shadow", func(t *testing.T, m registry.Manifest) {
				if m.Name != "geo" || m.Version != "8" {
					t.Errorf("manifest %+v", m)
				}
			}},
		{"multipart", "/udfs/geo/shadow", mtype, mbody, 200, "shadow", func(t *testing.T, m registry.Manifest) {
			if m.Name != "geo" || m.Version != "7" || m.Limits.MemoryMiB != 8 || m.FileName != "fence.wasm" {
				t.Errorf("manifest %+v", m)
			}
		}},
		{"multipart without a name: the server resolves it", "/udfs/deploy", ntype, nbody, 200, "deploy", func(t *testing.T, m registry.Manifest) {
			if m.Name != "" || m.FileName != "fence.wasm" {
				t.Errorf("manifest %+v", m)
			}
		}},
		{"manifest and URL disagree", "/udfs/other/deploy", mtype, bytes.Replace(mbody, []byte(`"version"`), []byte(`"name":"geo","version"`), 1), 400, "", nil},
		{"bad query value", "/udfs/geo/deploy?memory_mib=lots", "application/wasm", wasm, 400, "", nil},
		{"bad route pattern", "/udfs/geo/deploy?route=[", "application/wasm", wasm, 400, "", nil},
		{"unknown manifest field", "/udfs/geo/deploy", func() string { _, ct := multi("{\"nmae\":1}"); return ct }(), func() []byte { b, _ := multi(`{"nmae":1}`); return b }(), 400, "", nil},
		{"multipart without a module", "/udfs/geo/deploy", "multipart/form-data; boundary=x", []byte("--x--\r\n"), 400, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeControl{}
			ts := newTestServer(t, "tok", c)
			code, _, body := request(t, "POST", ts.URL+tt.path, "Bearer tok", tt.ctype, tt.body)
			if code != tt.wantCode {
				t.Fatalf("%d %s, want %d", code, body, tt.wantCode)
			}
			if got := strings.Join(c.calls, ","); got != tt.wantCall {
				t.Fatalf("calls %q, want %q", got, tt.wantCall)
			}
			if tt.check != nil {
				if !bytes.Equal(c.wasm, wasm) {
					t.Errorf("module bytes %q", c.wasm)
				}
				tt.check(t, c.man)
			}
			if code != 200 && !strings.Contains(body, `"error"`) {
				t.Errorf("error body %s", body)
			}
		})
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: %w", registry.ErrRefused, udf.ErrABIVersion), 422},
		{fmt.Errorf("%w: x", registry.ErrNoShadow), 409},
		{fmt.Errorf("%w: x", registry.ErrNothingToRollBack), 409},
		{fmt.Errorf("%w: x", registry.ErrUnknownUDF), 404},
		{fmt.Errorf("%w: x", registry.ErrBadRecord), 400},
		{errors.New("kafka: connection refused"), 502},
	}
	for _, tt := range tests {
		ts := newTestServer(t, "", &fakeControl{err: tt.err})
		code, _, body := request(t, "POST", ts.URL+"/udfs/geo/rollback", "", "", nil)
		if code != tt.want || !strings.Contains(body, tt.err.Error()) {
			t.Errorf("%v: %d %s, want %d with the message", tt.err, code, body, tt.want)
		}
	}
}

func TestRun(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: "tok", Control: &fakeControl{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	cl := &Client{URL: "http://" + s.Addr(), Token: "tok"}
	v, err := cl.View(ctx)
	if err != nil || len(v.Deployments) != 1 || v.Deployments[0].Name != "geo" {
		t.Fatalf("view %+v, err %v", v, err)
	}
	_, err = (&Client{URL: cl.URL, Token: "bad"}).View(ctx)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 401 {
		t.Errorf("wrong token: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestIntegrationAdmin drives a real Publisher on Kafka through the API
// with the Client, as `sailstream udf` does.
func TestIntegrationAdmin(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, err := udf.NewEngine(udf.Config{CacheDir: filepath.Join(os.TempDir(), "sailstream-udf-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	pub, err := registry.NewPublisher(registry.PublisherConfig{KafkaBrokers: brokers, Topic: testenv.Unique("udf.modules."), Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s, err := New(Config{Addr: "127.0.0.1:0", Token: "tok", Control: pub})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(ctx) }()
	<-s.Ready()
	cl := &Client{URL: "http://" + s.Addr(), Token: "tok"}

	geofence, err := guestbuild.Go(ctx, filepath.Join("..", "examples", "geofence"))
	if err != nil {
		t.Fatal(err)
	}
	smoothing, err := guestbuild.Go(ctx, filepath.Join("..", "examples", "smoothing"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Deploy(ctx, []byte("\x00asm\x01\x00\x00\x00garbage"), registry.Manifest{Name: "geo"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 422 || !strings.Contains(se.Message, "refused") {
		t.Fatalf("bad module: %v", err)
	}
	res, err := cl.Deploy(ctx, geofence, registry.Manifest{FileName: "x.wasm", Routes: []string{"buoy-*"}})
	if err != nil || res.Name != "geofence" || !res.Changed {
		t.Fatalf("deploy: %+v %v", res, err)
	}
	if res, err = cl.Shadow(ctx, smoothing, registry.Manifest{Name: "geofence", Version: "2"}); err != nil || res.Deployment.Shadow == nil {
		t.Fatalf("shadow: %+v %v", res, err)
	}
	if res, err = cl.Promote(ctx, "geofence"); err != nil || res.Deployment.Live.Version != "2" {
		t.Fatalf("promote: %+v %v", res, err)
	}
	if res, err = cl.Rollback(ctx, "geofence"); err != nil || res.Deployment.Live.Version != "1.0.0" {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if _, err = cl.SetRoutes(ctx, registry.Routes{Default: "nope"}); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("routes to an unknown UDF: %v", err)
	}
	v, err := cl.View(ctx)
	if err != nil || len(v.Deployments) != 1 || v.Routes.Resolve("buoy-9") != "geofence" || len(v.Modules) != 1 {
		t.Fatalf("view %+v %v", v, err)
	}
}
