// fovea — a small inline SVG line chart of a training run: train loss (left axis) and validation accuracy
// (right axis, 0–100 %) per epoch. No libraries; colours come from style.css.

const NS = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 210;
const PAD = { left: 44, right: 46, top: 14, bottom: 34 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmtLoss = (v) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));

/**
 * points: [{epoch, loss, acc}] (acc 0..1 or null), epochs: planned epoch count (the x axis spans it).
 * Returns an <svg> element with an accessible summary.
 */
export function curveChart(points, epochs) {
  const last = points.length ? points[points.length - 1] : null;
  const maxEpoch = Math.max(2, epochs || 0, last ? last.epoch : 0);
  const maxLoss = niceMax(Math.max(0, ...points.map((p) => p.loss).filter(Number.isFinite)) * 1.05);
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const x = (e) => PAD.left + ((e - 1) / (maxEpoch - 1)) * iw;
  const yLoss = (v) => PAD.top + ih - (Math.min(v, maxLoss) / maxLoss) * ih;
  const yAcc = (v) => PAD.top + ih - v * ih;

  const summary = last
    ? `Epoch ${last.epoch} of ${maxEpoch}: train loss ${fmtLoss(last.loss)}`
      + (last.acc != null ? `, validation accuracy ${(last.acc * 100).toFixed(1)}%` : '')
    : 'No finished epoch yet';
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'curve-chart', role: 'img', 'aria-label': summary },
    svg('title', {}, summary));

  // Grid and axes: four bands; loss on the left, accuracy on the right.
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + (ih * i) / 4;
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: i === 4 ? 'chart-axis' : 'chart-grid' }));
    root.append(svg('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-tick chart-tick-loss' },
      fmtLoss(maxLoss * (1 - i / 4))));
    root.append(svg('text', { x: W - PAD.right + 6, y: y + 4, class: 'chart-tick chart-tick-acc' },
      `${100 - i * 25}%`));
  }
  const step = Math.max(1, Math.ceil(maxEpoch / 12));
  for (let e = 1; e <= maxEpoch; e += step) {
    root.append(svg('text', { x: x(e), y: H - PAD.bottom + 15, 'text-anchor': 'middle', class: 'chart-tick' }, e));
  }
  root.append(svg('text', { x: PAD.left + iw / 2, y: H - 2, 'text-anchor': 'middle', class: 'chart-tick' }, 'epoch'));

  const series = (cls, pts, y, label, fmt) => {
    if (!pts.length) return;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.epoch).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
    root.append(svg('path', { d, class: `chart-line ${cls}` }));
    for (const p of pts) {
      root.append(svg('circle', { cx: x(p.epoch), cy: y(p.v), r: 3.5, class: `chart-dot ${cls}` },
        svg('title', {}, `epoch ${p.epoch}: ${label} ${fmt(p.v)}`)));
    }
  };
  series('chart-loss', points.filter((p) => Number.isFinite(p.loss)).map((p) => ({ epoch: p.epoch, v: p.loss })),
    yLoss, 'train loss', fmtLoss);
  series('chart-acc', points.filter((p) => Number.isFinite(p.acc)).map((p) => ({ epoch: p.epoch, v: p.acc })),
    yAcc, 'validation accuracy', (v) => `${(v * 100).toFixed(1)}%`);
  if (!points.length) {
    root.append(svg('text', { x: PAD.left + iw / 2, y: PAD.top + ih / 2, 'text-anchor': 'middle', class: 'chart-empty' },
      'The curve appears after the first epoch.'));
  }
  return root;
}

/** The chart with its legend, ready to insert. */
export function curveFigure(points, epochs) {
  const fig = document.createElement('figure');
  fig.className = 'curve';
  const legend = document.createElement('figcaption');
  legend.className = 'curve-legend';
  legend.innerHTML = '<span class="key key-loss"></span>train loss <span class="key key-acc"></span>validation accuracy';
  fig.append(curveChart(points, epochs), legend);
  return fig;
}
