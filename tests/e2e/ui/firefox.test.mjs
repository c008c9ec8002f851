// The UI in Firefox: Debian's firefox-esr driven over WebDriver BiDi by puppeteer-core (no
// browser download), through search, a trace with its span detail, and the service map.
//
// Environment: CLEW_BIN (the binary); browser.mjs names the rest.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { startClew } from '../clew.mjs';
import { SCREENSHOTS, launchFirefox } from './browser.mjs';
import { checkoutTrace, now, send, spanIdOf, traceId } from './fixtures.mjs';

const A = traceId(0xa1);
const B = traceId(0xb2);

let clew;
let browser;

before(async () => {
  clew = await startClew({ name: 'clew-e2e-firefox' });
  const start = now() - 60_000_000_000n;
  await send(clew.otlpHttp, checkoutTrace(A, { start }));
  await send(clew.otlpHttp, checkoutTrace(B, { start: start + 1_000_000_000n, slower: true }));
  browser = await launchFirefox();
});

after(async () => {
  await browser?.close();
  await clew?.stop();
});

test('Firefox: search, the waterfall with a span selected, the service map', async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const base = `http://${clew.http}`;

  await page.goto(`${base}/search`);
  await page.waitForSelector('[data-testid=result-row]');
  const found = await page.$$eval('[data-testid=result-row]', (rows) => rows.map((r) => r.dataset.traceId).sort());
  assert.deepEqual(found, [A, B]);
  assert.equal((await page.$$('[data-testid=scatter-point]')).length, 2);

  await page.goto(`${base}/trace/${B}?span=${spanIdOf(B, 6)}`);
  await page.waitForSelector('[data-testid=waterfall][data-painted]');
  assert.equal((await page.$$('[data-testid=span-row]')).length, 7);
  assert.equal(await page.$eval('[data-testid=detail-status]', (e) => e.textContent), 'error: card declined');
  assert.match(await page.$eval('[data-testid=stacktrace]', (e) => e.textContent), /PaymentDeclined/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'firefox-trace.png') });

  await page.goto(`${base}/map`);
  await page.waitForSelector('[data-testid=map-node][data-node-id=payment]');
  assert.equal((await page.$$('[data-testid=map-edge][data-source=frontend][data-target=payment]')).length, 1);
  assert.deepEqual(errors, [], 'script errors on the page');
  await page.close();
});
