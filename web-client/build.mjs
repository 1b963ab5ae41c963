// Build the web client into dist/ exactly as the Rust node serves it:
//   dist/index.html (/), dist/watch.html (/watch/<id>), dist/selftest.html (/selftest),
//   dist/assets/<flat files> (/assets/<file>).
// The protocol test vectors are bundled into the self-test at build time (virtual module
// "hlswarm:vectors", read through tests/vectors/index.json so new vectors are picked up).

import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const VECTORS = here("../tests/vectors/");

const vectorsPlugin = {
  name: "hlswarm-vectors",
  setup(b) {
    b.onResolve({ filter: /^hlswarm:vectors$/ }, () => ({ path: "vectors", namespace: "hlswarm" }));
    b.onLoad({ filter: /.*/, namespace: "hlswarm" }, () => {
      const names = JSON.parse(readFileSync(VECTORS + "index.json", "utf8"));
      const list = names.map((n) => JSON.parse(readFileSync(VECTORS + n, "utf8")));
      return { contents: `export default ${JSON.stringify(list)};`, loader: "js", watchFiles: names.map((n) => VECTORS + n) };
    });
  },
};

// Source maps are ~4 MB and the node embeds all of dist/: only with `npm run build -- --sourcemap`.
const sourcemap = process.argv.includes("--sourcemap");

// dist/ is rewritten in place (not deleted first): the node's build.rs may be reading it.
mkdirSync(here("dist/assets"), { recursive: true });

const result = await build({
  entryPoints: {
    watch: here("src/watch/main.js"),
    dashboard: here("src/dashboard/main.js"),
    selftest: here("src/selftest/main.js"),
  },
  outdir: here("dist/assets"),
  bundle: true,
  format: "esm",
  splitting: false,          // flat, self-contained files: no chunk names for the node to know
  target: ["chrome111", "firefox130", "safari17"],
  minify: true,
  sourcemap: sourcemap ? "linked" : false,
  metafile: true,
  legalComments: "linked",
  plugins: [vectorsPlugin],
  // p2p-media-loader-core ships a self-contained browser bundle (bittorrent-tracker and its Node
  // shims included) under this export condition; its plain "import" entry needs Node built-ins.
  conditions: ["p2pml:core-as-bundle"],
  logLevel: "info",
});

for (const f of ["index.html", "watch.html", "selftest.html"]) copyFileSync(here(`html/${f}`), here(`dist/${f}`));
copyFileSync(here("html/style.css"), here("dist/assets/style.css"));

// Remove stale files from earlier builds (for example source maps from a --sourcemap build).
const keep = new Set(Object.keys(result.metafile.outputs).map((p) => p.split("/").pop()).concat("style.css"));
for (const f of readdirSync(here("dist/assets"))) if (!keep.has(f)) rmSync(here(`dist/assets/${f}`));

// Precompressed copies (`f.br`, `f.gz`) that the node serves to browsers that accept them: the
// watch page's script is ~840 KB as it is. Both encoders are deterministic (gzip's header
// carries no time here), so a rebuild from the same sources gives the same bytes.
const COMPRESS = /\.(html|js|css|json|svg|txt|map)$/;
for (const dir of ["dist", "dist/assets"]) {
  for (const f of readdirSync(here(dir))) {
    if (!COMPRESS.test(f)) continue;
    const raw = readFileSync(here(`${dir}/${f}`));
    const br = brotliCompressSync(raw, {
      params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length },
    });
    const gz = gzipSync(raw, { level: 9 });
    for (const [ext, bytes] of [["br", br], ["gz", gz]]) {
      const out = here(`${dir}/${f}.${ext}`);
      if (bytes.length < raw.length) writeFileSync(out, bytes);
      else rmSync(out, { force: true });
    }
  }
}
