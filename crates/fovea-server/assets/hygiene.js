// fovea — the Hygiene page: a "second look" queue of labels the model confidently disputes (relabel or keep each
// one), duplicate groups with one-click resolution, and the split-leakage report of a training run.

import { api, h, pct, thumbUrl, canLabel, state, loadClasses, promptDialog, cardAction } from './api.js';
import { initDuplicates, showDuplicates } from './duplicates.js';
import { initLeakage, showLeakage } from './leakage.js';
import { showUnknown } from './unknown.js';

const PAGE = 30;

function secondLookCard(item, onDone) {
  const card = h('article', { class: 'look-card', dataset: { id: item.image_id } });
  const act = (fn, message) => cardAction(card, fn, message, onDone);
  const relabel = (cls) => act(
    () => api(`/images/${encodeURIComponent(item.image_id)}/label`, { method: 'POST', json: { class: cls } }),
    `Relabelled to ${cls}`);
  const keep = () => act(
    () => api(`/hygiene/label-errors/${encodeURIComponent(item.image_id)}/confirm`, { method: 'POST' }),
    `Kept ${item.given}`);
  const other = async () => {
    if (!state.classes.length) await loadClasses().catch(() => {});
    const names = state.classes.map((c) => c.name);
    const cls = await promptDialog({ title: 'Relabel to…', label: 'Class', options: names, ok: 'Relabel' });
    if (cls) relabel(cls);
  };
  card.append(
    h('img', { class: 'look-thumb thumb', src: thumbUrl(item.image_id, 192), alt: `labelled ${item.given}`,
      loading: 'lazy', tabindex: 0, title: 'Double-click for details', dataset: { id: item.image_id } }),
    h('div', { class: 'look-facts' },
      h('p', {}, 'Labelled ', h('strong', {}, item.given), h('span', { class: 'muted' }, ` ${pct(item.given_probability)}`)),
      h('p', {}, 'Model says ', h('strong', {}, item.suggested), h('span', { class: 'muted' }, ` ${pct(item.suggested_probability)}`)),
      h('p', { class: 'small muted' }, item.labelled_by === item.origin
        ? `by ${item.origin}` : `by ${item.labelled_by} (${item.origin})`)),
    h('div', { class: 'look-actions needs-annotator' },
      h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: () => relabel(item.suggested) },
        `Relabel to ${item.suggested}`),
      h('button', { type: 'button', class: 'btn btn-small', onclick: keep }, `Keep ${item.given}`),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: other }, 'Other…')));
  return card;
}

async function loadSecondLook(refresh = false) {
  const list = document.getElementById('look-list');
  const summary = document.getElementById('look-summary');
  const button = document.getElementById('look-refresh');
  button.disabled = true;
  summary.textContent = refresh ? 'Judging every label again…' : 'Loading…';
  try {
    const r = await api(`/hygiene/label-errors?limit=${PAGE}${refresh ? '&refresh=true' : ''}`);
    let open = r.total;
    const say = () => {
      summary.textContent = `${open} of ${r.checked} labels disputed by ${r.model}` +
        (r.confirmed ? ` · ${r.confirmed} kept after a second look` : '') +
        (r.labels_since ? ` · ${r.labels_since} labels since this search` : '');
    };
    say();
    const done = () => { open -= 1; say(); if (!list.children.length) loadSecondLook(); };
    list.replaceChildren(...r.items.map((item) => secondLookCard(item, done)));
    if (!r.items.length) list.append(h('p', { class: 'muted' }, 'No label is disputed: nothing needs a second look.'));
  } catch {
    summary.textContent = 'Could not load the queue.';
  } finally {
    button.disabled = !canLabel();
  }
}

export function initHygiene() {
  document.getElementById('look-refresh').addEventListener('click', () => loadSecondLook(true));
  initDuplicates();
  initLeakage();
}

export function showHygiene() {
  loadSecondLook();
  showDuplicates();
  showLeakage();
  showUnknown();
}
