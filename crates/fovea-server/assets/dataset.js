// fovea — Dataset page: classes with progress to the cutoff, image grid with filters, selection, bulk actions.

import {
  api, state, loadClasses, canLabel, isAdmin, toast, toastAction, pct, h, on, thumbUrl, promptDialog, noteModel,
} from './api.js';
import { createPicker, maxNameChars } from './picker.js';

const $ = (id) => document.getElementById(id);
const PAGE = 60;

const view = {
  cls: null,          // selected class name, or null for all images
  labelled: '',       // '' | 'true' | 'false'
  minConf: '',
  maxConf: '',
  offset: 0,
  total: 0,
  images: [],
  selected: new Set(),
  anchor: null,       // index of the last clicked thumbnail (for shift-click)
  loading: 0,         // request generation
};
let bulkPicker;
let bulkBusy = false;

export function initDataset() {
  $('all-images').addEventListener('click', () => selectClass(null));
  $('class-list').addEventListener('click', (e) => {
    const row = e.target.closest('.class-row');
    if (row) selectClass(row.dataset.class);
  });

  $('add-class-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('new-class-name');
    const name = input.value.trim();
    if (!name) return;
    try {
      const created = await api('/classes', { method: 'POST', json: { name } });
      input.value = '';
      toastAction(`Class “${name}” created`, 'success', 'Undo', async () => {
        try {
          await api(`/classes/${encodeURIComponent(created.id)}`, { method: 'DELETE' });
          toast(`Undone: class “${name}” removed`, 'success');
          await loadClasses();
        } catch { /* toasted */ }
      });
      await loadClasses();
    } catch { /* toasted */ }
  });

  const filters = $('filters');
  filters.addEventListener('submit', (e) => e.preventDefault());
  filters.addEventListener('change', readFilters);
  let t = 0;
  for (const id of ['min-conf', 'max-conf', 'image-search']) {
    $(id).addEventListener('input', () => { clearTimeout(t); t = setTimeout(readFilters, 350); });
  }
  $('reset-filters').addEventListener('click', () => {
    filters.querySelector('input[name=labelled][value=""]').checked = true;
    $('min-conf').value = '';
    $('max-conf').value = '';
    $('image-search').value = '';
    $('sort-images').value = 'newest';
    readFilters();
  });

  // The pager sits under the grid: a new page starts at its top, not where the old one ended.
  const toTop = () => $('grid-title').closest('.grid-panel').scrollIntoView({ block: 'start' });
  $('grid-prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); loadImages().then(toTop); });
  $('grid-next').addEventListener('click', () => { view.offset += PAGE; loadImages().then(toTop); });
  $('grid-page').addEventListener('change', () => {
    const pages = Math.max(1, Math.ceil((view.total || 0) / PAGE));
    const page = Math.min(pages, Math.max(1, parseInt($('grid-page').value, 10) || 1));
    view.offset = (page - 1) * PAGE;
    loadImages().then(toTop);
  });

  $('image-grid').addEventListener('click', onThumbClick);
  $('image-grid').addEventListener('keydown', (e) => {
    if ((e.key === ' ' || e.key === 'Enter') && e.target.classList.contains('thumb')) {
      e.preventDefault();
      onThumbClick(e);
    }
  });
  $('select-page-btn').addEventListener('click', () => {
    const all = view.images.length && view.images.every((im) => view.selected.has(im.id));
    for (const im of view.images) {
      if (all) view.selected.delete(im.id); else view.selected.add(im.id);
    }
    syncSelection();
  });
  $('clear-selection-btn').addEventListener('click', () => { view.selected.clear(); renderGrid(); });
  $('select-matching-btn').addEventListener('click', selectAllMatching);
  $('move-unknown-btn').addEventListener('click', () => {
    const unknown = state.classes.find((c) => c.is_unknown)?.name || 'Unknown';
    bulkLabel(unknown);
  });
  bulkPicker = createPicker({
    input: $('bulk-class-input'),
    list: $('bulk-class-options'),
    onChoose: (name) => bulkLabel(name),
  });

  $('rename-btn').addEventListener('click', renameClass);
  $('merge-btn').addEventListener('click', mergeClass);

  on('classes', renderClasses);
  on('me', () => { renderClasses(); syncAdmin(); syncSelection(); renderGrid(); });
  on('token', () => renderGrid());
}

export async function showDataset() {
  syncAdmin();
  syncSelection();
  try { await loadClasses(); } catch { /* toasted */ }
  await loadImages();
}

function readFilters() {
  const f = $('filters');
  view.labelled = f.querySelector('input[name=labelled]:checked')?.value || '';
  view.minConf = $('min-conf').value;
  view.maxConf = $('max-conf').value;
  view.sort = $('sort-images').value;
  view.search = $('image-search').value.trim();
  view.offset = 0;
  loadImages();
}

