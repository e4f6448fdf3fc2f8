// fovea — Classify page: upload / paste / drop, top-k bars, confirm or correct, learn feedback.

import { api, state, noteModel, loadClasses, canLabel, toast, pct, h, on } from './api.js';
import { createPicker } from './picker.js';

const $ = (id) => document.getElementById(id);
const RECENT_MAX = 12;

let current = null;   // {image_id, top, unknown, model_version, latency_ms, width, height, url, name, chosen}
let busy = false;
let labelling = false;
const recent = [];    // same shape as current
let picker;

export function initClassify() {
  const drop = $('drop-zone');
  const fileInput = $('file-input');

  fileInput.addEventListener('change', () => {
    const f = fileInput.files && fileInput.files[0];
    if (f) classifyFile(f);
    fileInput.value = '';
  });

  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); fileInput.click(); }
  });
  let depth = 0;
  drop.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; drop.classList.add('dragging'); });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; });
  drop.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; drop.classList.remove('dragging'); } });
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    const f = firstImage(e.dataTransfer?.files);
    if (f) classifyFile(f);
    else toast('That is not an image file.', 'error');
  });
  // Dropping outside the zone should not navigate away from the app.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  document.addEventListener('paste', (e) => {
    const f = firstImage(e.clipboardData?.files) || fileFromItems(e.clipboardData?.items);
    if (!f) return;  // let text paste into inputs normally
    e.preventDefault();
    if (!location.hash.startsWith('#/classify')) location.hash = '#/classify';
    classifyFile(f);
  });

  picker = createPicker({
    input: $('class-input'),
    list: $('class-options'),
    onChoose: (name) => labelCurrent(name),
    onEmptyEnter: () => confirmTop(),
    suggest: () => (current?.top || []).map((t) => t.class),
  });

  $('confirm-btn').addEventListener('click', confirmTop);
  $('unknown-btn').addEventListener('click', () => labelCurrent(unknownName()));
  $('predictions').addEventListener('click', (e) => {
    const row = e.target.closest('button.prediction');
    if (row && !labelling) labelCurrent(row.dataset.class);
  });

  document.addEventListener('keydown', onKey);
  on('me', syncControls);
  syncControls();
}

export function showClassify() {
  syncControls();
}

function firstImage(files) {
  if (!files) return null;
  for (const f of files) if (f.type.startsWith('image/') || /\.(jpe?g|png|gif|webp|bmp|tiff?|avif|heic)$/i.test(f.name)) return f;
  return null;
}

function fileFromItems(items) {
  if (!items) return null;
  for (const it of items) {
    if (it.kind === 'file' && it.type.startsWith('image/')) {
      const f = it.getAsFile();
      if (f) return f;
    }
  }
  return null;
}

function unknownName() {
  return state.classes.find((c) => c.is_unknown)?.name || 'Unknown';
}

