// The connection engine: one WAMP session, shared by any number of clients
// (browser tabs talking to a SharedWorker, or the one tab of a direct
// connection). It authenticates with a fresh JWT from /auth/token on every
// connect, reconnects by itself, keeps one subscription per topic
// (reference-counted per client), remembers the newest state of each topic
// and re-syncs every topic after each (re)connect.
//
// End-to-end encrypted values (see e2e.js) are opened here, with the user's
// data keys from the /auth/token answer, held only in this engine's memory.
// States of one topic that need opening are handled one after another in
// arrival order. A state that fails (tampered, moved, unknown key after one
// refetch, malformed, plaintext on a private topic while encryption is on)
// is never shown: the topic's clients get "unavailable" with the error
// reactive.error.e2e.refused (kwargs.code says why) when the refused state
// claims to be newer than the one shown; older ones are dropped and counted.
//
// Series (hub.series): one subscription per source and one window of points (the largest window any client asked
// for), kept gap-free across reconnects: after every (re)connect the engine subscribes first, then asks
// iot.history(source, after_seq=<last seq it has>) page by page ("more"), holding live events back until the
// history is in, so every state reaches the clients once, in seq order. When the hub answers "pruned" (states
// after that seq are gone) the window is loaded again and the clients are told to reset.
//
// Events (hub.events): one follower per listener of a client, each with its own EventCursor (cursor.js) and its
// own subscription of hub.feed.<topic>, whose messages carry the event's stored position. After every
// (re)connect the engine subscribes the feed first (live messages wait), reads hub.history after the cursor page
// by page ("more"), passes on what the follower was not given, then the waiting live messages (duplicates
// skipped), then live ones as they come. An answer saying "pruned" is checked once more after the newest
// position given: when that one is pruned too, events were lost, the client is told ("gap") and the next event
// it gets is marked gap: true.
//
// Messages from a client: {op: "connect" | "call" | "watch" | "unwatch" | "series" | "unseries" | "follow"
// | "unfollow" | "logout" | "info" | "seal", ...}.
// Messages to a client: {op: "status" | "state" | "unavailable" | "points" | "series_error" | "events" | "gap"
// | "events_error" | "result", ...}.

import {Backoff} from "./backoff.js";
import {EventCursor} from "./cursor.js";
import {E2EError, NonceGuard, PrivateStates, REFUSED} from "./e2e.js";

const LOGIN_REQUIRED = "reactive.error.auth.login_required";
const SESSION_EXPIRED = "reactive.error.auth.session_expired";
// the directory revoked the token (rights changed, logout elsewhere): a fresh token says what is left, at once
const REVOKED = "reactive.error.auth.revoked";
export const OFFLINE = "reactive.error.offline";
export const HISTORY_PROC = "iot.history";
export const HISTORY_PAGE = 1000;    // states per iot.history call (the most the hub gives at once)
const MAX_RELOADS = 3;               // "pruned" answers in a row before the engine gives up on one sync
export const EVENTS_PROC = "hub.history";
export const FEED_PREFIX = "hub.feed.";
export const EVENTS_PAGE = 1000;     // events per hub.history call (the most the hub gives at once)

class SignedOut extends Error {}

export function websocketUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

// The newer of two {value, seq, ts} states by seq (null when `candidate` is not newer).
export function newer(current, candidate) {
  if (!candidate || typeof candidate !== "object" || typeof candidate.seq !== "number") return null;
  if (current && current.seq >= candidate.seq) return null;
  return candidate;
}

// Whether `state` is a state dict with an integer seq and a numeric ts (what a series holds).
export function isState(state) {
  return Boolean(state) && typeof state === "object" && Number.isSafeInteger(state.seq) && Number.isFinite(state.ts);
}

export function errorInfo(err) {
  if (err && typeof err === "object" && typeof err.error === "string") {
    const args = Array.isArray(err.args) ? err.args : [];
    return {error: err.error, args, kwargs: err.kwargs || {}, message: String(args[0] ?? err.error)};
  }
  return {error: "reactive.error.client", args: [], kwargs: {}, message: String(err && err.message || err)};
}

