// Lecture-room page: one click starts the lesson and publishes camera + mic
// (the camera as up to three layers: full, half and quarter resolution);
// courseware by screen share; a grid of every classroom (video, sound, link
// state, speaking), raised hands in order, stage and mute per classroom.
import { LessonClient, ProtocolError, layersFor, receiverAudioEnergy, sampleReceiver } from './protocol.js';
import { $, STATE_LABELS, el, params, reflectState } from './common.js';

const token = params().get('token');
const client = new LessonClient(token);
const hook = reflectState(client, { classrooms: [], hands: [], tiles: {}, cameraLayers: [] });
let localStream = null;
let starting = false;
let coursewareTrack = null;
let sharing = false;              // a share/unshare is running
let soundBlocked = false;         // autoplay refused sound: the #sound button asks for a click

// Courseware: slides and documents — sharp text over motion.
// No abs-send-time: see CAMERA_LAYERS in protocol.js (a REMB for one video m-line caps them all).
const COURSEWARE_OPTIONS = { maxFramerate: 5, maxBitrate: 1_000_000, degradationPreference: 'maintain-resolution', absSendTime: false };
// Speaking: at least 40 ms of sound at SPEAKING_LEVEL (audio level 0..1, linear) within
// SPEAKING_POLL_MS, from the energy each classroom's audio played (inbound-rtp
// totalAudioEnergy), held SPEAKING_HOLD_MS. The energy misses no short sound however late the
// page's timers run; getSynchronizationSources() gives the level of the newest packet only
// (20 ms), and even sampled every 50 ms it missed 20 s of Chromium's fake microphone's 20 ms
// beeps in a loaded CI run.
const SPEAKING_LEVEL = 0.04;
const SPEAKING_ENERGY = SPEAKING_LEVEL * SPEAKING_LEVEL * 0.040;
const SPEAKING_POLL_MS = 250;
const SPEAKING_HOLD_MS = 700;
const LINK_WEAK_LOSS = 0.05;      // > 5 % packets lost
const LINK_WEAK_FPS = 8;

function today() {
  const d = new Date();
  return `${d.getMonth() + 1}月${d.getDate()}日`;
}
$('title').value = params().get('title') || `${today()} 同步课堂 (Lesson)`;
$('subject').value = params().get('subject') || '';

function say(text) {
  $('message').textContent = text || '';
}

// A visible, self-dismissing message (server refusals, e.g. the stage is full).
function toast(text, kind = 'error') {
  const node = el('div', { class: `toast ${kind}`, role: 'alert' }, text);
  $('toasts').append(node);
  setTimeout(() => node.remove(), 7000);
  node.addEventListener('click', () => node.remove());
}

const ERROR_HINTS = {
  conflict: '冲突 (conflict)',
  forbidden: '不允许 (not allowed)',
  not_found: '找不到 (not found)',
  not_joined: '未在课堂中 (not in the lesson)',
  not_connected: '网络未连接 (offline)',
  disconnected: '网络中断 (link dropped)',
  timeout: '服务器无响应 (no reply)',
};

function errorText(e) {
  if (e instanceof ProtocolError) {
    const message = e.message.slice(e.code.length + 2);
    return `${ERROR_HINTS[e.code] || e.code}: ${message}`;
  }
  return e && e.message ? e.message : String(e);
}

// Run a moderation request; a refusal becomes a toast.
async function act(fn) {
  try {
    return await fn();
  } catch (e) {
    toast(errorText(e));
    return null;
  }
}

function inLesson() {
  const s = client.state;
  return s === 'live' || (s === 'reconnecting' && !!client.localTracks);
}

