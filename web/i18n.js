// dragoman interface languages: every visible string of the pages lives in
// web/i18n/<code>.json, one flat file per language ("key": "text"), English
// the fallback. No page hard-codes a visible string: the HTML keeps English
// as a fallback, each such element has data-i18n="key" (its text) and/or
// data-i18n-attr="aria-label:key;title:key2" (its attributes), and scripts
// call t(key, vars).
//
// A value is a string, with {name} placeholders, or an object of plural
// forms picked by Intl.PluralRules for vars.n ({"one": "...", "few": "...",
// "many": "...", "other": "..."}). Keys a page asks for that the language
// lacks are collected in window.dragomanI18n.missing (tests check it stays
// empty). The choice of language is remembered in localStorage (UI_KEY),
// shared by the pages: it is the person's language, not the page's.

export const LANGS = ['en', 'hy', 'az', 'ru', 'tr'];
const UI_KEY = 'dragoman.uiLang';
const RTL = new Set(['ar', 'arc', 'ckb', 'dv', 'fa', 'he', 'ps', 'sd', 'ug', 'ur', 'yi']);

const dicts = new Map(); // code -> Promise of the dictionary
const listeners = [];
let dict = {};
let fallback = {};
let plural = new Intl.PluralRules('en');
let numberFmt = new Map();

export const i18n = { lang: null, missing: new Set(), loaded: [] };
window.dragomanI18n = i18n; // tests read lang and missing

function load(code) {
  if (!dicts.has(code)) {
    dicts.set(code, (async () => {
      // A slow phone link may drop one request: try again before giving up.
      for (let i = 1; ; i++) {
        try {
          const res = await fetch(`i18n/${code}.json`);
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const d = await res.json();
          i18n.loaded.push(code);
          return d;
        } catch (e) {
          if (i >= 3) { console.warn(`dragoman: cannot load i18n/${code}.json`, e); return {}; }
          await new Promise((r) => setTimeout(r, 300 * i));
        }
      }
    })());
  }
  return dicts.get(code);
}

// The supported code for a BCP-47 tag ("ru-RU" -> "ru", "az-Latn-AZ" -> "az"), or null.
export function match(tag, supported = LANGS) {
  if (!tag) return null;
  const primary = String(tag).toLowerCase().split(/[-_]/)[0];
  return supported.includes(primary) ? primary : null;
}

export function browserLanguage(supported = LANGS) {
  for (const tag of navigator.languages || [navigator.language]) {
    const m = match(tag, supported);
    if (m) return m;
  }
  return null;
}

export function savedLanguage(supported = LANGS) {
  try { return match(localStorage.getItem(UI_KEY), supported); } catch { return null; }
}

export function saveLanguage(code) {
  try { localStorage.setItem(UI_KEY, code); } catch { /* private mode */ }
}

function lookup(key) {
  if (key in dict) return dict[key];
  i18n.missing.add(`${i18n.lang}:${key}`);
  if (key in fallback) return fallback[key];
  return key;
}

// Whether `key` has a text (in this language or English): for optional ones.
export function has(key) { return key in dict || key in fallback; }

// The text of `key` in the current language, placeholders filled from vars.
export function t(key, vars = {}) {
  let v = lookup(key);
  if (v && typeof v === 'object') v = v[plural.select(Number(vars.n) || 0)] ?? v.other ?? '';
  return String(v).replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

// A number in the current language's digits and decimal sign (no grouping:
// "1234 ms", like the figures engineers compare).
export function num(v, digits = 0) {
  const k = digits;
  if (!numberFmt.has(k)) {
    numberFmt.set(k, new Intl.NumberFormat(i18n.lang || 'en', { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false }));
  }
  return numberFmt.get(k).format(v);
}

// The name of a language (BCP-47 code) in the current language, or null:
// the conference's languages from the strings (lang.xx: browsers' own
// language-name data is often trimmed), others from Intl.DisplayNames.
export function languageName(code) {
  const key = `lang.${code}`;
  if (key in dict || key in fallback) return t(key);
  try {
    const n = new Intl.DisplayNames([i18n.lang || 'en'], { type: 'language', fallback: 'none' }).of(code);
    return n && n.toLowerCase() !== String(code).toLowerCase() ? n : null;
  } catch { return null; }
}

// Fills data-i18n / data-i18n-attr elements under root.
export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

// Switches the page to `code`: loads its strings (and English, the fallback),
// sets <html lang dir>, fills the marked elements and tells the page.
export async function setLanguage(code) {
  code = match(code) || 'en';
  const [d, en] = await Promise.all([load(code), load('en')]);
  dict = d;
  fallback = en;
  i18n.lang = code;
  plural = new Intl.PluralRules(code);
  numberFmt = new Map();
  document.documentElement.lang = code;
  document.documentElement.dir = RTL.has(code) ? 'rtl' : 'ltr';
  apply(document);
  for (const fn of listeners) fn(code);
  return code;
}

export function onLanguage(fn) { listeners.push(fn); }

// A <select> of interface languages, each option in its own language.
export function fillPicker(select, supported = LANGS) {
  select.replaceChildren(...supported.map((code) => {
    const o = new Option(t(`langName.${code}`), code);
    o.lang = code;
    return o;
  }));
  select.value = i18n.lang;
}
