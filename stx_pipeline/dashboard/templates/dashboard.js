// Draws every chart from the JSON embedded in #stx-data (no network, no eval).
(function () {
  "use strict";
  var holder = document.getElementById("stx-data");
  if (!holder || typeof Plotly === "undefined") { return; }
  var data = JSON.parse(holder.textContent);

  var COLORS = ["#5546ff", "#f28e2b", "#17a2b8", "#e15759", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948"];
  var FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif";

  // Plotly reads a small HTML subset in labels; chain strings (tx types, statuses) are shown as
  // plain text by escaping its markup characters.
  function plain(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function layout(extra) {
    var base = {
      font: { family: FONT, size: 12, color: "#1f2933" },
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
      margin: { l: 60, r: 20, t: 10, b: 50 },
      hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: -0.2 },
      xaxis: { gridcolor: "#eef0f3", linecolor: "#cbd2d9" },
      yaxis: { gridcolor: "#eef0f3", linecolor: "#cbd2d9", rangemode: "tozero", zeroline: false }
    };
    for (var k in extra) {
      if (Object.prototype.hasOwnProperty.call(extra, k)) {
        base[k] = (typeof extra[k] === "object" && !Array.isArray(extra[k]) && base[k])
          ? Object.assign({}, base[k], extra[k]) : extra[k];
      }
    }
    return base;
  }

  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function draw(id, traces, extra, hasData) {
    var el = document.getElementById(id);
    if (!el) { return; }
    if (!hasData) {
      var msg = document.createElement("div");
      msg.className = "no-data";
      msg.textContent = "No data";
      el.appendChild(msg);
      return;
    }
    Plotly.newPlot(el, traces, layout(extra || {}), CONFIG);
  }

  function line(name, x, y, color, dash) {
    return { type: "scatter", mode: "lines", name: name, x: x, y: y, connectgaps: false,
             line: { color: color, width: dash ? 2 : 1.5, dash: dash || "solid" } };
  }

  var d = data.daily;
  var days = d.day.length > 0;
  draw("chart-daily-wallets", [
    line("Active wallets", d.day, d.active, COLORS[0]),
    line("Active, 7-day avg", d.day, d.active_ma7, COLORS[0], "dash"),
    line("New wallets", d.day, d.new, COLORS[1]),
    line("New, 7-day avg", d.day, d.new_ma7, COLORS[1], "dash")
  ], { xaxis: { title: { text: "Day (UTC)" } }, yaxis: { title: { text: "Wallets" } } }, days);

  // Monthly bars span their month and ticks name it: with a few bars on a date axis Plotly would
  // otherwise pick ticks such as "Dec 29". Weekly bars stay on their Monday.
  function periods(id, p, color, label, period, tickformat) {
    var partial = p.complete.map(function (c) { return c ? 1 : 0.35; });
    draw(id, [{
      type: "bar", name: label, x: p.start, y: p.active, xperiod: period || undefined,
      xperiodalignment: period ? "middle" : undefined,
      marker: { color: color, opacity: partial },
      hovertemplate: "%{x|" + tickformat + "}: %{y:,} wallets<extra></extra>"
    }], { hovermode: "closest", showlegend: false,
          xaxis: { title: { text: label }, dtick: period || undefined, tickformat: tickformat },
          yaxis: { title: { text: "Active wallets" } } }, p.start.length > 0);
  }
  periods("chart-weekly-wallets", data.weekly, COLORS[0], "Week starting (Monday)", null, "%b %d");
  periods("chart-monthly-wallets", data.monthly, COLORS[2], "Month", "M1", "%b %Y");

  var hasRatio = d.dau_mau.some(function (v) { return v !== null; });
  draw("chart-dau-mau", [
    Object.assign(line("DAU / MAU", d.day, d.dau_mau, COLORS[4]), { yaxis: "y" }),
    Object.assign(line("MAU (30-day active wallets)", d.day, d.mau, "#9aa5b1", "dot"), { yaxis: "y2" })
  ], {
    xaxis: { title: { text: "Day (UTC)" } },
    yaxis: { title: { text: "DAU / MAU" }, tickformat: ".0%" },
    yaxis2: { title: { text: "MAU" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
    margin: { l: 60, r: 60, t: 10, b: 50 }
  }, hasRatio);

  function stacked(id, s) {
    var traces = s.series.map(function (series, i) {
      return { type: "bar", name: plain(series.name), x: s.day, y: series.y,
               marker: { color: COLORS[i % COLORS.length] } };
    });
    draw(id, traces, { barmode: "stack", bargap: 0.1, xaxis: { title: { text: "Day (UTC)" } },
                       yaxis: { title: { text: "Transactions" } } }, s.day.length > 0);
  }
  stacked("chart-tx-type", data.tx_by_type);
  stacked("chart-tx-status", data.tx_by_status);

  var f = data.fees;
  draw("chart-fees", [
    { type: "bar", name: "Fees (STX)", x: f.day, y: f.fees_stx, marker: { color: COLORS[0] } },
    Object.assign(line("Mean fee per transaction (STX)", f.day, f.mean_fee_stx, COLORS[1]), { yaxis: "y2" })
  ], {
    xaxis: { title: { text: "Day (UTC)" } },
    yaxis: { title: { text: "Fees per day (STX)" } },
    yaxis2: { title: { text: "Mean fee (STX)" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
    margin: { l: 70, r: 70, t: 10, b: 50 }
  }, f.day.length > 0);

  var c = data.cohorts;
  var weeks = c.share.length ? c.share[0].length : 0;
  var xs = [];
  for (var k = 0; k < weeks; k++) { xs.push(k); }
  var labels = c.cohort.map(function (w, i) { return w + " (" + c.size[i].toLocaleString() + ")"; });
  var text = c.share.map(function (row) {
    return row.map(function (v) { return v === null ? "" : Math.round(v * 100) + "%"; });
  });
  draw("chart-cohorts", [{
    type: "heatmap", x: xs, y: labels, z: c.share, customdata: c.active, text: text,
    texttemplate: weeks <= 26 ? "%{text}" : "", colorscale: [[0, "#f3f1ff"], [1, "#3b2fd1"]],
    zmin: 0, zmax: 1, xgap: 1, ygap: 1, hoverongaps: false,
    colorbar: { title: { text: "Active" }, tickformat: ".0%" },
    hovertemplate: "Cohort %{y}<br>Week %{x}: %{z:.1%} (%{customdata:,} wallets)<extra></extra>"
  }], {
    hovermode: "closest",
    xaxis: { title: { text: "Weeks after the cohort week" }, dtick: 1, gridcolor: "rgba(0,0,0,0)" },
    yaxis: { title: { text: "Cohort: week of first activity (size)" }, autorange: "reversed", type: "category",
             gridcolor: "rgba(0,0,0,0)", rangemode: "normal" },
    margin: { l: 170, r: 20, t: 10, b: 50 }
  }, c.cohort.length > 0);
})();
