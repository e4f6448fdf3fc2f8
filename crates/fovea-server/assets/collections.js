// fovea — Collections: bulk identification (uploaded files or a server folder), the results browser with
// combinable filters, bulk actions with undo, and per-class coverage.

import {
  api, state, loadClasses, canLabel, toast, toastAction, pct, h, on, thumbUrl, noteModel,
} from './api.js';

const $ = (id) => document.getElementById(id);
const PAGE = 60;
const LOOKALIKE_MARGIN = 0.2;

const view = {
  collections: [],
  collection: null,   // id, or null for all
  items: [],
  total: 0,
  offset: 0,
  selected: new Map(), // "collection:seq" -> item
  allMatching: false,  // the selection is "every result matching the filters"
  poll: 0,
  loading: 0,
};

const keyOf = (it) => `${it.collection_id}:${it.seq}`;
const best = (it) => (it.top_k || []).reduce((a, b) => (!a || b.probability > a.probability ? b : a), null);

/** The filters as query parameters (shared by listing and "select all matching"). */
function filterQuery() {
  const q = {};
  if (view.collection !== null) q.collection = view.collection;
  if ($('rf-class').value) q.class = $('rf-class').value;
  const min = $('rf-min').value; const max = $('rf-max').value;
  if (min !== '') q.min_conf = Math.min(100, Math.max(0, Number(min))) / 100;
  if (max !== '') q.max_conf = Math.min(100, Math.max(0, Number(max))) / 100;
  if ($('rf-pair').value) { q.pair = $('rf-pair').value; q.max_margin = LOOKALIKE_MARGIN; }
  if ($('rf-unknown').checked) q.unknown = true;
  if ($('rf-unlabelled').checked) q.labelled = false;
  if ($('rf-below').checked) q.below_cutoff = true;
  if ($('rf-tag').value) q.tag = $('rf-tag').value;
  if ($('rf-model').value) q.model = $('rf-model').value;
  q.sort = $('rf-sort').value;
  return q;
}

const toParams = (q) => new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)])).toString();

async function loadCollections() {
  const data = await api('/collections', { quiet: true }).catch(() => null);
  view.collections = data?.collections || [];
  renderCollections();
  // Keep polling while a folder is still being walked.
  clearTimeout(view.poll);
  if (view.collections.some((c) => c.total === null && c.job_id !== null) && !$('view-collections').hidden) {
    view.poll = setTimeout(() => { loadCollections(); loadResults(); }, 2000);
  }
}

function renderCollections() {
  $('all-collections').setAttribute('aria-pressed', view.collection === null ? 'true' : 'false');
  $('collection-list').replaceChildren(...view.collections.map((c) => {
    const running = c.total === null && c.job_id !== null;
    const frac = c.total ? c.processed / Math.max(1, c.total) : 0;
    const meta = [`${c.processed}${c.total !== null ? ` / ${c.total}` : ''} images`];
    if (c.unknown) meta.push(`${c.unknown} unknown`);
    if (c.failed) meta.push(`${c.failed} failed`);
    return h('li', {},
      h('button', {
        type: 'button', class: `scope-row collection-row${view.collection === c.id ? ' selected' : ''}`,
        'aria-pressed': view.collection === c.id ? 'true' : 'false',
        title: `${c.source}${c.model ? ` · model ${c.model}` : ''}`,
        onclick: () => { view.collection = c.id; resetSelection(); view.offset = 0; renderCollections(); refresh(); },
      },
      h('span', { class: 'collection-name' }, c.name),
      h('span', { class: 'muted small' }, running ? `identifying… ${meta[0]}` : meta.join(' · ')),
      running || c.total !== null
        ? h('span', { class: `progress${running ? ' indeterminate' : ''}`, role: 'progressbar', 'aria-valuemin': 0,
          'aria-valuemax': 100, 'aria-valuenow': running ? undefined : Math.round(frac * 100) },
        h('span', { class: 'progress-fill', style: { width: running ? '30%' : '100%' } }))
        : null));
  }));
  const current = view.collections.find((c) => c.id === view.collection);
  $('results-title').textContent = current ? current.name : 'All results';
  const running = view.collections.filter((c) => c.total === null && c.job_id !== null);
  $('results-progress').textContent = running.length
    ? `identifying: ${running.map((c) => `${c.name} ${c.processed} done`).join(', ')}` : '';
}

