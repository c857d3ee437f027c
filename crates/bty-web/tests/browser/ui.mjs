// bty-web's UI in Debian's headless Chromium, driven with playwright-core (no downloaded
// browser). Run by tests/browser.rs with BTY_URL (a fresh bty-web) and BTY_SHOTS (where the
// screenshots go). PXE contacts and agent reports are made with curl, as a machine would.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import http from "node:http";
import assert from "node:assert/strict";

const BASE = process.env.BTY_URL;
const SHOTS = process.env.BTY_SHOTS;
const CHROMIUM = process.env.BTY_CHROMIUM || "/usr/bin/chromium";
assert.ok(BASE && SHOTS, "BTY_URL and BTY_SHOTS must be set");
mkdirSync(SHOTS, { recursive: true });

const MAC = "52:54:00:be:ef:01";
const DISK_SERIAL = "BTY-TEST-DISK-1";

function step(name) {
  console.log(`-- ${name}`);
}

function curl(...args) {
  return execFileSync("curl", ["-sS", "--max-time", "10", "-w", "\n%{http_code}", ...args], {
    encoding: "utf8",
  });
}

// A progress report as the agent sends it; the server takes one per 250 ms per machine (429
// otherwise, which the agent also just retries).
async function postProgress(done, total) {
  const body = JSON.stringify({ bytes_done: done, bytes_total: total, stage: "writing" });
  for (;;) {
    const st = curlStatus("-X", "POST", "-H", "content-type: application/json", "--data", body, `${BASE}/pxe/${MAC}/progress`);
    if (st !== 429) return st;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function curlStatus(...args) {
  const out = curl(...args).trimEnd();
  return Number(out.slice(out.lastIndexOf("\n") + 1));
}

// An origin for the catalog entry: an image and its SHA256SUMS.
const image = Buffer.alloc(64 * 1024, 7);
const imageSha = createHash("sha256").update(image).digest("hex");
const origin = http.createServer((req, res) => {
  if (req.url === "/img/SHA256SUMS") {
    res.end(`${imageSha}  demo-disk.raw\n`);
  } else if (req.url === "/img/demo-disk.raw") {
    res.setHeader("content-length", image.length);
    res.end(req.method === "HEAD" ? undefined : image);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise((r) => origin.listen(0, "127.0.0.1", r));
const ORIGIN = `http://127.0.0.1:${origin.address().port}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const problems = [];
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("dialog", (d) => d.accept());

function nav(name) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

async function shot(name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function fieldError(id) {
  return (await page.locator(`#${id}-error`).textContent()).trim();
}

try {
  step("signed out: the dashboard sends to the login page, which tells strangers nothing about the password");
  await page.goto(`${BASE}/ui/dashboard`);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  const loginText = await page.locator("body").innerText();
  assert.ok(!/bty-lab|default/i.test(loginText), `login page mentions the password: ${loginText}`);
  await shot("login");

  step("a wrong password is refused");
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Invalid password.").waitFor();
  assert.equal(new URL(page.url()).pathname, "/ui/login");

  step("the right password opens the dashboard");
  await page.getByLabel("Password").fill("bty-lab");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/ui/dashboard`);
  await page.getByRole("heading", { name: "Readiness" }).waitFor();
  // Signed in, the operator is warned about the default password.
  await page.getByText("The default admin password is in use").waitFor();
  const todo = await page.locator("ul.checks li.todo").count();
  assert.equal(todo, 4, "fresh server: netboot, catalog, TFTP and password all to do");

  step("a PXE contact from a new MAC appears on the open machines page without a reload");
  await nav("Machines").click();
  await page.waitForURL(`${BASE}/ui/machines`);
  await page.locator("#live.on").waitFor();
  await page.evaluate(() => (window.__sameDocument = true));
  assert.equal(await page.locator(`tr[data-mac="${MAC}"]`).count(), 0);
  const script = curl(`${BASE}/pxe/${MAC}`);
  assert.ok(script.startsWith("#!ipxe"), script);
  await page.locator(`tr[data-mac="${MAC}"]`).waitFor();
  await page.locator(`tr[data-mac="${MAC}"] .state-discovered`).waitFor();
  await page.locator("#machine-activity", { hasText: `${MAC} discovered` }).waitFor();
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
  await shot("machines");

  step("the machine reports its disks (as the agent does)");
  const inventory = JSON.stringify({
    disks: [
      { path: "/dev/vda", size: "21474836480", model: "QEMU HARDDISK", serial: DISK_SERIAL, tran: "virtio" },
      { path: "/dev/vdb", size: "1073741824", model: "NO SERIAL", serial: "" },
    ],
    lshw: {
      class: "system", product: "Standard PC", children: [{ class: "bus", children: [
        { class: "processor", product: "QEMU Virtual CPU", configuration: { cores: "2" } },
        { class: "memory", id: "memory", size: 2147483648 },
        { class: "network", serial: MAC, logicalname: "eth0", vendor: "Red Hat, Inc.", product: "Virtio network device" },
      ] }],
    },
  });
  assert.equal(
    curlStatus("-X", "POST", "-H", "content-type: application/json", "--data", inventory, `${BASE}/pxe/${MAC}/inventory`),
    204,
  );

  step("a catalog entry is refused with the message next to the field, keeping what was typed");
  await nav("Images").click();
  await page.getByLabel("Image URL").fill("ftp://nowhere/disk.raw");
  await page.getByLabel("Name (optional)").fill("kept-name");
  await page.getByRole("button", { name: "Add image" }).click();
  assert.match(await fieldError("image_url"), /http\(s\):\/\/ or oras:\/\//);
  assert.equal(await page.getByLabel("Name (optional)").inputValue(), "kept-name");
  assert.equal(await page.getByLabel("Image URL").inputValue(), "ftp://nowhere/disk.raw");

  step("a catalog entry is added by URL, its digest read from a checksum file");
  await page.getByLabel("Image URL").fill(`${ORIGIN}/img/demo-disk.raw`);
  await page.getByLabel("Name (optional)").fill("demo-disk");
  await page.getByLabel("Checksum file URL (optional, SHA256SUMS style)").fill(`${ORIGIN}/img/SHA256SUMS`);
  await page.getByRole("button", { name: "Add image" }).click();
  await page.getByText("Added demo-disk.").waitFor();
  const row = page.locator("table.images tbody tr", { hasText: "demo-disk" });
  await row.locator(`span[title="${imageSha}"]`).waitFor();
  await shot("images");

  step("binding: a flash mode without a disk is refused next to the field, nothing typed is lost");
  await page.goto(`${BASE}/ui/machines/${MAC}`);
  await page.getByText("QEMU Virtual CPU").waitFor();
  await page.getByLabel("Boot mode").selectOption("bty-flash-once");
  const imageRef = await page.locator("#bty_image_ref option", { hasText: "demo-disk" }).getAttribute("value");
  await page.getByLabel("Image", { exact: true }).selectOption(imageRef);
  await page.getByLabel("Labels").fill("rack-7, gpu");
  await page.getByLabel("Host name").fill("node-07");
  await page.getByRole("button", { name: "Save" }).click();
  assert.match(await fieldError("target_disk_serial"), /required for boot_mode bty-flash-once/);
  assert.equal(await page.getByLabel("Labels").inputValue(), "rack-7, gpu");
  assert.equal(await page.getByLabel("Host name").inputValue(), "node-07");
  assert.equal(await page.getByLabel("Boot mode").inputValue(), "bty-flash-once");

  step("binding: the disk picked from the inventory; the serial-less disk cannot be chosen");
  const noSerial = page.locator("#target_disk_serial option", { hasText: "NO SERIAL" });
  assert.equal(await noSerial.isDisabled(), true);
  await page.getByLabel("Target disk").selectOption(DISK_SERIAL);
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved.").waitFor();

  step("the machine's page follows its flash live");
  await page.locator("#live.on").waitFor();
  assert.equal(await postProgress(16384, 65536), 204);
  await page.locator('#machine-status progress[value="25"]').waitFor();
  await page.locator("#machine-status .state-flashing").waitFor();
  await shot("machine");
  const bound = JSON.parse(curl("-b", await cookieHeader(), `${BASE}/machines/${MAC}`).replace(/\n\d+$/, ""));
  assert.equal(bound.boot_mode, "bty-flash-once");
  assert.equal(bound.target_disk_serial, DISK_SERIAL);
  assert.deepEqual(bound.labels, ["gpu", "rack-7"]);
  assert.equal(bound.hostname, "node-07");

  step("the dashboard shows a flash in progress, live");
  await nav("bty").click();
  await page.locator("#live.on").waitFor();
  assert.equal(await postProgress(32768, 65536), 204);
  await page.locator('#dashboard-live progress[value="50"]').waitFor();
  await shot("dashboard");

  step("a failure shows up on the open dashboard and is acknowledged there");
  assert.equal(
    curlStatus("-X", "POST", "-H", "content-type: application/json",
      "--data", '{"stage": "writing", "reason": "I/O error on /dev/vda"}', `${BASE}/pxe/${MAC}/failed`),
    204,
  );
  // No reload: the failures list is live too.
  const failure = page.locator("#dashboard-failures");
  await failure.getByText("I/O error on /dev/vda").waitFor();
  // The wrong password at the start is a failure too: acknowledge both.
  assert.equal(await failure.getByRole("button", { name: "Acknowledge" }).count(), 2);
  await failure.locator("li", { hasText: "I/O error on /dev/vda" }).getByRole("button", { name: "Acknowledge" }).click();
  await failure.getByText("I/O error on /dev/vda").waitFor({ state: "detached" });
  assert.equal(await failure.getByRole("button", { name: "Acknowledge" }).count(), 1);
  await failure.getByRole("button", { name: "Acknowledge" }).click();
  await failure.getByText("No unacknowledged failures.").waitFor();
  await nav("Machines").click();
  await page.locator(`tr[data-mac="${MAC}"] .state-failed`).waitFor();

  step("events: search, pivot, paging controls");
  await page.goto(`${BASE}/ui/events`);
  await page.getByLabel("Search").fill("I/O error");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("table.events tbody tr", { hasText: "I/O error on /dev/vda" }).getByText("acknowledged").waitFor();
  await page.locator("table.events tbody tr").first().getByRole("link", { name: MAC }).first().waitFor();
  await page.goto(`${BASE}/ui/events`);
  await shot("events");

  step("the other pages render");
  await page.goto(`${BASE}/ui/netboot`);
  await page.getByText("missing").first().waitFor();
  assert.ok((await page.locator("pre").first().textContent()).includes(`${BASE}/pxe-bootstrap.ipxe`));
  await shot("netboot");
  await page.goto(`${BASE}/ui/settings`);
  await page.getByText("admin.password").waitFor();
  await shot("settings");
  await page.goto(`${BASE}/ui/account`);
  await shot("account");
  const src = encodeURIComponent(`${ORIGIN}/img/demo-disk.raw`);
  await page.goto(`${BASE}/ui/images/delete?src=${src}`);
  await page.getByText("1 machine is bound to this image").waitFor();
  await shot("image-delete");

  step("a phone-sized window: no page is wider than the screen");
  await page.setViewportSize({ width: 375, height: 812 });
  for (const p of ["dashboard", "machines", `machines/${MAC}`, "images", "cache", "events", "netboot", "settings", "account"]) {
    await page.goto(`${BASE}/ui/${p}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 375, `/ui/${p} is ${wide} px wide at 375`);
  }
  await page.goto(`${BASE}/ui/machines`);
  await shot("machines-375");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("accessibility: axe-core finds no serious or critical problem on any page");
  // axe is injected through a context that bypasses the CSP (the pages themselves run none of
  // it); the session cookie is shared.
  const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  const audit = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
  await audit.addCookies(await context.cookies(BASE));
  const ap = await audit.newPage();
  for (const p of ["dashboard", "machines", `machines/${MAC}`, "images", "cache", "events", "netboot", "settings", "account"]) {
    await ap.goto(`${BASE}/ui/${p}`);
    await ap.evaluate(axeSource);
    const found = await ap.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return { rules: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, impact: v.impact,
        where: v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ") })) };
    });
    assert.ok(found.rules > 10, `axe ran its rules on /ui/${p}`);
    const bad = found.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(bad, [], `/ui/${p}`);
    const minor = found.violations.map((v) => `${v.id} (${v.impact})`).join(", ");
    console.log(`   /ui/${p}: ${found.rules} axe rules pass${minor ? `; minor: ${minor}` : ""}`);
  }
  await audit.close();

  step("keyboard: the skip link and the nav are reachable with Tab");
  await page.goto(`${BASE}/ui/dashboard`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "bty");

  step("sign out: the pages refuse");
  await page.getByRole("button", { name: "Sign out" }).first().click();
  await page.waitForURL(`${BASE}/ui/login`);
  for (const p of ["dashboard", "machines", "events"]) {
    await page.goto(`${BASE}/ui/${p}`);
    assert.equal(new URL(page.url()).pathname, "/ui/login", `/ui/${p} after sign-out`);
  }

  step("repeated wrong passwords are rate-limited, even before the right one");
  for (let i = 0; i < 5; i++) {
    await page.getByLabel("Password").fill(`wrong-${i}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Invalid password.").waitFor();
  }
  await page.getByLabel("Password").fill("bty-lab");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Too many attempts").waitFor();
  assert.equal(new URL(page.url()).pathname, "/ui/login");

  // Refused forms answer 422 (validation) and 429 (rate limit), which the console notes.
  const unexpected = problems.filter((p) => !/status of (422|429)/.test(p));
  assert.deepEqual(unexpected, [], "no script errors or CSP violations");
  console.log("ok: all browser scenarios passed");
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
  origin.close();
}

async function cookieHeader() {
  const cookies = await context.cookies(BASE);
  return cookies.map((c) => `${c.name}=${c.value}`).join("; ");
}
