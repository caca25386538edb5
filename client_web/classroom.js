// Classroom kiosk (touch only): joins the live lesson by itself, shows the
// teacher and the courseware large and the classroom on stage, publishes its
// own camera + mic, and has one big raise-hand button.
import { LessonClient } from './protocol.js';
import { $, el, params, reflectState } from './common.js';

const token = params().get('token');
const client = new LessonClient(token, { autoJoin: true });
const hook = reflectState(client, { stage: [], hand: null, onStage: false, muted: { mic: null, camera: null } });
const video = $('teacher-video');
const coursewareVideo = $('courseware-video');
const LECTURE_ROOM_KEY = 'synclass.lectureRoomName';
const LAYOUT_KEY = 'synclass.layout';

// Our own camera + mic: echo cancellation for the room's speakers; a modest
// camera, since a village uplink is often the narrowest link of the lesson.
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 15 } };
const SEND_OPTIONS = { camera: { maxBitrate: 350_000, maxFramerate: 15 } };

// The teacher's tracks: {camera, mic, courseware} -> MediaStreamTrack
const teacherTracks = new Map();
// ... and their consumers (ConsumerInfo), for the layer the server forwards
const teacherConsumers = new Map();
// Classrooms on stage: participant id -> {tracks: Map(source -> track), consumers: Map(source -> ConsumerInfo), node, video}
const stageTiles = new Map();
let soundOn = false;
let localStream = null;
let acquiring = false;
let noDevices = false;
let handBusy = false;
let handError = '';
let layout = readLayout();

function lectureRoomName() {
  try { return localStorage.getItem(LECTURE_ROOM_KEY); } catch (e) { return null; }
}
function rememberLectureRoom(name) {
  if (!name) return;
  try { localStorage.setItem(LECTURE_ROOM_KEY, name); } catch (e) { /* private mode */ }
  $('lecture-room').textContent = name;
}
if (lectureRoomName()) $('lecture-room').textContent = lectureRoomName();

function readLayout() {
  try { return localStorage.getItem(LAYOUT_KEY) === 'inset' ? 'inset' : 'side'; } catch (e) { return 'side'; }
}

const INFO = {
  connecting: ['正在连接…', 'Connecting…'],
  reconnecting: ['正在重新连接…', 'The link dropped — reconnecting by itself…'],
  starting: ['课程即将开始…', 'The lesson is starting…'],
  unauthorized: ['链接无效', "This screen's link is not valid — 请联系管理员 (ask the administrator)."],
  closed: ['已断开', 'Disconnected.'],
};