async function loadCoverage() {
  const staged = $('coverage-staged')?.checked;
  const rows = await api(`/coverage${staged ? '?min_staged_share=0.5' : ''}`, { quiet: true }).catch(() => []);
  $('coverage').replaceChildren(...(rows || []).map((r) => {
    const frac = Math.min(1, r.labelled / Math.max(1, r.cutoff));
    return h('div', { class: `coverage-row${r.needed ? ' short' : ''}`, role: 'listitem' },
      h('span', { class: 'coverage-class', title: r.class }, r.class),
      h('span', { class: 'coverage-count small' }, `${r.labelled} · ${r.cutoff}`),
      h('span', { class: 'progress coverage-bar', title: r.needed ? `needs ${r.needed} more labels` : 'reaches the cutoff' },
        h('span', { class: 'progress-fill', style: { width: `${Math.round(frac * 100)}%` } })),
      h('span', { class: 'coverage-extra small muted' },
        r.staged_share > 0 ? h('span', { title: 'labelled images tagged staged or synthetic' }, `${pct(r.staged_share, 0)} staged`) : null,
        r.candidates > 0
          ? h('button', {
            type: 'button', class: 'link-btn',
            title: 'Unlabelled results predicted as this class',
            onclick: () => showCandidates(r.class),
          }, `${r.candidates} waiting`)
          : null));
  }));
}

function showCandidates(cls) {
  resetFilters();
  view.collection = null;
  ensureOption($('rf-class'), cls);
  $('rf-class').value = cls;
  $('rf-unlabelled').checked = true;
  renderCollections();
  refresh();
}

function ensureOption(select, value, label = value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(new Option(label, value));
}

