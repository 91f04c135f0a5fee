package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// stageBridge is the HeaderStage value of the DLQ records the bridge writes.
const stageBridge = "bridge"

// inbound is one MQTT message as the bridge saw it.
type inbound struct {
	topic      string
	payload    []byte
	receivedAt time.Time
}

// route decides where one MQTT message goes and builds its Kafka record.
// reason is "" for a record bound for the raw topic, else the
// telemetry.Reason* code of the DLQ record.
func (b *Bridge) route(in inbound) (rec *kgo.Record, reason string) {
	device, segment, err := parseTopic(b.cfg.TopicPrefix, in.topic)
	switch {
	case err != nil:
		return b.dlqRecord(in, segment, telemetry.ReasonBadTopic, err), telemetry.ReasonBadTopic
	case len(in.payload) > telemetry.MaxPayloadSize:
		err := fmt.Errorf("%w: %d bytes, limit %d", telemetry.ErrPayloadTooLarge, len(in.payload), telemetry.MaxPayloadSize)
		return b.dlqRecord(in, device, telemetry.ReasonPayloadTooLarge, err), telemetry.ReasonPayloadTooLarge
	}
	return &kgo.Record{
		Topic: b.cfg.RawTopic,
		Key:   []byte(device),
		Value: in.payload, // byte-exact: the bridge never decodes
		Headers: []kgo.RecordHeader{
			{Key: telemetry.HeaderMQTTTopic, Value: []byte(in.topic)},
			{Key: telemetry.HeaderFormat, Value: []byte(telemetry.FormatJSON)},
			{Key: telemetry.HeaderReceivedAt, Value: []byte(formatTime(in.receivedAt))},
			{Key: telemetry.HeaderBridgeID, Value: []byte(b.cfg.BridgeID)},
		},
	}, ""
}

// dlqRecord builds the telemetry.dlq record for a rejected message. A payload
// larger than telemetry.MaxPayloadSize is cut to that size (so that a 1 MiB
// payload cannot break Kafka's message size limit) and the record carries
// the original size and the SHA-256 of the whole payload instead.
func (b *Bridge) dlqRecord(in inbound, key, reason string, err error) *kgo.Record {
	rec := &kgo.Record{
		Topic: b.cfg.DLQTopic,
		Value: in.payload,
		Headers: []kgo.RecordHeader{
			{Key: telemetry.HeaderReason, Value: []byte(reason)},
			{Key: telemetry.HeaderError, Value: []byte(err.Error())},
			{Key: telemetry.HeaderStage, Value: []byte(stageBridge)},
			{Key: telemetry.HeaderMQTTTopic, Value: []byte(in.topic)},
			{Key: telemetry.HeaderReceivedAt, Value: []byte(formatTime(in.receivedAt))},
			{Key: telemetry.HeaderBridgeID, Value: []byte(b.cfg.BridgeID)},
		},
	}
	if key != "" {
		rec.Key = []byte(key)
	}
	if len(in.payload) > telemetry.MaxPayloadSize {
		sum := sha256.Sum256(in.payload)
		rec.Value = in.payload[:telemetry.MaxPayloadSize:telemetry.MaxPayloadSize]
		rec.Headers = append(rec.Headers,
			kgo.RecordHeader{Key: telemetry.HeaderOriginalSize, Value: []byte(strconv.Itoa(len(in.payload)))},
			kgo.RecordHeader{Key: telemetry.HeaderSHA256, Value: []byte(hex.EncodeToString(sum[:]))},
		)
	}
	return rec
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
