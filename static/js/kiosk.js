// The kiosk: starts by itself, tells the person in front of the camera what to do, shows today's
// visitors at its location as the server's history counts them (the same numbers as every other screen
// there and the dashboard), and recovers from a lost camera or a restarted server without anyone touching
// it. The headline follows the live scene (scene.js: the same source as the main page's banner) and says
// plainly when the kiosk is not checking; the counts change when a passage has ended.
//
// URL options: ?camera=user|environment|<deviceId>, ?resolution=WIDTHxHEIGHT (default: the server's),
// ?token=..., ?location=NAME (as the main page: the name of this camera in the server's history) and
// ?lang=en|ko, ?overlay=page (the boxes drawn by this page over its camera, no video back from the server).

import { cameraAvailability, openCamera, stopStream } from './camera.js';
import { Chime } from './chime.js';
import { fetchConfig, fetchToday, LiveLink } from './connection.js';
import { formatDate, formatNumber, labelName, t, translatePage } from './i18n.js';
import { cameraMessage, linkMessage, retryCountdown } from './messages.js';
import { HEALTH_POLL_MS } from './retry.js';
import { LiveScene, NOT_CHECKING } from './scene.js';
import { FaceOverlay, mirrorsPreview, overlayMode } from './overlay.js';
import { StatsSampler } from './stats.js';
import { DailyTally, localDate } from './tally.js';
import { ChimeTrigger, countFaces } from './verdict.js';

// A blocked or lost camera is asked for again on the schedule of a lost server (retry.js).
const CAMERA_RETRY_MS = 2 * HEALTH_POLL_MS;
const SCENE_CHECK_MS = 250;
const REFUSED_RETRY_MS = 60000;
const CHIME_GAP_MS = 4000;
const TODAY_POLL_MS = 5000;
const CHIME_SETTING_KEY = 'maskcheck.kiosk.chime';
const LABELS_KEY = 'maskcheck.kiosk.labels';

const params = new URLSearchParams(window.location.search);
const cameraChoice = params.get('camera') || 'user';
const resolution = params.get('resolution');

const byId = (id) => document.getElementById(id);
const ui = {
  kiosk: byId('kiosk'),
  video: byId('kiosk-video'),
  overlayCanvas: byId('kiosk-overlay'),
  message: byId('kiosk-message'),
  headline: byId('kiosk-headline'),
  subline: byId('kiosk-subline'),
  status: byId('kiosk-status'),
  chimeButton: byId('chime-button'),
  soundHint: byId('sound-hint'),
  todayList: byId('today'),
  countsNote: byId('counts-note'),
  today: { people: byId('today-people') },
};

const link = new LiveLink();
const sampler = new StatsSampler(link);
const scene = new LiveScene();
// How long "nobody" must last after the kiosk stopped checking before an unmasked face rings again.
const chimeTrigger = new ChimeTrigger({ settleMs: 1500 });
const chime = new Chime();
let config = null;
let faceOverlay = null;
let tally = null;
// The server's last answer of /today ({counts, day: this screen's date then, at}), kept through failed
// polls (shown as stale) so that one slow or refused poll does not swap in this screen's own count.
let serverToday = null;
let todayFailed = false;
let cameraStream = null;
let openingCamera = null;
let cameraRetryTimer = null;
let linkStatus = { state: 'stopped' };
let retryAt = 0;
let shownVerdict = 'starting';
let lastChimeAt = -Infinity;
let chimeEnabled = readChimeSetting();

function readChimeSetting() {
  try {
    return window.localStorage.getItem(CHIME_SETTING_KEY) === 'on';
  } catch {
    return false;
  }
}

function saveChimeSetting() {
  try {
    window.localStorage.setItem(CHIME_SETTING_KEY, chimeEnabled ? 'on' : 'off');
  } catch {
    // Without storage the setting lasts until the page reloads.
  }
}

