// Lecture-room page: one click starts the lesson and publishes camera + mic.
import { LessonClient } from './protocol.js';
import { $, STATE_LABELS, el, params, reflectState } from './common.js';

const token = params().get('token');
const client = new LessonClient(token);
const hook = reflectState(client);
let localStream = null;
let starting = false;

function today() {
  const d = new Date();
  return `${d.getMonth() + 1}月${d.getDate()}日`;
}
$('title').value = params().get('title') || `${today()} 同步课堂 (Lesson)`;
$('subject').value = params().get('subject') || '';

function say(text) {
  $('message').textContent = text || '';
}

function render() {
  const s = client.state;
  $('status').textContent = STATE_LABELS[s] || s;
  const live = s === 'live';
  const reconnecting = s === 'reconnecting';
  // while reconnecting with the lesson on, keep the lesson UI (we come back by ourselves)
  const inLesson = live || (reconnecting && client.localTracks);
  $('start-panel').hidden = inLesson;
  $('end').hidden = !inLesson;
  $('start').disabled = starting || s !== 'waiting';
  $('start').textContent = client.session
    ? '继续上课 (Resume lesson)'
    : '开始上课 (Start lesson)';
}

async function getMedia() {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const tries = [
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

function stopLocal() {
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  localStream = null;
  $('preview').srcObject = null;
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

function renderClassrooms(participants) {
  const list = $('classrooms');
  const rooms = participants.filter((p) => p.role === 'classroom');
  list.replaceChildren(...rooms.map((p) => el('li', { 'data-participant': p.id },
    p.room_name || p.name || p.room_id)));
  $('no-classrooms').hidden = rooms.length > 0;
  hook.classrooms = rooms;
}

client.addEventListener('welcome', (ev) => {
  const room = ev.detail.room;
  if (room && room.name) {
    $('room-name').textContent = room.name;
    document.title = `synclass · ${room.name}`;
  }
  if (ev.detail.role && ev.detail.role !== 'teacher') say('这个链接不是主讲教室的 (this link is not a lecture-room link)');
});
client.addEventListener('state', render);
// the lesson is over (ended here or elsewhere): give the camera back
client.addEventListener('session_ended', () => {
  if (!starting) stopLocal();
});
client.addEventListener('session', render);
client.addEventListener('participants', (ev) => renderClassrooms(ev.detail.participants));
client.addEventListener('servererror', (ev) => say(`${ev.detail.code}: ${ev.detail.message}`));
client.addEventListener('log', (ev) => console.debug('[synclass]', ev.detail.text));

$('start-form').addEventListener('submit', start);
$('end').addEventListener('click', end);

if (!token) {
  say('链接缺少 token (the link has no ?token=)');
  document.body.dataset.state = 'unauthorized';
} else {
  client.start();
}
render();
