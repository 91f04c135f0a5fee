// The sailstream live map: the lake outline, one arrow per boat moving live
// from the /ws stream, a short trail behind each, and the fleet panel on the
// left. Every reading names the UDF that processed it and carries the fields
// that UDF added, so the panel shows both per boat and flags the warnings
// (outside the lake, a corrected GPS jump) on the marker too: a deploy is
// visible on the map within a second, without a reload. Selecting a boat
// draws its last 30 minutes from the track API (PostgreSQL history) and
// extends that line with its live readings. Plain DOM and Leaflet, no
// framework.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './app.css';
import {
  activeFlags,
  backoff,
  colour,
  extraFields,
  formatAge,
  formatCourse,
  formatKnots,
  formatMS,
  formatUDF,
  isNewer,
  noteFlags,
  speedKnots,
} from './format.js';
import { appendPoint, mergeTracks, parseTrack, refTime, toPoint, trackError, trackURL } from './track.js';

const TRAIL_POINTS = 40; // positions kept per boat for its trail
const STALE_MS = 30_000; // a boat silent this long is greyed out in the panel
const ZEGRZE = [52.475, 21.03];

const $ = (sel) => document.querySelector(sel);
const table = $('#boats');

// --- map ------------------------------------------------------------------

const map = L.map('map', { zoomSnap: 0.5 }).setView(ZEGRZE, 12);

// OpenStreetMap tiles when the browser can reach them. Offline, failed tiles
// simply stay invisible and the panel says so; the lake outline below still
// makes the map readable.
const tiles = L.tileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png', {
  maxZoom: 19,
  attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
});
let tilesLoaded = 0;
tiles.on('tileload', () => {
  tilesLoaded++;
  $('#tiles').hidden = true;
});
tiles.on('tileerror', () => {
  if (tilesLoaded === 0) $('#tiles').hidden = false;
});
tiles.addTo(map);

fetch('lake.geojson')
  .then((res) => (res.ok ? res.json() : Promise.reject(new Error(`lake.geojson: HTTP ${res.status}`))))
  .then((outline) => {
    const lake = L.geoJSON(outline, {
      interactive: false,
      style: { color: '#1f6fa8', weight: 2, fillColor: '#8ecae6', fillOpacity: 0.45 },
    }).addTo(map);
    lake.bringToBack();
    map.fitBounds(lake.getBounds(), { padding: [16, 16], animate: false });
  })
  .catch((err) => console.warn('lake outline not loaded:', err));

// --- boats ----------------------------------------------------------------

const boats = new Map(); // device -> { reading, marker, trail, points, row, cells, label, raised, shown }
let selected = null;

function arrowSVG(fill) {
  return `<svg viewBox="-12 -12 24 24" width="24" height="24" aria-hidden="true">
    <path d="M0,-10 L7,8 L0,4 L-7,8 Z" fill="${fill}" stroke="#fff" stroke-width="1.5" stroke-linejoin="round"/>
  </svg>`;
}

function addBoat(device, latlng) {
  const c = colour(device);
  const marker = L.marker(latlng, {
    icon: L.divIcon({ className: 'boat-icon', html: arrowSVG(c), iconSize: [24, 24], iconAnchor: [12, 12] }),
    title: device,
    keyboard: false,
  }).addTo(map);
  // The label is an element so that a flag can be added next to the name.
  const label = document.createElement('span');
  label.append(device, document.createElement('b'));
  marker.bindTooltip(label, { permanent: true, direction: 'right', offset: [10, 0], className: 'boat-label' });
  marker.on('click', () => select(device, false));
  const trail = L.polyline([], { color: c, weight: 2, opacity: 0.7, interactive: false }).addTo(map);

  // One <tbody> per boat: its figures, then a line with the UDF that
  // processed its latest reading, its flags and its fields.
  const row = document.createElement('tbody');
  row.tabIndex = 0;
  row.innerHTML = `<tr><td class="name"><span class="swatch" style="background:${c}"></span><span></span></td>
    <td class="speed"><b></b><small></small></td><td class="course"></td><td class="age"></td></tr>
    <tr class="detail" hidden><td colspan="4"><small class="udf" title="UDF that processed the latest reading"></small>` +
    `<span class="flags"></span><span class="fields"></span></td></tr>`;
  row.querySelector('.name span:nth-child(2)').textContent = device;
  row.addEventListener('click', () => select(device, true));
  row.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') select(device, true);
  });
  const cells = {
    kn: row.querySelector('.speed b'),
    ms: row.querySelector('.speed small'),
    course: row.querySelector('.course'),
    age: row.querySelector('.age'),
    udf: row.querySelector('.udf'),
    detail: row.querySelector('.detail'),
    flags: row.querySelector('.flags'),
    fields: row.querySelector('.fields'),
  };
  cells.udf.addEventListener('animationend', () => cells.udf.classList.remove('swapped'));

  const boat = { reading: null, marker, trail, points: [], row, cells, label, raised: new Map(), shown: '' };
  boats.set(device, boat);
  // Keep the panel sorted by device id.
  for (const d of [...boats.keys()].sort()) table.appendChild(boats.get(d).row);
  $('#empty').hidden = true;
  return boat;
}

