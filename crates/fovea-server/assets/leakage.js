// fovea — split leakage on the Hygiene page: near-duplicate groups a training run put in different splits. A
// benchmark image with a copy in the training data fails the run's gate and blocks its promotion.

import { api, h } from './api.js';

async function loadRuns(select) {
  const data = await api('/models', { quiet: true }).catch(() => null);
  const runs = (data?.models || data || []).filter((m) => m.metrics && m.metrics.leakage);
  const chosen = select.value;
  select.replaceChildren(new Option('Newest run', ''), ...runs.map((m) => new Option(m.id, m.id)));
  if (runs.some((m) => m.id === chosen)) select.value = chosen;
}

async function showReport(select) {
  const out = document.getElementById('leak-report');
  const model = select.value;
  try {
    const r = await api(`/hygiene/leakage${model ? `?model=${encodeURIComponent(model)}` : ''}`, { quiet: true });
    const verdict = r.benchmark_leaked
      ? h('p', { class: 'leak-verdict blocked' },
        `${r.model}: blocked — ${r.benchmark_images_leaked} benchmark images have a near duplicate in the training data`)
      : h('p', { class: 'leak-verdict' }, `${r.model}: the benchmark did not leak into the training data`);
    const rows = r.groups.flatMap((g) => g.members.map((m, i) => h('tr', { class: g.benchmark_leaked ? 'leaked' : '' },
      h('td', {}, i === 0 ? g.splits.join(' + ') : ''),
      h('td', { class: 'mono small' }, m.image_id.slice(0, 16)),
      h('td', {}, m.split),
      h('td', {}, m.label))));
    out.replaceChildren(verdict,
      h('p', { class: 'small muted' }, `${r.images} images in its splits · ${r.groups.length} groups cross splits`),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Splits'), h('th', {}, 'Image'), h('th', {}, 'Split'), h('th', {}, 'Label'))),
        h('tbody', {}, ...rows))) : null);
  } catch (err) {
    out.replaceChildren(h('p', { class: 'muted' }, err.status === 404
      ? 'No training run has a leakage report yet: it is made when a fine-tune run draws its splits.'
      : `Could not load the report: ${err.message}`));
  }
}

export function initLeakage() {
  const select = document.getElementById('leak-model');
  select.addEventListener('change', () => showReport(select));
}

export async function showLeakage() {
  const select = document.getElementById('leak-model');
  await loadRuns(select);
  await showReport(select);
}