/** The headline of the scene: a verdict while checking, else why not (never the welcome of "nobody"). */
function showScene(state) {
  const verdict = state.why ?? state.verdict;
  ui.kiosk.dataset.checking = String(state.checking);
  if (verdict === shownVerdict) return;
  shownVerdict = verdict;
  ui.message.dataset.verdict = verdict;
  ui.headline.textContent = t(`kiosk.${verdict}.head`);
  ui.subline.textContent = t(`kiosk.${verdict}.sub`);
  if (chimeTrigger.shown(verdict, performance.now())) ringChime();
}

function showStatus(text, severity = 'info') {
  ui.status.textContent = text;
  ui.status.dataset.severity = severity;
}

/** The server's last answer, while it is of this screen's today. */
function currentServerToday() {
  if (serverToday && serverToday.day !== localDate(new Date())) serverToday = null;
  return serverToday;
}

/** The server's counts of today at this location; this screen's own only while none has come today. */
function showToday() {
  const server = currentServerToday();
  const today = server?.counts ?? tally?.today ?? {};
  for (const [key, element] of Object.entries(ui.today)) element.textContent = formatNumber(today[key] ?? 0);
  ui.todayList.dataset.source = server ? 'server' : 'local';
  ui.todayList.dataset.stale = String(Boolean(server) && todayFailed);
}

function showCountsNote(key, values) {
  ui.countsNote.textContent = t(key, values);
  ui.countsNote.dataset.note = key;
  ui.countsNote.hidden = false;
}

async function refreshToday() {
  try {
    const counts = await fetchToday();
    serverToday = { counts, day: localDate(new Date()), at: new Date() };
    todayFailed = false;
    ui.countsNote.hidden = true;
  } catch (error) {
    todayFailed = true;
    // A server without history has no counts to come back to: this screen's own are the ones to show.
    if (error.reason === 'history_off') serverToday = null;
    if (currentServerToday()) {
      // The dashboard's clock format ("03:52 AM"), one per language.
      const time = formatDate(serverToday.at, { hour: '2-digit', minute: '2-digit' });
      showCountsNote('kiosk.countsStale', { time });
    } else {
      showCountsNote(error.reason === 'history_off' ? 'kiosk.countsNoHistory' : 'kiosk.countsLocal');
    }
  }
  showToday();
}

/** Poll /today again once the last poll has ended: polls never overlap, so no old answer wins. */
async function pollToday() {
  await refreshToday();
  setTimeout(pollToday, TODAY_POLL_MS);
}

/** One count per class label, after the people. */
function buildToday(labels) {
  for (const item of [...ui.todayList.querySelectorAll('[data-label]')]) item.remove();
  ui.today = { people: ui.today.people };
  for (const label of labels) {
    const item = document.createElement('div');
    item.className = 'today-item';
    item.dataset.label = label;
    const name = document.createElement('dt');
    name.textContent = labelName(label, config);
    const value = document.createElement('dd');
    value.id = `today-${label}`;
    item.append(name, value);
    ui.todayList.append(item);
    ui.today[label] = value;
  }
  showToday();
}

/** This screen's count of today (localStorage) with the labels it last had from /config: shown even
 * when the kiosk starts while the server is down. */
function useLocalTally(labels) {
  try {
    tally = new DailyTally({ labels });
  } catch {
    tally = null; // no storage here (disabled): the rows stay, with the server's counts only
  }
  buildToday(labels);
}

function savedLabels() {
  try {
    const labels = JSON.parse(window.localStorage.getItem(LABELS_KEY) ?? 'null');
    return Array.isArray(labels) && labels.every((label) => typeof label === 'string') ? labels : [];
  } catch {
    return [];
  }
}

/** The server's settings, once: the labels and the camera size are needed before anything else. */
async function ensureConfig() {
  if (config) return config;
  config = await fetchConfig();
  try {
    window.localStorage.setItem(LABELS_KEY, JSON.stringify(config.labels));
  } catch {
    // Without storage a restart during an outage shows only the people counted.
  }
  useLocalTally(config.labels);
  scene.configure(config);
  if (overlayMode(window.location.search, config) === 'page') {
    faceOverlay = new FaceOverlay(ui.video, ui.overlayCanvas, config);
    ui.overlayCanvas.hidden = false;
  }
  return config;
}

