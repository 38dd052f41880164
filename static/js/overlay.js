// The page-drawn overlay (?overlay=page): each face's box and label drawn by the page on a canvas above its
// own camera preview, from the detections messages, instead of the server drawing them into a video it
// sends back. The server then sends no video at all (no encoder, half the bandwidth) and the preview has no
// added latency. The boxes use the server's class colours (/config `labelColours`), the labels the page's
// language, and they go away when the newest result is older than the server's own limit for drawing boxes
// (/config `overlay.staleSeconds`): the face has likely moved or left. A front camera's preview is shown
// as a mirror, as people expect of a camera that faces them, and the boxes are mirrored with it.

import { formatPercent, labelName } from './i18n.js';

export const OVERLAY_MODES = ['server', 'page'];
const DEFAULT_STALE_MS = 1000;

/** The overlay mode a page asks for: its ?overlay=, else the server's default (/config `overlay.mode`). */
export function overlayMode(search = window.location.search, config = null) {
  const asked = new URLSearchParams(search).get('overlay');
  if (OVERLAY_MODES.includes(asked)) return asked;
  return OVERLAY_MODES.includes(config?.overlay?.mode) ? config.overlay.mode : 'server';
}

/** Whether a camera's preview should be a mirror: every camera but one that faces away (a back camera). */
export function mirrorsPreview(track, choice = null) {
  const facing = track?.getSettings?.().facingMode ?? null;
  if (facing) return facing !== 'environment';
  return choice !== 'environment';
}

/**
 * Where a video's picture lies inside its element (CSS pixels): `fit` is the element's object-fit,
 * "contain" (the whole picture, bars around it) or "cover" (the element filled, the picture cropped).
 */
export function pictureRect(elementWidth, elementHeight, videoWidth, videoHeight, fit = 'contain') {
  if (!(videoWidth > 0 && videoHeight > 0 && elementWidth > 0 && elementHeight > 0)) return null;
  const scaleX = elementWidth / videoWidth;
  const scaleY = elementHeight / videoHeight;
  const scale = fit === 'cover' ? Math.max(scaleX, scaleY) : Math.min(scaleX, scaleY);
  const width = videoWidth * scale;
  const height = videoHeight * scale;
  return { x: (elementWidth - width) / 2, y: (elementHeight - height) / 2, width, height };
}

/**
 * A face box [x0, y0, x1, y1] in the pixels of the analysed frame (frameWidth x frameHeight) as a rectangle
 * in the element's pixels over `rect` (pictureRect's), mirrored left to right when the preview is.
 */
export function placeBox(box, frameWidth, frameHeight, rect, mirrored) {
  const [x0, y0, x1, y1] = box;
  const sx = rect.width / frameWidth;
  const sy = rect.height / frameHeight;
  const left = mirrored ? rect.x + rect.width - x1 * sx : rect.x + x0 * sx;
  return { x: left, y: rect.y + y0 * sy, width: (x1 - x0) * sx, height: (y1 - y0) * sy };
}

/** How old a message's result is (ms): its age when the server sent it, plus the time since it arrived. */
export function resultAgeMs(message, arrivedAt, now) {
  const atServer = Number(message.sent_at) - Number(message.received_at);
  return (Number.isFinite(atServer) && atServer > 0 ? atServer : 0) + (now - arrivedAt);
}

/** The canvas over a preview `<video>`: call `show()` with each detections message; redraws every frame. */
export class FaceOverlay {
  #video;
  #canvas;
  #config;
  #message = null;
  #arrivedAt = 0;
  #frame = 0;
  mirrored = true;

  constructor(video, canvas, config) {
    this.#video = video;
    this.#canvas = canvas;
    this.#config = config;
  }

  get staleAfterMs() {
    const seconds = Number(this.#config?.overlay?.staleSeconds);
    return seconds > 0 ? seconds * 1000 : DEFAULT_STALE_MS;
  }

  /** The newest detections message (as the data channel gave it). */
  show(message, arrivedAt = performance.now()) {
    if (!Array.isArray(message?.faces) || !(message.width > 0 && message.height > 0)) return;
    this.#message = message;
    this.#arrivedAt = arrivedAt;
  }

  start() {
    if (this.#frame) return;
    const loop = () => {
      this.#draw(performance.now());
      this.#frame = requestAnimationFrame(loop);
    };
    this.#frame = requestAnimationFrame(loop);
  }

  stop() {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    this.#message = null;
    this.#draw(performance.now());
  }

  #draw(now) {
    const canvas = this.#canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext('2d');
    context.clearRect(0, 0, width, height);
    const message = this.#message;
    const fresh = message && resultAgeMs(message, this.#arrivedAt, now) <= this.staleAfterMs;
    const fit = getComputedStyle(this.#video).objectFit === 'cover' ? 'cover' : 'contain';
    const rect = pictureRect(width, height, this.#video.videoWidth, this.#video.videoHeight, fit);
    const faces = fresh && rect ? message.faces : [];
    canvas.dataset.faces = String(faces.length);
    canvas.dataset.state = !message ? 'empty' : fresh ? 'shown' : 'stale';
    const placed = faces.map((face) => placeBox(face.box, message.width, message.height, rect, this.mirrored));
    canvas.dataset.boxes = JSON.stringify(placed.map((box) => [box.x, box.y, box.width, box.height].map((v) => Math.round(v / ratio))));
    const shortSide = Math.min(rect?.width ?? 0, rect?.height ?? 0);
    // The server's proportions (vision/draw.py): lines of 1/240 of the short side, at least 2 CSS pixels.
    const line = Math.max(2 * ratio, Math.round(shortSide / 240));
    const fontSize = Math.max(12 * ratio, Math.round(shortSide / 32));
    context.font = `600 ${fontSize}px system-ui, sans-serif`;
    context.textBaseline = 'top';
    faces.forEach((face, index) => this.#drawFace(context, face, placed[index], line, fontSize, width));
  }

  #drawFace(context, face, box, line, fontSize, canvasWidth) {
    const colour = this.#config?.labelColours?.[face.label] ?? '#ffffff';
    context.strokeStyle = colour;
    context.lineWidth = line;
    context.strokeRect(box.x, box.y, box.width, box.height);
    const score = typeof face.score === 'number' ? ` ${formatPercent(face.score)}` : '';
    const text = `${labelName(face.label, this.#config)}${score}`;
    const pad = Math.round(fontSize / 4);
    const textWidth = context.measureText(text).width + 2 * pad;
    const textHeight = fontSize + 2 * pad;
    const top = box.y - textHeight >= 0 ? box.y - textHeight : box.y + box.height;
    const left = Math.min(Math.max(box.x, 0), Math.max(canvasWidth - textWidth, 0));
    context.fillStyle = colour;
    context.fillRect(left, top, textWidth, textHeight);
    context.fillStyle = '#ffffff';
    context.fillText(text, left + pad, top + pad);
  }
}
