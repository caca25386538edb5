// Classroom kiosk: joins the live lesson by itself, shows the teacher full screen.
import { LessonClient } from './protocol.js';
import { $, params, reflectState } from './common.js';

const token = params().get('token');
const client = new LessonClient(token, { autoJoin: true });
const hook = reflectState(client);
const video = $('teacher-video');
const LECTURE_ROOM_KEY = 'synclass.lectureRoomName';

// The teacher's tracks: {camera, mic, screen} -> MediaStreamTrack
const teacherTracks = new Map();
let soundOn = false;

function lectureRoomName() {
  try { return localStorage.getItem(LECTURE_ROOM_KEY); } catch (e) { return null; }
}
function rememberLectureRoom(name) {
  if (!name) return;
  try { localStorage.setItem(LECTURE_ROOM_KEY, name); } catch (e) { /* private mode */ }
  $('lecture-room').textContent = name;
}
if (lectureRoomName()) $('lecture-room').textContent = lectureRoomName();

const INFO = {
  connecting: ['正在连接…', 'Connecting…'],
  reconnecting: ['正在重新连接…', 'The link dropped — reconnecting by itself…'],
  starting: ['课程即将开始…', 'The lesson is starting…'],
  unauthorized: ['链接无效', "This screen's link is not valid — 请联系管理员 (ask the administrator)."],
  closed: ['已断开', 'Disconnected.'],
};

function render() {
  const s = client.state;
  const hasPicture = teacherTracks.has('camera') || teacherTracks.has('screen');
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
  video.hidden = !showLesson || !hasPicture;
  $('sound-overlay').hidden = soundOn || !showLesson || !teacherTracks.has('mic');
  const session = client.session;
  $('corner').textContent = session && s === 'live'
    ? [session.title, session.teacher_name].filter(Boolean).join(' · ')
    : '';
  hook.tracks = [...teacherTracks.keys()];
  hook.view = showLesson ? 'lesson' : (info || 'waiting');
  document.body.dataset.view = hook.view;
}

// Attach the teacher's current tracks to the one <video>: camera (or courseware) + mic.
function attach() {
  const picture = teacherTracks.get('screen') || teacherTracks.get('camera');
  const tracks = [picture, teacherTracks.get('mic')].filter(Boolean);
  const current = video.srcObject ? video.srcObject.getTracks() : [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (!same) video.srcObject = tracks.length ? new MediaStream(tracks) : null;
  if (tracks.length) play();
  render();
}

// Try with sound; a policy that refuses unmuted autoplay gets muted video and the overlay.
async function play() {
  video.muted = !soundOn;
  try {
    await video.play();
  } catch (e) {
    if (!video.muted) {
      video.muted = true;
      soundOn = false;
      try { await video.play(); } catch (e2) { /* next gesture */ }
    }
  }
  render();
}

async function enableSound() {
  soundOn = true;
  video.muted = false;
  try {
    await video.play();
  } catch (e) {
    soundOn = false;
    video.muted = true;
  }
  // kiosk screens: take the whole screen on the first touch too
  if (document.fullscreenEnabled && !document.fullscreenElement) {
    document.documentElement.requestFullscreen().catch(() => {});
  }
  render();
}

function isTeacher(consumer) {
  const p = client.participants.get(consumer.participant_id);
  return !p || p.role === 'teacher';
}

client.addEventListener('welcome', (ev) => {
  const room = ev.detail.room;
  if (room && room.name) {
    $('room-name').textContent = room.name;
    document.title = `synclass · ${room.name}`;
  }
});
client.addEventListener('participants', (ev) => {
  const teacher = ev.detail.participants.find((p) => p.role === 'teacher');
  if (teacher) rememberLectureRoom(teacher.room_name);
});
client.addEventListener('track', (ev) => {
  const { track, consumer } = ev.detail;
  if (!isTeacher(consumer)) return; // on-stage classrooms: later issue
  teacherTracks.set(consumer.source || track.kind, track);
  attach();
});
client.addEventListener('track_ended', (ev) => {
  const { consumer } = ev.detail;
  const key = consumer.source;
  if (teacherTracks.has(key)) {
    teacherTracks.delete(key);
    attach();
  }
});
client.addEventListener('session_ended', () => {
  teacherTracks.clear();
  attach();
});
client.addEventListener('state', (ev) => {
  if (ev.detail.state === 'waiting' || ev.detail.state === 'connecting') teacherTracks.clear();
  render();
});
client.addEventListener('session', render);
client.addEventListener('log', (ev) => console.debug('[synclass]', ev.detail.text));

// Any touch: sound on (browsers allow unmuting inside a user gesture).
$('sound-overlay').addEventListener('click', (ev) => { ev.stopPropagation(); enableSound(); });
document.addEventListener('pointerdown', () => { if (!soundOn) enableSound(); });

function tick() {
  const d = new Date();
  $('clock').textContent = d.toLocaleTimeString('zh-CN', { hour: '2-digit', minute: '2-digit' });
}
tick();
setInterval(tick, 10000);

if (!token) {
  client._setState('unauthorized');
} else {
  client.start();
}
render();
