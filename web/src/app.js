// The sailstream live map: the lake outline, one arrow per boat moving live
// from the /ws stream, a short trail behind each, and the fleet panel on the
// left. Plain DOM and Leaflet, no framework.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './app.css';
import { backoff, colour, formatAge, formatCourse, formatKnots, formatMS, isNewer, speedKnots } from './format.js';

const TRAIL_POINTS = 40; // positions kept per boat for its trail
const STALE_MS = 30_000; // a boat silent this long is greyed out in the panel
const ZEGRZE = [52.475, 21.03];

const $ = (sel) => document.querySelector(sel);
const tbody = $('#boats tbody');

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

const boats = new Map(); // device -> { reading, marker, arrow, trail, points, row, cells }
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
  marker.bindTooltip(device, { permanent: true, direction: 'right', offset: [10, 0], className: 'boat-label' });
  marker.on('click', () => select(device, false));
  const trail = L.polyline([], { color: c, weight: 2, opacity: 0.7, interactive: false }).addTo(map);

  const row = document.createElement('tr');
  row.tabIndex = 0;
  row.innerHTML = `<td class="name"><span class="swatch" style="background:${c}"></span><span></span></td>
    <td class="speed"><b></b><small></small></td><td class="course"></td><td class="age"></td>`;
  row.querySelector('.name span:last-child').textContent = device;
  row.addEventListener('click', () => select(device, true));
  row.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') select(device, true);
  });
  const cells = {
    kn: row.querySelector('.speed b'),
    ms: row.querySelector('.speed small'),
    course: row.querySelector('.course'),
    age: row.querySelector('.age'),
  };

  const boat = { reading: null, marker, trail, points: [], row, cells };
  boats.set(device, boat);
  // Keep the panel sorted by device id.
  for (const d of [...boats.keys()].sort()) tbody.appendChild(boats.get(d).row);
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
  if (!isNewer(r, boat.reading)) return; // the snapshot after a reconnect repeats what we have
  boat.reading = r;

  boat.marker.setLatLng(latlng);
  const svg = boat.marker.getElement()?.querySelector('svg');
  if (svg) svg.style.transform = `rotate(${Number.isFinite(r.course_deg) ? r.course_deg : 0}deg)`;
  boat.points.push(latlng);
  if (boat.points.length > TRAIL_POINTS) boat.points.shift();
  boat.trail.setLatLngs(boat.points);

  boat.cells.kn.textContent = formatKnots(speedKnots(r));
  boat.cells.ms.textContent = formatMS(r.speed_ms);
  boat.cells.course.textContent = formatCourse(r.course_deg);
  renderAge(boat, Date.now());
  if (selected === r.device) boat.marker.openTooltip();
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

function select(device, centre) {
  const boat = boats.get(device);
  if (!boat) return;
  for (const b of boats.values()) b.row.classList.remove('selected');
  boat.row.classList.add('selected');
  selected = device;
  if (centre) map.setView(boat.marker.getLatLng(), Math.max(map.getZoom(), 14));
  else boat.row.scrollIntoView({ block: 'nearest' });
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
