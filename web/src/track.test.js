import test from 'node:test';
import assert from 'node:assert/strict';
import {
  appendPoint, MAX_TRACK_POINTS, mergeTracks, NO_DATABASE, parseTrack, refTime, toPoint, trackError, TRACK_WINDOW_MS, trackURL,
} from './track.js';

const T0 = Date.parse('2026-06-01T12:00:00Z');
const at = (s, lat = 52.45, lon = 21.03) => ({ t: T0 + s * 1000, lat, lon });
const reading = (s, extra = {}) => ({ device: 'boat-2', time: new Date(T0 + s * 1000).toISOString(), lat: 52.45, lon: 21.03, ...extra });

test('track URL asks for the last 30 minutes, device escaped', () => {
  assert.equal(trackURL('boat-2', T0), 'api/devices/boat-2/track?from=2026-06-01T11%3A30%3A00.000Z');
  assert.equal(TRACK_WINDOW_MS, 30 * 60 * 1000);
  const u = new URL(trackURL('a b/c?', T0, 60_000), 'http://example.test/map/');
  assert.equal(u.pathname, '/map/api/devices/a%20b%2Fc%3F/track');
  assert.equal(u.searchParams.get('from'), '2026-06-01T11:59:00.000Z');
  assert.equal(u.searchParams.has('to'), false);
});

test('reference time is the earlier of now and the latest reading', () => {
  assert.equal(refTime(T0, reading(-5)), T0 - 5000);
  assert.equal(refTime(T0, reading(5)), T0); // a device clock ahead of ours
  assert.equal(refTime(T0, null), T0);
  assert.equal(refTime(T0, { time: 'soon' }), T0);
});

test('points from readings', () => {
  assert.deepEqual(toPoint(reading(1, { lat: 52.4, lon: 21.1 })), at(1, 52.4, 21.1));
  assert.equal(toPoint(null), null);
  assert.equal(toPoint({ time: 'x', lat: 1, lon: 2 }), null);
  assert.equal(toPoint({ time: '2026-06-01T12:00:00Z', lat: '52', lon: 21 }), null);
});

test('parsing a track answer', () => {
  const body = { device: 'boat-2', from: '', to: '', points: [reading(3), reading(1), { time: 'bad', lat: 1, lon: 1 }, reading(2, { device: 'boat-9' }), reading(1)] };
  assert.deepEqual(parseTrack(body, 'boat-2'), [at(1), at(3)]);
  assert.deepEqual(parseTrack({ device: 'boat-2', points: [] }, 'boat-2'), []);
  assert.throws(() => parseTrack({ device: 'boat-2' }, 'boat-2'), /no points/);
  assert.throws(() => parseTrack(null, 'boat-2'), /no points/);
  assert.throws(() => parseTrack({ device: 'boat-3', points: [] }, 'boat-2'), /boat-3/);
});

test('history merged with what the live stream already drew', () => {
  const live = [at(10), at(11)];
  const history = [at(8), at(9), at(10)];
  assert.deepEqual(mergeTracks(history, live), [at(8), at(9), at(10), at(11)]);
  assert.deepEqual(mergeTracks([], []), []);
  assert.deepEqual(mergeTracks([at(1), at(2), at(3)], [at(4)], 2), [at(3), at(4)]);
  assert.ok(MAX_TRACK_POINTS >= 30 * 60 * 10, 'a 10 Hz boat fits its 30 minutes');
});

test('live points appended in order, late ones inserted, repeats dropped', () => {
  const pts = [at(1), at(3)];
  assert.equal(appendPoint(pts, at(4)), true);
  assert.equal(appendPoint(pts, at(2)), true);
  assert.equal(appendPoint(pts, at(3, 1, 1)), false);
  assert.equal(appendPoint(pts, null), false);
  assert.deepEqual(pts, [at(1), at(2), at(3), at(4)]);
  assert.equal(appendPoint(pts, at(0)), true);
  assert.deepEqual(pts.map((p) => p.t), [0, 1, 2, 3, 4].map((s) => T0 + s * 1000));
  const capped = [at(1), at(2)];
  appendPoint(capped, at(3), 2);
  assert.deepEqual(capped, [at(2), at(3)]);
});

test('errors become a note', () => {
  assert.equal(trackError(501, { error: 'needs a database' }), NO_DATABASE);
  assert.match(NO_DATABASE, /sailstream up --pg/);
  assert.equal(trackError(503, { error: 'db down' }), 'history unavailable: db down');
  assert.equal(trackError(500, null), 'history unavailable: HTTP 500');
});
