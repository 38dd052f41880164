// The main page: start/stop, camera and resolution choice, the annotated video, banner, counts and stats.
// The labels, their verdicts and the camera size to ask for come from the server's /config; the banner and
// the counts follow the live scene (scene.js), the same source as the kiosk's headline.

import { cameraAvailability, listCameras, openCamera, parseResolution, resolutionText, stopStream } from './camera.js';
import { fetchConfig, LiveLink, pageLocation, pageUrl } from './connection.js';
import { formatNumber, formatUnit, labelName, t, translatePage } from './i18n.js';
import { cameraMessage, linkMessage, retryCountdown } from './messages.js';
import { HEALTH_POLL_MS } from './retry.js';
import { LiveScene } from './scene.js';
import { FaceOverlay, mirrorsPreview, overlayMode } from './overlay.js';
import { StatsSampler } from './stats.js';

const CONFIG_RETRY_MS = 2 * HEALTH_POLL_MS;
const SCENE_CHECK_MS = 250;

const byId = (id) => document.getElementById(id);
const ui = {
  stage: byId('stage'),
  remoteVideo: byId('remote-video'),
  localVideo: byId('local-video'),
  overlayCanvas: byId('face-overlay'),
  stageHint: byId('stage-hint'),
  banner: byId('banner'),
  bannerText: byId('banner-text'),
  message: byId('message'),
  messageText: byId('message-text'),
  messageCountdown: byId('message-countdown'),
  controls: byId('controls'),
  startButton: byId('start-button'),
  cameraSelect: byId('camera-select'),
  resolutionSelect: byId('resolution-select'),
  kioskLink: byId('kiosk-link'),
  dashboardLink: byId('dashboard-link'),
  countList: byId('counts'),
  counting: byId('counting'),
  stats: {
    videoFps: byId('stat-video-fps'),
    detections: byId('stat-detections'),
    roundTrip: byId('stat-round-trip'),
    analysis: byId('stat-analysis'),
    sending: byId('stat-sending'),
    connection: byId('stat-connection'),
  },
  counts: {},
};

const link = new LiveLink();
// A try of the page at a desk adds nobody to an entrance's figures: only a page given ?location= counts.
link.counted = Boolean(pageLocation);
const sampler = new StatsSampler(link);
const scene = new LiveScene();
let cameraStream = null;
let running = false;
let linkStatus = { state: 'stopped' };
let retryAt = 0;
let lastInferenceMs = null;
let config = null;
// ?overlay=page (or the server's default): the boxes are drawn here, over the camera preview.
let faceOverlay = null;

function showMessage(text, severity) {
  if (ui.messageText.textContent !== text) ui.messageText.textContent = text;
  ui.message.dataset.severity = severity;
  ui.message.hidden = false;
  showCountdown();
}

function hideMessage() {
  ui.message.hidden = true;
  ui.messageText.textContent = '';
}

/** While a retry is scheduled, count down beside the message (outside the alert region), or say that the
 * page asks the server every second. */
function showCountdown() {
  const waiting = linkStatus.state === 'waiting' && running;
  ui.messageCountdown.hidden = !waiting;
  if (!waiting) ui.messageCountdown.textContent = '';
  else if (linkStatus.probing) ui.messageCountdown.textContent = t('msg.probing');
  else ui.messageCountdown.textContent = retryCountdown(retryAt - performance.now());
}

function setBanner(state) {
  if (ui.banner.dataset.verdict === state) return;
  ui.banner.dataset.verdict = state;
  ui.bannerText.textContent = t(`banner.${state}`);
}

function showCounts(counts) {
  for (const [label, element] of Object.entries(ui.counts)) element.textContent = formatNumber(counts[label] ?? 0);
}

/** Banner and counts from the one scene; while not checking, the video is dimmed and no count shows. */
function showScene(state) {
  ui.stage.dataset.checking = String(running && state.checking);
  setBanner(running ? (state.why ?? state.verdict) : 'idle');
  showCounts(state.counts);
}

/** One count per label of /config, in its order. */
function buildCounts() {
  ui.countList.replaceChildren();
  ui.counts = {};
  for (const label of config.labels) {
    const item = document.createElement('li');
    item.className = 'count';
    item.dataset.label = label;
    const value = document.createElement('span');
    value.className = 'count-value';
    value.id = `count-${label}`;
    const name = document.createElement('span');
    name.className = 'count-name';
    name.textContent = labelName(label, config);
    item.append(value, name);
    ui.countList.append(item);
    ui.counts[label] = value;
  }
  showCounts({});
}

