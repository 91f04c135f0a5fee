/*
 * gomath.h — Go's math.Sin, Cos, Asin, Atan, Atan2, Sqrt, Min, Mod and
 * time.Duration.Seconds, ported to C99 so that a C UDF computes the very
 * same bits as the Go code it mirrors (sailstream's motion and geo
 * packages). libm implementations differ in the last bit; the shared test
 * vectors (udf/testdata) compare results bit for bit, so the C and
 * AssemblyScript guests carry the Go algorithms rather than their
 * language's libm.
 *
 * Build with -ffp-contract=off (guestbuild does): a fused multiply-add
 * rounds once where Go rounds twice. WebAssembly has no FMA, so this only
 * matters when the same source is compiled natively.
 *
 * Ported from the Go standard library (src/math/{sin,trig_reduce,asin,
 * atan,atan2,mod,dim}.go and src/time/time.go), which carries this notice:
 *
 *   Copyright 2009 The Go Authors. All rights reserved.
 *   Use of this source code is governed by a BSD-style license that can be
 *   found in the LICENSE file of the Go distribution:
 *
 *   Redistribution and use in source and binary forms, with or without
 *   modification, are permitted provided that the following conditions are
 *   met:
 *     * Redistributions of source code must retain the above copyright
 *   notice, this list of conditions and the following disclaimer.
 *     * Redistributions in binary form must reproduce the above copyright
 *   notice, this list of conditions and the following disclaimer in the
 *   documentation and/or other materials provided with the distribution.
 *     * Neither the name of Google LLC nor the names of its contributors
 *   may be used to endorse or promote products derived from this software
 *   without specific prior written permission.
 *   THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
 *   "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
 *   LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
 *   PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT OWNER
 *   OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
 *   EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
 *   PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
 *   PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF
 *   LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
 *   NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
 *   SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
 *
 * The original algorithms are from the Cephes Math Library (Stephen L.
 * Moshier) and FreeBSD's msun; see the Go sources for their notices.
 */
#ifndef SAILSTREAM_GOMATH_H
#define SAILSTREAM_GOMATH_H

#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

/* GO_INLINE: the trig is small and runs per reading; a call costs more
 * in a WebAssembly runtime than the work it wraps (register spills, and
 * sailstream's host adds a preemption check at every function entry), so
 * the hot functions are always inlined. The rare Payne-Hanek path is kept
 * out of line. */
#define GO_INLINE static inline __attribute__((always_inline))

#define GO_PI 3.14159265358979323846264338327950288419716939937510582097494459

