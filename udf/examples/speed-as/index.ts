// speed — the default sailstream UDF in AssemblyScript: for every reading,
// the distance from the device's previous reading, the speed over ground
// and the course. The same logic as package motion (and
// udf/examples/speed, the Go guest), with the same state format (package
// lastfix: "fix1", seq, time_ns, lat, lon), so a route can swap between
// the Go, AssemblyScript and C versions without losing a device's previous
// position. The trig comes from gomath.ts, Go's algorithms, so all three
// agree bit for bit on the shared vectors (udf/testdata/speed).
//
// Build (npm ci in udf/sdk/assemblyscript first):
//
//   ../../sdk/assemblyscript/node_modules/.bin/asc index.ts -o speed.wasm \
//     --runtime stub -O3 --noAssert --use abort=
import { Batch, Output, fieldName, register } from "../../sdk/assemblyscript/assembly/index";
import { PI, asin, atan2, cosOut, durationSeconds, gomin, gosqrt, sin, sincos, sinOut } from "../../sdk/assemblyscript/assembly/gomath";
export * from "../../sdk/assemblyscript/assembly/exports";

const EARTH_RADIUS_M: f64 = 6371008.8;
const LASTFIX_SIZE = 4 + 8 + 8 + 8 + 8;
const TAG: u32 = 0x31786966; // "fix1" little-endian

const DIST = fieldName("distance_m");
const SPEED = fieldName("speed_ms");
const COURSE = fieldName("course_deg");

@inline function rad(d: f64): f64 { return d * PI / 180; }
@inline function deg(r: f64): f64 { return r * 180 / PI; }

// The sine and cosine of the latitudes, which geo.Distance and
// geo.Bearing both need, are computed once per reading (sincos gives the
// same bits as sin and cos), not four times per pair, and passed in: 1 is
// the previous fix, 2 the current. Locals, not globals: a Wasm global is a
// memory access in the compiled code, a local a register.

// geo.Distance: haversine, metres.
@inline function distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64, cosLat1: f64, cosLat2: f64): f64 {
  const dp = rad(lat2) - rad(lat1);
  const dl = rad(lon2 - lon1);
  const s1 = sin(dp / 2), s2 = sin(dl / 2);
  const h = s1 * s1 + cosLat1 * cosLat2 * s2 * s2;
  return 2 * EARTH_RADIUS_M * asin(gosqrt(gomin(1, h)));
}

// geo.Bearing: initial bearing in [0, 360).
@inline function bearing(lon1: f64, lon2: f64, sinLat1: f64, cosLat1: f64, sinLat2: f64, cosLat2: f64): f64 {
  sincos(rad(lon2 - lon1));
  const y = sinOut * cosLat2;
  const x = cosLat1 * sinLat2 - sinLat1 * cosLat2 * cosOut;
  if (x == 0 && y == 0) return 0;
  // geo takes mod(v, 360) of v = deg(atan2) + 360, which is in [180, 540]
  // (or NaN): there the remainder is v, or v - 360, which is exact
  // (Sterbenz: 360 <= v <= 720), so one comparison gives the same bits as
  // the division loop.
  let b = deg(atan2(y, x)) + 360;
  if (b >= 360) b -= 360;
  return b >= 360 ? 0 : b;
}

// motion.sub: a-b saturating like time.Time.Sub.
function sub(a: i64, b: i64): i64 {
  const d = a - b;
  if (b < 0 && d < a) return i64.MAX_VALUE;
  if (b > 0 && d > a) return i64.MIN_VALUE;
  return d;
}

function speed(b: Batch, o: Output): bool {
  if (b.count == 0) { // keep the state as it is
    o.setState(b.state, b.stateLen);
    return true;
  }
  const kDist = DIST, kSpeed = SPEED, kCourse = COURSE; // locals, read once
  let ok = b.stateLen >= LASTFIX_SIZE && load<u32>(b.state) == TAG;
  let seq: u64 = 0, t: i64 = 0, lat: f64 = 0, lon: f64 = 0;
  let sinLat1: f64 = 0, cosLat1: f64 = 0;
  if (ok) {
    seq = load<u64>(b.state, 4);
    t = load<i64>(b.state, 12);
    lat = load<f64>(b.state, 20);
    lon = load<f64>(b.state, 28);
    sincos(rad(lat));
    sinLat1 = sinOut;
    cosLat1 = cosOut;
  }
  for (let i = 0; i < b.count; i++) {
    const rlat = b.lat(i), rlon = b.lon(i), rt = b.timeNs(i);
    sincos(rad(rlat));
    const sinLat2 = sinOut, cosLat2 = cosOut;
    let dist: f64 = 0, spd: f64 = 0, course: f64 = 0;
    if (ok) { // motion.Step
      dist = distance(lat, lon, rlat, rlon, cosLat1, cosLat2);
      if (dist > 0) course = bearing(lon, rlon, sinLat1, cosLat1, sinLat2, cosLat2);
      const s = durationSeconds(sub(rt, t));
      if (s > 0) spd = dist / s;
    }
    o.emit(i, rt, rlat, rlon);
    o.add(kDist, dist);
    o.add(kSpeed, spd);
    o.add(kCourse, course);
    seq = b.seq(i);
    t = rt;
    lat = rlat;
    lon = rlon;
    sinLat1 = sinLat2;
    cosLat1 = cosLat2;
    ok = true;
  }
  if (!ok) {
    o.setState(b.state, b.stateLen);
    return true;
  }
  const st = o.stateBuffer(LASTFIX_SIZE);
  store<u32>(st, TAG);
  store<u64>(st, seq, 4);
  store<i64>(st, t, 12);
  store<f64>(st, lat, 20);
  store<f64>(st, lon, 28);
  return true;
}

register("speed", "1.0.0", speed);
