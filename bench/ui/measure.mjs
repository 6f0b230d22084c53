// Times one page in headless Chromium: from its navigation start until a condition holds
// (read in the page, to the frame), and the bytes the page transferred (bodies and headers of
// every response, from Chromium's own sizes).
// Usage: node measure.mjs '{"url": ..., "wait": {"text": ...} | {"selector": ..., "count": N},
//                          "repeats": 5, "chromium": "/usr/bin/chromium", "timeout_ms": 120000}'
// Prints JSON: {"times_ms": [...], "median_ms": ..., "bytes": ..., "requests": ..., "error": ...}.
import { chromium } from "../../tests/ui/node_modules/playwright-core/index.mjs";

const spec = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: spec.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { url: spec.url, times_ms: [], bytes: 0, requests: 0 };
try {
  for (let i = 0; i < (spec.repeats || 5); i++) {
    // A fresh context each time: no cache, no cookies, as a first visit.
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    let bytes = 0;
    let requests = 0;
    const pending = [];
    page.on("requestfinished", (r) => {
      requests += 1;
      pending.push(r.sizes().then((s) => { bytes += s.responseBodySize + s.responseHeadersSize; }).catch(() => {}));
    });
    // The origin's renderer process is started first (a same-origin page that loads nothing
    // else), so the time below is the page's own: from its navigation start
    // (performance.timeOrigin) to the first frame where the condition holds, read in the page.
    await page.goto(new URL("/health", spec.url).toString());
    bytes = 0;
    requests = 0;
    const started = Date.now();
    await page.goto(spec.url, { waitUntil: "commit", timeout: spec.timeout_ms || 120000 });
    const handle = await page.waitForFunction(([text, sel, n]) => {
      const ok = text ? document.body !== null && document.body.innerText.includes(text)
        : document.querySelectorAll(sel).length >= n;
      return ok ? performance.now() : false;
    }, [spec.wait.text || null, spec.wait.selector || null, spec.wait.count || 1],
    { timeout: spec.timeout_ms || 120000, polling: "raf" });
    out.times_ms.push(Math.round(await handle.jsonValue()));
    out.wall_ms = (out.wall_ms || []).concat([Date.now() - started]);
    await page.waitForLoadState("networkidle", { timeout: 30000 }).catch(() => {});
    await Promise.all(pending);
    out.bytes = bytes;
    out.requests = requests;
    if (spec.screenshot && i === 0) await page.screenshot({ path: spec.screenshot });
    await context.close();
  }
  const sorted = [...out.times_ms].sort((a, b) => a - b);
  out.median_ms = sorted[Math.floor(sorted.length / 2)];
} catch (e) {
  out.error = String(e).split("\n")[0];
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
