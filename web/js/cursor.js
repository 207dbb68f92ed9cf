// Where a follower of a history topic (hub.events) stands in the hub's one sequence of positions: the last
// RECENT_POSITIONS positions it was given (as a set) and `after`, below which every position counts as given.
// Positions of one topic are increasing but not contiguous (one sequence over all topics), and across linked
// nodes live events can come slightly out of position order: a position is "seen" when it is at or below
// `after` or among the recent ones, never because a higher one came first. A resume asks hub.history for what
// followed `after` (or the smallest recent position while `after` is unknown) and skips what was seen.

export const RECENT_POSITIONS = 64;

function position(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

export class EventCursor {
  // since: "start" (every kept event), "now" (from what the hub gave last when the follower starts), a position
  // (what followed it), or a snapshot() of another cursor.
  constructor(since = "now") {
    this.after = null;        // every position <= after counts as given (null: none)
    this.recent = [];         // given positions above `after`, ascending, at most RECENT_POSITIONS
    this.known = since !== "now";
    if (position(since)) {
      this.after = since;
    } else if (since && typeof since === "object") {
      this.after = position(since.after) ? since.after : null;
      const recent = Array.isArray(since.recent) ? since.recent.filter(position) : [];
      for (const seen of recent.sort((a, b) => a - b)) this.accept(seen);
    }
  }

  // A "now" cursor learns where now is (the hub's `last` position); other cursors keep what they have.
  begin(last) {
    if (this.known) return false;
    this.known = true;
    this.after = position(last) ? last : 0;
    return true;
  }

  seen(pos) {
    return (this.after !== null && pos <= this.after) || this.recent.includes(pos);
  }

  // Record `pos` as given; false when it was given before (a duplicate to skip).
  accept(pos) {
    if (!position(pos) || this.seen(pos)) return false;
    let at = this.recent.length;
    while (at > 0 && this.recent[at - 1] > pos) at--;
    this.recent.splice(at, 0, pos);
    while (this.recent.length > RECENT_POSITIONS) this.after = this.recent.shift();
    return true;
  }

  // The position to ask hub.history after (null: from the oldest kept event).
  resumeAfter() {
    if (this.after !== null) return this.after;
    return this.recent.length ? this.recent[0] : null;
  }

  // The newest position given (null before any).
  newest() {
    return this.recent.length ? this.recent[this.recent.length - 1] : this.after;
  }

  snapshot() {
    return this.known ? {after: this.after, recent: this.recent.slice()} : "now";
  }
}
