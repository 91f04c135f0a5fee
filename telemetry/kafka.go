package telemetry

// Default Kafka topic names (every component lets them be configured).
const (
	TopicRaw      = "telemetry.raw"
	TopicEnriched = "telemetry.enriched"
	TopicLate     = "telemetry.late"
	TopicDLQ      = "telemetry.dlq"
	// TopicShadow receives the comparison of a shadow UDF's outputs with
	// the live version's (never read by the map).
	TopicShadow = "telemetry.shadow"
)

// Kafka record header keys shared by the bridge, the core and the sinks.
const (
	// HeaderMQTTTopic is the MQTT topic the payload was published on.
	HeaderMQTTTopic = "mqtt_topic"
	// HeaderFormat is the payload's wire format (FormatJSON, ...).
	HeaderFormat = "format"
	// HeaderReceivedAt is when the bridge received the message, RFC 3339
	// with nanoseconds, UTC.
	HeaderReceivedAt = "received_at"
	// HeaderBridgeID names the bridge instance that produced the record.
	HeaderBridgeID = "bridge_id"
	// HeaderReason is a short machine-readable reason code on telemetry.dlq
	// and telemetry.late records (see the Reason* constants).
	HeaderReason = "reason"
	// HeaderError is the human-readable error on telemetry.dlq and
	// telemetry.late records.
	HeaderError = "error"
	// HeaderStage names the component that rejected a record ("bridge",
	// "core").
	HeaderStage = "stage"
	// HeaderOriginalSize is the payload's size in bytes when the DLQ record
	// holds only a prefix of it; HeaderSHA256 is the hex SHA-256 of the
	// whole original payload.
	HeaderOriginalSize = "original_size"
	HeaderSHA256       = "sha256"
	// HeaderLateBy is how far behind the watermark a late reading was, as a
	// Go duration string.
	HeaderLateBy = "late_by"
	// HeaderUDF and HeaderUDFVersion name the UDF (and its version) that
	// failed on a reading sent to telemetry.dlq.
	HeaderUDF        = "udf"
	HeaderUDFVersion = "udf_version"
)

// FormatJSON is the native JSON wire format.
const FormatJSON = "json"
