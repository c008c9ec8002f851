// End-to-end tests of the web UI: Debian's Chromium, driven by playwright-core, against a real
// `clew serve` that received its traces over OTLP/HTTP. Each test saves a screenshot.
//
// Environment: CLEW_BIN (the binary); browser.mjs names the rest.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { startClew } from '../clew.mjs';
import { SCREENSHOTS, launchChromium } from './browser.mjs';
import { STACKTRACE, bigTrace, checkoutTrace, now, send, spanIdOf, traceId } from './fixtures.mjs';

const A = traceId(0xa1); // the baseline checkout
const B = traceId(0xb2); // slower, one more call, a link to A
const BIG = traceId(0xc3); // 10,000 spans
const BIG_SPANS = 10_000;

let clew;
let browser;
let base;

/** A page that fails the test on any uncaught script error. */
async function open(url, { colorScheme = 'light', viewport = { width: 1400, height: 900 } } = {}) {
  const page = await browser.newPage({ colorScheme, viewport });
  page.setDefaultTimeout(15_000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(new URL(url, base).href);
  return page;
}

async function finish(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  assert.deepEqual(page.errors, [], 'script errors on the page');
  await page.close();
}

before(async () => {
  // A client span nothing answers (the redis call) becomes a call to a database when the
  // rollups stop waiting for its answer: with no pairing window, as soon as the next batch
  // arrives (every call here is answered within its own request).
  clew = await startClew({ name: 'clew-e2e-ui', config: '[rollups]\npair_window = "0s"\n' });
  base = `http://${clew.http}`;
  const start = now() - 120_000_000_000n;
  await send(clew.otlpHttp, checkoutTrace(A, { start }));
  await send(clew.otlpHttp, checkoutTrace(B, { start: start + 5_000_000_000n, slower: true, linkTo: { traceId: A, spanId: spanIdOf(A, 6) } }));
  for (const request of bigTrace(BIG, BIG_SPANS, { start: start + 10_000_000_000n })) await send(clew.otlpHttp, request);
  const map = await (await fetch(`${base}/api/v1/service-map?since=1h`)).json();
  assert.ok(map.nodes?.some((n) => n.id === 'redis'), `no redis node in the service map: ${JSON.stringify(map)}`);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  const exit = await clew?.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, clew?.log());
});

describe('search', () => {
  test('the form, the TraceQL editor and the address agree; back and forward work', async () => {
    const page = await open('/');
    const rows = page.getByTestId('result-row');
    await assert.doesNotReject(rows.first().waitFor());
    assert.equal(await rows.count(), 3);
    assert.equal(await page.getByTestId('scatter-point').count(), 3);
    const first = await page.locator(`[data-testid=result-row][data-trace-id="${A}"]`).innerText();
    assert.match(first, /frontend: GET \/cart/);
    assert.match(first, /cart\s*2/, 'service chips with span counts');

    // The form: a service and a minimum duration.
    await page.locator('select[name=service]').selectOption('frontend');
    await page.locator('input[name=minDuration]').fill('300ms');
    await page.getByTestId('search-submit').click();
    await page.waitForURL(/service=frontend/);
    assert.match(page.url(), /minDuration=300ms/);
    await page.waitForFunction((b) => [...document.querySelectorAll('[data-testid=result-row]')].map((r) => r.dataset.traceId).join() === b, B);

    // TraceQL with autocomplete: typing a scope offers the attribute names stored.
    await page.locator('input[name=minDuration]').fill('');
    await page.locator('select[name=service]').selectOption('');
    const editor = page.getByTestId('traceql-input');
    await editor.click();
    await page.keyboard.type('{ resource.serv');
    const option = page.locator('.cm-tooltip-autocomplete li', { hasText: 'resource.service.name' });
    await option.first().waitFor();
    await page.keyboard.press('Enter'); // takes the suggestion
    await page.keyboard.type(' = ');
    await page.keyboard.press('Control+Space'); // asks for suggestions, as a user would if typing ran ahead
    await page.locator('.cm-tooltip-autocomplete li', { hasText: '"fraud"' }).first().waitFor();
    await page.keyboard.type('"fraud"');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Enter'); // runs the search
    await page.waitForURL(/q=/);
    assert.equal(new URL(page.url()).searchParams.get('q'), '{ resource.service.name = "fraud"}', 'the editor closed the brace');
    await page.waitForFunction((b) => [...document.querySelectorAll('[data-testid=result-row]')].map((r) => r.dataset.traceId).join() === b, B);

    // Back restores the previous search and its results; forward the TraceQL one.
    await page.goBack();
    await page.waitForURL(/service=frontend/);
    await page.waitForFunction(() => document.querySelector('select[name=service]').value === 'frontend');
    await page.goForward();
    await page.waitForURL(/q=/);
    await assert.doesNotReject(page.locator('.cm-content', { hasText: 'fraud' }).waitFor());

    // Sorting the list by duration, longest first.
    await page.goto(`${base}/search`);
    await rows.first().waitFor();
    await page.getByRole('button', { name: 'Duration' }).click();
    const order = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.traceId));
    assert.deepEqual(order, [BIG, B, A]);

    // A point of the scatter plot opens its trace.
    await page.locator(`[data-testid=scatter-point][data-trace-id="${A}"]`).click();
    await page.waitForURL(`${base}/trace/${A}`);
    await finish(page, 'search');
  });

  test('a bad query shows the server message', async () => {
    const page = await open(`/search?q=${encodeURIComponent('{ span.http.route = }')}`);
    const banner = page.getByRole('alert');
    await banner.waitFor();
    assert.match(await banner.innerText(), /\(400\)/);
    assert.match(await banner.innerText(), /line 1, column|expected/i);
    await finish(page, 'search-error');
  });
});

