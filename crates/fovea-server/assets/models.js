// fovea — Models page: the model registry (promote, roll back), "Train now", and the newest run's live progress.

import { api, state, toast, pct, relTime, h, on } from './api.js';
import { curveFigure } from './chart.js';
import { calibrationView } from './calibration.js';

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(['queued', 'running']);
const POLL_MS = 1000;

const view = {
  models: [],
  served: null,
  job: null,          // the job shown in the progress panel
  history: new Map(), // job id → last curve seen while it ran (kept for failed/cancelled runs)
  timer: 0,
  gen: 0,
};

export function initModels() {
  $('models-refresh').addEventListener('click', () => showModels());
  $('rollback-btn').addEventListener('click', rollback);
  $('models-table').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-promote]');
    if (b) promote(b.dataset.promote, b);
  });
  $('train-form').addEventListener('submit', submitTrain);
  $('train-throwaway').addEventListener('change', syncCutoff);
  $('job-cancel').addEventListener('click', cancelJob);
  on('classes', syncCutoff);
  on('token', () => { if (!$('view-models').hidden) showModels(); });
}

export function showModels() {
  syncCutoff();
  return Promise.all([loadModels(), loadJob()]);
}

function syncCutoff() {
  const input = $('train-cutoff');
  input.placeholder = String(state.cutoff);
  input.min = $('train-throwaway').checked ? '1' : String(state.cutoff);
}

const when = (ms) => new Date(typeof ms === 'number' ? ms : Date.parse(ms));

function timeCell(ms) {
  const d = when(ms);
  if (Number.isNaN(d.getTime())) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, relTime(d.toISOString()));
}

/** A job's error without the "training: " prefix the page's own heading already says. */
const reason = (msg) => (msg.error || msg.text || '').replace(/^training: /, '');

function parseMessage(job) {
  if (!job?.message) return null;
  try { return JSON.parse(job.message); } catch { return { text: job.message }; }
}

// ───────────────────────── registry ─────────────────────────

async function loadModels() {
  const table = $('models-table');
  table.classList.add('loading');
  try {
    const [data, health] = await Promise.all([
      api('/models'),
      fetch('/healthz').then((r) => r.json()).catch(() => null),
    ]);
    // The version answering now: the served registry model plus the labels its online head has learned.
    view.online = typeof health?.model_version === 'string' ? health.model_version : null;
    view.models = Array.isArray(data?.models) ? data.models : [];
    view.models.sort((a, b) => b.created_at - a.created_at);
    view.served = data?.served ?? null;
    view.calibration = data?.calibration ?? null;
  } catch {
    table.tBodies[0].replaceChildren(emptyRow('Could not load the models.'));
    return;
  } finally {
    table.classList.remove('loading');
  }
  renderModels();
  if (view.job) renderJob();
}

function emptyRow(text) {
  return h('tr', {}, h('td', { colspan: '9', class: 'empty-cell muted' }, text));
}

function verdictCell(verdict) {
  if (!verdict || typeof verdict.passed !== 'boolean') return h('span', { class: 'muted' }, '—');
  const reasons = Array.isArray(verdict.reasons) ? verdict.reasons : [];
  return h('details', { class: 'verdict' },
    h('summary', { title: reasons.join('\n') || 'no reasons recorded' },
      h('span', { class: `badge ${verdict.passed ? 'badge-ok' : 'badge-fail'}` }, verdict.passed ? 'passed' : 'failed')),
    reasonList(reasons));
}

function reasonList(reasons) {
  return h('ul', { class: 'reasons' }, reasons.map((r) => h('li', { class: r.startsWith('FAIL') ? 'fail' : '' }, r)));
}

/** As served after promotion (head on every label, calibrated), when the run estimated it. */
function servedCell(served) {
  const est = (e) => `${pct(e.accuracy)} (95% ${pct(e.low)}–${pct(e.high)}, ${e.images} untrained images, ECE ${e.ece.toFixed(3)})`;
  const diff = served.candidate.accuracy - served.serving.accuracy;
  const title = `As served after promotion, estimated on the labelled images it never trained on (classes weighted by their share):\nnow ${est(served.serving)}\nnew ${est(served.candidate)}`;
  return h('span', { title, class: 'served-estimate' },
    h('span', { class: 'muted' }, pct(served.serving.accuracy)), ' → ',
    h('strong', { class: diff > 0 ? 'up' : diff < 0 ? 'down' : '' }, pct(served.candidate.accuracy)));
}

