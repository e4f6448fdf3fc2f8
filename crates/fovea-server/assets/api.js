// fovea — API client, shared state and small UI helpers (toast, dialogs).

const BASE = '/api/v1';
const TOKEN_KEY = 'fovea.token';

/** Shared application state. Mutate through the helpers below so listeners hear about it. */
export const state = {
  me: null,          // {user, role}
  classes: [],       // [{id, name, images, is_unknown, reaches_cutoff}]
  cutoff: 40,
  maxNameChars: 64,  // the server's class-name limit, from GET /classes
  modelVersion: null,
};

/** A tiny event bus: 'classes', 'model', 'me', 'token'. */
export const bus = new EventTarget();
export const emit = (type, detail) => bus.dispatchEvent(new CustomEvent(type, { detail }));
export const on = (type, fn) => bus.addEventListener(type, (e) => fn(e.detail));

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: keep going without persistence */ }
  emit('token', token);
}

/** URL of an image's original bytes, usable as <img src> (token passed as a query parameter). */
export function blobUrl(imageId) {
  const token = getToken();
  const url = `${BASE}/images/${encodeURIComponent(imageId)}/blob`;
  return token ? `${url}?token=${encodeURIComponent(token)}` : url;
}

/** URL of a server-made thumbnail (96, 192 or 384 px), so grids never load full-size originals. */
export function thumbUrl(imageId, size = 192) {
  const token = getToken();
  const url = `${BASE}/images/${encodeURIComponent(imageId)}/thumb?size=${size}`;
  return token ? `${url}&token=${encodeURIComponent(token)}` : url;
}

async function parseError(res) {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText || 'Request failed'}`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch { /* not JSON */ }
  return new ApiError(res.status, code, message);
}

/**
 * Call the API. `json` is sent as a JSON body, `form` as multipart. On 401/403 the token dialog is shown and
 * the request retried with the new token. Errors are shown in the toast (unless `quiet`) and thrown.
 */
export async function api(path, { method = 'GET', json, form, quiet = false, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let res;
    try {
      res = await fetch(BASE + path, { method, headers, body, signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      const e = new ApiError(0, 'network', 'Cannot reach the fovea server.');
      if (!quiet) toast(e.message, 'error');
      throw e;
    }
    if (res.ok) {
      if (res.status === 204) return null;
      const text = await res.text();
      return text ? JSON.parse(text) : null;
    }
    const err = await parseError(res);
    if ((res.status === 401 || res.status === 403) && attempt < 3) {
      const reason = res.status === 401
        ? (token ? 'The stored token was rejected.' : 'The server needs a token to continue.')
        : `${err.message} — a token with more rights may help.`;
      const saved = await askToken(reason);
      if (saved) continue;
    }
    if (!quiet) toast(err.message, 'error');
    throw err;
  }
}

/** Remember the model version seen last and tell the top bar. */
export function noteModel(version) {
  if (version && version !== state.modelVersion) {
    state.modelVersion = version;
    emit('model', version);
  }
}

export async function loadClasses() {
  const data = await api('/classes');
  state.classes = Array.isArray(data?.classes) ? data.classes : [];
  if (typeof data?.cutoff === 'number') state.cutoff = data.cutoff;
  if (typeof data?.max_name_chars === 'number') state.maxNameChars = data.max_name_chars;
  emit('classes', state.classes);
  return state.classes;
}

export function canLabel() {
  const role = state.me?.role;
  return role === 'annotator' || role === 'admin';
}

export function isAdmin() {
  return state.me?.role === 'admin';
}

// ───────────────────────── toast ─────────────────────────

let toastTimer = 0;

/** Show a message in the (single, aria-live) toast. kind: 'info' | 'success' | 'error'. */
export function toast(message, kind = 'info', ms) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.className = `toast toast-${kind} show`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), ms ?? (kind === 'error' ? 7000 : 4500));
}

/** Runs a card's action with its buttons disabled; on success says so, removes the card and calls `onDone`. */
export async function cardAction(card, fn, message, onDone) {
  for (const b of card.querySelectorAll('button')) b.disabled = true;
  try {
    await fn();
    toast(message, 'success');
    card.remove();
    onDone();
  } catch {
    for (const b of card.querySelectorAll('button')) b.disabled = false;
  }
}

/** A toast with one action button (e.g. "Undo"); it stays a little longer so there is time to press it. */
export function toastAction(message, kind, label, fn, ms = 9000) {
  toast(message, kind, ms);
  const el = document.getElementById('toast');
  if (!el) return;
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'toast-action';
  b.textContent = label;
  b.addEventListener('click', () => { el.classList.remove('show'); b.remove(); fn(); }, { once: true });
  el.append(' ', b);
}

// ───────────────────────── dialogs ─────────────────────────

let tokenPromise = null;

/** Ask for an API token; resolves true when one was saved. Concurrent callers share one dialog. */
export function askToken(reason) {
  if (tokenPromise) return tokenPromise;
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const why = document.getElementById('token-reason');
  if (!dialog || typeof dialog.showModal !== 'function') {
    const t = window.prompt('Paste your API token');
    if (t) setToken(t.trim());
    return Promise.resolve(Boolean(t));
  }
  why.textContent = reason || 'The server needs a token to continue.';
  input.value = getToken();
  tokenPromise = new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      tokenPromise = null;
      const value = input.value.trim();
      if (dialog.returnValue === 'save' && value) {
        setToken(value);
        resolve(true);
      } else {
        resolve(false);
      }
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', done);
    dialog.showModal();
    input.focus();
    input.select();
  });
  return tokenPromise;
}

/**
 * A small modal prompt. With `options` it shows a <select> instead of a text input.
 * Resolves to the entered/selected value, or null when cancelled.
 */
export function promptDialog({ title, text = '', label = '', value = '', options = null, ok = 'OK' }) {
  const dialog = document.getElementById('prompt-dialog');
  const input = document.getElementById('prompt-input');
  const select = document.getElementById('prompt-select');
  const labelEl = document.getElementById('prompt-label');
  document.getElementById('prompt-title').textContent = title;
  document.getElementById('prompt-text').textContent = text;
  document.getElementById('prompt-ok').textContent = ok;
  labelEl.textContent = label;
  const useSelect = Array.isArray(options);
  input.hidden = useSelect;
  select.hidden = !useSelect;
  labelEl.htmlFor = useSelect ? 'prompt-select' : 'prompt-input';
  if (useSelect) {
    select.replaceChildren(...options.map((o) => new Option(o, o)));
  } else {
    input.value = value;
  }
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      if (dialog.returnValue !== 'ok') return resolve(null);
      const v = (useSelect ? select.value : input.value).trim();
      resolve(v || null);
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', done);
    dialog.showModal();
    const target = useSelect ? select : input;
    target.focus();
    if (!useSelect) input.select();
  });
}

// ───────────────────────── formatting ─────────────────────────

export function pct(p, digits = 1) {
  if (typeof p !== 'number' || Number.isNaN(p)) return '—';
  const v = p * 100;
  if (v > 0 && v < 0.1) return '<0.1%';
  return `${v.toFixed(v >= 99.95 || v === 0 ? 0 : digits)}%`;
}

/** "3 min ago" for epoch milliseconds (what the API sends) or an ISO string. */
export function relTime(when) {
  const t = typeof when === 'number' ? when : Date.parse(when);
  if (Number.isNaN(t)) return when ? String(when) : '';
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 7) return `${Math.round(s / 86400)} d ago`;
  return new Date(t).toLocaleDateString();
}

/** Create an element: h('div', {class: 'x', dataset: {a: 1}, onclick}, child, 'text'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
