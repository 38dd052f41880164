// Plain-language explanations of what went wrong, shared by the main page and the kiosk, in the page's
// language (texts.js).

import { formatNumber, t } from './i18n.js';

function seconds(ms) {
  return t('unit.seconds', { value: formatNumber(Math.max(1, Math.ceil(ms / 1000))) });
}

/** What to tell the user about a CameraError; `retryHint` says how they get going again. */
export function cameraMessage(error, retryHint) {
  const hint = retryHint ?? '';
  switch (error.kind) {
    case 'insecure':
      return t('msg.insecure', { origin: window.location.origin });
    case 'unsupported':
      return t('msg.unsupported');
    case 'denied':
      return t('msg.denied', { hint }).trim();
    case 'none':
      return t('msg.noCamera', { hint }).trim();
    case 'busy':
      return t('msg.busy', { hint }).trim();
    default:
      return t('msg.cameraFailed', { reason: error.message, hint }).trim();
  }
}

/** "Next try in 3 s", for the countdown shown beside a link message while a retry is scheduled. */
export function retryCountdown(remainingMs) {
  return t('msg.nextTry', { seconds: seconds(remainingMs) });
}

/**
 * Text and severity ("info" | "warning" | "error") for a LiveLink status. The text does not change while
 * the retry countdown runs, so that screen readers announce it once; pages show `retryCountdown` apart.
 */
export function linkMessage(status) {
  const { state, error } = status;
  if (state === 'connecting') return { text: t('msg.connecting'), severity: 'info' };
  if (state === 'connected') return { text: t('msg.connected'), severity: 'info' };
  if (state === 'stopped') return { text: t('msg.stopped'), severity: 'info' };
  if (state === 'failed') {
    if (error.kind === 'unauthorized') return { text: t('msg.unauthorized'), severity: 'error' };
    return { text: t('msg.refused', { reason: error.message }), severity: 'error' };
  }
  switch (error.kind) {
    case 'unreachable':
      return { text: t('msg.unreachable'), severity: 'error' };
    case 'capacity':
      return {
        text: error.maxSessions
          ? t('msg.capacity', { count: formatNumber(error.maxSessions) })
          : t('msg.capacityUnknown'),
        severity: 'warning',
      };
    case 'rate-limited':
      return { text: t('msg.rateLimited'), severity: 'warning' };
    case 'loading':
      return { text: t('msg.loading'), severity: 'info' };
    case 'lost':
      return { text: t('msg.lost', { reason: error.message }), severity: 'warning' };
    default:
      return { text: t('msg.serverProblem', { reason: error.message }), severity: 'error' };
  }
}
