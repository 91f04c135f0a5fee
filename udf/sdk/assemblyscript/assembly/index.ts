// sailstream UDF ABI v1 (udf/ABI.md) for AssemblyScript guests.
//
// A UDF is a pure function from (device state, batch of readings of one
// device) to (new state, output records). Write it against Batch and
// Output, register it at the top level, and re-export the ABI from the
// entry file:
//
//   import { Batch, Output, fieldName, register } from "<sdk>/assembly/index";
//   export * from "<sdk>/assembly/exports";
//
//   const HELLO = fieldName("hello");
//
//   function passthrough(b: Batch, o: Output): bool {
//     for (let i = 0; i < b.count; i++) {
//       o.pass(b, i);        // emit reading i unchanged ...
//       o.set(HELLO, 1.0);   // ... with one more field
//     }
//     return true;           // false fails the batch
//   }
//
//   register("passthrough", "1.0.0", passthrough);
//
// Build (npm package assemblyscript; `--use abort=` turns aborts into traps
// so the module imports nothing):
//
//   asc index.ts -o passthrough.wasm --runtime stub -O3 --noAssert --use abort=
//
// The stub runtime never frees memory, so the SDK reads the batch in place
// and reuses its output buffers from call to call: a UDF should allocate
// nothing per call (no strings, arrays or objects in the loop). The
// function must be pure: the host may run the same device on any instance,
// so what must survive a call goes into the state (Output.setState or
// Output.stateBuffer), never into globals.

const ABI_VERSION: u32 = 1;
const HEADER: usize = 48;
const READING: usize = 40;
const RECORD: usize = 40;
const FIELD: usize = 16;
const NAME: usize = 8;

// Batch is the decoded input: one device's readings in event-time order,
// read in place from the buffer the host wrote. Valid only during the call.
export class Batch {
  /** Number of readings. */
  count: i32 = 0;
  /** The state the previous call returned: stateLen bytes at state (0 for
   * a new device, or after a swap from a UDF with another format: check). */
  state: usize = 0;
  stateLen: i32 = 0;
  /** UTF-8 device id: deviceLen bytes at device. */
  device: usize = 0;
  deviceLen: i32 = 0;
  buf: usize = 0;
  readings: usize = 0;
  fields: usize = 0;
  fieldCount: i32 = 0;
  names: usize = 0;
  nameCount: i32 = 0;

  /** The device's sequence number of reading i. */
  @inline seq(i: i32): u64 { return load<u64>(this.readings + <usize>i * READING); }
  /** Event time of reading i in Unix nanoseconds: the only clock. */
  @inline timeNs(i: i32): i64 { return load<i64>(this.readings + <usize>i * READING, 8); }
  /** WGS 84 latitude of reading i in degrees. */
  @inline lat(i: i32): f64 { return load<f64>(this.readings + <usize>i * READING, 16); }
  /** WGS 84 longitude of reading i in degrees. */
  @inline lon(i: i32): f64 { return load<f64>(this.readings + <usize>i * READING, 24); }

  /** The index of name in the batch's name table, or -1: look it up once
   * per call, then use field/hasField. */
  findName(name: string): i32 {
    for (let i = 0; i < this.nameCount; i++) {
      const e = this.names + <usize>i * NAME;
      if (asciiEquals(this.buf + load<u32>(e), load<u32>(e, 4), name)) return i;
    }
    return -1;
  }

  /** Whether reading i has the field with name index name. */
  hasField(i: i32, name: i32): bool { return this.fieldAt(i, name) != 0; }

  /** The value of the field with name index name of reading i, or def. */
  field(i: i32, name: i32, def: f64 = 0): f64 {
    const p = this.fieldAt(i, name);
    return p ? load<f64>(p, 8) : def;
  }

  private fieldAt(i: i32, name: i32): usize {
    const r = this.readings + <usize>i * READING;
    const start = load<u32>(r, 32), n = load<u32>(r, 36);
    for (let k: u32 = 0; k < n; k++) {
      const f = this.fields + <usize>(start + k) * FIELD;
      if (load<u32>(f) == <u32>name) return f;
    }
    return 0;
  }
}

