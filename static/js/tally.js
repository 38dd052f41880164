// The kiosk's own count of today, kept in localStorage per local date so that a reload or a restart of the
// kiosk's browser does not lose it. The kiosk shows the server's counts (its history's passages); this one
// only while the server cannot be reached.
//
// People are counted per visit, not per frame: a visit lasts while faces are in view (gaps shorter than
// `gapMs` are the detector blinking). Within a visit, a number of faces counts once it has been seen in
// `confirmMessages` messages in a row, and only the rise above what the visit already counted is added:
// one person standing in front of the camera for a minute counts once; a second person joining counts one
// more. A person who puts their mask on during a visit counts once in each column they were seen in.

const KEY_PREFIX = 'maskcheck.tally.';
const KEEP_DAYS = 31;

/** Local calendar date as YYYY-MM-DD. */
export function localDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export class DailyTally {
  #visitCounted = null;
  #recent = [];
  #lastFaceAt = -Infinity;
  #date = null;
  #totals = null;

  /** `labels`: the class labels of the server's /config. */
  constructor({ labels, storage = window.localStorage, clock = () => new Date(), gapMs = 2000, confirmMessages = 3 }) {
    this.labels = labels;
    this.keys = ['people', ...labels];
    this.#visitCounted = this.#empty();
    this.#totals = this.#empty();
    this.storage = storage;
    this.clock = clock;
    this.gapMs = gapMs;
    this.confirmMessages = confirmMessages;
    this.#load();
  }

  #empty() {
    return Object.fromEntries(this.keys.map((key) => [key, 0]));
  }

  /** Today's totals: {date, people, and one count per label}. */
  get today() {
    this.#rollOver();
    return { date: this.#date, ...this.#totals };
  }

  /** Feed one message's face counts at `nowMs`; returns true when a total changed. */
  observe(counts, nowMs) {
    this.#rollOver();
    const frame = { ...counts, people: this.labels.reduce((sum, label) => sum + (counts[label] ?? 0), 0) };
    if (frame.people > 0) {
      if (nowMs - this.#lastFaceAt > this.gapMs) {
        this.#visitCounted = this.#empty();
        this.#recent = [];
      }
      this.#lastFaceAt = nowMs;
    }
    this.#recent.push(frame);
    if (this.#recent.length > this.confirmMessages) this.#recent.shift();
    if (this.#recent.length < this.confirmMessages) return false;
    let changed = false;
    for (const key of this.keys) {
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
    this.#totals = this.#empty();
    try {
      const saved = JSON.parse(this.storage.getItem(KEY_PREFIX + this.#date) ?? '{}');
      for (const key of this.keys) {
        if (Number.isInteger(saved[key]) && saved[key] >= 0) this.#totals[key] = saved[key];
      }
      this.#forgetOldDays();
    } catch {
      this.#totals = this.#empty();
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