function ringChime() {
  const now = performance.now();
  if (!chimeEnabled || now - lastChimeAt < CHIME_GAP_MS) return;
  if (chime.play()) lastChimeAt = now;
}

function showChimeSetting() {
  ui.chimeButton.textContent = chimeEnabled ? t('kiosk.chimeOn') : t('kiosk.chimeOff');
  ui.chimeButton.setAttribute('aria-pressed', String(chimeEnabled));
  ui.soundHint.hidden = !chimeEnabled || chime.unlocked;
}

async function toggleChime() {
  chimeEnabled = !chimeEnabled;
  saveChimeSetting();
  if (chimeEnabled && (await chime.unlock())) chime.play();
  showChimeSetting();
}

/** Audio may start only after a gesture: the first tap or key anywhere unlocks it. */
function unlockAudioOnFirstGesture() {
  const unlock = async () => {
    if (await chime.unlock()) {
      window.removeEventListener('pointerdown', unlock);
      window.removeEventListener('keydown', unlock);
    }
    showChimeSetting();
  };
  window.addEventListener('pointerdown', unlock);
  window.addEventListener('keydown', unlock);
}

function cameraIsLive() {
  return cameraStream?.getVideoTracks().some((track) => track.readyState === 'live') ?? false;
}

function scheduleCameraRetry(delayMs) {
  clearTimeout(cameraRetryTimer);
  cameraRetryTimer = setTimeout(acquireCamera, delayMs);
}

/** Open the camera and connect; on failure try again later. Concurrent calls share one attempt. */
function acquireCamera() {
  clearTimeout(cameraRetryTimer);
  if (cameraIsLive()) return Promise.resolve();
  openingCamera ??= openAndConnect().finally(() => {
    openingCamera = null;
  });
  return openingCamera;
}

async function openAndConnect() {
  try {
    await ensureConfig();
  } catch (error) {
    scene.linkStatus({ state: 'waiting', error });
    const { text, severity } = linkMessage({ state: 'waiting', error });
    showStatus(text, severity);
    scheduleCameraRetry(CAMERA_RETRY_MS);
    return;
  }
  try {
    scene.cameraOpening();
    cameraStream = await openCamera(cameraChoice, resolution, config.video);
  } catch (error) {
    cameraStream = null;
    scene.cameraFailed();
    const recoverable = error.kind !== 'insecure' && error.kind !== 'unsupported';
    showStatus(cameraMessage(error, recoverable ? t('kiosk.retrying') : ''), 'error');
    if (recoverable) scheduleCameraRetry(CAMERA_RETRY_MS);
    return;
  }
  for (const track of cameraStream.getVideoTracks()) track.addEventListener('ended', onCameraLost);
  scene.cameraOpened();
  ui.video.srcObject = cameraStream;
  if (faceOverlay) {
    faceOverlay.mirrored = mirrorsPreview(cameraStream.getVideoTracks()[0], cameraChoice);
    ui.video.dataset.mirrored = String(faceOverlay.mirrored);
    faceOverlay.start();
  }
  link.start(cameraStream, linkOptions());
}

/** In page-overlay mode no video comes back and the camera's frame rate is capped (/config `overlay`). */
function linkOptions() {
  return faceOverlay ? { overlay: 'page', maxFramerate: config.overlay?.frameRate ?? null } : {};
}

function onCameraLost() {
  link.stop();
  stopStream(cameraStream);
  cameraStream = null;
  ui.video.srcObject = null;
  scene.cameraFailed();
  showStatus(t('kiosk.cameraLost'), 'error');
  scheduleCameraRetry(CAMERA_RETRY_MS);
}

