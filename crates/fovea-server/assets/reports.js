// fovea — Reports page: the HTML report (same document as `fovea report --html`), drift signals, manual
// evaluation rounds with a reviewer card; and the drift banner shown on every page.

import { api, h, pct, relTime, thumbUrl, getToken, toast, state, on, canLabel } from './api.js';

const $ = (id) => document.getElementById(id);
const view = { round: null, item: null, busy: false };

async function fetchText(path) {
  const token = getToken();
  const res = await fetch(`/api/v1${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  return res.text();
}

function sinceQuery() {
  const d = $('report-since').value;
  return d ? `?since=${encodeURIComponent(d)}` : '';
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function loadReport() {
  const frame = $('report-frame');
  try {
    frame.srcdoc = await fetchText(`/report.html${sinceQuery()}`);
  } catch (err) {
    frame.srcdoc = `<p style="font:14px system-ui">Could not load the report: ${String(err.message).replace(/</g, '&lt;')}</p>`;
  }
}

function fitFrame() {
  const frame = $('report-frame');
  try {
    frame.style.height = `${frame.contentDocument.documentElement.scrollHeight + 24}px`;
  } catch { /* cross-origin: keep the CSS height */ }
}

async function loadDrift() {
  const body = $('drift-table').tBodies[0];
  try {
    const d = await api('/drift', { quiet: true });
    $('drift-meta').textContent = `reference: ${d.reference} (${d.reference_size} images) · ${d.window} requests in the window`;
    const rows = (d.scores?.signals || []).map((s) => h('tr', { class: s.exceeded ? 'row-alert' : '' },
      h('td', {}, s.signal.replace('_', ' ')),
      h('td', { class: 'num mono' }, s.statistic.toFixed(4)),
      h('td', { class: 'num mono' }, s.threshold.toFixed(4)),
      h('td', {}, s.detail)));
    body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, d.note || 'Not judged yet.'))]));
  } catch {
    body.replaceChildren(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Could not load drift.')));
  }
}

async function loadRounds() {
  const body = $('eval-table').tBodies[0];
  let rounds = [];
  try { rounds = await api('/evaluations', { quiet: true }) || []; } catch { /* shown empty */ }
  body.replaceChildren(...(rounds.length ? rounds.map((e) => h('tr', {},
    h('td', {}, `#${e.round} · ${relTime(e.created_at)}`),
    h('td', { class: 'mono' }, e.model_version),
    h('td', { class: 'num' }, `${e.answered} / ${e.sampled}`),
    h('td', { class: 'num' }, e.accuracy == null ? '–' : `${pct(e.accuracy)} [${pct(e.low)}–${pct(e.high)}]`),
    h('td', { class: 'num' }, `${pct(e.covered, 0)} of ${e.population}`),
    h('td', {}, e.answered < e.sampled && canLabel()
      ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => openRound(e.round) }, 'Continue')
      : ''))) : [h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No rounds yet.'))]));
}

function showItem(v) {
  view.round = v;
  view.item = v.next;
  const card = $('eval-card');
  if (!v.next) {
    card.hidden = true;
    if (v.estimate.answered) toast(`Round #${v.round.id} done: ${pct(v.estimate.accuracy)} estimated accuracy`, 'success');
    return;
  }
  card.hidden = false;
  const answered = v.items.filter((i) => i.verdict).length;
  const est = v.estimate.accuracy == null ? ''
    : ` · estimate so far ${pct(v.estimate.accuracy)} [${pct(v.estimate.low)}–${pct(v.estimate.high)}], from strata holding ${pct(v.estimate.covered, 0)} of the predictions`;
  $('eval-progress').textContent = `Round #${v.round.id}: ${answered} of ${v.items.length} judged${est}`;
  $('eval-image').src = thumbUrl(v.next.image_id, 384);
  $('eval-class').textContent = v.next.served_class || '—';
  $('eval-prob').textContent = v.next.served_probability == null ? '' : `(${pct(v.next.served_probability)})`;
  $('eval-correct').value = '';
  $('eval-classes').replaceChildren(...state.classes.filter((c) => !c.is_unknown).map((c) => h('option', { value: c.name })));
}

async function openRound(id) {
  showItem(await api(`/evaluations/${id}`));
  $('eval-card').scrollIntoView({ block: 'nearest' });
}

async function answer(verdict) {
  if (!view.item || view.busy) return;
  const cls = $('eval-correct').value.trim();
  if (verdict === 'wrong' && !cls) {
    toast('Type the right class, then press Wrong', 'error');
    $('eval-correct').focus();
    return;
  }
  view.busy = true;
  try {
    const v = await api(`/evaluations/items/${view.item.id}`, { method: 'POST', json: verdict === 'wrong' ? { verdict, class: cls } : { verdict } });
    showItem(v);
    loadRounds();
  } catch { /* toast shown */ } finally {
    view.busy = false;
  }
}

export function initReports() {
  $('report-refresh').addEventListener('click', loadReport);
  $('report-since').addEventListener('change', loadReport);
  $('report-frame').addEventListener('load', fitFrame);
  $('report-download').addEventListener('click', async () => download('fovea-report.html', await fetchText(`/report.html${sinceQuery()}`), 'text/html'));
  $('report-json').addEventListener('click', async () => download('fovea-report.json', JSON.stringify(await api(`/report${sinceQuery()}`), null, 2), 'application/json'));
  $('drift-rebuild').addEventListener('click', async () => {
    await api('/drift/reference', { method: 'POST' });
    toast('Drift reference rebuilt', 'success');
    loadDrift();
  });
  $('eval-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const v = await api('/evaluations', { method: 'POST', json: { size: Number($('eval-size').value), days: Number($('eval-days').value) } });
      showItem(v);
      loadRounds();
    } catch { /* toast shown */ }
  });
  $('eval-right').addEventListener('click', () => answer('right'));
  $('eval-wrong').addEventListener('click', () => answer('wrong'));
  $('eval-skip').addEventListener('click', () => answer('skip'));
  $('eval-correct').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); answer('wrong'); } });
  document.addEventListener('keydown', (e) => {
    if ($('view-reports').hidden || $('eval-card').hidden || e.target.closest('input, textarea')) return;
    const key = e.key.toLowerCase();
    if (key === 'r') answer('right');
    else if (key === 'w') $('eval-correct').focus();
    else if (key === 's') answer('skip');
  });
  on('token', () => { if (!$('view-reports').hidden) showReports(); });
}

export function showReports() {
  loadReport();
  loadDrift();
  loadRounds();
}

async function checkDrift() {
  try {
    const alerts = await api('/drift/alerts', { quiet: true });
    const banner = $('drift-banner');
    if (!Array.isArray(alerts) || alerts.length === 0) {
      banner.hidden = true;
      return;
    }
    const a = alerts[0];
    const more = alerts.length > 1 ? ` (+${alerts.length - 1} more signal${alerts.length > 2 ? 's' : ''})` : '';
    $('drift-text').textContent = `${a.detail} (${a.signal.replace('_', ' ')} signal), since ${relTime(a.since)}${more}`;
    $('drift-examples').replaceChildren(...a.examples.slice(0, 4).map((id) => h('img', { src: thumbUrl(id, 96), alt: 'example', width: 32, height: 32 })));
    banner.hidden = false;
  } catch { /* not signed in yet */ }
}

/** Polls open drift alerts for the banner. */
export function watchDrift() {
  checkDrift();
  setInterval(checkDrift, 30000);
}
