// Signing in to Cairn's web UI under `--auth`, in a real headless Chromium, and what a signed-in
// user may see and change. Run by crates/cairn/tests/ui.rs, which starts `cairn server --auth`,
// seeds two users' experiments and passes:
//   CAIRN_URL            the server
//   CAIRN_LOGIN_FIXTURE  JSON: {user, password, own, own_id, others_id}
//   CAIRN_CHROMIUM       the browser executable
//   CAIRN_SCREENSHOTS    where screenshots go (login-*.png)
// Prints one "ok - ..." line per check and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { openSession } from "./session.mjs";

const base = process.env.CAIRN_URL;
const fx = JSON.parse(process.env.CAIRN_LOGIN_FIXTURE);
const { browser, page, check, scriptErrors } = await openSession({
  width: 1200, height: 700, prefix: "login-",
});
// The delete button asks first; the user says yes.
page.on("dialog", (d) => d.accept());

async function submit(locator) {
  const [resp] = await Promise.all([page.waitForNavigation(), locator.click()]);
  return resp;
}

try {
  await check("sent-to-sign-in", async () => {
    await page.goto(`${base}/experiments`);
    await page.waitForURL(/\/login\?next=%2Fexperiments$/);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });

  await check("wrong-password", async () => {
    await page.getByLabel("Username").fill(fx.user);
    await page.getByLabel("Password").fill("not-the-password-at-all");
    const resp = await submit(page.getByRole("button", { name: "Sign in" }));
    assert.equal(resp.status(), 401);
    assert.match(await page.getByRole("alert").innerText(), /Wrong username or password/);
  });

  await check("signed-in", async () => {
    await page.getByLabel("Password").fill(fx.password);
    await submit(page.getByRole("button", { name: "Sign in" }));
    assert.equal(new URL(page.url()).pathname, "/experiments");
    await page.getByRole("link", { name: fx.own, exact: true }).waitFor();
    const table = await page.locator("#experiments").innerText();
    assert.ok(!table.includes("others-"), `another user's experiment is listed: ${table}`);
    assert.match(await page.locator("header form.signed-in").innerText(), new RegExp(fx.user));
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "cairn_session");
    assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  });

  await check("rename-and-tag", async () => {
    await page.getByRole("link", { name: fx.own, exact: true }).click();
    await page.locator("summary", { hasText: "Manage experiment" }).click();
    await page.getByLabel("New name").fill(`${fx.own}-renamed`);
    await submit(page.getByRole("button", { name: "Rename" }));
    assert.equal((await page.locator("h1").innerText()).trim(), `${fx.own}-renamed`);
    await page.locator("summary", { hasText: "Manage experiment" }).click();
    await page.fill("input[name=key]", "team");
    await page.fill("input[name=value]", "forecasting");
    await submit(page.getByRole("button", { name: "Set tag" }));
    assert.match(await page.locator("div.tags").innerText(), /team=forecasting/);
  });

  await check("delete-and-restore", async () => {
    await page.locator("summary", { hasText: "Manage experiment" }).click();
    await submit(page.getByRole("button", { name: "Delete experiment" }));
    assert.match(await page.locator("h1").innerText(), /deleted/);
    await page.locator("summary", { hasText: "Manage experiment" }).click();
    await submit(page.getByRole("button", { name: "Restore experiment" }));
    assert.doesNotMatch(await page.locator("h1").innerText(), /deleted/);
  });

  await check("not-allowed", async () => {
    const resp = await page.goto(`${base}/experiments/${fx.others_id}`);
    assert.equal(resp.status(), 403);
    assert.match(await page.locator("main").innerText(), /needs READ on the experiment/);
  });

  await check("signed-out", async () => {
    await page.goto(`${base}/experiments`);
    await submit(page.getByRole("button", { name: "Sign out" }));
    assert.equal(new URL(page.url()).pathname, "/login");
    await page.goto(`${base}/experiments/${fx.own_id}`);
    await page.waitForURL(/\/login\?next=/);
  });

  assert.deepEqual(scriptErrors(), [], "no script errors");
  console.log("login: all checks passed");
} finally {
  await browser.close();
}