function render() {
  const s = client.state;
  const showLesson = s === 'live' && teacherTracks.size > 0;
  let info = null;
  if (!showLesson) {
    if (s === 'live') info = 'starting';
    else if (s in INFO) info = s;
  }
  $('waiting-screen').hidden = showLesson || info !== null;
  $('info-screen').hidden = info === null;
  if (info) [$('info-title').textContent, $('info-text').textContent] = INFO[info];
  $('reconnecting-banner').hidden = s !== 'reconnecting';
  $('lesson-view').hidden = !showLesson;
  $('dock').hidden = !showLesson;

  // teacher camera and courseware: side by side, or courseware large with the teacher inset
  const courseware = teacherTracks.has('courseware');
  const camera = teacherTracks.has('camera');
  video.hidden = !showLesson || !camera;
  $('teacher-pane').hidden = !camera;
  $('people').dataset.stage = stageTiles.size ? 'on' : 'off';
  $('courseware-pane').hidden = !courseware;
  document.body.dataset.courseware = courseware ? 'on' : 'off';
  document.body.dataset.layout = layout;
  $('layout-button').hidden = !(courseware && camera);
  $('layout-button').textContent = layout === 'side'
    ? '课件放大 (Courseware large)'
    : '并排显示 (Side by side)';

  const hasSound = teacherTracks.has('mic') || [...stageTiles.values()].some((t) => t.tracks.has('mic'));
  $('sound-overlay').hidden = soundOn || !showLesson || !hasSound;

  // our own state: stage, hand, what the teacher turned off
  const self = client.self;
  const onStage = !!(self && self.on_stage);
  const muted = (self && self.muted) || { mic: null, camera: null };
  $('on-stage-banner').hidden = !showLesson || !onStage;
  $('muted-mic-notice').hidden = !showLesson || muted.mic !== 'teacher';
  $('muted-camera-notice').hidden = !showLesson || muted.camera !== 'teacher';
  document.body.dataset.onStage = onStage ? 'true' : 'false';

  const position = client.handPosition();
  const raised = !!(self && self.hand != null);
  document.body.dataset.hand = raised ? 'raised' : 'down';
  const button = $('hand-button');
  button.hidden = onStage;
  button.disabled = handBusy || s !== 'live' || !self;
  button.classList.toggle('raised', raised);
  $('hand-main').textContent = raised
    ? (position ? `已举手 · 第 ${position} 位 (Hand raised · #${position} in line)` : '已举手 (Hand raised)')
    : '举手 (Raise hand)';
  $('hand-sub').textContent = handError || (raised ? '再点一下放下 (tap again to lower)' : '');

  const camTrack = localStream && localStream.getVideoTracks()[0];
  $('self-view').parentElement.hidden = !camTrack;
  $('self-off').hidden = !(camTrack && muted.camera);
  $('device-notice').hidden = !noDevices;

  // video the server paused because our link cannot carry it (the sound goes on)
  const paused = [];
  if (pausedFor(teacherConsumers.get('camera'))) paused.push('camera');
  if (pausedFor(teacherConsumers.get('courseware'))) paused.push('courseware');
  $('teacher-paused').hidden = !showLesson || !camera || !paused.includes('camera');
  $('courseware-paused').hidden = !showLesson || !courseware || !paused.includes('courseware');
  $('teacher-pane').dataset.paused = paused.includes('camera') ? 'true' : 'false';
  $('courseware-pane').dataset.paused = paused.includes('courseware') ? 'true' : 'false';

  const session = client.session;
  // everyone in a recorded lesson sees that it is recorded
  const recording = s === 'live' && !!session && session.record !== false;
  $('rec-indicator').hidden = !recording;
  hook.recording = recording;
  $('corner').textContent = session && s === 'live'
    ? [session.title, session.teacher_name].filter(Boolean).join(' · ')
    : '';
  hook.tracks = [...teacherTracks.keys()];
  hook.view = showLesson ? 'lesson' : (info || 'waiting');
  hook.stage = [...stageTiles.keys()];
  hook.hand = raised ? (position || true) : null;
  hook.onStage = onStage;
  hook.muted = { ...muted };
  hook.layout = layout;
  hook.noDevices = noDevices;
  hook.paused = [...paused, ...[...stageTiles].filter(([, t]) => pausedFor(t.consumers.get('camera'))).map(([id]) => id)];
  document.body.dataset.view = hook.view;
}

// ---- layers: the server may pause a video for a weak link ---------------------------

const PAUSED_TEXT = '视频已暂停以保证声音 / Video paused to keep the sound';

// True when the server forwards nothing of this video consumer for now
// (consumer_layer with layer null); it resumes by itself.
function pausedFor(consumer) {
  return !!consumer && consumer.kind === 'video' && client.layerOf(consumer.id) === null;
}

// ---- the teacher: camera (+ mic) on one element, courseware on another ----------