function render() {
  const s = client.state;
  $('status').textContent = STATE_LABELS[s] || s;
  const lesson = inLesson();
  document.body.dataset.lesson = lesson ? 'on' : 'off';
  $('start-panel').hidden = lesson;
  $('lesson-controls').hidden = !lesson;
  $('end').hidden = !lesson;
  // the lesson is being recorded (the session says so; consent was given at its creation)
  const recording = lesson && !!client.session && client.session.record !== false;
  $('rec-indicator').hidden = !recording;
  hook.recording = recording;
  $('start').disabled = starting || s !== 'waiting';
  $('start').textContent = client.session
    ? '继续上课 (Resume lesson)'
    : '开始上课 (Start lesson)';
  const live = s === 'live';
  $('share').disabled = sharing || !live;
  $('share').textContent = coursewareTrack
    ? '■ 停止共享 (Stop sharing)'
    : '共享课件 (Share courseware)';
  $('share').classList.toggle('danger', !!coursewareTrack);
  $('share').classList.toggle('primary', !coursewareTrack);
  $('courseware-box').hidden = !coursewareTrack;
  $('sound').hidden = !soundBlocked;
  const muted = (client.self && client.self.muted) || {};
  for (const [source, on, off] of [
    ['mic', '麦克风 开 (Mic on)', '麦克风 关 (Mic off)'],
    ['camera', '摄像头 开 (Camera on)', '摄像头 关 (Camera off)'],
  ]) {
    const button = $(`${source}-toggle`);
    button.disabled = !live || !client.localTracks || !client.localTracks[source];
    button.dataset.muted = muted[source] ? 'true' : 'false';
    button.textContent = muted[source] ? off : on;
  }
  hook.courseware = !!coursewareTrack;
}

async function getMedia() {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const tries = [
    // full resolution for layer 0; the server sends each classroom the layer its link carries
    { audio, video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 } } },
    { audio, video: { width: { ideal: 640 }, height: { ideal: 480 } } },
    { audio, video: false },
  ];
  let lastError = null;
  for (const constraints of tries) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      lastError = e;
      if (e.name === 'NotAllowedError') break;
    }
  }
  throw lastError;
}

// The camera's layers (docs/protocol.md item 5): full resolution ~1.5 Mbps,
// half ~500 kbps, quarter ~100 kbps — only those at least 160x90 at the
// resolution the camera really delivers (a small camera sends fewer).
// Each layer keeps its resolution when the uplink is short (fewer frames
// instead): the layers are the resolution steps, and the server picks the
// step each classroom's link carries; scaled by the browser too they would
// become copies of each other.
function cameraLayers(track) {
  const { width, height } = track.getSettings ? track.getSettings() : {};
  let layers = layersFor(width, height);
  if (layers.length > 1) layers = layers.map((l) => ({ ...l, degradationPreference: 'maintain-resolution' }));
  hook.cameraLayers = layers.map((l) => ({
    scale: l.scaleResolutionDownBy || 1,
    width: width ? Math.floor(width / (l.scaleResolutionDownBy || 1)) : null,
    height: height ? Math.floor(height / (l.scaleResolutionDownBy || 1)) : null,
    maxBitrate: l.maxBitrate,
  }));
  return layers;
}

function stopLocal() {
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  localStream = null;
  $('preview').srcObject = null;
  dropCourseware();
}

async function start(ev) {
  ev.preventDefault();
  if (starting) return;
  starting = true;
  say('');
  render();
  try {
    if (!localStream) localStream = await getMedia();
    $('preview').srcObject = localStream;
    const tracks = {
      mic: localStream.getAudioTracks()[0] || null,
      camera: localStream.getVideoTracks()[0] || null,
    };
    if (!tracks.camera) say('没有摄像头，仅声音 (no camera: audio only)');
    await client.goLive(tracks, {
      title: $('title').value.trim(),
      subject: $('subject').value.trim(),
      record: $('record').checked,
      sendOptions: tracks.camera ? { camera: { layers: cameraLayers(tracks.camera) } } : {},
    });
  } catch (e) {
    const why = e.name === 'NotAllowedError'
      ? '请允许使用摄像头和麦克风 (allow camera and microphone)'
      : (e.message || String(e));
    say(`未能开始 (could not start): ${why}`);
    if (client.state !== 'live') stopLocal();
  } finally {
    starting = false;
    render();
  }
}

