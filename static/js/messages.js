// Plain-language explanations of what went wrong, shared by the main page and the kiosk.

function seconds(ms) {
  return `${Math.max(1, Math.ceil(ms / 1000))} s`;
}

/** What to tell the user about a CameraError; `retryHint` says how they get going again. */
export function cameraMessage(error, retryHint) {
  switch (error.kind) {
    case 'insecure':
      return (
        `The camera only works on a secure page, and ${window.location.origin} is not one. ` +
        'Start the server with --https and open the https:// address, or open http://localhost on the ' +
        'computer that runs the server.'
      );
    case 'unsupported':
      return 'This browser cannot use a camera. Use a current Chrome, Edge, Firefox or Safari.';
    case 'denied':
      return `Camera access was blocked. Allow the camera for this site (the camera icon in the address bar). ${retryHint}`;
    case 'none':
      return `No camera was found. Connect a camera. ${retryHint}`;
    case 'busy':
      return `The camera is in use by another application or not working. Close the other application. ${retryHint}`;
    default:
      return `${error.message} ${retryHint}`;
  }
}

/** "Next try in 3 s", for the countdown shown beside a link message while a retry is scheduled. */
export function retryCountdown(remainingMs) {
  return `Next try in ${seconds(remainingMs)}.`;
}

/**
 * Text and severity ("info" | "warning" | "error") for a LiveLink status. The text does not change while
 * the retry countdown runs, so that screen readers announce it once; pages show `retryCountdown` apart.
 */
export function linkMessage(status) {
  const { state, error } = status;
  if (state === 'connecting') return { text: 'Connecting to the server…', severity: 'info' };
  if (state === 'connected') return { text: 'Connected', severity: 'info' };
  if (state === 'stopped') return { text: 'Stopped', severity: 'info' };
  if (state === 'failed') {
    if (error.kind === 'unauthorized') {
      return {
        text:
          'Access denied: this server needs an access token. Open the full link you were given ' +
          '(it ends in ?token=…) or ask the operator.',
        severity: 'error',
      };
    }
    return { text: `The server refused the connection: ${error.message}`, severity: 'error' };
  }
  switch (error.kind) {
    case 'unreachable':
      return { text: 'Cannot reach the server. Is it running? Retrying by itself.', severity: 'error' };
    case 'capacity': {
      const limit = error.maxSessions ? `all ${error.maxSessions} sessions are` : 'every session is';
      return { text: `The server is at capacity: ${limit} in use. Retrying by itself.`, severity: 'warning' };
    }
    case 'rate-limited':
      return { text: 'Too many connection attempts from this device. Retrying by itself.', severity: 'warning' };
    case 'loading':
      return { text: 'The server is still loading its models. Retrying by itself.', severity: 'info' };
    case 'lost':
      return { text: `Connection lost: ${error.message} Reconnecting by itself.`, severity: 'warning' };
    default:
      return { text: `The server had a problem (${error.message}). Retrying by itself.`, severity: 'error' };
  }
}
