// fovea — Classify page: upload / paste / drop one image or many, top-k bars, confirm or correct, learn feedback.
//
// Many files at once form a batch: they are classified one after another (a queue with progress) while the
// labeller works; each decision advances to the next unlabelled image of the batch, so a whole batch can be
// labelled with the keyboard alone (Enter, 1–5, U, ←/→).

import { api, state, noteModel, loadClasses, canLabel, toast, toastAction, pct, h, on } from './api.js';
import { offerUnknownMatches } from './unknown.js';
import { loadReview } from './review.js';
import { createPicker } from './picker.js';

const $ = (id) => document.getElementById(id);
const RECENT_MAX = 12;

let current = null;   // {image_id, top, unknown, model_version, latency_ms, width, height, url, name, chosen, seen}
let busy = false;     // the image on screen is being classified
let labelling = false;
const recent = [];    // same shape as current
let picker;

// The upload queue: files waiting, and the batch of images the files became.
const queue = { files: [], running: false, total: 0, done: 0, failed: 0, batch: [] };

export function initClassify() {
  $('review-btn').addEventListener('click', (e) => loadReview(enqueue, e.currentTarget));
  const drop = $('drop-zone');
  const fileInput = $('file-input');

  fileInput.addEventListener('change', () => {
    const files = [...(fileInput.files || [])];
    fileInput.value = '';
    // Leave the hidden input: focused, it would swallow the shortcuts and reopen the chooser on Enter.
    fileInput.blur();
    focusResult();
    if (files.length) enqueue(files);
  });

  drop.addEventListener('keydown', (e) => {
    if (e.target !== drop) return;
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); fileInput.click(); }
  });
  let depth = 0;
  drop.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; drop.classList.add('dragging'); });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; });
  drop.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; drop.classList.remove('dragging'); } });
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    const files = await droppedFiles(e.dataTransfer);
    if (files.length) enqueue(files);
    else toast('That is not an image file.', 'error');
  });
  // Dropping outside the zone should not navigate away from the app.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  document.addEventListener('paste', (e) => {
    const f = images(e.clipboardData?.files)[0] || fileFromItems(e.clipboardData?.items);
    if (!f) return;  // let text paste into inputs normally
    e.preventDefault();
    if (!location.hash.startsWith('#/classify')) location.hash = '#/classify';
    enqueue([f]);
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
  // A tiny image (a 28×28 digit) is scaled up, with crisp pixels, instead of shown at native size.
  $('preview').addEventListener('load', () => {
    const p = $('preview');
    p.classList.toggle('tiny', p.naturalWidth > 0 && p.naturalWidth < 160 && p.naturalHeight < 160);
  });

  document.addEventListener('keydown', onKey);
  on('me', syncControls);
  syncControls();
}

export function showClassify() {
  syncControls();
}

function isImage(f) {
  return f.type.startsWith('image/') || /\.(jpe?g|png|gif|webp|bmp|tiff?|avif|heic)$/i.test(f.name);
}

function images(files) {
  return files ? [...files].filter(isImage) : [];
}

/** Dropped files, with the images inside dropped folders where the browser exposes them. */
async function droppedFiles(dt) {
  if (!dt) return [];
  const entries = [...(dt.items || [])].map((it) => it.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.some((e) => e.isDirectory)) return images(dt.files);
  const out = [];
  const walk = async (entry, depth) => {
    if (entry.isFile) {
      const f = await new Promise((res) => entry.file(res, () => res(null)));
      if (f && isImage(f)) out.push(f);
    } else if (entry.isDirectory && depth < 8) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res) => reader.readEntries(res, () => res([])));
        if (!batch.length) break;
        for (const e of batch) await walk(e, depth + 1);
      }
    }
  };
  for (const e of entries) await walk(e, 0);
  return out;
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

