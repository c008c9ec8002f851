// Time to first render of the UI, as a person opening it sees it: from navigation to the search
// results painted, and to the waterfall of a 10,000-span trace painted. Each run is a fresh
// browser context (nothing cached). Prints one JSON object per page with the median and p90.
//
//   CLEW_BIN=target/release/clew node tests/e2e/ui/bench.mjs [runs]

import { startClew } from '../clew.mjs';
import { bigTrace, checkoutTrace, now, send, traceId } from './fixtures.mjs';
import { launchChromium } from './browser.mjs';

const runs = Number(process.argv[2] ?? 15);
const clew = await startClew({ name: 'clew-bench-ui' });
const start = now() - 120_000_000_000n;
for (let i = 1; i <= 50; i++) await send(clew.otlpHttp, checkoutTrace(traceId(i), { start: start + BigInt(i) * 1_000_000_000n, slower: i % 3 === 0 }));
const big = traceId(0xc3);
for (const request of bigTrace(big, 10_000, { start })) await send(clew.otlpHttp, request);

const browser = await launchChromium();
async function measure(path, mark) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(`http://${clew.http}${path}`);
    const handle = await page.waitForFunction((m) => performance.getEntriesByName(m)[0]?.startTime, mark, { timeout: 30_000 });
    times.push(await handle.jsonValue());
    await context.close();
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  console.log(JSON.stringify({ page: path, mark, runs, medianMs: Math.round(at(0.5)), p90Ms: Math.round(at(0.9)), minMs: Math.round(times[0]) }));
}
await measure('/search', 'clew:results-painted');
await measure(`/trace/${big}`, 'clew:waterfall-painted');
await browser.close();
await clew.stop();