function update(r) {
  if (!r || typeof r.device !== 'string' || !Number.isFinite(r.lat) || !Number.isFinite(r.lon)) {
    console.warn('ignoring message that is not a reading:', r);
    return;
  }
  const latlng = [r.lat, r.lon];
  const boat = boats.get(r.device) ?? addBoat(r.device, latlng);
  // A late reading still belongs on the selected boat's track.
  if (track?.device === r.device && appendPoint(track.points, toPoint(r))) drawTrack();
  if (!isNewer(r, boat.reading)) return; // the snapshot after a reconnect repeats what we have
  boat.reading = r;

  boat.marker.setLatLng(latlng);
  const el = boat.marker.getElement();
  if (el) Object.assign(el.dataset, { device: r.device, lat: r.lat, lon: r.lon }); // for tests driving a browser
  const svg = el?.querySelector('svg');
  if (svg) svg.style.transform = `rotate(${Number.isFinite(r.course_deg) ? r.course_deg : 0}deg)`;
  boat.points.push(latlng);
  if (boat.points.length > TRAIL_POINTS) boat.points.shift();
  boat.trail.setLatLngs(boat.points);

  boat.cells.kn.textContent = formatKnots(speedKnots(r));
  boat.cells.ms.textContent = formatMS(r.speed_ms);
  boat.cells.course.textContent = formatCourse(r.course_deg);
  renderUDF(boat, r);
  const t = Date.parse(r.time);
  noteFlags(boat.raised, r.fields, t);
  renderDetail(boat, activeFlags(boat.raised, t));
  renderAge(boat, Date.now());
  if (selected === r.device) boat.marker.openTooltip();
}

// renderUDF names the UDF under the boat, and makes it flash when a deploy
// swaps it.
function renderUDF(boat, r) {
  const text = formatUDF(r);
  const el = boat.cells.udf;
  if (el.textContent === text) return;
  const swapped = el.textContent !== '';
  el.textContent = text;
  if (swapped) {
    el.classList.remove('swapped');
    void el.offsetWidth; // restart the animation
    el.classList.add('swapped');
  }
}

// renderDetail shows the boat's flags and extra fields, in the panel and on
// its marker, touching the DOM only when they change.
function renderDetail(boat, flags) {
  const { items, hidden } = extraFields(boat.reading.fields);
  const key = JSON.stringify([flags, items, hidden, boat.cells.udf.textContent]);
  if (key === boat.shown) return;
  boat.shown = key;

  const { cells } = boat;
  cells.flags.replaceChildren(
    ...flags.map((f) => Object.assign(document.createElement('span'), { className: `badge ${f.id}`, textContent: f.label })),
  );
  cells.fields.replaceChildren(
    ...items.map(([k, v]) => {
      const el = document.createElement('span');
      el.className = 'field';
      el.append(Object.assign(document.createElement('span'), { textContent: k }), ` ${v}`);
      return el;
    }),
  );
  if (hidden > 0) cells.fields.append(Object.assign(document.createElement('span'), { className: 'more', textContent: `+${hidden}` }));
  cells.detail.hidden = !cells.udf.textContent && flags.length === 0 && items.length === 0;

  const el = boat.marker.getElement();
  if (el) {
    for (const id of ['outside', 'jump']) el.classList.toggle(id, flags.some((f) => f.id === id));
    // The browser's own tooltip on the marker: what processed it and its fields.
    el.title = [boat.reading.device, cells.udf.textContent, ...items.map(([k, v]) => `${k} = ${v}`)].filter(Boolean).join('\n');
  }
  boat.label.lastChild.textContent = flags.length ? ` · ${flags.map((f) => f.label).join(' · ')}` : '';
  boat.label.classList.toggle('flagged', flags.length > 0);
}

