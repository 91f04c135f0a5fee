// Drives the live map in a real headless Chromium, as a person would: waits
// for the six boats on the map and in the list, clicks boat-2's marker,
// waits for its track to be drawn, takes a screenshot, then checks that
// selecting another boat moves the track and selecting it again clears it.
// It prints one JSON line with what it saw; cmd/sailstream/map_test.go
// asserts on it.
//
//   node e2e/map.mjs http://127.0.0.1:8080/     (or: npm run e2e -- URL)
//
// Environment:
//   SAILSTREAM_CHROMIUM        browser binary (default /usr/bin/chromium)
//   SAILSTREAM_MAP_SCREENSHOT  where to save a PNG of the map zoomed in on the
//                              track (and NAME-fleet.png beside it: the whole lake)
//   SAILSTREAM_MAP_MIN_POINTS  points the track must have (default 5)
//   SAILSTREAM_MAP_TIMEOUT_MS  how long each wait may take (default 30000)
//
// The browser never leaves the machine: requests to any other origin than
// the map's are answered here (map tiles with a plain tile, anything else
// refused) and listed in the output. playwright-core downloads no browser;
// it drives the one installed.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BOATS = ['boat-1', 'boat-2', 'boat-3', 'boat-4', 'boat-5', 'boat-6'];
const PICK = 'boat-2';
const NEXT = 'boat-3';

// A 1×1 PNG the colour of land, for the OpenStreetMap tiles the page asks for.
const TILE = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP49P4lAAWhAstl7N0JAAAAAElFTkSuQmCC',
  'base64',
);

function env(name, def) {
  const v = process.env[name];
  return v === undefined || v === '' ? def : v;
}

