// fovea — Unknown images that fit a newer class: pictures labelled Unknown that the served model now assigns to a
// class created after they were called Unknown. Relabel them, or keep them Unknown (not offered again).

import { api, h, pct, thumbUrl, toastAction, cardAction } from './api.js';

function matchCard(m, onDone) {
  const card = h('article', { class: 'look-card' });
  const act = (fn, message) => cardAction(card, fn, message, onDone);
  card.append(
    h('img', { class: 'look-thumb thumb', src: thumbUrl(m.image_id, 192), alt: 'labelled Unknown', loading: 'lazy',
      tabindex: 0, title: 'Double-click for details', dataset: { id: m.image_id } }),
    h('div', { class: 'look-facts' },
      h('p', {}, 'Labelled ', h('strong', {}, 'Unknown')),
      h('p', {}, 'Model says ', h('strong', {}, m.class), h('span', { class: 'muted' }, ` ${pct(m.probability)}`))),
    h('div', { class: 'look-actions needs-annotator' },
      h('button', { type: 'button', class: 'btn btn-small btn-primary',
        onclick: () => act(() => api(`/images/${encodeURIComponent(m.image_id)}/label`, { method: 'POST', json: { class: m.class } }),
          `Relabelled to ${m.class}`) }, `Relabel to ${m.class}`),
      h('button', { type: 'button', class: 'btn btn-small',
        onclick: () => act(() => api(`/hygiene/label-errors/${encodeURIComponent(m.image_id)}/confirm`, { method: 'POST' }),
          'Kept Unknown') }, 'Keep Unknown')));
  return card;
}

export async function showUnknown() {
  const list = document.getElementById('unknown-list');
  const summary = document.getElementById('unknown-summary');
  try {
    const r = await api('/hygiene/unknown?limit=60');
    let open = r.items.length;
    const say = () => { summary.textContent = `${open} of ${r.unknown_images} Unknown images now fit a newer class`; };
    say();
    list.replaceChildren(...r.items.map((m) => matchCard(m, () => { open -= 1; say(); })));
  } catch {
    summary.textContent = 'Could not load the Unknown images.';
  }
}

/** After a label created `cls`: offer the Unknown images that now look like it (a moment later, after the
 * "Learned" toast has been read). */
export function offerUnknownMatches(cls) {
  setTimeout(async () => {
    const r = await api(`/hygiene/unknown?class=${encodeURIComponent(cls)}&limit=500`, { quiet: true }).catch(() => null);
    const n = r?.items?.length || 0;
    if (n) {
      toastAction(`${n} image${n === 1 ? '' : 's'} labelled Unknown now look like ${cls}`, 'info', 'Review',
        () => { location.hash = '#/hygiene'; });
    }
  }, 2500);
}
