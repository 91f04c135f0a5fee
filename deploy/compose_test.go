package deploy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot is where compose.yaml and the Dockerfile live, seen from this
// package's directory (go test runs in it).
const repoRoot = ".."

// --- compose.yaml, the parts the tests look at ----------------------------

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string       `yaml:"image"`
	Build       any          `yaml:"build"`
	Hostname    string       `yaml:"hostname"`
	Command     stringList   `yaml:"command"`
	Environment envMap       `yaml:"environment"`
	DependsOn   dependsOn    `yaml:"depends_on"`
	Ports       []string     `yaml:"ports"`
	Volumes     []string     `yaml:"volumes"`
	Restart     string       `yaml:"restart"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
}

type healthcheck struct {
	Test    stringList `yaml:"test"`
	Disable bool       `yaml:"disable"`
}

// stringList is a compose command or healthcheck test: a list, or a string
// split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// envMap is a compose environment: a map, or a list of NAME=value.
type envMap map[string]string

func (m *envMap) UnmarshalYAML(n *yaml.Node) error {
	*m = envMap{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*m)[k] = v
		}
		return nil
	}
	var raw map[string]string
	if err := n.Decode(&raw); err != nil {
		return err
	}
	for k, v := range raw {
		(*m)[k] = v
	}
	return nil
}

// dependsOn maps a service to its condition: a list of names
// (service_started), or the long form with conditions.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, s := range list {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var long map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	for s, c := range long {
		cond := c.Condition
		if cond == "" {
			cond = "service_started"
		}
		(*d)[s] = cond
	}
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return c
}

// isSailstream tells the services that run the sailstream image.
func isSailstream(s service) bool {
	return strings.HasPrefix(s.Image, "sailstream:") || s.Build != nil
}

// sailstreamServices returns the services that run the sailstream image,
// sorted by name.
func sailstreamServices(t *testing.T, c composeFile) []string {
	t.Helper()
	var names []string
	for name, s := range c.Services {
		if isSailstream(s) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		t.Fatal("compose.yaml runs no sailstream service")
	}
	return names
}

// --- the binary, built the way the Dockerfile builds it ---------------------

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// imageVersion is what the tests stamp into the binary with -ldflags, as the
// Dockerfile stamps VERSION.
const imageVersion = "compose-test"

// sailstreamBinary builds ./cmd/sailstream once per test run with the
// Dockerfile's settings (CGO off, -trimpath, -X main.version).
func sailstreamBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the sailstream binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "sailstream-deploy-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sailstream")
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X main.version="+imageVersion,
			"-o", binPath, "./cmd/sailstream")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/sailstream with CGO_ENABLED=0: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	// A command line of `sailstream --help`: the words of a runnable
	// subcommand (one, or more for a group such as `sink timescale`), its
	// required flags and arguments, then [flags].
	subcommandRe = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)((?: [^ \n]+)*?) \[flags\]$`)
	requiredRe   = regexp.MustCompile(`--([a-z][a-z0-9-]*)=`)
	envVarRe     = regexp.MustCompile(`\(\$(SAILSTREAM_[A-Z0-9_]+)\)`)
)

// subcommands returns the runnable subcommands `sailstream --help` names
// ("core", "sink timescale", ...), each with the SAILSTREAM_* variables of
// its required flags.
func subcommands(t *testing.T, bin string) map[string][]string {
	t.Helper()
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("sailstream --help: %v\n%s", err, out)
	}
	cmds := map[string][]string{}
	for _, m := range subcommandRe.FindAllStringSubmatch(string(out), -1) {
		var required []string
		for _, f := range requiredRe.FindAllStringSubmatch(m[2], -1) {
			required = append(required, flagEnv(f[1]))
		}
		cmds[m[1]] = required
	}
	if len(cmds) == 0 {
		t.Fatalf("found no subcommands in sailstream --help:\n%s", out)
	}
	return cmds
}

