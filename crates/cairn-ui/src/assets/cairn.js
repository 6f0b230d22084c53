// Cairn's web UI script: everything here is an addition; pages read without it.
"use strict";

// MLflow prints links like http://HOST/#/experiments/1/runs/abc; the fragment never reaches
// the server, so the page it opens moves to the path Cairn serves for it.
(function routeMlflowFragment() {
  const h = window.location.hash;
  if (h.startsWith("#/")) {
    const path = h.slice(1).split("?")[0];
    if (/^\/(experiments|models|runs|compare-experiments)(\/|$)/.test(path)) {
      window.location.replace(path.replace(/^\/compare-experiments\/?.*$/, "/experiments"));
    }
  }
})();

document.addEventListener("DOMContentLoaded", () => {
  confirmForms();
  selectAll();
  columnChooser();
  chartHover();
  playground();
});

function confirmForms() {
  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });
}

function selectAll() {
  document.querySelectorAll("input.select-all").forEach((all) => {
    all.addEventListener("change", () => {
      all.closest("table").querySelectorAll("tbody input[type=checkbox]").forEach((c) => { c.checked = all.checked; });
    });
  });
}

// The column chooser asks the server for matching keys (an experiment may have 12,000).
function columnChooser() {
  const form = document.getElementById("column-form");
  if (!form) return;
  const search = form.querySelector(".key-search");
  const results = form.querySelector(".key-results");
  const chosen = () => new Set([...form.querySelectorAll("input[name=col]:checked")].map((c) => c.value));
  let timer = null;
  const find = () => {
    const url = form.dataset.keys + "&q=" + encodeURIComponent(search.value);
    fetch(url).then((r) => r.json()).then((body) => {
      const have = chosen();
      results.replaceChildren(...body.keys.map((k) => {
        const label = document.createElement("label");
        label.className = "chip";
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = "col"; box.value = k; box.checked = have.has(k);
        label.append(box, " " + k);
        return label;
      }));
      if (body.truncated) {
        const more = document.createElement("div");
        more.className = "muted";
        more.textContent = "More keys match: type more of the name.";
        results.append(more);
      }
    });
  };
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(find, 150); });
  search.addEventListener("focus", () => { if (!results.children.length) find(); }, { once: true });
}

function fmt(v) {
  if (!isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(6)).toString();
}

// Hover values and drag-to-zoom on the server-drawn chart.
function chartHover() {
  const svg = document.getElementById("chart");
  const dataEl = document.getElementById("chart-data");
  if (!svg || !dataEl) return;
  const series = JSON.parse(dataEl.textContent);
  const d = svg.dataset;
  const x0 = +d.x0, x1 = +d.x1, left = +d.left, pw = +d.pw, top = +d.top, ph = +d.ph;
  const tip = svg.parentElement.querySelector(".tooltip");
  const cursor = svg.querySelector("line.cursor");
  const zoom = svg.querySelector("rect.zoom");
  const toSvg = (evt) => {
    const pt = svg.createSVGPoint();
    pt.x = evt.clientX; pt.y = evt.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  };
  const dataX = (px) => x0 + (px - left) / pw * (x1 - x0);
  const label = (x) => d.xaxis === "time" ? new Date(x).toISOString().replace("T", " ").slice(0, 19) : fmt(x);
  const nearest = (points, x) => {
    let lo = 0, hi = points.length - 1;
    if (hi < 0) return null;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (points[mid][0] < x) lo = mid + 1; else hi = mid; }
    if (lo > 0 && Math.abs(points[lo - 1][0] - x) < Math.abs(points[lo][0] - x)) lo -= 1;
    return points[lo];
  };
  let dragFrom = null;
  svg.addEventListener("mousemove", (evt) => {
    const p = toSvg(evt);
    if (p.x < left || p.x > left + pw) { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); return; }
    const x = dataX(p.x);
    const rows = series.map((s) => [s, nearest(s.points, x)]).filter(([, q]) => q);
    tip.replaceChildren();
    const head = document.createElement("div");
    head.textContent = d.xaxis + " " + label(rows.length ? rows[0][1][0] : x);
    tip.append(head);
    rows.slice(0, 12).forEach(([s, q]) => {
      const line = document.createElement("div");
      line.className = "hover-value";
      line.textContent = s.name + ": " + fmt(q[1]);
      line.style.color = s.color === "#1f77b4" ? "#8ec5ff" : s.color;
      tip.append(line);
    });
    tip.hidden = false;
    const rect = svg.getBoundingClientRect();
    tip.style.left = (evt.clientX - rect.left + 14) + "px";
    tip.style.top = (evt.clientY - rect.top + 10) + "px";
    cursor.setAttribute("x1", p.x); cursor.setAttribute("x2", p.x);
    cursor.setAttribute("y1", top); cursor.setAttribute("y2", top + ph);
    cursor.setAttribute("visibility", "visible");
    if (dragFrom !== null) {
      zoom.setAttribute("x", Math.min(dragFrom, p.x)); zoom.setAttribute("width", Math.abs(p.x - dragFrom));
      zoom.setAttribute("y", top); zoom.setAttribute("height", ph); zoom.setAttribute("visibility", "visible");
    }
  });
  svg.addEventListener("mouseleave", () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); });
  svg.addEventListener("mousedown", (evt) => { dragFrom = toSvg(evt).x; evt.preventDefault(); });
  window.addEventListener("mouseup", (evt) => {
    if (dragFrom === null) return;
    const to = toSvg(evt).x;
    const from = dragFrom;
    dragFrom = null;
    zoom.setAttribute("visibility", "hidden");
    if (Math.abs(to - from) < 6) return;
    const a = dataX(Math.max(left, Math.min(from, to))), b = dataX(Math.min(left + pw, Math.max(from, to)));
    const url = new URL(window.location.href);
    url.searchParams.set("from", d.xaxis === "step" ? Math.floor(a) : a);
    url.searchParams.set("to", d.xaxis === "step" ? Math.ceil(b) : b);
    window.location.assign(url.toString());
  });
}

