package deploy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sailstream/sailstream/internal/testenv"
)

var mosquittoConfPath = filepath.Join("mosquitto", "mosquitto.conf")

func readMosquittoConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(mosquittoConfPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mosquittoOptions returns every option line of conf as name → values.
func mosquittoOptions(conf string) map[string][]string {
	opts := map[string][]string{}
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		opts[name] = append(opts[name], strings.TrimSpace(value))
	}
	return opts
}

// mosquittoOption returns the value of an option that mosquitto.conf sets
// exactly once.
func mosquittoOption(t *testing.T, name string) string {
	t.Helper()
	v := mosquittoOptions(readMosquittoConf(t))[name]
	if len(v) != 1 {
		t.Fatalf("mosquitto.conf sets %s %d times, want once", name, len(v))
	}
	return v[0]
}

func mosquittoListenerPort(t *testing.T) string {
	t.Helper()
	f := strings.Fields(mosquittoOption(t, "listener"))
	if len(f) != 1 {
		t.Fatalf("mosquitto.conf: listener %v: want a port on every interface of the container", f)
	}
	return f[0]
}

// TestMosquittoConfSettings: the settings the pipeline's delivery depends on.
func TestMosquittoConfSettings(t *testing.T) {
	conf := readMosquittoConf(t)
	opts := mosquittoOptions(conf)
	for _, tc := range []struct{ option, want, why string }{
		{"listener", "1883", "compose.yaml's clients use mosquitto:1883"},
		{"max_queued_messages", "0", "the default limit (1000) lost 20-40% of a 10k QoS 1 burst"},
		{"persistence", "true", "the bridge's persistent session must survive a broker restart"},
		{"allow_anonymous", "true", "the stack works out of the box on the user's machine"},
	} {
		if got := opts[tc.option]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s %v, want %s (%s)", tc.option, got, tc.want, tc.why)
		}
	}
	// Anonymous access comes with the warning to add authentication.
	i := strings.Index(conf, "\nallow_anonymous true")
	if i < 0 || !strings.Contains(strings.ToLower(conf[max(0, i-600):i]), "authentication") {
		t.Error("allow_anonymous true has no comment above it saying to add authentication before exposing the port")
	}
}

// --- the real broker ------------------------------------------------------------