function selectClass(name) {
  view.cls = name || null;
  view.offset = 0;
  view.selected.clear();
  view.anchor = null;
  renderClasses();
  syncAdmin();
  loadImages();
}

function renderClasses() {
  const list = $('class-list');
  const cutoff = state.cutoff || 40;
  $('new-class-name').maxLength = maxNameChars();
  $('cutoff-note').textContent = `cutoff ${cutoff}`;
  $('all-images').classList.toggle('selected', view.cls === null);
  $('all-images').setAttribute('aria-pressed', view.cls === null ? 'true' : 'false');
  const classes = [...state.classes].sort((a, b) =>
    (a.is_unknown ? 1 : 0) - (b.is_unknown ? 1 : 0) || (b.images || 0) - (a.images || 0) || a.name.localeCompare(b.name));
  if (!classes.length) {
    list.replaceChildren(h('li', { class: 'muted small empty-note' }, 'No classes yet. Label an image on the Classify page to create one.'));
    return;
  }
  list.replaceChildren(...classes.map((c) => {
    const n = c.images || 0;
    const frac = Math.min(1, n / cutoff);
    const reached = Boolean(c.reaches_cutoff) || (!c.is_unknown && n >= cutoff);
    return h('li', {},
      h('button', {
        type: 'button',
        class: `class-row${view.cls === c.name ? ' selected' : ''}${c.is_unknown ? ' is-unknown' : ''}${reached ? ' reached' : ''}`,
        dataset: { class: c.name, id: c.id },
        'aria-pressed': view.cls === c.name ? 'true' : 'false',
      },
        h('span', { class: 'class-row-top' },
          h('span', { class: 'class-name' }, c.name),
          reached ? h('span', { class: 'badge badge-ok', title: `Has at least ${cutoff} images` }, '✓ ready') : null,
          c.is_unknown ? h('span', { class: 'badge' }, 'no training') : null,
          h('span', { class: 'class-count' }, c.is_unknown ? `${n}` : `${n} / ${cutoff}`)),
        c.is_unknown ? null : h('span', {
          class: 'progress', role: 'progressbar', 'aria-label': `${c.name}: ${n} of ${cutoff} images`,
          'aria-valuemin': '0', 'aria-valuemax': String(cutoff), 'aria-valuenow': String(Math.min(n, cutoff)),
        }, h('span', { class: 'progress-fill', style: { width: `${frac * 100}%` } })),
      ));
  }));
}

function syncAdmin() {
  const c = view.cls && state.classes.find((x) => x.name === view.cls);
  $('grid-title').textContent = view.cls ? view.cls : 'All images';
  $('class-admin').hidden = !(isAdmin() && c && !c.is_unknown);
}

/** The listing's query for the current filters (without paging). */
function filterQuery() {
  const q = new URLSearchParams();
  if (view.cls) q.set('class', view.cls);
  if (view.labelled) q.set('labelled', view.labelled);
  const min = parseFloat(view.minConf);
  const max = parseFloat(view.maxConf);
  if (!Number.isNaN(min) && min > 0) q.set('min_conf', String(Math.min(100, min) / 100));
  if (!Number.isNaN(max) && max < 100) q.set('max_conf', String(Math.max(0, max) / 100));
  if (view.sort && view.sort !== 'newest') q.set('sort', view.sort);
  if (view.search) q.set('search', view.search);
  return q;
}

/** Most images "Select all matching" takes in one go (every one is a request when labelled in bulk). */
const MAX_MATCHING = 5000;

async function selectAllMatching() {
  const total = Math.min(view.total || 0, MAX_MATCHING);
  const btn = $('select-matching-btn');
  btn.disabled = true;
  try {
    for (let offset = 0; offset < total; offset += 500) {
      const q = filterQuery();
      q.set('limit', '500');
      q.set('offset', String(offset));
      const data = await api(`/images?${q}`);
      for (const im of data?.images || []) view.selected.add(im.id);
    }
    if ((view.total || 0) > MAX_MATCHING) toast(`Selected the first ${MAX_MATCHING} of ${view.total} matching images`, 'info');
  } catch { /* toasted */ } finally {
    btn.disabled = false;
  }
  renderGrid();
}

async function loadImages() {
  const gen = ++view.loading;
  const q = filterQuery();
  q.set('limit', String(PAGE));
  q.set('offset', String(view.offset));
  $('image-grid').classList.add('loading');
  try {
    const data = await api(`/images?${q}`);
    if (gen !== view.loading) return;
    view.images = Array.isArray(data?.images) ? data.images : [];
    view.total = typeof data?.total === 'number' ? data.total : view.offset + view.images.length;
    if (!view.images.length && view.offset > 0 && view.total > 0) {
      view.offset = Math.max(0, Math.floor((view.total - 1) / PAGE) * PAGE);
      return loadImages();
    }
  } catch {
    if (gen !== view.loading) return;
    view.images = [];
    view.total = 0;
  } finally {
    if (gen === view.loading) $('image-grid').classList.remove('loading');
  }
  view.anchor = null;
  renderGrid();
}

