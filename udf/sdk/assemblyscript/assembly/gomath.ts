// Go's math.Sin, Cos, Asin, Atan, Atan2, Min, Mod and
// time.Duration.Seconds, ported to AssemblyScript so that an
// AssemblyScript UDF computes the very same bits as the Go code it mirrors
// (sailstream's motion and geo packages). libm implementations differ in
// the last bit; the shared test vectors (udf/testdata) compare results bit
// for bit, so the C and AssemblyScript guests carry Go's algorithms rather
// than their language's Math. Sqrt needs no port: f64.sqrt is IEEE 754
// exact everywhere.
//
// Ported from the Go standard library (src/math/{sin,trig_reduce,asin,
// atan,atan2,mod,dim}.go and src/time/time.go):
//
//   Copyright 2009 The Go Authors. All rights reserved.
//   Use of this source code is governed by a BSD-style license that can be
//   found in the LICENSE file of the Go distribution; its terms are
//   repeated in ../../c/gomath.h.
//
// The original algorithms are from the Cephes Math Library (Stephen L.
// Moshier) and FreeBSD's msun.
//
// The functions a UDF calls per reading are @inline: a call costs more in a
// WebAssembly runtime than these small bodies (register spills, and
// sailstream's host adds a preemption check at every function entry);
// inlining them cut the speed UDF's cost per reading by about a quarter.
// The rare Payne-Hanek reduction (trigReduce) stays out of line.

export const PI: f64 = 3.14159265358979323846264338327950288419716939937510582097494459;

const SIN0: f64 = 1.58962301576546568060e-10;
const SIN1: f64 = -2.50507477628578072866e-8;
const SIN2: f64 = 2.75573136213857245213e-6;
const SIN3: f64 = -1.98412698295895385996e-4;
const SIN4: f64 = 8.33333333332211858878e-3;
const SIN5: f64 = -1.66666666666666307295e-1;
const COS0: f64 = -1.13585365213876817300e-11;
const COS1: f64 = 2.08757008419747316778e-9;
const COS2: f64 = -2.75573141792967388112e-7;
const COS3: f64 = 2.48015872888517045348e-5;
const COS4: f64 = -1.38888888888730564116e-3;
const COS5: f64 = 4.16666666666665929218e-2;

const PI4A: f64 = 7.85398125648498535156e-1;
const PI4B: f64 = 3.77489470793079817668e-8;
const PI4C: f64 = 2.69515142907905952645e-15;
const REDUCE_THRESHOLD: f64 = 536870912.0; // 1 << 29

const MPI4: StaticArray<u64> = [
  0x0000000000000001, 0x45f306dc9c882a53, 0xf84eafa3ea69bb81, 0xb6c52b3278872083,
  0xfca2c757bd778ac3, 0x6e48dc74849ba5c0, 0x0c925dd413a32439, 0xfc3bd63962534e7d,
  0xd1046bea5d768909, 0xd338e04d68befc82, 0x7323ac7306a673e9, 0x3908bf177bf25076,
  0x3ff12fffbc0b301f, 0xde5e2316b414da3e, 0xda6cfd9e4f96136e, 0x9e8c7ecd3cbfd45a,
  0xea4f758fd7cbe2f6, 0x7a0e73ef14a525d4, 0xd7f6bf623f1aba10, 0xac06608df8f6d757,
];

@inline function isInf(x: f64): bool { return x > f64.MAX_VALUE || x < -f64.MAX_VALUE; }
@inline function isNaN(x: f64): bool { return x != x; }
@inline function goNaN(): f64 { return reinterpret<f64>(<u64>0x7FF8000000000001); }
@inline function signbit(x: f64): bool { return (reinterpret<u64>(x) >> 63) != 0; }
@inline function copysign(f: f64, sign: f64): f64 {
  return reinterpret<f64>((reinterpret<u64>(f) & ~(<u64>1 << 63)) | (reinterpret<u64>(sign) & (<u64>1 << 63)));
}
// WebAssembly masks shift counts to 6 bits; Go's shifts by 64 give 0.
@inline function shl(v: u64, s: u64): u64 { return s >= 64 ? 0 : v << s; }
@inline function shr(v: u64, s: u64): u64 { return s >= 64 ? 0 : v >> s; }

let mulHi: u64 = 0;
// mul64 returns the low 64 bits of x*y and leaves the high ones in mulHi
// (math/bits.Mul64).
function mul64(x: u64, y: u64): u64 {
  const m32: u64 = 0xffffffff;
  const x0 = x & m32, x1 = x >> 32, y0 = y & m32, y1 = y >> 32;
  const w0 = x0 * y0;
  const t = x1 * y0 + (w0 >> 32);
  let w1 = t & m32;
  const w2 = t >> 32;
  w1 += x0 * y1;
  mulHi = x1 * y1 + w2 + (w1 >> 32);
  return x * y;
}

