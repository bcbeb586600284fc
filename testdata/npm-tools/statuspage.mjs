// Drives gw run's status page in headless Chromium for
// cmd/gw/status_test.go (TestStatusPageBrowser):
//
//   node statuspage.mjs URL GATEWAY SERVER SCREENSHOT.png
//
// It prints, one per line, what the page showed: READY <pid> once SERVER's
// row says ready (the test then kills that pid), DOWN <state> once it says
// anything else, BACK <pid> once it is ready again with another pid, then
// SCREENSHOT <path>. Chromium is Debian's ($GW_CHROMIUM, default
// /usr/bin/chromium) with a fresh profile ($GW_PROFILE).
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, gateway, server, shot] = process.argv.slice(2);
if (!shot) {
  console.error("usage: node statuspage.mjs URL GATEWAY SERVER SCREENSHOT.png");
  process.exit(2);
}
const profile = process.env.GW_PROFILE || mkdtempSync(join(tmpdir(), "gw-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.GW_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("console", (m) => console.error("console:", m.text()));
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(url);

  // Each wait polls SERVER's row of GATEWAY ([state, pid]) in the page
  // with a plain function: the page's Content-Security-Policy forbids eval.
  const until = async (what, arg, test) => {
    const h = await page
      .waitForFunction(test, { gateway, server, pid: arg }, { polling: 100, timeout: 60000 })
      .catch((e) => {
        throw new Error(`waiting for ${what}: ${e.message}`);
      });
    return h.jsonValue();
  };
  const ready = ({ gateway, server }) => {
    const tr = document.querySelector(`.gateway[data-gateway="${gateway}"] tr[data-server="${server}"]`);
    const r = tr && [tr.querySelector("td.state").dataset.state, tr.cells[2].textContent];
    return r && r[0] === "ready" && r[1] !== "" ? r : null;
  };
  const changed = ({ gateway, server, pid }) => {
    const tr = document.querySelector(`.gateway[data-gateway="${gateway}"] tr[data-server="${server}"]`);
    const r = tr && [tr.querySelector("td.state").dataset.state, tr.cells[2].textContent];
    return r && (r[0] !== "ready" || r[1] !== pid) ? r : null;
  };
  const readyAgain = ({ gateway, server, pid }) => {
    const tr = document.querySelector(`.gateway[data-gateway="${gateway}"] tr[data-server="${server}"]`);
    const r = tr && [tr.querySelector("td.state").dataset.state, tr.cells[2].textContent];
    return r && r[0] === "ready" && r[1] !== "" && r[1] !== pid ? r : null;
  };

  const [, pid] = await until("ready", "", ready);
  console.log("READY " + pid);
  const [state] = await until("down", pid, changed);
  if (state === "ready") {
    // Missed the down state: the new pid is already there.
    console.error("the page went from one ready pid to another without showing the server down");
    process.exitCode = 1;
  } else {
    console.log("DOWN " + state);
  }
  const [, again] = await until("ready again", pid, readyAgain);
  console.log("BACK " + again);
  await page.screenshot({ path: shot, fullPage: true });
  console.log("SCREENSHOT " + shot);
} finally {
  await ctx.close();
}