export class Engine {
  constructor({autobahn, url, tokenUrl = "/auth/token", logoutUrl = "/auth/logout", fetch = globalThis.fetch.bind(globalThis),
               timers = globalThis, backoff = new Backoff()}) {
    this.autobahn = autobahn;
    this.url = url;
    this.tokenUrl = tokenUrl;
    this.logoutUrl = logoutUrl;
    this.headers = {};             // extra request headers for tokenUrl/logoutUrl (a CSRF token)
    this.fetch = fetch;
    this.timers = timers;
    this.backoff = backoff;
    this.clients = new Set();
    this.topics = new Map();       // topic -> {getProc, refs: Map(client -> count), latest, unavailable}
    this.series = new Map();       // source -> {refs: Map(client -> [minutes...]), minutes, points, lastSeq, ...}
    this.followers = new Set();    // {client, key, topic, cursor, subscription, buffer, run, gapNext, live}
    this.status = {state: "idle"};
    this.connection = null;
    this.session = null;
    this.retryTimer = null;
    this.signedOut = false;
    this.signOutReason = null;     // why the hub signed this user out ({error, message}), for the login page
    this.hubEnded = null;          // the hub's close reason of the last session, while rejoining after it
    this.generation = 0;           // bumps on every connection attempt; stale callbacks compare it
    this.signOuts = 0;             // states opened across a sign-out are dropped
    this.e2e = new PrivateStates({refresh: async () => this.e2e.setKeys((await this.fetchToken()).e2e)});
  }

  // ---- clients -----------------------------------------------------------

  attach(client) {
    this.clients.add(client);
    client.post({op: "status", status: this.status});
  }

  detach(client) {
    if (!this.clients.delete(client)) return;
    for (const [topic, entry] of this.topics) {
      if (entry.refs.delete(client) && entry.refs.size === 0) this.dropTopic(topic);
    }
    for (const [source, entry] of this.series) {
      if (entry.refs.delete(client) && entry.refs.size === 0) this.dropSeries(source);
    }
    for (const follower of this.followers) {
      if (follower.client === client) this.unfollow(client, follower.key);
    }
  }

  // Where tokens come from (a page's Hub options); same-origin paths only, the engine never fetches elsewhere.
  // `url`: the hub's WebSocket when it is not this page's origin (a ws:// or wss:// URL).
  configure({tokenUrl, logoutUrl, headers, url}) {
    const local = (url) => typeof url === "string" && url.startsWith("/") && !url.startsWith("//");
    if (typeof url === "string" && /^wss?:\/\/[^/]/.test(url)) this.url = url;
    if (local(tokenUrl)) this.tokenUrl = tokenUrl;
    if (local(logoutUrl)) this.logoutUrl = logoutUrl;
    if (headers && typeof headers === "object") {
      this.headers = Object.fromEntries(Object.entries(headers).filter(
        ([name, value]) => name === "X-CSRFToken" && typeof value === "string"));
    }
  }

  handle(client, msg) {
    switch (msg && msg.op) {
      case "configure": this.configure(msg); break;
      case "connect": this.start(); break;
      case "call": this.answer(client, msg.id, this.call(msg.proc, msg.args, msg.kwargs)); break;
      case "watch": this.watch(client, msg.topic, msg.getProc); break;
      case "unwatch": this.unwatch(client, msg.topic); break;
      case "series": this.watchSeries(client, msg.topic, msg.minutes, msg.key); break;
      case "unseries": this.unwatchSeries(client, msg.topic, msg.minutes); break;
      case "follow": this.follow(client, msg.topic, msg.key, msg.since); break;
      case "unfollow": this.unfollow(client, msg.key); break;
      case "logout": this.answer(client, msg.id, this.logout()); break;
      case "info": this.answer(client, msg.id, Promise.resolve(this.info())); break;
      case "seal": this.answer(client, msg.id, this.e2e.seal(msg.topic, msg.seq, msg.value)); break;
      default: break;
    }
  }

  answer(client, id, promise) {
    promise.then(
      (value) => client.post({op: "result", id, value}),
      (err) => client.post({op: "result", id, error: errorInfo(err)}));
  }

  broadcast(msg) {
    for (const client of this.clients) client.post(msg);
  }

  setStatus(status) {
    this.status = status;
    this.broadcast({op: "status", status});
  }

