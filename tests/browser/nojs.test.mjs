// The same flows with JavaScript off: real links and forms, each a whole page.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ADMIN, BASE, TUTOR, assertWholePage, close, logIn, open, png } from './harness.mjs';

after(close);

const pager = (page) => page.locator('#rows .pager .muted').textContent();

describe('without JavaScript', () => {
  test('log in, page and filter lessons, log out', async () => {
    const { page, clean } = await open({ js: false, width: 'phone' });
    await logIn(page, ADMIN, '/lessons/');
    await assertWholePage(page, 'Lessons');
    await Promise.all([
      page.waitForURL((u) => u.search !== ''),
      page.locator('#rows .pager').getByRole('link', { name: 'Next →' }).click(),
    ]);
    await assertWholePage(page, 'Lessons');
    assert.match(await pager(page), /^Page 2 of 5 · 240 in all$/);

    await page.getByLabel('Status').selectOption('CANCELLED');
    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('status') === 'CANCELLED'),
      page.getByRole('button', { name: 'Filter' }).click(),
    ]);
    await assertWholePage(page, 'Lessons');
    assert.doesNotMatch(await pager(page), /240 in all/);
    assert.equal(await page.getByLabel('Status').inputValue(), 'CANCELLED');

    await Promise.all([page.waitForURL((u) => u.pathname.startsWith('/login')), page.getByRole('button', { name: 'Log out' }).click()]);
    await page.goto(`${BASE}/lessons/`);
    assert.match(page.url(), /\/login/);
    await clean();
  });

  test('search students with the form', async () => {
    const { page, clean } = await open({ js: false });
    await logIn(page, TUTOR, '/students/');
    const last = (await page.locator('#rows tbody tr:first-child td:first-child').textContent()).trim().split(' ').pop();
    const q = last.slice(0, 4);
    await page.getByRole('searchbox', { name: 'Search students' }).fill(q);
    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('q') === q),
      page.getByRole('button', { name: 'Search' }).click(),
    ]);
    await assertWholePage(page, 'Students');
    const rows = await page.locator('#rows tbody tr').allTextContents();
    assert.ok(rows.length >= 1);
    for (const row of rows) assert.ok(row.toLowerCase().includes(q.toLowerCase()), `${row} matches ${q}`);
    await clean();
  });

  test('calendar weeks by link', async () => {
    const { page, clean } = await open({ js: false });
    await logIn(page, ADMIN, '/calendar/');
    const label = () => page.locator('#week .pager .muted').textContent();
    const thisWeek = await label();
    await Promise.all([
      page.waitForURL((u) => u.searchParams.has('start')),
      page.getByRole('link', { name: 'Next week →' }).first().click(),
    ]);
    await assertWholePage(page, 'Calendar');
    assert.notEqual(await label(), thisWeek);
    await page.goBack();
    await assertWholePage(page, 'Calendar');
    assert.equal(await label(), thisWeek);
    await clean();
  });

  test('mark attendance with the form', async () => {
    const { page, clean } = await open({ js: false });
    await logIn(page, ADMIN, '/lessons/');
    await Promise.all([
      page.waitForURL((u) => /^\/lessons\/\d+\/$/.test(u.pathname)),
      page.locator('#rows tbody tr:nth-child(2) td:first-child a').click(),
    ]);
    const lesson = page.url();
    const row = page.locator('#students tbody tr').first();
    const before = (await row.locator('td.mark').textContent()).trim();
    const want = before === 'late' ? 'excused' : 'late';
    await Promise.all([page.waitForEvent('load'), row.getByRole('button', { name: want, exact: true }).click()]);
    assert.equal(page.url(), lesson, 'back on the lesson after the form');
    await assertWholePage(page, (await page.locator('h1').textContent()).trim());
    assert.equal((await page.locator('#students tbody tr td.mark').first().textContent()).trim(), want);
    await clean();
  });

  test('upload a room photo with the form', async () => {
    const { page, clean } = await open({ js: false });
    await logIn(page, ADMIN, '/rooms/');
    const room = page.locator('li.room').nth(3);
    const id = await room.getAttribute('id');
    await room.locator('input[type=file]').setInputFiles({ name: 'room.png', mimeType: 'image/png', buffer: png(300, 200) });
    await Promise.all([page.waitForEvent('load'), room.getByRole('button', { name: 'Upload' }).click()]);
    await assertWholePage(page, 'Rooms');
    // No polling without JavaScript: the page says so, and a reload shows the picture.
    const photo = page.locator(`#${id} .room-photo`);
    for (let i = 0; i < 90 && (await photo.locator('.image-pending').count()) > 0; i++) {
      await page.waitForTimeout(1000);
      await page.reload();
    }
    const img = photo.locator('img[data-placeholder]');
    await img.scrollIntoViewIfNeeded();
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    assert.match(await img.evaluate((el) => el.currentSrc), /\/media\//);
    await clean();
  });
});