function setSource(element, tracks) {
  const current = element.srcObject ? element.srcObject.getTracks() : [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (!same) element.srcObject = tracks.length ? new MediaStream(tracks) : null;
  return tracks.length > 0;
}

function attach() {
  // the teacher's mic plays through the camera element (kept even while it is hidden)
  if (setSource(video, [teacherTracks.get('camera'), teacherTracks.get('mic')].filter(Boolean))) play(video);
  if (setSource(coursewareVideo, [teacherTracks.get('courseware')].filter(Boolean))) {
    coursewareVideo.muted = true;
    coursewareVideo.play().catch(() => {});
  }
  render();
}

// ---- classrooms on stage -------------------------------------------------------------

function participantName(p) {
  if (!p) return '';
  return [p.name || p.room_name, p.school_name].filter(Boolean).join(' · ');
}

function renderStage() {
  const box = $('stage-tiles');
  for (const [id, tile] of [...stageTiles]) {
    if (tile.tracks.size === 0) {
      tile.video.srcObject = null;
      tile.node.remove();
      stageTiles.delete(id);
      continue;
    }
    if (!tile.node) {
      tile.video = el('video', { autoplay: '', playsinline: '' });
      tile.label = el('span', { class: 'stage-name' });
      tile.paused = el('div', { class: 'paused-notice', role: 'status' }, PAUSED_TEXT);
      tile.node = el('div', { class: 'stage-tile', 'data-participant': id }, tile.video, tile.paused, tile.label);
      box.append(tile.node);
    }
    tile.label.textContent = `台上 (On stage) · ${participantName(client.participants.get(id)) || ''}`;
    const tracks = ['camera', 'mic'].map((s) => tile.tracks.get(s)).filter(Boolean);
    tile.node.dataset.video = tile.tracks.has('camera') ? 'true' : 'false';
    const paused = tile.tracks.has('camera') && pausedFor(tile.consumers.get('camera'));
    tile.paused.hidden = !paused;
    tile.node.dataset.paused = paused ? 'true' : 'false';
    if (setSource(tile.video, tracks)) play(tile.video);
  }
  render();
}

function isTeacher(consumer) {
  const p = client.participants.get(consumer.participant_id);
  if (p) return p.role === 'teacher';
  // not listed yet: anyone but the known teacher is a classroom
  const teacher = [...client.participants.values()].find((q) => q.role === 'teacher');
  return !teacher;
}

// ---- sound ------------------------------------------------------------------------

// Try with sound; a policy that refuses unmuted autoplay gets muted video and the overlay.
async function play(element) {
  element.muted = !soundOn;
  try {
    await element.play();
  } catch (e) {
    // AbortError: a newer srcObject replaced this one (its own play follows)
    if (e.name === 'NotAllowedError' && !element.muted) {
      element.muted = true;
      soundOn = false;
      try { await element.play(); } catch (e2) { /* next gesture */ }
    }
  }
  render();
}

function soundElements() {
  return [video, ...[...stageTiles.values()].map((t) => t.video).filter(Boolean)];
}

async function enableSound() {
  soundOn = true;
  for (const element of soundElements()) {
    element.muted = false;
    if (!element.srcObject) continue;
    try {
      await element.play();
    } catch (e) {
      if (e.name !== 'NotAllowedError') continue;
      soundOn = false;
      element.muted = true;
    }
  }
  // kiosk screens: take the whole screen on the first touch too
  if (document.fullscreenEnabled && !document.fullscreenElement) {
    document.documentElement.requestFullscreen().catch(() => {});
  }
  render();
}

// ---- our own camera + mic ----------------------------------------------------------

async function getMedia() {
  const tries = [
    { audio: AUDIO, video: VIDEO },
    { audio: AUDIO, video: false },
    { audio: false, video: VIDEO },
  ];
  let lastError = null;
  for (const constraints of tries) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      lastError = e;
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') break;
    }
  }
  throw lastError || new Error('no media devices');
}

// While a lesson is live: capture and publish (the client publishes again on every rejoin).
async function ensureMedia() {
  if (localStream || acquiring || !client.session) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    noDevices = true;
    render();
    return;
  }
  acquiring = true;
  try {
    const stream = await getMedia();
    if (!client.session) { // the lesson ended meanwhile
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    localStream = stream;
    noDevices = false;
    const camera = stream.getVideoTracks()[0] || null;
    const mic = stream.getAudioTracks()[0] || null;
    $('self-view').srcObject = camera ? new MediaStream([camera]) : null;
    noDevices = !camera && !mic;
    render();
    await client.publishLocal({ mic, camera }, SEND_OPTIONS);
    hook.published = true;
  } catch (e) {
    console.warn('[synclass] no camera/microphone:', e && (e.name || e.message));
    if (!localStream) noDevices = true;
  } finally {
    acquiring = false;
    render();
  }
}

function releaseMedia() {
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  localStream = null;
  client.forgetLocalTracks();
  $('self-view').srcObject = null;
  hook.published = false;
}

// A camera plugged in later: try again.
navigator.mediaDevices?.addEventListener?.('devicechange', () => {
  if (!localStream && client.session) ensureMedia();
});

// ---- raise hand ------------------------------------------------------------------------

async function toggleHand() {
  if (handBusy) return;
  const raised = !!(client.self && client.self.hand != null);
  handBusy = true;
  handError = '';
  render();
  try {
    if (raised) await client.lowerHand();
    else await client.raiseHand();
  } catch (e) {
    handError = '未成功，请再试 (did not work, try again)';
    setTimeout(() => { handError = ''; render(); }, 4000);
  } finally {
    handBusy = false;
    render();
  }
}

