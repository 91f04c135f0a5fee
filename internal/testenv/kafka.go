package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaVersion is the Apache Kafka broker the test bed runs. Keep it in step
// with kafka.version in internal/testenv/kafka/pom.xml (a test checks).
const KafkaVersion = "4.4.0"

// Environment variables that say where the Kafka jars are.
const (
	// EnvCache is the download cache, outside the work tree. Default
	// $HOME/.cache/sailstream.
	EnvCache = "SAILSTREAM_CACHE"
	// EnvKafkaHome is a directory whose libs/ holds the broker's jars.
	// Default $SAILSTREAM_CACHE/kafka-<KafkaVersion>.
	EnvKafkaHome = "SAILSTREAM_KAFKA_HOME"
)

// CacheDir returns $SAILSTREAM_CACHE, else $HOME/.cache/sailstream.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "sailstream")
	}
	return filepath.Join(os.TempDir(), "sailstream-cache")
}

// KafkaHome returns the directory whose libs/ holds the broker's jars:
// $SAILSTREAM_KAFKA_HOME, else CacheDir()/kafka-<KafkaVersion>, where
// scripts/install-deps.sh puts them.
func KafkaHome() string {
	if d := os.Getenv(EnvKafkaHome); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), "kafka-"+KafkaVersion)
}

// KafkaOptions configures StartKafka. The zero value is ready to use.
type KafkaOptions struct {
	// Home is the directory whose libs/ holds the jars. Default KafkaHome().
	Home string
	// Java is the java executable. Default $JAVA_HOME/bin/java, else java
	// on PATH.
	Java string
	// Dir holds server.properties, the data and the logs. Default: a new
	// temporary directory that Stop removes.
	Dir string
	// HeapMB is the broker's maximum heap. Default 768.
	HeapMB int
	// Properties are added to (or override) the generated
	// server.properties.
	Properties map[string]string
	// StartTimeout bounds formatting the storage and waiting for the broker
	// to serve requests. Default 120s.
	StartTimeout time.Duration
}

// Kafka is a running single-node Apache Kafka cluster (KRaft, one process
// that is both broker and controller) started by StartKafka.
type Kafka struct {
	opts      KafkaOptions
	java      string
	dir       string
	ownDir    bool
	addr      string // broker listener
	ctrlAddr  string // controller listener
	clusterID string
	logFile   string
	outFile   string

	mu sync.Mutex
	p  *proc
}

// KafkaJars returns the libs/ directory of home, or an error that says how
// to fetch the jars when it holds no broker jar.
func KafkaJars(home string) (string, error) {
	libs := filepath.Join(home, "libs")
	m, _ := filepath.Glob(filepath.Join(libs, "kafka_2.13-*.jar"))
	if len(m) == 0 {
		return "", fmt.Errorf("no Kafka broker jars in %s: run `make deps` (scripts/install-deps.sh fetches them from Maven Central)", libs)
	}
	return libs, nil
}

func javaBinary() (string, error) {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		j := filepath.Join(h, "bin", "java")
		if _, err := os.Stat(j); err == nil {
			return j, nil
		}
	}
	j, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("java not found (JAVA_HOME unset and no java on PATH): Kafka needs Java 17 or newer")
	}
	return j, nil
}

