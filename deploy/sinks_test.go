package deploy

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
)

// The sinks' part of compose.yaml: TimescaleDB and Azurite, and the
// sailstream services that reach them.

// servicesWith returns the sailstream services that set the variable k,
// sorted by name.
func servicesWith(t *testing.T, c composeFile, k string) []string {
	t.Helper()
	var names []string
	for _, name := range sailstreamServices(t, c) {
		if _, ok := c.Services[name].Environment[k]; ok {
			names = append(names, name)
		}
	}
	return names
}

// servicesRunning returns the services that run `sailstream <sub>`.
func servicesRunning(t *testing.T, c composeFile, sub string) []string {
	t.Helper()
	var names []string
	for _, name := range sailstreamServices(t, c) {
		if subcommand(c.Services[name]) == sub {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatalf("no service runs `sailstream %s`", sub)
	}
	return names
}

// option returns the value following --name in args, or "".
func option(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// connectionString splits an Azure Storage connection string into its
// key=value pairs.
func connectionString(s string) map[string]string {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// healthcheckCommand returns the command of a CMD-form healthcheck.
func healthcheckCommand(t *testing.T, name string, s service) []string {
	t.Helper()
	if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
		t.Fatalf("%s: want a healthcheck test [\"CMD\", ...] (the image's own tool, no shell): %v", name, s.Healthcheck)
	}
	return s.Healthcheck.Test[1:]
}

var timescaleImageRe = regexp.MustCompile(`^timescale/timescaledb:\d+\.\d+\.\d+-pg\d+$`)

// TestComposeTimescale: TimescaleDB keeps its data on a volume, says it is
// healthy only when it takes TCP connections, and every service with
// SAILSTREAM_PG reaches it with the user, password and database the image
// creates, and waits for it.
func TestComposeTimescale(t *testing.T) {
	c := loadCompose(t)
	db, ok := c.Services["timescaledb"]
	if !ok {
		t.Fatal("no timescaledb service")
	}
	if !timescaleImageRe.MatchString(db.Image) {
		t.Errorf("timescaledb image %q: want a pinned timescale/timescaledb:X.Y.Z-pgNN (not -oss: the sink uses Timescale License features)", db.Image)
	}
	// The image's PGDATA.
	if !mountsVolumeAt(db, "/var/lib/postgresql/data") {
		t.Errorf("timescaledb: no named volume at /var/lib/postgresql/data: %v", db.Volumes)
	}
	hc := healthcheckCommand(t, "timescaledb", db)
	if hc[0] != "pg_isready" {
		t.Errorf("timescaledb healthcheck runs %q, want pg_isready", hc[0])
	}
	// The image's first start runs a temporary server on the unix socket
	// only: a healthcheck over the socket would pass before the real one.
	if h := option(hc, "-h"); h != "127.0.0.1" && h != "localhost" {
		t.Errorf("timescaledb healthcheck: pg_isready -h %q, want 127.0.0.1 (TCP)", h)
	}

	users := servicesWith(t, c, "SAILSTREAM_PG")
	for _, want := range []string{"web", "sink-timescale"} {
		if !slices.Contains(users, want) {
			t.Errorf("%s does not set SAILSTREAM_PG", want)
		}
	}
	for _, name := range users {
		s := c.Services[name]
		u, err := url.Parse(s.Environment["SAILSTREAM_PG"])
		if err != nil {
			t.Errorf("%s: SAILSTREAM_PG: %v", name, err)
			continue
		}
		pass, _ := u.User.Password()
		port := u.Port()
		if port == "" {
			port = "5432"
		}
		got := []string{u.Scheme, u.Hostname(), port, u.User.Username(), pass, strings.TrimPrefix(u.Path, "/")}
		want := []string{"postgres", "timescaledb", "5432", db.Environment["POSTGRES_USER"], db.Environment["POSTGRES_PASSWORD"], db.Environment["POSTGRES_DB"]}
		if !slices.Equal(got, want) {
			t.Errorf("%s: SAILSTREAM_PG is scheme, host, port, user, password, database %q; timescaledb creates %q", name, got, want)
		}
		if slices.Contains(want, "") {
			t.Errorf("timescaledb: set POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB: %v", db.Environment)
		}
		// The image's server has no TLS: say so rather than try first.
		if m := u.Query().Get("sslmode"); m != "disable" {
			t.Errorf("%s: SAILSTREAM_PG sslmode=%q, want disable (the container's server has no TLS)", name, m)
		}
		if s.DependsOn["timescaledb"] != "service_healthy" {
			t.Errorf("%s uses TimescaleDB but does not wait for timescaledb to be healthy", name)
		}
	}
}

// TestComposeAzurite: Azurite runs its blob service only, on all
// interfaces, with its data on a volume and the tag of the npm package the
// tests run; sink-blob reaches it with the well-known development account
// and key, and waits for it.
func TestComposeAzurite(t *testing.T) {
	c := loadCompose(t)
	az, ok := c.Services["azurite"]
	if !ok {
		t.Fatal("no azurite service")
	}
	image, tag, _ := strings.Cut(az.Image, ":")
	if image != "mcr.microsoft.com/azure-storage/azurite" {
		t.Errorf("azurite image %q, want mcr.microsoft.com/azure-storage/azurite", az.Image)
	}
	if v := azuritePackageVersion(t); tag != v {
		t.Errorf("azurite image tag %q; the tests run the npm package azurite %s (internal/testenv/azurite/package.json): keep them in step", tag, v)
	}
	args := []string(az.Command)
	if len(args) == 0 || args[0] != "azurite-blob" {
		t.Fatalf("azurite command %q: want azurite-blob (the blob service only)", args)
	}
	if h := option(args, "--blobHost"); h != "0.0.0.0" {
		t.Errorf("azurite --blobHost %q: want 0.0.0.0, or other containers cannot reach it", h)
	}
	for _, flag := range []string{"--skipApiVersionCheck", "--disableTelemetry"} {
		if !slices.Contains(args, flag) {
			t.Errorf("azurite command lacks %s: %q", flag, args)
		}
	}
	loc := option(args, "--location")
	if loc == "" || !mountsVolumeAt(az, strings.TrimSuffix(loc, "/")) {
		t.Errorf("azurite keeps its data in --location %q, but no named volume is mounted there: %v", loc, az.Volumes)
	}
	blobPort := option(args, "--blobPort")
	if blobPort == "" {
		blobPort = "10000"
	}

	users := servicesWith(t, c, "SAILSTREAM_AZURE_CONNECTION_STRING")
	if !slices.Contains(users, "sink-blob") {
		t.Errorf("sink-blob does not set SAILSTREAM_AZURE_CONNECTION_STRING")
	}
	for _, name := range users {
		s := c.Services[name]
		kv := connectionString(s.Environment["SAILSTREAM_AZURE_CONNECTION_STRING"])
		want := map[string]string{
			"AccountName":  testenv.AzuriteAccount,
			"AccountKey":   testenv.AzuriteKey,
			"BlobEndpoint": "http://azurite:" + blobPort + "/" + testenv.AzuriteAccount,
		}
		for k, v := range want {
			if kv[k] != v {
				t.Errorf("%s: connection string has %s=%q, want %q", name, k, kv[k], v)
			}
		}
		if s.DependsOn["azurite"] != "service_healthy" {
			t.Errorf("%s uses Azurite but does not wait for azurite to be healthy", name)
		}
	}
}

// azuritePackageVersion returns the azurite version the tests install.
func azuritePackageVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "internal", "testenv", "azurite", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("internal/testenv/azurite/package.json: %v", err)
	}
	v := pkg.Dependencies["azurite"]
	if v == "" {
		t.Fatal("internal/testenv/azurite/package.json does not depend on azurite")
	}
	return v
}

