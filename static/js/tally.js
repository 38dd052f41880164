// Today's counts for the kiosk, kept in localStorage per local date so that a reload or a restart of the
// kiosk's browser does not lose them.
//
// People are counted per visit, not per frame: a visit lasts while faces are in view (gaps shorter than
// `gapMs` are the detector blinking). Within a visit, a number of faces counts once it has been seen in
// `confirmMessages` messages in a row, and only the rise above what the visit already counted is added:
// one person standing in front of the camera for a minute counts once; a second person joining counts one
// more. A person who puts their mask on during a visit counts once in each column they were seen in.

import { LABELS } from './verdict.js';

const KEY_PREFIX = 'maskcheck.tally.';
const KEEP_DAYS = 31;
const KEYS = ['people', ...LABELS];

function emptyCounts() {
  return Object.fromEntries(KEYS.map((key) => [key, 0]));
}

/** Local calendar date as YYYY-MM-DD. */
export function localDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export class DailyTally {
  #visitCounted = emptyCounts();
  #recent = [];
  #lastFaceAt = -Infinity;
  #date = null;
  #totals = emptyCounts();

  constructor({ storage = window.localStorage, clock = () => new Date(), gapMs = 2000, confirmMessages = 3 } = {}) {
    this.storage = storage;
    this.clock = clock;
    this.gapMs = gapMs;
    this.confirmMessages = confirmMessages;
    this.#load();
  }

  /** Today's totals: {date, people, with_mask, without_mask, mask_worn_incorrectly}. */
  get today() {
    this.#rollOver();
    return { date: this.#date, ...this.#totals };
  }

  /** Feed one message's face counts at `nowMs`; returns true when a total changed. */
  observe(counts, nowMs) {
    this.#rollOver();
    const frame = { ...counts, people: LABELS.reduce((sum, label) => sum + (counts[label] ?? 0), 0) };
    if (frame.people > 0) {
      if (nowMs - this.#lastFaceAt > this.gapMs) {
        this.#visitCounted = emptyCounts();
        this.#recent = [];
      }
      this.#lastFaceAt = nowMs;
    }
    this.#recent.push(frame);
    if (this.#recent.length > this.confirmMessages) this.#recent.shift();
    if (this.#recent.length < this.confirmMessages) return false;
    let changed = false;
    for (const key of KEYS) {
      const confirmed = Math.min(...this.#recent.map((entry) => entry[key] ?? 0));
      if (confirmed > this.#visitCounted[key]) {
        this.#totals[key] += confirmed - this.#visitCounted[key];
        this.#visitCounted[key] = confirmed;
        changed = true;
      }
    }
    if (changed) this.#save();
    return changed;
  }

  #rollOver() {
    if (localDate(this.clock()) !== this.#date) this.#load();
  }

  #load() {
    this.#date = localDate(this.clock());
    this.#totals = emptyCounts();
    try {
      const saved = JSON.parse(this.storage.getItem(KEY_PREFIX + this.#date) ?? '{}');
      for (const key of KEYS) {
        if (Number.isInteger(saved[key]) && saved[key] >= 0) this.#totals[key] = saved[key];
      }
      this.#forgetOldDays();
    } catch {
      this.#totals = emptyCounts();
    }
  }

  #save() {
    try {
      this.storage.setItem(KEY_PREFIX + this.#date, JSON.stringify(this.#totals));
    } catch {
      // Storage full or disabled: the counts still live in memory for today.
    }
  }

  #forgetOldDays() {
    const oldest = new Date(this.clock());
    oldest.setDate(oldest.getDate() - KEEP_DAYS);
    const cutoff = KEY_PREFIX + localDate(oldest);
    const stale = [];
    for (let i = 0; i < this.storage.length; i += 1) {
      const key = this.storage.key(i);
      if (key?.startsWith(KEY_PREFIX) && key < cutoff) stale.push(key);
    }
    for (const key of stale) this.storage.removeItem(key);
  }
}
