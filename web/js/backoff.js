// Waiting between reconnect attempts: the hub's one backoff rule (components/core/backoff.py), so a crowd of
// browsers reconnecting to a restarted hub spreads out instead of coming back in lockstep.
// next() waits a random time between 0 and the current ceiling ("full jitter"); the ceiling starts at `initial`
// seconds and doubles per failure up to `maximum`; reset() after a success. `random` (0..1) is injectable.

export class Backoff {
  constructor({initial = 0.5, maximum = 15, random = Math.random} = {}) {
    if (!(initial > 0) || !(maximum >= initial)) throw new Error("backoff needs 0 < initial <= maximum");
    this.initial = initial;
    this.maximum = maximum;
    this.random = random;
    this.failures = 0;
  }

  // The ceiling of the next delay, in seconds.
  get current() {
    return Math.min(this.maximum, this.initial * 2 ** Math.min(this.failures, 60));
  }

  // The next delay in seconds (millisecond precision), between 0 and the current ceiling.
  next() {
    const delay = this.current * this.random();
    this.failures += 1;
    return Math.round(delay * 1000) / 1000;
  }

  reset() {
    this.failures = 0;
  }
}