let reduceJ: u64 = 0;
// trigReduce is Payne–Hanek reduction for |x| >= 2^29 (math/trig_reduce.go):
// returns z and leaves j in reduceJ.
function trigReduce(x: f64): f64 {
  const PI4 = PI / 4;
  if (x < PI4) {
    reduceJ = 0;
    return x;
  }
  let ix = reinterpret<u64>(x);
  const exp = <i32>((ix >> 52) & 0x7ff) - 1023 - 52;
  ix &= ~(<u64>0x7ff << 52);
  ix |= <u64>1 << 52;
  const digit = <u32>(exp + 61) / 64, bitshift = <u64>(<u32>(exp + 61) % 64);
  const z0 = shl(MPI4[digit], bitshift) | shr(MPI4[digit + 1], 64 - bitshift);
  const z1 = shl(MPI4[digit + 1], bitshift) | shr(MPI4[digit + 2], 64 - bitshift);
  const z2 = shl(MPI4[digit + 2], bitshift) | shr(MPI4[digit + 3], 64 - bitshift);
  mul64(z2, ix);
  const z2hi = mulHi;
  const z1lo = mul64(z1, ix);
  const z1hi = mulHi;
  const z0lo = z0 * ix;
  const lo = z1lo + z2hi;
  const c: u64 = lo < z1lo ? 1 : 0;
  let hi = z0lo + z1hi + c;
  let j = hi >> 61;
  hi = (hi << 3) | (lo >> 61);
  const lz = clz<u64>(hi);
  const e = <u64>(1023 - (lz + 1));
  hi = shl(hi, lz + 1) | shr(lo, 64 - (lz + 1));
  hi >>= 64 - 52;
  hi |= e << 52;
  let z = reinterpret<f64>(hi);
  if (j & 1) {
    j++;
    j &= 7;
    z--;
  }
  reduceJ = j;
  return z * PI4;
}

// @inline: the two polynomials, in Go's evaluation order.
@inline function sinPoly(z: f64, zz: f64): f64 {
  return z + z * zz * ((((((SIN0 * zz) + SIN1) * zz + SIN2) * zz + SIN3) * zz + SIN4) * zz + SIN5);
}
@inline function cosPoly(zz: f64): f64 {
  return 1.0 - 0.5 * zz + zz * zz * ((((((COS0 * zz) + COS1) * zz + COS2) * zz + COS3) * zz + COS4) * zz + COS5);
}

/** math.Cos. */
@inline export function cos(x: f64): f64 {
  if (isNaN(x) || isInf(x)) return goNaN();
  let sign = false;
  x = abs<f64>(x);
  let j: u64;
  let y: f64;
  let z: f64;
  if (x >= REDUCE_THRESHOLD) {
    z = trigReduce(x);
    j = reduceJ;
  } else {
    // x < 2^29: the signed conversions give the same values and are
    // single instructions, where the unsigned ones are not.
    j = <u64><i64>(x * (4 / PI));
    y = <f64><i64>j;
    if (j & 1) {
      j++;
      y++;
    }
    j &= 7;
    z = ((x - y * PI4A) - y * PI4B) - y * PI4C;
  }
  if (j > 3) {
    j -= 4;
    sign = !sign;
  }
  if (j > 1) sign = !sign;
  const zz = z * z;
  y = j == 1 || j == 2 ? sinPoly(z, zz) : cosPoly(zz);
  return sign ? -y : y;
}

/** math.Sin. */
@inline export function sin(x: f64): f64 {
  if (x == 0 || isNaN(x)) return x;
  if (isInf(x)) return goNaN();
  let sign = false;
  if (x < 0) {
    x = -x;
    sign = true;
  }
  let j: u64;
  let y: f64;
  let z: f64;
  if (x >= REDUCE_THRESHOLD) {
    z = trigReduce(x);
    j = reduceJ;
  } else {
    // x < 2^29: the signed conversions give the same values and are
    // single instructions, where the unsigned ones are not.
    j = <u64><i64>(x * (4 / PI));
    y = <f64><i64>j;
    if (j & 1) {
      j++;
      y++;
    }
    j &= 7;
    z = ((x - y * PI4A) - y * PI4B) - y * PI4C;
  }
  if (j > 3) {
    sign = !sign;
    j -= 4;
  }
  const zz = z * z;
  y = j == 1 || j == 2 ? cosPoly(zz) : sinPoly(z, zz);
  return sign ? -y : y;
}

/** The results of sincos. */
export let sinOut: f64 = 0;
export let cosOut: f64 = 0;

/** sincos sets sinOut = sin(x) and cosOut = cos(x), bit for bit, sharing the
 * range reduction and evaluating each polynomial once: a UDF that needs
 * both (as great-circle formulas do) halves its trig cost. */