function isTyping(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

function onKey(e) {
  if (!location.hash.startsWith('#/classify') && location.hash !== '' && location.hash !== '#/') return;
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  if (document.querySelector('dialog[open]')) return;
  const typing = isTyping(document.activeElement);
  if (e.key === 'Escape') {
    if (!typing) { picker.clear(); picker.close(); }
    return;
  }
  if (typing) return;
  if (e.key === '/') {
    e.preventDefault();
    picker.focus();
    return;
  }
  if (!canLabel() || !current) return;
  if (/^[1-5]$/.test(e.key)) {
    const t = current.top[Number(e.key) - 1];
    if (t) { e.preventDefault(); labelCurrent(t.class); }
  } else if (e.key === 'u' || e.key === 'U') {
    e.preventDefault();
    labelCurrent(unknownName());
  }
}

function syncControls() {
  const can = canLabel();
  const has = Boolean(current) && !busy && !labelling;
  $('confirm-btn').disabled = !can || !has || !current?.top?.length;
  $('unknown-btn').disabled = !can || !has;
  if (picker) picker.setDisabled(!can || !has);
  const top = current?.top?.[0];
  $('confirm-btn').textContent = top ? `✓ Correct — ${top.class}` : '✓ Correct';
  renderPredictions(current?.top || [], { animate: false, keepFlash: true });
}

function setBusy(b) {
  busy = b;
  $('drop-zone').classList.toggle('busy', b);
  $('drop-zone').setAttribute('aria-busy', b ? 'true' : 'false');
  syncControls();
}

async function classifyFile(file) {
  if (busy) { toast('Still classifying the previous image…'); return; }
  const url = URL.createObjectURL(file);
  const preview = $('preview');
  preview.src = url;
  preview.hidden = false;
  $('drop-zone').classList.add('has-image');
  $('image-meta').textContent = `${file.name || 'pasted image'} · ${formatBytes(file.size)}`;
  $('learned').hidden = true;
  setBusy(true);
  const form = new FormData();
  form.append('image', file, file.name || 'pasted.png');
  try {
    const res = await api('/classify', { method: 'POST', form });
    noteModel(res.model_version);
    current = {
      image_id: res.image_id,
      transaction_id: res.transaction_id,
      top: Array.isArray(res.top) ? res.top : [],
      unknown: Boolean(res.unknown),
      model_version: res.model_version,
      latency_ms: res.latency_ms,
      width: res.width,
      height: res.height,
      url,
      name: file.name || 'pasted image',
      chosen: null,
    };
    addRecent(current);
    showCurrent({ animate: true });
    if (!current.top.length && canLabel()) picker.focus();
  } catch {
    current = null;
    $('result-empty').hidden = false;
    $('unknown-note').hidden = true;
    renderPredictions([]);
  } finally {
    setBusy(false);
  }
}

function showCurrent({ animate = false } = {}) {
  if (!current) return;
  const c = current;
  $('preview').src = c.url;
  $('preview').hidden = false;
  $('drop-zone').classList.add('has-image');
  const dims = c.width && c.height ? `${c.width}×${c.height}` : '';
  $('image-meta').textContent = [c.name, dims, 'drop or paste another to replace'].filter(Boolean).join(' · ');
  const meta = [];
  if (c.model_version) meta.push(c.model_version);
  if (typeof c.latency_ms === 'number') meta.push(`${c.latency_ms.toFixed(1)} ms`);
  $('result-meta').textContent = meta.join(' · ');
  $('result-empty').hidden = true;
  $('unknown-note').hidden = c.top.length > 0;
  $('unknown-note').textContent = c.top.length
    ? ''
    : (state.classes.some((x) => !x.is_unknown)
      ? 'The model is not confident about any class — name this image to teach it.'
      : 'The model knows no classes yet — name this image to teach it.');
  $('learned').hidden = true;
  syncControls();
  renderPredictions(c.top, { animate, unknown: c.unknown });
  if (c.chosen) showChosen(c.chosen);
}

/** Render the bars. `before` maps class → previous probability for the before → after display. */
function renderPredictions(top, { animate = false, before = null, flash = null, unknown = false, keepFlash = false } = {}) {
  const box = $('predictions');
  if (keepFlash && box.dataset.sig === signature(top)) return;
  box.dataset.sig = signature(top);
  const interactive = canLabel() && Boolean(current);
  box.replaceChildren(...top.slice(0, 10).map((t, i) => {
    const p = Math.max(0, Math.min(1, Number(t.probability) || 0));
    const tag = interactive ? 'button' : 'div';
    const prev = before && t.class in before ? before[t.class] : null;
    const fill = h('span', { class: 'bar-fill', style: { width: `${p * 100}%` } });
    // Bars grow from 0 on a new prediction, and from their old value after learning.
    if (animate || before) fill.style.setProperty('--from', `${(animate ? 0 : prev ?? 0) * 100}%`);
    const row = h(tag, {
      class: `prediction${i === 0 ? ' top' : ''}${t.class === flash ? ' flash' : ''}${i === 0 && unknown ? ' uncertain' : ''}${animate || before ? ' grow' : ''}`,
      role: 'listitem',
      type: interactive ? 'button' : null,
      title: interactive ? `Label as ${t.class}${i < 5 ? ` (${i + 1})` : ''}` : null,
      dataset: { class: t.class },
    },
      h('span', { class: 'rank', 'aria-hidden': 'true' }, i < 5 ? String(i + 1) : ''),
      h('span', { class: 'pred-name' }, t.class),
      h('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill),
      h('span', { class: 'pred-pct' },
        prev !== null && t.class === flash ? h('span', { class: 'pct-before' }, `${pct(prev)} → `) : null,
        pct(p)),
    );
    return row;
  }));
}

function signature(top) {
  return (top || []).map((t) => `${t.class}:${t.probability}`).join('|') + (canLabel() ? '+' : '-');
}

function confirmTop() {
  const t = current?.top?.[0];
  if (!t) {
    if (current) { toast('Nothing to confirm — type the right class.', 'info'); picker.focus(); }
    return;
  }
  labelCurrent(t.class);
}

async function labelCurrent(name) {
  if (!current || labelling || !name || !canLabel()) return;
  const item = current;
  const beforeTop = item.top;
  const before = Object.fromEntries(beforeTop.map((t) => [t.class, t.probability]));
  labelling = true;
  syncControls();
  try {
    const res = await api(`/images/${encodeURIComponent(item.image_id)}/label`, { method: 'POST', json: { class: name } });
    const chosen = res?.class || name;
    noteModel(res?.model_version);
    const pred = res?.prediction;
    if (pred && Array.isArray(pred.top)) {
      item.top = pred.top;
      item.unknown = Boolean(pred.unknown);
    }
    if (res?.model_version) item.model_version = res.model_version;
    item.chosen = chosen;
    const wasBefore = before[chosen] ?? 0;
    const after = item.top.find((t) => t.class === chosen)?.probability;
    const isUnknown = chosen === unknownName();
    if (isUnknown) {
      toast(`Kept as ${chosen} — not used for training`, 'success');
    } else {
      const created = res?.created_class ? ' (new class)' : '';
      toast(`Learned: ${chosen}${created} — model ${res?.model_version || item.model_version || ''}`.trim(), 'success');
    }
    if (item === current) {
      labelling = false;
      showCurrent();
      renderPredictions(item.top, { animate: false, before, flash: chosen, unknown: item.unknown });
      showLearned(chosen, wasBefore, after, isUnknown, Boolean(res?.created_class));
    }
    renderRecent();
    if (res?.created_class || !state.classes.some((c) => c.name === chosen)) await loadClasses().catch(() => {});
    else bumpCount(chosen);
  } catch {
    /* toast already shown */
  } finally {
    labelling = false;
    syncControls();
  }
}

function bumpCount(name) {
  const c = state.classes.find((x) => x.name === name);
  if (c) c.images = (c.images || 0) + 1;
}

function showChosen(name) {
  const el = $('learned');
  if (!el.hidden) return;
  el.hidden = false;
  el.className = 'learned';
  el.replaceChildren(h('span', { class: 'learned-icon', 'aria-hidden': 'true' }, '✓'), h('span', {}, 'Labelled as '), h('strong', {}, name));
}

function showLearned(name, before, after, isUnknown, created) {
  const el = $('learned');
  el.hidden = false;
  el.className = 'learned pulse';
  void el.offsetWidth; // restart the animation
  el.classList.add('pulse');
  if (isUnknown) {
    el.replaceChildren(h('span', { class: 'learned-icon', 'aria-hidden': 'true' }, '✓'),
      h('span', {}, 'Kept as '), h('strong', {}, name), h('span', { class: 'muted' }, ' — no training'));
    return;
  }
  el.replaceChildren(
    h('span', { class: 'learned-icon', 'aria-hidden': 'true' }, '✓'),
    h('span', {}, created ? 'New class ' : 'Learned '),
    h('strong', {}, name),
    h('span', { class: 'delta' },
      h('span', { class: 'delta-before' }, pct(before)),
      h('span', { 'aria-hidden': 'true' }, ' → '),
      h('span', { class: 'visually-hidden' }, ' now '),
      h('span', { class: 'delta-after' }, typeof after === 'number' ? pct(after) : '—')),
  );
}

function addRecent(item) {
  recent.unshift(item);
  while (recent.length > RECENT_MAX) {
    const old = recent.pop();
    if (old.url && old !== current) URL.revokeObjectURL(old.url);
  }
  renderRecent();
}

function renderRecent() {
  const strip = $('recent-strip');
  $('recent-count').textContent = recent.length ? `${recent.length} image${recent.length === 1 ? '' : 's'}` : '';
  if (!recent.length) return;
  strip.replaceChildren(...recent.map((r) => {
    const top = r.top?.[0];
    const label = r.chosen || top?.class || 'unknown';
    return h('li', {},
      h('button', {
        type: 'button',
        class: `recent-item${r === current ? ' current' : ''}${r.chosen ? ' labelled' : ''}`,
        title: `${r.name} — ${r.chosen ? `labelled ${r.chosen}` : top ? `${top.class} ${pct(top.probability)}` : 'no prediction'}`,
        dataset: { id: r.image_id },
        onclick: () => { current = r; showCurrent(); renderRecent(); },
      },
        h('img', { src: r.url, alt: '', loading: 'lazy' }),
        h('span', { class: 'recent-label' }, r.chosen ? `✓ ${label}` : label),
      ));
  }));
}

function formatBytes(n) {
  if (!n && n !== 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
