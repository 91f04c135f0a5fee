/*
 * sailstream_udf.h — the sailstream UDF ABI v1 (udf/ABI.md) for C guests.
 * Single header, C99, no dependencies beyond wasi-libc's malloc.
 *
 * A UDF is a pure function from (device state, batch of readings of one
 * device) to (new state, output records). Write it against the types below
 * and name it once with SAILSTREAM_UDF, which defines the module's exports:
 *
 *     #include "sailstream_udf.h"
 *
 *     static int passthrough(const ss_batch *b, ss_out *o) {
 *         uint32_t hello = ss_name_id(o, "hello");
 *         for (uint32_t i = 0; i < b->count; i++) {
 *             ss_pass(o, b, i);          // emit reading i unchanged ...
 *             ss_set(o, hello, 1.0);     // ... with one more field
 *         }
 *         return 0;                      // nonzero fails the batch
 *     }
 *
 *     SAILSTREAM_UDF("passthrough", "1.0.0", passthrough)
 *
 * Build (Debian packages clang, lld, wasi-libc, libclang-rt-14-dev-wasm32):
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O3 -ffp-contract=off \
 *           -o passthrough.wasm passthrough.c
 *
 * The batch is read in place, without copying: the ss_reading and
 * ss_field arrays point into the buffer the host wrote. Everything the
 * function gets is valid only during the call, and it must not keep
 * anything in static variables from one call to the next: the host may run
 * the same device on any instance, so what must survive goes into the state
 * (ss_set_state). A reading with no output is dropped; ss_emit/ss_pass it
 * several times to emit it several times. Outputs must come in
 * non-decreasing input order.
 *
 * Field names passed to ss_name_id must stay valid until the function
 * returns (string literals are the usual case). Names are 1-64 bytes of
 * [A-Za-z0-9_.-]; values must be finite; lat in [-90, 90], lon in
 * [-180, 180]: the host checks all of it and fails the batch otherwise.
 */
#ifndef SAILSTREAM_UDF_H
#define SAILSTREAM_UDF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SS_ABI_VERSION 1

/* One input reading, exactly as laid out in the input buffer (40 bytes). */
typedef struct ss_reading {
	uint64_t seq;
	int64_t time_ns; /* event time, Unix nanoseconds: the only clock */
	double lat, lon; /* WGS 84 degrees */
	uint32_t field_start; /* into ss_batch.fields */
	uint32_t field_count;
} ss_reading;

/* One field (16 bytes): name is an index into the name table of its
 * buffer. */
typedef struct ss_field {
	uint32_t name;
	uint32_t reserved;
	double value;
} ss_field;

/* One name table entry (8 bytes): UTF-8 bytes at off in the same buffer. */
typedef struct ss_name {
	uint32_t off, len;
} ss_name;

/* One output record (40 bytes), as laid out in the output buffer. */
typedef struct ss_record {
	uint32_t input; /* index of the reading it derives from */
	uint32_t flags; /* 0 */
	int64_t time_ns;
	double lat, lon;
	uint32_t field_start, field_count;
} ss_record;

/* C99 has no static_assert: a negative array size fails the build. */
typedef char ss__check_reading[sizeof(ss_reading) == 40 ? 1 : -1];
typedef char ss__check_field[sizeof(ss_field) == 16 ? 1 : -1];
typedef char ss__check_record[sizeof(ss_record) == 40 ? 1 : -1];

/* ss_batch is the decoded input: one device's readings in event-time
 * order, the state the previous call returned (state_len 0 for a new
 * device, or after a swap from a UDF with another state format: check
 * it), and the tables the readings index. */
typedef struct ss_batch {
	const uint8_t *buf;
	uint32_t len;
	const char *device; /* UTF-8, not NUL-terminated */
	uint32_t device_len;
	const uint8_t *state;
	uint32_t state_len;
	const ss_reading *readings;
	uint32_t count;
	const ss_field *fields;
	uint32_t field_count;
	const ss_name *names;
	uint32_t name_count;
} ss_batch;

/* ss_out collects the outputs of one call; the SDK lays them out in ABI v1
 * when the function returns. Opaque: use the functions below. */
typedef struct ss_out {
	ss_record *recs;
	uint32_t n, cap;
	ss_field *fields;
	uint32_t nf, capf;
	const char **names;
	uint32_t *name_lens;
	uint32_t nn, capn;
	uint8_t *state;
	uint32_t state_len, state_cap;
	const char *err;
	int oom;
} ss_out;