function onLinkStatus(event) {
  linkStatus = event.detail;
  retryAt = performance.now() + (linkStatus.retryInMs ?? 0);
  if (linkStatus.state === 'stopped') return;
  scene.linkStatus(linkStatus);
  const { text, severity } = linkMessage(linkStatus);
  showStatus(text, severity);
  if (linkStatus.state === 'waiting' || linkStatus.state === 'failed') ui.video.srcObject = cameraStream;
  if (linkStatus.state === 'failed') {
    // Refused for good (wrong token, rejected offer): nobody will press a button at an entrance, so try
    // again now and then in case the operator fixed the server.
    setTimeout(() => {
      if (link.state === 'failed' && cameraIsLive()) link.start(cameraStream, linkOptions());
    }, REFUSED_RETRY_MS);
  }
}

function onRemoteStream(event) {
  ui.video.srcObject = event.detail ?? cameraStream;
  ui.video.play().catch(() => {});
}

function onDetections(event) {
  scene.analysed(event.detail);
  faceOverlay?.show(event.detail);
  const counts = event.detail.counts ?? countFaces(event.detail.faces, config.labels);
  if (tally?.observe(counts, performance.now()) && !currentServerToday()) showToday();
}

/** The status line while waiting for the server: how it comes back (probing it, or a countdown). */
function waitingStatus() {
  const { text, severity } = linkMessage(linkStatus);
  const next = linkStatus.probing ? t('msg.probing') : retryCountdown(retryAt - performance.now());
  showStatus(`${text} ${next}`, severity);
}

async function tick() {
  if (cameraStream && !cameraIsLive()) onCameraLost();
  if (linkStatus.state === 'waiting') waitingStatus();
  if (scene.state.why === NOT_CHECKING.paused) {
    const seconds = formatNumber(scene.silentSeconds(), 0);
    showStatus(t('kiosk.analysisPaused', { seconds }), 'warning');
    return;
  }
  const figures = await sampler.sample();
  if (figures && figures.videoFps !== null) {
    showStatus(
      t('kiosk.connectedStats', {
        fps: formatNumber(faceOverlay ? figures.sent?.fps : figures.videoFps, 0),
        checks: formatNumber(figures.detectionsPerSecond, 0),
      }),
    );
  }
}

async function keepScreenOn() {
  if (document.visibilityState !== 'visible' || !navigator.wakeLock) return;
  try {
    await navigator.wakeLock.request('screen');
  } catch {
    // Not allowed here (e.g. battery saver): the kiosk's OS settings must keep the screen on.
  }
}

function watchCameraPermission() {
  navigator.permissions
    ?.query({ name: 'camera' })
    .then((permission) => {
      permission.addEventListener('change', () => {
        if (permission.state === 'granted') acquireCamera();
      });
    })
    .catch(() => {});
}

function init() {
  translatePage();
  link.addEventListener('status', onLinkStatus);
  link.addEventListener('analysis', onDetections);
  link.addEventListener('remotestream', onRemoteStream);
  scene.addEventListener('change', (event) => showScene(event.detail));
  ui.chimeButton.addEventListener('click', toggleChime);
  ui.video.addEventListener('dblclick', () => {
    if (!document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
  });
  navigator.mediaDevices?.addEventListener?.('devicechange', () => {
    if (!cameraIsLive()) acquireCamera();
  });
  window.addEventListener('online', () => link.retryNow());
  window.addEventListener('pagehide', () => link.stop());
  document.addEventListener('visibilitychange', keepScreenOn);
  watchCameraPermission();
  useLocalTally(savedLabels());
  pollToday();
  setInterval(tick, 1000);
  setInterval(() => scene.check(), SCENE_CHECK_MS);

  showChimeSetting();
  if (chimeEnabled) chime.unlock().then(showChimeSetting);
  unlockAudioOnFirstGesture();
  keepScreenOn();

  const availability = cameraAvailability();
  if (availability !== 'ok') {
    scene.cameraFailed();
    showStatus(cameraMessage({ kind: availability }, ''), 'error');
    return;
  }
  acquireCamera();
}

init();
