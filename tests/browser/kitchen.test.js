// kitchen.test.js -- the Kitchen and the Tasting Room in a real browser
// (Debian's headless Chromium driven by playwright-core).  tests/browser/
// run.sh starts `emile serve` on a free loopback port with a temporary store
// and passes its address in EMILE_URL.
//
// A new user's path: the page opens with the bundled CPU task filled in; we
// make it small, give it a name and a reference whose text holds
// "<script>", cook it with the builtin agent, watch iterations appear, check
// that the roofline has a point per valid iteration, read a diff, reopen the
// run from the list, stop a second cook, visit the Tasting Room.  Nothing
// the server sent may run as script.  Screenshots go to SCREENSHOT_DIR.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BASE = process.env.EMILE_URL;
const SHOTS = process.env.SCREENSHOT_DIR || path.join(__dirname, '..', '..', 'build', 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const COOK_TIMEOUT = Number(process.env.COOK_TIMEOUT_MS || 420000);
const EVIL = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

let browser, page;
const problems = [];      // console errors, page errors, dialogs

async function shot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

// Rows of the iterations table: [{iter, status, valid}]
async function iterRows() {
  return page.$$eval('#iters tbody tr[data-iter]', (rows) => rows.map((r) => ({
    iter: Number(r.dataset.iter),
    status: r.children[2].textContent,
    best: r.classList.contains('best'),
  })));
}

async function plotPoints() {
  return page.$$eval('#roofline circle.rl-point', (cs) => cs.map((c) => ({
    iter: Number(c.getAttribute('data-iter')), best: c.classList.contains('best'),
  })));
}

async function runStatus() {
  return (await page.textContent('#run-status')).trim();
}

test.before(async () => {
  assert.ok(BASE, 'EMILE_URL is not set: run tests/browser/run.sh');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1500, height: 1000 } });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('dialog', async (d) => { problems.push('dialog: ' + d.message()); await d.dismiss(); });
});

test.after(async () => {
  if (browser) await browser.close();
});

