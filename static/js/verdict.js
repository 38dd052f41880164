// From one detections message to what the pages say: counts per label, one verdict for the scene, and a
// filter that keeps the verdict from flickering when a single frame misses or misreads a face. Which
// labels exist, and which verdict each one means, come from the server's /config (`labels`, `verdicts`).

/** Faces of each of `labels` in one message. */
export function countFaces(faces, labels) {
  const counts = Object.fromEntries(labels.map((label) => [label, 0]));
  for (const face of faces ?? []) {
    if (face && Object.hasOwn(counts, face.label)) counts[face.label] += 1;
  }
  return counts;
}

/**
 * The scene in one word: the verdict of the most urgent label with a face in view (`verdicts` maps each
 * label to its verdict, the most urgent first, as /config sends it), or `none` with no face in view.
 */
export function verdictFor(counts, verdicts) {
  for (const [label, verdict] of Object.entries(verdicts)) {
    if ((counts[label] ?? 0) > 0) return verdict;
  }
  return 'none';
}

/**
 * Adopts a new verdict only once it has lasted `holdMs` over at least two messages; "no face" must last
 * longer (`clearMs`), because the detector misses a face in a single frame more often than it invents one.
 */
export class VerdictFilter {
  constructor({ holdMs = 300, clearMs = 1200 } = {}) {
    this.holdMs = holdMs;
    this.clearMs = clearMs;
    this.current = 'none';
    this.candidate = null;
    this.candidateSince = 0;
    this.candidateMessages = 0;
  }

  /** Feed one message's verdict at time `nowMs`; returns the filtered verdict. */
  update(verdict, nowMs) {
    if (verdict === this.current) {
      this.candidate = null;
      return this.current;
    }
    if (verdict !== this.candidate) {
      this.candidate = verdict;
      this.candidateSince = nowMs;
      this.candidateMessages = 0;
    }
    this.candidateMessages += 1;
    const needed = verdict === 'none' ? this.clearMs : this.holdMs;
    if (this.candidateMessages >= 2 && nowMs - this.candidateSince >= needed) {
      this.current = verdict;
      this.candidate = null;
    }
    return this.current;
  }

  reset() {
    this.current = 'none';
    this.candidate = null;
  }
}

/**
 * How long a connected page waits for the next analysed frame before it stops showing the last verdict.
 * The server sends a message for every analysed frame, faces or none, so silence means the analysis has
 * stalled or fails (a busy machine, a hung or restarting analysis process): the banner must not keep
 * greeting the next person with the previous person's verdict. Several times the gap between two
 * messages of a loaded server (bench/RESULTS.md), and short next to a visit at a door.
 */
export const ANALYSIS_SILENCE_MS = 5000;

/** Tells when the analysis has been silent for `silenceMs` since the connection or its last message. */
export class AnalysisWatch {
  constructor({ silenceMs = ANALYSIS_SILENCE_MS } = {}) {
    this.silenceMs = silenceMs;
    this.since = null;
  }

  /** The connection is up (or a message arrived) at `nowMs`: silence counts from here. */
  heard(nowMs) {
    this.since = nowMs;
  }

  /** Not connected: nothing is expected, so nothing is silent. */
  stop() {
    this.since = null;
  }

  /** Whole seconds without a message at `nowMs`, when that is `silenceMs` or more; else null. */
  silentFor(nowMs) {
    if (this.since === null || nowMs - this.since < this.silenceMs) return null;
    return Math.floor((nowMs - this.since) / 1000);
  }
}

/**
 * Whether a newly shown kiosk verdict rings the chime: when an unmasked face appears, but not when the
 * same verdict returns after the analysis paused. The kiosk cannot tell the person who was there before
 * the pause from a new one, and ringing twice at one person is the worse mistake. After a pause the page
 * resets its VerdictFilter, which shows "none" until the first verdict has lasted its hold time; that
 * "none" means "not known yet", not "the person left", unless it lasts `settleMs` (the filter's own
 * time for adopting "no face").
 */
export class ChimeTrigger {
  #lastVerdict = null; // the last verdict shown that says who is there ('paused' never does)
  #afterPause = false;
  #noneSince = null; // when a "none" right after a pause began

  constructor({ settleMs = 1200 } = {}) {
    this.settleMs = settleMs;
  }

  /** Call once per change of the shown verdict, at `nowMs`; true when the chime should ring. */
  shown(verdict, nowMs) {
    if (verdict === 'paused') {
      this.#afterPause = true;
      return false;
    }
    if (verdict === 'none' && this.#afterPause) {
      this.#afterPause = false;
      this.#noneSince = nowMs;
      return false;
    }
    if (this.#noneSince !== null && nowMs - this.#noneSince >= this.settleMs) this.#lastVerdict = 'none';
    this.#noneSince = null;
    this.#afterPause = false;
    const ring = verdict === 'unmasked' && this.#lastVerdict !== 'unmasked';
    this.#lastVerdict = verdict;
    return ring;
  }
}