/** Text entry has the keyboard; a file input or checkbox does not (their keys are ours). */
function isTyping(el) {
  if (!el) return false;
  const tag = el.tagName;
  if (tag === 'INPUT') return !['file', 'checkbox', 'radio', 'button', 'submit', 'range'].includes(el.type);
  return tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

/**
 * Move focus to the result panel: the page-wide shortcuts then work at once. Unless `force`, focus stays in a
 * text box the labeller is typing in.
 */
function focusResult(force = false) {
  const a = document.activeElement;
  if (!force && a && a.id !== 'file-input' && isTyping(a)) return;
  $('result-panel').focus({ preventScroll: true });
}

function onKey(e) {
  if (!location.hash.startsWith('#/classify') && location.hash !== '' && location.hash !== '#/') return;
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  if (document.querySelector('dialog[open]')) return;
  const el = document.activeElement;
  const typing = isTyping(el);
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
  if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
    if (step(e.key === 'ArrowRight' ? 1 : -1)) e.preventDefault();
    return;
  }
  if (!canLabel() || !current) return;
  if (e.key === 'Enter') {
    // Buttons, links and the drop zone keep their own Enter; anywhere else Enter confirms the top class.
    if (el && el !== document.body && el.id !== 'file-input' && el.closest('button, a, summary, label, [role=button]')) return;
    e.preventDefault();
    confirmTop();
  } else if (/^[1-5]$/.test(e.key)) {
    const t = current.top[Number(e.key) - 1];
    if (t) { e.preventDefault(); labelCurrent(t.class); }
  } else if (e.key === 'u' || e.key === 'U') {
    e.preventDefault();
    labelCurrent(unknownName());
  } else if ((e.key === 'z' || e.key === 'Z') && lastUndo) {
    e.preventDefault();
    lastUndo();
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

// ───────────────────────── the upload queue ─────────────────────────

function enqueue(files) {
  const ok = images(files);
  const skipped = files.length - ok.length;
  if (skipped) toast(`${skipped} file${skipped === 1 ? ' is' : 's are'} not an image and ${skipped === 1 ? 'was' : 'were'} skipped.`, 'error');
  if (!ok.length) return;
  if (!queue.running) Object.assign(queue, { total: 0, done: 0, failed: 0, batch: [] });
  // A new selection replaces what is on screen with its first image; the rest wait their turn.
  const replace = !queue.running;
  queue.files.push(...ok.map((file, i) => ({ file, show: replace && i === 0 })));
  queue.total += ok.length;
  renderQueue();
  if (!queue.running) runQueue();
}

async function runQueue() {
  queue.running = true;
  while (queue.files.length) {
    const { file, show } = queue.files.shift();
    // Shown when asked, or when nothing waits for a decision on screen.
    const onScreen = show || !current || Boolean(current.chosen);
    const item = await classifyFile(file, onScreen);
    queue.done++;
    if (!item) queue.failed++;
    else {
      queue.batch.push(item);
      addRecent(item);
      if (onScreen || !current || current.chosen) setCurrent(item, { animate: true });
    }
    renderQueue();
  }
  queue.running = false;
  renderQueue();
}

/** Queue progress and where the image on screen sits in the batch. */
function renderQueue() {
  const el = $('queue-status');
  const many = queue.total > 1 || queue.batch.length > 1;
  el.hidden = !many;
  if (!many) return;
  const left = queue.batch.filter((x) => !x.chosen).length;
  const pos = current ? queue.batch.indexOf(current) : -1;
  const parts = [];
  parts.push(queue.running ? `Classifying ${Math.min(queue.done + 1, queue.total)} of ${queue.total}…` : `Classified ${queue.done - queue.failed} of ${queue.total}`);
  if (queue.failed) parts.push(`${queue.failed} failed`);
  parts.push(left ? `${left} to label` : 'all labelled');
  if (pos >= 0) parts.push(`showing ${pos + 1} of ${queue.batch.length}`);
  $('queue-text').textContent = parts.join(' · ');
  const fill = $('queue-fill');
  fill.style.width = `${queue.total ? (queue.done / queue.total) * 100 : 0}%`;
  $('queue-progress').setAttribute('aria-valuenow', String(queue.done));
  $('queue-progress').setAttribute('aria-valuemax', String(queue.total));
}

/** Show another image of the batch (←/→); true when there was one. */
function step(delta) {
  const i = queue.batch.indexOf(current);
  const next = i >= 0 ? queue.batch[i + delta] : null;
  if (!next || labelling) return false;
  setCurrent(next);
  return true;
}

function setCurrent(item, opts = {}) {
  current = item;
  showCurrent(opts);
  renderRecent();
  renderQueue();
  if (!item.top.length && canLabel()) picker.focus();
  else focusResult();
}

/** The next image of the batch still waiting for a decision, after the one on screen (wrapping round). */
function nextUnlabelled() {
  const b = queue.batch;
  const i = b.indexOf(current);
  for (let k = 1; k <= b.length; k++) {
    const x = b[(i + k + b.length) % b.length];
    if (x && !x.chosen && x !== current) return x;
  }
  return null;
}

/** Classify one file. `onScreen`: show it in the drop zone while it is classified (else it goes quietly). */
async function classifyFile(file, onScreen) {
  const url = URL.createObjectURL(file);
  const name = file.name || 'pasted image';
  const preview = $('preview');
  if (onScreen) {
    preview.src = url;
    preview.hidden = false;
    $('drop-zone').classList.add('has-image');
    $('image-meta').textContent = `${name} · ${formatBytes(file.size)}`;
    $('learned').hidden = true;
    setBusy(true);
  }
  const form = new FormData();
  form.append('image', file, file.name || 'pasted.png');
  try {
    const res = await api('/classify', { method: 'POST', form });
    noteModel(res.model_version);
    return {
      image_id: res.image_id,
      transaction_id: res.transaction_id,
      top: Array.isArray(res.top) ? res.top : [],
      unknown: Boolean(res.unknown),
      model_version: res.model_version,
      latency_ms: res.latency_ms,
      width: res.width,
      height: res.height,
      url,
      name,
      chosen: null,
      seen: res.new_image === false,
    };
  } catch (err) {
    URL.revokeObjectURL(url);
    if (onScreen) {
      // No broken-image icon: the failed upload leaves the page as it was before it, with the reason.
      current = null;
      preview.hidden = true;
      preview.removeAttribute('src');
      $('drop-zone').classList.remove('has-image');
      $('image-meta').textContent = `Could not classify ${name}: ${err?.message || 'error'}`;
      $('result-empty').hidden = false;
      $('unknown-note').hidden = true;
      $('learned').hidden = true;
      renderPredictions([]);
    }
    return null;
  } finally {
    if (onScreen) setBusy(false);
  }
}

function showCurrent({ animate = false } = {}) {
  if (!current) return;
  const c = current;
  $('preview').src = c.url;
  $('preview').hidden = false;
  $('drop-zone').classList.add('has-image');
  const dims = c.width && c.height ? `${c.width}×${c.height}` : '';
  $('image-meta').textContent = [c.name, dims, c.seen ? 'uploaded before' : '', 'drop or paste another to replace']
    .filter(Boolean).join(' · ');
  const meta = [];
  if (c.model_version) meta.push(c.model_version);
  if (typeof c.latency_ms === 'number') meta.push(`${c.latency_ms.toFixed(1)} ms`);
  $('result-meta').textContent = meta.join(' · ');
  $('result-empty').hidden = true;
  $('unknown-note').hidden = c.top.length > 0 && !c.unknown;
  $('unknown-note').textContent = c.top.length
    ? 'Unknown: this image is unlike every class the model knows (the nearest are shown below).'
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

let lastUndo = null;  // undoes the newest label made here (Z, or the toast's Undo button)

async function labelCurrent(name) {
  if (!current || labelling || !name || !canLabel()) return;
  const item = current;
  const previous = item.chosen;
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
    const undo = () => undoLabel(item, previous, chosen);
    lastUndo = undo;
    if (isUnknown) {
      toastAction(`Kept as ${chosen} — not used for training`, 'success', 'Undo', undo);
    } else {
      const created = res?.created_class ? ' (new class)' : '';
      toastAction(`Learned: ${chosen}${created} — model ${res?.model_version || item.model_version || ''}`.trim(),
        'success', 'Undo', undo);
    }
    if (item === current) {
      labelling = false;
      const next = nextUnlabelled();
      if (next) {
        // Batch work: straight on to the next image (already classified, its bytes already local).
        setCurrent(next, { animate: true });
        focusResult(true);
      } else {
        showCurrent();
        renderPredictions(item.top, { animate: false, before, flash: chosen, unknown: item.unknown });
        showLearned(chosen, wasBefore, after, isUnknown, Boolean(res?.created_class));
      }
    }
    renderRecent();
    renderQueue();
    if (res?.created_class) offerUnknownMatches(chosen);
    if (res?.created_class || !state.classes.some((c) => c.name === chosen)) await loadClasses().catch(() => {});
    else bumpCount(chosen);
  } catch {
    /* toast already shown */
  } finally {
    labelling = false;
    syncControls();
  }
}

/**
 * Undo a label: relabel to the class it had before (logged as a new correction; the log keeps both). An image
 * that had no label before goes to Unknown, which keeps it out of training, and is shown again for a decision.
 */
async function undoLabel(item, previous, chosen) {
  if (labelling) return;
  if (lastUndo) lastUndo = null;
  const back = previous || unknownName();
  labelling = true;
  syncControls();
  try {
    const res = await api(`/images/${encodeURIComponent(item.image_id)}/label`, { method: 'POST', json: { class: back } });
    noteModel(res?.model_version);
    if (Array.isArray(res?.prediction?.top)) {
      item.top = res.prediction.top;
      item.unknown = Boolean(res.prediction.unknown);
    }
    item.chosen = previous;
    toast(previous ? `Undone: ${chosen} → back to ${previous}` : `Undone: no longer ${chosen} (now ${back}, not trained on)`, 'success');
    labelling = false;
    setCurrent(item);
    focusResult(true);
    await loadClasses().catch(() => {});
  } catch {
    /* toasted */
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
    if (old.url && old !== current && !queue.batch.includes(old)) URL.revokeObjectURL(old.url);
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
        onclick: () => setCurrent(r),
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