async function loadPairs() {
  const sel = $('rf-pair');
  const keep = sel.value;
  sel.replaceChildren(new Option('No look-alike filter', ''));
  if (view.collection === null) return;
  const pairs = await api(`/collections/${view.collection}/pairs?max_margin=${LOOKALIKE_MARGIN}`, { quiet: true }).catch(() => []);
  for (const p of pairs || []) sel.append(new Option(`${p.a} / ${p.b} (${p.count})`, `${p.a},${p.b}`));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

async function loadTags() {
  const sel = $('rf-tag');
  const keep = sel.value;
  const tags = await api('/tags', { quiet: true }).catch(() => []);
  sel.replaceChildren(new Option('Any tag', ''), ...(tags || []).map(([t, n]) => new Option(`${t} (${n})`, t)));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function renderClassOptions() {
  const sel = $('rf-class');
  const keep = sel.value;
  sel.replaceChildren(new Option('Any class', ''),
    ...state.classes.filter((c) => !c.is_unknown).map((c) => new Option(c.name, c.name)));
  ensureOption(sel, keep);
  sel.value = keep;
  $('rs-classes').replaceChildren(...state.classes.map((c) => h('option', { value: c.name })));
}

async function loadModels() {
  const sel = $('folder-model');
  const data = await api('/models', { quiet: true }).catch(() => null);
  const models = data?.models || (Array.isArray(data) ? data : []);
  sel.replaceChildren(new Option('Served model', ''),
    ...models.filter((m) => m.status !== 'training' && m.status !== 'promoted')
      .map((m) => new Option(`${m.id} (${m.kind}, ${m.status})`, m.id)));
  const filter = $('rf-model');
  const keep = filter.value;
  filter.replaceChildren(new Option('Any model', ''), ...models.map((m) => new Option(m.id, m.id)));
  ensureOption(filter, keep);
  filter.value = keep;
}

async function loadResults() {
  const gen = ++view.loading;
  $('result-grid').classList.add('loading');
  try {
    const q = { ...filterQuery(), limit: PAGE, offset: view.offset };
    const data = await api(`/results?${toParams(q)}`);
    if (gen !== view.loading) return;
    view.items = data.items || [];
    view.total = data.total || 0;
  } catch {
    if (gen !== view.loading) return;
    view.items = []; view.total = 0;
  } finally {
    if (gen === view.loading) $('result-grid').classList.remove('loading');
  }
  renderResults();
}

function renderResults() {
  const grid = $('result-grid');
  const selectable = canLabel();
  grid.setAttribute('role', 'listbox');
  grid.setAttribute('aria-multiselectable', selectable ? 'true' : 'false');
  if (!view.items.length) {
    const none = view.collections.length
      ? 'No results match these filters.'
      : 'No collections yet: identify files or a server folder to sift them here.';
    grid.replaceChildren(h('p', { class: 'grid-empty muted' }, none));
  } else {
    grid.replaceChildren(...view.items.map((it) => {
      const top = best(it);
      const second = (it.top_k || []).filter((s) => s !== top).sort((a, b) => b.probability - a.probability)[0];
      const sel = view.allMatching || view.selected.has(keyOf(it));
      const title = [it.path, top ? `${top.class} ${pct(top.probability)}` : '',
        second ? `runner-up ${second.class} ${pct(second.probability)}` : '',
        it.unknown ? 'unlike every known class' : '', it.label ? `label: ${it.label}` : 'unlabelled',
        it.tags?.length ? `tags: ${it.tags.join(', ')}` : '', it.model_version ? `model ${it.model_version}` : '']
        .filter(Boolean).join(' · ');
      return h('div', {
        class: `thumb${sel ? ' selected' : ''}${it.unknown ? ' unknown' : ''}`,
        role: 'option', tabindex: '0', 'aria-selected': sel ? 'true' : 'false', title,
        dataset: { key: keyOf(it), image: it.image_id || '' },
      },
      h('img', { src: thumbUrl(it.image_id), alt: top ? top.class : 'image', loading: 'lazy', decoding: 'async', draggable: 'false' }),
      selectable ? h('span', { class: 'check', 'aria-hidden': 'true' }, '✓') : null,
      it.label ? h('span', { class: 'thumb-label' }, it.label) : null,
      it.tags?.length ? h('span', { class: 'thumb-tags' }, it.tags.join(' ')) : null,
      h('span', { class: 'thumb-caption' },
        h('span', { class: `thumb-class${it.unknown ? ' none' : ''}` }, it.unknown ? `unknown · ${top?.class || ''}` : (top?.class || '—')),
        top ? h('span', { class: `thumb-conf${top.probability < 0.6 ? ' mismatch' : ''}` }, pct(top.probability, 0)) : null));
    }));
  }
  const from = view.total ? view.offset + 1 : 0;
  const to = view.offset + view.items.length;
  $('rg-range').textContent = view.total ? `${from}–${to} of ${view.total}` : '0 results';
  $('rg-prev').disabled = view.offset <= 0;
  $('rg-next').disabled = to >= view.total;
  syncSelection();
}

function syncSelection() {
  const n = view.allMatching ? view.total : view.selected.size;
  $('rs-count').textContent = view.allMatching ? `all ${n} matching selected` : `${n} selected`;
  $('rs-clear').disabled = n === 0;
  for (const b of document.querySelectorAll('#result-actions [data-bulk]')) b.disabled = n === 0;
}

function resetSelection() {
  view.selected.clear();
  view.allMatching = false;
}

function toggle(el) {
  if (!canLabel()) return;
  const key = el.dataset.key;
  if (view.allMatching) {
    // Leaving "all matching" for a hand-picked selection: start from the visible page.
    view.allMatching = false;
    for (const it of view.items) view.selected.set(keyOf(it), it);
  }
  if (view.selected.has(key)) view.selected.delete(key);
  else view.selected.set(key, view.items.find((it) => keyOf(it) === key));
  const on = view.selected.has(key);
  el.classList.toggle('selected', on);
  el.setAttribute('aria-selected', on ? 'true' : 'false');
  syncSelection();
}

async function runBulk(action) {
  const body = { action };
  if (action === 'relabel') {
    body.class = $('rs-class').value.trim();
    if (!body.class) { toast('Type the class to relabel to.', 'error'); $('rs-class').focus(); return; }
  }
  if (action === 'tag' || action === 'untag') {
    body.tag = $('rs-tag').value.trim();
    if (!body.tag) { toast('Type a tag, e.g. staged or synthetic.', 'error'); $('rs-tag').focus(); return; }
  }
  if (view.allMatching) body.filter = filterQuery();
  else body.items = [...view.selected.values()].map((it) => ({ collection: it.collection_id, seq: it.seq }));
  let done;
  try {
    done = await api('/bulk', { method: 'POST', json: body });
  } catch { return; }
  const verbs = { accept: 'Accepted predictions for', relabel: `Relabelled to ${body.class}:`, unknown: 'Marked Unknown:',
    tag: `Tagged ${body.tag}:`, untag: `Untagged ${body.tag}:`, discard: 'Discarded' };
  resetSelection();
  await afterChange();
  toastAction(`${verbs[action]} ${done.changed} images`, 'success', 'Undo', async () => {
    try {
      const undo = await api(`/bulk/${done.id}/undo`, { method: 'POST' });
      toast(`Undone: ${undo.restored} restored${undo.kept_newer ? `, ${undo.kept_newer} kept a newer label` : ''}`, 'success');
      await afterChange();
    } catch { /* toast shown */ }
  });
}

async function afterChange() {
  await Promise.all([loadResults(), loadCoverage(), loadTags(), loadCollections(), loadClasses().catch(() => {})]);
  fetch('/healthz').then((r) => r.json()).then((d) => noteModel(d?.model_version)).catch(() => {});
}

async function identifyFiles(files) {
  const list = [...files].filter((f) => f.type.startsWith('image/') || !f.type);
  if (!list.length) return;
  const status = $('identify-files-status');
  let created;
  try {
    created = await api('/collections', { method: 'POST', json: { name: `Uploads ${new Date().toLocaleString()}` } });
  } catch { return; }
  const id = created.collection.id;
  view.collection = id;
  let done = 0; let failed = 0;
  const next = async () => {
    while (list.length) {
      const f = list.shift();
      const form = new FormData();
      form.append('image', f, f.name);
      try {
        await api(`/collections/${id}/images?name=${encodeURIComponent(f.name)}`, { method: 'POST', form, quiet: true });
      } catch { failed += 1; }
      done += 1;
      status.textContent = `${done} / ${done + list.length} identified${failed ? `, ${failed} failed` : ''}`;
    }
  };
  status.textContent = `0 / ${list.length} identified`;
  await Promise.all([next(), next()]);
  toast(`Identified ${done - failed} files${failed ? ` (${failed} failed)` : ''}`, failed ? 'error' : 'success');
  await afterChange();
}

function resetFilters() {
  $('result-filters').reset();
  view.offset = 0;
  resetSelection();
}

function refresh() {
  view.offset = 0;
  resetSelection();
  loadPairs();
  loadResults();
}

export function initCollections() {
  $('all-collections').addEventListener('click', () => { view.collection = null; renderCollections(); refresh(); });
  $('result-filters').addEventListener('change', () => { view.offset = 0; resetSelection(); loadResults(); });
  $('result-filters').addEventListener('submit', (e) => e.preventDefault());
  $('rf-reset').addEventListener('click', () => { resetFilters(); loadResults(); });
  $('rg-prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); loadResults().then(() => $('results-title').scrollIntoView({ block: 'start' })); });
  $('rg-next').addEventListener('click', () => { view.offset += PAGE; loadResults().then(() => $('results-title').scrollIntoView({ block: 'start' })); });
  $('result-grid').addEventListener('click', (e) => { const el = e.target.closest('.thumb'); if (el) toggle(el); });
  $('result-grid').addEventListener('keydown', (e) => {
    const el = e.target.closest('.thumb');
    if (el && (e.key === ' ' || e.key === 'Enter')) { e.preventDefault(); toggle(el); }
  });
  $('rs-page').addEventListener('click', () => {
    view.allMatching = false;
    for (const it of view.items) view.selected.set(keyOf(it), it);
    renderResults();
  });
  $('rs-all').addEventListener('click', () => { view.allMatching = true; view.selected.clear(); renderResults(); });
  $('rs-clear').addEventListener('click', () => { resetSelection(); renderResults(); });
  for (const b of document.querySelectorAll('#result-actions [data-bulk]')) {
    b.addEventListener('click', () => runBulk(b.dataset.bulk));
  }
  $('identify-files').addEventListener('change', (e) => { identifyFiles(e.target.files); e.target.value = ''; });
  $('folder-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const folder = $('folder-path').value.trim();
    if (!folder) return;
    try {
      const started = await api('/collections', { method: 'POST', json: { folder, model: $('folder-model').value || null } });
      view.collection = started.collection.id;
      toast(`Identifying ${started.collection.name} in the background (job ${started.job?.id})`, 'success');
      $('folder-path').value = '';
      await loadCollections();
      refresh();
    } catch { /* toast shown */ }
  });
  on('classes', renderClassOptions);
  $('coverage-staged').addEventListener('change', loadCoverage);
}

export function showCollections() {
  renderClassOptions();
  loadCollections();
  loadCoverage();
  loadTags();
  loadModels();
  refresh();
}
