// fovea — duplicate groups on the Hygiene page, each resolved in one click: keep one (the other copies go to
// Unknown: kept, never trained on), keep all (not shown again), or discard all. Moves to Unknown can be undone.

import { api, h, thumbUrl, toast, toastAction } from './api.js';

function memberCard(m, onKeep) {
  return h('div', { class: 'dup-member' },
    h('img', { class: 'thumb', src: thumbUrl(m.image_id, 192), alt: m.label || 'unlabelled', loading: 'lazy',
      tabindex: 0, title: 'Double-click for details', dataset: { id: m.image_id } }),
    h('span', {}, m.label ? h('strong', {}, m.label) : h('span', { class: 'muted' }, 'unlabelled')),
    h('span', { class: 'muted small' }, `${m.width}×${m.height} · ${m.split}`),
    h('button', { type: 'button', class: 'btn btn-small needs-annotator', onclick: () => onKeep(m.image_id) }, 'Keep this one'));
}

function groupCard(g, onDone) {
  const images = g.members.map((m) => m.image_id);
  const card = h('article', { class: `dup-group${g.conflict ? ' conflict' : ''}` });
  const resolve = async (body, message) => {
    for (const b of card.querySelectorAll('button')) b.disabled = true;
    try {
      const done = await api('/hygiene/duplicates/resolve', { method: 'POST', json: { ...body, images } });
      card.remove();
      onDone();
      if (done.bulk) {
        toastAction(message, 'success', 'Undo', async () => {
          await api(`/bulk/${done.bulk.id}/undo`, { method: 'POST' });
          toast('Undone', 'success');
          showDuplicates();
        });
      } else {
        toast(message, 'success');
      }
    } catch {
      for (const b of card.querySelectorAll('button')) b.disabled = false;
    }
  };
  const keepOne = (id) => resolve({ action: 'keep_one', keep: id }, `Kept one; ${images.length - 1} copies moved to Unknown`);
  card.append(
    h('div', { class: 'dup-head' },
      h('strong', {}, `${g.kind === 'exact' ? 'Same pixels' : 'Near copies'} · ${g.members.length} images`),
      g.conflict ? h('span', { class: 'chip chip-warn' }, `Conflicting labels: ${g.labels.join(' vs ')}`) : null,
      h('span', { class: 'needs-annotator' },
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => resolve({ action: 'keep_all' }, 'Kept as a group') },
          'Keep all as a group'), ' ',
        h('button', { type: 'button', class: 'btn btn-small btn-ghost',
          onclick: () => resolve({ action: 'discard' }, `${images.length} images moved to Unknown`) }, 'Discard all'))),
    h('div', { class: 'dup-members' }, ...g.members.map((m) => memberCard(m, keepOne))));
  return card;
}

export async function showDuplicates() {
  const list = document.getElementById('dup-list');
  const summary = document.getElementById('dup-summary');
  summary.textContent = 'Comparing images…';
  try {
    const r = await api('/hygiene/duplicates');
    let open = r.groups.length;
    const say = () => {
      const conflicts = r.groups.filter((g) => g.conflict).length;
      summary.textContent = `${open} duplicate groups among ${r.images} images` +
        (conflicts ? ` · ${conflicts} with conflicting labels` : '') + (r.kept ? ` · ${r.kept} kept as groups` : '');
    };
    say();
    list.replaceChildren(...r.groups.map((g) => groupCard(g, () => { open -= 1; say(); })));
    if (!r.groups.length) list.append(h('p', { class: 'muted' }, 'No duplicates found.'));
  } catch {
    summary.textContent = 'Could not compare images.';
  }
}

export function initDuplicates() {
  document.getElementById('dup-refresh').addEventListener('click', showDuplicates);
}
