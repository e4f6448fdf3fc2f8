// fovea — searchable class picker (ARIA combobox + listbox).
//
// Options are <li class="class-option" data-class="name">. Matches rank exact first, then names that start with
// the typed text, then names that contain it, so "Tro" + Enter picks "Trouser", never "astronaut". The typed
// text is offered last as a new class (.class-option.new); choosing it asks once more ("Create class “San”?",
// .class-option.confirm) so a half-typed search never silently creates a class.

import { state, on } from './api.js';

/** The server's class-name limit (GET /classes says it; 64 until it has). */
export const maxNameChars = () => state.maxNameChars || 64;

let uid = 0;

/**
 * @param {object} o
 * @param {HTMLInputElement} o.input
 * @param {HTMLElement} o.list
 * @param {(name: string, isNew: boolean) => void} o.onChoose
 * @param {() => void} [o.onEmptyEnter]  Enter pressed while the input is empty
 * @param {() => string[]} [o.suggest]   names to list first when the input is empty
 * @param {() => boolean} [o.allowNew]
 * @param {number} [o.max]
 */
export function createPicker({ input, list, onChoose, onEmptyEnter, suggest, allowNew = () => true, max = 50 }) {
  const id = `picker${++uid}`;
  let items = [];     // [{name, isNew, count}]
  let active = -1;
  let open = false;
  let confirming = null; // the new name awaiting "Create class …?" confirmation

  function compute() {
    const q = input.value.trim();
    const ql = q.toLowerCase();
    const classes = state.classes || [];
    let out;
    if (!q) {
      const first = (suggest ? suggest() : []).filter(Boolean);
      const seen = new Set(first.map((n) => n.toLowerCase()));
      const rest = classes
        .filter((c) => !seen.has(c.name.toLowerCase()))
        .sort((a, b) => (b.images || 0) - (a.images || 0) || a.name.localeCompare(b.name));
      out = [
        ...first.map((n) => ({ name: n, count: classes.find((c) => c.name === n)?.images, suggested: true })),
        ...rest.map((c) => ({ name: c.name, count: c.images })),
      ];
    } else {
      const scored = [];
      for (const c of classes) {
        const n = c.name.toLowerCase();
        const i = n.indexOf(ql);
        if (i < 0) continue;
        // A word start ("Ankle boot" for "boo") outranks a match inside a word ("astronaut" for "tro").
        const wordStart = i > 0 && /[\s_\-./]/.test(n[i - 1]);
        scored.push({ name: c.name, count: c.images, score: n === ql ? 0 : i === 0 ? 1 : wordStart ? 2 : 3 });
      }
      scored.sort((a, b) => a.score - b.score || (b.count || 0) - (a.count || 0) || a.name.localeCompare(b.name));
      out = scored;
      const exact = classes.some((c) => c.name.toLowerCase() === ql);
      if (!exact && allowNew()) {
        const tooLong = [...q].length > maxNameChars();
        out.push({ name: q, isNew: true, tooLong, confirm: !tooLong && confirming === q });
      }
    }
    return out.slice(0, max);
  }

  function render() {
    items = compute();
    if (active >= items.length) active = items.length - 1;
    if (input.value.trim() && active < 0 && items.length) active = 0;
    list.replaceChildren(...items.map((it, i) => {
      const li = document.createElement('li');
      li.id = `${id}-opt-${i}`;
      li.className = `class-option${it.isNew ? ' new' : ''}${it.confirm ? ' confirm' : ''}${it.tooLong ? ' too-long' : ''}`
        + `${i === active ? ' active' : ''}`;
      li.dataset.class = it.name;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', i === active ? 'true' : 'false');
      if (it.isNew) {
        const plus = Object.assign(document.createElement('span'), { className: 'opt-plus', textContent: '+' });
        plus.setAttribute('aria-hidden', 'true');
        const text = it.tooLong
          ? `Too long for a class name (at most ${maxNameChars()} characters)`
          : it.confirm ? `Create class “${it.name}”? Enter again to create, Esc to cancel` : `New class “${it.name}”`;
        li.append(plus, Object.assign(document.createElement('span'), { className: 'opt-name', textContent: text }));
      } else {
        li.append(Object.assign(document.createElement('span'), { className: 'opt-name', textContent: it.name }));
        if (it.suggested) {
          li.append(Object.assign(document.createElement('span'), { className: 'opt-tag', textContent: 'suggested' }));
        }
        if (typeof it.count === 'number') {
          li.append(Object.assign(document.createElement('span'), { className: 'opt-count', textContent: it.count }));
        }
      }
      return li;
    }));
    if (!items.length) {
      const li = document.createElement('li');
      li.className = 'class-empty muted';
      li.textContent = input.value.trim() ? 'No matching class' : 'No classes yet — type a name to create one';
      list.append(li);
    }
    input.setAttribute('aria-activedescendant', active >= 0 ? `${id}-opt-${active}` : '');
    const act = list.querySelector('.class-option.active');
    if (act) act.scrollIntoView({ block: 'nearest' });
  }

  function show() {
    if (input.disabled) return;
    open = true;
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    render();
  }

  function hide() {
    open = false;
    confirming = null;
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function choose(i) {
    const it = items[i];
    if (!it || it.tooLong) return;
    if (it.isNew && confirming !== it.name) {
      // First choice of a new name only asks; the second creates.
      confirming = it.name;
      active = i;
      render();
      return;
    }
    confirming = null;
    input.value = '';
    hide();
    onChoose(it.name, Boolean(it.isNew));
  }

  function move(delta) {
    if (!open) show();
    if (!items.length) return;
    active = (active + delta + items.length) % items.length;
    if (active < 0) active = items.length - 1;
    render();
  }

  input.addEventListener('focus', show);
  input.addEventListener('input', () => { confirming = null; active = input.value.trim() ? 0 : -1; show(); });
  input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) hide(); }, 120));
  input.addEventListener('keydown', (e) => {
    if (e.isComposing) return;
    switch (e.key) {
      case 'ArrowDown': e.preventDefault(); move(1); break;
      case 'ArrowUp': e.preventDefault(); move(-1); break;
      case 'Home': if (open && !input.value) { e.preventDefault(); active = 0; render(); } break;
      case 'Enter':
        e.preventDefault();
        if (!input.value.trim() && active < 0) { hide(); if (onEmptyEnter) onEmptyEnter(); return; }
        choose(active >= 0 ? active : 0);
        break;
      case 'Escape':
        e.preventDefault();
        e.stopPropagation();
        if (confirming) { confirming = null; render(); } else if (input.value) { input.value = ''; active = -1; render(); } else { hide(); input.blur(); }
        break;
      case 'Tab': hide(); break;
      default: break;
    }
  });
  // Keep focus in the input while clicking an option.
  list.addEventListener('mousedown', (e) => e.preventDefault());
  list.addEventListener('click', (e) => {
    const li = e.target.closest('.class-option');
    if (!li) return;
    const i = [...list.querySelectorAll('.class-option')].indexOf(li);
    choose(i);
  });

  on('classes', () => { if (open) render(); });

  return {
    focus() { input.focus(); },
    clear() { input.value = ''; confirming = null; active = -1; if (open) render(); },
    close: hide,
    refresh() { if (open) render(); },
    setDisabled(d) { input.disabled = d; if (d) hide(); },
  };
}