function accuracyCell(report) {
  if (typeof report?.as_served?.candidate?.accuracy === 'number') return servedCell(report.as_served);
  if (typeof report?.candidate_test_accuracy !== 'number') return h('span', { class: 'muted' }, '—');
  const diff = report.candidate_test_accuracy - (report.serving_test_accuracy ?? 0);
  // How precise the test split is: the paired comparison's intervals, when the run recorded them.
  const cmp = report.test_comparison;
  const title = cmp && Array.isArray(cmp.difference_interval)
    ? `${cmp.images} test images · ${Math.round(cmp.confidence * 100)}% intervals: serving `
      + `${pct(cmp.serving_interval[0])}–${pct(cmp.serving_interval[1])}, new `
      + `${pct(cmp.candidate_interval[0])}–${pct(cmp.candidate_interval[1])}, difference `
      + `${points(cmp.difference_interval[0])} to ${points(cmp.difference_interval[1])} points`
    : null;
  return h('span', { title },
    h('span', { class: 'muted' }, pct(report.serving_test_accuracy)), ' → ',
    h('strong', { class: diff > 0 ? 'up' : diff < 0 ? 'down' : '' }, pct(report.candidate_test_accuracy)));
}

function points(fraction) {
  const p = fraction * 100;
  return `${p > 0 ? '+' : ''}${p.toFixed(1)}`;
}

function benchmarkCell(report) {
  const cand = report?.candidate_benchmark?.accuracy;
  if (typeof cand !== 'number') return h('span', { class: 'muted' }, '—');
  const serving = report?.serving_benchmark?.accuracy;
  const n = report?.candidate_benchmark?.count;
  // The gate's paired comparison, when recorded: the difference and how sure the benchmark is of it.
  const cmp = report?.verdict?.comparison;
  const diff = cmp && Array.isArray(cmp.difference_interval)
    ? ` · difference ${points(cmp.difference)} points, ${Math.round(cmp.confidence * 100)}% interval `
      + `${points(cmp.difference_interval[0])} to ${points(cmp.difference_interval[1])}`
    : '';
  const title = `candidate ${pct(cand)}${typeof serving === 'number' ? ` · serving ${pct(serving)}` : ''}`
    + (typeof n === 'number' ? ` · ${n} images` : '') + diff;
  return h('span', { title }, pct(cand));
}

function renderModels() {
  $('calibration').replaceChildren(...calibrationView(view.calibration));
  $('served-model').textContent = view.online || view.served || '—';
  const online = view.online && view.served && view.online.startsWith(`${view.served}/`) ? view.online.slice(view.served.length + 1) : null;
  const served = view.models.find((m) => m.id === view.served);
  const rollback = $('rollback-btn');
  rollback.disabled = !served?.parent;
  rollback.title = served?.parent
    ? `Serve ${served.parent} again (the model ${served.id} was trained from)`
    : 'The served model has no parent to roll back to';
  const body = $('models-table').tBodies[0];
  if (!view.models.length) {
    body.replaceChildren(emptyRow('No model versions yet.'));
    return;
  }
  body.replaceChildren(...view.models.map((m) => {
    const report = m.metrics?.report;
    const isServed = m.id === view.served;
    const canPromote = !isServed && m.status !== 'promoted' && m.status !== 'training' && m.kind !== 'throw-away';
    return h('tr', { dataset: { model: m.id, status: m.status }, class: isServed ? 'served' : '' },
      h('th', { scope: 'row' }, m.id, isServed ? [' ', h('span', { class: 'badge badge-ok serving-tag' }, 'serving')] : null,
        // The top bar names the online version; say what it is and why no accuracy is shown for it.
        isServed && online ? h('div', { class: 'online-note muted small', title: 'The online head learns every label at once; the next training run measures it' },
          `+ ${online}: labels learned online, accuracy measured by the next training run`) : null),
      h('td', {}, h('span', { class: `kind kind-${m.kind}` }, m.kind)),
      h('td', {}, h('span', { class: `status status-${m.status}` }, m.status)),
      h('td', { class: 'mono small' }, m.parent || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'num nowrap' }, accuracyCell(report)),
      h('td', { class: 'num nowrap' }, benchmarkCell(report)),
      h('td', {}, verdictCell(report?.verdict)),
      h('td', { class: 'nowrap' }, timeCell(m.created_at)),
      h('td', { class: 'num' }, canPromote
        ? h('button', { type: 'button', class: 'btn btn-small needs-admin', dataset: { promote: m.id } }, 'Promote')
        : null));
  }));
}

