// What every browser script here starts with: Debian's Chromium (CAIRN_CHROMIUM) launched
// headless through playwright-core, one page that records script errors, and `check`, which
// runs one step, saves its screenshot under CAIRN_SCREENSHOTS and prints "ok - NAME".
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export async function openSession({ width, height, prefix = "" }) {
  const shots = process.env.CAIRN_SCREENSHOTS;
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CAIRN_CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width, height } });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.setDefaultTimeout(20000);
  async function check(name, body) {
    await body();
    await page.screenshot({ path: `${shots}/${prefix}${name}.png`, fullPage: true });
    console.log(`ok - ${name}`);
  }
  // Script errors, without the browser's own line for each 4xx a test provokes on purpose.
  const scriptErrors = () => consoleErrors.filter((e) => !e.includes("Failed to load resource"));
  return { browser, page, check, scriptErrors };
}
