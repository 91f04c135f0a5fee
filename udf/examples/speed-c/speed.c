/*
 * speed — the default sailstream UDF in C: for every reading, the distance
 * from the device's previous reading, the speed over ground and the
 * course. The same logic as package motion (and udf/examples/speed, the Go
 * guest), with the same state format (package lastfix: "fix1", seq,
 * time_ns, lat, lon), so a route can swap between the Go, AssemblyScript
 * and C versions without losing a device's previous position. The trig
 * comes from gomath.h, Go's algorithms, so all three agree bit for bit on
 * the shared vectors (udf/testdata/speed).
 *
 * Build:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O3 -ffp-contract=off \
 *           -o speed.wasm speed.c
 */
#include "../../sdk/c/gomath.h"
#include "../../sdk/c/sailstream_udf.h"

#define EARTH_RADIUS_M 6371008.8
#define LASTFIX_SIZE (4 + 8 + 8 + 8 + 8)

GO_INLINE double rad(double d) { return d * GO_PI / 180; }
GO_INLINE double deg(double r) { return r * 180 / GO_PI; }

/* A fix with the sine and cosine of its latitude, which geo.Distance and
 * geo.Bearing both need: computed once per reading (go_sincos gives the
 * same bits as go_sin and go_cos), not four times per pair. */
typedef struct fix {
	double lat, lon, sinlat, coslat;
} fix;

GO_INLINE fix mkfix(double lat, double lon) {
	fix f = {lat, lon, 0, 0};
	go_sincos(rad(lat), &f.sinlat, &f.coslat);
	return f;
}

/* geo.Distance: haversine, metres. */
GO_INLINE double distance(const fix *a, const fix *b) {
	double dp = rad(b->lat) - rad(a->lat);
	double dl = rad(b->lon - a->lon);
	double s1 = go_sin(dp / 2), s2 = go_sin(dl / 2);
	double h = s1 * s1 + a->coslat * b->coslat * s2 * s2;
	return 2 * EARTH_RADIUS_M * go_asin(go_sqrt(go_min(1, h)));
}

/* geo.Bearing: initial bearing in [0, 360). */
GO_INLINE double bearing(const fix *a, const fix *b) {
	double sdl, cdl;
	go_sincos(rad(b->lon - a->lon), &sdl, &cdl);
	double y = sdl * b->coslat;
	double x = a->coslat * b->sinlat - a->sinlat * b->coslat * cdl;
	if (x == 0 && y == 0) return 0;
	/* geo takes go_mod(v, 360) of v = deg(atan2) + 360, which is in
	 * [180, 540] (or NaN): there the remainder is v, or v - 360, which is
	 * exact (Sterbenz: 360 <= v <= 720), so one comparison gives the same
	 * bits as the division loop. */
	double d = deg(go_atan2(y, x)) + 360;
	if (d >= 360) d -= 360;
	return d >= 360 ? 0 : d;
}

/* motion.sub: a-b saturating like time.Time.Sub. */
GO_INLINE int64_t sub(int64_t a, int64_t b) {
	int64_t d = (int64_t)((uint64_t)a - (uint64_t)b);
	if (b < 0 && d < a) return INT64_MAX;
	if (b > 0 && d > a) return INT64_MIN;
	return d;
}

static int speed(const ss_batch *b, ss_out *o) {
	const uint32_t kDist = ss_name_id(o, "distance_m");
	const uint32_t kSpeed = ss_name_id(o, "speed_ms");
	const uint32_t kCourse = ss_name_id(o, "course_deg");
	if (b->count == 0) return ss_set_state(o, b->state, b->state_len); /* keep it as it is */
	int ok = b->state_len >= LASTFIX_SIZE && memcmp(b->state, "fix1", 4) == 0;
	uint64_t seq = 0;
	int64_t t = 0;
	fix last = {0, 0, 0, 0};
	if (ok) {
		seq = ss_load_u64(b->state + 4);
		t = (int64_t)ss_load_u64(b->state + 12);
		last = mkfix(ss_load_f64(b->state + 20), ss_load_f64(b->state + 28));
	}
	for (uint32_t i = 0; i < b->count; i++) {
		const ss_reading *r = &b->readings[i];
		fix cur = mkfix(r->lat, r->lon);
		double dist = 0, spd = 0, course = 0;
		if (ok) { /* motion.Step */
			dist = distance(&last, &cur);
			if (dist > 0) course = bearing(&last, &cur);
			double s = go_duration_seconds(sub(r->time_ns, t));
			if (s > 0) spd = dist / s;
		}
		if (ss_pass(o, b, i) != 0) return 1;
		ss_add(o, kDist, dist);
		ss_add(o, kSpeed, spd);
		ss_add(o, kCourse, course);
		seq = r->seq, t = r->time_ns, last = cur, ok = 1;
	}
	if (!ok) return ss_set_state(o, b->state, b->state_len);
	uint8_t st[LASTFIX_SIZE];
	memcpy(st, "fix1", 4);
	ss_store_u64(st + 4, seq);
	ss_store_u64(st + 12, (uint64_t)t);
	ss_store_f64(st + 20, last.lat);
	ss_store_f64(st + 28, last.lon);
	return ss_set_state(o, st, sizeof st);
}

SAILSTREAM_UDF("speed", "1.0.0", speed)