async function switchModel(path, button, busyText) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyText;
  try {
    const m = await api(path, { method: 'POST' });
    toast(`Now serving ${m.id}`, 'success');
  } catch { /* toasted */ } finally {
    button.textContent = label;
    button.disabled = false;
    await loadModels();
  }
}

function promote(id, button) {
  return switchModel(`/models/${encodeURIComponent(id)}/promote`, button, 'Promoting…');
}

function rollback() {
  return switchModel('/models/rollback', $('rollback-btn'), 'Rolling back…');
}

// ───────────────────────── training ─────────────────────────

function readNumber(id, what, min, max) {
  const raw = $(id).value.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} must be a whole number from ${min} to ${max}.`);
  return n;
}

async function submitTrain(e) {
  e.preventDefault();
  const error = $('train-error');
  error.textContent = '';
  const body = {};
  try {
    const cutoff = readNumber('train-cutoff', 'The cutoff', 1, 1_000_000);
    const epochs = readNumber('train-epochs', 'Epochs', 1, 500);
    if (cutoff !== undefined) body.cutoff = cutoff;
    if (epochs !== undefined) body.epochs = epochs;
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  if ($('train-throwaway').checked) body.throw_away = true;
  if ($('train-no-promote').checked) body.no_promote = true;
  if ($('train-final-fit').checked) body.final_fit = true;
  if ($('train-staged-train-only').checked) body.staged_train_only = true;
  const policy = $('train-policy').value.trim();
  if (policy) body.policy = policy;
  const btn = $('train-btn');
  btn.disabled = true;
  try {
    const job = await api('/train', { method: 'POST', json: body, quiet: true });
    toast(`Training job #${job.id} queued`, 'success');
    follow(job);
  } catch (err) {
    error.textContent = err.message;
  } finally {
    syncTrainButton();
  }
}

function syncTrainButton() {
  const busy = Boolean(view.job && ACTIVE.has(view.job.state));
  const btn = $('train-btn');
  btn.disabled = busy;
  btn.title = busy ? 'A run is already queued or running' : '';
}

async function loadJob() {
  try {
    const data = await api('/jobs?limit=20', { quiet: true });
    const jobs = (Array.isArray(data?.jobs) ? data.jobs : []).filter((j) => j.kind === 'train');
    follow(jobs.find((j) => ACTIVE.has(j.state)) || jobs[0] || null);
  } catch {
    $('job-meta').textContent = 'could not load the training jobs';
  }
}

/** Shows `job` and, while it is queued or running, polls it every second. */
function follow(job) {
  clearTimeout(view.timer);
  view.timer = 0;
  const gen = ++view.gen;
  view.job = job;
  renderJob();
  if (job && ACTIVE.has(job.state)) view.timer = setTimeout(() => poll(gen), POLL_MS);
}

async function poll(gen) {
  if (gen !== view.gen || !view.job) return;
  if ($('view-models').hidden) return; // showModels() starts again when the page is shown
  let next;
  try {
    next = await api(`/jobs/${view.job.id}`, { quiet: true });
  } catch {
    if (gen === view.gen) view.timer = setTimeout(() => poll(gen), POLL_MS * 2);
    return;
  }
  if (gen !== view.gen) return;
  const finished = !ACTIVE.has(next.state);
  follow(next);
  if (finished) {
    announce(next);
    await loadModels();
  }
}

function announce(job) {
  const msg = parseMessage(job) || {};
  if (job.state === 'succeeded') {
    toast(`Training done: ${msg.model}${msg.promoted ? ' — now serving' : ''}`, 'success');
  } else if (job.state === 'failed') {
    toast(`Training failed: ${reason(msg) || 'see the server log'}`, 'error');
  } else if (job.state === 'cancelled') {
    toast('Training cancelled', 'info');
  }
}

async function cancelJob() {
  if (!view.job) return;
  const btn = $('job-cancel');
  btn.disabled = true;
  try {
    follow(await api(`/jobs/${view.job.id}/cancel`, { method: 'POST' }));
    toast('Training cancelled', 'info');
  } catch {
    await loadJob();
  } finally {
    btn.disabled = false;
  }
}

const PHASES = { preparing: 'Preparing data', caching: 'Caching frozen layers', training: 'Training',
  evaluating: 'Evaluating against the served model', done: 'Saving' };

