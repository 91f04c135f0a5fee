import test from 'node:test';
import assert from 'node:assert/strict';
import {
  activeFlags, backoff, colour, extraFields, FLAG_HOLD_MS, formatAge, formatCourse, formatField, formatKnots, formatMS, formatUDF, isNewer, noteFlags, speedKnots,
} from './format.js';

test('speed in knots and m/s', () => {
  assert.equal(formatKnots(speedKnots({ speed_kn: 5.04, speed_ms: 2.59 })), '5.0 kn');
  assert.equal(formatKnots(speedKnots({ speed_ms: 1 })), '1.9 kn');
  assert.equal(formatKnots(speedKnots({})), '0.0 kn');
  assert.equal(formatMS(2.594), '2.59 m/s');
  assert.equal(formatMS(undefined), '0.00 m/s');
});

test('course', () => {
  for (const [deg, want] of [[0, '000° N'], [44, '044° NE'], [359.7, '000° N'], [180, '180° S'], [-90, '270° W'], [NaN, '—']]) {
    assert.equal(formatCourse(deg), want, `course ${deg}`);
  }
});

test('age', () => {
  for (const [ms, want] of [[-50, '0.0 s'], [400, '0.4 s'], [12300, '12 s'], [180000, '3 min'], [7_200_000, '2 h'], [NaN, '—']]) {
    assert.equal(formatAge(ms), want, `age ${ms}`);
  }
});

test('backoff grows, is capped and jittered', () => {
  assert.equal(backoff(0, () => 0), 500);
  assert.equal(backoff(1, () => 0), 1000);
  assert.equal(backoff(30, () => 0), 15000);
  assert.equal(backoff(30, () => 1), 18750);
});

test('colour is stable per device', () => {
  assert.equal(colour('boat-1'), colour('boat-1'));
  assert.match(colour('boat-2'), /^#[0-9a-f]{6}$/);
});

test('isNewer orders by event time, then seq', () => {
  const a = { time: '2026-06-01T12:00:00Z', seq: 1 };
  const b = { time: '2026-06-01T12:00:01Z', seq: 2 };
  assert.ok(isNewer(a, undefined));
  assert.ok(isNewer(b, a));
  assert.ok(!isNewer(a, b));
  assert.ok(!isNewer(a, a));
  assert.ok(isNewer({ ...a, seq: 2 }, a));
});

test('UDF name and version', () => {
  for (const [r, want] of [
    [{ udf: 'geofence', udf_version: '1.0.0' }, 'geofence v1.0.0'],
    [{ udf: 'speed', udf_version: 'v2' }, 'speed v2'],
    [{ udf: 'hello', udf_version: 'dev-3' }, 'hello dev-3'],
    [{ udf: 'speed' }, 'speed'],
    [{ udf_version: '1.0.0' }, ''],
    [{}, ''],
    [null, ''],
  ]) {
    assert.equal(formatUDF(r), want, JSON.stringify(r));
  }
});

test('field values', () => {
  for (const [v, want] of [[1, '1'], [0, '0'], [-3, '-3'], [0.12345, '0.123'], [12.3456, '12.35'], [143.27, '143.3'], [2.5, '2.5'], [Infinity, '—'], ['x', '—']]) {
    assert.equal(formatField(v), want, `value ${v}`);
  }
});

test('extra fields leave out the simulator, sorted and capped', () => {
  const fields = { sim_speed_ms: 2.1, sim_course_deg: 90, outside_lake: 0, battery: 3.71, hello: 1 };
  assert.deepEqual(extraFields(fields), { items: [['battery', '3.71'], ['hello', '1'], ['outside_lake', '0']], hidden: 0 });
  assert.deepEqual(extraFields(fields, 2), { items: [['battery', '3.71'], ['hello', '1']], hidden: 1 });
  assert.deepEqual(extraFields({ sim_speed_ms: 1 }), { items: [], hidden: 0 });
  assert.deepEqual(extraFields(undefined), { items: [], hidden: 0 });
});

test('flags: outside lake follows the latest reading', () => {
  const raised = new Map();
  noteFlags(raised, { outside_lake: 1 }, 1000);
  assert.deepEqual(activeFlags(raised, 1000), [{ id: 'outside', label: 'outside lake' }]);
  assert.deepEqual(activeFlags(raised, 1_000_000), [{ id: 'outside', label: 'outside lake' }], 'no reading since: still outside');
  noteFlags(raised, { outside_lake: 0 }, 2000);
  assert.deepEqual(activeFlags(raised, 2000), []);
  noteFlags(raised, { outside_lake: 1 }, 3000);
  noteFlags(raised, undefined, 4000);
  assert.deepEqual(activeFlags(raised, 4000), [], 'a reading without the field (UDF swapped away) clears it');
});

test('flags: a corrected GPS jump is held for a while of event time', () => {
  const raised = new Map();
  noteFlags(raised, { gps_jump: 1, jump_m: 812.4 }, 1000);
  noteFlags(raised, { outside_lake: 1 }, 2000);
  assert.deepEqual(activeFlags(raised, 2000), [
    { id: 'outside', label: 'outside lake' },
    { id: 'jump', label: 'GPS jump corrected (812 m)' },
  ]);
  assert.deepEqual(activeFlags(raised, 1000 + FLAG_HOLD_MS - 1).map((f) => f.id), ['outside', 'jump']);
  assert.deepEqual(activeFlags(raised, 1000 + FLAG_HOLD_MS).map((f) => f.id), ['outside']);
  noteFlags(raised, { gps_jump: 1 }, 50_000);
  assert.deepEqual(activeFlags(raised, 50_000), [{ id: 'jump', label: 'GPS jump corrected' }]);
  noteFlags(raised, { gps_jump: 0 }, 51_000);
  noteFlags(raised, { gps_jump: 0.5 }, 52_000);
  assert.deepEqual(activeFlags(raised, 52_000).map((f) => f.id), ['jump'], 'a later reading without a jump does not clear it');
  assert.deepEqual(activeFlags(raised, 50_000 + FLAG_HOLD_MS), [], 'only 1 raises: 0.5 did not restart the hold');
});