// flagEnv is the variable that sets a flag: SAILSTREAM_ and its name in
// upper case with - as _ (as `sailstream --help` says).
func flagEnv(flag string) string {
	return "SAILSTREAM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// subcommand is the subcommand a service runs: its command's words.
func subcommand(s service) string { return strings.Join(s.Command, " ") }

// help returns what `sailstream <sub> --help` prints.
func help(t *testing.T, bin, sub string) string {
	t.Helper()
	out, err := exec.Command(bin, append(strings.Fields(sub), "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("sailstream %s --help: %v\n%s", sub, err, out)
	}
	return string(out)
}

// envVars returns the SAILSTREAM_* variables `sailstream <sub> --help`
// documents: the flags of that subcommand, global ones included.
func envVars(t *testing.T, bin, sub string) map[string]bool {
	t.Helper()
	vars := map[string]bool{}
	for _, m := range envVarRe.FindAllStringSubmatch(help(t, bin, sub), -1) {
		vars[m[1]] = true
	}
	return vars
}

// TestBinaryAsTheImageBuildsIt: the static build the image ships runs and
// carries the version stamped with -ldflags.
func TestBinaryAsTheImageBuildsIt(t *testing.T) {
	bin := sailstreamBinary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sailstream version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "sailstream "+imageVersion; got != want {
		t.Errorf("sailstream version printed %q, want %q (is -X main.version still the variable?)", got, want)
	}
}

// TestComposeUsesRealCommandsAndFlags: every sailstream service runs a real
// subcommand and is configured only by SAILSTREAM_* variables that are flags
// of that subcommand. A misspelt variable would be silently ignored by the
// binary, so this is the only place it is caught.
func TestComposeUsesRealCommandsAndFlags(t *testing.T) {
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	cmds := subcommands(t, bin)
	for _, name := range sailstreamServices(t, c) {
		t.Run(name, func(t *testing.T) {
			s := c.Services[name]
			sub := subcommand(s)
			required, ok := cmds[sub]
			if !ok {
				t.Fatalf("command %q is not a subcommand of sailstream, or has arguments: want exactly the subcommand's words, configuration goes in SAILSTREAM_* variables (subcommands: %v)", s.Command, sortedKeys(cmds))
			}
			for _, k := range required {
				if s.Environment[k] == "" {
					t.Errorf("%s is not set: `sailstream %s` requires it", k, sub)
				}
			}
			known := envVars(t, bin, sub)
			if len(known) == 0 {
				t.Fatalf("sailstream %s --help documents no SAILSTREAM_* variable", sub)
			}
			if len(s.Environment) == 0 {
				t.Errorf("no environment: the defaults bind to 127.0.0.1, unreachable from other containers")
			}
			for k := range s.Environment {
				if !strings.HasPrefix(k, "SAILSTREAM_") {
					t.Errorf("%s: sailstream services are configured only with SAILSTREAM_* variables", k)
					continue
				}
				if !known[k] {
					t.Errorf("%s is not a flag of `sailstream %s` (it has %v)", k, sub, sortedKeys(known))
				}
			}
		})
	}
}

// listenAddrVars are the variables of addresses a component listens on; in
// a container they must not be loopback, or nothing outside reaches them.
var listenAddrVars = []string{"SAILSTREAM_METRICS_ADDR", "SAILSTREAM_HTTP_ADDR"}

// metricsPort returns where a sailstream service serves /metrics inside its
// container: --metrics-addr, else the web server's --http-addr.
func metricsPort(t *testing.T, s service) string {
	t.Helper()
	for _, k := range listenAddrVars {
		if addr, ok := s.Environment[k]; ok {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("%s=%q: %v", k, addr, err)
			}
			return port
		}
	}
	return ""
}

// TestComposeListensOnAllInterfaces: the flags whose defaults bind to
// 127.0.0.1 are set, to 0.0.0.0, for every service that has them.
func TestComposeListensOnAllInterfaces(t *testing.T) {
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	for _, name := range sailstreamServices(t, c) {
		s := c.Services[name]
		known := envVars(t, bin, subcommand(s))
		for _, k := range listenAddrVars {
			if !known[k] {
				continue
			}
			addr, ok := s.Environment[k]
			if !ok {
				t.Errorf("%s: %s is not set: its default listens on 127.0.0.1 only", name, k)
				continue
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				t.Errorf("%s: %s=%q: %v", name, k, addr, err)
				continue
			}
			if host != "0.0.0.0" && host != "" {
				t.Errorf("%s: %s=%q: bind to 0.0.0.0 inside the container", name, k, addr)
			}
		}
	}
}

// prometheusConfig is the part of prometheus.yml the tests look at.
type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// scrapeTargets returns target → job of deploy/prometheus/prometheus.yml.
func scrapeTargets(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var p prometheusConfig
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]string{}
	for _, sc := range p.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s; the components serve /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = sc.JobName
			}
		}
	}
	return targets
}