// TestAzuriteAcceptsTheComposeOptions: every option of the azurite
// service's command is one that azurite-blob of the pinned version
// documents (it ignores unknown ones silently).
func TestAzuriteAcceptsTheComposeOptions(t *testing.T) {
	main, err := testenv.AzuriteMain()
	if err != nil {
		if os.Getenv(testenv.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	node := requireTool(t, "node", "Debian package nodejs; runs Azurite")
	out, err := exec.Command(node, main, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("azurite-blob --help: %v\n%s", err, out)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([A-Za-z]+)`).FindAllStringSubmatch(string(out), -1) {
		documented[m[1]] = true
	}
	if len(documented) == 0 {
		t.Fatalf("azurite-blob --help documents no option:\n%s", out)
	}
	for _, a := range loadCompose(t).Services["azurite"].Command[1:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && !documented[name] {
			t.Errorf("azurite command: %s is not an option of azurite-blob %s (see its --help)", a, azuritePackageVersion(t))
		}
	}
}

// TestComposeCoreStaticMembership: core runs exactly-once with a stable
// instance id, so a restarted container gets its partitions back at once
// and fences its predecessor's transaction; no two services share an id.
func TestComposeCoreStaticMembership(t *testing.T) {
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	defaults := flagDefaults(help(t, bin, "core"))
	ids := map[string]string{}
	for _, name := range servicesRunning(t, c, "core") {
		env := c.Services[name].Environment
		guarantee, ok := env["SAILSTREAM_GUARANTEE"]
		if !ok {
			guarantee = defaults["guarantee"]
		}
		if guarantee != "exactly-once" {
			t.Errorf("%s runs --guarantee=%q, want exactly-once", name, guarantee)
		}
		id := env["SAILSTREAM_INSTANCE_ID"]
		if id == "" {
			t.Errorf("%s: SAILSTREAM_INSTANCE_ID is not set: a restarted container waits for a rebalance", name)
			continue
		}
		if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share SAILSTREAM_INSTANCE_ID %q: the group fences one of them", other, name, id)
		}
		ids[id] = name
	}
}

// flagDefaults returns flag → default value of a subcommand's --help.
func flagDefaults(help string) map[string]string {
	d := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)=("[^"]*"|[^ \n]+)`).FindAllStringSubmatch(help, -1) {
		d[m[1]] = strings.Trim(m[2], `"`)
	}
	return d
}

// TestComposeConsumerGroupsDiffer: the components that consume Kafka in a
// group (core and the two sinks) each have a group of their own. A shared
// one would split the partitions between them: each would see only part of
// the readings.
func TestComposeConsumerGroupsDiffer(t *testing.T) {
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	bySub := map[string]string{} // group → subcommand
	var consumers []string       // subcommands in a group
	for _, name := range sailstreamServices(t, c) {
		s := c.Services[name]
		sub := subcommand(s)
		h := help(t, bin, sub)
		if !strings.Contains(h, "($SAILSTREAM_GROUP)") {
			continue
		}
		group, ok := s.Environment["SAILSTREAM_GROUP"]
		if !ok {
			group = flagDefaults(h)["group"]
		}
		if group == "" {
			t.Errorf("%s: no consumer group", name)
			continue
		}
		if other, dup := bySub[group]; dup && other != sub {
			t.Errorf("%s (sailstream %s) shares consumer group %q with sailstream %s", name, sub, group, other)
		}
		bySub[group] = sub
		consumers = append(consumers, sub)
	}
	for _, want := range []string{"core", "sink timescale", "sink blob"} {
		if !slices.Contains(consumers, want) {
			t.Errorf("no service runs `sailstream %s` in a consumer group", want)
		}
	}
}

// TestComposeRunCommandsInComments: the `docker compose run --rm SERVICE
// ...` lines compose.yaml's comments suggest run a real subcommand, and
// every variable of that service saying where the archive is (or where
// Kafka is) is a flag of that subcommand too, so it reads what the service
// writes.
func TestComposeRunCommandsInComments(t *testing.T) {
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	cmds := subcommands(t, bin)
	b, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	runs := regexp.MustCompile(`(?m)^#.*docker compose run --rm ([a-z0-9-]+) (.*)$`).FindAllStringSubmatch(string(b), -1)
	if len(runs) == 0 {
		t.Skip("compose.yaml suggests no `docker compose run`")
	}
	for _, r := range runs {
		name, args := r[1], strings.Fields(r[2])
		s, ok := c.Services[name]
		if !ok || !isSailstream(s) {
			t.Errorf("`docker compose run --rm %s`: %s is not a sailstream service", name, name)
			continue
		}
		var words []string
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				break
			}
			words = append(words, a)
		}
		sub := strings.Join(words, " ")
		if _, ok := cmds[sub]; !ok {
			t.Errorf("`docker compose run --rm %s %s`: %q is not a subcommand", name, r[2], sub)
			continue
		}
		known := envVars(t, bin, sub)
		for k := range s.Environment {
			where := strings.HasPrefix(k, "SAILSTREAM_AZURE_") || k == "SAILSTREAM_ARCHIVE_DIR" ||
				k == "SAILSTREAM_CONTAINER" || k == "SAILSTREAM_KAFKA_BROKERS"
			if where && !known[k] {
				t.Errorf("`docker compose run --rm %s %s`: %s of %s is not a flag of `sailstream %s`, which would not see it", name, r[2], k, name, sub)
			}
		}
	}
}