function renderAge(boat, now) {
  const age = now - Date.parse(boat.reading.time);
  boat.cells.age.textContent = formatAge(age);
  boat.row.classList.toggle('stale', age > STALE_MS);
}

setInterval(() => {
  const now = Date.now();
  for (const boat of boats.values()) if (boat.reading) renderAge(boat, now);
}, 500);

// select makes device the selected boat and draws its track; selecting the
// selected boat again clears both.
function select(device, centre) {
  const boat = boats.get(device);
  if (!boat) return;
  for (const b of boats.values()) b.row.classList.remove('selected');
  if (selected === device) {
    selected = null;
    clearTrack();
    return;
  }
  boat.row.classList.add('selected');
  selected = device;
  showTrack(device, boat);
  if (centre) map.setView(boat.marker.getLatLng(), Math.max(map.getZoom(), 14));
  else boat.row.scrollIntoView({ block: 'nearest' });
}

// --- history of the selected boat ------------------------------------------

// The track is drawn in one colour no boat has, over a dark casing so that
// it stands out on the lake and on the tiles alike.
const trackCasing = L.polyline([], { color: '#1d3557', weight: 7, opacity: 0.5, interactive: false, className: 'track-casing' });
const trackLine = L.polyline([], { color: '#ffd60a', weight: 3, opacity: 1, interactive: false, className: 'track' });
let track = null; // { device, points, loaded } of the selected boat
let trackRequest = 0; // so that the answer for a boat no longer selected is dropped

function setNote(text) {
  const el = $('#history');
  el.textContent = text;
  el.hidden = !text;
}

function showTrack(device, boat) {
  const request = ++trackRequest;
  const first = toPoint(boat.reading);
  track = { device, points: first ? [first] : [], loaded: null };
  trackCasing.addTo(map);
  trackLine.addTo(map);
  drawTrack();
  setNote(`loading the track of ${device}…`);
  fetch(trackURL(device, refTime(Date.now(), boat.reading)), { headers: { Accept: 'application/json' } })
    .then(async (res) => {
      const body = await res.json().catch(() => null);
      if (request !== trackRequest) return;
      if (!res.ok) {
        setNote(trackError(res.status, body));
        return;
      }
      const history = parseTrack(body, device);
      track.points = mergeTracks(history, track.points);
      track.loaded = history.length;
      drawTrack();
      setNote(`${device}: track of the last 30 minutes (${history.length} stored readings)`);
    })
    .catch((err) => {
      if (request !== trackRequest) return;
      console.warn('track of', device, 'not loaded:', err);
      setNote(`history unavailable: ${err.message}`);
    });
}

function drawTrack() {
  const latlngs = track.points.map((p) => [p.lat, p.lon]);
  trackCasing.setLatLngs(latlngs);
  trackLine.setLatLngs(latlngs);
  const el = trackLine.getElement();
  if (el) {
    // For tests driving a browser: whose track, how many points, how many
    // of them came from the history API.
    el.dataset.device = track.device;
    el.dataset.points = String(track.points.length);
    el.dataset.history = track.loaded === null ? '' : String(track.loaded);
  }
}

function clearTrack() {
  trackRequest++;
  track = null;
  trackLine.remove();
  trackCasing.remove();
  setNote('');
}

// --- live stream ----------------------------------------------------------

function setStatus(state, text) {
  const el = $('#status');
  el.className = `status ${state}`;
  el.textContent = text;
}

let attempt = 0;
function connect() {
  const url = new URL('ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  setStatus('connecting', attempt === 0 ? 'connecting…' : `reconnecting (attempt ${attempt + 1})…`);
  const ws = new WebSocket(url);
  ws.onopen = () => {
    attempt = 0;
    setStatus('live', 'live');
  };
  ws.onmessage = (ev) => {
    let reading;
    try {
      reading = JSON.parse(ev.data);
    } catch (err) {
      console.warn('bad message from /ws:', err);
      return;
    }
    update(reading);
  };
  // An error is always followed by close, so close alone reconnects.
  ws.onclose = (ev) => {
    const delay = backoff(attempt++);
    const why = ev.reason ? ` (${ev.reason})` : '';
    setStatus('down', `disconnected${why}, retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  };
}
connect();