/** The resolution list holds /config's camera size, chosen unless the URL's ?resolution= says otherwise. */
function chooseResolution() {
  const wanted = resolutionText(parseResolution(new URLSearchParams(window.location.search).get('resolution'), config.video));
  if (![...ui.resolutionSelect.options].some((option) => option.value === wanted)) {
    const { width, height } = parseResolution(wanted, config.video);
    ui.resolutionSelect.append(new Option(`${width} × ${height}`, wanted));
  }
  ui.resolutionSelect.value = wanted;
}

/** The settings first (the page cannot open the camera without them); retried while the server is away. */
async function loadConfig() {
  try {
    config = await fetchConfig();
  } catch (error) {
    showMessage(t('page.configFailed', { reason: error.message }), 'error');
    setTimeout(loadConfig, CONFIG_RETRY_MS);
    return;
  }
  hideMessage();
  scene.configure(config);
  buildCounts();
  chooseResolution();
  const pageDrawn = overlayMode(window.location.search, config) === 'page';
  ui.stage.dataset.overlay = pageDrawn ? 'page' : 'server';
  faceOverlay = pageDrawn ? new FaceOverlay(ui.localVideo, ui.overlayCanvas, config) : null;
  ui.overlayCanvas.hidden = !pageDrawn;
  ui.startButton.disabled = false;
}

function clearStats() {
  for (const element of Object.values(ui.stats)) element.textContent = '–';
  ui.stats.connection.textContent = running ? t('page.connecting') : t('page.idle');
}

function setRunning(value) {
  running = value;
  ui.startButton.textContent = value ? t('page.stop') : t('page.start');
  ui.startButton.classList.toggle('is-running', value);
  ui.stageHint.hidden = value;
}

function showLocalPreview(stream) {
  ui.localVideo.srcObject = stream;
  ui.localVideo.hidden = !stream;
  if (!faceOverlay) return;
  faceOverlay.mirrored = Boolean(stream) && mirrorsPreview(stream.getVideoTracks()[0], ui.cameraSelect.value);
  ui.localVideo.dataset.mirrored = String(faceOverlay.mirrored);
  if (stream) faceOverlay.start();
  else faceOverlay.stop();
}

/** How the link sends the camera: in page-overlay mode no video comes back and the frame rate is capped. */
function linkOptions() {
  return faceOverlay ? { overlay: 'page', maxFramerate: config.overlay?.frameRate ?? null } : {};
}

async function refreshCameraList() {
  const cameras = await listCameras();
  const labelled = cameras.filter((camera) => camera.label);
  const chosen = ui.cameraSelect.value;
  for (const option of [...ui.cameraSelect.querySelectorAll('option[data-device]')]) option.remove();
  if (labelled.length < 2) return;
  for (const camera of labelled) {
    const option = new Option(camera.label, camera.deviceId);
    option.dataset.device = 'true';
    ui.cameraSelect.append(option);
  }
  if ([...ui.cameraSelect.options].some((option) => option.value === chosen)) ui.cameraSelect.value = chosen;
}

function watchCamera(stream) {
  for (const track of stream.getVideoTracks()) {
    track.addEventListener('ended', () => {
      if (running && stream === cameraStream) reopenCamera(t('msg.cameraReopen'));
    });
  }
}

async function openChosenCamera() {
  const stream = await openCamera(ui.cameraSelect.value, ui.resolutionSelect.value, config.video);
  watchCamera(stream);
  return stream;
}

async function start() {
  hideMessage();
  setRunning(true);
  scene.cameraOpening();
  let stream;
  try {
    stream = await openChosenCamera();
  } catch (error) {
    setRunning(false);
    scene.cameraFailed();
    showMessage(cameraMessage(error, t('page.startHint')), 'error');
    return;
  }
  if (!running) {
    stopStream(stream);
    return;
  }
  cameraStream = stream;
  scene.cameraOpened();
  showLocalPreview(cameraStream);
  refreshCameraList();
  link.start(cameraStream, linkOptions());
}

function stop() {
  link.stop();
  stopStream(cameraStream);
  cameraStream = null;
  showLocalPreview(null);
  ui.remoteVideo.srcObject = null;
  setRunning(false);
  showScene(scene.state);
  hideMessage();
  clearStats();
}