function renderGrid() {
  const grid = $('image-grid');
  const selectable = canLabel();
  grid.setAttribute('aria-multiselectable', selectable ? 'true' : 'false');
  grid.setAttribute('role', 'listbox');
  if (!view.images.length) {
    grid.replaceChildren(h('p', { class: 'grid-empty muted' },
      view.loading ? 'No images match these filters.' : 'Loading…'));
  } else {
    grid.replaceChildren(...view.images.map((im, i) => {
      const sel = view.selected.has(im.id);
      // The served model's answer now (older servers only send the one made at upload).
      const t1 = im.model_top1 || im.top1;
      const atUpload = im.top1;
      const mismatch = im.class && t1 && t1.class !== im.class;
      const unknownLabel = im.class && state.classes.find((c) => c.is_unknown)?.name === im.class;
      return h('div', {
        class: `thumb${sel ? ' selected' : ''}`,
        role: 'option',
        tabindex: '0',
        'aria-selected': sel ? 'true' : 'false',
        dataset: { id: im.id, index: i },
        title: `${im.class ? `Label: ${im.class}` : 'Unlabelled'}${t1 ? ` · model now: ${t1.class} ${pct(t1.probability)}` : ''}`
          + `${atUpload ? ` · at upload: ${atUpload.class} ${pct(atUpload.probability)}` : ''}`,
      },
        h('img', { src: thumbUrl(im.id), alt: im.class || 'unlabelled image', loading: 'lazy', decoding: 'async', draggable: 'false' }),
        selectable ? h('span', { class: 'check', 'aria-hidden': 'true' }, '✓') : null,
        h('span', { class: 'thumb-caption' },
          h('span', { class: `thumb-class${im.class ? '' : ' none'}` }, im.class || 'unlabelled'),
          t1 ? h('span', { class: `thumb-conf${mismatch && !unknownLabel ? ' mismatch' : ''}`, title: `Model now: ${t1.class}` },
            (mismatch || !im.class) ? `${t1.class} ${pct(t1.probability, 0)}` : pct(t1.probability, 0)) : null),
      );
    }));
  }
  const from = view.total ? view.offset + 1 : 0;
  const to = view.offset + view.images.length;
  $('grid-range').textContent = view.total ? `${from}–${to} of ${view.total}` : '0 images';
  $('grid-prev').disabled = view.offset <= 0;
  $('grid-next').disabled = to >= view.total;
  $('grid-pages').textContent = String(Math.max(1, Math.ceil((view.total || 0) / PAGE)));
  $('grid-page').value = String(Math.floor(view.offset / PAGE) + 1);
  syncSelection();
}

function onThumbClick(e) {
  const el = e.target.closest('.thumb');
  if (!el || !canLabel()) return;
  const i = Number(el.dataset.index);
  const id = el.dataset.id;
  if (e.shiftKey && view.anchor !== null) {
    const [a, b] = view.anchor < i ? [view.anchor, i] : [i, view.anchor];
    for (let k = a; k <= b; k++) view.selected.add(view.images[k].id);
    window.getSelection()?.removeAllRanges();
  } else if (view.selected.has(id)) {
    view.selected.delete(id);
  } else {
    view.selected.add(id);
  }
  view.anchor = i;
  for (const t of $('image-grid').querySelectorAll('.thumb')) {
    const s = view.selected.has(t.dataset.id);
    t.classList.toggle('selected', s);
    t.setAttribute('aria-selected', s ? 'true' : 'false');
  }
  syncSelection();
}

function syncSelection() {
  const n = view.selected.size;
  const can = canLabel();
  $('selection-count').textContent = `${n} selected`;
  $('clear-selection-btn').disabled = !n;
  $('move-unknown-btn').disabled = !n || bulkBusy || !can;
  if (bulkPicker) bulkPicker.setDisabled(!n || bulkBusy || !can);
  const allOnPage = view.images.length && view.images.every((im) => view.selected.has(im.id));
  $('select-page-btn').textContent = allOnPage ? 'Unselect page' : 'Select all on page';
  $('select-page-btn').disabled = !view.images.length;
  const matching = $('select-matching-btn');
  matching.hidden = !((view.total || 0) > view.images.length);
  matching.textContent = `Select all ${Math.min(view.total || 0, MAX_MATCHING)} matching`;
}

