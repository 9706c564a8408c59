// What every browser test shares: one headless Chromium (Debian's, through
// playwright-core), a page per test that records everything that went wrong in it, the
// demo logins, and a PNG made here so the upload needs no file from outside.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

export const BASE = process.env.NAPIATKE_URL ?? 'http://127.0.0.1:8000';
export const SHOTS = process.env.SHOTS ?? '';
export const WIDTHS = { phone: { width: 390, height: 844 }, desktop: { width: 1280, height: 800 } };
export const ADMIN = { email: 'admin@napiatke.local', password: 'admin' };
export const TUTOR = { email: 'tutor1@napiatke.local', password: 'tutor' };
export const STUDENT = { email: 'student1@napiatke.local', password: 'student' };

let browser;

/** The one browser, started on first use. */
export async function launch() {
  browser ??= await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // No sandbox: CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  return browser;
}

export async function close() {
  await browser?.close();
  browser = undefined;
}

/**
 * A fresh browser context (its own cookies and cache) and page at a width, with or
 * without JavaScript. `problems` collects console errors, uncaught exceptions, failed
 * requests and 4xx/5xx responses; `clean()` fails the test on any of them.
 */
export async function open({ width = 'desktop', js = true } = {}) {
  const b = await launch();
  const context = await b.newContext({ viewport: WIDTHS[width], javaScriptEnabled: js });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  // A request the browser cancels because its document is being left is not a failure: each request remembers how many
  // navigations had started before it, and an abort counts only within its own page.
  let navigations = 0;
  const startedIn = new WeakMap();
  page.on('request', (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations++;
    startedIn.set(r, navigations);
  });
  page.on('requestfailed', (r) => {
    const error = r.failure()?.errorText ?? '';
    if (error === 'net::ERR_ABORTED' && startedIn.get(r) !== navigations) return;
    // The tab's icon is fetched by the browser after the load event and cancelled by
    // any navigation that starts, even one that starts as it does.
    if (error === 'net::ERR_ABORTED' && new URL(r.url()).pathname.startsWith('/static/favicon.')) return;
    problems.push(`request failed: ${r.method()} ${r.url()}: ${error}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  // htmx requests, in order, to count what a pause in typing sends.
  const htmx = [];
  page.on('request', (r) => {
    if (r.headers()['hx-request'] === 'true') htmx.push(r.url());
  });
  const clean = async () => {
    // Let late events (an image load, a poll) land before judging.
    await page.waitForLoadState('load');
    assert.deepEqual(problems, [], `the page had problems:\n${problems.join('\n')}`);
    await context.close();
  };
  return { context, page, problems, htmx, clean, width, js };
}

/** Logs in through the form, from the page a logged-out visit to `path` leads to. */
export async function logIn(page, who, path = '/dashboard/') {
  await page.goto(BASE + path);
  assert.match(page.url(), /\/login/, 'a logged-out visit goes to the login page');
  await page.getByLabel('E-mail').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await Promise.all([page.waitForURL((u) => u.pathname === path), page.getByRole('button', { name: 'Log in' }).click()]);
  assert.equal(new URL(page.url()).pathname, path, 'back where the visit started');
}

/** Marks the document, to tell an htmx swap (mark kept) from a page load (mark gone). */
export async function mark(page) {
  // htmx arrives after the load event (assets/js/boot.js); a click before then is a
  // plain navigation, as it is without JavaScript.
  await page.waitForFunction(() => window.htmx !== undefined);
  await page.evaluate(() => {
    window.__napiatkeKept = true;
  });
}

export async function kept(page) {
  return page.evaluate(() => window.__napiatkeKept === true);
}

/** A whole page, never a bare fragment: the navigation, a heading and the stylesheet. */
export async function assertWholePage(page, heading) {
  assert.equal(await page.locator('header a[href="/dashboard/"]').count(), 1, `${page.url()}: the navigation is there`);
  assert.equal(await page.locator('link[rel=stylesheet]').count(), 1, `${page.url()}: the stylesheet is linked`);
  assert.equal(
    await page.locator('header').evaluate((h) => getComputedStyle(h).display),
    'flex',
    `${page.url()}: the stylesheet applies`,
  );
  assert.equal((await page.locator('h1').first().textContent()).trim(), heading);
}

export async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** A 320×240 RGB PNG with a gradient and a few blocks: a small, honest photo stand-in. */
export function png(width = 320, height = 240) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const block = ((x >> 5) + (y >> 5)) & 1;
      raw[row + 1 + x * 3] = (x * 255) / width;
      raw[row + 2 + x * 3] = (y * 255) / height;
      raw[row + 3 + x * 3] = block ? 200 : 60;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(buf) {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