/* ss_udf is the signature of a UDF: return 0 on success; anything else
 * fails the batch (its readings go to the dead-letter queue) with the
 * message given to ss_fail, if any. */
typedef int (*ss_udf)(const ss_batch *b, ss_out *o);

/* ---- reading the batch ------------------------------------------------ */

/* ss_name_bytes returns name i of the batch's name table and its length. */
static inline const char *ss_name_bytes(const ss_batch *b, uint32_t i, uint32_t *len) {
	*len = b->names[i].len;
	return (const char *)b->buf + b->names[i].off;
}

/* ss_find_name returns the index of name in the batch's name table, or -1:
 * look a name up once per call, then compare indexes. */
static inline int32_t ss_find_name(const ss_batch *b, const char *name) {
	size_t n = strlen(name);
	for (uint32_t i = 0; i < b->name_count; i++) {
		if (b->names[i].len == n && memcmp(b->buf + b->names[i].off, name, n) == 0) return (int32_t)i;
	}
	return -1;
}

/* ss_get sets *v to the field of reading i whose name has index name (from
 * ss_find_name) and returns 1, or returns 0 when the reading lacks it. */
static inline int ss_get(const ss_batch *b, uint32_t i, int32_t name, double *v) {
	const ss_reading *r = &b->readings[i];
	for (uint32_t k = 0; k < r->field_count; k++) {
		const ss_field *f = &b->fields[r->field_start + k];
		if ((int32_t)f->name == name) {
			*v = f->value;
			return 1;
		}
	}
	return 0;
}

/* ---- writing the outputs ---------------------------------------------- */

static inline int ss__grow(void **p, uint32_t *cap, uint32_t need, size_t size) {
	if (need <= *cap) return 1;
	uint32_t c = *cap ? *cap : 16;
	while (c < need) c *= 2;
	void *q = realloc(*p, (size_t)c * size);
	if (!q) return 0;
	*p = q;
	*cap = c;
	return 1;
}

/* ss_name_id interns a field name for this call's outputs and returns its
 * id for ss_set. */
static inline uint32_t ss_name_id(ss_out *o, const char *name) {
	uint32_t n = (uint32_t)strlen(name);
	for (uint32_t i = 0; i < o->nn; i++) {
		if (o->name_lens[i] == n && memcmp(o->names[i], name, n) == 0) return i;
	}
	uint32_t capn = o->capn;
	if (!ss__grow((void **)&o->names, &capn, o->nn + 1, sizeof *o->names) ||
		!ss__grow((void **)&o->name_lens, &o->capn, o->nn + 1, sizeof *o->name_lens)) {
		o->oom = 1;
		return 0;
	}
	o->names[o->nn] = name;
	o->name_lens[o->nn] = n;
	return o->nn++;
}

/* ss_emit starts an output record derived from reading input. Returns 0,
 * or -1 when memory runs out (the batch then fails). */
static inline int ss_emit(ss_out *o, uint32_t input, int64_t time_ns, double lat, double lon) {
	if (o->n == o->cap && !ss__grow((void **)&o->recs, &o->cap, o->n + 1, sizeof *o->recs)) {
		o->oom = 1;
		return -1;
	}
	ss_record *r = &o->recs[o->n++];
	r->input = input;
	r->flags = 0;
	r->time_ns = time_ns;
	r->lat = lat;
	r->lon = lon;
	r->field_start = o->nf;
	r->field_count = 0;
	return 0;
}

/* ss_pass emits reading i of b unchanged (its own fields stay on the
 * enriched record without being repeated here). */
static inline int ss_pass(ss_out *o, const ss_batch *b, uint32_t i) {
	const ss_reading *r = &b->readings[i];
	return ss_emit(o, i, r->time_ns, r->lat, r->lon);
}

/* ss_set sets field name (an id from ss_name_id) on the record last
 * emitted, replacing a value set before. */
static inline int ss_set(ss_out *o, uint32_t name, double value) {
	if (o->n == 0) return -1;
	ss_record *r = &o->recs[o->n - 1];
	for (uint32_t k = r->field_start; k < o->nf; k++) {
		if (o->fields[k].name == name) {
			o->fields[k].value = value;
			return 0;
		}
	}
	if (o->nf == o->capf && !ss__grow((void **)&o->fields, &o->capf, o->nf + 1, sizeof *o->fields)) {
		o->oom = 1;
		return -1;
	}
	ss_field *f = &o->fields[o->nf++];
	f->name = name;
	f->reserved = 0;
	f->value = value;
	r->field_count++;
	return 0;
}

