// Shared by the browser tests of the static reports whose charts tools/common/charts.js draws
// with uPlot (weft crawl --report, weft orders load --html): checks that every chart was drawn.
import { fail, until } from "./lib.mjs";

// want: per chart in page order, {title, series: [points per series; null: at least 2]}.
// Each chart must be a uPlot instance with those series and that many points, show pixels of
// every series' colour on its canvas (so it was drawn, not just created), and have its legend
// below the plot area. Returns per chart {title, labels, data, distr} (distr: the x scale's,
// 3 for log).
export async function checkCharts(page, want) {
  const got = await until("the charts", () => page.evaluate(() => window.__charts &&
    window.__charts.map((c) => {
      const { u } = c, cv = u.ctx.canvas;
      const px = u.ctx.getImageData(0, 0, cv.width, cv.height).data;
      const rgb = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
      const painted = c.colors.map((col) => {
        const [r, g, b] = rgb(col);
        let n = 0;
        for (let i = 0; i < px.length; i += 4)
          if (px[i + 3] > 150 && Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) +
              Math.abs(px[i + 2] - b) <= 24) n++;
        return n;
      });
      const plot = u.over.getBoundingClientRect();
      const legend = u.root.querySelector(".u-legend");
      return { title: c.title, labels: c.labels, points: c.points, painted, data: u.data,
               distr: u.scales.x.distr, plotBottom: plot.bottom,
               legendTop: legend ? legend.getBoundingClientRect().top : null };
    })));
  if (got.length !== want.length)
    fail(`${got.length} charts (${got.map((c) => c.title)}), want ${want.length}`);
  want.forEach((w, i) => {
    const c = got[i];
    if (c.title !== w.title) fail(`chart ${i + 1} is "${c.title}", want "${w.title}"`);
    if (c.points.length !== w.series.length)
      fail(`${c.title}: ${c.points.length} series, want ${w.series.length}`);
    w.series.forEach((n, k) => {
      if (n === null ? c.points[k] < 2 : c.points[k] !== n)
        fail(`${c.title}: series ${c.labels[k]} has ${c.points[k]} points, want ${n ?? "2 or more"}`);
      if (c.painted[k] < 10) fail(`${c.title}: series ${c.labels[k]} not drawn (${c.painted[k]} pixels)`);
    });
    if (c.legendTop === null || c.legendTop < c.plotBottom)
      fail(`${c.title}: the legend (top ${c.legendTop}) is not below the plot (bottom ${c.plotBottom})`);
  });
  return got;
}
