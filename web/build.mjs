// Builds the map app into dist/: app.js and app.css bundled by esbuild
// (Leaflet included, its few images inlined as data URLs), and index.html.
// The Go server embeds dist/ (see server.go), so run this before `go build`.
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== '.gitkeep') await rm(join(dist, name), { recursive: true, force: true });
}

await build({
  entryPoints: { app: join(here, 'src', 'app.js') },
  outdir: dist,
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  target: ['es2020'],
  loader: { '.png': 'dataurl', '.svg': 'dataurl' },
  legalComments: 'eof',
  logLevel: 'info',
});
await copyFile(join(here, 'src', 'index.html'), join(dist, 'index.html'));
console.log('map app built into', dist);
