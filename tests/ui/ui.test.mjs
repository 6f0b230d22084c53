// End-to-end test of Cairn's web UI in a real headless Chromium (Debian's), driven by
// playwright-core. Run by crates/cairn/tests/ui.rs, which starts a server, seeds it and passes:
//   CAIRN_URL          the server
//   CAIRN_UI_FIXTURE   JSON: ids of what it seeded
//   CAIRN_CHROMIUM     the browser executable
//   CAIRN_SCREENSHOTS  where screenshots go
// Prints one "ok - ..." line per check and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { openSession } from "./session.mjs";

const base = process.env.CAIRN_URL;
const fx = JSON.parse(process.env.CAIRN_UI_FIXTURE);
const { browser, page, check, scriptErrors } = await openSession({ width: 1400, height: 900 });

try {
  await check("experiments", async () => {
    const r = await page.goto(base + "/");
    assert.equal(r.status(), 200);
    await page.getByRole("link", { name: fx.experiment_name }).waitFor();
    const row = page.locator("#experiments tr", { hasText: fx.experiment_name });
    assert.match(await row.innerText(), new RegExp(`\\b${fx.runs.length}\\b`));
  });

  await check("runs-filtered", async () => {
    await page.getByRole("link", { name: fx.experiment_name }).click();
    await page.locator("#runs tbody tr").first().waitFor();
    assert.equal(await page.locator("#runs tbody tr").count(), fx.runs.length);
    await page.fill("#run-search input[name=filter]", "params.optimizer = 'adam'");
    await Promise.all([page.waitForNavigation(), page.click("#run-search button")]);
    assert.equal(await page.locator("#runs tbody tr").count(), fx.adam_runs);
    assert.ok(page.url().includes("filter="), "the filter is in the URL");
  });

  await check("runs-bad-filter", async () => {
    const [resp] = await Promise.all([
      page.waitForNavigation(),
      (async () => {
        await page.fill("#run-search input[name=filter]", "metrics.loss <<< 3");
        await page.click("#run-search button");
      })(),
    ]);
    assert.equal(resp.status(), 400);
    const error = await page.locator("#filter-error").innerText();
    assert.ok(error.length > 10, error);
  });

  await check("runs-sorted", async () => {
    await page.goto(`${base}/experiments/${fx.experiment_id}`);
    await page.locator("#runs th a.sort", { hasText: "metrics.loss" }).click();
    await page.waitForURL(/order=/);
    const cells = await page.locator("#runs tbody tr td:nth-child(7)").allInnerTexts();
    const header = await page.locator("#runs thead th").allInnerTexts();
    const col = header.findIndex((h) => h.startsWith("metrics.loss"));
    const values = (await page.locator(`#runs tbody tr td:nth-child(${col + 1})`).allInnerTexts()).map(Number);
    assert.ok(cells.length > 0);
    const sorted = [...values].sort((a, b) => b - a);
    assert.deepEqual(values, sorted, "descending by loss");
    await page.locator("#runs th a.sort", { hasText: "metrics.loss" }).click();
    await page.waitForURL(/ASC/);
    const asc = (await page.locator(`#runs tbody tr td:nth-child(${col + 1})`).allInnerTexts()).map(Number);
    assert.deepEqual(asc, [...asc].sort((a, b) => a - b), "ascending by loss");
  });

  await check("runs-columns", async () => {
    await page.goto(`${base}/experiments/${fx.experiment_id}`);
    await page.click("#columns summary");
    await page.fill("#column-form .key-search", "note");
    const key = page.locator("#column-form .key-results label", { hasText: "tags.note" });
    await key.waitFor();
    await key.locator("input").check();
    await Promise.all([page.waitForNavigation(), page.click("#column-form button")]);
    const header = await page.locator("#runs thead").innerText();
    assert.ok(header.includes("tags.note"), header);
    assert.ok(page.url().includes("col=tags.note"));
    assert.ok((await page.locator("#runs tbody").innerText()).includes("seeded by the UI test"));
  });

  await check("run-page", async () => {
    const run = fx.runs[0];
    await page.goto(`${base}/experiments/${fx.experiment_id}/runs/${run}`);
    await page.locator("#metrics svg.spark").first().waitFor();
    const params = await page.locator("table.kv").nth(1).innerText();
    assert.ok(params.includes("optimizer"), params);
    await page.getByRole("link", { name: "table.csv" }).click();
    await page.locator("table.preview").waitFor();
    assert.ok((await page.locator("table.preview").innerText()).includes("petal"));
  });

  await check("run-description", async () => {
    const run = fx.runs[1];
    await page.goto(`${base}/experiments/${fx.experiment_id}/runs/${run}`);
    const text = "Baseline with SGD; **do not** promote.";
    await page.fill("textarea[name=description]", text);
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Save description" }).click()]);
    assert.equal(await page.locator("textarea[name=description]").inputValue(), text);
    // The same service call as the REST API: MLflow's note tag holds it.
    const api = await page.request.get(`${base}/api/2.0/mlflow/runs/get?run_id=${run}`);
    const tags = (await api.json()).run.data.tags;
    assert.equal(tags.find((t) => t.key === "mlflow.note.content").value, text);
  });

  await check("artifact-image", async () => {
    await page.goto(`${base}/experiments/${fx.experiment_id}/runs/${fx.runs[0]}/artifacts?path=plot.png`);
    const ok = await page.locator("img.artifact").evaluate((img) => img.complete && img.naturalWidth > 0);
    assert.ok(ok, "the image loaded");
  });

  await check("chart-hover", async () => {
    await page.goto(`${base}/chart?run=${fx.runs[0]}&run=${fx.runs[1]}&metric=loss`);
    const svg = page.locator("#chart");
    await svg.waitFor();
    assert.equal(await page.locator("#chart polyline.series").count(), 2);
    const box = await svg.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    const tip = page.locator(".tooltip");
    await tip.waitFor({ state: "visible" });
    const text = await tip.innerText();
    const values = await page.locator(".tooltip .hover-value").allInnerTexts();
    assert.equal(values.length, 2, text);
    assert.ok(values.every((v) => /: -?[0-9.]+/.test(v)), text);
  });

  await check("model-lineage", async () => {
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/1`);
    const lineage = page.locator("#lineage");
    await lineage.waitFor();
    const text = await lineage.innerText();
    assert.ok(text.includes(fx.dataset_digest), text);
  });

  await check("model-gate", async () => {
    // The seed gated version 1 with `cairn gate` and promoted it with `cairn promote`.
    const gate = page.locator("#gate");
    const text = await gate.innerText();
    assert.match(text, /Gate passed/, text);
    const rows = await gate.locator("tbody tr").allInnerTexts();
    assert.equal(rows.length, 2, rows.join(" | "));
    assert.ok(rows.every((r) => /\bpass$/.test(r.trim())), rows.join(" | "));
    assert.ok(rows.some((r) => r.startsWith("metric accuracy")), rows.join(" | "));
    assert.match(await page.locator("#promoted").innerText(), /Promoted to @production/);
    // Version 2 never ran a gate: the page says how to run one.
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/2`);
    assert.match(await page.locator("#gate").innerText(), /No gate has run on this version/);
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/1`);
  });

  await check("dataset-lineage", async () => {
    await page.getByRole("link", { name: `${fx.dataset_name}@1` }).first().click();
    await page.locator("#dataset-models").waitFor();
    assert.ok((await page.locator("#dataset-models").innerText()).includes(fx.model));
  });

  await check("training-set-lineage", async () => {
    await page.goto(`${base}/datasets/ui-training/1`);
    const sources = await page.locator("#dataset-sources").innerText();
    assert.match(sources, /features\s+ui@1/);
    assert.match(sources, /entities\.parquet/);
    await page.getByRole("link", { name: "stats.parquet@1" }).click();
    await page.locator("h1").filter({ hasText: "stats.parquet@1" }).waitFor();
    await page.goBack();
    await page.locator("#dataset-sources").waitFor();
  });

  await check("alias-moved", async () => {
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}`);
    await page.fill("#set-alias input[name=alias]", "champion");
    await page.fill("#set-alias input[name=version]", "2");
    await Promise.all([page.waitForNavigation(), page.click("#set-alias button")]);
    const aliases = await page.locator("#aliases").innerText();
    assert.match(aliases, /@champion\s+Version 2/);
    const api = await page.request.get(`${base}/api/2.0/mlflow/registered-models/alias?name=${encodeURIComponent(fx.model)}&alias=champion`);
    assert.equal((await api.json()).model_version.version, "2");
  });

  await check("monitoring-charts", async () => {
    const r = await page.goto(`${base}/monitoring/${encodeURIComponent(fx.model)}/1?window=1h`);
    assert.equal(r.status(), 200);
    // Forty requests of five rows, all inside the last hour: the buckets add up to them.
    const counts = await page.locator("#requests-chart circle title").allTextContents();
    const total = counts.map((t) => Number(t.split(": ").pop())).reduce((a, b) => a + b, 0);
    assert.equal(total, 200, counts.join(" | "));
    // One drift line per feature, and the shifted traffic drifts.
    assert.ok(await page.locator("#drift-chart polyline, #drift-chart circle").count() > 0);
    assert.match(await page.locator("#drift-summary").innerText(), /Dataset drift|features drifted/);
    assert.ok(await page.locator("#drift-chart + ul.legend li").count() >= 3);
    assert.ok(await page.locator("#labelled-chart circle").count() > 0, "accuracy over time");
    assert.match(await page.locator("#labelled-chart circle title").first().textContent(), /accuracy at .*: [0-9.]+/);
  });

  await check("model-loaded", async () => {
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/1`);
    assert.match(await page.locator("#loaded").innerText(), /^Loaded/);
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/2`);
    assert.match(await page.locator("#loaded").innerText(), /^Not loaded/);
  });

  await check("playground", async () => {
    await page.goto(`${base}/models/${encodeURIComponent(fx.model)}/versions/1/playground`);
    const fields = page.locator("#playground input[data-index]");
    const n = await fields.count();
    assert.ok(n >= 3, `${n} fields`);
    const values = [0.5, -1.0, 2.0, 1.5, 0.25];
    for (let i = 0; i < n; i++) await fields.nth(i).fill(String(values[i % values.length]));
    await page.click("#playground button[type=submit]");
    await page.locator("#answer:not([hidden])").waitFor();
    const request = JSON.parse(await page.locator("#request-json").innerText());
    assert.deepEqual(request.inputs[0].data, values.slice(0, request.inputs[0].data.length));
    const direct = await page.request.post(`${base}/v2/models/${encodeURIComponent(fx.model)}/versions/1/infer`, { data: request });
    const answer = await direct.json();
    for (const o of answer.outputs) {
      const fmt = o.data.map((v) => (Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString())).join(", ");
      // The page shows the answer to its latest request: the same numbers /infer gives.
      await page.waitForFunction((t) => document.getElementById("prediction").innerText.includes(t), fmt);
    }
    assert.ok((await page.locator("#request-curl").innerText()).startsWith("curl -s "));
  });

  await check("playground-csv", async () => {
    const width = await page.locator("#playground input[data-index]").count();
    const header = [...Array(width).keys()].map((i) => "f" + i).join(",");
    const rows = [0, 1, 2, 3].map((r) => [...Array(width).keys()].map((i) => (r + i) / 4).join(","));
    await page.setInputFiles("#batch input[type=file]", {
      name: "batch.csv", mimeType: "text/csv", buffer: Buffer.from([header, ...rows].join("\n") + "\n"),
    });
    await page.click("#batch button");
    await page.locator("#batch-answer:not([hidden])").waitFor();
    assert.match(await page.locator("#batch-summary").innerText(), /^4 rows scored/);
    assert.equal(await page.locator("#batch-table tbody tr").count(), 4);
  });

  await check("mlflow-link", async () => {
    await page.goto(`${base}/#/experiments/${fx.experiment_id}/runs/${fx.runs[1]}`);
    await page.waitForURL(new RegExp(`/experiments/${fx.experiment_id}/runs/${fx.runs[1]}$`));
    await page.locator("h1").waitFor();
  });

  if (fx.mlflow_link) {
    await check("mlflow-printed-link", async () => {
      await page.goto(fx.mlflow_link);
      await page.waitForURL(/\/experiments\/[0-9]+\/runs\/[0-9a-f]{32}$/);
      assert.equal(await page.locator("h1").innerText().then((t) => t.split(/\s/)[0]), "linked-by-mlflow");
    });
  }

  await check("not-found", async () => {
    const r = await page.goto(`${base}/experiments/${fx.experiment_id}/runs/ffffffffffffffffffffffffffffffff`);
    assert.equal(r.status(), 404);
    assert.ok((await page.locator("h1").innerText()).includes("404"));
  });

  await check("monitoring", async () => {
    const r = await page.goto(`${base}/monitoring`);
    assert.equal(r.status(), 200);
    assert.ok((await page.locator("#served").innerText()).includes(fx.model));
  });

  await check("traces", async () => {
    await page.goto(`${base}/experiments/${fx.experiment_id}`);
    await Promise.all([page.waitForNavigation(), page.click("#traces-link")]);
    const rows = page.locator("#traces tbody tr");
    assert.equal(await rows.count(), 1);
    const row = await rows.first().innerText();
    assert.match(row, /answer/);
    assert.match(row, /OK/);
    assert.match(row, /900ms/);
    // The trace grammar's errors show next to the box.
    await page.fill("#trace-search input[name=filter]", "trace.status >= 'OK'");
    await Promise.all([page.waitForNavigation(), page.click("#trace-search button")]);
    assert.match(await page.locator("#filter-error").innerText(), /status.*>=.*not supported/);
    await page.fill("#trace-search input[name=filter]", "span.status = 'ERROR'");
    await Promise.all([page.waitForNavigation(), page.click("#trace-search button")]);
    assert.equal(await page.locator("#traces tbody tr").count(), 1);
  });

  await check("trace-spans", async () => {
    await Promise.all([page.waitForNavigation(), page.locator("#traces tbody a").first().click()]);
    const spans = page.locator("#spans tr.span");
    assert.equal(await spans.count(), 3);
    // Tree order: the chain, then its children by start time, indented.
    const names = await page.locator("#spans tbody summary").allInnerTexts();
    assert.deepEqual(names, ["answer", "retrieve", "generate"]);
    assert.equal(await spans.nth(2).getAttribute("data-depth"), "1");
    assert.match(await spans.nth(2).innerText(), /ERROR/);
    await page.locator("#spans summary", { hasText: "generate" }).click();
    const detail = await spans.nth(2).innerText();
    assert.match(detail, /where is generate/);
    assert.match(detail, /model timed out/);
    assert.match(await page.locator("#assessments").innerText(), /relevance[\s\S]*0\.75/);
  });

  await check("evaluation-datasets", async () => {
    await page.goto(`${base}/experiments/${fx.experiment_id}`);
    await Promise.all([page.waitForNavigation(), page.click("#evaluation-link")]);
    const row = page.locator("#evaluation-datasets tbody tr");
    assert.equal(await row.count(), 1);
    assert.match(await row.first().innerText(), /qa-golden\s+2\b[\s\S]*team=search/);
    // MLflow's dataset grammar; its errors show next to the box.
    await page.fill("#dataset-search input[name=filter]", "name >> 'x'");
    await Promise.all([page.waitForNavigation(), page.click("#dataset-search button")]);
    assert.ok((await page.locator("#filter-error").innerText()).length > 5);
    await page.fill("#dataset-search input[name=filter]", "name = 'qa-golden'");
    await Promise.all([page.waitForNavigation(), page.click("#dataset-search button")]);
    await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "qa-golden" }).click()]);
    assert.ok(page.url().endsWith(`/evaluation-datasets/${fx.evaluation_dataset}`));
    const records = page.locator("#records tbody tr");
    assert.equal(await records.count(), 2);
    const text = await page.locator("#records").innerText();
    assert.match(text, /What is a cairn\?[\s\S]*A pile of stones marking a path[\s\S]*HUMAN/);
    assert.match(text, /Who builds them\?[\s\S]*Walkers/);
  });

  assert.deepEqual(scriptErrors(), [], "no script errors");
  console.log("ui: all checks passed");
} finally {
  await browser.close();
}