GO_INLINE uint64_t go_f64bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
GO_INLINE double go_f64frombits(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
GO_INLINE int go_isnan(double x) { return x != x; }
GO_INLINE int go_isinf(double x) { return x > 1.7976931348623157e308 || x < -1.7976931348623157e308; }
GO_INLINE double go_nan(void) { return go_f64frombits(0x7FF8000000000001ull); }
GO_INLINE double go_abs(double x) { return go_f64frombits(go_f64bits(x) & ~(1ull << 63)); }
GO_INLINE int go_signbit(double x) { return (go_f64bits(x) >> 63) != 0; }
GO_INLINE double go_copysign(double f, double sign) {
	return go_f64frombits((go_f64bits(f) & ~(1ull << 63)) | (go_f64bits(sign) & (1ull << 63)));
}

/* go_sqrt is IEEE 754 square root: one instruction (f64.sqrt), the same
 * correctly rounded result everywhere. */
GO_INLINE double go_sqrt(double x) { return __builtin_sqrt(x); }

/* math.Min. */
GO_INLINE double go_min(double x, double y) {
	if (go_isinf(x) && x < 0) return x;
	if (go_isinf(y) && y < 0) return y;
	if (go_isnan(x) || go_isnan(y)) return go_nan();
	if (x == 0 && x == y) return go_signbit(x) ? x : y;
	return x < y ? x : y;
}

static const double go__sin[6] = {
	1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
	-1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1,
};
static const double go__cos[6] = {
	-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
	2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2,
};
static const uint64_t go__mpi4[20] = {
	0x0000000000000001ull, 0x45f306dc9c882a53ull, 0xf84eafa3ea69bb81ull, 0xb6c52b3278872083ull,
	0xfca2c757bd778ac3ull, 0x6e48dc74849ba5c0ull, 0x0c925dd413a32439ull, 0xfc3bd63962534e7dull,
	0xd1046bea5d768909ull, 0xd338e04d68befc82ull, 0x7323ac7306a673e9ull, 0x3908bf177bf25076ull,
	0x3ff12fffbc0b301full, 0xde5e2316b414da3eull, 0xda6cfd9e4f96136eull, 0x9e8c7ecd3cbfd45aull,
	0xea4f758fd7cbe2f6ull, 0x7a0e73ef14a525d4ull, 0xd7f6bf623f1aba10ull, 0xac06608df8f6d757ull,
};

#define GO__PI4A 7.85398125648498535156e-1
#define GO__PI4B 3.77489470793079817668e-8
#define GO__PI4C 2.69515142907905952645e-15
#define GO__REDUCE_THRESHOLD 536870912.0 /* 1 << 29 */

static inline void go__mul64(uint64_t x, uint64_t y, uint64_t *hi, uint64_t *lo) {
	const uint64_t m32 = 0xffffffffull;
	uint64_t x0 = x & m32, x1 = x >> 32, y0 = y & m32, y1 = y >> 32;
	uint64_t w0 = x0 * y0;
	uint64_t t = x1 * y0 + (w0 >> 32);
	uint64_t w1 = t & m32, w2 = t >> 32;
	w1 += x0 * y1;
	*hi = x1 * y1 + w2 + (w1 >> 32);
	*lo = x * y;
}

/* Payne–Hanek reduction for |x| >= 2^29 (math/trig_reduce.go). */
static inline __attribute__((noinline)) void go__trig_reduce(double x, uint64_t *jp, double *zp) {
	const double PI4 = GO_PI / 4;
	if (x < PI4) { *jp = 0; *zp = x; return; }
	uint64_t ix = go_f64bits(x);
	int exp = (int)((ix >> 52) & 0x7ff) - 1023 - 52;
	ix &= ~(0x7ffull << 52);
	ix |= 1ull << 52;
	unsigned digit = (unsigned)(exp + 61) / 64, bitshift = (unsigned)(exp + 61) % 64;
	/* Go's shifts by 64 give 0; C's are undefined, hence the guards. */
#define GO__SHR(v, s) ((s) >= 64 ? 0 : (v) >> (s))
#define GO__SHL(v, s) ((s) >= 64 ? 0 : (v) << (s))
	uint64_t z0 = GO__SHL(go__mpi4[digit], bitshift) | GO__SHR(go__mpi4[digit + 1], 64 - bitshift);
	uint64_t z1 = GO__SHL(go__mpi4[digit + 1], bitshift) | GO__SHR(go__mpi4[digit + 2], 64 - bitshift);
	uint64_t z2 = GO__SHL(go__mpi4[digit + 2], bitshift) | GO__SHR(go__mpi4[digit + 3], 64 - bitshift);
	uint64_t z2hi, z2lo, z1hi, z1lo;
	go__mul64(z2, ix, &z2hi, &z2lo);
	go__mul64(z1, ix, &z1hi, &z1lo);
	(void)z2lo;
	uint64_t z0lo = z0 * ix;
	uint64_t lo = z1lo + z2hi;
	uint64_t c = lo < z1lo;
	uint64_t hi = z0lo + z1hi + c;
	uint64_t j = hi >> 61;
	hi = hi << 3 | lo >> 61;
	unsigned lz = hi ? (unsigned)__builtin_clzll(hi) : 64;
	uint64_t e = (uint64_t)(1023 - (lz + 1));
	hi = GO__SHL(hi, lz + 1) | GO__SHR(lo, 64 - (lz + 1));
	hi >>= 64 - 52;
	hi |= e << 52;
#undef GO__SHR
#undef GO__SHL
	double z = go_f64frombits(hi);
	if (j & 1) { j++; j &= 7; z--; }
	*jp = j;
	*zp = z * PI4;
}

/* math.Cos. */
GO_INLINE double go_cos(double x) {
	if (go_isnan(x) || go_isinf(x)) return go_nan();
	int sign = 0;
	x = go_abs(x);
	uint64_t j;
	double y, z;
	if (x >= GO__REDUCE_THRESHOLD) {
		go__trig_reduce(x, &j, &z);
	} else {
		/* x < 2^29: the signed conversions give the same values and are
		 * single instructions, where the unsigned ones are not. */
		j = (uint64_t)(int64_t)(x * (4 / GO_PI));
		y = (double)(int64_t)j;
		if (j & 1) { j++; y++; }
		j &= 7;
		z = ((x - y * GO__PI4A) - y * GO__PI4B) - y * GO__PI4C;
	}
	if (j > 3) { j -= 4; sign = !sign; }
	if (j > 1) sign = !sign;
	double zz = z * z;
	if (j == 1 || j == 2) {
		y = z + z * zz * ((((((go__sin[0] * zz) + go__sin[1]) * zz + go__sin[2]) * zz + go__sin[3]) * zz + go__sin[4]) * zz + go__sin[5]);
	} else {
		y = 1.0 - 0.5 * zz + zz * zz * ((((((go__cos[0] * zz) + go__cos[1]) * zz + go__cos[2]) * zz + go__cos[3]) * zz + go__cos[4]) * zz + go__cos[5]);
	}
	return sign ? -y : y;
}

/* math.Sin. */
GO_INLINE double go_sin(double x) {
	if (x == 0 || go_isnan(x)) return x;
	if (go_isinf(x)) return go_nan();
	int sign = 0;
	if (x < 0) { x = -x; sign = 1; }
	uint64_t j;
	double y, z;
	if (x >= GO__REDUCE_THRESHOLD) {
		go__trig_reduce(x, &j, &z);
	} else {
		/* x < 2^29: the signed conversions give the same values and are
		 * single instructions, where the unsigned ones are not. */
		j = (uint64_t)(int64_t)(x * (4 / GO_PI));
		y = (double)(int64_t)j;
		if (j & 1) { j++; y++; }
		j &= 7;
		z = ((x - y * GO__PI4A) - y * GO__PI4B) - y * GO__PI4C;
	}
	if (j > 3) { sign = !sign; j -= 4; }
	double zz = z * z;
	if (j == 1 || j == 2) {
		y = 1.0 - 0.5 * zz + zz * zz * ((((((go__cos[0] * zz) + go__cos[1]) * zz + go__cos[2]) * zz + go__cos[3]) * zz + go__cos[4]) * zz + go__cos[5]);
	} else {
		y = z + z * zz * ((((((go__sin[0] * zz) + go__sin[1]) * zz + go__sin[2]) * zz + go__sin[3]) * zz + go__sin[4]) * zz + go__sin[5]);
	}
	return sign ? -y : y;
}

/* go_sincos sets *s = go_sin(x) and *c = go_cos(x), bit for bit, sharing
 * the range reduction and evaluating each polynomial once: a UDF that
 * needs both (as great-circle formulas do) halves its trig cost. */
GO_INLINE void go_sincos(double x, double *s, double *c) {
	if (go_isnan(x) || go_isinf(x)) {
		*s = x == x ? go_nan() : x;
		*c = go_nan();
		return;
	}
	if (x == 0) {
		*s = x;
		*c = 1;
		return;
	}
	int ssign = 0, csign = 0;
	if (x < 0) { x = -x; ssign = 1; }
	uint64_t j;
	double y, z;
	if (x >= GO__REDUCE_THRESHOLD) {
		go__trig_reduce(x, &j, &z);
	} else {
		j = (uint64_t)(int64_t)(x * (4 / GO_PI));
		y = (double)(int64_t)j;
		if (j & 1) { j++; y++; }
		j &= 7;
		z = ((x - y * GO__PI4A) - y * GO__PI4B) - y * GO__PI4C;
	}
	if (j > 3) { j -= 4; ssign = !ssign; csign = !csign; }
	if (j > 1) csign = !csign;
	double zz = z * z;
	double ps = z + z * zz * ((((((go__sin[0] * zz) + go__sin[1]) * zz + go__sin[2]) * zz + go__sin[3]) * zz + go__sin[4]) * zz + go__sin[5]);
	double pc = 1.0 - 0.5 * zz + zz * zz * ((((((go__cos[0] * zz) + go__cos[1]) * zz + go__cos[2]) * zz + go__cos[3]) * zz + go__cos[4]) * zz + go__cos[5]);
	if (j == 1 || j == 2) {
		*s = ssign ? -pc : pc;
		*c = csign ? -ps : ps;
	} else {
		*s = ssign ? -ps : ps;
		*c = csign ? -pc : pc;
	}
}

GO_INLINE double go__xatan(double x) {
	const double P0 = -8.750608600031904122785e-01, P1 = -1.615753718733365076637e+01,
		P2 = -7.500855792314704667340e+01, P3 = -1.228866684490136173410e+02,
		P4 = -6.485021904942025371773e+01, Q0 = +2.485846490142306297962e+01,
		Q1 = +1.650270098316988542046e+02, Q2 = +4.328810604912902668951e+02,
		Q3 = +4.853903996359136964868e+02, Q4 = +1.945506571482613964425e+02;
	double z = x * x;
	z = z * ((((P0 * z + P1) * z + P2) * z + P3) * z + P4) / (((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4);
	z = x * z + x;
	return z;
}

GO_INLINE double go__satan(double x) {
	const double Morebits = 6.123233995736765886130e-17, Tan3pio8 = 2.41421356237309504880;
	if (x <= 0.66) return go__xatan(x);
	if (x > Tan3pio8) return GO_PI / 2 - go__xatan(1 / x) + Morebits;
	return GO_PI / 4 + go__xatan((x - 1) / (x + 1)) + 0.5 * Morebits;
}

/* math.Atan. */
GO_INLINE double go_atan(double x) {
	if (x == 0) return x;
	if (x > 0) return go__satan(x);
	return -go__satan(-x);
}

/* math.Asin. */
GO_INLINE double go_asin(double x) {
	if (x == 0) return x;
	int sign = 0;
	if (x < 0) { x = -x; sign = 1; }
	if (x > 1) return go_nan();
	double temp = go_sqrt(1 - x * x);
	if (x > 0.7) temp = GO_PI / 2 - go__satan(temp / x);
	else temp = go__satan(x / temp);
	return sign ? -temp : temp;
}

/* math.Atan2. */
GO_INLINE double go_atan2(double y, double x) {
	if (go_isnan(y) || go_isnan(x)) return go_nan();
	if (y == 0) {
		if (x >= 0 && !go_signbit(x)) return go_copysign(0, y);
		return go_copysign(GO_PI, y);
	}
	if (x == 0) return go_copysign(GO_PI / 2, y);
	if (go_isinf(x)) {
		if (x > 0) return go_isinf(y) ? go_copysign(GO_PI / 4, y) : go_copysign(0, y);
		return go_isinf(y) ? go_copysign(3 * GO_PI / 4, y) : go_copysign(GO_PI, y);
	}
	if (go_isinf(y)) return go_copysign(GO_PI / 2, y);
	double q = go_atan(y / x);
	if (x < 0) return q <= 0 ? q + GO_PI : q - GO_PI;
	return q;
}

/* math.Mod. Go's loop and IEEE fmod both give the exact remainder
 * x - trunc(x/y)*y, which is always representable: the results are equal
 * bit for bit, so the library's fmod stands in for the loop. */
GO_INLINE double go_mod(double x, double y) {
	if (y == 0 || go_isinf(x) || go_isnan(x) || go_isnan(y)) return go_nan();
	return __builtin_fmod(x, y);
}

/* time.Duration(ns).Seconds(). */
GO_INLINE double go_duration_seconds(int64_t d) {
	int64_t sec = d / 1000000000;
	int64_t nsec = d % 1000000000;
	return (double)sec + (double)nsec / 1e9;
}

#endif
