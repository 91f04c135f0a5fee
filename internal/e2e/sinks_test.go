package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/bridge"
	"github.com/sailstream/sailstream/core"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/sinks/blob"
	"github.com/sailstream/sailstream/sinks/timescale"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/web"
)

// TestIntegrationKeepEveryReading is issue 5's promise end to end: a
// fixed-seed fleet run goes through the real Mosquitto, the bridge, the real
// Kafka and an exactly-once core while the Timescale sink writes the enriched
// topic into a fresh PostgreSQL database and the archiver writes the raw topic
// into Azurite. Every enriched reading must be in PostgreSQL once with the
// same values, every raw record in exactly one archive object byte for byte,
// the web server must serve the tracks from PostgreSQL, and a replay of the
// archive through a second core group must give the same enriched readings.
func TestIntegrationKeepEveryReading(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	mqttURL := testenv.MQTTURL(t)
	dbURL := testenv.PostgresDatabase(t, testenv.PostgresURL(t))
	azurite := testenv.AzuriteConnectionString(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := testenv.Unique("keep")
	live := coreTopics(id + ".live")
	prefix := "sailstream-test/" + id + "/devices"
	log := testLogger(t)

	archive, err := blob.NewAzureStore(blob.AzureConfig{ConnectionString: azurite, Container: testenv.Unique("e2e-")})
	must(t, err)
	tracks, err := timescale.OpenStore(dbURL, timescale.StoreOptions{})
	must(t, err)
	defer tracks.Close()

	webSrv, err := web.New(web.Config{Addr: "127.0.0.1:0", KafkaBrokers: brokers, EnrichedTopic: live.Enriched, Tracks: tracks, Logger: log.With("component", "web")})
	must(t, err)
	procA := newCore(t, brokers, id+"-core", live, log.With("component", "core"))
	br, err := bridge.New(bridge.Config{
		MQTTURL: mqttURL, ClientID: id + "-bridge", TopicPrefix: prefix, KafkaBrokers: brokers,
		RawTopic: live.Raw, DLQTopic: live.DLQ, BridgeID: "e2e", Partitions: 3, Logger: log.With("component", "bridge"),
	})
	must(t, err)
	sink, err := timescale.New(timescale.Config{
		DatabaseURL: dbURL, KafkaBrokers: brokers, Group: id + "-timescale", EnrichedTopic: live.Enriched,
		Partitions: 3, BatchSize: 500, BatchTimeout: 200 * time.Millisecond, Logger: log.With("component", "timescale"),
	})
	must(t, err)
	// Small batches, so the archive has many objects per partition.
	archiver, err := blob.New(blob.Config{
		KafkaBrokers: brokers, Group: id + "-blob", Topic: live.Raw, Store: archive,
		BatchSize: 150, BatchTimeout: 500 * time.Millisecond, Logger: log.With("component", "blob"),
	})
	must(t, err)

	stop := runAll(t, ctx, map[string]func(context.Context) error{
		"web": webSrv.Run, "core": procA.Run, "bridge": br.Run, "timescale": sink.Run, "blob": archiver.Run,
	})
	defer stop()
	for _, ready := range []<-chan struct{}{webSrv.Ready(), procA.Ready(), br.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			t.Fatal("components did not become ready")
		}
	}

	// The fleet run: fixed seed, 5% late, with heartbeats keeping every
	// partition's watermark moving so that no partition falls idle in the
	// middle: the core's decisions then depend only on each partition's
	// record order, which the archive and the replay keep.
	const n = 1200
	plan, fleet := newFleet(t, mqttURL, id, prefix, 5, n, log)

	// A payload that is not UTF-8 (nor JSON): the core sends it to the DLQ,
	// but the raw topic and so the archive must keep it byte for byte.
	pub := connectMQTT(t, mqttURL, id+"-bin")
	binary := []byte{'{', 0xff, 0xfe, 0x00, 0x80, '}'}
	if tok := pub.Publish(prefix+"/binary-1/telemetry", 1, false, binary); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing a binary payload: %v", tok.Error())
	}
	pub.Disconnect(100)

	nHB := runWithHeartbeats(t, ctx, fleet, mqttURL, id, prefix)

	onTime, boats := 0, map[string]bool{}
	for _, e := range plan {
		boats[e.Reading.Device] = true
		if !e.Late {
			onTime++
		}
	}

	raw := consumeN(t, ctx, brokers, live.Raw, n+nHB+1)
	if len(raw) != n+nHB+1 {
		t.Fatalf("%s has %d records, want %d (fleet, heartbeats and the binary payload)", live.Raw, len(raw), n+nHB+1)
	}
	enrichedRecs := consumeN(t, ctx, brokers, live.Enriched, onTime+nHB)
	enriched := decodeEnriched(t, enrichedRecs)
	if t.Failed() {
		t.FailNow()
	}

	// PostgreSQL: every enriched reading once, with the same values.
	checkPostgres(t, ctx, dbURL, enriched)

	// The archive: every raw record in exactly one object, byte for byte.
	checkArchive(t, ctx, archive, live.Raw, raw)

	// The web server answers track queries from PostgreSQL.
	checkTracks(t, webSrv.Addr(), enriched, append(slices.Sorted(maps.Keys(boats)), hbPrefix+"1"))

	// Replay the archive into a second raw topic and run a second core
	// group on it, with its own output and state topics.
	replayed := coreTopics(id + ".replay")
	from := raw[0].Timestamp
	for _, r := range raw {
		if r.Timestamp.Before(from) {
			from = r.Timestamp
		}
	}
	sum, err := blob.Replay(ctx, blob.ReplayConfig{
		ReadConfig:   blob.ReadConfig{Store: archive, Topic: live.Raw, From: from.Add(-time.Minute), To: time.Now().Add(time.Minute)},
		KafkaBrokers: brokers, Partitions: 3, Target: replayed.Raw, Logger: log.With("component", "replay"),
	})
	must(t, err)
	if sum.Records != len(raw) || sum.Duplicates != 0 || sum.Filtered != 0 {
		t.Fatalf("replay: %d records (%d duplicates, %d filtered), want %d and none", sum.Records, sum.Duplicates, sum.Filtered, len(raw))
	}
	procB := newCore(t, brokers, id+"-replay-core", replayed, log.With("component", "core-replay"))
	stopB := runAll(t, ctx, map[string]func(context.Context) error{"core-replay": procB.Run})
	defer stopB()
	checkReplayed(t, raw, consumeN(t, ctx, brokers, replayed.Raw, len(raw)))
	again := decodeEnriched(t, consumeN(t, ctx, brokers, replayed.Enriched, len(enriched)))
	checkSameStream(t, enriched, again)
	t.Logf("kept %d raw records and %d enriched readings (%d fleet readings, %d heartbeats); replay gave the same stream",
		len(raw), len(enriched), n, nHB)
}

