#!/usr/bin/env node
// Save a screenshot of a page after it has run a while (for looking at the UI in CI logs):
//   node test/e2e/screenshot.mjs URL OUT.png [WAIT_S]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { chromium } = await import("playwright-core");

const [url, out, waitS = "8"] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: screenshot.mjs URL OUT.png [WAIT_S]");
  process.exit(64);
}
const dir = mkdtempSync(join(tmpdir(), "hlswarm-shot-"));
const context = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.HLSWARM_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
  viewport: { width: 1280, height: 900 },
});
try {
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url);
  await page.waitForTimeout(Number(waitS) * 1000);
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await context.close();
  rmSync(dir, { recursive: true, force: true });
}
