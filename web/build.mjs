// Bundle the browser entry points that exist into python/vudo/web/static/.
// Entry points that are not written yet are skipped (with a note), so the
// build never fails just because a sibling page is still in progress.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "python", "vudo", "web", "static");

const entries = [
  { src: "src/dashboard.ts", out: "dashboard.js" },
  { src: "src/physarum/main.ts", out: "physarum.js" },
];

mkdirSync(outDir, { recursive: true });
let built = 0;
for (const { src, out } of entries) {
  const input = join(here, src);
  if (!existsSync(input)) {
    console.log(`skip  ${src} (not present)`);
    continue;
  }
  const outfile = join(outDir, out);
  await esbuild.build({
    entryPoints: [input],
    outfile,
    bundle: true,
    format: "iife",
    target: "es2020",
    platform: "browser",
    minify: true,
    sourcemap: true,
    logLevel: "warning",
  });
  console.log(`built ${src} -> ${relative(process.cwd(), outfile)}`);
  built += 1;
}
if (built === 0) {
  console.error("no entry points found; nothing built");
  process.exit(1);
}