func coreTopics(p string) core.Topics {
	return core.Topics{Raw: p + ".raw", Enriched: p + ".enriched", Late: p + ".late", DLQ: p + ".dlq",
		Shadow: p + ".shadow", Registry: p + ".udf", State: p + ".state"}
}

// newCore returns an exactly-once core (the default guarantee) with the
// reorder bound of TestIntegrationPipeline.
func newCore(t *testing.T, brokers []string, group string, topics core.Topics, log *slog.Logger) *core.Processor {
	t.Helper()
	p, err := core.New(core.Config{KafkaBrokers: brokers, Group: group, Topics: topics, Partitions: 3,
		MaxOutOfOrder: new(2 * time.Second), Logger: log})
	must(t, err)
	return p
}

// runAll runs each component until the returned stop is called (or ctx
// ends); a component whose Run fails fails the test.
func runAll(t *testing.T, ctx context.Context, runs map[string]func(context.Context) error) (stop func()) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for name, run := range runs {
		wg.Go(func() {
			if err := run(runCtx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	return sync.OnceFunc(func() { cancel(); wg.Wait() })
}

// decodeEnriched decodes enriched records, failing on a record that is not
// one or whose key is not its device.
func decodeEnriched(t *testing.T, recs []*kgo.Record) []telemetry.Enriched {
	t.Helper()
	out := make([]telemetry.Enriched, 0, len(recs))
	for _, r := range recs {
		var e telemetry.Enriched
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Errorf("%s/%d/%d is not an enriched reading: %v", r.Topic, r.Partition, r.Offset, err)
			continue
		}
		if string(r.Key) != e.Device {
			t.Errorf("enriched %s/%d has key %q", e.Device, e.Seq, r.Key)
		}
		out = append(out, e)
	}
	return out
}

// asStored is e as PostgreSQL gives it back: times in UTC at microsecond
// precision (pgx truncates the nanoseconds).
func asStored(e telemetry.Enriched) telemetry.Enriched {
	us := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	e.Time, e.ReceivedAt, e.ProcessedAt = us(e.Time), us(e.ReceivedAt), us(e.ProcessedAt)
	return e
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

// checkPostgres waits until the readings table holds as many rows as want,
// then checks it holds each reading of want exactly once with its values.
func checkPostgres(t *testing.T, ctx context.Context, dbURL string, want []telemetry.Enriched) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	must(t, err)
	defer conn.Close(context.Background())
	var rows int
	for deadline := time.Now().Add(60 * time.Second); ; {
		must(t, conn.QueryRow(ctx, `SELECT count(*) FROM readings`).Scan(&rows))
		if rows >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A moment more, so a duplicate written late would still be seen.
	time.Sleep(time.Second)
	res, err := conn.Query(ctx, `SELECT device_id, seq, event_time, lat, lon, distance_m, speed_ms, speed_kn,
		course_deg, received_at, processed_at, latency_ms, udf, udf_version, fields FROM readings`)
	must(t, err)
	got, err := pgx.CollectRows(res, func(row pgx.CollectableRow) (telemetry.Enriched, error) {
		var e telemetry.Enriched
		err := row.Scan(&e.Device, &e.Seq, &e.Time, &e.Lat, &e.Lon, &e.DistanceM, &e.SpeedMS, &e.SpeedKn,
			&e.CourseDeg, &e.ReceivedAt, &e.ProcessedAt, &e.LatencyMS, &e.UDF, &e.UDFVersion, &e.Fields)
		return asStored(e), err
	})
	must(t, err)
	inDB := map[key][]telemetry.Enriched{}
	for _, e := range got {
		inDB[key{e.Device, e.Seq}] = append(inDB[key{e.Device, e.Seq}], e)
	}
	for _, w := range want {
		rs := inDB[key{w.Device, w.Seq}]
		if len(rs) != 1 {
			t.Errorf("reading %s/%d is in PostgreSQL %d times, want once", w.Device, w.Seq, len(rs))
			continue
		}
		if a, b := jsonOf(t, asStored(w)), jsonOf(t, rs[0]); a != b {
			t.Errorf("reading %s/%d differs in PostgreSQL:\nenriched %s\nstored   %s", w.Device, w.Seq, a, b)
		}
	}
	if len(got) != len(want) {
		t.Errorf("readings has %d rows, want %d (one per enriched reading)", len(got), len(want))
	}
}

// checkArchive waits until every record of raw (all of topic) is in an
// archive object, then checks each is in exactly one, byte for byte.
func checkArchive(t *testing.T, ctx context.Context, store blob.Store, topic string, raw []*kgo.Record) {
	t.Helper()
	type at struct {
		partition int32
		offset    int64
	}
	objects := map[string][]blob.Record{} // decoded so far, by name
	var archived map[at][]blob.Record
	var missing int
	for deadline := time.Now().Add(60 * time.Second); ; {
		names, err := store.List(ctx, blob.Prefix+"/")
		must(t, err)
		archived = map[at][]blob.Record{}
		for _, name := range names {
			recs, ok := objects[name]
			if !ok {
				data, err := store.Get(ctx, name)
				must(t, err)
				recs, err = blob.DecodeObject(data)
				must(t, err)
				objects[name] = recs
			}
			for _, r := range recs {
				archived[at{r.Partition, r.Offset}] = append(archived[at{r.Partition, r.Offset}], r)
			}
		}
		missing = 0
		for _, r := range raw {
			if len(archived[at{r.Partition, r.Offset}]) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if missing != 0 {
		t.Errorf("%d of %d raw records are in no archive object after 60s", missing, len(raw))
	}
	for _, r := range raw {
		copies := archived[at{r.Partition, r.Offset}]
		if len(copies) > 1 {
			t.Errorf("raw record %d/%d is in %d archive objects, want one", r.Partition, r.Offset, len(copies))
		}
		if len(copies) == 0 {
			continue
		}
		a := copies[0]
		if a.Topic != topic || !bytes.Equal(a.Key, r.Key) || !bytes.Equal(a.Value, r.Value) ||
			!a.Timestamp.Equal(r.Timestamp) || !reflect.DeepEqual(a.Headers, r.Headers) {
			t.Errorf("raw record %d/%d differs in the archive:\nkafka   %q %q %v %v\narchive %q %q %v %v (topic %s)",
				r.Partition, r.Offset, r.Key, r.Value, r.Timestamp, r.Headers, a.Key, a.Value, a.Timestamp, a.Headers, a.Topic)
		}
	}
	if len(archived) != len(raw) {
		t.Errorf("the archive holds %d offsets, the raw topic %d records", len(archived), len(raw))
	}
	t.Logf("archive: %d objects for %d raw records", len(objects), len(raw))
}

// checkTracks asks the web server for each device's track over the run and
// checks it is the device's enriched readings in time order, as stored.
func checkTracks(t *testing.T, addr string, enriched []telemetry.Enriched, devices []string) {
	t.Helper()
	byDevice := map[string][]telemetry.Enriched{}
	from, to := enriched[0].Time, enriched[0].Time
	for _, e := range enriched {
		byDevice[e.Device] = append(byDevice[e.Device], asStored(e))
		if e.Time.Before(from) {
			from = e.Time
		}
		if e.Time.After(to) {
			to = e.Time
		}
	}
	q := url.Values{"from": {from.Add(-time.Second).Format(time.RFC3339Nano)}, "to": {to.Add(time.Second).Format(time.RFC3339Nano)}}
	for _, dev := range devices {
		want := byDevice[dev]
		if len(want) == 0 {
			t.Errorf("device %s has no enriched reading", dev)
			continue
		}
		slices.SortFunc(want, func(a, b telemetry.Enriched) int { return a.Time.Compare(b.Time) })
		resp, err := http.Get("http://" + addr + "/api/devices/" + dev + "/track?" + q.Encode())
		must(t, err)
		var tr web.Track
		err = json.NewDecoder(resp.Body).Decode(&tr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Errorf("GET track of %s: %s, %v", dev, resp.Status, err)
			continue
		}
		if tr.Device != dev || len(tr.Points) != len(want) {
			t.Errorf("track of %s: device %q, %d points, want %d", dev, tr.Device, len(tr.Points), len(want))
			continue
		}
		for i, p := range tr.Points {
			if i > 0 && !p.Time.After(tr.Points[i-1].Time) {
				t.Errorf("track of %s: point %d at %v is not after point %d at %v", dev, i, p.Time, i-1, tr.Points[i-1].Time)
				break
			}
			if a, b := jsonOf(t, want[i]), jsonOf(t, p); a != b {
				t.Errorf("track of %s: point %d is\n%s\nwant\n%s", dev, i, b, a)
				break
			}
		}
	}
}

// checkReplayed checks that the replayed topic holds each raw record once,
// on the same partition (the second core's decisions depend on it), with
// key, value and headers unchanged plus the replayed_from header.
func checkReplayed(t *testing.T, raw, replayed []*kgo.Record) {
	t.Helper()
	orig := map[string]*kgo.Record{}
	for _, r := range raw {
		orig[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = r
	}
	seen := map[string]bool{}
	for _, r := range replayed {
		hs := r.Headers
		if len(hs) == 0 || hs[len(hs)-1].Key != blob.HeaderReplayedFrom {
			t.Errorf("replayed record %d/%d has no %s header last: %v", r.Partition, r.Offset, blob.HeaderReplayedFrom, hs)
			continue
		}
		from := string(hs[len(hs)-1].Value)
		o, ok := orig[from]
		switch {
		case !ok:
			t.Errorf("replayed record %d/%d says it comes from %q, not a raw record", r.Partition, r.Offset, from)
		case seen[from]:
			t.Errorf("raw record %s replayed twice", from)
		case r.Partition != o.Partition || !bytes.Equal(r.Key, o.Key) || !bytes.Equal(r.Value, o.Value) || !reflect.DeepEqual(hs[:len(hs)-1], o.Headers):
			t.Errorf("raw record %s replayed as %d/%d with key %q value %q headers %v, want partition %d key %q value %q headers %v",
				from, r.Partition, r.Offset, r.Key, r.Value, hs, o.Partition, o.Key, o.Value, o.Headers)
		}
		seen[from] = true
	}
	if len(seen) != len(raw) || len(replayed) != len(raw) {
		t.Errorf("replayed topic has %d records from %d raw records, want all %d once", len(replayed), len(seen), len(raw))
	}
}

// checkSameStream checks the replayed run's enriched readings against the
// live run's: the same readings, each device's in the same order, equal in
// every field but processed_at and latency_ms. Those two are processing
// time: when the second core produced the record, and that minus
// received_at. received_at itself must be equal: it is the bridge's
// receive time, carried in the raw record's received_at header, which the
// archive and the replay keep byte for byte.
func checkSameStream(t *testing.T, live, replayed []telemetry.Enriched) {
	t.Helper()
	perDevice := func(es []telemetry.Enriched) map[string][]string {
		out := map[string][]string{}
		for _, e := range es {
			if e.ProcessedAt.IsZero() {
				t.Errorf("enriched %s/%d has no processed_at", e.Device, e.Seq)
			}
			e.ProcessedAt, e.LatencyMS = time.Time{}, 0
			out[e.Device] = append(out[e.Device], jsonOf(t, e))
		}
		return out
	}
	a, b := perDevice(live), perDevice(replayed)
	if len(live) != len(replayed) {
		t.Errorf("live run enriched %d readings, the replay %d", len(live), len(replayed))
	}
	for dev, as := range a {
		bs := b[dev]
		for i := range max(len(as), len(bs)) {
			switch {
			case i >= len(bs):
				t.Errorf("%s: live reading %d missing from the replay: %s", dev, i, as[i])
			case i >= len(as):
				t.Errorf("%s: replay has an extra reading %d: %s", dev, i, bs[i])
			case as[i] != bs[i]:
				t.Errorf("%s: reading %d differs:\nlive   %s\nreplay %s", dev, i, as[i], bs[i])
			default:
				continue
			}
			break
		}
	}
	for dev := range b {
		if _, ok := a[dev]; !ok {
			t.Errorf("replay enriched readings of %s, the live run none", dev)
		}
	}
}