async function end() {
  if (!confirm('结束本节课？(End the lesson?)')) return;
  $('end').disabled = true;
  try {
    await client.endSession();
    stopLocal();
  } catch (e) {
    say(`未能结束 (could not end): ${e.message || e}`);
  } finally {
    $('end').disabled = false;
    render();
  }
}

// ---- courseware (screen share as a second video) -----------------------------

// Share a MediaStream's video as the courseware; without one, ask the browser
// for a screen or window. Exposed as window.synclass.shareCourseware(stream).
async function shareCourseware(stream = null) {
  if (sharing) return false;
  sharing = true;
  render();
  try {
    if (coursewareTrack) await unshareCourseware();
    if (!stream) {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false });
    }
    const track = stream.getVideoTracks()[0];
    if (!track) throw new Error('no video in the shared stream');
    if ('contentHint' in track) track.contentHint = 'detail';
    coursewareTrack = track;
    // the browser's own "stop sharing" button ends the track
    track.addEventListener('ended', () => {
      if (coursewareTrack === track) unshareCourseware().catch((e) => toast(errorText(e)));
    });
    $('courseware-preview').srcObject = new MediaStream([track]);
    render();
    await client.publishTrack('courseware', track, COURSEWARE_OPTIONS);
    return true;
  } catch (e) {
    if (e.name !== 'NotAllowedError' && e.name !== 'AbortError') toast(`未能共享课件 (could not share): ${errorText(e)}`);
    if (coursewareTrack && client.producerFor('courseware') == null) dropCourseware();
    return false;
  } finally {
    sharing = false;
    render();
  }
}

function dropCourseware() {
  const track = coursewareTrack;
  coursewareTrack = null;
  if (track) track.stop();
  $('courseware-preview').srcObject = null;
}

async function unshareCourseware() {
  const track = coursewareTrack;
  dropCourseware();
  render();
  if (!track) return;
  await client.unpublishTrack('courseware');
}

async function toggleShare() {
  if (coursewareTrack) {
    sharing = true;
    render();
    try { await unshareCourseware(); } catch (e) { toast(errorText(e)); } finally { sharing = false; render(); }
  } else {
    await shareCourseware();
  }
}

// ---- the classroom grid ----------------------------------------------------------

// participant id -> {node, video, stream tracks, samples, speakingUntil}
const tiles = new Map();

function classrooms() {
  return [...client.participants.values()].filter((p) => p.role === 'classroom');
}

function handRanks() {
  const ranks = new Map();
  client.raisedHands().forEach((p, i) => ranks.set(p.id, i + 1));
  return ranks;
}

function mutedLabel(by) {
  return by === 'teacher' ? '老师关 (by teacher)' : '自己关 (by itself)';
}

function makeTile(p) {
  const video = el('video', { autoplay: '', playsinline: '' });
  const node = el('li', { class: 'tile', 'data-participant': p.id, 'data-link': 'none', 'data-speaking': 'false' },
    el('div', { class: 'tile-video' },
      video,
      el('div', { class: 'novideo' }, '无画面 (no video)'),
      el('div', { class: 'badges' }),
      el('div', { class: 'speaking-dot', title: '正在说话 (speaking)' })),
    el('div', { class: 'tile-info' },
      el('b', { class: 'tile-name' }),
      el('span', { class: 'tile-school' }),
      el('span', { class: 'link' })),
    el('div', { class: 'tile-actions' },
      el('button', { type: 'button', 'data-action': 'stage' }),
      el('button', { type: 'button', 'data-action': 'mic' }),
      el('button', { type: 'button', 'data-action': 'camera' })));
  node.addEventListener('click', (ev) => {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    tileAction(p.id, button.dataset.action);
  });
  return { node, video, tracks: [], last: null, speakingUntil: 0, energy: null, link: null };
}