// TestPrometheusScrapesEveryComponent: each sailstream service's metrics
// port is a scrape target under its service name, and every target is a
// service and port that exist.
func TestPrometheusScrapesEveryComponent(t *testing.T) {
	c := loadCompose(t)
	targets := scrapeTargets(t)
	want := map[string]bool{}
	for _, name := range sailstreamServices(t, c) {
		port := metricsPort(t, c.Services[name])
		if port == "" {
			t.Errorf("%s sets neither %v: Prometheus cannot reach its /metrics", name, listenAddrVars)
			continue
		}
		tg := net.JoinHostPort(name, port)
		want[tg] = true
		if _, ok := targets[tg]; !ok {
			t.Errorf("prometheus.yml does not scrape %s (service %s serves /metrics on port %s)", tg, name, port)
		}
	}
	for tg, job := range targets {
		host, _, err := net.SplitHostPort(tg)
		if err != nil {
			t.Errorf("job %s: target %q: %v", job, tg, err)
			continue
		}
		if host == "localhost" || want[tg] {
			continue // Prometheus itself, or a component checked above
		}
		if _, ok := c.Services[host]; !ok {
			t.Errorf("job %s: target %s is not a compose service", job, tg)
		} else if isSailstream(c.Services[host]) {
			t.Errorf("job %s: target %s is not the port %s serves /metrics on", job, tg, host)
		}
	}
	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("compose.yaml has no prometheus service")
	}
	if !hasMount(prom, "./deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus does not mount ./deploy/prometheus/prometheus.yml at /etc/prometheus/prometheus.yml: %v", prom.Volumes)
	}
}

// hasMount tells whether s mounts src (relative to the repository root) at
// dst, read-only or not.
func hasMount(s service, src, dst string) bool {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[0] == src && parts[1] == dst {
			return true
		}
	}
	return false
}

// TestComposeWiring: the services find each other, start in order, restart,
// and the ports a user needs are published.
func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)

	mq, ok := c.Services["mosquitto"]
	if !ok {
		t.Fatal("no mosquitto service")
	}
	if mq.Image != "eclipse-mosquitto:2" && !strings.HasPrefix(mq.Image, "eclipse-mosquitto:2.") {
		t.Errorf("mosquitto image %q, want eclipse-mosquitto:2", mq.Image)
	}
	kafka, ok := c.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:4.") {
		t.Errorf("kafka image %q, want apache/kafka:4.x", kafka.Image)
	}

	// Clients use the broker's listener and Kafka's advertised listener.
	mqttURL := "tcp://mosquitto:" + mosquittoListenerPort(t)
	kafkaAddr := strings.TrimPrefix(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://")
	if kafkaAddr == "" || strings.Contains(kafkaAddr, ",") {
		t.Fatalf("KAFKA_ADVERTISED_LISTENERS=%q: want one PLAINTEXT listener", kafka.Environment["KAFKA_ADVERTISED_LISTENERS"])
	}
	if host, _, _ := net.SplitHostPort(kafkaAddr); host != "kafka" {
		t.Errorf("Kafka advertises %s; clients in the compose network reach it as kafka", kafkaAddr)
	}
	for _, name := range sailstreamServices(t, c) {
		s := c.Services[name]
		if u, ok := s.Environment["SAILSTREAM_MQTT_URL"]; ok {
			if u != mqttURL {
				t.Errorf("%s: SAILSTREAM_MQTT_URL=%q, want %q", name, u, mqttURL)
			}
			if s.DependsOn["mosquitto"] != "service_healthy" {
				t.Errorf("%s uses MQTT but does not wait for mosquitto to be healthy", name)
			}
		}
		if b, ok := s.Environment["SAILSTREAM_KAFKA_BROKERS"]; ok {
			if b != kafkaAddr {
				t.Errorf("%s: SAILSTREAM_KAFKA_BROKERS=%q, want %q", name, b, kafkaAddr)
			}
			if s.DependsOn["kafka"] != "service_healthy" {
				t.Errorf("%s uses Kafka but does not wait for kafka to be healthy", name)
			}
		}
	}

	for name, s := range c.Services {
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s has no restart policy", name)
		}
		for dep, cond := range s.DependsOn {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			case cond == "service_healthy" && (d.Healthcheck == nil || d.Healthcheck.Disable || len(d.Healthcheck.Test) == 0):
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case cond != "service_healthy" && cond != "service_started" && cond != "service_completed_successfully":
				t.Errorf("%s: depends_on %s: unknown condition %q", name, dep, cond)
			}
		}
		// Named volumes must be declared.
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
				continue
			}
			if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s uses volume %s, which compose.yaml does not declare", name, src)
			}
		}
	}
	if err := checkDependencyCycle(c); err != nil {
		t.Error(err)
	}

	for _, p := range []struct{ service, port string }{{"web", "8080"}, {"mosquitto", "1883"}, {"prometheus", "9090"}} {
		if !publishes(c.Services[p.service], p.port) {
			t.Errorf("%s does not publish port %s: %v", p.service, p.port, c.Services[p.service].Ports)
		}
	}

	// Mosquitto runs our configuration and keeps its data on a volume where
	// the configuration persists it.
	if !hasMount(mq, "./deploy/mosquitto/mosquitto.conf", "/mosquitto/config/mosquitto.conf") {
		t.Errorf("mosquitto does not mount ./deploy/mosquitto/mosquitto.conf at /mosquitto/config/mosquitto.conf: %v", mq.Volumes)
	}
	loc := strings.TrimSuffix(mosquittoOption(t, "persistence_location"), "/")
	if !mountsVolumeAt(mq, loc) {
		t.Errorf("mosquitto persists to %s, but no named volume is mounted there: %v", loc, mq.Volumes)
	}
	if logDirs := kafka.Environment["KAFKA_LOG_DIRS"]; logDirs == "" || !mountsVolumeAt(kafka, logDirs) {
		t.Errorf("kafka keeps its data in KAFKA_LOG_DIRS=%q, but no named volume is mounted there: %v", logDirs, kafka.Volumes)
	}
}