// Output collects the records of one call; the SDK lays them out when the
// function returns.
export class Output {
  recs: usize = 0;
  n: i32 = 0;
  recCap: i32 = 0;
  flds: usize = 0;
  nf: i32 = 0;
  fldCap: i32 = 0;
  st: usize = 0;
  stLen: i32 = 0;
  stCap: i32 = 0;
  err: string | null = null;

  /** emit starts an output record derived from reading input. */
  @inline emit(input: i32, timeNs: i64, lat: f64, lon: f64): void {
    if (this.n == this.recCap) {
      this.recCap = this.recCap ? this.recCap * 2 : 64;
      this.recs = grow(this.recs, <usize>this.recCap * RECORD);
    }
    const r = this.recs + <usize>this.n * RECORD;
    store<u32>(r, input);
    store<u32>(r, 0, 4);
    store<i64>(r, timeNs, 8);
    store<f64>(r, lat, 16);
    store<f64>(r, lon, 24);
    store<u32>(r, this.nf, 32);
    store<u32>(r, 0, 36);
    this.n++;
  }

  /** pass emits reading i of b unchanged (its own fields stay on the
   * enriched record without being repeated here). */
  @inline pass(b: Batch, i: i32): void { this.emit(i, b.timeNs(i), b.lat(i), b.lon(i)); }

  /** set sets a field (an id from fieldName) on the record last emitted,
   * replacing a value set before. */
  set(name: i32, value: f64): void {
    if (this.n == 0) unreachable();
    const r = this.recs + <usize>(this.n - 1) * RECORD;
    const start = load<u32>(r, 32);
    for (let k = <i32>start; k < this.nf; k++) {
      const f = this.flds + <usize>k * FIELD;
      if (load<u32>(f) == <u32>name) {
        store<f64>(f, value, 8);
        return;
      }
    }
    if (this.nf == this.fldCap) {
      this.fldCap = this.fldCap ? this.fldCap * 2 : 256;
      this.flds = grow(this.flds, <usize>this.fldCap * FIELD);
    }
    const f = this.flds + <usize>this.nf * FIELD;
    store<u32>(f, name);
    store<u32>(f, 0, 4);
    store<f64>(f, value, 8);
    this.nf++;
    store<u32>(r, load<u32>(r, 36) + 1, 36);
  }

  /** add adds a field (an id from fieldName) to the record last emitted,
   * like set but without looking for an earlier value of it: for a hot
   * loop that sets each field once per record. Add a name at most once
   * per record (use set otherwise). */
  @inline add(name: i32, value: f64): void {
    if (this.n == 0) unreachable();
    if (this.nf == this.fldCap) {
      this.fldCap = this.fldCap ? this.fldCap * 2 : 256;
      this.flds = grow(this.flds, <usize>this.fldCap * FIELD);
    }
    const f = this.flds + <usize>this.nf * FIELD;
    store<u32>(f, name);
    store<u32>(f, 0, 4);
    store<f64>(f, value, 8);
    this.nf++;
    const r = this.recs + <usize>(this.n - 1) * RECORD;
    store<u32>(r, load<u32>(r, 36) + 1, 36);
  }

  /** stateBuffer returns len writable bytes that become the device's new
   * state (none is kept unless set). */
  stateBuffer(len: i32): usize {
    if (len > this.stCap) {
      this.stCap = max(len, 64);
      this.st = grow(this.st, <usize>this.stCap);
    }
    this.stLen = len;
    return this.st;
  }

  /** setState copies len bytes at ptr (e.g. Batch.state) as the new state. */
  setState(ptr: usize, len: i32): void {
    memory.copy(this.stateBuffer(len), ptr, <usize>len);
  }

  /** fail records why the batch fails; return false after it. */
  fail(msg: string): void { this.err = msg; }
}

