// The page's link to the mask-detection server: /config and /offer over HTTP, then one WebRTC peer
// connection that sends the camera, receives the annotated video and the data channel of detections, and
// reconnects by itself when the connection fails or the server restarts: within seconds of the server's
// /healthz answering again (retry.js). The data channel's
// name, like every other setting of the stream, comes from the server's /config. The messages of its errors
// are in the page's language (texts.js); a detail the server sent stays as it is, inside them.

import { LANG, t } from './i18n.js';
import { HealthProbe, parseRetryAfter, reachable, RECONNECT_SPREAD_MS, retryDelay } from './retry.js';

const REQUEST_TIMEOUT_MS = 10000;
const ICE_GATHERING_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 15000;
const DISCONNECTED_GRACE_MS = 4000;
const SILENCE_LIMIT_MS = 8000;
// Nothing at all (not even a pong) for this long: ask /healthz whether the server is still there, so that a
// killed server is noticed in seconds rather than when ICE gives up.
const PROBE_SILENCE_MS = 2500;
const PING_INTERVAL_MS = 1000;
const STABLE_CONNECTION_MS = 10000;
// Failures after which the server's /healthz says when to try again (not capacity or a rate limit: those
// have their own Retry-After, and /healthz answers 200 while the server is full).
const PROBED_KINDS = new Set(['unreachable', 'lost', 'loading', 'server']);

const pageParams = new URLSearchParams(window.location.search);
const pageToken = pageParams.get('token');
// ?location=NAME names this camera in the server's history (e.g. "Main entrance"); "unnamed" without it.
export const pageLocation = pageParams.get('location');
const pageLang = pageParams.get('lang');

/**
 * URL of a server route relative to this page, with `params`, carrying the page's access token (and, for
 * a page, its ?lang=) when it has one.
 */
export function serverUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.search = '';
  url.hash = '';
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  if (pageToken) url.searchParams.set('token', pageToken);
  return url.toString();
}

/** A link to another page of this server that keeps this page's token and language. */
export function pageUrl(path) {
  return serverUrl(path, pageLang ? { lang: pageLang } : {});
}

/** A failure talking to the server, with a `kind` the pages turn into a message. */
export class ServerError extends Error {
  constructor(kind, message, { status = 0, retryAfterMs = 0, maxSessions = null, reason = null } = {}) {
    super(message);
    this.name = 'ServerError';
    this.kind = kind;
    this.status = status;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
    this.maxSessions = maxSessions;
  }

  /** Whether trying again later can help (a wrong token or a rejected offer will not get better). */
  get retryable() {
    return this.kind !== 'unauthorized' && this.kind !== 'rejected';
  }
}

function errorForResponse(status, body, retryAfterHeader) {
  const detail = typeof body.error === 'string' ? body.error : `HTTP ${status}`;
  const retryAfterMs = parseRetryAfter(retryAfterHeader);
  const options = { status, retryAfterMs, maxSessions: body.maxSessions ?? null, reason: body.reason ?? null };
  if (status === 401 || status === 403) return new ServerError('unauthorized', detail, options);
  if (status === 429) return new ServerError('rate-limited', detail, options);
  if (status === 503 && body.reason === 'loading') return new ServerError('loading', detail, options);
  if (status === 503) return new ServerError('capacity', detail, options);
  if (status >= 500) return new ServerError('server', detail, options);
  return new ServerError('rejected', detail, options);
}

/** GET or POST a server route; the JSON answer, or a ServerError. */
export async function requestJson(path, init = {}, params = {}) {
  let response;
  try {
    response = await fetch(serverUrl(path, params), {
      cache: 'no-store',
      credentials: 'same-origin',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...init,
    });
  } catch (error) {
    throw new ServerError('unreachable', t('msg.cannotReach', { detail: error.message }));
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok) throw errorForResponse(response.status, body, response.headers.get('Retry-After'));
  return body;
}

/** The server's settings for the page: ICE servers, labels and verdicts, data channel, camera size. */
export async function fetchConfig() {
  const config = await requestJson('config');
  const complete =
    Array.isArray(config.labels) &&
    config.verdicts &&
    typeof config.dataChannelLabel === 'string' &&
    Number.isInteger(config.video?.width);
  if (!complete) throw new ServerError('server', t('msg.badSettings'));
  return config;
}

/** Today's passages at this page's ?location= (the server's `unnamed` without one), from the history. */
export function fetchToday() {
  return requestJson('today', {}, pageLocation ? { location: pageLocation } : {});
}

