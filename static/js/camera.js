// Opening the camera, and turning the browser's many ways of refusing into a few kinds the pages explain.
// The size and frame rate to ask for come from the server's /config (`video`).

/** A camera that cannot be opened; `kind` is insecure | unsupported | denied | none | busy | failed. */
export class CameraError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'CameraError';
    this.kind = kind;
  }
}

/** getUserMedia exists only in a secure context: https:// or http://localhost. */
export function cameraAvailability() {
  if (!window.isSecureContext) return 'insecure';
  if (!navigator.mediaDevices?.getUserMedia) return 'unsupported';
  return 'ok';
}

/** "WIDTHxHEIGHT" from a {width, height}, as the pages' ?resolution= and their select write it. */
export function resolutionText(video) {
  return `${video.width}x${video.height}`;
}

/** Parse "WIDTHxHEIGHT" into numbers; anything else gives `fallback` ({width, height}). */
export function parseResolution(text, fallback) {
  const match = /^(\d{2,4})x(\d{2,4})$/.exec(text ?? '');
  if (!match) return { width: fallback.width, height: fallback.height };
  const [width, height] = match.slice(1).map(Number);
  return { width, height };
}

/**
 * Video constraints for a camera choice: "user" / "environment" (front / back on phones, via
 * facingMode) or a deviceId from enumerateDevices; `resolution` as "WIDTHxHEIGHT", else /config's `video`.
 */
export function videoConstraints(choice, resolution, video) {
  const { width, height } = parseResolution(resolution, video);
  const constraints = {
    width: { ideal: width },
    height: { ideal: height },
    frameRate: { ideal: video.frameRate, max: video.frameRate },
  };
  if (choice === 'user' || choice === 'environment' || !choice) {
    constraints.facingMode = { ideal: choice || 'user' };
  } else {
    constraints.deviceId = { exact: choice };
  }
  return constraints;
}

function cameraErrorFrom(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return new CameraError('denied', 'Camera access was blocked.');
    case 'NotFoundError':
    case 'OverconstrainedError':
      return new CameraError('none', 'No camera was found.');
    case 'NotReadableError':
    case 'AbortError':
      return new CameraError('busy', 'The camera is in use or not working.');
    default:
      return new CameraError('failed', `The camera could not be opened (${error?.message ?? error}).`);
  }
}

/** Open the camera (video only); `video` is /config's. Throws CameraError. */
export async function openCamera(choice, resolution, video) {
  const availability = cameraAvailability();
  if (availability === 'insecure') throw new CameraError('insecure', 'This page is not a secure context.');
  if (availability === 'unsupported') throw new CameraError('unsupported', 'This browser has no camera API.');
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: false, video: videoConstraints(choice, resolution, video) });
  } catch (error) {
    throw cameraErrorFrom(error);
  }
}

/** The cameras this browser can see; labels are empty until the user has allowed the camera once. */
export async function listCameras() {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((device) => device.kind === 'videoinput' && device.deviceId);
}

/** Stop every track of a stream (releases the camera light). */
export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
