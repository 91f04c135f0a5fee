// Package sdk is the Go guest SDK for sailstream UDFs: write a function
// from (state, batch of readings) to (new state, outputs), register it in an
// init function, and build with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o my.wasm .
//
// The SDK implements ABI v1 (udf/ABI.md): it exports sailstream_abi_version,
// sailstream_v1_alloc, sailstream_v1_process and sailstream_v1_info, decodes
// the batch the host writes into guest memory and encodes what the function
// returns. The function must be pure: the host may run the same device on
// any instance, so everything that must survive a call goes into the
// returned state, never into package variables.
//
// With -buildmode=c-shared the module is a WASI reactor: the host runs its
// package init functions once per instance, and main is never called, so
// Register belongs in init.
package sdk

// Info names a UDF; the host reads it at load and stamps it on every
// enriched record.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Reading is one reading of the batch.
type Reading struct {
	Seq uint64
	// TimeNs is the event time in Unix nanoseconds: the only clock a UDF
	// has.
	TimeNs   int64
	Lat, Lon float64
	// Fields are the reading's numeric fields, sorted by name.
	Fields []Field
}

// Field gives the value of a named field, and whether the reading has it.
func (r Reading) Field(name string) (float64, bool) {
	for _, f := range r.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// Field is a named number. Names are 1–64 bytes of letters, digits, '_',
// '-' and '.'.
type Field struct {
	Name  string
	Value float64
}

// Batch is what one call gets: readings of one device in event-time order.
type Batch struct {
	Device   string
	Readings []Reading
}

// Output is one record to emit. Input is the index in the batch of the
// reading it derives from; outputs must come in non-decreasing Input order.
// A reading with no output is dropped; one with several is emitted several
// times.
type Output struct {
	Input    int
	TimeNs   int64
	Lat, Lon float64
	// Fields are added to the enriched record (see ABI.md for the names
	// that fill its typed fields: distance_m, speed_ms, speed_kn,
	// course_deg).
	Fields []Field
}

// Pass returns an output for reading i of b, unchanged, with no fields yet.
func (b Batch) Pass(i int) Output {
	r := b.Readings[i]
	return Output{Input: i, TimeNs: r.TimeNs, Lat: r.Lat, Lon: r.Lon}
}

// Set sets a field on the output, replacing one of the same name.
//
// Inside a call, the fields Set adds live in scratch space the SDK reuses on
// the next call (like everything a call gets or returns), so building
// outputs with Pass and Set allocates nothing once the first calls have
// sized it.
func (o *Output) Set(name string, v float64) {
	for i := range o.Fields {
		if o.Fields[i].Name == name {
			o.Fields[i].Value = v
			return
		}
	}
	if len(o.Fields) == cap(o.Fields) && arena.on {
		o.Fields = arena.grow(o.Fields)
	}
	o.Fields = append(o.Fields, Field{Name: name, Value: v})
}

// arena backs the fields Set adds during a call. It is on only while the
// SDK runs a call (a single-threaded guest), so a UDF's native unit tests,
// which call the Func directly, get plain appends.
var arena fieldArena

type fieldArena struct {
	on   bool
	buf  []Field
	used int
}

// reset starts a call: chunks handed out before are free again.
func (a *fieldArena) reset() { a.used = 0 }

// grow returns f copied into a chunk with room for more. A full buffer is
// replaced by a bigger one; the chunks of this call in the old one stay
// valid (the garbage collector keeps it while they are referenced), and the
// buffer is as big as the biggest call needed: bounded, not growing.
func (a *fieldArena) grow(f []Field) []Field {
	n := max(4, 2*len(f))
	if a.used+n > len(a.buf) {
		a.buf = make([]Field, max(2*len(a.buf), 1024, n))
		a.used = 0
	}
	chunk := a.buf[a.used : a.used : a.used+n]
	a.used += n
	return append(chunk, f...)
}

// Func is a UDF. state is what the previous call for this device returned
// (empty for a new device, or after a swap from a UDF whose state it does
// not recognise: check it). The slices passed in are valid only during the
// call. Returning an error fails the batch: the host sends its readings to
// the dead-letter queue.
type Func func(state []byte, b Batch) (newState []byte, out []Output, err error)

var (
	registered Func
	info       Info
)

// Register sets the module's UDF. Call it once, from an init function.
func Register(i Info, f Func) {
	if registered != nil {
		panic("sdk: Register called twice")
	}
	info, registered = i, f
}
