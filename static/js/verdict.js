// From detections messages to what the screens say: counts per label, one verdict for the scene, and the
// rule that decides when a new verdict replaces the shown one (docs/ARCHITECTURE.md, "When a verdict
// changes"). Which labels exist, and which verdict each one means, come from the server's /config.

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
 * The rule, counted in analysed frames (messages) because a face missed or misread is missed in a frame,
 * whatever the frame rate:
 * - after a reset (a start, a reconnection, a pause) nothing is known: the first verdict, "nobody"
 *   included, is shown once `confirmFrames` messages in a row say it (the screen is "starting" until then);
 * - a face verdict replaces what is shown (nobody, or another verdict) once `confirmFrames` messages in a
 *   row say it: one misread frame neither shows nor flips a verdict, and a person who arrives while the
 *   last one's verdict is still up gets their own directly;
 * - "nobody" replaces a verdict after `clearFrames` messages in a row without a face, or after two whose
 *   frames the server received `clearMs` or more apart (a slow analysis): one or two missed frames do not
 *   clear it. The frames' own times (`received_at`), not the messages' arrival, tell a blink of the
 *   camera from an absence: a busy analysis can deliver two frames of one short blink far apart.
 * So a verdict clears by the second empty frame after `clearMs` or the third before it: within
 * 2 x `clearMs` (0.7 s) of the first analysed frame without the face while frames come at least every
 * 0.35 s. Below about 3 analysed frames a second, two missed frames clear it.
 */
export const CONFIRM_FRAMES = 2;
export const CLEAR_FRAMES = 3;
export const CLEAR_MS = 350;

/**
 * What the screens show of the analysed stream: the verdict, and the counts and faces of the message it
 * was taken from, so that banner, counts, boxes and kiosk headline never disagree. Feed every message.
 */
export class SceneFilter {
  #labels;
  #verdicts;
  #candidate = null;
  #candidateFrames = 0;
  #misses = 0;
  #firstMissAt = 0;

  constructor({ labels, verdicts, confirmFrames = CONFIRM_FRAMES, clearFrames = CLEAR_FRAMES, clearMs = CLEAR_MS }) {
    this.#labels = labels;
    this.#verdicts = verdicts;
    this.confirmFrames = confirmFrames;
    this.clearFrames = clearFrames;
    this.clearMs = clearMs;
    this.reset();
  }

  /** The scene shown now: {verdict, counts, faces, frame}; verdict null while nothing is known. */
  shown = null;

  /** Nothing seen yet (after a pause, a reconnection): the next verdict must be confirmed again. */
  reset() {
    this.shown = { verdict: null, counts: countFaces([], this.#labels), faces: [], frame: null };
    this.#candidate = null;
    this.#candidateFrames = 0;
    this.#misses = 0;
  }

  /** Feed one detections message, arrived at `nowMs`; returns true when the shown scene changed. */
  update(message, nowMs) {
    const counts = message.counts ?? countFaces(message.faces, this.#labels);
    const seen = { verdict: verdictFor(counts, this.#verdicts), counts, faces: message.faces ?? [], frame: message.frame ?? null };
    if (seen.verdict === this.shown.verdict) return this.#adopt(seen);
    if (seen.verdict === 'none' && this.shown.verdict !== null) {
      this.#candidate = null;
      this.#misses += 1;
      const frameAt = typeof message.received_at === 'number' ? message.received_at : nowMs;
      if (this.#misses === 1) this.#firstMissAt = frameAt;
      const slowAndGone = this.#misses >= 2 && frameAt - this.#firstMissAt >= this.clearMs;
      return this.#misses >= this.clearFrames || slowAndGone ? this.#adopt(seen) : false;
    }
    if (seen.verdict !== 'none') this.#misses = 0;
    if (seen.verdict !== this.#candidate) {
      this.#candidate = seen.verdict;
      this.#candidateFrames = 0;
    }
    this.#candidateFrames += 1;
    return this.#candidateFrames >= this.confirmFrames ? this.#adopt(seen) : false;
  }

  #adopt(seen) {
    const changed =
      seen.verdict !== this.shown.verdict ||
      Object.keys(seen.counts).some((label) => seen.counts[label] !== this.shown.counts[label]);
    this.shown = seen;
    this.#candidate = null;
    this.#candidateFrames = 0;
    this.#misses = 0;
    return changed;
  }
}

/**
 * Whether a newly shown kiosk verdict rings the chime: when an unmasked face appears, but not when the
 * same verdict returns after the screen stopped checking for a while (the analysis paused, the link
 * dropped briefly). The kiosk cannot tell the person who was there before from a new one, and ringing
 * twice at one person is the worse mistake. After a pause the scene shows "none" until the first verdict
 * is confirmed; that "none" means "not known yet", not "the person left", unless it lasts `settleMs`.
 */
export class ChimeTrigger {
  #lastVerdict = null; // the last verdict shown that says who is there
  #afterPause = false;
  #noneSince = null; // when a "none" right after a pause began

  constructor({ settleMs = 1200 } = {}) {
    this.settleMs = settleMs;
  }

  /** Call once per change of the shown verdict (or not-checking state, as 'paused'), at `nowMs`. */
  shown(verdict, nowMs) {
    if (verdict === 'starting') return false; // not known yet: says nothing about who is there
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
