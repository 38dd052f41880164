// A soft two-note chime made with Web Audio (no sound file to fetch). Browsers keep an AudioContext
// suspended until the user has interacted with the page, so `unlock()` must run inside a click or key
// handler, unless the kiosk browser allows autoplay (Chromium: --autoplay-policy=no-user-gesture-required).

const NOTES_HZ = [659.25, 523.25];
const NOTE_SECONDS = 0.45;
const VOLUME = 0.25;

export class Chime {
  #context = null;

  /** True once sound can actually play. */
  get unlocked() {
    return this.#context?.state === 'running';
  }

  /** Create or resume the audio context; resolves to whether sound can play now. */
  async unlock() {
    const AudioContextClass = window.AudioContext ?? window.webkitAudioContext;
    if (!AudioContextClass) return false;
    this.#context ??= new AudioContextClass();
    if (this.#context.state !== 'running') {
      try {
        await this.#context.resume();
      } catch {
        return false;
      }
    }
    return this.unlocked;
  }

  /** Play the chime; returns false (silently) while audio is still locked. */
  play() {
    if (!this.unlocked) return false;
    const context = this.#context;
    const start = context.currentTime + 0.02;
    NOTES_HZ.forEach((frequency, index) => {
      const at = start + index * NOTE_SECONDS * 0.8;
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = 'sine';
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(VOLUME, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + NOTE_SECONDS);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(at);
      oscillator.stop(at + NOTE_SECONDS + 0.05);
    });
    return true;
  }
}