/** Camera or resolution changed while running, or the camera vanished: swap the track, keep the session. */
async function reopenCamera(notice) {
  if (notice) showMessage(notice, 'warning');
  stopStream(cameraStream);
  let stream;
  try {
    stream = await openChosenCamera();
  } catch (error) {
    stop();
    scene.cameraFailed();
    showMessage(cameraMessage(error, t('page.startHint')), 'error');
    return;
  }
  if (!running) {
    stopStream(stream);
    return;
  }
  cameraStream = stream;
  showLocalPreview(cameraStream);
  await link.replaceStream(cameraStream);
  if (notice) hideMessage();
}

function onLinkStatus(event) {
  linkStatus = event.detail;
  retryAt = performance.now() + (linkStatus.retryInMs ?? 0);
  const { text, severity } = linkMessage(linkStatus);
  ui.stats.connection.textContent = text;
  scene.linkStatus(linkStatus);
  if (linkStatus.state === 'connected') hideMessage();
  else if (linkStatus.state === 'waiting' || linkStatus.state === 'failed') {
    showMessage(text, severity);
    clearStats(); // the last connection's figures are not this one's
    ui.stats.connection.textContent = text;
  }
}

function onDetections(event) {
  if (!running) return;
  const message = event.detail;
  scene.analysed(message);
  faceOverlay?.show(message);
  if (typeof message.inference_ms === 'number') lastInferenceMs = message.inference_ms;
}

function onRemoteStream(event) {
  ui.remoteVideo.srcObject = event.detail;
  if (event.detail) ui.remoteVideo.play().catch(() => {});
}

function onVideoResize() {
  const { videoWidth, videoHeight } = faceOverlay ? ui.localVideo : ui.remoteVideo;
  if (videoWidth > 0 && videoHeight > 0) ui.stage.style.setProperty('--video-aspect', `${videoWidth} / ${videoHeight}`);
}

async function tick() {
  if (!running) return;
  showCountdown();
  const figures = await sampler.sample();
  if (!figures) return;
  const { sent } = figures;
  // In page-overlay mode no video comes back: nothing to count.
  ui.stats.videoFps.textContent = faceOverlay ? '–' : formatUnit(figures.videoFps, 1, 'unit.fps');
  ui.stats.detections.textContent = formatUnit(figures.detectionsPerSecond, 1, 'unit.perSecond');
  ui.stats.roundTrip.textContent = formatUnit(figures.roundTripMs ?? figures.networkRttMs, 0, 'unit.ms');
  ui.stats.analysis.textContent = formatUnit(lastInferenceMs, 0, 'unit.ms');
  const limited = sent.limitation !== 'none' ? ` (${sent.limitation})` : '';
  ui.stats.sending.textContent = sent.width
    ? `${sent.width}×${sent.height} @ ${formatUnit(sent.fps, 0, 'unit.fps')}${limited}`
    : '–';
}

function init() {
  translatePage();
  ui.counting.textContent = link.counted ? t('page.counted', { location: pageLocation }) : t('page.notCounted');
  ui.kioskLink.href = pageUrl('kiosk');
  ui.dashboardLink.href = pageUrl('dashboard');
  link.addEventListener('status', onLinkStatus);
  link.addEventListener('analysis', onDetections);
  link.addEventListener('remotestream', onRemoteStream);
  scene.addEventListener('change', (event) => showScene(event.detail));
  setInterval(() => scene.check(), SCENE_CHECK_MS);
  ui.remoteVideo.addEventListener('resize', onVideoResize);
  ui.localVideo.addEventListener('resize', onVideoResize);
  ui.controls.addEventListener('submit', (event) => {
    event.preventDefault();
    if (running) stop();
    else start();
  });
  for (const select of [ui.cameraSelect, ui.resolutionSelect]) {
    select.addEventListener('change', () => {
      if (running && cameraStream) reopenCamera(null);
    });
  }
  navigator.mediaDevices?.addEventListener?.('devicechange', refreshCameraList);
  window.addEventListener('online', () => link.retryNow());
  window.addEventListener('pagehide', () => link.stop());
  setInterval(tick, 1000);

  const availability = cameraAvailability();
  if (availability !== 'ok') {
    showMessage(cameraMessage({ kind: availability }, ''), 'error');
    ui.startButton.disabled = true;
    ui.cameraSelect.disabled = true;
    ui.resolutionSelect.disabled = true;
    ui.stageHint.textContent = t('page.unavailable');
    return;
  }
  ui.startButton.disabled = true;
  loadConfig();
}

init();
