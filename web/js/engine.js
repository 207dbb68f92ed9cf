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
// Messages from a client: {op: "connect" | "call" | "watch" | "unwatch" | "logout" | "info" | "seal", ...}.
// Messages to a client: {op: "status" | "state" | "unavailable" | "result", ...}.

import {E2EError, NonceGuard, PrivateStates, REFUSED} from "./e2e.js";

const LOGIN_REQUIRED = "reactive.error.auth.login_required";
const SESSION_EXPIRED = "reactive.error.auth.session_expired";
export const OFFLINE = "reactive.error.offline";

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

export function errorInfo(err) {
  if (err && typeof err === "object" && typeof err.error === "string") {
    const args = Array.isArray(err.args) ? err.args : [];
    return {error: err.error, args, kwargs: err.kwargs || {}, message: String(args[0] ?? err.error)};
  }
  return {error: "reactive.error.client", args: [], kwargs: {}, message: String(err && err.message || err)};
}

export class Engine {
  constructor({autobahn, url, tokenUrl = "/auth/token", logoutUrl = "/auth/logout", fetch = globalThis.fetch.bind(globalThis),
               timers = globalThis, backoff = {initial: 0.5, growth: 1.6, max: 15}}) {
    this.autobahn = autobahn;
    this.url = url;
    this.tokenUrl = tokenUrl;
    this.logoutUrl = logoutUrl;
    this.fetch = fetch;
    this.timers = timers;
    this.backoff = backoff;
    this.clients = new Set();
    this.topics = new Map();       // topic -> {getProc, refs: Map(client -> count), latest, unavailable}
    this.status = {state: "idle"};
    this.connection = null;
    this.session = null;
    this.retryTimer = null;
    this.delay = backoff.initial;
    this.signedOut = false;
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
  }

  handle(client, msg) {
    switch (msg && msg.op) {
      case "connect": this.start(); break;
      case "call": this.answer(client, msg.id, this.call(msg.proc, msg.args, msg.kwargs)); break;
      case "watch": this.watch(client, msg.topic, msg.getProc); break;
      case "unwatch": this.unwatch(client, msg.topic); break;
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
    return {clients: this.clients.size, topics, status: this.status, e2e: this.e2e.info()};
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
        headers: {"Content-Type": "application/json"}, body: "{}"});
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
          if (err instanceof SignedOut) this.signedOut = true;
          throw err;
        }
      },
    });
    this.connection = connection;
    connection.onopen = (session, details) => {
      if (generation !== this.generation) return;
      this.session = session;
      this.delay = this.backoff.initial;
      this.setStatus({state: "online", user: user || {username: details.authid, role: details.authrole, first_name: ""},
                      session: session.id});
      for (const [topic, entry] of this.topics) {
        entry.subscription = null;
        this.sync(session, topic, entry);
      }
    };
    connection.onclose = (reason, details) => {
      if (generation !== this.generation) return true;
      this.connection = null;
      this.session = null;
      const why = (details && details.reason) || reason;
      if (this.signedOut) {
        this.setStatus({state: "signed_out"});
        return true;
      }
      // the hub ended the session because its token expired: rejoin at once with a fresh token
      const delay = why === SESSION_EXPIRED ? 0 : this.nextDelay();
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

  nextDelay() {
    const delay = this.delay * (0.9 + 0.2 * Math.random());
    this.delay = Math.min(this.delay * this.backoff.growth, this.backoff.max);
    return Math.round(delay * 1000) / 1000;
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
    this.setStatus({state: "signed_out"});
  }

  async logout() {
    try {
      await this.fetch(this.logoutUrl, {method: "POST", credentials: "same-origin", cache: "no-store",
                                        headers: {"Content-Type": "application/json"}, body: "{}"});
    } finally {
      this.signOut();
    }
    return {logged_out: true};
  }
}