/** A UDF: return false to fail the batch (its readings go to the
 * dead-letter queue) with the message given to Output.fail. */
export type Func = (b: Batch, o: Output) => bool;

// Field names are interned once, at the top level, into one table that
// every call's output carries: it is the same in every instance, so it is
// not state.
let nameStrs = new Array<ArrayBuffer>();

/** fieldName interns a field name for Output.set and returns its id. Call
 * it at the top level (it allocates). Names are 1-64 bytes of
 * [A-Za-z0-9_.-]. */
export function fieldName(name: string): i32 {
  const enc = String.UTF8.encode(name);
  for (let i = 0; i < nameStrs.length; i++) {
    const s = nameStrs[i];
    if (s.byteLength == enc.byteLength && memory.compare(changetype<usize>(s), changetype<usize>(enc), <usize>enc.byteLength) == 0) return i;
  }
  nameStrs.push(enc);
  return nameStrs.length - 1;
}

let udf: Func | null = null;
let infoJSON: ArrayBuffer | null = null;

/** register sets the module's UDF, named name at version. Call it once, at
 * the top level. */
export function register(name: string, version: string, f: Func): void {
  if (udf) unreachable();
  udf = f;
  infoJSON = String.UTF8.encode('{"name":"' + name + '","version":"' + version + '"}');
}

// grow reallocates a scratch buffer (the stub runtime extends the last
// block in place; a moved one is not reclaimed, but buffers only double).
function grow(p: usize, n: usize): usize { return p ? heap.realloc(p, n) : heap.alloc(n); }

function asciiEquals(p: usize, n: u32, s: string): bool {
  if (<i32>n != s.length) return false;
  for (let i: u32 = 0; i < n; i++) {
    if (<u32>load<u8>(p + i) != <u32>s.charCodeAt(i)) return false;
  }
  return true;
}

// ---- the ABI, re-exported by exports.ts --------------------------------

// Scratch reused from call to call; none of it is state.
let inBuf: usize = 0;
let inCap: u32 = 0;
let outBuf: usize = 0;
let outCap: u32 = 0;
let errBuf: usize = 0;
const batch = new Batch();
const output = new Output();

/** @internal */
export function abiAlloc(size: u32): usize {
  if (size > inCap || inBuf == 0) {
    inCap = max(size + size / 4, 4096);
    inBuf = grow(inBuf, <usize>inCap);
  }
  return inBuf;
}

function pack(p: usize, n: usize): u64 { return (<u64>p << 32) | <u64>n; }

function encodeError(msg: string): u64 {
  const n = min(String.UTF8.byteLength(msg), 256);
  if (errBuf == 0) errBuf = heap.alloc(HEADER + 256);
  memory.fill(errBuf, 0, HEADER);
  store<u32>(errBuf, ABI_VERSION);
  store<u32>(errBuf, 1, 4);
  store<u32>(errBuf, <u32>HEADER, 40);
  store<u32>(errBuf, <u32>n, 44);
  // Messages are ASCII in practice; anything else is replaced by '?'.
  for (let i = 0; i < n; i++) {
    const c = msg.charCodeAt(i);
    store<u8>(errBuf + HEADER + i, c < 128 ? <u8>c : 63);
  }
  return pack(errBuf, HEADER + n);
}

