// synclass signaling and WebRTC for the browser pages. No DOM here.
//
// One LessonClient per page: one WebSocket to /ws (docs/protocol.md) and two
// RTCPeerConnections — the *publish* connection (we offer sendonly m-lines,
// the server answers) and the *receive* connection (the server offers, we
// answer). The server does not trickle ICE, so every description we send is
// taken after ICE gathering completes.
//
// The client keeps an intent (join when a lesson is live? publish which
// tracks?) and re-does hello/join/publish by itself after the socket closes
// or a peer connection fails, with backoff 1 s doubling to 10 s.
//
// Events (all CustomEvent, payload in `detail`):
//   state           {state, previous}  connecting | waiting | live | reconnecting | closed | unauthorized
//   welcome         the welcome message
//   session         {session}          a lesson started (or the reply to start_session)
//   session_ended   {session_id}
//   joined          the joined message
//   participants    {participants: Participant[]}  the *other* participants, after any change
//   self            {participant: Participant}     our own hand / stage / mute state, after any change
//   producers       {producers: ProducerInfo[]}    after any change
//   track           {track, stream, consumer: ConsumerInfo, receiver}  a remote track to show/play
//   track_ended     {consumer}
//   published       {producers}                   producers created by a publish (also renegotiations)
//   layer           {consumer_id, producer_id, layer, consumer}  the layer a consumer forwards changed
//                   (an offer's ConsumerInfo or a consumer_layer push); layer null = the server
//                   paused that video because our link cannot carry it
//   unpublished     {producer_id, source}
//   moderated       the moderated reply (raise_hand, stage, mute, ...)
//   local_mute      {mic, camera}  null (on) | 'self' | 'teacher': the local tracks were (en|dis)abled
//   servererror     an error message from the server with no request to reject
//   log             {text}  lifecycle lines for a status area / debugging

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 10000;
const REQUEST_TIMEOUT_MS = 15000;
const ICE_GATHER_TIMEOUT_MS = 5000;
// A classroom must notice a dead link in seconds, not minutes: ping often
// (tiny messages) and give a 'disconnected' peer connection a few seconds to
// recover by itself before starting over.
const PING_EVERY_MS = 5000;
const PONG_TIMEOUT_MS = 5000;
const DISCONNECTED_GRACE_MS = 6000;

// Publish order: audio first (its m-line is the one the server should keep
// under pressure), then the camera, then the courseware (a second video).
export const PUBLISH_SOURCES = ['mic', 'camera', 'courseware'];
const MUTE_SOURCES = ['mic', 'camera'];

