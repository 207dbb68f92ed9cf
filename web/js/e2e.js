// End-to-end encrypted payloads in the browser, with WebCrypto. The same
// envelope as components/e2e/envelope.py (format v1):
//
//   {"e2e": 1, "alg": "A256GCM", "kid": "<key id>", "nonce": "<b64url 12 bytes>",
//    "ct": "<b64url ciphertext || 16-byte tag>"}
//
// AES-256-GCM, 96-bit nonce, 128-bit tag; the plaintext is the UTF-8 JSON of
// the value; the associated data binds kid, topic and seq:
//
//   "reactive-e2e/1\n" + alg + "\n" + kid + "\n" + topic + "\n" + seq
//
// Keys come only from the /auth/token answer ({current, keys: {kid: b64url}})
// and live only in memory, as non-extractable CryptoKeys (never in
// localStorage, sessionStorage, IndexedDB or the Cache API).
//
// Refusals are E2EError with a `code`: malformed, unsupported_version,
// unsupported_algorithm, unknown_key, auth_failed, replayed, nonce_reuse,
// not_encrypted, no_webcrypto.

export const VERSION = 1;
export const ALGORITHM = "A256GCM";
export const REFUSED = "reactive.error.e2e.refused";
// topics whose values must arrive encrypted once the hub hands out keys (encryption on)
export const PRIVATE_TOPICS = Object.freeze(["users.changed"]);

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const MAX_CIPHERTEXT = 1024 * 1024;
const B64URL = /^[A-Za-z0-9_-]+$/;

export class E2EError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "E2EError";
    this.code = code;
  }
}

function subtle() {
  const crypto = globalThis.crypto;
  if (!crypto || !crypto.subtle) {
    throw new E2EError("no_webcrypto", "WebCrypto is unavailable (the page must be served over HTTPS)");
  }
  return crypto.subtle;
}

