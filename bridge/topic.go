package bridge

import (
	"fmt"
	"strings"

	"github.com/sailstream/sailstream/telemetry"
)

// telemetrySuffix is the last level of a device's telemetry topic:
// {prefix}/{device}/telemetry.
const telemetrySuffix = "telemetry"

// parseTopic extracts the device id from an MQTT topic of the form
// {prefix}/{device}/telemetry.
//
// segment is the raw level right after the prefix (empty when there is none)
// and is returned even when the topic is rejected, so that the DLQ record can
// still be keyed by what the sender probably meant as its device id. A topic
// of the wrong shape, or whose device level fails telemetry.ValidateDevice,
// returns an error wrapping telemetry.ErrBadTopic (and only that sentinel, so
// telemetry.Reason reports bad_topic rather than invalid_device).
func parseTopic(prefix, topic string) (device, segment string, err error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		// "{prefix}/#" also matches "{prefix}" itself.
		return "", "", fmt.Errorf("%w: %q is not under %q; want %s/{device}/%s",
			telemetry.ErrBadTopic, topic, prefix+"/", prefix, telemetrySuffix)
	}
	segment, tail, _ := strings.Cut(rest, "/")
	if tail != telemetrySuffix {
		return "", segment, fmt.Errorf("%w: %q does not have the shape %s/{device}/%s",
			telemetry.ErrBadTopic, topic, prefix, telemetrySuffix)
	}
	if verr := telemetry.ValidateDevice(segment); verr != nil {
		// %v, not %w: the reason is the topic, whatever the device check said.
		return "", segment, fmt.Errorf("%w: %q: %v", telemetry.ErrBadTopic, topic, verr)
	}
	return segment, segment, nil
}