  info() {
    const topics = {};
    for (const [topic, entry] of this.topics) {
      topics[topic] = [...entry.refs.values()].reduce((a, b) => a + b, 0);
    }
    const series = {};
    for (const [source, entry] of this.series) {
      series[source] = {refs: [...entry.refs.values()].reduce((a, b) => a + b.length, 0), minutes: entry.minutes,
                        points: entry.points.length, lastSeq: entry.lastSeq, syncs: entry.syncs, loading: entry.buffer !== null};
    }
    const events = [...this.followers].map((follower) => ({
      topic: follower.topic, syncing: follower.buffer !== null, subscribed: follower.subscription !== null,
      syncs: follower.syncs, after: follower.cursor.resumeAfter(), newest: follower.cursor.newest()}));
    return {clients: this.clients.size, topics, series, events, status: this.status, e2e: this.e2e.info(),
            endpoints: {tokenUrl: this.tokenUrl, logoutUrl: this.logoutUrl, headers: Object.keys(this.headers)}};
  }

  // ---- topics ------------------------------------------------------------

  watch(client, topic, getProc) {
    let entry = this.topics.get(topic);
    const fresh = !entry;
    if (fresh) {
      entry = {getProc, refs: new Map(), latest: null, unavailable: null, subscription: null,
               opening: Promise.resolve(), guard: new NonceGuard()};
      this.topics.set(topic, entry);
    }
    entry.refs.set(client, (entry.refs.get(client) || 0) + 1);
    // a late tab gets the current state (or why there is none) at once
    if (entry.unavailable) client.post({op: "unavailable", topic, error: entry.unavailable});
    else if (entry.latest) client.post({op: "state", topic, state: entry.latest});
    if (fresh && this.session) this.sync(this.session, topic, entry);
  }

  unwatch(client, topic) {
    const entry = this.topics.get(topic);
    if (!entry || !entry.refs.has(client)) return;
    const count = entry.refs.get(client) - 1;
    if (count > 0) entry.refs.set(client, count);
    else entry.refs.delete(client);
    if (entry.refs.size === 0) this.dropTopic(topic);
  }

  dropTopic(topic) {
    const entry = this.topics.get(topic);
    this.topics.delete(topic);
    if (entry && entry.subscription && this.session && this.session.isOpen) {
      this.session.unsubscribe(entry.subscription).catch(() => {});
    }
  }

  apply(topic, entry, state) {
    if (this.topics.get(topic) !== entry || !newer(entry.latest, state)) return;
    entry.latest = state;
    entry.unavailable = null;
    for (const client of entry.refs.keys()) client.post({op: "state", topic, state});
  }

  // A state from the router (event or .get result): plain values go straight to the seq rule; envelopes (and
  // anything on a private topic while encryption is on) are opened first, in arrival order per topic.
  receive(topic, entry, state) {
    if (!state || typeof state !== "object") return;
    if (!this.e2e.needs(topic, state)) {
      this.apply(topic, entry, state);
      return;
    }
    const signOuts = this.signOuts;
    entry.opening = entry.opening.then(async () => {
      if (this.topics.get(topic) !== entry || signOuts !== this.signOuts) return;
      let opened;
      try {
        opened = await this.e2e.openState(topic, state, entry.guard);
      } catch (err) {
        if (signOuts === this.signOuts) this.refuse(topic, entry, state, err);
        return;
      }
      if (signOuts === this.signOuts) this.apply(topic, entry, opened);
    });
  }

  refuse(topic, entry, state, err) {
    const code = err instanceof E2EError ? err.code : "failed";
    this.e2e.refused(code);
    if (this.topics.get(topic) !== entry) return;
    // one that would not be shown even if it were genuine (not newer) cannot hide the current state
    if (entry.latest && Number.isSafeInteger(state.seq) && state.seq <= entry.latest.seq) return;
    this.markUnavailable(topic, entry, {error: REFUSED, args: [String(err && err.message || err)],
                                        kwargs: {code, seq: Number.isSafeInteger(state.seq) ? state.seq : null}});
  }

  markUnavailable(topic, entry, err) {
    if (this.topics.get(topic) !== entry) return;
    entry.unavailable = errorInfo(err);
    for (const client of entry.refs.keys()) client.post({op: "unavailable", topic, error: entry.unavailable});
  }