describe('trace view', () => {
  test('the waterfall, critical path, span detail, find and links', async () => {
    const page = await open(`/trace/${B}`);
    await page.locator('[data-testid=waterfall][data-painted]').waitFor();
    assert.equal(await page.getByTestId('span-count').innerText(), '7');
    assert.equal(await page.getByTestId('span-row').count(), 7);
    const names = await page.locator('[data-testid=span-row] .op').allInnerTexts();
    assert.deepEqual(names, ['GET /cart', 'cart.GetCart', 'GetCart', 'GET', 'payment.Charge', 'Charge', 'Check']);
    // The critical path waits on the cart call, then the payment.
    assert.match(await page.getByTestId('critical-path').innerText(), /Charge/);
    assert.ok((await page.locator('[data-testid=span-row].critical').count()) >= 3);

    // Select the failing span: status, attributes, exception stack trace, resource, scope, link.
    await page.locator(`[data-testid=span-row][data-span-id="${spanIdOf(B, 6)}"]`).click();
    const detail = page.getByTestId('span-detail');
    await detail.waitFor();
    assert.equal(await page.getByTestId('detail-status').innerText(), 'error: card declined');
    assert.match(await page.getByTestId('detail-attributes').innerText(), /app\.payment\.card_last4\s+4242/);
    assert.equal(await page.getByTestId('stacktrace').innerText(), STACKTRACE);
    assert.match(await page.getByTestId('detail-resource').innerText(), /service\.version\s+1\.4\.2/);
    assert.match(await page.getByTestId('detail-scope').innerText(), /clew\.e2e\.ui/);
    assert.match(page.url(), new RegExp(`span=${spanIdOf(B, 6)}`));
    const link = page.locator('[data-testid=detail-link][data-stored=true] a');
    await link.waitFor();
    assert.equal(await link.getAttribute('href'), `/trace/${A}?span=${spanIdOf(A, 6)}`);

    // Find by attribute value, and by key=value.
    const find = page.getByTestId('find-input');
    await find.fill('redis');
    assert.equal(await page.getByTestId('find-count').innerText(), '1 of 1');
    await find.press('Enter');
    await page.waitForURL(new RegExp(`span=${spanIdOf(B, 4)}`));
    await find.fill('app.cart.items=3');
    assert.equal(await page.getByTestId('find-count').innerText(), '1 of 1');

    // Keyboard: down moves the selection, left collapses.
    await page.getByTestId('waterfall').focus();
    await page.keyboard.press('Home');
    await page.waitForURL(new RegExp(`span=${spanIdOf(B, 1)}`));
    await page.keyboard.press('ArrowDown');
    await page.waitForURL(new RegExp(`span=${spanIdOf(B, 2)}`));
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.getByTestId('span-row').count(), 5, 'cart.GetCart and its two spans fold into one row');
    await page.keyboard.press('Escape');
    await detail.waitFor({ state: 'detached' });

    // The link opens the linked trace with the span selected.
    await page.goto(`${base}/trace/${A}?span=${spanIdOf(A, 6)}`);
    await assert.doesNotReject(page.getByTestId('span-detail').waitFor());
    await finish(page, 'trace');
  });

  test('a pasted trace ID opens the trace; a missing trace says so', async () => {
    const page = await open('/map');
    await page.getByTestId('service-map').waitFor();
    await page.evaluate((id) => {
      const data = new DataTransfer();
      data.setData('text/plain', ` ${id.toUpperCase()}\n`);
      document.body.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
    }, A);
    await page.waitForURL(`${base}/trace/${A}`);
    await page.locator('[data-testid=waterfall][data-painted]').waitFor();

    await page.goto(`${base}/trace/ffffffffffffffffffffffffffffffff`);
    const banner = page.getByRole('alert');
    await banner.waitFor();
    assert.match(await banner.innerText(), /\(404\).*trace ffffffffffffffffffffffffffffffff not found/s);
    await page.goto(`${base}/trace/not-an-id`);
    assert.match(await page.getByRole('alert').innerText(), /not a trace ID/);
    await finish(page, 'trace-missing');
  });

  test(`a trace of ${BIG_SPANS} spans opens, scrolls and stays responsive`, async () => {
    const page = await open(`/trace/${BIG}`);
    await page.evaluate(() => {
      window.longTasks = [];
      new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });
    });
    const waterfall = page.locator('[data-testid=waterfall][data-painted]');
    await waterfall.waitFor();
    assert.equal(await page.getByTestId('span-count').innerText(), String(BIG_SPANS));
    assert.equal(await waterfall.getAttribute('data-rows'), String(BIG_SPANS));
    // Only the rows in view are in the page, wherever it is scrolled.
    const rendered = () => page.getByTestId('span-row').count();
    assert.ok((await rendered()) < 120, `${await rendered()} rows rendered`);
    for (const fraction of [0.25, 0.5, 0.75, 1]) {
      await waterfall.evaluate((el, f) => (el.scrollTop = f * el.scrollHeight), fraction);
      await page.waitForFunction(() => document.querySelectorAll('[data-testid=span-row]').length > 0);
      assert.ok((await rendered()) < 120);
    }
    await assert.doesNotReject(page.locator(`[data-testid=span-row][data-span-id="${spanIdOf(BIG, BIG_SPANS)}"]`).waitFor());
    // Find across every span, and jumping to a match deep in the tree.
    await page.getByTestId('find-input').fill('step-36');
    const named = Array.from({ length: BIG_SPANS - 1 }, (_, i) => i + 2).filter((id) => id % 37 === 36).length;
    assert.equal(await page.getByTestId('find-count').innerText(), `1 of ${named}`);
    await page.getByTestId('find-input').press('Enter');
    await assert.doesNotReject(page.locator('[data-testid=span-row].selected.match').waitFor());
    // Collapsing the root leaves one row.
    await waterfall.evaluate((el) => (el.scrollTop = 0));
    await page.locator(`[data-testid=span-row][data-span-id="${spanIdOf(BIG, 1)}"] .twisty`).click();
    await page.waitForFunction(() => document.querySelector('[data-testid=waterfall]').dataset.rows === '1');
    // The main thread never froze: no task blocked input for a second.
    const longest = await page.evaluate(() => Math.max(0, ...window.longTasks));
    assert.ok(longest < 1000, `a task took ${longest} ms`);
    await finish(page, 'trace-10k');
  });
});

