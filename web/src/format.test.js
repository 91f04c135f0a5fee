import test from 'node:test';
import assert from 'node:assert/strict';
import { backoff, colour, formatAge, formatCourse, formatKnots, formatMS, isNewer, speedKnots } from './format.js';

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