  // Subscribe first, then fetch the current state; both go through the seq rule.
  async sync(session, topic, entry) {
    try {
      entry.subscription = await session.subscribe(topic, (args) => this.receive(topic, entry, args && args[0]));
      if (this.topics.get(topic) !== entry) {
        session.unsubscribe(entry.subscription).catch(() => {});
        return;
      }
    } catch (err) {
      this.markUnavailable(topic, entry, err);
      return;
    }
    try {
      // getProc: a procedure URI, or [uri, args, kwargs] (e.g. ["counter.get", [], {name: "b"}])
      const [proc, args, kwargs] = Array.isArray(entry.getProc) ? entry.getProc : [entry.getProc];
      this.receive(topic, entry, await session.call(proc, args, kwargs));
    } catch (err) {
      if (!entry.latest) this.markUnavailable(topic, entry, err);
    }
  }

  // ---- series ------------------------------------------------------------

  watchSeries(client, source, minutes, key) {
    minutes = Number.isFinite(minutes) && minutes > 0 ? minutes : 10;
    let entry = this.series.get(source);
    const fresh = !entry;
    if (fresh) {
      entry = {refs: new Map(), minutes, points: [], lastSeq: null, loaded: false, reload: false, error: null,
               buffer: null, subscription: null, run: 0, syncs: 0};
      this.series.set(source, entry);
    }
    const windows = entry.refs.get(client) || [];
    windows.push(minutes);
    entry.refs.set(client, windows);
    const grew = minutes > entry.minutes;
    entry.minutes = Math.max(entry.minutes, minutes);
    if (grew && this.session) {
      // a wider window than the points held: load it whole, every client resets
      entry.reload = true;
      this.syncSeries(this.session, source, entry);
      return;
    }
    // a late client gets what is held at once (the listener that asked, not the tab's other listeners)
    if (entry.loaded) client.post({op: "points", topic: source, key, reset: true, points: entry.points});
    if (entry.error) client.post({op: "series_error", topic: source, key, error: entry.error});
    if (fresh && this.session) this.syncSeries(this.session, source, entry);
  }

  unwatchSeries(client, source, minutes) {
    const entry = this.series.get(source);
    const windows = entry && entry.refs.get(client);
    if (!windows) return;
    const at = windows.indexOf(minutes);
    windows.splice(at >= 0 ? at : 0, 1);
    if (windows.length === 0) entry.refs.delete(client);
    if (entry.refs.size === 0) this.dropSeries(source);
  }

  dropSeries(source) {
    const entry = this.series.get(source);
    this.series.delete(source);
    if (!entry) return;
    entry.run++;
    if (entry.subscription && this.session && this.session.isOpen) {
      this.session.unsubscribe(entry.subscription).catch(() => {});
    }
  }

  // Subscribe, then fill the gap since entry.lastSeq from iot.history; live events wait in entry.buffer meanwhile.
  async syncSeries(session, source, entry) {
    const run = ++entry.run;
    const current = () => this.series.get(source) === entry && entry.run === run && this.session === session;
    entry.buffer = [];
    entry.syncs++;
    try {
      if (!entry.subscription) {
        entry.subscription = await session.subscribe(source, (args) => this.seriesEvent(source, entry, args && args[0]));
        if (this.series.get(source) !== entry) {
          session.unsubscribe(entry.subscription).catch(() => {});
          return;
        }
      }
    } catch (err) {
      // no live events (the topic is not ours to subscribe): the stored states still show
      entry.subscription = null;
      if (!current()) return;
      this.seriesError(source, entry, err);
    }
    let history = null;
    try {
      history = await this.fetchHistory(session, source, entry, current);
    } catch (err) {
      if (current()) this.seriesError(source, entry, err);
    }
    if (!current()) return;
    const buffered = entry.buffer;
    entry.buffer = null;
    if (history) {
      if (entry.subscription) entry.error = null;
      entry.reload = false;
      if (history.reset) {
        entry.points = [];
        entry.lastSeq = null;
      }
      this.addPoints(source, entry, history.states.concat(buffered), history.reset || !entry.loaded);
    } else {
      this.addPoints(source, entry, buffered, false);
    }
    entry.loaded = true;
  }

