// The growth page (index.html): wallets, transactions, fees and weekly cohorts.
var d = data.daily;
draw("chart-daily-wallets", [
  line("Active wallets", d.day, d.active, COLORS[0]),
  line("Active, 7-day avg", d.day, d.active_ma7, COLORS[0], "dash"),
  line("New wallets", d.day, d.new, COLORS[1]),
  line("New, 7-day avg", d.day, d.new_ma7, COLORS[1], "dash")
], { xaxis: { title: { text: "Day (UTC)" } }, yaxis: { title: { text: "Wallets" } } }, d.day.length > 0);

var w = data.weekly;
draw("chart-weekly-wallets", [{
  type: "bar", name: "Active wallets", x: w.start, y: w.active,
  marker: { color: COLORS[0], opacity: w.complete.map(function (c) { return c ? 1 : 0.35; }) },
  hovertemplate: "Week of %{x|%a %b %d, %Y}: %{y:,} wallets<extra></extra>"
}], { hovermode: "closest", showlegend: false, bargap: 0.15,
      xaxis: merge({ title: { text: "Week starting (Monday)" }, type: "date" }, w.start.length ? weeklyAxis(w.start) : {}),
      yaxis: { title: { text: "Active wallets" } } }, w.start.length > 0);

// Months as categories: one labelled bar per month, even when the history holds a single month.
var m = data.monthly;
draw("chart-monthly-wallets", [{
  type: "bar", name: "Active wallets", x: m.start.map(monthLabel), y: m.active,
  marker: { color: COLORS[2], opacity: m.complete.map(function (c) { return c ? 1 : 0.35; }) },
  hovertemplate: "%{x}: %{y:,} wallets<extra></extra>"
}], { hovermode: "closest", showlegend: false, bargap: 0.2,
      xaxis: { type: "category", tickangle: 0 }, yaxis: { title: { text: "Active wallets" } } }, m.start.length > 0);

var hasRatio = d.dau_mau.some(function (v) { return v !== null; });
draw("chart-dau-mau", [
  Object.assign(line("DAU / MAU", d.day, d.dau_mau, COLORS[4]), { yaxis: "y" }),
  Object.assign(line("MAU (30-day active wallets)", d.day, d.mau, GREY, "dot"), { yaxis: "y2" })
], merge({ xaxis: { title: { text: "Day (UTC)" } } },
         dualAxes(d.dau_mau, d.mau, "DAU / MAU", "MAU", "#616e7c", ".0%", "~s")),
   hasRatio, data.dau_mau_empty);

// User types first and shown; miners' system transactions (two thirds of the rows) start hidden: a click on
// their legend entry shows them. Colours come from the fixed map, not from the series order.
function stacked(id, s, yTitle) {
  // A history of system transactions only (no user type at all) shows them rather than an empty chart.
  var anyUser = s.series.some(function (series) { return !series.system; });
  var traces = s.series.map(function (series, i) {
    return { type: "bar", name: plain(series.name) + (series.system ? " (system)" : ""), x: s.day, y: series.y,
             visible: series.system && anyUser ? "legendonly" : true, marker: { color: categoryColor(series.name, i) } };
  });
  draw(id, traces, { barmode: "stack", bargap: 0.1, xaxis: { title: { text: "Day (UTC)" } },
                     yaxis: { title: { text: yTitle } } }, s.day.length > 0);
}
stacked("chart-tx-type", data.tx_by_type, "Transactions");
stacked("chart-tx-status", data.tx_by_status, "Transactions");

var f = data.fees;
barsAndLine("chart-fees", f.day, f.fees_stx, "Fees per day (STX)", "Fees per day (STX)",
            f.mean_fee_stx, "Mean fee per transaction (STX)", "Mean fee (STX)", "~s", "~g");

var c = data.cohorts;
var labels = c.cohort.map(function (wk, i) { return wk + " (" + c.size[i].toLocaleString("en-US") + ")"; });
heatmapHeight("chart-cohorts", labels.length);
draw("chart-cohorts", [bandHeatmap({
  x: c.week, y: labels, share: c.share, active: c.active,
  hover: "Cohort %{y}<br>Week %{x}: %{customdata[0]:.1f}% (%{customdata[1]:,} wallets)<extra></extra>"
})], {
  hovermode: "closest",
  xaxis: { title: { text: "Weeks after the cohort week" }, dtick: 1, showgrid: false, zeroline: false, showline: false },
  yaxis: { title: { text: "Cohort: week of first activity (size)" }, autorange: "reversed", type: "category",
           showgrid: false, zeroline: false, showline: false, rangemode: "normal", tickfont: { size: 10 } },
  margin: { l: 170, r: 20, t: 10, b: 50 }
}, c.cohort.length > 0 && c.week.length > 0, data.cohorts_empty);
