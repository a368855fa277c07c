// token.test.js -- a server started with --token: the page opened from the
// printed address (?token=...) works (API calls, live events) and drops the
// token from the address bar; opened without it, the page says what to do.
// tests/browser/run.sh passes the address and token in EMILE_TOKEN_URL and
// EMILE_TOKEN.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

const BASE = process.env.EMILE_TOKEN_URL;
const TOKEN = process.env.EMILE_TOKEN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

test('the page carries the access token', async (t) => {
  assert.ok(BASE && TOKEN, 'run tests/browser/run.sh');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();

  await t.test('without the token the page says where to find it', async () => {
    await page.goto(BASE);
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /access token/);
  });

  await t.test('with ?token= the API answers and events flow', async () => {
    await page.goto(BASE + '?token=' + encodeURIComponent(TOKEN) + '#kitchen');
    await page.waitForSelector('#live.on');
    await page.waitForFunction(() => document.querySelectorAll('#f-op option').length > 0);
    assert.equal(await page.isHidden('#banner'), true);
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
    // A reload keeps working from the tab's session storage.
    await page.reload();
    await page.waitForSelector('#live.on');
    assert.equal(await page.isHidden('#banner'), true);
  });
});
