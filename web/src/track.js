// Pure helpers for a selected boat's history: the track URL, the API's
// answer turned into points, and live readings merged into them. Kept apart
// from the DOM and Leaflet so that `npm test` (node --test) checks them.

// TRACK_WINDOW_MS is how far back a selected boat's track goes.
export const TRACK_WINDOW_MS = 30 * 60 * 1000;

// MAX_TRACK_POINTS bounds a track kept in the page: a boat left selected for
// hours drops its oldest points rather than growing without end.
export const MAX_TRACK_POINTS = 20_000;

// NO_DATABASE is the note shown when the server keeps no history (it answers
// the track API with 501).
export const NO_DATABASE = 'history needs a database: sailstream up --pg …';

// trackURL is the URL, relative to the page, of device's track over the
// window before ref (ms). ref is the earlier of the browser's clock and the
// boat's latest event time, so that a browser clock ahead of the server's
// does not ask for a range that starts after the server's "now". to is left
// out: the server ends the range at its own now.
export function trackURL(device, ref, windowMs = TRACK_WINDOW_MS) {
  const from = new Date(ref - windowMs).toISOString();
  return `api/devices/${encodeURIComponent(device)}/track?from=${encodeURIComponent(from)}`;
}

// refTime picks the reference time for trackURL: the earlier of now and the
// boat's latest event time, when that is known.
export function refTime(now, reading) {
  const t = Date.parse(reading?.time);
  return Number.isFinite(t) ? Math.min(now, t) : now;
}

// toPoint turns a reading into a track point { t, lat, lon }, or null when it
// has no usable time or position.
export function toPoint(r) {
  if (!r || !Number.isFinite(r.lat) || !Number.isFinite(r.lon)) return null;
  const t = Date.parse(r.time);
  if (!Number.isFinite(t)) return null;
  return { t, lat: r.lat, lon: r.lon };
}

// parseTrack reads the body of GET /api/devices/:id/track into the points of
// device in time order. It throws on an answer for another device or without
// a points array; single points without a time or position are skipped.
export function parseTrack(body, device) {
  if (!body || typeof body !== 'object' || !Array.isArray(body.points)) {
    throw new Error('track answer has no points array');
  }
  if (body.device !== device) {
    throw new Error(`track answer is for ${JSON.stringify(body.device)}, not ${JSON.stringify(device)}`);
  }
  const points = [];
  for (const r of body.points) {
    if (r?.device !== undefined && r.device !== device) continue;
    const p = toPoint(r);
    if (p) points.push(p);
  }
  return mergeTracks(points, []);
}

// mergeTracks merges two lists of points into one in time order, one point
// per time (a reading the history and the live stream both delivered), at
// most max points (the newest).
export function mergeTracks(a, b, max = MAX_TRACK_POINTS) {
  const all = [...a, ...b].sort((x, y) => x.t - y.t);
  const out = [];
  for (const p of all) {
    if (out.length > 0 && out[out.length - 1].t === p.t) continue;
    out.push(p);
  }
  return out.length > max ? out.slice(out.length - max) : out;
}

// appendPoint adds a live point to a track kept in time order, in place:
// usually at the end, in order when it arrives late, never twice. It tells
// whether the track changed.
export function appendPoint(points, p, max = MAX_TRACK_POINTS) {
  if (!p) return false;
  let i = points.length;
  while (i > 0 && points[i - 1].t > p.t) i--;
  if (i > 0 && points[i - 1].t === p.t) return false;
  points.splice(i, 0, p);
  if (points.length > max) points.splice(0, points.length - max);
  return true;
}

// trackError turns a failed track request into the note to show: the
// server's own message where it gave one, the fixed hint for 501.
export function trackError(status, body) {
  if (status === 501) return NO_DATABASE;
  const msg = typeof body?.error === 'string' && body.error ? body.error : `HTTP ${status}`;
  return `history unavailable: ${msg}`;
}