func mountsVolumeAt(s service, dst string) bool {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") && strings.TrimSuffix(parts[1], "/") == dst {
			return true
		}
	}
	return false
}

// publishes tells whether s publishes container port port on the host.
func publishes(s service, port string) bool {
	for _, p := range s.Ports {
		p = strings.TrimSuffix(p, "/tcp")
		parts := strings.Split(p, ":")
		if parts[len(parts)-1] == port {
			return true
		}
	}
	return false
}

func checkDependencyCycle(c composeFile) error {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("depends_on cycle: %s", strings.Join(append(path, n), " → "))
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range sortedKeys(c.Services[n].DependsOn) {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		return nil
	}
	for _, n := range sortedKeys(c.Services) {
		if err := visit(n, nil); err != nil {
			return err
		}
	}
	return nil
}

// TestKafkaSingleNode: the KRaft settings of one node that is broker and
// controller hang together.
func TestKafkaSingleNode(t *testing.T) {
	env := loadCompose(t).Services["kafka"].Environment
	want := map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	// The quorum is this node, on its CONTROLLER listener.
	var ctrlPort string
	for _, l := range strings.Split(env["KAFKA_LISTENERS"], ",") {
		if name, addr, ok := strings.Cut(l, "://"); ok && name == "CONTROLLER" {
			_, ctrlPort, _ = net.SplitHostPort(addr)
		}
	}
	if ctrlPort == "" {
		t.Fatalf("KAFKA_LISTENERS=%q has no CONTROLLER listener", env["KAFKA_LISTENERS"])
	}
	if got, want := env["KAFKA_CONTROLLER_QUORUM_VOTERS"], env["KAFKA_NODE_ID"]+"@kafka:"+ctrlPort; got != want {
		t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %q", got, want)
	}
	// A cluster id is 16 bytes in URL-safe base64 without padding.
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(env["CLUSTER_ID"]) {
		t.Errorf("CLUSTER_ID=%q is not a Kafka cluster id (22 characters of URL-safe base64)", env["CLUSTER_ID"])
	}
	for _, name := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		name, _, _ = strings.Cut(name, ":")
		if !strings.Contains(env["KAFKA_LISTENERS"], name+"://") {
			t.Errorf("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP names %s, which KAFKA_LISTENERS lacks", name)
		}
	}
}