function postOffer(description, counted, overlay) {
  return requestJson('offer', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      sdp: description.sdp,
      type: description.type,
      ...(pageLocation ? { location: pageLocation } : {}),
      ...(counted ? {} : { count: false }),
      lang: LANG,
      ...(overlay === 'page' ? { overlay } : {}),
    }),
  });
}

/** aiortc has no trickle ICE: the offer must carry every candidate, so wait for gathering (bounded). */
function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

/**
 * One camera stream to the server and back, kept alive until `stop()`.
 *
 * Events: `status` (detail: {state, error, retryInMs, attempt}) with state one of
 * `connecting`, `connected`, `waiting` (a retry is scheduled), `failed` (no retry will help), `stopped`;
 * `analysis` (detail: the parsed detections message of one analysed frame); `remotestream` (detail: MediaStream or null).
 */
export class LiveLink extends EventTarget {
  #stream = null;
  #pc = null;
  #channel = null;
  #generation = 0;
  #attempt = 0;
  #timers = new Set();
  #connectedAt = 0;
  #lastMessageAt = 0;
  #pingId = 0;
  #state = 'stopped';
  #probe = null;
  #probing = false;
  #options = {};

  config = null;
  session = null;
  /** Whether the server counts this camera's passages in its history (the main page: only with ?location=). */
  counted = true;
  messagesReceived = 0;
  lastRoundTripMs = null;

  get state() {
    return this.#state;
  }

  get peerConnection() {
    return this.#pc;
  }

  /**
   * Connect `stream` (its first video track) and keep it connected. With `overlay: 'page'` the page draws
   * the boxes itself: the server is asked for no video back, and the camera is sent at no more than
   * `maxFramerate` frames per second (the browser's encoder keeps to it; the analysis uses no more).
   */
  start(stream, { overlay = 'server', maxFramerate = null } = {}) {
    this.stop();
    this.#options = { overlay, maxFramerate };
    this.#stream = stream;
    this.#attempt = 0;
    this.#connect();
  }

  /** Send another camera stream without renegotiating (camera or resolution changed). */
  async replaceStream(stream) {
    this.#stream = stream;
    const sender = this.#pc?.getSenders().find((s) => s.track?.kind === 'video' || s.track === null);
    if (sender) await sender.replaceTrack(stream.getVideoTracks()[0]);
  }

  /** Skip the remaining backoff wait (e.g. the browser came back online). */
  retryNow() {
    if (this.#state === 'waiting') {
      this.#clearTimers();
      this.#connect();
    }
  }

  stop() {
    this.#generation += 1;
    this.#clearTimers();
    this.#closePeer();
    this.#stream = null;
    if (this.#state !== 'stopped') this.#setState('stopped');
  }

  #setState(state, extra = {}) {
    this.#state = state;
    this.dispatchEvent(new CustomEvent('status', { detail: { state, ...extra } }));
  }

