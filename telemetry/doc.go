// Package telemetry holds the canonical Reading of a tracker, the enriched
// reading the core produces, their wire formats and their validation.
//
// It is the leaf package every other part of sailstream imports (the edge
// simulator, the bridge, the core, the sinks and the web server), so it
// depends on nothing but the standard library: a Go UDF compiled to Wasm can
// import it too.
//
// The native wire format is one JSON object per MQTT message:
//
//	{"device":"boat-1","seq":42,"time":"2026-11-27T10:00:00.125Z","lat":52.46,"lon":21.02,"fields":{"battery":0.93}}
//
// device is optional on the wire (the MQTT topic names the device; when both
// are present they must agree), seq is the device's own sequence number, time
// is the device's event time (RFC 3339), fields carries optional numeric
// sensor values.
package telemetry
