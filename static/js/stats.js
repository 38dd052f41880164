// Live figures for the stats panel, sampled once a second from getStats() and the link's counters.

function selectedCandidatePair(report) {
  let pair = null;
  report.forEach((stat) => {
    if (stat.type === 'transport' && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId);
  });
  if (pair) return pair;
  report.forEach((stat) => {
    if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') pair = stat;
  });
  return pair;
}

function videoStat(report, type) {
  let found = null;
  report.forEach((stat) => {
    if (stat.type === type && stat.kind === 'video') found = stat;
  });
  return found;
}

/** Rates are measured over the last WINDOW_MS of samples, and shown only once MIN_WINDOW_MS are in: the
 * first frames after a connection come in a burst (a 15 fps camera read "33 fps" over its first second). */
const WINDOW_MS = 5000;
const MIN_WINDOW_MS = 2500;

/**
 * Rates need samples over MIN_WINDOW_MS: the first calls after a (re)connection return figures without rates.
 * Returns {videoFps, detectionsPerSecond, roundTripMs, networkRttMs, sent: {width, height, fps, limitation},
 * received: {width, height}}, with null for what is not known yet.
 */
export class StatsSampler {
  #samples = [];

  constructor(link) {
    this.link = link;
  }

  async sample() {
    const pc = this.link.peerConnection;
    if (!pc || this.link.state !== 'connected') {
      this.#samples = [];
      return null;
    }
    const report = await pc.getStats();
    const now = performance.now();
    const inbound = videoStat(report, 'inbound-rtp');
    const outbound = videoStat(report, 'outbound-rtp');
    const pair = selectedCandidatePair(report);
    const current = { pc, now, framesDecoded: inbound?.framesDecoded ?? 0, messages: this.link.messagesReceived };
    this.#samples = this.#samples.filter((sample) => sample.pc === pc && now - sample.now <= WINDOW_MS);
    this.#samples.push(current);
    const oldest = this.#samples[0];
    const seconds = now - oldest.now >= MIN_WINDOW_MS ? (now - oldest.now) / 1000 : 0;
    const rate = (key) => (seconds > 0 ? (current[key] - oldest[key]) / seconds : null);
    return {
      videoFps: rate('framesDecoded'),
      detectionsPerSecond: rate('messages'),
      roundTripMs: this.link.lastRoundTripMs,
      networkRttMs: pair?.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null,
      framesDecoded: current.framesDecoded,
      sent: {
        width: outbound?.frameWidth ?? null,
        height: outbound?.frameHeight ?? null,
        fps: outbound?.framesPerSecond ?? null,
        limitation: outbound?.qualityLimitationReason ?? 'none',
      },
      received: { width: inbound?.frameWidth ?? null, height: inbound?.frameHeight ?? null },
    };
  }
}