test('the Kitchen cooks the bundled CPU task end to end', { timeout: COOK_TIMEOUT + 120000 }, async (t) => {
  let runId;

  await t.test('the page opens with the bundled CPU task filled in', async () => {
    await page.goto(BASE + '#kitchen');
    await page.waitForFunction(() => document.querySelector('#f-ref').value.includes('emile_kernel'));
    assert.equal(await page.inputValue('#f-backend'), 'cpu');
    assert.equal(await page.inputValue('#f-agent'), 'builtin');
    assert.equal(await page.inputValue('#f-op'), 'attention');
    for (const p of ['batch', 'seq', 'q_heads', 'kv_heads', 'head_dim'])
      assert.ok(Number(await page.inputValue('#p-' + p)) > 0, p + ' is filled');
    assert.equal(await page.isChecked('#p-causal'), true);
    await page.waitForSelector('#live.on');
    await shot('kitchen-start.png');
  });

  await t.test('a small task cooks and its iterations appear live', async () => {
    await page.fill('#f-name', 'browser test ' + EVIL);
    await page.fill('#p-seq', '128');
    await page.fill('#f-iters', '3');
    await page.fill('#f-target', '90');
    const ref = await page.inputValue('#f-ref');
    await page.fill('#f-ref', ref + '\n/* ' + EVIL + ' */\n');
    await page.click('#f-start');
    await page.waitForFunction(() => /^Run \d+/.test(document.querySelector('#run-title').textContent),
                               null, { timeout: 60000 });
    runId = Number((await page.textContent('#run-title')).match(/^Run (\d+)/)[1]);
    // The name is shown as text, <script> and all.
    assert.ok((await page.textContent('#run-title')).includes('<script>window.__pwned'));
    await page.waitForSelector('#iters tbody tr[data-iter]', { timeout: 120000 });
    await shot('kitchen-cooking.png');
    await page.waitForFunction(
      () => ['done', 'stopped', 'failed'].includes(document.querySelector('#run-status').textContent.trim()),
      null, { timeout: COOK_TIMEOUT, polling: 500 });
    const status = await runStatus();
    const note = await page.textContent('#run-job');
    assert.equal(status, 'done', 'the run ended ' + status + ': ' + note);
    const rows = await iterRows();
    assert.ok(rows.length >= 2, 'the reference and at least one candidate (got ' + rows.length + ')');
    assert.deepEqual(rows.map((r) => r.iter), rows.map((_, i) => i), 'iterations in order, none missing');
  });

  await t.test('the roofline has a point per valid iteration, the best one marked', async () => {
    const rows = await iterRows();
    const valid = rows.filter((r) => r.status === 'valid').map((r) => r.iter);
    const points = await plotPoints();
    assert.deepEqual(points.map((p) => p.iter), valid);
    const best = points.filter((p) => p.best).map((p) => p.iter);
    const bestRow = rows.filter((r) => r.best).map((r) => r.iter);
    assert.equal(best.length, 1);
    assert.deepEqual(best, bestRow, 'the plot and the table agree on the best');
    assert.equal(await page.locator('#roofline polyline.rl-roof').count(), 1, 'the roof is drawn');
    if (points.length > 1) assert.equal(await page.locator('#roofline polyline.rl-path').count(), 1);
    // The summary names the best iteration.
    assert.match(await page.textContent('#run-summary'), new RegExp('best: #' + best[0] + ' '));
  });

  await t.test('the source shows <script> as text, and the diff against the previous best', async () => {
    await page.click('#iters tbody tr[data-iter="0"]');
    await page.click('#src-tab-source');
    assert.ok((await page.textContent('#src-view')).includes('</script><script>window.__pwned = 1</script>'));
    const rows = await iterRows();
    // The first cook has a valid candidate after the reference (a small
    // task the builtin agent cooks): its diff must be shown, never skipped.
    const later = rows.find((r) => r.iter > 0 && r.status === 'valid');
    assert.ok(later, 'a valid iteration after the reference; rows: ' + JSON.stringify(rows));
    await page.click(`#iters tbody tr[data-iter="${later.iter}"]`);
    await page.click('#src-tab-diff');
    const label = await page.textContent('#src-label');
    assert.match(label, /against #\d+ \(best before it\)/);
    assert.ok(await page.locator('#src-view span.line.add, #src-view span.line.del').count() > 0,
              'a candidate differs from the reference');
    await shot('kitchen-done.png');
    await page.click('#src-tab-source');
  });

  await t.test('the run is listed, reopens, and exports', async () => {
    const rowsBefore = await iterRows();
    const pointsBefore = await plotPoints();
    await page.goto('about:blank');            // a fresh page, not a hash change
    await page.goto(BASE + '#kitchen');
    assert.equal(await page.textContent('#run-title'), 'No run open');
    await page.waitForSelector(`#runs tbody tr[data-run="${runId}"]`);
    const listed = await page.textContent(`#runs tbody tr[data-run="${runId}"]`);
    assert.ok(listed.includes('done'));
    await page.click(`#runs tbody tr[data-run="${runId}"] button.open`);
    await page.waitForFunction((id) => document.querySelector('#run-title').textContent.startsWith('Run ' + id),
                               runId);
    await page.waitForSelector('#iters tbody tr[data-iter]');
    assert.deepEqual(await iterRows(), rowsBefore);
    assert.deepEqual(await plotPoints(), pointsBefore);
    assert.equal(page.url().endsWith('#run/' + runId), true);
    const href = await page.getAttribute('#run-export', 'href');
    const res = await page.request.get(new URL(href, BASE).toString());
    assert.equal(res.status(), 200);
    const exported = await res.json();
    assert.equal(exported.run.id, runId);
    assert.equal(exported.iterations.length, rowsBefore.length);
    await shot('kitchen-reopened.png');
  });

  await t.test('a second cook can be stopped, and then offers to resume', async () => {
    await page.fill('#f-name', 'browser test: stop me');
    await page.fill('#f-iters', '40');
    await page.fill('#f-target', '100');
    await page.click('#f-start');
    await page.waitForFunction((id) => {
      const m = /^Run (\d+)/.exec(document.querySelector('#run-title').textContent);
      return m && Number(m[1]) !== id;
    }, runId, { timeout: 60000 });
    await page.waitForSelector('#run-stop:not([hidden])');
    await page.waitForSelector('#iters tbody tr[data-iter]', { timeout: 120000 });
    await page.click('#run-stop');
    await page.waitForFunction(() => document.querySelector('#run-status').textContent.trim() === 'stopped',
                               null, { timeout: 180000, polling: 500 });
    await page.waitForSelector('#run-resume:not([hidden])');
    assert.equal(await page.isHidden('#run-stop'), true);
    await shot('kitchen-stopped.png');
  });

  await t.test('the Tasting Room tastes the best kernel', async () => {
    await page.click('#nav-tasting');
    await page.waitForFunction(() => document.querySelector('#t-status').textContent.length > 0 &&
                                     !/^Asking/.test(document.querySelector('#t-status').textContent));
    assert.equal(await page.isHidden('#kitchen'), true);
    // The engine is always built into emile (`emile taste --help` exits 0):
    // "not built" here is a failure, not a way out.
    const status = await page.textContent('#t-status');
    assert.doesNotMatch(status, /not built/, 'the Tasting Room says: ' + status);
    assert.equal(await page.isDisabled('#t-start'), false, 'Taste is disabled; the Tasting Room says: ' + status);
    await page.selectOption('#t-run', String(runId));
    await page.selectOption('#t-model', 'random:tiny');
    await page.fill('#t-tokens', '8');
    assert.equal(await page.inputValue('#t-run'), String(runId));
    assert.equal(await page.inputValue('#t-model'), 'random:tiny');
    // The answer to the page's POST, kept so a failure names its status,
    // the request and the server's words.
    const [resp] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/api/taste' &&
                                  r.request().method() === 'POST', { timeout: 300000 }),
      page.click('#t-start'),
    ]);
    assert.equal(resp.status(), 200, 'POST /api/taste ' + resp.request().postData() + ' answered ' +
                 resp.status() + ': ' + (await resp.text()));
    // Ends in agreement, a divergence, or an error the page shows: an error
    // fails here at once, with the engine's own words.
    await page.waitForFunction(() => {
      const a = document.querySelector('#t-agree');
      return /agree|differ/.test(a.textContent) || a.classList.contains('error');
    }, null, { timeout: 300000, polling: 250 });
    const verdict = await page.textContent('#t-agree');
    assert.equal(await page.locator('#t-agree.error').count(), 0, 'the tasting failed: ' + verdict);
    assert.match(await page.textContent('#t-ref-out'), /\d+ tokens generated/);
    assert.match(await page.textContent('#t-best-out'), /\d+ tokens generated/);
    assert.notEqual((await page.textContent('#t-best-ttft')).trim(), '\u2013');
    await shot('tasting-room.png');
  });

  await t.test('nothing the server sent ran as script', async () => {
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator('script').count(), 3);
    assert.equal(await page.locator('img').count(), 0);
    assert.deepEqual(problems, []);
  });
});
