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

/**
 * Rates need two samples: the first call after a (re)connection returns figures without rates.
 * Returns {videoFps, detectionsPerSecond, roundTripMs, networkRttMs, sent: {width, height, fps, limitation},
 * received: {width, height}}, with null for what is not known yet.
 */
export class StatsSampler {
  #previous = null;

  constructor(link) {
    this.link = link;
  }

  async sample() {
    const pc = this.link.peerConnection;
    if (!pc || this.link.state !== 'connected') {
      this.#previous = null;
      return null;
    }
    const report = await pc.getStats();
    const now = performance.now();
    const inbound = videoStat(report, 'inbound-rtp');
    const outbound = videoStat(report, 'outbound-rtp');
    const pair = selectedCandidatePair(report);
    const current = { pc, now, framesDecoded: inbound?.framesDecoded ?? 0, messages: this.link.messagesReceived };
    const previous = this.#previous?.pc === pc ? this.#previous : null;
    this.#previous = current;
    const seconds = previous ? (now - previous.now) / 1000 : 0;
    const rate = (key) => (seconds > 0 ? (current[key] - previous[key]) / seconds : null);
    return {
      videoFps: rate('framesDecoded') ?? inbound?.framesPerSecond ?? null,
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
