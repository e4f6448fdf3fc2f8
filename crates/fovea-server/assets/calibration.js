// fovea — the served head's calibration on the Models page: the reliability diagram and the evidence behind it.

import { pct, relTime, h } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** Bars of accuracy per confidence bin against the diagonal a calibrated model follows. */
function reliabilityDiagram(bins) {
  const size = 160;
  const pad = 18;
  const scale = (v) => pad + v * (size - pad);
  const y = (v) => size - scale(v) + pad / 2;
  const chart = svg('svg', { viewBox: `0 0 ${size + 4} ${size + 4}`, class: 'reliability', role: 'img',
    'aria-label': 'Reliability diagram: accuracy per confidence bin' });
  chart.append(svg('line', { x1: scale(0), y1: y(0), x2: scale(1), y2: y(1), class: 'diagonal' }));
  const used = bins.filter((b) => b.count > 0);
  for (const b of used) {
    const x = scale(b.lower);
    const w = Math.max(1, scale(b.upper) - x - 1);
    const bar = svg('rect', { x, y: y(b.accuracy), width: w, height: Math.max(0, y(0) - y(b.accuracy)), class: 'bin' });
    bar.append(svg('title', {}, `confidence ${pct(b.confidence)} · right ${pct(b.accuracy)} · ${b.count} images`));
    chart.append(bar);
  }
  chart.append(svg('text', { x: scale(0), y: size + 2, class: 'axis' }, 'confidence →'));
  return chart;
}

/** The panel's contents for `report` (the API's CalibrationReport), or a note when there is none yet. */
export function calibrationView(report) {
  if (!report) {
    return [h('p', { class: 'muted small' }, 'No calibration yet: label a few images of at least one class twice.')];
  }
  const fitted = report.source === 'leave-one-out';
  const facts = [
    ['held-out predictions', String(report.samples)],
    ['leave-one-out accuracy', pct(report.accuracy)],
    ['calibration error (ECE)', `${pct(report.ece_before)} → ${pct(report.ece_after)}`],
    ['wrong answers above 99 %', `${pct(report.wrong_above_99_before)} → ${pct(report.wrong_above_99_after)}`],
    ['temperature', report.temperature.toFixed(2)],
    ['known images called unknown', pct(report.false_unknown_rate)],
  ];
  if (report.live) {
    facts.push(['recent answers checked by a label', `${report.live.samples}, ECE ${pct(report.live.ece)}`]);
  }
  return [
    h('p', { class: 'muted small' }, fitted
      ? `Fitted ${relTime(report.fitted_at)} on leave-one-out predictions of the labelled images.`
      : `Little evidence yet (${report.samples} of 20 held-out predictions): the temperature starts from a prior of 30 and `
        + 'moves towards what these predictions say as labels arrive; the unknown threshold is fixed.'),
    h('div', { class: 'calibration-body' },
      reliabilityDiagram(report.reliability || []),
      h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)]))),
  ];
}