@inline export function sincos(x: f64): void {
  if (isNaN(x) || isInf(x)) {
    sinOut = isNaN(x) ? x : goNaN();
    cosOut = goNaN();
    return;
  }
  if (x == 0) {
    sinOut = x;
    cosOut = 1;
    return;
  }
  let ssign = false, csign = false;
  if (x < 0) {
    x = -x;
    ssign = true;
  }
  let j: u64;
  let y: f64;
  let z: f64;
  if (x >= REDUCE_THRESHOLD) {
    z = trigReduce(x);
    j = reduceJ;
  } else {
    j = <u64><i64>(x * (4 / PI));
    y = <f64><i64>j;
    if (j & 1) {
      j++;
      y++;
    }
    j &= 7;
    z = ((x - y * PI4A) - y * PI4B) - y * PI4C;
  }
  if (j > 3) {
    j -= 4;
    ssign = !ssign;
    csign = !csign;
  }
  if (j > 1) csign = !csign;
  const zz = z * z;
  const ps = sinPoly(z, zz), pc = cosPoly(zz);
  if (j == 1 || j == 2) {
    sinOut = ssign ? -pc : pc;
    cosOut = csign ? -ps : ps;
  } else {
    sinOut = ssign ? -ps : ps;
    cosOut = csign ? -pc : pc;
  }
}

@inline function xatan(x: f64): f64 {
  const P0: f64 = -8.750608600031904122785e-01;
  const P1: f64 = -1.615753718733365076637e+01;
  const P2: f64 = -7.500855792314704667340e+01;
  const P3: f64 = -1.228866684490136173410e+02;
  const P4: f64 = -6.485021904942025371773e+01;
  const Q0: f64 = +2.485846490142306297962e+01;
  const Q1: f64 = +1.650270098316988542046e+02;
  const Q2: f64 = +4.328810604912902668951e+02;
  const Q3: f64 = +4.853903996359136964868e+02;
  const Q4: f64 = +1.945506571482613964425e+02;
  let z = x * x;
  z = z * ((((P0 * z + P1) * z + P2) * z + P3) * z + P4) / (((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4);
  return x * z + x;
}

@inline function satan(x: f64): f64 {
  const Morebits: f64 = 6.123233995736765886130e-17;
  const Tan3pio8: f64 = 2.41421356237309504880;
  if (x <= 0.66) return xatan(x);
  if (x > Tan3pio8) return PI / 2 - xatan(1 / x) + Morebits;
  return PI / 4 + xatan((x - 1) / (x + 1)) + 0.5 * Morebits;
}

/** math.Atan. */
@inline export function atan(x: f64): f64 {
  if (x == 0) return x;
  if (x > 0) return satan(x);
  return -satan(-x);
}

/** math.Asin. */
@inline export function asin(x: f64): f64 {
  if (x == 0) return x;
  let sign = false;
  if (x < 0) {
    x = -x;
    sign = true;
  }
  if (x > 1) return goNaN();
  let temp = sqrt<f64>(1 - x * x);
  if (x > 0.7) temp = PI / 2 - satan(temp / x);
  else temp = satan(x / temp);
  return sign ? -temp : temp;
}

/** math.Atan2. */
@inline export function atan2(y: f64, x: f64): f64 {
  if (isNaN(y) || isNaN(x)) return goNaN();
  if (y == 0) {
    if (x >= 0 && !signbit(x)) return copysign(0, y);
    return copysign(PI, y);
  }
  if (x == 0) return copysign(PI / 2, y);
  if (isInf(x)) {
    if (x > 0) return isInf(y) ? copysign(PI / 4, y) : copysign(0, y);
    return isInf(y) ? copysign(3 * PI / 4, y) : copysign(PI, y);
  }
  if (isInf(y)) return copysign(PI / 2, y);
  const q = atan(y / x);
  if (x < 0) return q <= 0 ? q + PI : q - PI;
  return q;
}

/** math.Sqrt: f64.sqrt, correctly rounded. */
@inline export function gosqrt(x: f64): f64 { return sqrt<f64>(x); }

/** math.Min. */
@inline export function gomin(x: f64, y: f64): f64 {
  if (isInf(x) && x < 0) return x;
  if (isInf(y) && y < 0) return y;
  if (isNaN(x) || isNaN(y)) return goNaN();
  if (x == 0 && x == y) return signbit(x) ? x : y;
  return x < y ? x : y;
}

/** math.Mod. Go's loop and IEEE fmod (AssemblyScript's f64 %) both give the
 * exact remainder x - trunc(x/y)*y, which is always representable, so the
 * results are equal bit for bit. */
@inline export function mod(x: f64, y: f64): f64 {
  if (y == 0 || isInf(x) || isNaN(x) || isNaN(y)) return goNaN();
  return x % y;
}

/** time.Duration(d).Seconds(). */
@inline export function durationSeconds(d: i64): f64 {
  const sec = d / 1000000000;
  const nsec = d % 1000000000;
  return <f64>sec + <f64>nsec / 1e9;
}
