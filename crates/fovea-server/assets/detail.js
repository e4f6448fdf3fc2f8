// fovea — image detail: the picture larger, its label history, what the models said, tags, and the answer now.

import { api, h, pct, relTime, thumbUrl } from './api.js';

/** Opens the detail dialog for one image (double-click a thumbnail, or press I on it). */
export async function showDetail(imageId) {
  const dialog = document.getElementById('detail-dialog');
  const body = document.getElementById('detail-body');
  if (!dialog || !imageId) return;
  body.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  if (!dialog.open) dialog.showModal();
  let d;
  try {
    d = await api(`/images/${encodeURIComponent(imageId)}`);
  } catch {
    dialog.close();
    return;
  }
  const label = d.labels[0];
  const best = (t) => (t.top_k || []).reduce((a, b) => (!a || b.probability > a.probability ? b : a), null);
  body.replaceChildren(
    h('div', { class: 'detail-layout' },
      h('img', { class: 'detail-image', src: thumbUrl(d.id, 384), alt: label ? label.class_name : 'image' }),
      h('div', { class: 'detail-facts' },
        h('p', {}, h('strong', {}, label ? label.class_name : 'Unlabelled'),
          d.now ? h('span', { class: 'muted' }, ` · model now: ${d.now.class} ${pct(d.now.probability)}`) : null),
        h('p', { class: 'small muted' }, `${d.width} × ${d.height} ${d.format} · ${d.split} · ${d.source}`),
        d.tags.length ? h('p', { class: 'small' }, 'Tags: ', ...d.tags.map((t) => h('span', { class: 'chip chip-tag' }, t))) : null,
        h('p', { class: 'small muted mono' }, d.id))),
    h('h3', {}, 'Labels'),
    d.labels.length
      ? h('ol', { class: 'detail-list' }, ...d.labels.map((l) => h('li', {},
        h('strong', {}, l.class_name),
        l.previous_class_name ? ` (was ${l.previous_class_name})` : '',
        h('span', { class: 'muted small' }, ` · ${l.user} · ${l.origin} · ${relTime(l.created_at)}`))))
      : h('p', { class: 'muted small' }, 'No label yet.'),
    h('h3', {}, 'Predictions and corrections'),
    d.transactions.length
      ? h('ol', { class: 'detail-list' }, ...d.transactions.map((t) => {
        const b = best(t);
        return h('li', {},
          t.kind === 'correct' ? h('strong', {}, `corrected to ${t.chosen_class}`) : `predicted ${b ? `${b.class} ${pct(b.probability)}` : 'nothing'}`,
          h('span', { class: 'muted small' }, ` · ${t.model_version} · ${t.user} · ${relTime(t.created_at)}`));
      }))
      : h('p', { class: 'muted small' }, 'Never classified.'),
    h('h3', {}, 'Near duplicates'),
    h('div', { id: 'detail-dups', class: 'small muted' }, 'Looking…'),
  );
  showDuplicates(d.id);
}

/** The image's duplicate group (same pixels, or a near copy), from the Hygiene report; each opens in turn. */
async function showDuplicates(imageId) {
  let groups = [];
  try { groups = (await api('/hygiene/duplicates', { quiet: true }))?.groups || []; } catch { /* shown below */ }
  const box = document.getElementById('detail-dups');
  if (!box) return;
  const group = groups.find((g) => g.members.some((m) => m.image_id === imageId));
  const others = group ? group.members.filter((m) => m.image_id !== imageId) : [];
  if (!others.length) {
    box.textContent = 'None found.';
    return;
  }
  box.replaceChildren(
    h('p', {}, `${group.kind === 'exact' ? 'Same pixels' : 'Near copies'}${group.conflict ? ` with conflicting labels (${group.labels.join(', ')})` : ''}:`),
    h('div', { class: 'detail-dups' }, ...others.map((m) => h('button', {
      type: 'button', class: 'detail-dup', title: `${m.label || 'unlabelled'} · ${m.split} · ${m.source}`,
      onclick: () => showDetail(m.image_id),
    }, h('img', { src: thumbUrl(m.image_id, 96), alt: m.label || 'unlabelled', width: 64, height: 64, dataset: { image: m.image_id } }),
    h('span', {}, m.label || 'unlabelled')))));
}

export function initDetail() {
  const dialog = document.getElementById('detail-dialog');
  document.getElementById('detail-close')?.addEventListener('click', () => dialog.close());
  // Any grid: double-click a thumbnail, or press I while it has the focus.
  const open = (el) => {
    const id = el?.dataset.id || el?.dataset.image;
    if (id) showDetail(id);
  };
  document.addEventListener('dblclick', (e) => open(e.target.closest('.thumb')));
  document.addEventListener('keydown', (e) => {
    if ((e.key === 'i' || e.key === 'I') && !e.ctrlKey && !e.metaKey && e.target.classList?.contains('thumb')) {
      e.preventDefault();
      open(e.target);
    }
  });
}
