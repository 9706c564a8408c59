// Every page on a 360 px screen: nothing runs off the right edge, every link and button
// of the navigation can be reached and tapped (44 px), wide tables scroll in their own
// box; and the same pages at a desktop's width load without a problem.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ADMIN, BASE, close, logIn, open, shot } from './harness.mjs';

after(close);

const PAGES = ['/dashboard/', '/lessons/', '/calendar/', '/students/', '/rooms/', '/profile/', '/admin/cache-stats/'];

async function lessonPath(page) {
  await page.goto(`${BASE}/lessons/`);
  return new URL(await page.locator('#rows tbody tr:first-child td:first-child a').evaluate((a) => a.href)).pathname;
}

describe('layout', () => {
  test('360 px: no page wider than the screen, navigation reachable, 44 px targets', async () => {
    const phone = await open({ width: 'phone' });
    await phone.page.setViewportSize({ width: 360, height: 740 });
    await logIn(phone.page, ADMIN);
    const pages = [...PAGES, await lessonPath(phone.page)];
    for (const path of pages) {
      await phone.page.goto(BASE + path);
      const m = await phone.page.evaluate(() => {
        const vw = document.documentElement.clientWidth;
        const targets = [...document.querySelectorAll('header a, header button')].map((el) => {
          const r = el.getBoundingClientRect();
          return { text: el.textContent.trim(), left: r.left, right: r.right, height: r.height };
        });
        // A table wider than the screen must sit in a box that scrolls sideways.
        const tables = [...document.querySelectorAll('table')]
          .filter((t) => t.getBoundingClientRect().width > vw && t.closest('details:not([open])') === null)
          .filter((t) => {
            for (let el = t.parentElement; el && el !== document.body; el = el.parentElement) {
              const o = getComputedStyle(el).overflowX;
              if ((o === 'auto' || o === 'scroll') && el.getBoundingClientRect().width <= vw) return false;
            }
            return true;
          }).length;
        return { vw, scroll: document.documentElement.scrollWidth, targets, tables };
      });
      assert.ok(m.scroll <= m.vw, `${path}: the page is ${m.scroll} px wide on a ${m.vw} px screen`);
      assert.equal(m.tables, 0, `${path}: a table wider than the screen that does not scroll in its own box`);
      for (const t of m.targets) {
        assert.ok(t.left >= 0 && t.right <= m.vw, `${path}: "${t.text}" is off screen (${t.left}–${t.right})`);
        assert.ok(t.height >= 44, `${path}: "${t.text}" is ${t.height} px tall, under 44`);
      }
      await shot(phone.page, `360${path.replaceAll('/', '_')}`);
    }
    await phone.clean();
  });

  test('desktop: every page whole and clean', async () => {
    const { page, clean } = await open({ width: 'desktop' });
    await logIn(page, ADMIN);
    for (const path of [...PAGES, await lessonPath(page)]) {
      const r = await page.goto(BASE + path);
      assert.equal(r.status(), 200, path);
      assert.equal(await page.locator('header').count(), 1, path);
    }
    await clean();
  });
});
