package telemetry

import (
	"time"
)

// Reading is one position report from one device, as the device made it.
type Reading struct {
	// Device is the tracker's id, [A-Za-z0-9._-]{1,64}.
	Device string `json:"device,omitempty"`
	// Seq is the device's own sequence number; with Device it names the
	// reading (MQTT QoS 1 redelivers, so the pair is what deduplicates).
	Seq uint64 `json:"seq"`
	// Time is the event time: when the device took the reading.
	Time time.Time `json:"time"`
	// Lat and Lon are WGS 84 degrees.
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
	// Fields holds optional numeric sensor values (battery, heel, ...).
	Fields map[string]float64 `json:"fields,omitempty"`
}

// Enriched is what the core produces for every accepted reading: the reading
// with the motion computed from the device's previous accepted reading.
type Enriched struct {
	Device string    `json:"device"`
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Lat    float64   `json:"lat"`
	Lon    float64   `json:"lon"`

	// DistanceM is the great-circle distance from the previous accepted
	// reading of the device, in metres (0 for its first reading).
	DistanceM float64 `json:"distance_m"`
	// SpeedMS and SpeedKn are the instantaneous speed over ground.
	SpeedMS float64 `json:"speed_ms"`
	SpeedKn float64 `json:"speed_kn"`
	// CourseDeg is the initial bearing from the previous reading, 0–360
	// clockwise from true north (0 when the device has not moved).
	CourseDeg float64 `json:"course_deg"`

	// ReceivedAt is when the bridge received the MQTT message; ProcessedAt
	// when the core produced this record. LatencyMS is their difference.
	ReceivedAt  time.Time `json:"received_at"`
	ProcessedAt time.Time `json:"processed_at"`
	LatencyMS   float64   `json:"latency_ms"`

	// UDF and UDFVersion name the logic that computed the motion.
	UDF        string `json:"udf"`
	UDFVersion string `json:"udf_version"`

	// Fields carries the reading's fields plus any a UDF added.
	Fields map[string]float64 `json:"fields,omitempty"`
}
