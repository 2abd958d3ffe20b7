// vanishing explore: the page's script. It asks the local server (the vanishing library)
// for every number and only draws them, as SVG written by hand (no chart library).
// Each drawn value is also kept in a data- attribute at full precision.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const RAMP = ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"];  // as the reports
  const $ = (id) => document.getElementById(id);
  let options = null;

  // ---- helpers -----------------------------------------------------------------------
  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    try {
      const response = await fetch(path, init);
      return {ok: response.ok, data: await response.json()};
    } catch (err) {
      return {ok: false, data: {error: `no answer from the server (stopped?): ${err}`}};
    }
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  // One request per panel in flight: a change made meanwhile waits, and of the changes
  // that waited only the newest is sent (the others resolve to null, drawn by no one).
  function latest(fn) {
    let running = null, counter = 0;
    return async (...args) => {
      const mine = ++counter;
      while (running) {
        await running.catch(() => {});
        if (mine !== counter) return null;
      }
      running = fn(...args);
      try { return await running; } finally { running = null; }
    };
  }

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function num(x, digits = 3) {
    if (x === null || x === undefined) return "n/a";
    if (x === 0) return "0";
    const a = Math.abs(x);
    return a >= 1e-3 && a < 1e5 ? String(Number(x.toPrecision(digits))) : x.toExponential(digits - 1);
  }

  function scale(d0, d1, r0, r1) {
    const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
    const f = (x) => r0 + (x - d0) * k;
    f.invert = (y) => (k === 0 ? d0 : d0 + (y - r0) / k);
    return f;
  }

  function axes(svg, box, xs, ys, xTicks, yTicks, xLabel, yLabel) {
    for (const t of yTicks) {
      el("line", {class: "grid", x1: box.x0, x2: box.x1, y1: ys(t.v), y2: ys(t.v)}, svg);
      el("text", {x: box.x0 - 6, y: ys(t.v) + 4, "text-anchor": "end"}, svg).textContent = t.label;
    }
    for (const t of xTicks) {
      el("text", {x: xs(t.v), y: box.y1 + 16, "text-anchor": "middle"}, svg).textContent = t.label;
    }
    el("line", {class: "axis", x1: box.x0, x2: box.x1, y1: box.y1, y2: box.y1}, svg);
    el("line", {class: "axis", x1: box.x0, x2: box.x0, y1: box.y0, y2: box.y1}, svg);
    el("text", {x: (box.x0 + box.x1) / 2, y: box.y1 + 32, "text-anchor": "middle"}, svg)
      .textContent = xLabel;
    el("text", {x: 12, y: (box.y0 + box.y1) / 2, "text-anchor": "middle",
                transform: `rotate(-90 12 ${(box.y0 + box.y1) / 2})`}, svg).textContent = yLabel;
  }

  function niceTicks(lo, hi, count = 6) {
    const step0 = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) {
      out.push({v, label: num(Math.abs(v) < step * 1e-9 ? 0 : v)});
    }
    return out;
  }

  function showError(id, data) {
    $(id).textContent = data && data.error ? data.error : "";
  }

  // ---- 1. descent ----------------------------------------------------------------------
  const descent = {data: null, shown: 0, timer: null, dragging: false};
  const D_BOX = {x0: 58, x1: 628, y0: 12, y1: 272};

  function descentRequest() {
    return {formula: $("formula").value, start: Number(descent.start), lr: Number($("lr").value),
            momentum: Number($("momentum").value), steps: Number($("steps").value)};
  }

  const fetchDescent = latest((body) => api("/api/descent", body));

  async function updateDescent() {
    $("lr-value").textContent = $("lr").value;
    $("momentum-value").textContent = $("momentum").value;
    const result = await fetchDescent(descentRequest());
    if (result === null) return;  // a newer request is on its way
    $("descent-plot").dataset.pending = "0";  // what is drawn answers the last change
    showError("descent-error", result.ok ? null : result.data);
    if (!result.ok) return;
    // the whole path stays shown while it was (a run that converged early is shorter)
    const whole = descent.data === null || descent.shown >= descent.data.iterates.length - 1;
    descent.data = result.data;
    const n = result.data.iterates.length - 1;
    descent.shown = whole ? n : Math.min(descent.shown, n);
    drawDescent();
  }
  const updateDescentLater = debounce(updateDescent, 120);
  function updateDescentSoon() {
    $("descent-plot").dataset.pending = "1";  // until the answer to this change is drawn
    updateDescentLater();
  }

  function drawDescent() {
    const d = descent.data, svg = $("descent-plot");
    svg.replaceChildren();
    const w = d.curve.w, loss = d.curve.loss;
    const finite = loss.filter((v) => v !== null);
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
    const pad = 0.06 * (hi - lo);
    const xs = scale(w[0], w[w.length - 1], D_BOX.x0, D_BOX.x1);
    const ys = scale(lo - pad, hi + pad, D_BOX.y1, D_BOX.y0);
    descent.xs = xs;
    axes(svg, D_BOX, xs, ys, niceTicks(w[0], w[w.length - 1]), niceTicks(lo - pad, hi + pad, 5),
         d.variable, `L(${d.variable})`);
    let line = "";
    w.forEach((x, i) => {
      if (loss[i] === null) return;
      line += `${line && loss[i - 1] !== null ? "L" : "M"}${xs(x).toFixed(2)},${ys(loss[i]).toFixed(2)}`;
    });
    el("path", {class: "curve", d: line, "data-formula": d.formula}, svg);
    const inside = (x, y) => x !== null && y !== null && x >= w[0] && x <= w[w.length - 1] &&
      y >= lo - pad && y <= hi + pad;
    const half = 0.035 * (w[w.length - 1] - w[0]);
    let trail = "";
    for (let k = 0; k <= descent.shown; k++) {
      const x = d.iterates[k], y = d.losses[k], slope = d.slopes[k];
      if (!inside(x, y)) continue;
      trail += `${trail ? "L" : "M"}${xs(x).toFixed(2)},${ys(y).toFixed(2)}`;
      if (slope !== null) {
        el("line", {class: "slope", x1: xs(x - half), y1: ys(y - slope * half),
                    x2: xs(x + half), y2: ys(y + slope * half)}, svg);
      }
    }
    el("path", {class: "path", d: trail}, svg);
    const group = el("g", {id: "descent-iterates"}, svg);
    for (let k = 0; k <= descent.shown; k++) {
      const x = d.iterates[k], y = d.losses[k];
      const dot = el("circle", {class: k === 0 ? "start" : "iterate", r: k === 0 ? 7 : 4,
                                "data-k": k, "data-w": String(x), "data-loss": String(y),
                                "data-slope": String(d.slopes[k])}, group);
      if (inside(x, y)) { dot.setAttribute("cx", xs(x)); dot.setAttribute("cy", ys(y)); }
      else dot.setAttribute("visibility", "hidden");
      el("title", {}, dot).textContent =
        `w${k} = ${num(x, 6)}, L = ${num(y, 6)}, L' = ${num(d.slopes[k], 6)}`;
    }
    const start = group.firstChild;
    start.id = "start-point";
    start.addEventListener("pointerdown", (e) => {
      descent.dragging = true; start.setPointerCapture(e.pointerId);
    });
    const regime = $("descent-regime");
    regime.dataset.regime = d.regime || "";
    regime.textContent = d.regime ? d.regime_text : "none (the curvature is not finite)";
    $("descent-curvature").textContent = d.curvature === null ? "" :
      `curvature where the run ended a = L'' = ${num(d.curvature, 4)}, ` +
      `lr \u00b7 a = ${num(d.lr_times_a, 4)}`;
    $("descent-status").textContent = d.status;
    const k = descent.shown;
    $("descent-at").textContent = `step ${k} of ${d.iterates.length - 1}: ${d.variable} = ` +
      `${num(d.iterates[k], 6)}, L = ${num(d.losses[k], 6)}, L' = ${num(d.slopes[k], 6)}`;
    $("descent-command").textContent = d.command;
  }

  function svgX(svg, event) {
    const p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse()).x;
  }

  function initDescent() {
    const o = options.descent.defaults;
    $("formula").value = o.formula; $("lr").value = o.lr; $("momentum").value = o.momentum;
    $("steps").value = o.steps; descent.start = o.start;
    for (const id of ["formula", "lr", "momentum", "steps"]) {
      $(id).addEventListener("input", updateDescentSoon);
    }
    const svg = $("descent-plot");
    svg.addEventListener("pointermove", (e) => {
      if (!descent.dragging || !descent.xs) return;
      descent.start = Number(descent.xs.invert(svgX(svg, e)).toPrecision(4));
      updateDescentSoon();
    });
    const drop = () => { descent.dragging = false; };
    svg.addEventListener("pointerup", drop);
    svg.addEventListener("pointercancel", drop);
    const n = () => descent.data.iterates.length - 1;
    const stop = () => { clearInterval(descent.timer); descent.timer = null;
                         $("play").textContent = "play"; };
    $("step").addEventListener("click", () => {
      stop(); descent.shown = Math.min(descent.shown + 1, n()); drawDescent();
    });
    $("reset").addEventListener("click", () => { stop(); descent.shown = 0; drawDescent(); });
    $("play").addEventListener("click", () => {
      if (descent.timer) { stop(); return; }
      if (descent.shown >= n()) descent.shown = 0;
      $("play").textContent = "pause";
      descent.timer = setInterval(() => {
        if (descent.shown >= n()) { stop(); return; }
        descent.shown += 1; drawDescent();
      }, 250);
    });
    updateDescent();
  }

  // ---- 2. through time -----------------------------------------------------------------
  const T_BOX = {x0: 58, x1: 628, y0: 12, y1: 272};
  const fetchTime = latest((body) => api("/api/time", body));

  function timeRequest() {
    const cell = $("cell").value;
    const forget = options.time.forget_gate.includes(cell);
    $("forget").disabled = $("forget-on").disabled = !forget;
    $("radius").disabled = !$("radius-on").checked;
    $("forget").disabled = !forget || !$("forget-on").checked;
    return {cell, hidden: Number($("hidden").value), length: Number($("length").value),
            init: $("init").value,
            radius: $("radius-on").checked ? Number($("radius").value) : null,
            forget_bias: forget && $("forget-on").checked ? Number($("forget").value) : null};
  }

  async function updateTime() {
    for (const id of ["hidden", "length", "radius", "forget"]) {
      $(`${id}-value`).textContent = $(id).value;
    }
    $("time-plot").classList.add("busy");
    const result = await fetchTime(timeRequest());
    if (result === null) return;
    $("time-plot").classList.remove("busy");
    showError("time-error", result.ok ? null : result.data);
    if (result.ok) drawTime(result.data);
  }
  const updateTimeSoon = debounce(updateTime, 200);

  function drawTime(d) {
    const svg = $("time-plot");
    svg.replaceChildren();
    const rel = d.relative;
    const logs = rel.filter((v) => v !== null && v > 0).map(Math.log10);
    const top = Math.max(0, Math.ceil(Math.max(...logs)));
    const bottom = Math.min(-3, Math.floor(Math.min(...logs)));
    const xs = scale(0, rel.length - 1, T_BOX.x0, T_BOX.x1);
    const ys = scale(bottom, top, T_BOX.y1, T_BOX.y0);
    const every = Math.max(1, Math.ceil((top - bottom) / 8));
    const yTicks = [];
    for (let e = top; e >= bottom; e -= every) yTicks.push({v: e, label: e === 0 ? "1" : `1e${e}`});
    axes(svg, T_BOX, xs, ys, niceTicks(0, rel.length - 1), yTicks, "lag T \u2212 t (steps back)",
         "||dL/dh_t|| / ||dL/dh_T||");
    const th = Math.log10(d.threshold);
    el("line", {class: "threshold", x1: T_BOX.x0, x2: T_BOX.x1, y1: ys(th), y2: ys(th)}, svg);
    el("line", {class: "horizon", x1: xs(d.horizon), x2: xs(d.horizon), y1: T_BOX.y0,
                y2: T_BOX.y1}, svg);
    el("text", {x: T_BOX.x1 - 4, y: ys(th) - 4, "text-anchor": "end"}, svg).textContent =
      `threshold ${num(d.threshold)}`;
    el("text", {x: xs(d.horizon) + 4, y: T_BOX.y0 + 12}, svg).textContent =
      `horizon ${d.horizon}`;
    let line = "";
    rel.forEach((v, k) => {
      if (v === null || !(v > 0)) return;
      line += `${line && rel[k - 1] ? "L" : "M"}${xs(k).toFixed(2)},${ys(Math.log10(v)).toFixed(2)}`;
    });
    const settings = {cell: d.cell, hidden: d.hidden, length: d.length, init: d.init,
                      radius: d.radius, forget_bias: d.forget_bias};
    el("path", {id: "time-curve", class: "gradient", d: line, "data-values": JSON.stringify(rel),
                "data-cell": d.cell, "data-settings": JSON.stringify(settings)}, svg);
    const set = (id, value, text) => { $(id).dataset.value = String(value); $(id).textContent = text; };
    set("time-horizon", d.horizon, String(d.horizon));
    set("time-decay", d.decay_rate, num(d.decay_rate, 4));
    $("time-factor").textContent = num(d.factor, 4);
    $("time-threshold").textContent = num(d.threshold);
    $("time-verdict").textContent = `${d.verdict} (${d.reason})`;
    const layers = d.weights.map((w) => {
      if (w.gamma === null || w.gamma === undefined) {
        return `${w.layer} (${w.mode}): \u03c3_max(W_hh) = ${num(w.sigma_max, 4)}; the ` +
          "condition \u03c3_max < 1/\u03b3 is for Elman cells (no bound \u03b3 on a gated cell)";
      }
      const verdict = w.vanishing_guaranteed ? "so vanishing is guaranteed"
        : "so vanishing is not guaranteed by it";
      return `${w.layer} (${w.mode}): \u03c3_max(W_hh) = ${num(w.sigma_max, 4)} ` +
        `${w.vanishing_guaranteed ? "<" : "\u2265"} 1/\u03b3 = ${num(w.bound, 4)}, ${verdict}`;
    });
    const pascanu = $("time-pascanu");
    pascanu.textContent = layers.length ? layers.join("; ") : "no recurrent matrix W_hh";
    pascanu.dataset.guaranteed = JSON.stringify(d.weights.map((w) => w.vanishing_guaranteed));
    $("time-ms").textContent = d.ms.toFixed(0);
    $("time-command").textContent = d.command || "(vanishing probe has no --forget-bias)";
  }

  function initTime() {
    const o = options.time;
    for (const [id, list] of [["cell", o.cells], ["init", o.inits]]) {
      for (const name of list) {
        const opt = document.createElement("option");
        opt.value = opt.textContent = name;
        $(id).appendChild(opt);
      }
    }
    $("cell").value = o.defaults.cell; $("init").value = o.defaults.init;
    $("hidden").value = o.defaults.hidden; $("length").value = o.defaults.length;
    $("hidden").max = o.limits.hidden; $("length").max = o.limits.length;
    for (const id of ["cell", "hidden", "length", "init", "radius", "radius-on", "forget",
                      "forget-on"]) {
      $(id).addEventListener("input", updateTimeSoon);
    }
    updateTime();
  }

  // ---- 3. France -> French -------------------------------------------------------------
  const fetchWords = latest((body) => api("/api/sentence", body));

  function ramp(p) {
    const stops = RAMP.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
    const x = p * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    return "#" + stops[i].map((a, j) => Math.round(a + (stops[i + 1][j] - a) * f)
      .toString(16).padStart(2, "0")).join("");
  }

  async function readWords(body) {
    const result = await fetchWords(body);
    if (result === null) return;
    const d = result.data;
    const box = $("words-models");
    showError("words-error", result.ok ? null : d);
    if (!result.ok) {
      if (d.unknown) {
        for (const w of d.unknown) {
          const chip = document.createElement("span");
          chip.className = "unknown"; chip.textContent = w;
          $("words-error").appendChild(chip);
        }
      }
      return;
    }
    $("sentence").value = d.words.join(" ");
    $("words-answer").textContent = d.answer ? `the task's answer: ${d.answer}`
      : "no country in the sentence: each model's gradient is for its own prediction";
    box.replaceChildren();
    const shares = d.models.flatMap((m) => m.shares).filter((s) => s > 0);
    const lo = Math.max(Math.floor(Math.log10(Math.min(...shares)) - 1e-9), -20);
    for (const m of d.models) box.appendChild(modelRow(m, lo, d.words));
    if (d.models.length) box.appendChild(legend(lo));
    if (!d.models.length) box.textContent = "no demo model yet: train them above.";
  }

  function modelRow(m, lo, words) {
    const row = document.createElement("div");
    row.className = "model"; row.dataset.model = m.model;
    const name = document.createElement("div");
    const p = Math.max(...m.probabilities);
    name.className = "name"; name.textContent = m.model;
    const pred = document.createElement("div");
    pred.className = "prediction"; pred.dataset.prediction = m.prediction;
    pred.textContent = `predicts ${m.prediction} (p = ${num(p)})`;
    name.appendChild(pred);
    const right = document.createElement("div");
    const sentence = document.createElement("p");
    sentence.className = "sentence";
    sentence.setAttribute("aria-label", `${m.model}: gradient for ${m.target}`);
    const readout = document.createElement("output");
    readout.className = "readout"; readout.textContent = "hover a word for its share";
    m.shares.forEach((share, i) => {
      const span = document.createElement("span");
      const pos = share > 0 ? Math.min(Math.max((Math.log10(share) - lo) / -lo, 0), 1) : 0;
      span.className = "w"; span.tabIndex = 0;
      span.textContent = words[i];
      span.dataset.value = String(share); span.dataset.norm = String(m.norms[i]);
      span.dataset.share = share.toExponential(1);
      span.style.background = ramp(pos);
      span.style.color = pos > 0.55 ? "#ffffff" : "#111111";
      const tip = `${span.textContent}: ${span.dataset.share} of the gradient ` +
        `(||dL/de_t|| = ${m.norms[i].toExponential(2)})`;
      span.title = tip;
      const show = () => { readout.textContent = tip; };
      span.addEventListener("mouseenter", show);
      span.addEventListener("focus", show);
      sentence.appendChild(span);
      sentence.appendChild(document.createTextNode(" "));
    });
    right.appendChild(sentence); right.appendChild(readout);
    row.appendChild(name); row.appendChild(right);
    return row;
  }

  function legend(lo) {
    const wrap = document.createElement("p");
    wrap.className = "legend small";
    wrap.appendChild(document.createTextNode("share of ||dL/de_t||: "));
    const every = Math.max(1, Math.ceil(-lo / 6));
    const decades = [];
    for (let e = 0; e >= lo; e -= every) decades.unshift(e);
    for (const e of decades) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = e === 0 ? "1" : `1e${e}`;
      const pos = (e - lo) / -lo;
      chip.style.background = ramp(pos);
      chip.style.color = pos > 0.55 ? "#ffffff" : "#111111";
      wrap.appendChild(chip);
    }
    return wrap;
  }

  function drawRandom() {
    return readWords({random: true, gap: Number($("gap").value), seed: Number($("seed").value)});
  }

  async function pollTraining() {
    const {data} = await api("/api/train");
    const state = $("train-state");
    state.dataset.state = data.state;
    const bar = $("train-progress");
    const running = data.state === "running";
    bar.hidden = !running; $("train-cancel").hidden = !running; $("train").disabled = running;
    if (running) {
      const i = data.models.indexOf(data.model);
      bar.value = (Math.max(i, 0) + data.step / data.steps) / data.models.length;
      const acc = data.accuracy === null ? "" : `, held-out accuracy ${num(data.accuracy)}`;
      state.textContent = `training ${data.model}: step ${data.step} of ${data.steps}${acc}`;
      setTimeout(pollTraining, 400);
      return;
    }
    state.textContent = data.state === "idle" ? "" : data.state +
      (data.error ? `: ${data.error}` : ` (${data.done.join(", ") || "none"} saved)`);
    if (data.state === "done") {
      options = (await api("/api/options")).data;
      $("train-box").hidden = options.words.available.length === options.words.models.length;
      drawRandom();
    }
  }

  function initWords() {
    const o = options.words;
    $("gap").value = o.gap;
    $("vocabulary").textContent = o.vocabulary.join(" ");
    const missing = o.models.filter((m) => !o.available.includes(m));
    $("train-box").hidden = missing.length === 0;
    $("train-text").textContent = `No checkpoint of ${missing.join(", ")} in ${o.folder}. ` +
      `Train the demo's models here (${o.train_steps} steps at most each, as vanishing demo ` +
      "trains them); the page shows the progress.";
    $("train").addEventListener("click", async () => {
      await api("/api/train", {}); pollTraining();
    });
    $("train-cancel").addEventListener("click", () => api("/api/train", {cancel: true}));
    $("read").addEventListener("click", () => readWords({text: $("sentence").value}));
    $("sentence").addEventListener("keydown", (e) => {
      if (e.key === "Enter") readWords({text: $("sentence").value});
    });
    $("random").addEventListener("click", () => {
      $("seed").value = Number($("seed").value) + 1; drawRandom();
    });
    drawRandom();
    pollTraining();
  }

  async function main() {
    options = (await api("/api/options")).data;
    initDescent(); initTime(); initWords();
  }

  document.addEventListener("DOMContentLoaded", main);
})();