async function main() {
  const url = process.argv[2];
  if (!url) throw new Error('usage: node e2e/map.mjs URL');
  const origin = new URL(url).origin;
  const executablePath = env('SAILSTREAM_CHROMIUM', '/usr/bin/chromium');
  const screenshot = env('SAILSTREAM_MAP_SCREENSHOT', '');
  const minPoints = Number(env('SAILSTREAM_MAP_MIN_POINTS', '5'));
  const timeout = Number(env('SAILSTREAM_MAP_TIMEOUT_MS', '30000'));

  const observed = {
    url,
    markers: [], // { device, lat, lon, x, y } of every boat marker
    rows: [], // { device, speed } of every row of the list
    track: null, // { device, points, history, vertices, width, height } after clicking PICK
    zoomed_track: null, // the same after zooming in on it and more live readings
    next_track: null, // the same after selecting NEXT
    cleared: null, // whether selecting NEXT again removed the track
    note: '', // the history note under the list
    console_errors: [],
    offsite_requests: { count: 0, hosts: [] }, // answered here, never sent
    screenshot: screenshot || null, // and its -fleet.png
  };

  const profile = await mkdtemp(join(tmpdir(), 'sailstream-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout,
  });
  try {
    await browser.route(
      (u) => u.origin !== origin,
      (route) => {
        const u = route.request().url();
        const off = observed.offsite_requests;
        off.count++;
        if (!off.hosts.includes(new URL(u).host)) off.hosts.push(new URL(u).host);
        if (/\/\d+\/\d+\/\d+\.png$/.test(new URL(u).pathname)) {
          return route.fulfill({ status: 200, contentType: 'image/png', body: TILE });
        }
        return route.abort('blockedbyclient');
      },
    );
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(timeout);
    page.on('console', (msg) => {
      if (msg.type() === 'error') observed.console_errors.push(msg.text());
    });
    page.on('pageerror', (err) => observed.console_errors.push(`uncaught: ${err.message}`));

    await page.goto(url, { waitUntil: 'domcontentloaded' });
    if ((await page.locator('#history').count()) === 0) {
      throw new Error('the map served has no history note: it is older than web/src (run `npm run build`, then rebuild the binary)');
    }

    // Six boats on the map, and the list showing all six with speeds.
    await page.waitForFunction(
      (n) => document.querySelectorAll('.leaflet-marker-pane .boat-icon[data-device]').length >= n,
      BOATS.length,
    );
    await page.waitForFunction(
      (boats) => {
        const rows = [...document.querySelectorAll('#boats tbody')];
        const have = rows.map((r) => [r.querySelector('.name').textContent.trim(), r.querySelector('.speed b').textContent]);
        return boats.every((b) => have.some(([name, speed]) => name === b && /^\d+\.\d kn$/.test(speed)));
      },
      BOATS,
    );
    observed.markers = await page.$$eval('.leaflet-marker-pane .boat-icon[data-device]', (els) =>
      els.map((el) => {
        const box = el.getBoundingClientRect();
        return { device: el.dataset.device, lat: Number(el.dataset.lat), lon: Number(el.dataset.lon), x: box.x + box.width / 2, y: box.y + box.height / 2 };
      }),
    );
    observed.rows = await page.$$eval('#boats tbody', (rows) =>
      rows.map((r) => ({ device: r.querySelector('.name').textContent.trim(), speed: r.querySelector('.speed b').textContent })),
    );

    // Click boat-2 on the map; its track is drawn and grows.
    await page.locator(`.leaflet-marker-pane .boat-icon[data-device="${PICK}"]`).click();
    observed.track = await waitTrack(page, PICK, minPoints);
    observed.note = await page.locator('#history').textContent();
    // The whole fleet on the lake, before zooming in.
    if (screenshot) await page.screenshot({ path: screenshot.replace(/(\.png)?$/, '-fleet.png') });

    // A fresh track is a few metres long: zoom in on the boat with the
    // mouse wheel, as a person would, until the line is long on screen.
    await zoomToTrack(page, PICK, 40);
    // Live readings of the boat extend its line.
    await page.waitForFunction((n) => Number(document.querySelector('path.track')?.dataset.points) > n, observed.track.points);
    observed.zoomed_track = await describeTrack(page);
    if (screenshot) await page.screenshot({ path: screenshot });

    // Selecting another boat in the list moves the track to it; selecting
    // it again clears it.
    await page.locator('#boats tbody', { hasText: NEXT }).first().click();
    observed.next_track = await waitTrack(page, NEXT, 1);
    await page.locator('#boats tbody', { hasText: NEXT }).first().click();
    await page.waitForFunction(() => !document.querySelector('path.track'));
    observed.cleared = await page.evaluate(
      () => !document.querySelector('path.track') && !document.querySelector('#boats tbody.selected') && document.querySelector('#history').hidden,
    );
  } finally {
    await browser.close();
    await rm(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(observed));
}

// zoomToTrack turns the mouse wheel over device's marker until its track is
// at least px long on screen (or the map is at its closest).
async function zoomToTrack(page, device, px) {
  for (let step = 0; step < 12; step++) {
    const box = await page.$eval('path.track', (el) => {
      const b = el.getBoundingClientRect();
      return { w: b.width, h: b.height };
    });
    if (Math.max(box.w, box.h) >= px) break;
    const m = await page.locator(`.leaflet-marker-pane .boat-icon[data-device="${device}"]`).boundingBox();
    await page.mouse.move(m.x + m.width / 2, m.y + m.height / 2);
    await page.mouse.wheel(0, -120);
    // Let Leaflet finish the zoom (its animation ends with zoomend).
    await page.waitForFunction(() => !document.querySelector('.leaflet-zoom-anim'));
    await page.waitForTimeout(300);
  }
}

function describeTrack(page) {
  return page.$eval('path.track', (el) => {
    const box = el.getBoundingClientRect();
    return {
      device: el.dataset.device,
      points: Number(el.dataset.points),
      history: el.dataset.history === '' ? null : Number(el.dataset.history), // null: not loaded
      // What Leaflet drew: the path's vertices (fewer than the points where
      // it simplified a straight stretch) and its size on screen.
      vertices: (el.getAttribute('d').match(/[ML]/g) ?? []).length,
      width: Math.round(box.width),
      height: Math.round(box.height),
      stroke: getComputedStyle(el).stroke,
    };
  });
}

// waitTrack waits until the track of device has at least min points and its
// history has loaded (or the note says why it cannot), and describes it.
async function waitTrack(page, device, min) {
  await page.waitForFunction(
    ([d, n]) => {
      const el = document.querySelector('path.track');
      const settled = el?.dataset.history !== '' || /^history /.test(document.querySelector('#history').textContent);
      return el && el.dataset.device === d && settled && Number(el.dataset.points) >= n && el.getAttribute('d');
    },
    [device, min],
  );
  return describeTrack(page);
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
