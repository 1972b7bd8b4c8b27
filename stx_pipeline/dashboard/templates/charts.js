// Shared by both pages: data from the JSON in #stx-data (no network, no eval), one look for every chart.
"use strict";
var holder = document.getElementById("stx-data");
var data = holder ? JSON.parse(holder.textContent) : {};

// Without the chart library (index.html copied without its assets/ folder) every chart says so, and the banner
// at the top tells what to do: blank cards would read as "no activity".
if (typeof Plotly === "undefined") {
  var banner = document.getElementById("library-missing");
  if (banner) { banner.hidden = false; }
  Array.prototype.forEach.call(document.querySelectorAll(".chart"), function (el) {
    var msg = document.createElement("div");
    msg.className = "no-data";
    msg.textContent = "Chart not drawn: the chart library (assets/) is missing.";
    el.appendChild(msg);
  });
  return;
}

var FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif";
var COLORS = ["#5546ff", "#f28e2b", "#17a2b8", "#e15759", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948"];
var GREY = "#9aa5b1";
// One colour per transaction type and status, whatever the order of the series: the same type keeps its colour
// from one build, day or page to the next. Unknown values (a new type) get the grey.
var CATEGORY_COLORS = {
  token_transfer: "#5546ff", contract_call: "#f28e2b", smart_contract: "#17a2b8",
  versioned_smart_contract: "#76b7b2", coinbase: "#c9ced6", tenure_change: "#9aa5b1",
  poison_microblock: "#616e7c",
  success: "#59a14f", abort_by_response: "#f28e2b", abort_by_post_condition: "#e15759",
  problematic_skipped: "#b07aa1"
};
var WEEK_MS = 7 * 24 * 3600 * 1000;

// Plotly reads a small HTML subset in labels; chain strings (tx types, statuses) are shown as plain text.
function plain(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function merge(base, extra) {
  for (var k in extra) {
    if (Object.prototype.hasOwnProperty.call(extra, k)) {
      base[k] = (extra[k] && typeof extra[k] === "object" && !Array.isArray(extra[k]) && base[k])
        ? Object.assign({}, base[k], extra[k]) : extra[k];
    }
  }
  return base;
}

function layout(extra) {
  return merge({
    font: { family: FONT, size: 12, color: "#1f2933" },
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
    margin: { l: 64, r: 24, t: 10, b: 50 },
    hovermode: "x unified",
    legend: { orientation: "h", x: 0, y: -0.22 },
    xaxis: { gridcolor: "#eef0f3", linecolor: "#cbd2d9", automargin: true },
    yaxis: { gridcolor: "#eef0f3", linecolor: "#cbd2d9", rangemode: "tozero", zeroline: false, automargin: true }
  }, extra || {});
}

// No mode bar: it covered the top of every chart. Zoom by dragging, double-click to reset.
var CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

// `empty` is the card's own explanation when there is nothing to draw (e.g. the history is too short).
function draw(id, traces, extra, hasData, empty) {
  var el = document.getElementById(id);
  if (!el) { return; }
  if (!hasData) {
    var msg = document.createElement("div");
    msg.className = "no-data";
    msg.textContent = empty || "No data";
    el.appendChild(msg);
    return;
  }
  Plotly.newPlot(el, traces, layout(extra), CONFIG);
}

function line(name, x, y, color, dash) {
  return { type: "scatter", mode: "lines", name: name, x: x, y: y, connectgaps: false,
           line: { color: color, width: dash ? 2 : 1.5, dash: dash || "solid" } };
}

function finiteMax(values) {
  var m = 0;
  values.forEach(function (v) { if (v !== null && isFinite(v) && v > m) { m = v; } });
  return m;
}

// A round step (1, 2, 2.5 or 5 x 10^k) such that `intervals` steps cover `max`.
function niceStep(max, intervals) {
  if (!(max > 0)) { return 1; }
  var raw = max / intervals;
  var mag = Math.pow(10, Math.floor(Math.log10(raw)));
  var steps = [1, 2, 2.5, 5, 10];
  for (var i = 0; i < steps.length; i++) {
    if (steps[i] * mag >= raw * (1 - 1e-9)) { return steps[i] * mag; }
  }
  return 10 * mag;
}

// Both axes of a dual-axis chart get 4 round intervals from 0, so the right ticks are round numbers and sit
// on the left axis' grid lines.
function dualAxes(leftValues, rightValues, leftTitle, rightTitle, rightColor, leftFormat, rightFormat) {
  var ls = niceStep(finiteMax(leftValues), 4), rs = niceStep(finiteMax(rightValues), 4);
  return {
    yaxis: { title: { text: leftTitle }, range: [0, 4 * ls], dtick: ls, tick0: 0, tickformat: leftFormat || "~s" },
    yaxis2: { title: { text: rightTitle, font: { color: rightColor } }, overlaying: "y", side: "right",
              range: [0, 4 * rs], dtick: rs, tick0: 0, showgrid: false, zeroline: false, automargin: true,
              tickfont: { color: rightColor }, tickformat: rightFormat || "~s" },
    margin: { l: 64, r: 64, t: 10, b: 50 }
  };
}

// Bars per day on the left axis and a line on the right (the fee charts of both pages).
function barsAndLine(id, day, bars, barName, barTitle, lineValues, lineName, lineTitle, barFormat, lineFormat) {
  draw(id, [
    { type: "bar", name: barName, x: day, y: bars, marker: { color: COLORS[0] } },
    Object.assign(line(lineName, day, lineValues, COLORS[1]), { yaxis: "y2" })
  ], merge({ xaxis: { title: { text: "Day (UTC)" } } },
           dualAxes(bars, lineValues, barTitle, lineTitle, COLORS[1], barFormat, lineFormat)),
     day.length > 0);
}

// Date-axis ticks on the Mondays the weekly bars stand for: tick0 is the first bar's Monday and the step a
// whole number of weeks, chosen so that no more than about 12 labels are shown.
function weeklyAxis(starts) {
  var step = Math.max(1, Math.ceil(starts.length / 12));
  return { tick0: starts[0], dtick: step * WEEK_MS, tickformat: "%b %d", ticklabelmode: "instant" };
}

// Month labels on two lines ("Mar" over "2025") never rotate into the axis title, however many months.
function monthLabel(iso) {
  var d = new Date(iso + "T00:00:00Z");
  var names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  return names[d.getUTCMonth()] + "<br>" + d.getUTCFullYear();
}

function categoryColor(name, i) {
  return Object.prototype.hasOwnProperty.call(CATEGORY_COLORS, name) ? CATEGORY_COLORS[name] : GREY;
}

// Discrete colour bands for shares (retention heatmaps): with a linear 0-100 % scale 5 % and 30 % looked the
// same, so the bands are narrow where most cells are, and each cell is coloured by its band's index.
var SHARE_BANDS = [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1];
var BAND_COLORS = ["#f7f7fb", "#e3e1fb", "#c9c4f7", "#aba3f1", "#8c80ea", "#6f60e0", "#5546ff", "#3b2fd1", "#241a9a"];
// The cell value mapped to its band's index, so the colour bar shows one block per band with its range.
function bandOf(v) {
  if (v === null) { return null; }
  for (var i = SHARE_BANDS.length - 2; i >= 0; i--) { if (v >= SHARE_BANDS[i]) { return i; } }
  return 0;
}
function bandHeatmap(opts) {
  var n = BAND_COLORS.length, scale = [];
  for (var i = 0; i < n; i++) { scale.push([i / n, BAND_COLORS[i]], [(i + 1) / n, BAND_COLORS[i]]); }
  var ticks = [], labels = [];
  for (var j = 0; j < n; j++) {
    ticks.push(j + 0.5);
    labels.push(Math.round(SHARE_BANDS[j] * 100) + "–" + Math.round(SHARE_BANDS[j + 1] * 100) + "%");
  }
  var z = opts.share.map(function (row) { return row.map(function (v) { return v === null ? null : bandOf(v) + 0.5; }); });
  var rows = opts.y.length, cols = opts.x.length;
  var showText = rows <= 40 && cols <= 20;
  return {
    type: "heatmap", x: opts.x, y: opts.y, z: z, zmin: 0, zmax: n, colorscale: scale,
    customdata: opts.share.map(function (row, r) {
      return row.map(function (v, c) { return [v === null ? null : v * 100, opts.active ? opts.active[r][c] : null]; });
    }),
    text: opts.share.map(function (row) { return row.map(function (v) { return v === null ? "" : Math.round(v * 100) + ""; }); }),
    texttemplate: showText ? "%{text}" : "", textfont: { size: 10 },
    xgap: 1, ygap: rows > 60 ? 0 : 1, hoverongaps: false,
    colorbar: { title: { text: opts.colorTitle || "Active" }, tickvals: ticks, ticktext: labels, thickness: 14, len: 0.9 },
    hovertemplate: opts.hover
  };
}
// Heatmap height grows with its rows (about 14 px each at 100+ cohorts) instead of squeezing them.
function heatmapHeight(id, rows) {
  var el = document.getElementById(id);
  if (el) { el.style.height = Math.max(340, Math.min(rows, 400) * (rows > 60 ? 13 : 22) + 110) + "px"; }
}
