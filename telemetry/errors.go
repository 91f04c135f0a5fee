package telemetry

import (
	"errors"
)

// Errors returned by Decode and Validate. Each wraps into a more specific
// message; use errors.Is to classify and Reason to get the short code that
// travels in the HeaderReason of a DLQ record and labels metrics.
var (
	ErrPayloadTooLarge = errors.New("payload too large")
	ErrMalformed       = errors.New("malformed payload")
	ErrInvalidDevice   = errors.New("invalid device id")
	ErrDeviceMismatch  = errors.New("device id in payload does not match the topic")
	ErrInvalidPosition = errors.New("invalid position")
	ErrInvalidTime     = errors.New("invalid event time")
	ErrBadTopic        = errors.New("bad MQTT topic")
)

// Reason codes: short, stable, low-cardinality names for why a record went to
// telemetry.dlq or telemetry.late.
const (
	ReasonPayloadTooLarge = "payload_too_large"
	ReasonMalformed       = "malformed"
	ReasonInvalidDevice   = "invalid_device"
	ReasonDeviceMismatch  = "device_mismatch"
	ReasonInvalidPosition = "invalid_position"
	ReasonInvalidTime     = "invalid_time"
	ReasonBadTopic        = "bad_topic"
	ReasonBehindWatermark = "behind_watermark"
	ReasonOutOfOrder      = "out_of_order"
	// ReasonDuplicate marks a reading the core had already accepted (same
	// device, seq and event time: an MQTT QoS 1 redelivery). It is kept in
	// telemetry.late rather than dropped, and not processed twice.
	ReasonDuplicate = "duplicate"
	ReasonOther     = "other"

	// Reasons of readings a Wasm UDF failed on (the core's dead-letter
	// records after isolating the poison readings of a failed batch): the
	// guest trapped, ran past its deadline, reached its memory limit,
	// returned output that breaks the ABI, or reported an error itself.
	ReasonUDFTrap    = "udf_trap"
	ReasonUDFTimeout = "udf_timeout"
	ReasonUDFMemory  = "udf_memory"
	ReasonUDFOutput  = "udf_output"
	ReasonUDFError   = "udf_error"
)

// Reason returns the reason code for an error from this package, or
// ReasonOther.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrPayloadTooLarge):
		return ReasonPayloadTooLarge
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrInvalidDevice):
		return ReasonInvalidDevice
	case errors.Is(err, ErrDeviceMismatch):
		return ReasonDeviceMismatch
	case errors.Is(err, ErrInvalidPosition):
		return ReasonInvalidPosition
	case errors.Is(err, ErrInvalidTime):
		return ReasonInvalidTime
	case errors.Is(err, ErrBadTopic):
		return ReasonBadTopic
	}
	return ReasonOther
}