  #later(callback, delayMs) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      callback();
    }, delayMs);
    this.#timers.add(timer);
    return timer;
  }

  #every(callback, intervalMs) {
    const timer = setInterval(callback, intervalMs);
    this.#timers.add(timer);
  }

  #clearTimers() {
    this.#probe?.stop();
    this.#probe = null;
    for (const timer of this.#timers) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.#timers.clear();
  }

  #closePeer() {
    if (this.#channel) {
      this.#channel.onclose = null;
      this.#channel.onmessage = null;
    }
    this.#channel = null;
    if (this.#pc) {
      this.#pc.onconnectionstatechange = null;
      this.#pc.ontrack = null;
      this.#pc.close();
      this.#pc = null;
      this.dispatchEvent(new CustomEvent('remotestream', { detail: null }));
    }
    this.session = null;
    this.lastRoundTripMs = null;
  }

  async #connect() {
    const generation = ++this.#generation;
    this.#setState('connecting', { attempt: this.#attempt });
    try {
      await this.#negotiate(generation);
    } catch (error) {
      if (generation === this.#generation) this.#lost(error);
    }
  }

  async #negotiate(generation) {
    const config = await fetchConfig();
    if (generation !== this.#generation) return;
    this.config = config;
    const pc = new RTCPeerConnection({ iceServers: Array.isArray(config.iceServers) ? config.iceServers : [] });
    this.#pc = pc;
    const channel = pc.createDataChannel(config.dataChannelLabel);
    this.#channel = channel;
    channel.onmessage = (event) => {
      if (generation === this.#generation) this.#onMessage(event.data);
    };
    channel.onclose = () => this.#lost(new ServerError('lost', t('msg.closed')));
    const { overlay, maxFramerate } = this.#options;
    const pageDrawn = overlay === 'page';
    pc.addTransceiver(this.#stream.getVideoTracks()[0], {
      direction: pageDrawn ? 'sendonly' : 'sendrecv',
      streams: [this.#stream],
      ...(pageDrawn && maxFramerate > 0 ? { sendEncodings: [{ maxFramerate }] } : {}),
    });
    pc.ontrack = (event) => {
      const remote = event.streams[0] ?? new MediaStream([event.track]);
      this.dispatchEvent(new CustomEvent('remotestream', { detail: remote }));
    };
    pc.onconnectionstatechange = () => this.#onConnectionState(pc, generation);
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc, ICE_GATHERING_TIMEOUT_MS);
    if (generation !== this.#generation) return;
    const answer = await postOffer(pc.localDescription, this.counted, overlay);
    if (generation !== this.#generation) return;
    this.session = answer.session ?? null;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    this.#later(() => {
      if (pc.connectionState !== 'connected') {
        this.#lost(new ServerError('lost', t('msg.setupFailed')));
      }
    }, CONNECT_TIMEOUT_MS);
  }

  #onConnectionState(pc, generation) {
    if (generation !== this.#generation) return;
    const state = pc.connectionState;
    if (state === 'connected' && this.#state !== 'connected') {
      this.#connectedAt = performance.now();
      this.#lastMessageAt = this.#connectedAt;
      this.#setState('connected');
      this.#every(() => this.#watch(), PING_INTERVAL_MS);
    } else if (state === 'failed' || state === 'closed') {
      this.#lost(new ServerError('lost', t('msg.connectionLost')));
    } else if (state === 'disconnected') {
      this.#later(() => {
        if (generation === this.#generation && pc.connectionState !== 'connected') {
          this.#lost(new ServerError('lost', t('msg.connectionLost')));
        }
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** Once a second: measure the round trip, and notice a server that went silent (killed, restarted). */
  #watch() {
    const silentMs = performance.now() - this.#lastMessageAt;
    if (silentMs > SILENCE_LIMIT_MS) {
      this.#lost(new ServerError('lost', t('msg.silent')));
      return;
    }
    if (silentMs > PROBE_SILENCE_MS) this.#askIfServerIsThere();
    if (this.#channel?.readyState === 'open') {
      this.#pingId += 1;
      this.#channel.send(JSON.stringify({ type: 'ping', id: this.#pingId, t: performance.now() }));
    }
  }

  #onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    this.#lastMessageAt = performance.now();
    if (message.type === 'pong') {
      if (typeof message.t === 'number') this.lastRoundTripMs = performance.now() - message.t;
      return;
    }
    if (!Array.isArray(message.faces)) return;
    this.messagesReceived += 1;
    this.dispatchEvent(new CustomEvent('analysis', { detail: message }));
  }

  /** One /healthz request at a time; no answer at all means the server is gone (not merely busy). */
  async #askIfServerIsThere() {
    if (this.#probing) return;
    this.#probing = true;
    const generation = this.#generation;
    const there = await reachable(serverUrl('healthz'), 2 * PING_INTERVAL_MS);
    this.#probing = false;
    if (!there && generation === this.#generation) this.#lost(new ServerError('unreachable', t('msg.silent')));
  }

  #lost(error) {
    if (this.#state === 'stopped' || this.#state === 'waiting' || this.#state === 'failed') return;
    const wasStable = this.#connectedAt > 0 && performance.now() - this.#connectedAt > STABLE_CONNECTION_MS;
    if (wasStable) this.#attempt = 0;
    this.#connectedAt = 0;
    this.#generation += 1;
    this.#clearTimers();
    this.#closePeer();
    const serverError = error instanceof ServerError ? error : new ServerError('lost', String(error?.message ?? error));
    if (!serverError.retryable) {
      this.#setState('failed', { error: serverError });
      return;
    }
    const retryInMs = retryDelay(this.#attempt, serverError.retryAfterMs);
    const attempt = this.#attempt;
    this.#attempt += 1;
    const probing = PROBED_KINDS.has(serverError.kind);
    this.#setState('waiting', { error: serverError, retryInMs, attempt, probing });
    this.#later(() => this.#connect(), retryInMs);
    if (probing) this.#probe = new HealthProbe(serverUrl('healthz'), () => this.#serverIsBack());
  }

  /** /healthz answered: offer again now, after a short random spread (many kiosks, one server). */
  #serverIsBack() {
    this.#probe = null;
    this.#later(() => this.retryNow(), Math.random() * RECONNECT_SPREAD_MS);
  }
}
