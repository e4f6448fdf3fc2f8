// fovea — History page: a paged table of transactions (predictions and corrections).

import { api, pct, relTime, h, blobUrl, noteModel, on, state, toast, canLabel, isAdmin, loadClasses } from './api.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;

const view = { offset: 0, rows: [], gen: 0, loaded: false };

export function initHistory() {
  $('history-prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); load(); });
  $('history-next').addEventListener('click', () => { view.offset += PAGE; load(); });
  $('history-refresh').addEventListener('click', () => load());
  $('history-filters').addEventListener('submit', (e) => { e.preventDefault(); view.offset = 0; load(); });
  $('history-filters').addEventListener('reset', () => { setTimeout(() => { view.offset = 0; load(); }, 0); });
  on('classes', (classes) => {
    $('hf-classes').replaceChildren(...classes.map((c) => h('option', { value: c.name })));
  });
  on('token', () => { if (view.loaded) render(); });
}

export function showHistory() {
  loadMerges();
  return load();
}

async function loadMerges() {
  const get = async (path) => { try { return await api(path, { quiet: true }) || []; } catch { return []; } };
  const [merges, renames, bulk, classes] =
    await Promise.all([get('/classes/merges'), get('/classes/renames'), get('/bulk'), get('/classes')]);
  // Names as they are now on the server (another person may have renamed since this page loaded).
  const current = new Map((classes.classes || []).map((c) => [c.id, c.name]));
  const undoBtn = (fn) => h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: fn }, 'Undo');
  const rows = [
    ...merges.map((m) => ({
      at: m.created_at,
      item: h('li', { dataset: { kind: 'merge' } },
        h('span', {}, `Merged “${m.from_name}” into “${m.into_name || '(gone)'}” · ${m.labels_moved} label${m.labels_moved === 1 ? '' : 's'} · ${relTime(m.created_at)}`),
        m.undone_at ? h('span', { class: 'muted small' }, ` undone ${relTime(m.undone_at)}`) : isAdmin() ? undoBtn(() => undoMerge(m)) : null),
    })),
    // A rename can be undone while the class still carries the name it gave (the newest rename of the class).
    ...renames.map((r) => ({
      at: r.created_at,
      item: h('li', { dataset: { kind: 'rename' } },
        h('span', {}, `Renamed “${r.old_name}” to “${r.new_name}” · ${relTime(r.created_at)}`),
        isAdmin() && current.get(r.class_id) === r.new_name && renames.find((x) => x.class_id === r.class_id) === r
          ? undoBtn(() => undoRename(r)) : null),
    })),
    ...bulk.map((b) => ({
      at: b.created_at,
      item: h('li', { dataset: { kind: 'bulk' } },
        h('span', {}, `Bulk ${b.kind} by ${b.user} · ${b.changed} image${b.changed === 1 ? '' : 's'} · ${relTime(b.created_at)}`),
        b.undone_at ? h('span', { class: 'muted small' }, ` undone ${relTime(b.undone_at)}`) : canLabel() ? undoBtn(() => undoBulk(b)) : null),
    })),
  ].sort((a, b) => b.at - a.at);
  $('merges-panel').hidden = !rows.length;
  $('merges-list').replaceChildren(...rows.map((r) => r.item));
}

async function undoRename(r) {
  try {
    await api(`/classes/${encodeURIComponent(r.class_id)}`, { method: 'PATCH', json: { name: r.old_name } });
    toast(`Undone: “${r.new_name}” is “${r.old_name}” again`, 'success');
    await loadClasses();
  } catch { /* toasted */ }
  loadMerges();
}

async function undoBulk(b) {
  try {
    const res = await api(`/bulk/${b.id}/undo`, { method: 'POST' });
    toast(`Undone: ${res?.restored ?? 0} image${res?.restored === 1 ? '' : 's'} restored`, 'success');
    await loadClasses();
  } catch { /* toasted */ }
  loadMerges();
}

async function undoMerge(m) {
  try {
    const res = await api(`/classes/merges/${m.id}/undo`, { method: 'POST' });
    noteModel(res?.model_version);
    toast(`Undone: “${m.from_name}” is back with its images`, 'success');
    await loadClasses();
  } catch { /* toasted */ }
  loadMerges();
}

async function load() {
  const gen = ++view.gen;
  const body = $('history-table').tBodies[0];
  $('history-table').classList.add('loading');
  try {
    const q = new URLSearchParams({ limit: PAGE, offset: view.offset });
    for (const [key, id] of [['user', 'hf-user'], ['class', 'hf-class'], ['kind', 'hf-kind'], ['since', 'hf-since'], ['until', 'hf-until']]) {
      const v = $(id).value.trim();
      if (v) q.set(key, v);
    }
    const data = await api(`/transactions?${q}`);
    if (gen !== view.gen) return;
    view.rows = Array.isArray(data?.transactions) ? data.transactions : [];
    view.total = typeof data?.total === 'number' ? data.total : null;
    if (view.offset === 0 && view.rows[0]?.model_version) noteModel(view.rows[0].model_version);
  } catch {
    if (gen !== view.gen) return;
    view.rows = [];
    body.replaceChildren(emptyRow('Could not load the history.'));
  } finally {
    if (gen === view.gen) $('history-table').classList.remove('loading');
  }
  view.loaded = true;
  render();
}

