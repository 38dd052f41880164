// Whether a screen is checking, and if so what it sees: the one source that the main page's banner and
// counts, the kiosk's headline and any boxes the page draws itself all follow. A screen checks only while
// its camera is open, its link to the server is up and analysed frames keep coming; in every other case it
// says it is not checking (and why), shows no verdict and no counts, and greets nobody.

import { SceneFilter } from './verdict.js';

/**
 * How long a connected screen waits for the next analysed frame before it says it is not checking. The
 * server sends a message for every analysed frame, faces or none, 10-25 a second for one camera here and
 * at most 0.7 s apart under load (docs/API.md), so silence means the analysis stalled, failed or the
 * server is gone: the screen must not keep showing the last person's verdict to the next one.
 */
export const ANALYSIS_SILENCE_MS = 1500;

/** Why a screen is not checking; null while it checks. */
export const NOT_CHECKING = Object.freeze({
  starting: 'starting', // the camera or the link is still opening, or no analysed frame has come yet
  camera: 'camera', // the camera is blocked, missing or lost
  offline: 'offline', // the server cannot be reached or refused the link
  paused: 'paused', // connected, but no analysed frame for ANALYSIS_SILENCE_MS
});

/**
 * Events: `change` (detail: the state) whenever what a screen should show changes. The state is
 * {checking, why, verdict, counts, faces, frame}: `why` one of NOT_CHECKING while not checking, when
 * `verdict` is null, counts are all 0 and faces empty.
 */
export class LiveScene extends EventTarget {
  #filter = null;
  #labels = [];
  #camera = 'starting'; // 'starting' | 'open' | 'failed'
  #link = 'stopped';
  #lastMessageAt = null; // since the link came up; null before its first analysed frame
  #connectedAt = null;
  #linkLost = false; // since the link last failed, until it is connected again
  #state = null;

  constructor({ silenceMs = ANALYSIS_SILENCE_MS } = {}) {
    super();
    this.silenceMs = silenceMs;
    this.#state = this.#notChecking(NOT_CHECKING.starting);
  }

  get state() {
    return this.#state;
  }

  /** The server's /config: the labels and the verdict each one means. */
  configure(config) {
    this.#labels = config.labels;
    this.#filter = new SceneFilter({ labels: config.labels, verdicts: config.verdicts });
    this.#update(performance.now());
  }

  cameraOpening() {
    this.#camera = 'starting';
    this.#update(performance.now());
  }

  cameraOpened() {
    this.#camera = 'open';
    this.#update(performance.now());
  }

  cameraFailed() {
    this.#camera = 'failed';
    this.#update(performance.now());
  }

  /** A LiveLink `status` detail. */
  linkStatus(status) {
    const now = performance.now();
    if (status.state === 'connected' && this.#link !== 'connected') this.#connectedAt = now;
    if (status.state !== 'connected') {
      this.#connectedAt = null;
      this.#lastMessageAt = null;
    }
    if (status.state === 'waiting' || status.state === 'failed') this.#linkLost = true;
    if (status.state === 'connected' || status.state === 'stopped') this.#linkLost = false;
    this.#link = status.state;
    this.#update(now);
  }

  /** A LiveLink `analysis` detail (one analysed frame). */
  analysed(message) {
    if (!this.#filter || this.#link !== 'connected') return;
    const now = performance.now();
    const wasBlocked = this.#blocked(now) !== null;
    this.#lastMessageAt = now;
    if (wasBlocked) this.#filter.reset();
    this.#filter.update(message, now);
    this.#update(now);
  }

  /** Whole seconds since the last analysed frame (or the connection), while connected; else null. */
  silentSeconds(now = performance.now()) {
    const since = this.#lastMessageAt ?? this.#connectedAt;
    return since === null ? null : Math.floor((now - since) / 1000);
  }

  /** Call often (every 250 ms): notices an analysis that went silent. */
  check() {
    this.#update(performance.now());
  }

  /** Why the screen cannot check now (camera, link, silence); null when analysed frames are coming. */
  #blocked(now) {
    if (this.#camera === 'failed') return NOT_CHECKING.camera;
    if (this.#linkLost) return NOT_CHECKING.offline; // retrying, too: no flicker between tries
    if (this.#camera !== 'open' || !this.#filter || this.#link !== 'connected') return NOT_CHECKING.starting;
    if (this.#lastMessageAt === null) {
      return now - this.#connectedAt >= this.silenceMs ? NOT_CHECKING.paused : NOT_CHECKING.starting;
    }
    return now - this.#lastMessageAt >= this.silenceMs ? NOT_CHECKING.paused : null;
  }

  #notChecking(why) {
    const counts = Object.fromEntries(this.#labels.map((label) => [label, 0]));
    return { checking: false, why, verdict: null, counts, faces: [], frame: null };
  }

  #update(now) {
    const blocked = this.#blocked(now);
    if (blocked !== null) this.#filter?.reset();
    // Frames are coming but no verdict is confirmed yet: still starting (greet nobody before knowing).
    const why = blocked ?? (this.#filter.shown.verdict === null ? NOT_CHECKING.starting : null);
    const next = why !== null ? this.#notChecking(why) : { checking: true, why: null, ...this.#filter.shown };
    const previous = this.#state;
    this.#state = next;
    const same =
      previous.why === next.why &&
      previous.verdict === next.verdict &&
      previous.faces === next.faces &&
      this.#labels.every((label) => previous.counts[label] === next.counts[label]);
    if (!same) this.dispatchEvent(new CustomEvent('change', { detail: next }));
  }
}
