package testenv

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// alive reports whether a process with this pid exists.
func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestStartMosquitto(t *testing.T) {
	if _, err := MosquittoBinary(); err != nil {
		t.Skip(err)
	}
	m, err := StartMosquitto(context.Background(), MosquittoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir, pid := m.Dir(), m.Pid()
	if !strings.HasPrefix(m.URL(), "tcp://127.0.0.1:") || !listening(m.Addr()) {
		t.Fatalf("URL %q / addr %q: not a listening 127.0.0.1 broker", m.URL(), m.Addr())
	}
	if !alive(pid) {
		t.Fatalf("pid %d not running", pid)
	}
	conf, err := os.ReadFile(dir + "/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"max_queued_messages 0", "allow_anonymous true", "persistence false", "listener "} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("mosquitto.conf lacks %q:\n%s", want, conf)
		}
	}

	// Kill and Restart keep the address.
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || listening(m.Addr()) {
		t.Fatalf("after Kill: pid %d alive=%v, listening=%v", pid, alive(pid), listening(m.Addr()))
	}
	if err := m.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !listening(m.Addr()) {
		t.Fatal("not listening after Restart")
	}
	pid = m.Pid()

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left its temporary directory %s (stat: %v)", dir, err)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartMosquittoBadConfigReportsLog(t *testing.T) {
	if _, err := MosquittoBinary(); err != nil {
		t.Skip(err)
	}
	_, err := StartMosquitto(context.Background(), MosquittoOptions{
		ExtraConfig:  []string{"no_such_option_sailstream 1"},
		StartTimeout: 5 * time.Second,
	})
	if err == nil {
		t.Fatal("started with an invalid configuration")
	}
	if !strings.Contains(err.Error(), "no_such_option_sailstream") {
		t.Errorf("error does not show the broker's complaint: %v", err)
	}
}

func TestStartKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM: not in -short")
	}
	if _, err := KafkaJars(KafkaHome()); err != nil {
		t.Skip(err)
	}
	t0 := time.Now()
	k, err := StartKafka(context.Background(), KafkaOptions{HeapMB: 384})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartKafka took %s", time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() { k.Stop() })
	dir, pid := k.Dir(), k.Pid()
	if !strings.HasPrefix(k.Addr(), "127.0.0.1:") || !alive(pid) {
		t.Fatalf("addr %q pid %d", k.Addr(), pid)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(k.ClusterID()) {
		t.Errorf("cluster id %q is not a base64 UUID", k.ClusterID())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	topic := Unique("starter-")
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Metadata of a topic just created may lag behind for a moment.
	var got int
	for deadline := time.Now().Add(15 * time.Second); ; {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if got = len(td[topic].Partitions); got == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != 6 {
		t.Errorf("new topic has %d partitions, want the configured default 6", got)
	}
	if s, err := os.Stat(k.LogFile()); err != nil || s.Size() == 0 {
		t.Errorf("broker log %s missing or empty (%v): log4j2 config not applied?", k.LogFile(), err)
	}

	// The data survives Kill and Restart.
	if err := k.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("pid %d alive after Kill", pid)
	}
	t0 = time.Now()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %s", time.Since(t0).Round(time.Millisecond))
	td, err := adm.ListTopics(ctx, topic)
	if err != nil || !td.Has(topic) {
		t.Fatalf("topic %s gone after Restart (err %v)", topic, err)
	}
	pid = k.Pid()

	t0 = time.Now()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %s", time.Since(t0).Round(time.Millisecond))
	if alive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left its temporary directory %s (stat: %v)", dir, err)
	}
}

func TestKafkaVersionMatchesPom(t *testing.T) {
	pom, err := os.ReadFile("kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if m == nil {
		t.Fatal("no <kafka.version> in kafka/pom.xml")
	}
	if string(m[1]) != KafkaVersion {
		t.Errorf("kafka/pom.xml has Kafka %s, KafkaVersion is %s: keep them in step", m[1], KafkaVersion)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: not distinct positive ports", ps)
		}
		seen[p] = true
	}
}

func TestTailFiles(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/log"
	var lines []string
	for i := range 10 {
		lines = append(lines, "line"+string(rune('0'+i)))
	}
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n    int
		want string
	}{
		{3, "==> " + f + " <==\nline7\nline8\nline9\n"},
		{20, "==> " + f + " <==\n" + strings.Join(lines, "\n") + "\n"},
	}
	for _, tc := range tests {
		if got := tailFiles(tc.n, f, dir+"/missing"); got != tc.want {
			t.Errorf("tailFiles(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
