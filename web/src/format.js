// Pure helpers for the panel, kept apart from the DOM and Leaflet so that
// `npm test` (node --test) checks them.

export const KNOTS_PER_MS = 3600 / 1852;

const COMPASS = ['N', 'NE', 'E', 'SE', 'S', 'SW', 'W', 'NW'];

// speedKnots prefers the server's knots and falls back to converting m/s.
export function speedKnots(r) {
  if (Number.isFinite(r.speed_kn)) return r.speed_kn;
  if (Number.isFinite(r.speed_ms)) return r.speed_ms * KNOTS_PER_MS;
  return 0;
}

export function formatKnots(kn) {
  return `${kn.toFixed(1)} kn`;
}

export function formatMS(ms) {
  return `${(Number.isFinite(ms) ? ms : 0).toFixed(2)} m/s`;
}

// formatCourse gives degrees and the nearest of eight compass points.
export function formatCourse(deg) {
  if (!Number.isFinite(deg)) return '—';
  const d = ((Math.round(deg) % 360) + 360) % 360;
  return `${String(d).padStart(3, '0')}° ${COMPASS[Math.round(d / 45) % 8]}`;
}

// formatAge turns milliseconds into a short age: "0.4 s", "12 s", "3 min", "2 h".
export function formatAge(ms) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// backoff is the delay before reconnect attempt n (0-based): doubling from
// 500 ms up to 15 s, with up to 25% jitter so that many browsers do not
// reconnect in step after a server restart.
export function backoff(attempt, random = Math.random) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (1 + 0.25 * random()));
}

// colour gives every device a stable colour from its id.
const PALETTE = ['#e6194b', '#f58231', '#3cb44b', '#911eb4', '#f032e6', '#008080', '#9a6324', '#000075', '#808000', '#800000'];
export function colour(device) {
  let h = 0;
  for (const ch of device) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

// isNewer tells whether reading r should replace last as a boat's current
// position: the WebSocket snapshot after a reconnect repeats readings we have.
export function isNewer(r, last) {
  if (!last) return true;
  const t = Date.parse(r.time);
  const lt = Date.parse(last.time);
  if (t !== lt) return t > lt;
  return (r.seq ?? 0) > (last.seq ?? 0);
}

// formatUDF names the UDF that produced a reading, "geofence v1.0.0", or ''
// when the reading does not say (an older server).
export function formatUDF(r) {
  const name = typeof r?.udf === 'string' ? r.udf : '';
  if (!name) return '';
  const v = typeof r.udf_version === 'string' ? r.udf_version : '';
  if (!v) return name;
  return `${name} ${/^\d/.test(v) ? 'v' : ''}${v}`;
}

// formatField gives a field's value short: integers as they are, fractions
// with fewer decimals the larger they are.
export function formatField(v) {
  if (!Number.isFinite(v)) return '—';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return String(Number(v.toFixed(a < 1 ? 3 : a < 100 ? 2 : 1)));
}

// extraFields lists a reading's fields for the panel, sorted by name, without
// the simulator's own sim_* ones (its ground truth, not something a UDF
// said). At most max are listed; hidden counts the rest.
export function extraFields(fields, max = 6) {
  const names = Object.keys(fields ?? {})
    .filter((k) => !k.startsWith('sim_'))
    .sort();
  return {
    items: names.slice(0, max).map((k) => [k, formatField(fields[k])]),
    hidden: Math.max(0, names.length - max),
  };
}

// The warnings a reading can raise: a field set to 1 raises the flag. A
// corrected GPS jump is one reading and the next, a second later, no longer
// says so, so that flag is held for FLAG_HOLD_MS of event time; outside_lake
// is said by every reading of the geofence UDF, so it follows the latest one.
// Times are event times (the readings' own), so a page loaded later shows
// the same flags for the same readings.
export const FLAG_HOLD_MS = 10_000;
const FLAGS = [
  { id: 'outside', field: 'outside_lake', hold: 0, label: () => 'outside lake' },
  {
    id: 'jump',
    field: 'gps_jump',
    hold: FLAG_HOLD_MS,
    label: (f) => (Number.isFinite(f.jump_m) ? `GPS jump corrected (${Math.round(f.jump_m)} m)` : 'GPS jump corrected'),
  },
];

// noteFlags records in raised (flag id -> { label, at }) the flags raised by
// the fields of a reading taken at t (ms), and drops the unheld ones it no
// longer raises.
export function noteFlags(raised, fields, t) {
  const f = fields ?? {};
  for (const d of FLAGS) {
    if (f[d.field] === 1) raised.set(d.id, { label: d.label(f), at: t });
    else if (!d.hold) raised.delete(d.id);
  }
  return raised;
}

// activeFlags lists the flags to show for a boat whose latest reading was
// taken at t (ms), in a fixed order.
export function activeFlags(raised, t) {
  const out = [];
  for (const d of FLAGS) {
    const r = raised.get(d.id);
    if (r && (!d.hold || t - r.at < d.hold)) out.push({ id: d.id, label: r.label });
  }
  return out;
}