function tileAction(id, action) {
  const p = client.participants.get(id);
  if (!p) return;
  if (action === 'stage') act(() => (p.on_stage ? client.unstage(id) : client.stage(id)));
  else if (action === 'mic' || action === 'camera') {
    const muted = !!(p.muted && p.muted[action]);
    act(() => client.mute(id, action, !muted));
  }
}

// A two-line button label: Chinese, English below.
function label(button, [zh, en]) {
  if (button.dataset.label === zh) return;
  button.dataset.label = zh;
  button.replaceChildren(el('span', {}, zh), el('small', {}, en));
}

function renderGrid() {
  const rooms = classrooms();
  const ranks = handRanks();
  const list = $('classrooms');
  const seen = new Set();
  for (const p of rooms) {
    seen.add(p.id);
    let tile = tiles.get(p.id);
    if (!tile) {
      tile = makeTile(p);
      tiles.set(p.id, tile);
      attachTile(p.id);
    }
    const { node } = tile;
    node.querySelector('.tile-name').textContent = p.name || p.room_name || p.room_id;
    node.querySelector('.tile-school').textContent = p.school_name || '';
    const muted = p.muted || {};
    node.dataset.onStage = p.on_stage ? 'true' : 'false';
    node.dataset.hand = ranks.has(p.id) ? String(ranks.get(p.id)) : '';
    node.dataset.mic = muted.mic || 'on';
    node.dataset.camera = muted.camera || 'on';
    const badges = [];
    if (ranks.has(p.id)) badges.push(el('span', { class: 'badge hand' }, `举手 #${ranks.get(p.id)} (hand)`));
    if (p.on_stage) badges.push(el('span', { class: 'badge on-stage' }, '台上 (On stage)'));
    if (muted.mic) badges.push(el('span', { class: 'badge muted-mic' }, `✕ 静音 (mic off) · ${mutedLabel(muted.mic)}`));
    if (muted.camera) badges.push(el('span', { class: 'badge camera-off' }, `✕ 摄像头 (camera off) · ${mutedLabel(muted.camera)}`));
    const paused = !muted.camera && videoPaused(p.id);
    if (paused) badges.push(el('span', { class: 'badge video-paused' }, '视频已暂停 (video paused: weak link)'));
    node.dataset.paused = paused ? 'true' : 'false';
    node.querySelector('.badges').replaceChildren(...badges);
    const [stage, mic, camera] = node.querySelectorAll('.tile-actions button');
    label(stage, p.on_stage ? ['下台', 'Off stage'] : ['上台', 'On stage']);
    stage.className = p.on_stage ? 'danger' : 'primary';
    label(mic, muted.mic ? ['取消静音', 'Unmute'] : ['静音', 'Mute mic']);
    label(camera, muted.camera ? ['开摄像头', 'Camera on'] : ['关摄像头', 'Camera off']);
    if (node.parentNode !== list) list.append(node);
  }
  for (const [id, tile] of [...tiles]) {
    if (seen.has(id)) continue;
    tile.video.srcObject = null;
    tile.node.remove();
    tiles.delete(id);
  }
  // grid order: the order they joined (the participants map keeps it)
  rooms.forEach((p, i) => { if (list.children[i] !== tiles.get(p.id).node) list.insertBefore(tiles.get(p.id).node, list.children[i] || null); });
  $('no-classrooms').hidden = rooms.length > 0;
  $('classroom-count').textContent = rooms.length ? `${rooms.length}` : '';
  hook.classrooms = rooms;
  renderHands(ranks);
}

