// Draws each metric's chart with Chart.js (static/chart.umd.min.js, MIT, from the npm
// registry) from the JSON the page embeds; the tables beside them stay the reference.
(function () {
  "use strict";
  var source = document.getElementById("analytics-charts");
  if (!source || typeof window.Chart === "undefined") { return; }
  var charts = JSON.parse(source.textContent);
  var palette = ["#2457d6", "#19a974", "#ff8c00", "#e7040f", "#5e2ca5", "#00a3a3", "#a463f2", "#ffb700", "#357edd", "#777777"];
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  Object.keys(charts).forEach(function (name) {
    var canvas = document.getElementById("chart-" + name);
    var spec = charts[name];
    if (!canvas || !spec.labels.length) { return; }
    var round = spec.type === "doughnut";
    new window.Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: [{ label: spec.series, data: spec.values, backgroundColor: round ? palette : palette[0], borderWidth: round ? 1 : 0 }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        indexAxis: spec.type === "bar" && spec.labels.length > 6 ? "y" : "x",
        plugins: { legend: { display: round, position: "bottom" } },
        scales: round ? {} : { x: { ticks: { autoSkip: true, maxRotation: 0 } }, y: { beginAtZero: true } }
      }
    });
  });
})();