async function bulkLabel(name) {
  const ids = [...view.selected];
  if (!ids.length || bulkBusy) return;
  bulkBusy = true;
  syncSelection();
  // What each image was before, for Undo (selected images on other pages are unknown here: left as they are).
  const before = new Map(view.images.map((im) => [im.id, im.class || null]));
  const done = [];
  let ok = 0;
  let created = false;
  const failed = [];
  for (const id of ids) {
    $('selection-count').textContent = `Labelling ${ok + failed.length + 1} / ${ids.length}…`;
    try {
      const res = await api(`/images/${encodeURIComponent(id)}/label`, { method: 'POST', json: { class: name }, quiet: true });
      noteModel(res?.model_version);
      created = created || Boolean(res?.created_class);
      ok++;
      done.push(id);
      view.selected.delete(id);
    } catch (err) {
      failed.push(err);
      if (err.status === 401 || err.status === 403 || err.status === 0) break;
    }
  }
  bulkBusy = false;
  if (failed.length) toast(`${ok} of ${ids.length} images moved to ${name}; ${failed.length} failed: ${failed[0].message}`, 'error');
  else {
    toastAction(`${ok} image${ok === 1 ? '' : 's'} labelled ${name}${created ? ' (new class)' : ''}`, 'success', 'Undo',
      () => undoBulk(done.filter((id) => before.has(id)).map((id) => [id, before.get(id)]), name));
    if (created) offerUnknownMatches(name);
  }
  try { await loadClasses(); } catch { /* toasted */ }
  await loadImages();
}

/** Put each image back to the class it had (an unlabelled one goes to Unknown: out of training). */
async function undoBulk(pairs, name) {
  const unknown = state.classes.find((c) => c.is_unknown)?.name || 'Unknown';
  let ok = 0;
  for (const [id, prev] of pairs) {
    try {
      await api(`/images/${encodeURIComponent(id)}/label`, { method: 'POST', json: { class: prev || unknown }, quiet: true });
      ok++;
    } catch { /* counted below */ }
  }
  toast(ok === pairs.length ? `Undone: ${ok} image${ok === 1 ? '' : 's'} no longer ${name}`
    : `Undo: ${ok} of ${pairs.length} images restored`, ok === pairs.length ? 'success' : 'error');
  try { await loadClasses(); } catch { /* toasted */ }
  await loadImages();
}

async function renameClass() {
  const c = state.classes.find((x) => x.name === view.cls);
  if (!c) return;
  const input = $('prompt-input');
  input.maxLength = maxNameChars();
  const name = await promptDialog({ title: `Rename “${c.name}”`, label: 'New name', value: c.name, ok: 'Rename' });
  input.removeAttribute('maxlength');
  if (!name || name === c.name) return;
  try {
    await api(`/classes/${encodeURIComponent(c.id)}`, { method: 'PATCH', json: { name } });
    const old = c.name;
    toastAction(`Renamed “${old}” to “${name}”`, 'success', 'Undo', async () => {
      try {
        await api(`/classes/${encodeURIComponent(c.id)}`, { method: 'PATCH', json: { name: old } });
        toast(`Undone: “${name}” is “${old}” again`, 'success');
        view.cls = old;
        await loadClasses();
        syncAdmin();
        await loadImages();
      } catch { /* toasted */ }
    });
    view.cls = name;
    await loadClasses();
    syncAdmin();
    await loadImages();
  } catch { /* toasted */ }
}

async function mergeClass() {
  const c = state.classes.find((x) => x.name === view.cls);
  if (!c) return;
  const others = state.classes.filter((x) => x.name !== c.name).map((x) => x.name);
  if (!others.length) { toast('There is no other class to merge into.'); return; }
  const into = await promptDialog({
    title: `Merge “${c.name}”`,
    text: `All ${c.images || 0} images of “${c.name}” move to the chosen class and “${c.name}” is removed.`,
    label: 'Merge into',
    options: others,
    ok: 'Merge',
  });
  if (!into) return;
  try {
    const res = await api(`/classes/${encodeURIComponent(c.id)}/merge`, { method: 'POST', json: { into } });
    noteModel(res?.model_version);
    const from = c.name;
    toastAction(`Merged “${from}” into “${into}” (${res?.labels_moved ?? 0} labels moved)`, 'success', 'Undo', async () => {
      try {
        const back = await api(`/classes/merges/${encodeURIComponent(res.merge_id)}/undo`, { method: 'POST' });
        noteModel(back?.model_version);
        toast(`Undone: “${from}” is back with its images`, 'success');
        view.cls = from;
        await loadClasses();
        syncAdmin();
        await loadImages();
      } catch { /* toasted */ }
    });
    view.cls = into;
    await loadClasses();
    syncAdmin();
    await loadImages();
  } catch { /* toasted */ }
}