/**
 * What the model said about the image just before this correction: the newest earlier row of the same image on
 * this page (its upload prediction, or the answer logged after an earlier correction).
 */
function predictedBefore(t) {
  const i = view.rows.indexOf(t);
  for (let k = i + 1; k < view.rows.length; k++) {
    const r = view.rows[k];
    if (r.image_id === t.image_id) return (Array.isArray(r.top_k) ? r.top_k : [])[0] || null;
  }
  return null;
}

function emptyRow(text) {
  return h('tr', {}, h('td', { colspan: '9', class: 'empty-cell muted' }, text));
}

function render() {
  const body = $('history-table').tBodies[0];
  if (!view.rows.length) {
    body.replaceChildren(emptyRow(view.offset ? 'No older transactions.' : 'No transactions yet — classify an image to start.'));
  } else {
    body.replaceChildren(...view.rows.map((t) => {
      // The API names the ranked classes `top_k` (older builds: `top`).
      const ranked = Array.isArray(t.top_k) ? t.top_k : Array.isArray(t.top) ? t.top : [];
      // A correction logs the model's answer after it learned; what it said before is the image's prediction.
      const before = t.kind === 'correct' ? predictedBefore(t) : null;
      // Without the earlier row (an older page), show the logged answer and say it came after learning.
      const top1 = before || ranked[0] || null;
      const afterOnly = t.kind === 'correct' && !before && top1;
      const agreed = top1 && t.chosen_class && top1.class === t.chosen_class;
      const time = new Date(t.created_at);
      const valid = !Number.isNaN(time.getTime());
      return h('tr', { dataset: { id: t.id, kind: t.kind } },
        h('td', { class: 'nowrap' },
          h('time', { datetime: valid ? time.toISOString() : '', title: valid ? time.toLocaleString() : '' },
            relTime(t.created_at))),
        h('td', { class: 'thumb-cell' },
          t.image_id ? h('img', { src: blobUrl(t.image_id), alt: '', loading: 'lazy', width: '40', height: '40' }) : null),
        h('td', {}, h('span', { class: `kind kind-${t.kind}` }, t.kind || '')),
        h('td', { class: 'predicted' }, top1
          ? [h('span', { class: 'cls' }, top1.class), ' ', h('span', { class: 'muted small' }, pct(top1.probability)),
            afterOnly ? h('span', { class: 'muted small' }, ' (after learning)') : null]
          : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'chosen-cell' }, t.chosen_class
          ? h('span', { class: `cls chosen${agreed ? ' agreed' : top1 && !afterOnly ? ' corrected' : ''}`, title: agreed ? 'Confirmed the prediction' : top1 ? 'Corrected the prediction' : '' },
            t.chosen_class)
          : h('span', { class: 'muted' }, '—')),
        h('td', {}, t.user || '—'),
        h('td', { class: 'mono small' }, t.model_version || '—'),
        h('td', { class: 'num nowrap' }, typeof t.latency_ms === 'number' ? `${t.latency_ms.toFixed(1)} ms` : '—'),
        h('td', {}, t.kind === 'correct' && t.chosen_class && canLabel()
          ? h('button', { type: 'button', class: 'btn btn-small btn-ghost undo-label', onclick: () => undoCorrection(t) }, 'Undo')
          : null),
      );
    }));
  }
  const from = view.rows.length ? view.offset + 1 : view.offset;
  const to = view.offset + view.rows.length;
  $('history-range').textContent = view.rows.length
    ? `${from}–${to}${typeof view.total === 'number' ? ` of ${view.total}` : ''}`
    : '';
  $('history-prev').disabled = view.offset <= 0;
  $('history-next').disabled = typeof view.total === 'number' ? to >= view.total : view.rows.length < PAGE;
}

/**
 * Undo a correction from the history: when the image still carries the class it chose, relabel it to the class
 * it had before (or Unknown, which keeps it out of training). Logged as a new correction; the log keeps both.
 */
async function undoCorrection(t) {
  try {
    const detail = await api(`/images/${encodeURIComponent(t.image_id)}`);
    const labels = Array.isArray(detail?.labels) ? detail.labels : [];
    const current = labels[0];
    if (!current || current.class_name !== t.chosen_class) {
      toast(`This image is labelled ${current ? current.class_name : 'nothing'} now; nothing to undo`, 'error');
      return;
    }
    const unknown = state.classes.find((c) => c.is_unknown)?.name || 'Unknown';
    const back = current.previous_class_name || unknown;
    const res = await api(`/images/${encodeURIComponent(t.image_id)}/label`, { method: 'POST', json: { class: back } });
    noteModel(res?.model_version);
    toast(`Undone: ${t.chosen_class} → ${back}`, 'success');
    view.offset = 0;
    load();
  } catch { /* toasted */ }
}