// StartKafka formats a fresh KRaft log directory and starts one Kafka node
// (broker and controller) on free 127.0.0.1 ports, with settings for tests:
// replication factor 1 for the internal topics (so transactions and
// consumer groups work on one node), 6 partitions per new topic, no initial
// rebalance delay. The broker logs to a file in its directory. It returns
// once the broker lists itself and can create and delete a topic; ctx bounds
// only the start.
func StartKafka(ctx context.Context, opts KafkaOptions) (*Kafka, error) {
	if opts.Home == "" {
		opts.Home = KafkaHome()
	}
	if _, err := KafkaJars(opts.Home); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	java := opts.Java
	if java == "" {
		j, err := javaBinary()
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		java = j
	}
	if opts.HeapMB == 0 {
		opts.HeapMB = 768
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 120 * time.Second
	}
	dir, own, err := workDir(opts.Dir, "sailstream-kafka-")
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	k := &Kafka{
		opts:    opts,
		java:    java,
		dir:     dir,
		ownDir:  own,
		logFile: filepath.Join(dir, "server.log"),
		outFile: filepath.Join(dir, "kafka.out"),
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	for i := 0; ; i++ {
		ports, err := freePorts(2)
		if err != nil {
			k.cleanup()
			return nil, fmt.Errorf("kafka: %w", err)
		}
		k.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		k.ctrlAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		if err = k.format(ctx); err == nil {
			err = k.start(ctx)
		}
		if err == nil {
			return k, nil
		}
		if i+1 >= attempts || !logSaysAddrInUse(k.logFile, k.outFile) {
			err = fmt.Errorf("%w\n%s", err, k.LogTail(40))
			k.cleanup()
			return nil, err
		}
		// Lost the race for a port: start over on new ports.
		os.RemoveAll(filepath.Join(k.dir, "data"))
		os.Remove(k.logFile)
		os.Remove(k.outFile)
	}
}

func (k *Kafka) properties() map[string]string {
	p := map[string]string{
		"process.roles":                       "broker,controller",
		"node.id":                             "1",
		"controller.quorum.bootstrap.servers": k.ctrlAddr,
		"listeners":                           "PLAINTEXT://" + k.addr + ",CONTROLLER://" + k.ctrlAddr,
		"advertised.listeners":                "PLAINTEXT://" + k.addr,
		"controller.listener.names":           "CONTROLLER",
		"inter.broker.listener.name":          "PLAINTEXT",
		"listener.security.protocol.map":      "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs":                            filepath.Join(k.dir, "data"),
		"num.partitions":                      "6",
		"group.initial.rebalance.delay.ms":    "0",
		// One node: every internal topic has one replica.
		"offsets.topic.replication.factor":                 "1",
		"transaction.state.log.replication.factor":         "1",
		"transaction.state.log.min.isr":                    "1",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		// A killed broker's registration lapses after the session timeout
		// (default 9s): until then the controller refuses its restart
		// (DUPLICATE_BROKER_REGISTRATION). Shorter, so Kill+Restart is quick.
		"broker.heartbeat.interval.ms": "1000",
		"broker.session.timeout.ms":    "5000",
		// Fewer partitions for the internal topics than the default 50, so
		// the first consumer group and the first transaction start fast.
		"offsets.topic.num.partitions":                 "6",
		"transaction.state.log.num.partitions":         "6",
		"share.coordinator.state.topic.num.partitions": "6",
	}
	maps.Copy(p, k.opts.Properties)
	return p
}

func (k *Kafka) writeConfig() (props, log4j string, err error) {
	p := k.properties()
	var b strings.Builder
	b.WriteString("# Generated by internal/testenv for one test run.\n")
	for _, key := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&b, "%s=%s\n", key, p[key])
	}
	props = filepath.Join(k.dir, "server.properties")
	if err := os.WriteFile(props, []byte(b.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("kafka: %w", err)
	}
	log4j = filepath.Join(k.dir, "log4j2.xml")
	conf := `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by internal/testenv: the broker logs to a file, not to the test output. -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <File name="file" fileName="` + k.logFile + `" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
`
	if err := os.WriteFile(log4j, []byte(conf), 0o644); err != nil {
		return "", "", fmt.Errorf("kafka: %w", err)
	}
	return props, log4j, nil
}

// clusterID returns a random Kafka cluster id: a UUID in URL-safe base64
// without padding, not starting with '-' (as Kafka's Uuid.randomUuid).
func newClusterID() string {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		id := base64.RawURLEncoding.EncodeToString(b[:])
		if id[0] != '-' {
			return id
		}
	}
}

func (k *Kafka) classpath() string { return filepath.Join(k.opts.Home, "libs", "*") }

// format runs the broker's storage tool (what bin/kafka-storage.sh format
// runs) on a fresh data directory.
func (k *Kafka) format(ctx context.Context) error {
	props, log4j, err := k.writeConfig()
	if err != nil {
		return err
	}
	k.clusterID = newClusterID()
	// A short-lived JVM: the C1 compiler alone and the serial collector
	// start fastest.
	cmd := exec.CommandContext(ctx, k.java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dlog4j2.configurationFile="+log4j,
		"-cp", k.classpath(),
		"kafka.tools.StorageTool", "format",
		"-t", k.clusterID, "-c", props, "--standalone")
	cmd.Dir = k.dir
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.WriteFile(k.outFile, out, 0o644)
		return fmt.Errorf("kafka: formatting storage: %w", err)
	}
	return nil
}