  // The states after entry.lastSeq (or the whole window when it is null, or when the hub says some are pruned),
  // paged by "more": {states, reset}. Null when a newer sync took over.
  async fetchHistory(session, source, entry, current) {
    let after = entry.reload ? null : entry.lastSeq;
    let reset = after === null;
    let reloads = 0;
    let states = [];
    for (;;) {
      const page = await session.call(HISTORY_PROC, [source], {after_seq: after, limit: HISTORY_PAGE,
                                                                minutes: entry.minutes});
      if (!current()) return null;
      if (!page || typeof page !== "object" || !Array.isArray(page.states)) {
        throw {error: "reactive.error.client", args: [`${HISTORY_PROC} answered something that is no history`]};
      }
      if (page.pruned && after !== null) {
        // the states we need after `after` are gone: the gap cannot be filled, load the window again
        if (++reloads > MAX_RELOADS) throw {error: "reactive.error.client", args: ["history keeps being pruned"]};
        after = null;
        reset = true;
        states = [];
        continue;
      }
      const fresh = page.states.filter((state) => isState(state) && (after === null || state.seq > after));
      states = states.concat(fresh);
      if (!page.more || fresh.length === 0) return {states, reset};
      after = fresh[fresh.length - 1].seq;
    }
  }

  seriesEvent(source, entry, state) {
    if (this.series.get(source) !== entry || !isState(state)) return;
    if (entry.buffer) entry.buffer.push(state);
    else this.addPoints(source, entry, [state], false);
  }

  // Append the states newer than entry.lastSeq in seq order (each seq once), drop points older than the window,
  // and pass on what was added (all held points when `reset`).
  addPoints(source, entry, states, reset) {
    const added = [];
    for (const state of [...states].sort((a, b) => a.seq - b.seq)) {
      if (entry.lastSeq !== null && state.seq <= entry.lastSeq) continue;
      entry.lastSeq = state.seq;
      entry.points.push(state);
      added.push(state);
    }
    const cutoff = Date.now() - entry.minutes * 60000;
    let old = 0;
    while (old < entry.points.length && entry.points[old].ts < cutoff) old++;
    if (old > 0) entry.points.splice(0, old);
    if (!reset && added.length === 0) return;
    const msg = reset ? {op: "points", topic: source, reset: true, points: entry.points}
                      : {op: "points", topic: source, reset: false, points: added};
    for (const client of entry.refs.keys()) client.post(msg);
  }

  seriesError(source, entry, err) {
    entry.error = errorInfo(err);
    for (const client of entry.refs.keys()) client.post({op: "series_error", topic: source, error: entry.error});
  }

  // ---- events ------------------------------------------------------------

  follow(client, topic, key, since) {
    if (typeof topic !== "string" || !topic) return;
    this.unfollow(client, key);
    const follower = {client, key, topic, cursor: new EventCursor(since), subscription: null, buffer: null, run: 0,
                      syncs: 0, gapNext: false, live: true, session: null};
    this.followers.add(follower);
    if (this.session) this.syncEvents(this.session, follower);
  }

  unfollow(client, key) {
    for (const follower of this.followers) {
      if (follower.client !== client || follower.key !== key) continue;
      this.followers.delete(follower);
      follower.live = false;
      follower.run++;
      follower.buffer = null;
      if (follower.subscription && this.session && this.session.isOpen && follower.session === this.session) {
        this.session.unsubscribe(follower.subscription).catch(() => {});
      }
    }
  }

  // Subscribe the feed (live messages wait in follower.buffer), read what was missed, pass it on, then go live.
  async syncEvents(session, follower) {
    const run = ++follower.run;
    const current = () => follower.live && follower.run === run && this.session === session;
    follower.buffer = [];
    follower.subscription = null;
    follower.syncs++;
    try {
      const subscription = await session.subscribe(FEED_PREFIX + follower.topic,
                                                   (args) => this.feedMessage(follower, args && args[0]));
      if (!follower.live || this.session !== session) {
        session.unsubscribe(subscription).catch(() => {});
        return;
      }
      follower.subscription = subscription;
      follower.session = session;
      if (!current()) return;
      const {events, gap} = await this.missedEvents(session, follower, current);
      if (!current()) return;
      const buffered = follower.buffer;
      follower.buffer = null;
      if (gap) {
        follower.gapNext = true;
        follower.client.post({op: "gap", key: follower.key, topic: follower.topic});
      }
      this.passOn(follower, events, true);
      this.passOn(follower, buffered, false);
    } catch (err) {
      if (!current()) return;
      const buffered = follower.buffer || [];
      follower.buffer = null;
      follower.client.post({op: "events_error", key: follower.key, topic: follower.topic, error: errorInfo(err)});
      this.passOn(follower, buffered, false);   // the history failed: live events still come
    }
  }