test('service map: services, a database, calls with their figures, example traces', async () => {
  const page = await open('/map');
  await page.getByTestId('service-map').waitFor();
  const nodes = await page.getByTestId('map-node').evaluateAll((ns) => ns.map((n) => n.dataset.nodeId).sort());
  for (const expected of ['cart', 'fraud', 'frontend', 'payment', 'redis']) assert.ok(nodes.includes(expected), `${expected} in ${nodes}`);
  const edge = page.locator('[data-testid=map-edge][data-source=frontend][data-target=payment]');
  assert.equal(await edge.count(), 1);
  assert.equal(await page.locator('[data-testid=map-edge][data-source=cart][data-target=redis]').count(), 1);
  await edge.focus();
  await page.keyboard.press('Enter');
  const detail = page.getByTestId('map-detail');
  await detail.waitFor();
  assert.match(await detail.innerText(), /100(\.0)?\s*%/, 'every payment call failed');
  await detail.getByTestId('exemplar').nth(1).waitFor();
  const examples = await detail.getByTestId('exemplar').evaluateAll((as) => as.map((a) => a.getAttribute('href')).sort());
  assert.deepEqual(examples, [`/trace/${A}`, `/trace/${B}`]);
  await finish(page, 'service-map');
});

test('service overview: rate, errors and duration charts, operations', async () => {
  const page = await open('/services');
  await page.getByTestId('service-row').first().waitFor();
  const services = await page.getByTestId('service-row').allInnerTexts();
  assert.ok(services.some((s) => s.startsWith('payment')), services.join('\n'));
  await page.locator('[data-testid=service-row][data-service=frontend] a').first().click();
  await page.waitForURL(/\/services\/frontend/);
  await page.getByTestId('red-chart').first().waitFor();
  const charts = await page.getByTestId('red-chart').evaluateAll((cs) => cs.map((c) => c.dataset.title));
  assert.deepEqual(charts, ['rate', 'errors', 'duration']);
  await page.locator('[data-testid=red-chart] canvas').first().waitFor();
  const operations = await page.getByTestId('operation-row').allInnerTexts();
  assert.ok(operations.some((o) => o.startsWith('GET /cart')), operations.join('\n'));
  await finish(page, 'service-overview');
});

