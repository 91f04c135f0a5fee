//go:build wasip1

package sdk

import "unsafe"

// The ABI v1 exports. Buffers live in package variables so the garbage
// collector keeps them; they are scratch space reused by the next call, not
// state.
var (
	c       codec
	inBuf   []byte
	infoBuf []byte
)

//go:wasmexport sailstream_abi_version
func abiVersionExport() int32 { return abiVersion }

//go:wasmexport sailstream_v1_alloc
func allocExport(size uint32) uint32 {
	if cap(inBuf) < int(size) || cap(inBuf) == 0 {
		inBuf = make([]byte, max(size, 64))
	}
	inBuf = inBuf[:size]
	return addr(inBuf[:cap(inBuf)])
}

//go:wasmexport sailstream_v1_process
func processExport(ptr, size uint32) uint64 {
	// The host passes back what sailstream_v1_alloc returned.
	if cap(inBuf) == 0 || ptr != addr(inBuf[:cap(inBuf)]) || int(size) > cap(inBuf) {
		return pack(c.encodeError("sdk: process called with a buffer sailstream_v1_alloc did not return"))
	}
	return pack(c.handle(registered, inBuf[:size]))
}

//go:wasmexport sailstream_v1_info
func infoExport() uint64 {
	infoBuf = infoJSON(info)
	return pack(infoBuf)
}

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(addr(b))<<32 | uint64(len(b))
}