  // hub.history after the follower's cursor until "more" is false: {events, gap}.
  async missedEvents(session, follower, current) {
    const {cursor, topic} = follower;
    const ask = async (after, limit) => {
      const page = await session.call(EVENTS_PROC, [topic], {after_publication: after, limit});
      if (!page || typeof page !== "object" || !Array.isArray(page.events)) {
        throw {error: "reactive.error.client", args: [`${EVENTS_PROC} answered something that is no history`]};
      }
      return page;
    };
    if (!cursor.known) {
      // "now": start after the last position the hub gave (only events after it are asked for)
      const page = await ask(Number.MAX_SAFE_INTEGER, 1);
      if (!current()) return {events: [], gap: false};
      if (cursor.begin(page.last)) follower.client.post({op: "events", key: follower.key, topic, events: [],
                                                          start: cursor.after});
    }
    const from = cursor.resumeAfter();
    let after = from;
    let pruned = false;
    const events = [];
    for (;;) {
      const page = await ask(after, EVENTS_PAGE);
      if (!current()) return {events: [], gap: false};
      pruned = pruned || page.pruned === true;
      const fresh = page.events.filter((event) => event && Number.isSafeInteger(event.publication)
                                                  && (after === null || event.publication > after));
      events.push(...fresh);
      if (!page.more || fresh.length === 0) break;
      after = fresh[fresh.length - 1].publication;
    }
    // from the start nothing is missing; resumed after a position, check the newest one given before saying so
    // (what was pruned may all have been given already)
    let gap = pruned && from !== null;
    const newest = cursor.newest();
    if (gap && newest !== null && newest > from) gap = (await ask(newest, 1)).pruned === true;
    return {events, gap};
  }

  feedMessage(follower, message) {
    if (!follower.live || !message || typeof message !== "object") return;
    if (follower.buffer) follower.buffer.push(message);
    else this.passOn(follower, [message], false);
  }

  // Pass on the messages the follower was not given yet, in the order given (a message without a position, one
  // the hub could not store, always passes and moves no cursor).
  passOn(follower, messages, replayed) {
    const out = [];
    for (const message of messages) {
      if (!message || typeof message !== "object") continue;
      const publication = message.publication;
      if (publication !== null && !follower.cursor.accept(publication)) continue;
      const details = {topic: follower.topic, publication, ts: Number.isFinite(message.ts) ? message.ts : null,
                       replayed, gap: follower.gapNext};
      follower.gapNext = false;
      out.push({args: Array.isArray(message.args) ? message.args : [],
                kwargs: message.kwargs && typeof message.kwargs === "object" ? message.kwargs : {}, details});
    }
    if (out.length) follower.client.post({op: "events", key: follower.key, topic: follower.topic, events: out});
  }

  // ---- calls -------------------------------------------------------------

  async call(proc, args = [], kwargs = {}) {
    if (!this.session || !this.session.isOpen) {
      throw {error: OFFLINE, args: ["not connected"]};
    }
    const result = await this.session.call(proc, args || [], kwargs || {});
    if (result instanceof this.autobahn.Result) return {args: result.args, kwargs: result.kwargs};
    return result;
  }

  // ---- connection --------------------------------------------------------

  start() {
    this.signedOut = false;
    if (this.connection) return;
    if (this.retryTimer !== null) this.reconnectNow();
    else this.open();
  }