// --- Dockerfile ----------------------------------------------------------------

type dockerStage struct {
	from  string
	name  string
	lines []string // instructions after FROM, continuation lines joined
}

func parseDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			st := dockerStage{}
			args := slices.DeleteFunc(f[1:], func(s string) bool { return strings.HasPrefix(s, "--") })
			st.from = args[0]
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				st.name = args[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if !strings.EqualFold(f[0], "ARG") {
				t.Fatalf("Dockerfile: %q before the first FROM", line)
			}
			return
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func (s dockerStage) has(instr, substr string) bool {
	for _, l := range s.lines {
		if f := strings.Fields(l); strings.EqualFold(f[0], instr) && strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// TestDockerfile: the three stages the image needs, and a final image that
// runs the binary as a user that is not root.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 3 {
		t.Fatalf("Dockerfile has %d stages, want web, build and the final image", len(stages))
	}
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}

	web, build, final := byName["web"], byName["build"], stages[len(stages)-1]
	if !strings.HasPrefix(web.from, "node:") {
		t.Errorf("stage web is FROM %q, want a node image", web.from)
	}
	if !web.has("RUN", "npm ci") || !web.has("RUN", "npm run build") {
		t.Errorf("stage web does not run npm ci and npm run build: %q", web.lines)
	}
	goVersion := goModVersion(t)
	if !strings.HasPrefix(build.from, "golang:"+goVersion) {
		t.Errorf("stage build is FROM %q, want golang:%s (go.mod says go %s)", build.from, goVersion, goVersion)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "./cmd/sailstream"} {
		if !build.has("RUN", want) {
			t.Errorf("stage build has no RUN with %q", want)
		}
	}
	if !build.has("COPY", "--from=web") || !build.has("COPY", "web/dist") {
		t.Errorf("stage build does not take web/dist from stage web: %q", build.lines)
	}
	if !strings.Contains(final.from, "distroless") && !strings.Contains(final.from, "slim") {
		t.Errorf("final image is FROM %q, want distroless or debian-slim", final.from)
	}
	var user, entrypoint string
	for _, l := range final.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final image runs as %q: want a user that is not root", user)
	}
	if !strings.Contains(entrypoint, "sailstream") {
		t.Errorf("final image ENTRYPOINT %s: want the sailstream binary", entrypoint)
	}

	// The files the stages copy by name exist, and .dockerignore keeps out
	// what must be rebuilt inside the image.
	for _, f := range []string{"go.mod", "go.sum", "web/package.json", "web/package-lock.json", "web/build.mjs", "web/src"} {
		if _, err := os.Stat(filepath.Join(repoRoot, f)); err != nil {
			t.Errorf("the Dockerfile copies %s: %v", f, err)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "web/node_modules", "web/dist", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// --- tools that validate the files when they are installed -------------------

// requireTool returns the path of a tool, or skips the test without it
// (fails when the run requires the services' tools, as `make test` does).
func requireTool(t *testing.T, name string, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SAILSTREAM_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s not found (%s): run `make deps`", name, why)
		}
		t.Skipf("%s not found (%s)", name, why)
	}
	return p
}

// TestPromtoolCheckConfig runs promtool on prometheus.yml, and on a broken
// copy to show that the check can fail.
func TestPromtoolCheckConfig(t *testing.T) {
	promtool := requireTool(t, "promtool", "Debian package prometheus")
	good, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config string
		ok     bool
	}{
		{"prometheus.yml", string(good), true},
		{"broken copy", strings.Replace(string(good), "scrape_interval: 15s", "scrape_interval: often", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "prometheus.yml")
			if err := os.WriteFile(p, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(promtool, "check", "config", p).CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("promtool check config: err %v, want ok=%v\n%s", err, tc.ok, out)
			}
		})
	}
}

// TestComposeConfig asks a Compose client to validate compose.yaml: `docker
// compose` (v2) when the plugin is installed, else `docker-compose` (v1,
// Debian's package). Neither needs a Docker engine for `config`.
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", "compose.yaml", "config", "-q")
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(p, "-f", "compose.yaml", "config", "-q")
	} else {
		t.Skip("no Compose client (docker compose or docker-compose) installed")
	}
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