function decode(p: usize, len: u32, b: Batch): bool {
  if (len < <u32>HEADER || load<u32>(p) != ABI_VERSION) return false;
  const nR = load<u32>(p, 4), rOff = load<u32>(p, 8);
  const nF = load<u32>(p, 12), fOff = load<u32>(p, 16);
  const nN = load<u32>(p, 20), nOff = load<u32>(p, 24);
  const sOff = load<u32>(p, 28), sLen = load<u32>(p, 32);
  const dOff = load<u32>(p, 36), dLen = load<u32>(p, 40);
  if (!within(rOff, nR, READING, len) || !within(fOff, nF, FIELD, len) || !within(nOff, nN, NAME, len) ||
    !within(sOff, sLen, 1, len) || !within(dOff, dLen, 1, len)) return false;
  b.buf = p;
  b.count = nR;
  b.readings = p + rOff;
  b.fieldCount = nF;
  b.fields = p + fOff;
  b.nameCount = nN;
  b.names = p + nOff;
  b.state = p + sOff;
  b.stateLen = sLen;
  b.device = p + dOff;
  b.deviceLen = dLen;
  for (let i: u32 = 0; i < nN; i++) {
    const e = b.names + <usize>i * NAME;
    if (!within(load<u32>(e), load<u32>(e, 4), 1, len)) return false;
  }
  for (let i: u32 = 0; i < nF; i++) {
    if (load<u32>(b.fields + <usize>i * FIELD) >= nN) return false;
  }
  for (let i: u32 = 0; i < nR; i++) {
    const r = b.readings + <usize>i * READING;
    if (<u64>load<u32>(r, 32) + <u64>load<u32>(r, 36) > <u64>nF) return false;
  }
  return true;
}

@inline function within(off: u32, n: u32, size: usize, len: u32): bool {
  return <u64>off + <u64>n * <u64>size <= <u64>len;
}

function encode(o: Output): u64 {
  const nn = nameStrs.length;
  let str: usize = 0;
  for (let i = 0; i < nn; i++) str += <usize>nameStrs[i].byteLength;
  const outsOff = HEADER;
  const fieldsOff = outsOff + <usize>o.n * RECORD;
  const namesOff = fieldsOff + <usize>o.nf * FIELD;
  const strOff = namesOff + <usize>nn * NAME;
  const stateOff = strOff + str;
  const total = stateOff + <usize>o.stLen;
  if (<u32>total > outCap) {
    outCap = <u32>(total + total / 4);
    outBuf = grow(outBuf, <usize>outCap);
  }
  const b = outBuf;
  store<u32>(b, ABI_VERSION);
  store<u32>(b, 0, 4);
  store<u32>(b, o.n, 8);
  store<u32>(b, <u32>outsOff, 12);
  store<u32>(b, o.nf, 16);
  store<u32>(b, <u32>fieldsOff, 20);
  store<u32>(b, nn, 24);
  store<u32>(b, <u32>namesOff, 28);
  store<u32>(b, <u32>stateOff, 32);
  store<u32>(b, o.stLen, 36);
  store<u64>(b, 0, 40);
  memory.copy(b + outsOff, o.recs, <usize>o.n * RECORD);
  memory.copy(b + fieldsOff, o.flds, <usize>o.nf * FIELD);
  let s = strOff;
  for (let i = 0; i < nn; i++) {
    const e = b + namesOff + <usize>i * NAME;
    const nb = nameStrs[i];
    const l = <usize>nb.byteLength;
    store<u32>(e, <u32>s);
    store<u32>(e, <u32>l, 4);
    memory.copy(b + s, changetype<usize>(nb), l);
    s += l;
  }
  memory.copy(b + stateOff, o.st, <usize>o.stLen);
  return pack(b, total);
}

/** @internal */
export function abiProcess(ptr: usize, len: u32): u64 {
  if (inBuf == 0 || ptr != inBuf || len > inCap) {
    return encodeError("sdk: process called with a buffer sailstream_v1_alloc did not return");
  }
  const f = udf;
  if (f == null) return encodeError("sdk: no UDF registered (call register at the top level)");
  if (!decode(ptr, len, batch)) return encodeError("sdk: malformed input");
  const o = output;
  o.n = 0;
  o.nf = 0;
  o.stLen = 0;
  o.err = null;
  if (!f(batch, o)) {
    const e = o.err;
    return encodeError(e != null ? e : "udf failed");
  }
  return encode(o);
}

/** @internal */
export function abiInfo(): u64 {
  const j = infoJSON;
  if (j == null) return 0;
  return pack(changetype<usize>(j), <usize>j.byteLength);
}
