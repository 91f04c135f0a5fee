// Package lastfix is the device state the example UDFs share: the last
// reading a UDF accepted for the device. Keeping one format lets a route
// swap between speed, geofence and smoothing without losing the previous
// position. Standard library and motion only, so guests can import it.
package lastfix

import (
	"math"

	"github.com/sailstream/sailstream/motion"
)

// Tag starts every state in this format; state without it (a new device,
// or a swap from a UDF with another format) reads as no previous reading.
const Tag = "fix1"

// Size is the encoded size: tag, seq, time, lat, lon.
const Size = 4 + 8 + 8 + 8 + 8

// Last is the last accepted reading of a device.
type Last struct {
	Seq uint64
	Fix motion.Fix
}

// Decode reads state; ok is false when it is not in this format.
func Decode(state []byte) (l Last, ok bool) {
	if len(state) < Size || string(state[:4]) != Tag {
		return Last{}, false
	}
	return Last{
		Seq: u64(state[4:]),
		Fix: motion.Fix{
			TimeNs: int64(u64(state[12:])),
			Lat:    math.Float64frombits(u64(state[20:])),
			Lon:    math.Float64frombits(u64(state[28:])),
		},
	}, true
}

// Append appends the encoded l to dst.
func (l Last) Append(dst []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, Size)...) // no allocation when dst has room
	b := dst[n : n+Size]
	copy(b, Tag)
	putU64(b[4:], l.Seq)
	putU64(b[12:], uint64(l.Fix.TimeNs))
	putU64(b[20:], math.Float64bits(l.Fix.Lat))
	putU64(b[28:], math.Float64bits(l.Fix.Lon))
	return dst
}

func putU64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// AppendU64 appends v little-endian (encoding/binary would pull reflect
// into every module).
func AppendU64(dst []byte, v uint64) []byte {
	for i := 0; i < 8; i++ {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

func u64(b []byte) uint64 {
	_ = b[7]
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