function toggleLayout() {
  layout = layout === 'side' ? 'inset' : 'side';
  try { localStorage.setItem(LAYOUT_KEY, layout); } catch (e) { /* private mode */ }
  render();
}

// ---- keep the screen on during lessons (Screen Wake Lock) ------------------------------

let wakeLock = null;
async function keepAwake() {
  if (!('wakeLock' in navigator) || document.visibilityState !== 'visible') return;
  if (wakeLock && !wakeLock.released) return;
  try {
    wakeLock = await navigator.wakeLock.request('screen');
    hook.wakeLock = true;
    wakeLock.addEventListener('release', () => { hook.wakeLock = false; });
  } catch (e) {
    hook.wakeLock = false; // unsupported or refused: the screen's own settings rule
  }
}
document.addEventListener('visibilitychange', keepAwake);

// ---- wiring ------------------------------------------------------------------------------

client.addEventListener('welcome', (ev) => {
  const room = ev.detail.room;
  if (room && room.name) {
    $('room-name').textContent = room.name;
    $('self-label').textContent = room.name;
    document.title = `synclass · ${room.name}`;
  }
});
client.addEventListener('participants', (ev) => {
  const teacher = ev.detail.participants.find((p) => p.role === 'teacher');
  if (teacher) rememberLectureRoom(teacher.room_name);
  renderStage();
});
client.addEventListener('self', render);
client.addEventListener('local_mute', render);
client.addEventListener('track', (ev) => {
  const { track, consumer } = ev.detail;
  const source = consumer.source || track.kind;
  if (isTeacher(consumer)) {
    teacherTracks.set(source, track);
    teacherConsumers.set(source, consumer);
    attach();
    return;
  }
  const id = consumer.participant_id;
  if (!stageTiles.has(id)) stageTiles.set(id, { tracks: new Map(), consumers: new Map(), node: null, video: null });
  stageTiles.get(id).tracks.set(source, track);
  stageTiles.get(id).consumers.set(source, consumer);
  renderStage();
});
// the server changed the layer of a video we receive (null: paused for our link)
client.addEventListener('layer', renderStage);
client.addEventListener('track_ended', (ev) => {
  const { consumer } = ev.detail;
  const key = consumer.source;
  const tile = stageTiles.get(consumer.participant_id);
  if (tile && tile.tracks.has(key)) {
    tile.tracks.delete(key);
    tile.consumers.delete(key);
    renderStage();
  } else if (teacherTracks.has(key)) {
    teacherTracks.delete(key);
    teacherConsumers.delete(key);
    attach();
  }
});
client.addEventListener('session_ended', () => {
  teacherTracks.clear();
  teacherConsumers.clear();
  for (const tile of stageTiles.values()) { tile.tracks.clear(); tile.consumers.clear(); }
  releaseMedia();
  renderStage();
  attach();
});
client.addEventListener('state', (ev) => {
  if (ev.detail.state === 'waiting' || ev.detail.state === 'connecting') {
    teacherTracks.clear();
    teacherConsumers.clear();
    for (const tile of stageTiles.values()) { tile.tracks.clear(); tile.consumers.clear(); }
    renderStage();
  }
  // back after a cut and the lesson ended meanwhile: give the camera back
  if (ev.detail.state === 'waiting' && !client.session) releaseMedia();
  if (ev.detail.state === 'live') ensureMedia();
  render();
});
client.addEventListener('session', (ev) => {
  if (ev.detail.session && ev.detail.session.status === 'live') ensureMedia();
  render();
});
client.addEventListener('log', (ev) => console.debug('[synclass]', ev.detail.text));

// Any touch: sound on (browsers allow unmuting inside a user gesture).
$('sound-overlay').addEventListener('click', (ev) => { ev.stopPropagation(); enableSound(); });
document.addEventListener('pointerdown', () => { if (!soundOn) enableSound(); });
$('hand-button').addEventListener('click', toggleHand);
$('layout-button').addEventListener('click', toggleLayout);
// a touch screen: no long-press menus
document.addEventListener('contextmenu', (ev) => ev.preventDefault());

function tick() {
  const d = new Date();
  $('clock').textContent = d.toLocaleTimeString('zh-CN', { hour: '2-digit', minute: '2-digit' });
}
tick();
setInterval(tick, 10000);
keepAwake();

if (!token) {
  client._setState('unauthorized');
} else {
  client.start();
}
render();
