// The user flows with JavaScript on, at a phone's width and a desktop's: htmx swaps
// in place, pushes URLs, and Back, Forward and reload always give whole pages.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  ADMIN, BASE, TUTOR, assertWholePage, close, kept, logIn, mark, open, png, shot,
} from './harness.mjs';

after(close);

const pager = (page) => page.locator('#rows .pager .muted').textContent();
const firstLesson = (page) => page.locator('#rows tbody tr:first-child td:first-child').textContent();

for (const width of ['phone', 'desktop']) {
  describe(`with JavaScript, ${width}`, () => {
    test('log in and out', async () => {
      const { page, clean } = await open({ width });
      await logIn(page, ADMIN);
      await assertWholePage(page, 'Dashboard');
      await shot(page, `dashboard-${width}`);
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.waitForURL((u) => u.pathname.startsWith('/login'));
      await page.goto(`${BASE}/dashboard/`);
      assert.match(page.url(), /\/login/, 'logged out: the dashboard asks for a login again');
      await clean();
    });

    test('page and filter lessons in place; Back, Forward and reload give whole pages', async () => {
      const { page, clean, htmx } = await open({ width });
      await logIn(page, ADMIN, '/lessons/');
      assert.match(await pager(page), /^Page 1 of 5 · 240 in all$/);
      const onFirst = await firstLesson(page);
      await mark(page);

      await page.locator('#rows .pager').getByRole('link', { name: 'Next →' }).click();
      await page.waitForFunction(() => document.querySelector('#rows .pager .muted')?.textContent.startsWith('Page 2'));
      assert.ok(await kept(page), 'the next page came as an htmx swap, not a page load');
      assert.notEqual(await firstLesson(page), onFirst, 'other lessons on page 2');
      const page2 = page.url();
      assert.notEqual(page2, `${BASE}/lessons/`, 'page 2 has its own URL in the address bar');

      await page.getByLabel('Status').selectOption('COMPLETED');
      await page.waitForURL((u) => u.searchParams.get('status') === 'COMPLETED');
      await page.waitForFunction(() => !document.querySelector('#rows .pager .muted')?.textContent.includes('240 in all'));
      assert.ok(await kept(page), 'the filter came as an htmx swap');
      const completed = await pager(page);
      assert.match(completed, /^Page 1 of \d · \d+ in all$/);
      assert.equal(htmx.length, 2, 'one htmx request per action');
      await shot(page, `lessons-${width}`);

      await page.goBack();
      await page.waitForURL(page2);
      await assertWholePage(page, 'Lessons');
      assert.match(await pager(page), /^Page 2 of 5/);
      await page.goForward();
      await page.waitForURL((u) => u.searchParams.get('status') === 'COMPLETED');
      await assertWholePage(page, 'Lessons');
      assert.equal(await pager(page), completed);

      await page.reload();
      await assertWholePage(page, 'Lessons');
      assert.equal(await pager(page), completed);
      assert.equal(await page.getByLabel('Status').inputValue(), 'COMPLETED', 'the filter shows after a reload');

      // Away by a real link and back: the browser's own cache must not hand back the
      // rows fragment it got for this URL.
      await page.locator('header').getByRole('link', { name: 'Calendar' }).click();
      await page.waitForURL((u) => u.pathname === '/calendar/');
      await page.goBack();
      await page.waitForURL((u) => u.searchParams.get('status') === 'COMPLETED');
      await assertWholePage(page, 'Lessons');
      await clean();
    });

    test('search students as you type: one request per pause', async () => {
      const { page, clean, htmx } = await open({ width });
      await logIn(page, TUTOR, '/students/');
      const last = (await page.locator('#rows tbody tr:first-child td:first-child').textContent()).trim().split(' ').pop();
      const q = last.slice(0, 3).toLowerCase();
      await mark(page);
      const box = page.getByRole('searchbox', { name: 'Search students' });
      const answered = page.waitForResponse((r) => r.url().includes(`q=${q}`) && r.request().headers()['hx-request'] === 'true');
      await box.pressSequentially(q, { delay: 60 });
      await answered;
      // A pause longer than the debounce: nothing more goes out.
      await page.waitForTimeout(600);
      assert.deepEqual(htmx.map((u) => new URL(u).searchParams.get('q')), [q], 'one request, for the whole word');
      assert.ok(await kept(page), 'results swapped in place');
      assert.equal(new URL(page.url()).searchParams.get('q'), q, 'the search is in the address bar');
      const names = await page.locator('#rows tbody tr td:first-child').allTextContents();
      assert.ok(names.length >= 1);
      const rows = await page.locator('#rows tbody tr').allTextContents();
      for (const row of rows) assert.ok(row.toLowerCase().includes(q), `${row} matches ${q}`);
      await shot(page, `students-${width}`);

      await page.reload();
      await assertWholePage(page, 'Students');
      assert.equal(await box.inputValue(), q);
      assert.deepEqual(await page.locator('#rows tbody tr td:first-child').allTextContents(), names);
      await clean();
    });

    test('move between calendar weeks with pushed URLs', async () => {
      const { page, clean } = await open({ width });
      await logIn(page, ADMIN, '/calendar/');
      const label = () => page.locator('#week .pager .muted').textContent();
      const thisWeek = await label();
      await mark(page);
      await page.getByRole('link', { name: 'Next week →' }).first().click();
      await page.waitForURL((u) => u.searchParams.has('start'));
      await page.waitForFunction((was) => document.querySelector('#week .pager .muted')?.textContent !== was, thisWeek);
      assert.ok(await kept(page), 'the next week came as an htmx swap');
      const start = new URL(page.url()).searchParams.get('start');
      assert.equal(new Date(`${start}T12:00:00Z`).getUTCDay(), 1, `${start} is a Monday`);
      const nextWeek = await label();
      await shot(page, `calendar-${width}`);

      await page.goBack();
      await page.waitForURL((u) => !u.searchParams.has('start'));
      await assertWholePage(page, 'Calendar');
      assert.equal(await label(), thisWeek);
      await page.goForward();
      await page.waitForURL((u) => u.searchParams.get('start') === start);
      assert.equal(await label(), nextWeek);
      await page.reload();
      await assertWholePage(page, 'Calendar');
      assert.equal(await label(), nextWeek);
      await clean();
    });

    test('mark attendance in place', async () => {
      const { page, clean } = await open({ width });
      await logIn(page, ADMIN, '/lessons/');
      await page.locator('#rows tbody tr:first-child td:first-child a').click();
      await page.waitForURL((u) => /^\/lessons\/\d+\/$/.test(u.pathname));
      const row = page.locator('#students tbody tr').first();
      const before = (await row.locator('td.mark').textContent()).trim();
      const want = before === 'present' ? 'absent' : 'present';
      await mark(page);
      await row.getByRole('button', { name: want, exact: true }).click();
      await page.waitForFunction(
        (w) => document.querySelector('#students tbody tr td.mark')?.textContent.trim() === w, want,
      );
      assert.ok(await kept(page), 'marked without a page load');
      const summary = async () => {
        const marks = await page.locator('#students td.mark').allTextContents();
        const present = marks.filter((m) => m.trim() === 'present').length;
        return { present, text: (await page.locator('#students p.muted').textContent()).trim() };
      };
      const now = await summary();
      assert.match(now.text, new RegExp(`, ${now.present} present$`), 'the count under the table follows');
      await shot(page, `lesson-${width}`);
      await page.reload();
      await assertWholePage(page, (await page.locator('h1').textContent()).trim());
      assert.equal((await page.locator('#students tbody tr td.mark').first().textContent()).trim(), want, 'kept');
      await clean();
    });

    test('upload a room photo: the placeholder becomes the picture', async () => {
      const { page, clean } = await open({ width });
      await logIn(page, ADMIN, '/rooms/');
      const room = page.locator('li.room').nth(width === 'phone' ? 1 : 2);
      const photo = room.locator('.room-photo');
      await room.locator('input[type=file]').setInputFiles({ name: `room-${width}.png`, mimeType: 'image/png', buffer: png() });
      await mark(page);
      await room.getByRole('button', { name: 'Upload' }).click();
      await photo.locator('.image-pending').waitFor();
      assert.match(await photo.textContent(), /Processing/);
      // Made in the background (AVIF, WebP, JPEG at every width), then polled in.
      await photo.locator('.image-pending').waitFor({ state: 'detached', timeout: 90_000 });
      const img = photo.locator('img[data-placeholder]');
      await img.scrollIntoViewIfNeeded();
      await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
      assert.ok(await kept(page), 'the picture arrived without a page load');
      assert.match(await img.evaluate((el) => el.currentSrc), /\/media\//);
      assert.equal(await photo.locator('.ph-blur').count(), 0, 'the blurred placeholder is gone once the picture loaded');
      await shot(page, `rooms-${width}`);
      await clean();
    });
  });
}