/* ss_add adds field name (an id from ss_name_id) to the record last
 * emitted, like ss_set but without looking for an earlier value of it: for
 * a hot loop that sets each field once per record. Add a name at most
 * once per record (use ss_set otherwise). */
static inline __attribute__((always_inline)) int ss_add(ss_out *o, uint32_t name, double value) {
	if (o->n == 0) return -1;
	if (o->nf == o->capf && !ss__grow((void **)&o->fields, &o->capf, o->nf + 1, sizeof *o->fields)) {
		o->oom = 1;
		return -1;
	}
	ss_field *f = &o->fields[o->nf++];
	f->name = name;
	f->reserved = 0;
	f->value = value;
	o->recs[o->n - 1].field_count++;
	return 0;
}

/* ss_set_state copies len bytes at p as the device's new state (none is
 * kept unless set). p may point into the batch, e.g. b->state. */
static inline int ss_set_state(ss_out *o, const void *p, uint32_t len) {
	if (!ss__grow((void **)&o->state, &o->state_cap, len, 1)) {
		o->oom = 1;
		return -1;
	}
	if (len) memcpy(o->state, p, len);
	o->state_len = len;
	return 0;
}

/* ss_fail records msg (a string that outlives the call, e.g. a literal)
 * as the reason the batch fails; return nonzero after it. */
static inline int ss_fail(ss_out *o, const char *msg) {
	o->err = msg;
	return 1;
}

/* ---- little-endian helpers for state formats --------------------------- */

static inline uint64_t ss_load_u64(const uint8_t *p) {
	uint64_t v;
	memcpy(&v, p, 8); /* WebAssembly is little-endian */
	return v;
}
static inline void ss_store_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline double ss_load_f64(const uint8_t *p) {
	double v;
	memcpy(&v, p, 8);
	return v;
}
static inline void ss_store_f64(uint8_t *p, double v) { memcpy(p, &v, 8); }

/* ---- the ABI (used by SAILSTREAM_UDF) ----------------------------------- */

/* Scratch reused from call to call; none of it is state. */
static uint8_t *ss__in;
static uint32_t ss__in_cap;
static uint8_t *ss__outbuf;
static uint32_t ss__out_cap;
static ss_out ss__o;

