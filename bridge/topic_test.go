package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/telemetry"
)

func TestParseTopic(t *testing.T) {
	const prefix = "sailstream/devices"
	tests := []struct {
		name        string
		topic       string
		wantDevice  string
		wantSegment string
		wantErr     bool
	}{
		{"device topic", "sailstream/devices/boat-1/telemetry", "boat-1", "boat-1", false},
		{"all allowed characters", "sailstream/devices/A.z_0-9/telemetry", "A.z_0-9", "A.z_0-9", false},
		{"64 characters", "sailstream/devices/" + strings.Repeat("d", 64) + "/telemetry", strings.Repeat("d", 64), strings.Repeat("d", 64), false},
		{"65 characters", "sailstream/devices/" + strings.Repeat("d", 65) + "/telemetry", "", strings.Repeat("d", 65), true},
		{"prefix itself (matched by prefix/#)", "sailstream/devices", "", "", true},
		{"prefix with a slash", "sailstream/devices/", "", "", true},
		{"other root", "other/devices/boat-1/telemetry", "", "", true},
		{"prefix as a word prefix", "sailstream/devicesX/boat-1/telemetry", "", "", true},
		{"no suffix", "sailstream/devices/boat-1", "", "boat-1", true},
		{"other suffix", "sailstream/devices/boat-1/status", "", "boat-1", true},
		{"extra level", "sailstream/devices/boat-1/telemetry/x", "", "boat-1", true},
		{"nested device", "sailstream/devices/a/b/telemetry", "", "a", true},
		{"empty device", "sailstream/devices//telemetry", "", "", true},
		{"space in device", "sailstream/devices/bad boat/telemetry", "", "bad boat", true},
		{"non-ASCII device", "sailstream/devices/łódź/telemetry", "", "łódź", true},
		{"wildcard-looking device", "sailstream/devices/boat+1/telemetry", "", "boat+1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			device, segment, err := parseTopic(prefix, tt.topic)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseTopic(%q) error = %v, want error %v", tt.topic, err, tt.wantErr)
			}
			if device != tt.wantDevice || segment != tt.wantSegment {
				t.Errorf("parseTopic(%q) = (%q, %q), want (%q, %q)", tt.topic, device, segment, tt.wantDevice, tt.wantSegment)
			}
			if err != nil {
				if !errors.Is(err, telemetry.ErrBadTopic) {
					t.Errorf("error %v does not wrap ErrBadTopic", err)
				}
				if got := telemetry.Reason(err); got != telemetry.ReasonBadTopic {
					t.Errorf("Reason(%v) = %q, want %q", err, got, telemetry.ReasonBadTopic)
				}
			}
		})
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"p/boat-1/telemetry", "p", "p/", "p//telemetry", "p/a/b/telemetry", "p/\xff/telemetry"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		device, segment, err := parseTopic("p", topic)
		if err == nil {
			if telemetry.ValidateDevice(device) != nil || topic != "p/"+device+"/telemetry" || segment != device {
				t.Fatalf("accepted %q as device %q (segment %q)", topic, device, segment)
			}
		} else if device != "" {
			t.Fatalf("rejected %q but returned device %q", topic, device)
		}
	})
}