// start runs the broker (what bin/kafka-server-start.sh runs) and waits for
// it to serve requests.
func (k *Kafka) start(ctx context.Context) error {
	props, log4j, err := k.writeConfig()
	if err != nil {
		return err
	}
	cmd := exec.Command(k.java,
		"-Xmx"+strconv.Itoa(k.opts.HeapMB)+"m",
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
		"-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+log4j,
		"-Dkafka.logs.dir="+k.dir,
		"-cp", k.classpath(),
		"kafka.Kafka", props)
	cmd.Dir = k.dir
	p, err := startProc("kafka", cmd, k.outFile)
	if err != nil {
		return err
	}
	err = p.waitReady(ctx, k.opts.StartTimeout, 250*time.Millisecond, k.probe)
	if err != nil {
		p.kill()
		return err
	}
	k.mu.Lock()
	k.p = p
	k.mu.Unlock()
	return nil
}

// probe succeeds when the broker lists itself and can create and delete a
// topic, that is when the controller has elected itself and the broker has
// caught up with the metadata log.
func (k *Kafka) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addr), kgo.DialTimeout(time.Second), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(bs) == 0 {
		return errors.New("no broker registered yet")
	}
	topic := Unique("sailstream-probe-")
	r, err := adm.CreateTopic(ctx, 1, 1, nil, topic)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return fmt.Errorf("creating probe topic: %w", err)
	}
	d, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = d.Err
	}
	if err != nil {
		return fmt.Errorf("deleting probe topic: %w", err)
	}
	return nil
}

// Addr returns the broker's host:port.
func (k *Kafka) Addr() string { return k.addr }

// Brokers returns the seed brokers, the form KafkaBrokers(t) returns.
func (k *Kafka) Brokers() []string { return []string{k.addr} }

// ClusterID returns the id the storage was formatted with.
func (k *Kafka) ClusterID() string { return k.clusterID }

// Dir returns the directory with server.properties, the data and the logs.
func (k *Kafka) Dir() string { return k.dir }

// LogFile returns the broker's log file.
func (k *Kafka) LogFile() string { return k.logFile }

// LogTail returns the last n lines of the broker's log and of its
// stdout/stderr.
func (k *Kafka) LogTail(n int) string { return tailFiles(n, k.logFile, k.outFile) }

// Pid returns the broker's process id (0 when stopped).
func (k *Kafka) Pid() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p == nil {
		return 0
	}
	return k.p.pid()
}

// Kill stops the broker at once with SIGKILL, keeping its data, so a test
// can see how clients cope with Kafka vanishing; Restart brings it back on
// the same address with the same data.
func (k *Kafka) Kill() error {
	k.mu.Lock()
	p := k.p
	k.p = nil
	k.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.kill()
}

// Restart starts a stopped or killed broker again on the same address and
// data (if it is running it is stopped first), and waits until it serves.
func (k *Kafka) Restart(ctx context.Context) error {
	if err := k.stopProc(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.StartTimeout)
	defer cancel()
	if err := k.start(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, k.LogTail(40))
	}
	return nil
}

func (k *Kafka) stopProc() error {
	k.mu.Lock()
	p := k.p
	k.p = nil
	k.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(20 * time.Second)
}

// Stop stops the broker (SIGTERM, then SIGKILL after 20s) and removes its
// directory if StartKafka created it. It is safe to call more than once.
func (k *Kafka) Stop() error {
	err := k.stopProc()
	k.cleanup()
	return err
}

func (k *Kafka) cleanup() {
	if k.ownDir {
		os.RemoveAll(k.dir)
	}
}

// NewKafka starts a Kafka node of the test's own (for a test that must stop
// or restart its broker; the shared one is KafkaBrokers) and stops it when
// the test ends. The test is skipped when the jars or java are missing,
// unless SAILSTREAM_TEST_REQUIRE_SERVICES=1. A node costs a few seconds and
// a JVM: prefer the shared one.
func NewKafka(t testing.TB, opts KafkaOptions) *Kafka {
	t.Helper()
	home := opts.Home
	if home == "" {
		home = KafkaHome()
	}
	if _, err := KafkaJars(home); err != nil {
		skipOrFail(t, err)
	}
	if opts.Java == "" {
		if _, err := javaBinary(); err != nil {
			skipOrFail(t, err)
		}
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	return startForTest(t, func() (*Kafka, error) { return StartKafka(context.Background(), opts) })
}