function renderHands(ranks) {
  const raised = client.raisedHands().filter((p) => p.role === 'classroom');
  $('hands').replaceChildren(...raised.map((p) => el('li', { 'data-participant': p.id },
    el('span', { class: 'hand-rank' }, `${ranks.get(p.id)}`),
    el('span', { class: 'hand-name' }, p.name || p.room_name || p.id,
      el('small', {}, p.school_name ? ` ${p.school_name}` : '')),
    el('span', { class: 'hand-actions' },
      el('button', { type: 'button', class: 'primary', 'data-action': 'stage', onclick: () => act(() => client.stage(p.id)) }, '上台 (On stage)'),
      el('button', { type: 'button', 'data-action': 'lower', onclick: () => act(() => client.lowerHand(p.id)) }, '放下 (Lower)')))));
  $('no-hands').hidden = raised.length > 0;
  $('lower-all').disabled = raised.length === 0;
  hook.hands = raised.map((p) => p.id);
}

// The server paused this classroom's camera to us (our downlink cannot carry it).
function videoPaused(id) {
  const video = client.remoteTracksOf(id).find((e) => e.consumer.kind === 'video' && e.consumer.source === 'camera');
  return !!video && client.layerOf(video.consumer.id) === null;
}

// Put a classroom's received camera + mic on its tile (sound plays here: the lecture room's speakers).
function attachTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  const entries = client.remoteTracksOf(id);
  const tracks = entries.filter((e) => e.consumer.source === 'camera' || e.consumer.source === 'mic').map((e) => e.track);
  const current = tile.video.srcObject ? tile.video.srcObject.getTracks() : [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (!same) tile.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
  tile.node.dataset.video = entries.some((e) => e.consumer.kind === 'video') ? 'true' : 'false';
  if (tracks.length) playTile(tile);
}

async function playTile(tile) {
  tile.video.muted = soundBlocked;
  try {
    await tile.video.play();
  } catch (e) {
    // AbortError: a newer srcObject replaced this one (its own play follows)
    if (e.name !== 'NotAllowedError' || tile.video.muted) return;
    soundBlocked = true;
    tile.video.muted = true;
    try { await tile.video.play(); } catch (e2) { /* next click */ }
    render();
  }
}

async function enableSound() {
  soundBlocked = false;
  for (const tile of tiles.values()) {
    if (tile.video.srcObject) await playTile(tile);
  }
  render();
}

// Link state from the tile's inbound RTP: fps and loss over the last second.
async function sampleTile(id, tile) {
  const entries = client.remoteTracksOf(id);
  const video = entries.find((e) => e.consumer.kind === 'video');
  const audio = entries.find((e) => e.consumer.kind === 'audio');
  const [v, a] = await Promise.all([sampleReceiver(video && video.receiver), sampleReceiver(audio && audio.receiver)]);
  const now = { v, a, at: performance.now() };
  const last = tile.last;
  tile.last = now;
  const p = client.participants.get(id);
  const cameraOff = !!(p && p.muted && p.muted.camera);
  let fps = 0;
  let loss = 0;
  if (last && v && last.v) {
    const dt = (now.at - last.at) / 1000;
    fps = v.framesPerSecond != null ? v.framesPerSecond : (v.framesDecoded - last.v.framesDecoded) / dt;
  }
  if (last) {
    let got = 0;
    let lost = 0;
    for (const k of ['v', 'a']) {
      if (!now[k] || !last[k]) continue;
      got += Math.max(0, now[k].packetsReceived - last[k].packetsReceived);
      lost += Math.max(0, now[k].packetsLost - last[k].packetsLost);
    }
    loss = got + lost > 0 ? lost / (got + lost) : 0;
  }
  const width = tile.video.videoWidth || 0;
  let state;
  let label;
  if (cameraOff) {
    state = 'off';
    label = '摄像头已关 (camera off)';
  } else if (videoPaused(id)) {
    state = 'weak';
    label = '视频已暂停 (video paused: weak link)';
  } else if (!video || !last || (fps < 1 && width === 0) || fps < 0.5) {
    state = 'none';
    label = '无画面 (no video)';
  } else if (loss > LINK_WEAK_LOSS || fps < LINK_WEAK_FPS) {
    state = 'weak';
    label = '较弱 (weak)';
  } else {
    state = 'good';
    label = '良好 (good)';
  }
  const detail = video && !cameraOff ? ` · ${Math.round(fps)} fps · 丢包 ${(loss * 100).toFixed(1)}%` : '';
  tile.node.dataset.link = state;
  tile.node.querySelector('.link').textContent = `${label}${detail}`;
  tile.link = { state, fps: Math.round(fps * 10) / 10, loss, width };
}