export class ProtocolError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function defaultWsUrl(loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

// Wait until the connection has gathered all its candidates (or timeout: send what we have).
export function iceGatheringComplete(pc, timeoutMs = ICE_GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// RTCRtpEncodingParameters from a source's send options
// ({maxBitrate, maxFramerate, scaleResolutionDownBy, priority}); null when there are none.
function encodingFrom(options = {}) {
  const enc = {};
  for (const key of ['maxBitrate', 'maxFramerate', 'scaleResolutionDownBy', 'priority']) {
    if (options[key] != null) enc[key] = options[key];
  }
  return Object.keys(enc).length ? enc : null;
}

// A source sent as layers (docs/protocol.md item 5): the same camera sent
// several times, each transceiver a lower resolution and bitrate. Index = layer.
// `priority` shares the uplink out when it is short: the full layer first.
//
// absSendTime false: the server's receivers send a REMB for every video
// m-line whose packets carry abs-send-time, each estimating that one stream
// (at most ~1.5x what it carries), and the browser takes every REMB as the
// cap of its whole connection — several video m-lines hold each other down
// (measured: three camera layers shrink to ~110 kbps in all, every layer at
// 320x180). Without abs-send-time those streams get no REMB and the browser's
// loss-based estimate governs the uplink (it climbs ~8 %/s while nothing is
// lost, and backs off on loss).
export const CAMERA_LAYERS = [
  { scaleResolutionDownBy: 1, maxBitrate: 1_500_000, priority: 'high', absSendTime: false },
  { scaleResolutionDownBy: 2, maxBitrate: 500_000, priority: 'medium', absSendTime: false },
  // ~100 kbps: beside the courseware (~75 kbps with its key frames) and the
  // sound (~43) it still fits a 300 kbps rural link with 5 % loss (~285 get
  // through); at 150 kbps the three needed ~283 and the camera stayed paused.
  { scaleResolutionDownBy: 4, maxBitrate: 100_000, priority: 'low', absSendTime: false },
];
const ABS_SEND_TIME = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time';

// Do not negotiate one RTP header extension on this transceiver (best effort).
function stopHeaderExtension(transceiver, uri) {
  if (!transceiver.getHeaderExtensionsToNegotiate || !transceiver.setHeaderExtensionsToNegotiate) return false;
  try {
    const exts = transceiver.getHeaderExtensionsToNegotiate();
    if (!exts.some((e) => e.uri === uri && e.direction !== 'stopped')) return false;
    transceiver.setHeaderExtensionsToNegotiate(exts.map((e) => (e.uri === uri ? { ...e, direction: 'stopped' } : e)));
    return true;
  } catch (e) {
    return false;
  }
}

const MIN_LAYER_SIZE = [160, 90]; // smaller than this is not worth a layer

// The layers worth sending for a capture of width x height: those at least
// 160x90 (either orientation) and distinct. Always at least layer 0.
export function layersFor(width, height, layers = CAMERA_LAYERS) {
  if (!(width > 0 && height > 0)) return layers.slice(0, 1);
  const out = [];
  const seen = new Set();
  for (const layer of layers) {
    const scale = layer.scaleResolutionDownBy || 1;
    const w = Math.floor(width / scale);
    const h = Math.floor(height / scale);
    if (Math.max(w, h) < MIN_LAYER_SIZE[0] || Math.min(w, h) < MIN_LAYER_SIZE[1]) break;
    const key = `${w}x${h}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(layer);
  }
  return out.length ? out : layers.slice(0, 1);
}

// The send options of each layer of a source: options.layers (a list of
// per-layer encodings) over the source's common options; one layer without.
function layerOptions(options = {}) {
  const { layers, ...common } = options || {};
  if (!Array.isArray(layers) || !layers.length) return [common];
  return layers.map((l) => ({ ...common, ...l }));
}

// Apply send options to a negotiated sender: encodings and the degradation
// preference (courseware keeps its resolution and drops frames instead).
export async function applySendParameters(sender, options = {}) {
  if (!sender || !sender.getParameters) return false;
  const enc = encodingFrom(options);
  if (!enc && !options.degradationPreference) return true;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) params.encodings = [{}];
  if (enc) Object.assign(params.encodings[0], enc);
  if (options.degradationPreference) params.degradationPreference = options.degradationPreference;
  try {
    await sender.setParameters(params);
    return true;
  } catch (e) {
    // older browsers refuse degradationPreference: keep the encodings at least
    if (!options.degradationPreference) return false;
    try {
      const again = sender.getParameters();
      if (!again.encodings || !again.encodings.length) again.encodings = [{}];
      if (enc) Object.assign(again.encodings[0], enc);
      await sender.setParameters(again);
    } catch (e2) { return false; }
    return false;
  }
}

// One sample of a receiver's inbound RTP stats (the UI computes rates from two).
export async function sampleReceiver(receiver) {
  if (!receiver || !receiver.getStats) return null;
  const report = await receiver.getStats();
  let out = null;
  report.forEach((r) => {
    if (r.type !== 'inbound-rtp' || out) return;
    out = {
      kind: r.kind || r.mediaType,
      timestamp: r.timestamp,
      packetsReceived: r.packetsReceived || 0,
      packetsLost: Math.max(0, r.packetsLost || 0),
      bytesReceived: r.bytesReceived || 0,
      framesDecoded: r.framesDecoded || 0,
      framesPerSecond: r.framesPerSecond,
      frameWidth: r.frameWidth || 0,
      frameHeight: r.frameHeight || 0,
      jitter: r.jitter || 0,
      audioLevel: r.audioLevel,
    };
  });
  return out;
}

// The audio energy a receiver has played so far (inbound-rtp totalAudioEnergy: the sum
// of level² x seconds), or null. Unlike a sampled level it misses no short sound.
export async function receiverAudioEnergy(receiver) {
  if (!receiver || !receiver.getStats) return null;
  const report = await receiver.getStats();
  for (const r of report.values()) {
    if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'audio' && typeof r.totalAudioEnergy === 'number') {
      return r.totalAudioEnergy;
    }
  }
  return null;
}

// Put the preferred codec(s) first; keep the rest (rtx, red, fec, fallbacks) after.
export function preferCodec(transceiver, kind, mimeType) {
  if (!transceiver.setCodecPreferences) return false;
  const caps = (globalThis.RTCRtpReceiver?.getCapabilities?.(kind))
    || (globalThis.RTCRtpSender?.getCapabilities?.(kind));
  if (!caps || !caps.codecs) return false;
  const wanted = mimeType.toLowerCase();
  const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (!first.length) return false;
  const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
  try {
    transceiver.setCodecPreferences([...first, ...rest]);
    return true;
  } catch (e) {
    return false;
  }
}

export class LessonClient extends EventTarget {
  // token: the join token. options.autoJoin: join whenever a lesson is live
  // (classrooms). options.url: WebSocket URL (default: same origin /ws).
  constructor(token, { url = null, name = null, autoJoin = false } = {}) {
    super();
    this.token = token;
    this.url = url || defaultWsUrl();
    this.name = name;
    this.autoJoin = autoJoin;

    this.state = 'idle';
    this.welcome = null;
    this.participantId = null;
    this.role = null;
    this.room = null;
    this.session = null;          // the live session this participant belongs to, or null
    this.joined = false;
    this.participants = new Map(); // id -> Participant
    this.producers = new Map();    // id -> ProducerInfo
    this.localTracks = null;       // {source: MediaStreamTrack} to (re)publish while live
    this.sendOptions = {};         // source -> {maxBitrate, maxFramerate, degradationPreference, layers?, ...}
    this.localStream = null;
    this.myProducers = [];         // our producers on the current publish connection
    this.self = null;              // our own Participant (hand, on_stage, muted) while joined
    this.iceServers = [];

    this._ws = null;
    this._seq = 0;
    this._pending = new Map();     // id -> {resolve, reject, timer}
    this._gen = 0;                 // bumps on every (re)connect; stale async steps stop
    this._backoff = BACKOFF_FIRST_MS;
    this._retryTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._closed = false;
    this._pubPc = null;
    this._recvPc = null;
    this._recvQueue = Promise.resolve();
    this._pubChain = Promise.resolve(); // publish-connection negotiations, one at a time
    this._pubTransceivers = new Map();  // source -> [{transceiver, layer, track, clone}] (the current ones, layer order)
    this._consumersByMid = new Map(); // mid -> ConsumerInfo (receive connection)
    this.layers = new Map();          // consumer id -> the layer it forwards (null: paused for bandwidth)
    this._offeredConsumers = [];      // the consumers of the latest offer (before its answer is done)
    this._remote = new Map();         // consumer id -> {track, stream, consumer}
    this._entering = null;            // the running join/publish sequence
  }

  // ---- public API ----------------------------------------------------------

  start() {
    this._closed = false;
    this._connect();
    return this;
  }

  close() {
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._teardown('closed by the page');
    this._setState('closed');
  }

  get live() { return this.state === 'live'; }

  // Send a request; resolves with the reply that carries our id in `re`.
  request(type, body = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ProtocolError('not_connected', 'the signaling socket is not open'));
    }
    const id = ++this._seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ProtocolError('timeout', `no reply to ${type}`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, type });
      ws.send(JSON.stringify({ ...body, type, id }));
    });
  }

  send(type, body = {}) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify({ ...body, type }));
      return true;
    }
    return false;
  }

  // Teacher: start (or resume) the lesson and publish `tracks` ({mic, camera, courseware?})
  // with per-source `sendOptions` (e.g. {camera: {layers: [...]}}).
  // Remembered, so a reconnect re-joins and re-publishes.
  // `record: false` starts an ad-hoc lesson that is not recorded (consent; default recorded).
  async goLive(tracks, { title, subject, sessionId, sendOptions, record } = {}) {
    this.localTracks = tracks;
    if (sendOptions) this.sendOptions = { ...this.sendOptions, ...sendOptions };
    this.autoJoin = true;
    try {
      if (!this.session || this.session.status !== 'live') {
        const body = {};
        if (sessionId) body.session_id = sessionId;
        if (title) body.title = title;
        if (subject) body.subject = subject;
        if (record === false) body.record = false;
        await this.request('start_session', body);
      }
      await this._enter(this._gen);
    } catch (e) {
      // refused (not a lost link, which the reconnect loop carries on from): forget the intent
      if (e instanceof ProtocolError && !['disconnected', 'timeout', 'not_connected'].includes(e.code)) {
        this.localTracks = null;
        this.autoJoin = false;
      }
      throw e;
    }
  }

  async endSession() {
    this.autoJoin = false;
    this.localTracks = null;
    await this.request('end_session', {});
  }

  // Leave the media but stay connected (and stop auto-joining).
  async leave() {
    this.autoJoin = false;
    this.localTracks = null;
    this._closePeerConnections();
    this.joined = false;
    try { await this.request('leave', {}); } finally { this._updateState(); }
  }

  remoteTracks() { return [...this._remote.values()]; }

  // The remote tracks of one participant: [{track, stream, consumer, receiver}].
  remoteTracksOf(participantId) {
    return this.remoteTracks().filter((e) => e.consumer.participant_id === participantId);
  }

  // ---- publishing (any number of sources on the one publish connection) -----

  // Publish these local tracks ({mic, camera, courseware}; null/absent = none)
  // with per-source send options; remembered, so a rejoin publishes them again.
  // Resolves once the server has them (or at once when not in a lesson: they
  // go out when we join).
  async publishLocal(tracks, options = {}) {
    const jobs = [];
    for (const [source, track] of Object.entries(tracks || {})) {
      if (track) jobs.push(this.publishTrack(source, track, options[source] || this.sendOptions[source]));
    }
    await Promise.all(jobs);
  }

  // Forget the local tracks (the page stops them): nothing is published on the next join.
  forgetLocalTracks() {
    this.localTracks = null;
  }

  // Publish (or replace) the track of one source: a new source renegotiates the
  // publish connection (a new m-line, a new producer); a source already sent
  // gets its track replaced without renegotiating.
  async publishTrack(source, track, options = undefined) {
    if (!PUBLISH_SOURCES.includes(source)) throw new Error(`unknown source ${source}`);
    this.localTracks = { ...(this.localTracks || {}), [source]: track };
    if (options !== undefined) this.sendOptions = { ...this.sendOptions, [source]: options || {} };
    this._applyLocalMute();
    if (!this.joined) return; // published on join
    const gen = this._gen;
    if (!this._pubPc) {
      await this._enter(gen);
      return;
    }
    const pc = this._pubPc;
    await this._pubRun(async () => {
      if (gen !== this._gen || this._pubPc !== pc) return;
      const current = this._pubTransceivers.get(source);
      if (current) {
        await this._replaceSenders(current, track);
        const options = layerOptions(this.sendOptions[source]);
        for (const entry of current) {
          await applySendParameters(entry.transceiver.sender, options[Math.min(entry.layer, options.length - 1)]);
        }
        this._applyLocalMute();
        return;
      }
      const entries = this._addSenders(pc, source, track);
      try {
        await this._negotiatePublish(gen, pc);
      } catch (e) {
        // refused: take the m-lines back so the connection stays as it was
        this._pubTransceivers.delete(source);
        try { await pc.setLocalDescription({ type: 'rollback' }); } catch (e2) { /* not in have-local-offer */ }
        await this._retireSenders(entries);
        throw e;
      }
    });
  }

  // A new track for a source already sent: layer 0 carries it, the other
  // layers fresh clones of it (the old clones stop).
  async _replaceSenders(entries, track) {
    for (const entry of entries) {
      if (entry.layer === 0) {
        if (entry.transceiver.sender.track !== track) await entry.transceiver.sender.replaceTrack(track);
        entry.track = track;
        continue;
      }
      if (entry.original === track) continue;
      const old = entry.track;
      const clone = track.clone();
      await entry.transceiver.sender.replaceTrack(clone);
      entry.track = clone;
      entry.original = track;
      if (old && entry.clone) old.stop();
      entry.clone = true;
    }
  }

  // Stop sending on these senders (their m-lines stay, inactive) and stop our clones.
  async _retireSenders(entries) {
    for (const entry of entries || []) {
      try { await entry.transceiver.sender.replaceTrack(null); } catch (e) { /* closed */ }
      try { entry.transceiver.direction = 'inactive'; } catch (e) { /* stopped */ }
      if (entry.clone && entry.track) entry.track.stop();
    }
  }

  // Stop sending one source and close its producer (`unpublish`).
  async unpublishTrack(source) {
    if (this.localTracks && source in this.localTracks) {
      const rest = { ...this.localTracks };
      delete rest[source];
      this.localTracks = rest;
    }
    const gen = this._gen;
    const pc = this._pubPc;
    if (!pc) return null;
    return this._pubRun(async () => {
      if (gen !== this._gen || this._pubPc !== pc) return null;
      const entries = this._pubTransceivers.get(source);
      this._pubTransceivers.delete(source);
      // the m-lines stay (inactive) until the next renegotiation; a later
      // publish of this source gets new m-lines and new producers
      await this._retireSenders(entries);
      // every layer of the source; the lower layers first, so the primary
      // (layer 0) goes last and the server hands the source to no other layer
      const producers = this.myProducers.filter((p) => p.source === source)
        .sort((a, b) => (b.layer || 0) - (a.layer || 0));
      if (!producers.length) return null;
      this.myProducers = this.myProducers.filter((p) => p.source !== source);
      let reply = null;
      for (const producer of producers) {
        reply = await this.request('unpublish', { producer_id: producer.id });
        this._emit('unpublished', { producer_id: producer.id, source });
      }
      return reply;
    });
  }

  // The producer of one of our sources (its primary, layer 0), or null.
  producerFor(source) {
    const of = this.myProducers.filter((p) => p.source === source);
    return of.find((p) => !p.layer) || of[0] || null;
  }

  // Our producers of one source, one per layer, layer order.
  producersFor(source) {
    return this.myProducers.filter((p) => p.source === source).sort((a, b) => (a.layer || 0) - (b.layer || 0));
  }

  // The layer a received consumer forwards: a number, null (paused for
  // bandwidth), or undefined (not known).
  layerOf(consumerId) {
    return this.layers.get(consumerId);
  }

  // ---- interaction: hands, stage, mute (each resolves with `moderated`) -------

  raiseHand() { return this.request('raise_hand', {}); }

  lowerHand(participantId = null) {
    return this.request('lower_hand', participantId ? { participant_id: participantId } : {});
  }

  lowerAllHands() { return this.request('lower_all_hands', {}); }

  stage(participantId) { return this.request('stage', { participant_id: participantId }); }

  unstage(participantId) { return this.request('unstage', { participant_id: participantId }); }

  // participantId null: ourselves. source 'mic' | 'camera'; muted true = off.
  mute(participantId, source, muted) {
    const body = { source, muted: !!muted };
    if (participantId) body.participant_id = participantId;
    return this.request('mute', body);
  }

  // Everyone we know with a raised hand (ourselves included), earliest first.
  raisedHands() {
    const all = [...this.participants.values()];
    if (this.self) all.push(this.self);
    return all.filter((p) => p.hand != null).sort((a, b) => a.hand - b.hand);
  }

  // Our place in the hand queue (1 = next), or null when our hand is down.
  handPosition() {
    if (!this.self || this.self.hand == null) return null;
    return this.raisedHands().findIndex((p) => p.id === this.self.id) + 1 || null;
  }

  // ---- socket lifecycle ------------------------------------------------------

  _connect() {
    clearTimeout(this._retryTimer);
    const gen = ++this._gen;
    this._setState(this.state === 'idle' || this.state === 'connecting' ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this._log(`x socket: ${e}`);
      this._scheduleReconnect(gen);
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (gen !== this._gen) return;
      this._log('- socket open');
      const hello = { token: this.token };
      if (this.name) hello.name = this.name;
      this.request('hello', hello).catch((e) => this._log(`x hello: ${e.message}`));
      this._startPing(gen);
    };
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        this._log('x non-JSON message dropped');
        return;
      }
      this._dispatch(msg, gen);
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._log(`- socket closed ${ev.code} ${ev.reason || ''}`);
      if (ev.code === 4401) {
        this._teardown('unauthorized');
        this._setState('unauthorized');
        return;
      }
      this._scheduleReconnect(gen);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _scheduleReconnect(gen) {
    if (this._closed || gen !== this._gen) return;
    this._teardown('reconnecting');
    ++this._gen; // anything still running for the old connection stops here
    this._setState('reconnecting');
    const delay = this._backoff;
    this._backoff = Math.min(this._backoff * 2, BACKOFF_MAX_MS);
    this._log(`- reconnecting in ${delay} ms`);
    this._retryTimer = setTimeout(() => this._connect(), delay);
  }

  // Close socket and peer connections; fail pending requests. Intent is kept.
  _teardown(reason) {
    this._stopPing();
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new ProtocolError('disconnected', reason));
    }
    this._pending.clear();
    this._closePeerConnections();
    this.joined = false;
    if (this.self) this._setSelf(null);
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch (e) { /* already closed */ }
    }
  }

  _startPing(gen) {
    this._stopPing();
    this._pingTimer = setInterval(() => {
      if (gen !== this._gen || this._pongTimer) return; // one ping outstanding at a time
      if (!this.send('ping', {})) return;
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        this._log('x no pong: dropping the socket');
        this._scheduleReconnect(gen);
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
  }

  // ---- incoming messages -------------------------------------------------------

  _dispatch(msg, gen) {
    if (!msg || typeof msg !== 'object') return;
    const handler = this[`_on_${msg.type}`];
    if (handler) {
      try {
        handler.call(this, msg, gen);
      } catch (e) {
        this._log(`x handling ${msg.type}: ${e}`);
      }
    }
    if (msg.re !== undefined && msg.re !== null && this._pending.has(msg.re)) {
      const { resolve, reject, timer } = this._pending.get(msg.re);
      this._pending.delete(msg.re);
      clearTimeout(timer);
      if (msg.type === 'error') reject(new ProtocolError(msg.code, msg.message));
      else resolve(msg);
    } else if (msg.type === 'error') {
      this._emit('servererror', msg);
    }
  }

  _on_welcome(msg, gen) {
    this.welcome = msg;
    this.participantId = msg.participant_id;
    this.role = msg.role;
    this.room = msg.room;
    this.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
    this.session = msg.session && msg.session.status !== 'ended' ? msg.session : null;
    this._backoff = BACKOFF_FIRST_MS;
    this._emit('welcome', msg);
    if (this.session) this._emit('session', { session: this.session });
    // auto-joining: stay connecting/reconnecting until the join (and publish) is done
    if (this.session && this.autoJoin) this._enter(gen).catch(() => {});
    this._updateState();
  }

  _on_session(msg, gen) {
    const fresh = !this.session || this.session.id !== msg.session.id;
    this.session = msg.session.status === 'ended' ? null : msg.session;
    this._emit('session', { session: msg.session });
    this._updateState();
    // a start_session reply (re set) is followed by goLive's own _enter
    if (fresh && this.session && this.autoJoin && msg.re == null) this._enter(gen).catch(() => {});
  }

  _on_session_ended(msg) {
    if (this.session && msg.session_id && this.session.id !== msg.session_id) return;
    this._log('- session ended');
    this.session = null;
    this.joined = false;
    this._closePeerConnections();
    this.participants.clear();
    this.producers.clear();
    this._setSelf(null);
    this._emit('participants', { participants: [] });
    this._emit('producers', { producers: [] });
    this._emit('session_ended', msg);
    this._updateState();
  }

  _on_joined(msg) {
    this.participants = new Map((msg.participants || []).map((p) => [p.id, p]));
    this.producers = new Map((msg.producers || []).map((p) => [p.id, p]));
    // a join starts with the hand down, off stage, unmuted (protocol item 9)
    this._setSelf(this._freshSelf());
    this._emit('joined', msg);
    this._emit('participants', { participants: [...this.participants.values()] });
    this._emit('producers', { producers: [...this.producers.values()] });
  }

  _on_participant_joined(msg) {
    const p = msg.participant || msg;
    this.participants.set(p.id, p);
    this._emit('participants', { participants: [...this.participants.values()] });
  }

  // Hand, stage or mute changed — ours included (the server tells the subject too).
  _on_participant_updated(msg) {
    const p = msg.participant;
    if (!p || !p.id) return;
    // producers of a muted source are paused (the server forwards nothing)
    for (const prod of this.producers.values()) {
      if (prod.participant_id !== p.id) continue;
      const key = prod.source === 'mic' ? 'mic' : (prod.source === 'camera' ? 'camera' : null);
      if (key) prod.paused = !!(p.muted && p.muted[key]);
    }
    if (p.id === this.participantId) {
      this._setSelf(p);
      // others' hand positions are relative to ours: the UIs redraw lists too
      this._emit('participants', { participants: [...this.participants.values()] });
      return;
    }
    this.participants.set(p.id, p);
    this._emit('participants', { participants: [...this.participants.values()] });
    this._emit('producers', { producers: [...this.producers.values()] });
  }

  _on_moderated(msg) {
    this._emit('moderated', msg);
  }

  _on_participant_left(msg) {
    const id = msg.participant_id || msg.participant?.id || msg.id;
    this.participants.delete(id);
    this._emit('participants', { participants: [...this.participants.values()] });
  }

  _on_producer_added(msg) {
    const p = msg.producer || msg;
    this.producers.set(p.id, p);
    this._emit('producers', { producers: [...this.producers.values()] });
  }

  _on_producer_removed(msg) {
    const id = msg.producer_id || msg.producer?.id || msg.id;
    this.producers.delete(id);
    this._emit('producers', { producers: [...this.producers.values()] });
  }

  // The server removed us from the media (leave reply, or our peer connection
  // died while the socket lived): drop the connections, and come back if we
  // mean to be in the lesson.
  _on_left(msg, gen) {
    this.joined = false;
    this._closePeerConnections();
    this._setSelf(null);
    if (msg.re == null && msg.reason && this.autoJoin && this.session) {
      this._log(`- removed from the lesson (${msg.reason}); joining again`);
      this._setState('reconnecting');
      clearTimeout(this._retryTimer);
      this._retryTimer = setTimeout(() => {
        if (gen === this._gen && !this.joined) this._enter(gen).catch(() => {});
      }, BACKOFF_FIRST_MS);
    } else {
      this._updateState();
    }
  }

  _on_pong() {
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
  }

  // The layer each consumer forwards: an offer lists every open consumer with
  // its layer then; a consumer_layer push changes one. Both are taken in
  // socket order, here, not when the (queued) offer is answered.
  _on_consumer_layer(msg) {
    if (!msg.consumer_id) return;
    this._setLayer(msg.consumer_id, msg.producer_id ?? null, msg.layer ?? null);
  }

  _setLayer(consumerId, producerId, layer) {
    const had = this.layers.has(consumerId);
    if (had && this.layers.get(consumerId) === layer) return;
    this.layers.set(consumerId, layer);
    const consumer = this._consumerInfo(consumerId);
    this._emit('layer', { consumer_id: consumerId, producer_id: producerId ?? consumer?.producer_id ?? null, layer, consumer });
  }

  _consumerInfo(consumerId) {
    const entry = this._remote.get(consumerId);
    if (entry) return entry.consumer;
    for (const c of this._consumersByMid.values()) if (c.id === consumerId) return c;
    for (const c of this._offeredConsumers || []) if (c.id === consumerId) return c;
    return null;
  }

  _on_offer(msg, gen) {
    const consumers = Array.isArray(msg.consumers) ? msg.consumers : [];
    this._offeredConsumers = consumers;
    const open = new Set(consumers.map((c) => c.id));
    for (const id of [...this.layers.keys()]) if (!open.has(id)) this.layers.delete(id);
    for (const c of consumers) {
      if (c && c.id && 'layer' in c) this._setLayer(c.id, c.producer_id, c.layer ?? null);
    }
    // one offer at a time, in order
    this._recvQueue = this._recvQueue
      .then(() => this._answerOffer(msg, gen))
      .catch((e) => this._log(`x answering offer: ${e.message || e}`));
  }

  // ---- entering the lesson: join, then publish --------------------------------

  _enter(gen) {
    if (this._entering && this._entering.gen === gen) return this._entering.promise;
    const promise = (async () => {
      await null; // let this._entering be set before anything runs
      if (!this.joined) {
        await this.request('join', {});
        if (gen !== this._gen) return;
        this.joined = true;
      }
      if (this._hasLocalTracks() && !this._pubPc) await this._publish(gen);
    })();
    this._entering = { gen, promise };
    promise.catch((e) => {
      this._log(`x entering the lesson: ${e.message || e}`);
    }).finally(() => {
      if (this._entering && this._entering.promise === promise) this._entering = null;
      if (gen === this._gen) this._updateState();
    });
    return promise;
  }

  _hasLocalTracks() {
    return !!this.localTracks && Object.values(this.localTracks).some((t) => t && t.readyState !== 'ended');
  }

  _newPc(label, gen) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    let graceTimer = null;
    pc.addEventListener('connectionstatechange', () => {
      const state = pc.connectionState;
      this._log(`- ${label} connection ${state}`);
      clearTimeout(graceTimer);
      if (gen !== this._gen || this._closed) return;
      if (state === 'failed') {
        this._scheduleReconnect(gen);
      } else if (state === 'disconnected') {
        graceTimer = setTimeout(() => {
          if (pc.connectionState === 'disconnected' || pc.connectionState === 'failed') {
            this._log(`x ${label} connection did not recover`);
            this._scheduleReconnect(gen);
          }
        }, DISCONNECTED_GRACE_MS);
      }
    });
    return pc;
  }

  // Run publish-connection negotiations one at a time, in order.
  _pubRun(fn) {
    const run = this._pubChain.then(fn);
    this._pubChain = run.catch(() => {});
    return run;
  }

  async _publish(gen) {
    const tracks = this.localTracks || {};
    const pc = this._newPc('publish', gen);
    this._pubPc = pc;
    this._pubTransceivers = new Map();
    this.myProducers = [];
    this.localStream = new MediaStream(['mic', 'camera'].map((s) => tracks[s]).filter(Boolean));
    for (const source of PUBLISH_SOURCES) {
      const track = tracks[source];
      if (track && track.readyState !== 'ended') this._addSenders(pc, source, track);
    }
    this._applyLocalMute();
    try {
      await this._pubRun(() => this._negotiatePublish(gen, pc));
    } catch (e) {
      // let a later goLive / reconnect try again with a fresh connection
      if (this._pubPc === pc) {
        this._pubPc = null;
        this._stopClones();
        this._pubTransceivers = new Map();
      }
      pc.close();
      throw e;
    }
  }

  // One transceiver per layer of the source (one without layers): layer 0
  // sends the track itself, each lower layer a clone of it, scaled down by
  // its encoding (scaleResolutionDownBy, maxBitrate).
  _addSenders(pc, source, track) {
    // camera and mic share a stream (lip sync); the courseware is its own
    const stream = source === 'courseware' ? new MediaStream([track]) : this.localStream;
    const entries = layerOptions(this.sendOptions[source]).map((options, layer) => {
      const sendTrack = layer === 0 ? track : track.clone();
      const init = { direction: 'sendonly', streams: stream ? [stream] : [] };
      const enc = encodingFrom(options);
      if (enc) init.sendEncodings = [enc];
      const t = pc.addTransceiver(sendTrack, init);
      if (track.kind === 'video') preferCodec(t, 'video', 'video/VP8');
      else preferCodec(t, 'audio', 'audio/opus');
      if (options.absSendTime === false) stopHeaderExtension(t, ABS_SEND_TIME);
      return { transceiver: t, layer, track: sendTrack, clone: layer > 0, original: track };
    });
    this._pubTransceivers.set(source, entries);
    return entries;
  }

  _stopClones() {
    for (const entries of this._pubTransceivers.values()) {
      for (const entry of entries) if (entry.clone && entry.track) entry.track.stop();
    }
  }

  // One offer/answer on the publish connection: every m-line now sending is
  // in `tracks`; the server makes producers for the new ones.
  async _negotiatePublish(gen, pc) {
    if (gen !== this._gen || this._pubPc !== pc) return;
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    if (gen !== this._gen || this._pubPc !== pc) return;
    const trackMap = {};
    for (const [source, entries] of this._pubTransceivers) {
      for (const { transceiver: t, layer } of entries) {
        if (t.mid == null || t.direction !== 'sendonly') continue;
        trackMap[t.mid] = entries.length > 1 ? { source, layer } : { source };
      }
    }
    const reply = await this.request('publish', { sdp: pc.localDescription.sdp, tracks: trackMap });
    if (gen !== this._gen || this._pubPc !== pc) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    const fresh = reply.producers || [];
    const freshIds = new Set(fresh.map((p) => p.id));
    this.myProducers = [...this.myProducers.filter((p) => !freshIds.has(p.id)), ...fresh];
    for (const [source, entries] of this._pubTransceivers) {
      const options = layerOptions(this.sendOptions[source]);
      for (const { transceiver: t, layer } of entries) {
        await applySendParameters(t.sender, options[Math.min(layer, options.length - 1)]);
      }
    }
    this._emit('published', { producers: fresh });
  }

  // ---- our own state: hand, stage, mute ----------------------------------------

  _freshSelf() {
    const room = this.room || {};
    return {
      id: this.participantId,
      role: this.role,
      room_id: room.id ?? null,
      room_name: room.name ?? null,
      school_id: room.school_id ?? null,
      school_name: null,
      name: this.name || room.name || null,
      hand: null,
      on_stage: false,
      muted: { mic: null, camera: null },
    };
  }

  _setSelf(participant) {
    this.self = participant;
    this._applyLocalMute();
    this._emit('self', { participant });
  }

  // A muted source stops capturing (track.enabled = false saves the uplink),
  // every layer of it; unmuted, it captures again.
  _applyLocalMute() {
    const muted = (this.self && this.self.muted) || {};
    const state = {};
    for (const source of MUTE_SOURCES) {
      state[source] = muted[source] || null;
      const track = this.localTracks && this.localTracks[source];
      if (track) track.enabled = !state[source];
      for (const entry of this._pubTransceivers.get(source) || []) {
        if (entry.track) entry.track.enabled = !state[source];
      }
    }
    this._emit('local_mute', state);
  }

  async _answerOffer(msg, gen) {
    if (gen !== this._gen) return;
    if (!this._recvPc) {
      const pc = this._newPc('receive', gen);
      pc.addEventListener('track', (ev) => this._onRemoteTrack(ev));
      this._recvPc = pc;
    }
    const pc = this._recvPc;
    const before = new Map(this._consumersByMid);
    this._consumersByMid = new Map((msg.consumers || []).map((c) => [String(c.mid), c]));
    // consumers that are gone from this offer
    for (const [mid, c] of before) {
      const now = this._consumersByMid.get(mid);
      if (!now || now.id !== c.id) this._remoteEnded(c);
    }
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    if (gen !== this._gen || this._recvPc !== pc) return;
    this.send('answer', { sdp: pc.localDescription.sdp });
  }

  _onRemoteTrack(ev) {
    const mid = ev.transceiver && ev.transceiver.mid;
    const consumer = this._consumersByMid.get(String(mid));
    if (!consumer) {
      this._log(`x track on unknown mid ${mid}`);
      return;
    }
    const stream = (ev.streams && ev.streams[0]) || new MediaStream([ev.track]);
    const entry = { track: ev.track, stream, consumer, receiver: ev.receiver || ev.transceiver.receiver };
    this._remote.set(consumer.id, entry);
    ev.track.addEventListener('ended', () => this._remoteEnded(consumer));
    this._emit('track', entry);
  }

  _remoteEnded(consumer) {
    if (!this._remote.has(consumer.id)) return;
    this._remote.delete(consumer.id);
    this._emit('track_ended', { consumer });
  }

  _closePeerConnections() {
    for (const pc of [this._pubPc, this._recvPc]) {
      if (pc) { try { pc.close(); } catch (e) { /* closed */ } }
    }
    this._pubPc = null;
    this._recvPc = null;
    this._recvQueue = Promise.resolve();
    this._pubChain = Promise.resolve();
    this._stopClones();
    this._pubTransceivers = new Map();
    this.myProducers = [];
    for (const { consumer } of [...this._remote.values()]) this._remoteEnded(consumer);
    this._consumersByMid.clear();
    this._offeredConsumers = [];
    this.layers.clear();
  }

  // ---- state ----------------------------------------------------------------

  // live: joined a live session (and, with local tracks, done publishing them).
  // While a join/publish sequence runs the state does not move (no flicker
  // through 'waiting' on the way back in), except that a lost session wins.
  _updateState() {
    if (this._closed) return;
    if (!this.welcome || !this._ws) return;
    if (this._entering && this.session) return;
    this._setState(this.session && this.joined ? 'live' : 'waiting');
  }

  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _log(text) {
    this._emit('log', { text });
  }

  // Small numbers for status lines and tests: bytes/frames in and out.
  async stats() {
    const out = { publish: null, receive: null };
    for (const [key, pc] of [['publish', this._pubPc], ['receive', this._recvPc]]) {
      if (!pc) continue;
      const report = await pc.getStats();
      const s = { bytesSent: 0, bytesReceived: 0, framesDecoded: 0, framesEncoded: 0, packetsLost: 0 };
      report.forEach((r) => {
        if (r.type === 'outbound-rtp') {
          s.bytesSent += r.bytesSent || 0;
          s.framesEncoded += r.framesEncoded || 0;
        } else if (r.type === 'inbound-rtp') {
          s.bytesReceived += r.bytesReceived || 0;
          s.framesDecoded += r.framesDecoded || 0;
          s.packetsLost += r.packetsLost || 0;
        }
      });
      s.connectionState = pc.connectionState;
      out[key] = s;
    }
    return out;
  }
}