// mosquittoBroker runs /usr/sbin/mosquitto with a configuration file.
type mosquittoBroker struct {
	t    *testing.T
	bin  string
	conf string
	addr string
	log  string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// localCopy rewrites conf for this machine: the listener on a free loopback
// port, persistence in dir, and (as root) no switch to the mosquitto user,
// who could not write the test's directory. Everything else is unchanged.
func localCopy(t *testing.T, conf, dir string, port int) string {
	t.Helper()
	var out []string
	var listeners, locations int
	for _, line := range strings.Split(conf, "\n") {
		switch name, _, _ := strings.Cut(strings.TrimSpace(line), " "); name {
		case "listener":
			line = fmt.Sprintf("listener %d 127.0.0.1", port)
			listeners++
		case "persistence_location":
			line = "persistence_location " + dir + "/"
			locations++
		case "user":
			continue
		}
		out = append(out, line)
	}
	if listeners != 1 || locations > 1 {
		t.Fatalf("mosquitto.conf has %d listener and %d persistence_location lines; the test rewrites exactly one of each", listeners, locations)
	}
	if os.Geteuid() == 0 {
		out = append(out, "user root")
	}
	return strings.Join(out, "\n")
}

func startBroker(t *testing.T, conf string) *mosquittoBroker {
	t.Helper()
	bin, err := testenv.MosquittoBinary()
	if err != nil {
		if os.Getenv(testenv.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	b := &mosquittoBroker{
		t: t, bin: bin,
		conf: filepath.Join(dir, "mosquitto.conf"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		log:  filepath.Join(dir, "mosquitto.log"),
	}
	if err := os.WriteFile(b.conf, []byte(localCopy(t, conf, dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *mosquittoBroker) start() {
	b.t.Helper()
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	defer logf.Close()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	exited := make(chan struct{})
	b.exited = exited
	go func() { _ = b.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			b.t.Fatalf("mosquitto -c %s exited at start:\n%s", b.conf, b.logTail())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto does not accept connections on %s after 10s:\n%s", b.addr, b.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the broker with SIGTERM, as `docker compose stop` does; Mosquitto
// then writes its persistence file.
func (b *mosquittoBroker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
		b.t.Errorf("mosquitto did not stop within 10s of SIGTERM")
	}
}

func (b *mosquittoBroker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

func (b *mosquittoBroker) logTail() string {
	out, _ := os.ReadFile(b.log)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

func connect(t *testing.T, addr, clientID string, clean bool, onMessage mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(false)
	if onMessage != nil {
		opts.SetDefaultPublishHandler(onMessage)
	}
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", clientID, addr, tok.Error())
	}
	return c
}

// TestMosquittoConfOnRealBroker starts the real mosquitto with
// mosquitto.conf (listener and data directory moved to this machine) and
// plays what the stack depends on: a subscriber with a persistent session,
// like the bridge, is away while devices publish a burst of QoS 1 messages
// larger than Mosquitto's default queue (1000), then the broker restarts,
// then the subscriber returns and must get every message. The same run
// against copies without max_queued_messages 0 and without persistence shows
// that each setting is what keeps the messages.
func TestMosquittoConfOnRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	const burst = 2500
	conf := readMosquittoConf(t)
	without := func(option, replacement string) string {
		var out []string
		for _, line := range strings.Split(conf, "\n") {
			if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); name == option {
				line = replacement
			}
			out = append(out, line)
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name    string
		conf    string
		atLeast int // messages the subscriber must get back
		atMost  int
	}{
		{"mosquitto.conf", conf, burst, burst},
		{"default max_queued_messages", without("max_queued_messages", ""), 1, 1000},
		{"persistence false", without("persistence", "persistence false"), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, tc.conf)
			const topic = "sailstream/devices/boat-1/telemetry"
			subID := testenv.Unique("compose-test-bridge-")

			// The subscriber's session, then it goes away.
			sub := connect(t, b.addr, subID, false, nil)
			if tok := sub.Subscribe("sailstream/devices/+/telemetry", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			sub.Disconnect(100)

			// A burst while it is away: every publish acknowledged by the broker.
			pub := connect(t, b.addr, testenv.Unique("compose-test-device-"), true, nil)
			toks := make([]mqtt.Token, burst)
			for i := range toks {
				toks[i] = pub.Publish(topic, 1, false, strconv.Itoa(i))
			}
			for i, tok := range toks {
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("publish %d: %v", i, tok.Error())
				}
			}
			pub.Disconnect(100)

			b.restart()

			// The subscriber returns with the same client id.
			var mu sync.Mutex
			got := map[string]bool{}
			last := time.Now()
			sub = connect(t, b.addr, subID, false, func(_ mqtt.Client, m mqtt.Message) {
				mu.Lock()
				got[string(m.Payload())] = true
				last = time.Now()
				mu.Unlock()
			})
			defer sub.Disconnect(100)
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				n, quiet := len(got), time.Since(last)
				mu.Unlock()
				if n >= burst || quiet > 2*time.Second || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			n := len(got)
			mu.Unlock()
			t.Logf("the returning subscriber got %d of %d messages", n, burst)
			if n < tc.atLeast || n > tc.atMost {
				t.Errorf("the returning subscriber got %d of %d messages, want %d..%d\nmosquitto log:\n%s", n, burst, tc.atLeast, tc.atMost, b.logTail())
			}
		})
	}
}

// TestMosquittoHealthcheck: the compose healthcheck subscribes to
// $SYS/broker/version and waits 3s; that topic must be retained, so that
// the check answers at once on a broker running mosquitto.conf.
func TestMosquittoHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	hc := loadCompose(t).Services["mosquitto"].Healthcheck
	if hc == nil {
		t.Fatal("mosquitto has no healthcheck")
	}
	test := strings.Join(hc.Test, " ")
	const sysTopic = "$$SYS/broker/version" // $$ is compose's escape for $
	if !strings.Contains(test, sysTopic) || !strings.Contains(test, "-p "+mosquittoListenerPort(t)) {
		t.Fatalf("healthcheck %q: want mosquitto_sub on the listener's port, topic %s", test, sysTopic)
	}
	b := startBroker(t, readMosquittoConf(t))
	got := make(chan string, 1)
	c := connect(t, b.addr, testenv.Unique("compose-test-health-"), true, nil)
	defer c.Disconnect(100)
	start := time.Now()
	c.Subscribe(strings.ReplaceAll(sysTopic, "$$", "$"), 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	select {
	case v := <-got:
		t.Logf("healthcheck answer after %v: %s", time.Since(start).Round(time.Millisecond), v)
	case <-time.After(3 * time.Second):
		t.Errorf("no $SYS/broker/version within the healthcheck's 3s (-W 3)")
	}
}
