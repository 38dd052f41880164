// When a page tries the server again: a short, capped, jittered wait between offers, the server's own
// Retry-After when it sends one, and a cheap probe of /healthz that ends the wait as soon as the server
// answers again. A kiosk then comes back within seconds of the server, for an outage of any length, and
// many kiosks that lost the same server do not all knock at the same instant when it starts.

/** Waits between failed offers, before jitter; the last one repeats (the cap). */
export const RETRY_STEPS_MS = [500, 1000, 2000, 4000, 5000];
/** How often a waiting page asks /healthz whether the server is back (each page at its own phase). */
export const HEALTH_POLL_MS = 1000;
/** At most this long, at random, between "the server answers" and the page's offer. */
export const RECONNECT_SPREAD_MS = 300;
/** A Retry-After longer than this is taken as this (a misconfigured proxy must not park a kiosk). */
export const RETRY_AFTER_MAX_MS = 60000;

/** The wait before offer number `attempt` + 1: 50-100 % of its step, never less than `retryAfterMs`. */
export function retryDelay(attempt, retryAfterMs = 0, random = Math.random) {
  const step = RETRY_STEPS_MS[Math.min(attempt, RETRY_STEPS_MS.length - 1)];
  return Math.max(Math.round(step * (0.5 + 0.5 * random())), Math.min(retryAfterMs, RETRY_AFTER_MAX_MS));
}

/** Milliseconds from a Retry-After header (seconds, or an HTTP date); 0 without one. */
export function parseRetryAfter(header, nowMs = Date.now()) {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : 0;
}

/**
 * Asks `url` every HEALTH_POLL_MS (one request at a time, each bounded) until it answers 200, then calls
 * `onBack` once. `stop()` ends it early.
 */
export class HealthProbe {
  #timer = null;
  #stopped = false;

  constructor(url, onBack, { intervalMs = HEALTH_POLL_MS } = {}) {
    this.url = url;
    this.onBack = onBack;
    this.intervalMs = intervalMs;
    this.#schedule(this.intervalMs * Math.random());
  }

  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs) {
    if (!this.#stopped) this.#timer = setTimeout(() => this.#ask(), delayMs);
  }

  async #ask() {
    if (await answers(this.url, this.intervalMs)) {
      if (!this.#stopped) {
        this.#stopped = true;
        this.onBack();
      }
      return;
    }
    this.#schedule(this.intervalMs);
  }
}

/** Whether anything answers `url` (any HTTP status) within `timeoutMs`: the server is there. */
export async function reachable(url, timeoutMs) {
  try {
    await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
    return true;
  } catch {
    return false;
  }
}

/** Whether `url` answers 200 within `timeoutMs`. */
export async function answers(url, timeoutMs) {
  try {
    const response = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
    return response.ok;
  } catch {
    return false;
  }
}