// blobEndpointAddr returns the host:port of a connection string's
// BlobEndpoint.
func blobEndpointAddr(t *testing.T, conn string) string {
	t.Helper()
	u, err := url.Parse(connectionString(conn)["BlobEndpoint"])
	if err != nil || u.Host == "" {
		t.Fatalf("connection string %q: no BlobEndpoint URL (%v)", conn, err)
	}
	return u.Host
}

// closedPort returns a 127.0.0.1 port that nothing listens on a moment
// later.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

// TestIntegrationComposeHealthchecks runs the healthcheck commands of
// timescaledb and azurite (pg_isready and node, as in their images) with
// the container's port swapped for the test bed's service: they pass
// against the real service and fail where nothing listens.
func TestIntegrationComposeHealthchecks(t *testing.T) {
	c := loadCompose(t)
	for _, tc := range []struct {
		service, port, tool, why string
		addr                     func(t *testing.T) string
	}{
		{"timescaledb", "5432", "pg_isready", "Debian package postgresql-client", func(t *testing.T) string {
			u, err := url.Parse(testenv.PostgresURL(t))
			if err != nil {
				t.Fatal(err)
			}
			return u.Host
		}},
		{"azurite", "10000", "node", "Debian package nodejs", func(t *testing.T) string {
			return blobEndpointAddr(t, testenv.AzuriteConnectionString(t))
		}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			t.Parallel()
			hc := healthcheckCommand(t, tc.service, c.Services[tc.service])
			if hc[0] != tc.tool {
				t.Fatalf("healthcheck runs %q, want %s", hc[0], tc.tool)
			}
			tool := requireTool(t, tc.tool, tc.why)
			addr := tc.addr(t)
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatal(err)
			}
			if host != "127.0.0.1" {
				t.Fatalf("the test bed's %s is on %s, not 127.0.0.1", tc.service, addr)
			}
			run := func(port string) ([]byte, error) {
				args := make([]string, len(hc)-1)
				swapped := false
				for i, a := range hc[1:] {
					if strings.Contains(a, tc.port) {
						a, swapped = strings.ReplaceAll(a, tc.port, port), true
					}
					args[i] = a
				}
				if !swapped {
					t.Fatalf("healthcheck %q does not name port %s", hc, tc.port)
				}
				return exec.Command(tool, args...).CombinedOutput()
			}
			if out, err := run(port); err != nil {
				t.Errorf("healthcheck against the running %s: %v\n%s", tc.service, err, out)
			}
			if out, err := run(closedPort(t)); err == nil {
				t.Errorf("healthcheck passed where nothing listens:\n%s", out)
			}
		})
	}
}
