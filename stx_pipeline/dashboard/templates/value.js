// The value page (value.html): fee value per activation cohort, segments, retention and per-day rates.
var c = data.cohorts, H = data.horizons;
var HCOLORS = [COLORS[0], COLORS[1], COLORS[2]];
function some(list) { return list.some(function (v) { return v !== null; }); }
// No axis title under cohort labels: rotated labels would run into it; the card's caption names the axis.
var cohortAxis = { type: "category" };

var valueTraces = [];
H.forEach(function (h, i) {
  valueTraces.push({ type: "bar", name: "Mean, first " + h + " days", x: c.label, y: c["mean_" + h],
                     marker: { color: HCOLORS[i] }, hovertemplate: "%{x}: %{y:.4f} STX<extra>mean " + h + " d</extra>" });
});
H.forEach(function (h, i) {
  valueTraces.push({ type: "scatter", mode: "markers", name: "Median, " + h + " days", x: c.label, y: c["median_" + h],
                     marker: { color: HCOLORS[i], symbol: "diamond", size: 8, line: { color: "#ffffff", width: 1 } },
                     hovertemplate: "%{x}: %{y:.4f} STX<extra>median " + h + " d</extra>" });
});
draw("chart-cohort-value", valueTraces, {
  barmode: "group", hovermode: "closest", xaxis: cohortAxis, yaxis: { title: { text: "Fees paid per wallet (STX)" } }
}, some(c["mean_" + H[0]]), "No cohort has lived through its first " + H[0] + " days in the stored history yet.");

var hist = data.histogram;
draw("chart-fee-histogram", [{
  type: "bar", name: "Wallets", x: hist.label, y: hist.wallets, marker: { color: COLORS[0] },
  hovertemplate: "%{x} STX: %{y:,} wallets<extra></extra>"
}], { hovermode: "closest", showlegend: false, xaxis: { type: "category", title: { text: "Fees paid in the first 30 days (STX)" } },
      yaxis: { title: { text: "Wallets" } } },
   hist.wallets.some(function (n) { return n > 0; }), "No wallet's first 30 days are stored yet.");

var steps = [["new", "New", GREY], ["funded", "Funded", COLORS[2]], ["active", "Active", COLORS[1]], ["value", "Value", COLORS[0]]];
draw("chart-funnel", steps.map(function (s) {
  return { type: "bar", name: s[1], x: c.label, y: c[s[0]], marker: { color: s[2] },
           hovertemplate: "%{x}: %{y:,} wallets<extra>" + s[1] + "</extra>" };
}), { barmode: "group", hovermode: "closest", xaxis: cohortAxis, yaxis: { title: { text: "Wallets" } } }, c.label.length > 0);

var SEGMENT_COLORS = { all: "#1f2933", funded: COLORS[2], active: COLORS[1], value: COLORS[0], "non-value": GREY };
var curves = data.curves.filter(function (r) { return some(r.share); });
draw("chart-retention-curves", curves.map(function (r) {
  return { type: "scatter", mode: "lines+markers", name: r.segment === "all" ? "All (blended)" : r.segment,
           x: data.retention_days, y: r.share, customdata: r.wallets,
           line: { color: SEGMENT_COLORS[r.segment] || GREY, width: r.segment === "all" ? 3 : 1.5 },
           hovertemplate: "Day %{x}: %{y:.1%} of %{customdata:,} wallets<extra>" + r.segment + "</extra>" };
}), { hovermode: "closest",
      xaxis: { title: { text: "Days after activation (N)" }, type: "log", tickvals: data.retention_days,
               ticktext: data.retention_days.map(String) },
      yaxis: { title: { text: "Active on day N or later" }, tickformat: ".0%", range: [0, 1] } },
   curves.length > 0, "No wallet is a day old yet.");

var retRows = c.label.map(function (l, i) { return l + " (" + c.size[i].toLocaleString("en-US") + ")"; });
var hasRet = c.retention.some(function (row) { return some(row); });
heatmapHeight("chart-cohort-retention", retRows.length);
draw("chart-cohort-retention", [bandHeatmap({
  x: data.retention_days.map(function (n) { return "Day " + n; }), y: retRows, share: c.retention,
  hover: "Cohort %{y}<br>%{x}+: %{customdata[0]:.1f}%<extra></extra>"
})], { hovermode: "closest",
       xaxis: { type: "category", showgrid: false, zeroline: false, showline: false },
       yaxis: { type: "category", autorange: "reversed", showgrid: false, zeroline: false, showline: false,
                tickfont: { size: 10 } },
       margin: { l: 150, r: 20, t: 10, b: 40 } }, hasRet, "No cohort has a stored day 1 after its last activation yet.");

var d = data.days;
barsAndLine("chart-network-fees", d.day, d.network_fee_stx, "Network fees per day (STX)", "Fees per day (STX)",
            d.trailing_30_fee_stx, "Trailing 30 days (STX)", "Trailing 30 d (STX)", "~g", "~g");

draw("chart-rates", [
  line("Sponsored share", d.day, d.sponsored_share, COLORS[2]),
  line("Failed-transaction rate", d.day, d.failed_rate, COLORS[3])
], { xaxis: { title: { text: "Day (UTC)" } }, yaxis: { title: { text: "Share of user transactions" }, tickformat: ".0%" } },
   d.day.length > 0);

draw("chart-new-returning", [
  { type: "bar", name: "Returning", x: d.day, y: d.returning, marker: { color: COLORS[0] } },
  { type: "bar", name: "New", x: d.day, y: d.new, marker: { color: COLORS[1] } }
], { barmode: "stack", bargap: 0.1, xaxis: { title: { text: "Day (UTC)" } }, yaxis: { title: { text: "Wallets" } } },
   d.day.length > 0);

draw("chart-stx-transferred", [
  { type: "bar", name: "STX transferred", x: d.day, y: d.stx_transferred, marker: { color: COLORS[4] },
    hovertemplate: "%{x|%b %d, %Y}: %{y:,.2f} STX<extra></extra>" }
], { hovermode: "closest", showlegend: false, xaxis: { title: { text: "Day (UTC)" } },
     yaxis: { title: { text: "STX" }, tickformat: "~s" } }, d.day.length > 0);