export function b64urlEncode(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64urlDecode(text, what = "value") {
  if (typeof text !== "string" || !text || text.length > 2 * MAX_CIPHERTEXT || !B64URL.test(text) ||
      text.length % 4 === 1) {
    throw new E2EError("malformed", `${what} must be a base64url string`);
  }
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function associatedData(kid, topic, seq, alg = ALGORITHM) {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new E2EError("malformed", "seq must be a non-negative integer");
  if (typeof topic !== "string" || !topic) throw new E2EError("malformed", "topic must be a non-empty string");
  return new TextEncoder().encode(`reactive-e2e/${VERSION}\n${alg}\n${kid}\n${topic}\n${seq}`);
}

export function isEnvelope(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && "e2e" in value && "ct" in value;
}

// Check the envelope's shape (in the same order as the Python side, so both give the same code).
export function parse(envelope) {
  if (!envelope || typeof envelope !== "object" || Array.isArray(envelope)) {
    throw new E2EError("malformed", "envelope must be an object");
  }
  if (envelope.e2e !== VERSION) throw new E2EError("unsupported_version", `unsupported envelope version ${envelope.e2e}`);
  if (envelope.alg !== ALGORITHM) throw new E2EError("unsupported_algorithm", `unsupported algorithm ${envelope.alg}`);
  const kid = envelope.kid;
  if (typeof kid !== "string" || kid.length < 1 || kid.length > 64) {
    throw new E2EError("malformed", "kid must be a short string");
  }
  const nonce = b64urlDecode(envelope.nonce, "nonce");
  if (nonce.length !== NONCE_BYTES) throw new E2EError("malformed", "nonce must be 12 bytes");
  const ct = b64urlDecode(envelope.ct, "ct");
  if (ct.length < TAG_BYTES) throw new E2EError("malformed", "ciphertext is truncated");
  return {kid, nonce, ct};
}

// A non-extractable AES-GCM key from 32 raw bytes or their base64url; the raw copy is wiped.
export async function importKey(raw) {
  const bytes = typeof raw === "string" ? b64urlDecode(raw, "key") : new Uint8Array(raw);
  try {
    if (bytes.length !== KEY_BYTES) throw new E2EError("bad_key", "data keys are 32 bytes");
    return await subtle().importKey("raw", bytes, {name: "AES-GCM"}, false, ["encrypt", "decrypt"]);
  } finally {
    bytes.fill(0);
  }
}

async function asKey(key) {
  return key instanceof CryptoKey ? key : importKey(key);
}

// Encrypt `value` (JSON-serialisable) for topic/seq; `nonce` only for test vectors.
export async function seal(key, kid, topic, seq, value, nonce = null) {
  if (typeof kid !== "string" || kid.length < 1 || kid.length > 64) {
    throw new E2EError("malformed", "kid must be a short string");
  }
  const additionalData = associatedData(kid, topic, seq);
  const iv = nonce ? new Uint8Array(nonce) : globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  if (iv.length !== NONCE_BYTES) throw new E2EError("malformed", "nonce must be 12 bytes");
  const plaintext = new TextEncoder().encode(JSON.stringify(value));
  const ct = await subtle().encrypt({name: "AES-GCM", iv, additionalData, tagLength: 128}, await asKey(key), plaintext);
  return {e2e: VERSION, alg: ALGORITHM, kid, nonce: b64urlEncode(iv), ct: b64urlEncode(new Uint8Array(ct))};
}

// Decrypt and authenticate with a known key; resolves the value or rejects with E2EError.
export async function open(key, topic, seq, envelope) {
  return (await openParsed(await asKey(key), topic, seq, parse(envelope))).value;
}

async function openParsed(key, topic, seq, {kid, nonce, ct}) {
  const additionalData = associatedData(kid, topic, seq);
  let plaintext;
  try {
    plaintext = await subtle().decrypt({name: "AES-GCM", iv: nonce, additionalData, tagLength: 128}, key, ct);
  } catch (err) {
    throw new E2EError("auth_failed", "envelope failed authentication (tampered, wrong key, topic or seq)");
  }
  try {
    return {value: JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(plaintext))};
  } catch (err) {
    throw new E2EError("malformed", "the plaintext is not UTF-8 JSON");
  }
}

// Remembers the last `size` (kid, nonce) pairs of authenticated envelopes: the same envelope again is a replay,
// the same nonce with other ciphertext means the sender reused a nonce.
export class NonceGuard {
  constructor(size = 1024) {
    this.size = size;
    this.seen = new Map();
  }

  check(kid, nonce, ct) {
    const key = `${kid}\n${b64urlEncode(nonce)}`;
    const digest = b64urlEncode(ct.subarray(ct.length - TAG_BYTES));   // the tag stands for the ciphertext
    if (this.seen.has(key)) {
      const code = this.seen.get(key) === digest ? "replayed" : "nonce_reuse";
      throw new E2EError(code, `nonce seen before (${code.replace("_", " ")})`);
    }
    this.seen.set(key, digest);
    if (this.seen.size > this.size) this.seen.delete(this.seen.keys().next().value);
  }
}

// The user's data keys (from /auth/token) and the rules for private states, for the connection engine.
//   refresh(): fetches a fresh /auth/token answer and calls setKeys with its `e2e` part.
export class PrivateStates {
  constructor({refresh, privateTopics = PRIVATE_TOPICS, cooldown = 30000, now = () => Date.now()} = {}) {
    this.refresh = refresh;
    this.privateTopics = new Set(privateTopics);
    this.cooldown = cooldown;
    this.now = now;
    this.clear();
    this.stats = {opened: 0, refused: {}, refetches: 0};
  }

  // Forget every key (sign-out).
  clear() {
    this.enabled = false;     // the hub handed out keys: encryption is on
    this.current = null;
    this.keys = new Map();    // kid -> CryptoKey
    this.missing = new Map(); // kid -> time a refetch did not bring it
    this.refreshing = null;
  }

  // Take the `e2e` part of a /auth/token answer (absent when encryption is off); replaces the previous keys.
  async setKeys(answer) {
    if (!answer || typeof answer !== "object" || !answer.keys || typeof answer.keys !== "object") {
      this.enabled = false;
      this.current = null;
      this.keys = new Map();
      return;
    }
    const keys = new Map();
    for (const [kid, raw] of Object.entries(answer.keys)) {
      try {
        keys.set(kid, await importKey(raw));
      } catch (err) {
        // a key we cannot import is a key we do not have: its envelopes are refused as unknown_key
      }
    }
    this.enabled = true;
    this.keys = keys;
    this.current = keys.has(answer.current) ? answer.current : null;
    for (const kid of keys.keys()) this.missing.delete(kid);
  }

  // Whether a state on `topic` goes through opening (an envelope, or a private topic while encryption is on).
  needs(topic, state) {
    return isEnvelope(state && state.value) || (this.enabled && this.privateTopics.has(topic));
  }

  // The key `kid`; an unknown kid triggers one refetch of the keys (shared by concurrent callers), then a retry.
  async key(kid) {
    if (this.keys.has(kid)) return this.keys.get(kid);
    const missedAt = this.missing.get(kid);
    if (missedAt === undefined || this.now() - missedAt > this.cooldown) {
      if (!this.refreshing) {
        this.stats.refetches++;
        this.refreshing = Promise.resolve().then(() => this.refresh()).catch(() => {})
          .finally(() => { this.refreshing = null; });
      }
      await this.refreshing;
      if (this.keys.has(kid)) return this.keys.get(kid);
      if (this.missing.size > 256) this.missing.clear();
      this.missing.set(kid, this.now());
    }
    throw new E2EError("unknown_key", `no usable key ${kid}`);
  }

  // Open a {value, seq, ts} state for `topic`: resolves a copy with the plain value (and `e2e: {kid}`), or rejects.
  async openState(topic, state, guard = null) {
    if (!isEnvelope(state.value)) {
      if (this.enabled && this.privateTopics.has(topic)) {
        throw new E2EError("not_encrypted", `${topic} must arrive encrypted`);
      }
      return state;
    }
    const parsed = parse(state.value);
    associatedData(parsed.kid, topic, state.seq);   // a bad seq is malformed before any key lookup
    const key = await this.key(parsed.kid);
    const {value} = await openParsed(key, topic, state.seq, parsed);
    if (guard) guard.check(parsed.kid, parsed.nonce, parsed.ct);
    this.stats.opened++;
    return {...state, value, e2e: {kid: parsed.kid}};
  }

  refused(code) {
    this.stats.refused[code] = (this.stats.refused[code] || 0) + 1;
  }

  // Seal a value for topic/seq with the current key (for sending private data to a component).
  async seal(topic, seq, value) {
    if (!this.current) throw new E2EError("unknown_key", "no current data key (encryption is off)");
    return seal(this.keys.get(this.current), this.current, topic, seq, value);
  }

  info() {
    return {enabled: this.enabled, current: this.current, kids: [...this.keys.keys()], ...this.stats,
            refused: {...this.stats.refused}};
  }
}