async function statsLoop() {
  for (const [id, tile] of [...tiles]) {
    try { await sampleTile(id, tile); } catch (e) { /* closed meanwhile */ }
  }
  hook.tiles = Object.fromEntries([...tiles].map(([id, t]) => [id, { link: t.link, speaking: t.node.dataset.speaking === 'true' }]));
}

let speakingBusy = false;
async function speakingLoop() {
  if (speakingBusy) return;
  speakingBusy = true;
  try {
    for (const [id, tile] of tiles) {
      const audio = client.remoteTracksOf(id).find((e) => e.consumer.kind === 'audio');
      const p = client.participants.get(id);
      const energy = audio && !(p && p.muted && p.muted.mic) ? await receiverAudioEnergy(audio.receiver) : null;
      const now = performance.now();
      if (energy != null && tile.energy != null && energy - tile.energy > SPEAKING_ENERGY) {
        tile.speakingUntil = now + SPEAKING_HOLD_MS;
      }
      tile.energy = energy;
      const speaking = now < tile.speakingUntil;
      if ((tile.node.dataset.speaking === 'true') !== speaking) tile.node.dataset.speaking = speaking ? 'true' : 'false';
    }
  } catch (err) {
    console.debug('[synclass] speaking:', err);
  } finally {
    speakingBusy = false;
  }
}

// ---- wiring ---------------------------------------------------------------------------

client.addEventListener('welcome', (ev) => {
  const room = ev.detail.room;
  if (room && room.name) {
    $('room-name').textContent = room.name;
    document.title = `synclass · ${room.name}`;
  }
  if (ev.detail.role && ev.detail.role !== 'teacher') say('这个链接不是主讲教室的 (this link is not a lecture-room link)');
});
client.addEventListener('state', render);
// the lesson is over (ended here or elsewhere): give the camera and the screen back
client.addEventListener('session_ended', () => {
  if (!starting) stopLocal();
  render();
});
client.addEventListener('session', render);
client.addEventListener('participants', renderGrid);
client.addEventListener('self', render);
client.addEventListener('track', (ev) => { attachTile(ev.detail.consumer.participant_id); renderGrid(); });
client.addEventListener('track_ended', (ev) => attachTile(ev.detail.consumer.participant_id));
client.addEventListener('layer', renderGrid);
client.addEventListener('servererror', (ev) => toast(`${ev.detail.code}: ${ev.detail.message}`));
client.addEventListener('log', (ev) => console.debug('[synclass]', ev.detail.text));

$('start-form').addEventListener('submit', start);
$('end').addEventListener('click', end);
$('share').addEventListener('click', toggleShare);
$('sound').addEventListener('click', enableSound);
$('lower-all').addEventListener('click', () => act(() => client.lowerAllHands()));
for (const source of ['mic', 'camera']) {
  $(`${source}-toggle`).addEventListener('click', () => {
    const muted = !!(client.self && client.self.muted && client.self.muted[source]);
    act(() => client.mute(null, source, !muted));
  });
}

Object.assign(hook, { shareCourseware, stopCourseware: unshareCourseware, enableSound });
setInterval(() => { statsLoop(); }, 1000);
setInterval(speakingLoop, SPEAKING_POLL_MS);

if (!token) {
  say('链接缺少 token (the link has no ?token=)');
  document.body.dataset.state = 'unauthorized';
} else {
  client.start();
}
render();
