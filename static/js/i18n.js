// The language of a page and its texts: ?lang=en|ko, else the browser's first language that has a
// table in texts.js, else English. Numbers, dates and times are formatted for that language (Intl).

import { TEXTS } from './texts.js';

export const LANGUAGES = Object.keys(TEXTS);
const FALLBACK = 'en';

/** The language to speak, from the URL's `lang` and the browser's preferred languages. */
export function chooseLanguage(search = window.location.search, preferred = navigator.languages ?? []) {
  const asked = new URLSearchParams(search).get('lang')?.toLowerCase();
  if (asked && Object.hasOwn(TEXTS, asked)) return asked;
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (Object.hasOwn(TEXTS, base)) return base;
  }
  return FALLBACK;
}

export const LANG = chooseLanguage();

/** The text of `key` in the page's language, with `{name}` filled from `values`. */
export function t(key, values = {}) {
  const text = TEXTS[LANG][key] ?? TEXTS[FALLBACK][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

/** Whether the table has a text for `key` (labels the server adds later fall back to its own text). */
export function hasText(key) {
  return Object.hasOwn(TEXTS[LANG], key);
}

/** A class label's name: the table's, else the server's `labelText`, else the label itself. */
export function labelName(label, config, prefix = 'label.') {
  if (hasText(prefix + label)) return t(prefix + label);
  return config?.labelText?.[label] ?? label;
}

/** Fill every element marked `data-i18n` (text), `data-i18n-aria-label` and `data-i18n-title`. */
export function translatePage(root = document) {
  document.documentElement.lang = LANG;
  for (const element of root.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll('[data-i18n-aria-label]')) {
    element.setAttribute('aria-label', t(element.dataset.i18nAriaLabel));
  }
  for (const element of root.querySelectorAll('[data-i18n-title]')) element.title = t(element.dataset.i18nTitle);
}

const numberFormats = new Map();

/** A number for this language ("1,234", "29.8"), or a dash when unknown. */
export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (!numberFormats.has(digits)) {
    numberFormats.set(
      digits,
      new Intl.NumberFormat(LANG, { minimumFractionDigits: digits, maximumFractionDigits: digits }),
    );
  }
  return numberFormats.get(digits).format(value);
}

/** A number with its unit, from a `unit.*` text ("29.8 fps"), or a dash when unknown. */
export function formatUnit(value, digits, unitKey) {
  const number = formatNumber(value, digits);
  return number === '–' ? number : t(unitKey, { value: number });
}

/** A share from 0 to 1 as a percentage for this language ("67%"), or a dash for none. */
export function formatPercent(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return '–';
  return new Intl.NumberFormat(LANG, { style: 'percent', maximumFractionDigits: 0 }).format(share);
}

/** A date or time for this language; `options` as Intl.DateTimeFormat's (with `timeZone`, the server's). */
export function formatDate(date, options) {
  return new Intl.DateTimeFormat(LANG, options).format(date);
}

/** The one time-of-day format of the operator's screens: 2-digit hours, minutes and (optionally) seconds. */
export function formatClock(date, { seconds = true, timeZone } = {}) {
  const options = { hour: '2-digit', minute: '2-digit', timeZone };
  if (seconds) options.second = '2-digit';
  return formatDate(date, options);
}