// The playground builds the Open Inference Protocol request from the form.
function playground() {
  const form = document.getElementById("playground");
  if (!form) return;
  const endpoint = form.dataset.endpoint;
  const tensors = [...form.querySelectorAll("fieldset.tensor")];
  const parse = (datatype, text) => {
    if (datatype === "BYTES") return text;
    if (datatype === "BOOL") return text === "true" || text === "1";
    const v = Number(text);
    if (text.trim() === "" || Number.isNaN(v)) throw new Error("'" + text + "' is not a number");
    return v;
  };
  const rowsToRequest = (rows) => {
    // rows: one array per input, each an array of rows of values.
    return {
      id: "playground-" + Date.now(),
      inputs: tensors.map((t, i) => {
        const shape = JSON.parse(t.dataset.shape);
        const data = rows[i].flat();
        const width = rows[i][0] ? rows[i][0].length : 0;
        const actual = shape.length <= 1 ? [rows[i].length] : [rows[i].length, ...shape.slice(1).map((d) => (d < 0 ? width : d))];
        return { name: t.dataset.name, shape: actual, datatype: t.dataset.datatype, data: data };
      }),
    };
  };
  const show = (request) => {
    const body = JSON.stringify(request);
    document.getElementById("request-json").textContent = JSON.stringify(request, null, 2);
    document.getElementById("request-curl").textContent =
      "curl -s " + window.location.origin + endpoint + " -H 'Content-Type: application/json' -d '" + body.replace(/'/g, "'\\''") + "'";
  };
  const send = (request) => {
    show(request);
    return fetch(endpoint, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) })
      .then((r) => r.json().then((j) => { if (!r.ok) throw new Error(j.error || r.statusText); return j; }));
  };
  const currentRows = () => tensors.map((t) => {
    const fields = [...t.querySelectorAll("input[data-index]")];
    if (fields.length) return [fields.map((f) => parse(t.dataset.datatype, f.value))];
    return [JSON.parse(t.querySelector("textarea").value)];
  });
  const answer = document.getElementById("answer");
  // Answers can arrive out of order while values change: only the latest request's is shown.
  let latest = 0;
  const predict = () => {
    const mine = ++latest;
    const showRows = (rows) => {
      if (mine !== latest) return;
      answer.hidden = false;
      answer.querySelector("tbody").replaceChildren(...rows);
    };
    let request;
    try { request = rowsToRequest(currentRows()); } catch (e) { showRows([row(["error", e.message])]); return; }
    send(request)
      .then((resp) => showRows(resp.outputs.map((o) => row([o.name, o.data.map(fmt).join(", ")]))))
      .catch((e) => showRows([row(["error", e.message])]));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); predict(); });
  form.addEventListener("change", predict);
  // The prefilled row's answer at once, so the page opens with a prediction.
  predict();

  const batch = document.getElementById("batch");
  batch.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = batch.querySelector("input[type=file]").files[0];
    if (!file) return;
    file.text().then((text) => {
      let lines = text.split(/\r?\n/).filter((l) => l.trim() !== "").map((l) => l.split(","));
      if (lines.length && lines[0].some((c) => c.trim() !== "" && Number.isNaN(Number(c)))) lines = lines.slice(1);
      const widths = tensors.map((t) => t.querySelectorAll("input[data-index]").length || 1);
      const rows = tensors.map((t, i) => {
        const start = widths.slice(0, i).reduce((a, b) => a + b, 0);
        return lines.map((l) => l.slice(start, start + widths[i]).map((c) => parse(t.dataset.datatype, c.trim())));
      });
      return send(rowsToRequest(rows)).then((resp) => {
        const n = lines.length;
        const cols = resp.outputs.map((o) => ({ name: o.name, per: o.data.length / n, data: o.data }));
        const header = cols.flatMap((c) => (c.per > 1 ? [...Array(c.per).keys()].map((k) => c.name + "_" + k) : [c.name]));
        const table = [...Array(n).keys()].map((r) => cols.flatMap((c) => c.data.slice(r * c.per, (r + 1) * c.per)));
        const out = document.getElementById("batch-answer");
        out.hidden = false;
        document.getElementById("batch-summary").textContent = n + " rows scored in one request.";
        out.querySelector("thead").replaceChildren(row(header, "th"));
        out.querySelector("tbody").replaceChildren(...table.slice(0, 200).map((r) => row(r.map(fmt))));
        const csv = [header.join(",")].concat(table.map((r) => r.join(","))).join("\n") + "\n";
        document.getElementById("batch-download").href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      });
    }).catch((err) => {
      const out = document.getElementById("batch-answer");
      out.hidden = false;
      document.getElementById("batch-summary").textContent = "Error: " + err.message;
    });
  });
}

function row(cells, tag) {
  const tr = document.createElement("tr");
  cells.forEach((c) => { const td = document.createElement(tag || "td"); td.textContent = c; tr.append(td); });
  return tr;
}