function renderJob() {
  const job = view.job;
  syncTrainButton();
  $('job-empty').hidden = Boolean(job);
  $('job-live').hidden = !job;
  if (!job) {
    $('job-meta').textContent = '';
    return;
  }
  const msg = parseMessage(job) || {};
  const active = ACTIVE.has(job.state);
  const panel = $('job-panel');
  panel.dataset.state = job.state;
  $('job-meta').replaceChildren(`job #${job.id} · `, timeCell(job.created_at),
    job.attempt > 1 ? ` · attempt ${job.attempt}` : '');
  const badge = $('job-state');
  badge.textContent = job.state;
  badge.className = `badge job-state-${job.state}`;

  let phase = '';
  let epoch = '';
  if (job.state === 'queued') phase = 'Waiting for the worker…';
  else if (job.state === 'running') {
    phase = PHASES[msg.phase] || msg.phase || 'Starting';
    if (msg.epochs) epoch = `epoch ${msg.epoch || 0}/${msg.epochs}`;
    if (Array.isArray(msg.history)) {
      view.history.set(job.id, {
        epochs: msg.epochs,
        points: msg.history.map(([e, loss, acc]) => ({ epoch: e, loss, acc })),
      });
    }
  } else phase = { succeeded: 'Finished', failed: 'Failed', cancelled: 'Cancelled' }[job.state] || job.state;
  $('job-phase').textContent = phase;
  $('job-epoch').textContent = epoch;
  $('job-cancel').hidden = !active;

  const done = job.state === 'succeeded' ? 1 : Math.max(0, Math.min(1, job.progress || 0));
  $('job-fill').style.width = `${(done * 100).toFixed(1)}%`;
  $('job-progress').setAttribute('aria-valuenow', String(Math.round(done * 100)));
  $('job-progress').setAttribute('aria-valuetext', `${Math.round(done * 100)}% · ${phase}`);

  renderCurve(job, msg, active);
  renderOutcome(job, msg);
}

function renderCurve(job, msg, active) {
  let curve = view.history.get(job.id);
  const model = job.state === 'succeeded' ? view.models.find((m) => m.id === msg.model) : null;
  if (Array.isArray(model?.metrics?.history)) {
    curve = {
      epochs: model.metrics.config?.epochs || model.metrics.history.length,
      points: model.metrics.history.map((r) => ({ epoch: r.epoch, loss: r.train_loss, acc: r.validation_accuracy })),
    };
  }
  const el = $('job-chart');
  const show = active ? job.state === 'running' : Boolean(curve?.points?.length);
  el.hidden = !show;
  if (show) el.replaceChildren(curveFigure(curve?.points || [], curve?.epochs || msg.epochs || 0));
}

function renderOutcome(job, msg) {
  const el = $('job-outcome');
  el.className = `job-outcome outcome-${job.state}`;
  if (job.state === 'failed') {
    el.replaceChildren(h('p', { class: 'outcome-title' }, 'Training failed'),
      h('p', { class: 'outcome-error' }, reason(msg) || 'No reason was recorded; see the server log.'));
  } else if (job.state === 'cancelled') {
    el.replaceChildren(h('p', { class: 'outcome-title' }, 'Cancelled — nothing was changed.'));
  } else if (job.state === 'succeeded') {
    const model = view.models.find((m) => m.id === msg.model);
    const what = msg.promoted ? 'Promoted — now serving'
      : model?.kind === 'throw-away' ? 'Throw-away model ready (never promoted)' : 'Kept as a candidate';
    const reasons = Array.isArray(msg.verdict?.reasons) ? msg.verdict.reasons : [];
    el.replaceChildren(
      h('p', { class: 'outcome-title' }, `${what}: `, h('span', { class: 'mono' }, msg.model || '?')),
      h('p', {}, msg.as_served ? 'Test accuracy as served ' : 'Test accuracy ',
        h('span', { class: 'muted' }, pct(msg.as_served?.serving?.accuracy ?? msg.serving_test_accuracy)), ' (now) → ',
        h('strong', {}, pct(msg.as_served?.candidate?.accuracy ?? msg.candidate_test_accuracy)), ' (new)'),
      msg.verdict ? h('p', {}, 'Gate ', h('span', { class: `badge ${msg.verdict.passed ? 'badge-ok' : 'badge-fail'}` },
        msg.verdict.passed ? 'passed' : 'failed')) : null,
      reasons.length ? reasonList(reasons) : null);
  } else {
    el.replaceChildren();
  }
  el.hidden = !el.childNodes.length;
}