test('compare: what B added, and what got slower', async () => {
  const page = await open(`/compare/${A}/${B}`);
  const summary = page.getByTestId('compare-summary');
  await summary.waitFor();
  assert.match(await summary.innerText(), /\+150 ms/);
  const row = (path) => page.locator('[data-testid=compare-row]', { hasText: path });
  assert.equal(await row('fraud').getAttribute('data-status'), 'added');
  assert.equal(await page.locator('[data-testid=compare-row][data-change=slower]', { hasText: 'GetCart' }).count(), 2);
  assert.equal(await page.locator('[data-testid=compare-row][data-status=missing]').count(), 0);
  await finish(page, 'compare');
});

test('dark and light themes, and the settings page', async () => {
  const page = await open('/settings', { colorScheme: 'dark' });
  await page.getByTestId('settings').waitFor();
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const dark = await background();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'settings-dark.png') });
  // The theme button cycles system → dark → light.
  const themeButton = page.getByRole('button', { name: /^Theme:/ });
  await themeButton.click();
  await themeButton.click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  assert.notEqual(await background(), dark);
  await page.getByRole('tab', { name: 'Projects' }).click();
  await assert.doesNotReject(page.locator('[data-testid=project-row][data-project="default/default"]').waitFor());
  await finish(page, 'settings-light');
});

test('with no data, every page shows how to send spans', async () => {
  const empty = await startClew({ name: 'clew-e2e-ui-empty' });
  try {
    for (const where of ['/search', '/map', '/services']) {
      const page = await browser.newPage();
      await page.goto(`http://${empty.http}${where}`);
      const env = page.getByTestId('otel-env');
      await env.waitFor();
      const text = await env.innerText();
      assert.match(text, new RegExp(`OTEL_EXPORTER_OTLP_ENDPOINT=http://${empty.otlpHttp.replace(/\./g, '\\.')}`), where);
      assert.match(text, /OTEL_EXPORTER_OTLP_PROTOCOL=http\/protobuf/);
      await page.screenshot({ path: path.join(SCREENSHOTS, `empty${where.replace('/', '-')}.png`) });
      await page.close();
    }
  } finally {
    await empty.stop();
  }
});

test('with sign-in required: a wrong password is refused with the reason, the right one opens the UI', async () => {
  const password = 'correct horse battery staple';
  const secured = await startClew({ name: 'clew-e2e-ui-auth', args: ['--auth', 'required'], env: { CLEW_BOOTSTRAP_ADMIN_PASSWORD: password } });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`http://${secured.http}/search`);
    const form = page.getByTestId('login-form');
    await form.waitFor();
    await page.locator('input[name=username]').fill('admin');
    await page.locator('input[name=password]').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.match(await page.getByRole('alert').innerText(), /username or password/i);
    await page.locator('input[name=password]').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await form.waitFor({ state: 'detached' });
    await page.getByTestId('search-submit').waitFor();
    await page.goto(`http://${secured.http}/settings`);
    assert.match(await page.getByTestId('settings').innerText(), /admin/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'signed-in.png') });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await assert.doesNotReject(page.getByTestId('login-form').waitFor());
    await page.close();
  } finally {
    await secured.stop();
  }
});