static inline uint32_t ss__u32(const uint8_t *p) {
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline void ss__put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static inline int64_t ss__pack(const void *p, uint32_t len) {
	return (int64_t)(((uint64_t)(uintptr_t)p << 32) | len);
}

static inline uint32_t ss__alloc(uint32_t size) {
	if (size > ss__in_cap) {
		uint32_t c = size < 4096 ? 4096 : size + size / 4;
		void *p = realloc(ss__in, c);
		if (!p) return 0;
		ss__in = (uint8_t *)p;
		ss__in_cap = c;
	}
	return (uint32_t)(uintptr_t)ss__in;
}

static inline int64_t ss__error(const char *msg) {
	uint32_t n = (uint32_t)strlen(msg);
	static uint8_t small[48 + 128];
	uint8_t *b = small;
	if (n > 128) n = 128;
	memset(b, 0, 48);
	ss__put32(b, SS_ABI_VERSION);
	ss__put32(b + 4, 1);
	ss__put32(b + 40, 48);
	ss__put32(b + 44, n);
	memcpy(b + 48, msg, n);
	return ss__pack(b, 48 + n);
}

/* ss__decode checks the host's input and fills b; 0 on success. */
static inline int ss__decode(const uint8_t *in, uint32_t len, ss_batch *b) {
	if (len < 48 || ss__u32(in) != SS_ABI_VERSION) return -1;
	uint32_t h[11];
	for (int i = 0; i < 11; i++) h[i] = ss__u32(in + 4 + 4 * i);
	/* h: 0 count, 1 readings_off, 2 field_count, 3 fields_off, 4 name_count,
	 * 5 names_off, 6 state_off, 7 state_len, 8 device_off, 9 device_len */
#define SS__IN(off, n, size) ((uint64_t)(off) + (uint64_t)(n) * (size) <= len)
	if (!SS__IN(h[1], h[0], 40) || !SS__IN(h[3], h[2], 16) || !SS__IN(h[5], h[4], 8) ||
		!SS__IN(h[6], h[7], 1) || !SS__IN(h[8], h[9], 1))
		return -1;
	b->buf = in;
	b->len = len;
	b->count = h[0];
	b->readings = (const ss_reading *)(in + h[1]);
	b->field_count = h[2];
	b->fields = (const ss_field *)(in + h[3]);
	b->name_count = h[4];
	b->names = (const ss_name *)(in + h[5]);
	b->state = in + h[6];
	b->state_len = h[7];
	b->device = (const char *)in + h[8];
	b->device_len = h[9];
	for (uint32_t i = 0; i < b->name_count; i++) {
		if (!SS__IN(b->names[i].off, b->names[i].len, 1)) return -1;
	}
	for (uint32_t i = 0; i < b->field_count; i++) {
		if (b->fields[i].name >= b->name_count) return -1;
	}
	for (uint32_t i = 0; i < b->count; i++) {
		if ((uint64_t)b->readings[i].field_start + b->readings[i].field_count > b->field_count) return -1;
	}
#undef SS__IN
	return 0;
}

/* ss__encode lays out the outputs collected in o. */
static inline int64_t ss__encode(ss_out *o) {
	uint32_t str = 0;
	for (uint32_t i = 0; i < o->nn; i++) str += o->name_lens[i];
	uint64_t outs_off = 48;
	uint64_t fields_off = outs_off + 40ull * o->n;
	uint64_t names_off = fields_off + 16ull * o->nf;
	uint64_t str_off = names_off + 8ull * o->nn;
	uint64_t state_off = str_off + str;
	uint64_t total = state_off + o->state_len;
	if (total > 0x7fffffffu) return ss__error("sdk: output too large");
	if (total > ss__out_cap) {
		uint32_t c = (uint32_t)(total + total / 4);
		void *p = realloc(ss__outbuf, c);
		if (!p) return ss__error("sdk: out of memory");
		ss__outbuf = (uint8_t *)p;
		ss__out_cap = c;
	}
	uint8_t *b = ss__outbuf;
	uint32_t h[12] = {SS_ABI_VERSION, 0, o->n, (uint32_t)outs_off, o->nf, (uint32_t)fields_off,
		o->nn, (uint32_t)names_off, (uint32_t)state_off, o->state_len, 0, 0};
	memcpy(b, h, 48);
	if (o->n) memcpy(b + outs_off, o->recs, 40u * o->n);
	if (o->nf) memcpy(b + fields_off, o->fields, 16u * o->nf);
	uint32_t s = (uint32_t)str_off;
	for (uint32_t i = 0; i < o->nn; i++) {
		ss_name e = {s, o->name_lens[i]};
		memcpy(b + names_off + 8u * i, &e, 8);
		memcpy(b + s, o->names[i], o->name_lens[i]);
		s += o->name_lens[i];
	}
	if (o->state_len) memcpy(b + state_off, o->state, o->state_len);
	return ss__pack(b, (uint32_t)total);
}

static inline int64_t ss__process(ss_udf fn, uint32_t ptr, uint32_t len) {
	if (ss__in == NULL || ptr != (uint32_t)(uintptr_t)ss__in || len > ss__in_cap)
		return ss__error("sdk: process called with a buffer sailstream_v1_alloc did not return");
	ss_batch b;
	if (ss__decode(ss__in, len, &b) != 0) return ss__error("sdk: malformed input");
	ss_out *o = &ss__o;
	o->n = o->nf = o->nn = o->state_len = 0;
	o->err = NULL;
	o->oom = 0;
	int rc = fn(&b, o);
	if (o->oom) return ss__error("sdk: out of memory");
	if (rc != 0) return ss__error(o->err ? o->err : "udf failed");
	return ss__encode(o);
}

/* SAILSTREAM_UDF defines the module's ABI v1 exports for the UDF FN, named
 * NAME at VERSION (string literals of JSON-safe characters). Use it once
 * per module. */
#define SAILSTREAM_UDF(NAME, VERSION, FN)                                                   \
	__attribute__((export_name("sailstream_abi_version"))) int32_t ss__abi_version(void) { \
		return SS_ABI_VERSION;                                                              \
	}                                                                                       \
	__attribute__((export_name("sailstream_v1_alloc"))) uint32_t ss__alloc_export(uint32_t n) { \
		return ss__alloc(n);                                                                \
	}                                                                                       \
	__attribute__((export_name("sailstream_v1_process"))) int64_t ss__process_export(      \
		uint32_t p, uint32_t n) {                                                           \
		return ss__process(FN, p, n);                                                       \
	}                                                                                       \
	static const char ss__info[] = "{\"name\":\"" NAME "\",\"version\":\"" VERSION "\"}";   \
	__attribute__((export_name("sailstream_v1_info"))) int64_t ss__info_export(void) {     \
		return ss__pack(ss__info, sizeof ss__info - 1);                                     \
	}

#endif