  reconnectNow() {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  async fetchToken() {
    let response;
    try {
      response = await this.fetch(this.tokenUrl, {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: {"Content-Type": "application/json", ...this.headers}, body: "{}"});
    } catch (err) {
      throw new Error("token endpoint unreachable");
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 || body.error === LOGIN_REQUIRED) throw new SignedOut(body.message || "not logged in");
    if (!response.ok || typeof body.token !== "string") throw new Error(body.message || `token endpoint answered ${response.status}`);
    return body;
  }

  open() {
    const generation = ++this.generation;
    let user = null;
    if (this.status.state !== "online") this.setStatus({state: "connecting"});
    const connection = new this.autobahn.Connection({
      url: this.url,
      realm: "reactive",
      authmethods: ["ticket"],
      max_retries: 0,           // this engine does its own retries, also after a router GOODBYE
      retry_if_unreachable: false,
      onchallenge: async (session, method) => {
        if (method !== "ticket") throw new Error(`unexpected auth method ${method}`);
        try {
          const answer = await this.fetchToken();
          user = {username: answer.username, role: answer.role, first_name: answer.first_name || ""};
          await this.e2e.setKeys(answer.e2e);   // in memory only; absent when encryption is off
          return answer.token;
        } catch (err) {
          if (err instanceof SignedOut) {
            this.signedOut = true;
            // the hub ended the session (revoked) and the token endpoint refuses too: the user learns why
            if (this.hubEnded === REVOKED) this.signOutReason = {error: REVOKED, message: err.message};
          }
          throw err;
        }
      },
    });
    this.connection = connection;
    connection.onopen = (session, details) => {
      if (generation !== this.generation) return;
      this.session = session;
      this.backoff.reset();
      this.hubEnded = null;
      this.setStatus({state: "online", user: user || {username: details.authid, role: details.authrole, first_name: ""},
                      session: session.id});
      for (const [topic, entry] of this.topics) {
        entry.subscription = null;
        this.sync(session, topic, entry);
      }
      for (const [source, entry] of this.series) {
        entry.subscription = null;
        this.syncSeries(session, source, entry);
      }
      for (const follower of this.followers) this.syncEvents(session, follower);
    };
    connection.onclose = (reason, details) => {
      if (generation !== this.generation) return true;
      this.connection = null;
      this.session = null;
      const why = (details && details.reason) || reason;
      if (this.signedOut) {
        this.setStatus(this.signOutReason ? {state: "signed_out", reason: this.signOutReason} : {state: "signed_out"});
        this.signOutReason = null;
        this.hubEnded = null;
        return true;
      }
      // the hub ended the session because its token expired or was revoked: rejoin at once with a fresh
      // token (a demoted admin comes back as a user; a deactivated or logged-out one gets signed_out)
      const hubEnded = why === SESSION_EXPIRED || why === REVOKED;
      this.hubEnded = hubEnded ? why : null;
      const delay = hubEnded ? 0 : this.backoff.next();
      if (delay > 0) this.setStatus({state: "offline", retryAt: Date.now() + delay * 1000, reason: String(why)});
      else this.setStatus({state: "connecting", reason: String(why)});
      this.retryTimer = this.timers.setTimeout(() => { this.retryTimer = null; this.open(); }, delay * 1000);
      return true;
    };
    try {
      connection.open();
    } catch (err) {
      connection.onclose("unsupported", {reason: String(err)});
    }
  }

  stop() {
    this.generation++;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const connection = this.connection;
    this.connection = null;
    this.session = null;
    if (connection) {
      try { connection.close("wamp.close.logout", "signed out"); } catch (err) { /* already closed */ }
    }
  }

  signOut() {
    this.signedOut = true;
    this.stop();
    this.signOuts++;
    this.e2e.clear();
    for (const entry of this.topics.values()) {
      entry.latest = null;
      entry.unavailable = null;
      entry.guard = new NonceGuard();
    }
    for (const entry of this.series.values()) {
      entry.run++;
      Object.assign(entry, {points: [], lastSeq: null, loaded: false, reload: false, error: null, buffer: null});
    }
    for (const follower of this.followers) {
      follower.run++;
      follower.buffer = null;
      follower.subscription = null;
    }
    this.setStatus({state: "signed_out"});
  }

  async logout() {
    try {
      await this.fetch(this.logoutUrl, {method: "POST", credentials: "same-origin", cache: "no-store",
                                        headers: {"Content-Type": "application/json", ...this.headers}, body: "{}"});
    } finally {
      this.signOut();
    }
    return {logged_out: true};
  }
}
