// fovea — entry point: top bar, hash routing, session bootstrap.

import { api, state, emit, on, loadClasses, askToken, toast, noteModel } from './api.js';
import { initClassify, showClassify } from './classify.js';
import { initDataset, showDataset } from './dataset.js';
import { initCollections, showCollections } from './collections.js';
import { initHistory, showHistory } from './history.js';
import { initHygiene, showHygiene } from './hygiene.js';
import { initModels, showModels } from './models.js';
import { initDetail } from './detail.js';
import { initReports, showReports, watchDrift } from './reports.js';

const ROUTES = {
  classify: showClassify,
  dataset: showDataset,
  collections: showCollections,
  hygiene: showHygiene,
  history: showHistory,
  models: showModels,
  reports: showReports,
};

function currentRoute() {
  const m = /^#\/([a-z]+)/.exec(location.hash);
  return m && ROUTES[m[1]] ? m[1] : 'classify';
}

function route() {
  const name = currentRoute();
  if (!location.hash.startsWith(`#/${name}`)) {
    history.replaceState(null, '', `#/${name}`);
  }
  for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== name;
  for (const t of document.querySelectorAll('.tab')) {
    const active = t.dataset.route === name;
    t.classList.toggle('active', active);
    if (active) t.setAttribute('aria-current', 'page'); else t.removeAttribute('aria-current');
  }
  document.title = `fovea · ${name[0].toUpperCase()}${name.slice(1)}`;
  try { ROUTES[name](); } catch (err) { console.error(err); }
}

function renderMe() {
  const me = state.me;
  document.getElementById('user-name').textContent = me?.user || 'not signed in';
  const role = document.getElementById('user-role');
  role.textContent = me?.role || '';
  role.dataset.role = me?.role || '';
  document.body.dataset.role = me?.role || 'viewer';
}

async function loadMe() {
  try {
    state.me = await api('/me');
  } catch (err) {
    // Not an auth problem (e.g. an older server without /me): stay usable as an annotator.
    state.me = err.status === 401 || err.status === 403 ? null : { user: '?', role: 'annotator' };
  }
  renderMe();
  emit('me', state.me);
}

function init() {
  on('model', (v) => {
    const el = document.getElementById('model-version');
    el.textContent = v;
    el.classList.remove('bump');
    void el.offsetWidth;
    el.classList.add('bump');
  });
  on('token', () => { loadMe(); loadClasses().catch(() => {}); });

  document.getElementById('token-btn').addEventListener('click', async () => {
    const saved = await askToken('Paste the API token printed by the fovea server.');
    if (saved) toast('Token saved', 'success');
  });

  initClassify();
  initDataset();
  initCollections();
  initHistory();
  initHygiene();
  initModels();
  initDetail();
  initReports();
  renderMe();

  window.addEventListener('hashchange', route);
  route();
  loadMe().then(() => {
    watchDrift();
    loadClasses().catch(() => {});
    // Show the model being served now (not the one that made the last logged prediction: a promotion or
    // rollback may have happened since).
    fetch('/healthz')
      .then((r) => r.json())
      .then((d) => noteModel(d?.model_version))
      .catch(() => {});
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
