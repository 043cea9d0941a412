// The charts of weft's static HTML reports (`weft crawl --report`, `weft orders load --html`),
// drawn with the vendored uPlot. tools/common/html.c writes each chart as a <figure
// class="weft-chart"> holding its description as JSON (<script type="application/json">):
//   {title, xlabel, ylabel, logx, xmax, ymax, categories, series: [{label, color, x, y, dashed}]}
// With categories it is a bar chart (series i's y[k] is its bar in category k, null for none);
// otherwise lines, each series with its own x (joined on one x axis, gaps spanned). Text is
// inserted by uPlot as text, never as HTML. The legend sits below the plot. window.__charts
// tells the browser tests what was drawn: per chart its title, uPlot instance, series labels and
// colours, and the number of points per series.
(function () {
  "use strict";
  const drawn = (window.__charts = []);
  const fmt = (v) => v === null || v === undefined ? "-" :
    Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
  const tick = (v) => v === null ? "" : String(+v.toPrecision(4)); // null: an unlabelled tick
  const width = (fig) => Math.max(320, Math.min(900, fig.clientWidth || 640));
  // Series with their own x, joined: one sorted x array, each series null where it has no point
  // (at an x it has twice, its last point: a CDF's share answered within x).
  function join(series) {
    const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    return [xs, ...series.map((s) => {
      const ys = new Array(xs.length).fill(null);
      s.x.forEach((x, i) => { ys[at.get(x)] = s.y[i]; });
      return ys;
    })];
  }
  function draw(fig, c) {
    const bars = Array.isArray(c.categories);
    const data = bars ? [c.categories.map((_, i) => i), ...c.series.map((s) => s.y)]
                      : join(c.series);
    const barPaths = bars ? uPlot.paths.bars({ size: [0.6, 80] }) : null;
    const yRange = (_, lo, hi) => [0, c.ymax ?? (hi > 0 ? hi * 1.05 : 1)];
    const xScale = bars ? { time: false, range: [-0.5, c.categories.length - 0.5] }
      : c.logx ? { time: false, distr: 3, log: 10 }
      : { time: false, range: c.xmax ? (_, lo) => [Math.min(lo, 0), c.xmax] : undefined };
    const u = new uPlot({
      title: c.title, width: width(fig), height: 280,
      scales: { x: xScale, y: { range: yRange } },
      axes: [
        bars ? { label: c.xlabel, splits: () => data[0],
                 values: (_, v) => v.map((i) => c.categories[i] ?? "") }
             : { label: c.xlabel, values: (_, v) => v.map(tick) },
        { label: c.ylabel, size: 60, values: (_, v) => v.map(tick) },
      ],
      series: [
        { label: c.xlabel, value: (_, v) => bars ? (c.categories[v] ?? "") : fmt(v) },
        ...c.series.map((s) => ({
          label: s.label, stroke: s.color, width: s.dashed ? 1.5 : 2, spanGaps: true,
          dash: s.dashed ? [6, 6] : undefined,
          value: (_, v) => fmt(v),
          ...(bars ? { fill: s.color + "cc", paths: barPaths, points: { show: false } } : {}),
        })),
      ],
    }, data, fig);
    drawn.push({
      title: c.title, u, labels: c.series.map((s) => s.label),
      colors: c.series.map((s) => s.color),
      points: data.slice(1).map((ys) => ys.filter((v) => v !== null).length),
    });
    return u;
  }
  const charts = [];
  for (const fig of document.querySelectorAll("figure.weft-chart")) {
    const spec = fig.querySelector('script[type="application/json"]');
    if (spec) charts.push([draw(fig, JSON.parse(spec.textContent)), fig]);
  }
  window.addEventListener("resize", () => {
    for (const [u, fig] of charts) u.setSize({ width: width(fig), height: u.height });
  });
})();
