// Replay of a recorded lesson: every track of its manifest played in sync on
// one timeline — the teacher's camera large, the courseware beside it, each
// on-stage classroom's segments appearing at their offsets, the audio tracks
// as <audio> elements.
//
// One master clock: lesson time that runs with the wall clock while playing
// (and holds while a track that should play is still buffering). Every media
// element follows it: an element off by more than SEEK_S is seeked, one off
// by more than NUDGE_S plays a little faster or slower until it is back. A
// track outside [offset, offset + duration] is paused and its pane idle.
// Files come from the server with HTTP range requests (the <video> element
// seeks by itself); their URLs carry a short-lived access token (no header).
// Credentials: ?token=<admin JWT> or ?key=<admin key>; the lesson: ?id=<session id>.
import { $, el, params } from './common.js';

const SEEK_S = 0.3; // off by more than this: seek
const NUDGE_S = 0.04; // off by more than this: adjust the playback rate
const TICK_MS = 100;
const MAX_HOLD_MS = 4000; // never hold the clock longer than this for one buffering track

const id = params().get('id');
const credential = params().get('token') || params().get('key');
const hook = (globalThis.synclass = { state: 'loading', duration: 0, players: [], playing: false });

let players = []; // {track, el, start, end, pane}
let duration = 0;
let playing = false;
let base = 0; // lesson time at baseWall
let baseWall = performance.now();
let holding = 0; // since when (ms) the clock has been held for buffering; 0 = not held
let dragging = false;

function setState(state, text) {
  hook.state = state;
  document.body.dataset.state = state;
  $('status').textContent = text;
}

function now() {
  return playing ? base + (performance.now() - baseWall) / 1000 : base;
}

function setClock(t) {
  base = Math.max(0, Math.min(duration, t));
  baseWall = performance.now();
}

function fmt(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

async function load() {
  const res = await fetch(`/api/recordings/${encodeURIComponent(id)}`, {
    headers: { Authorization: `Bearer ${credential}` },
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || `${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function paneFor(track) {
  if (track.role === 'teacher' && track.source === 'camera') return $('teacher-pane');
  if (track.source === 'courseware') return $('courseware-pane');
  // one tile per classroom: its segments take turns in it
  const key = `room-${track.room_id || track.participant_name}`;
  let tile = document.getElementById(key);
  if (!tile) {
    const name = track.room_name || track.participant_name || '';
    tile = el('div', { class: 'pane classroom-pane', id: key, 'data-idle': `${name} (不在台上 not on stage)` },
      el('span', { class: 'label' }, name));
    $('classrooms').append(tile);
  }
  return tile;
}

function build(detail) {
  const m = detail.manifest;
  const session = detail.recording;
  $('title').textContent = m.title || session.title || '回放 (Replay)';
  document.title = `synclass · ${$('title').textContent}`;
  $('meta').textContent = [m.subject, m.teacher_name, [m.school_name, m.room_name].filter(Boolean).join(' '),
    new Date(m.started_at * 1000).toLocaleString('zh-CN', { hour12: false })].filter(Boolean).join(' · ');
  const end = m.ended_at ?? Math.max(m.started_at, ...m.tracks.map((t) => m.started_at + (t.offset_s || 0) + t.duration_s));
  duration = Math.max(0, end - m.started_at);
  const used = new Set();
  for (const track of m.tracks) {
    const url = detail.urls[track.file];
    if (!url || track.offset_s == null) continue;
    let media;
    let pane = null;
    if (track.kind === 'video') {
      pane = paneFor(track);
      const fixed = pane.querySelector('video');
      media = fixed && !used.has(fixed) ? fixed : el('video', { muted: '', playsinline: '', preload: 'auto' });
      media.muted = true;
      used.add(media);
      if (!media.parentNode) pane.prepend(media);
    } else {
      media = el('audio', { preload: 'auto' });
      $('audio').append(media);
    }
    media.dataset.file = track.file;
    media.src = url;
    players.push({ track, el: media, start: track.offset_s, end: track.offset_s + track.duration_s, pane });
    if (track.role === 'classroom' && track.kind === 'video' && duration > 0) {
      $('marks').append(el('span', {
        title: track.room_name || '',
        style: `left: ${(100 * track.offset_s) / duration}%; width: ${(100 * track.duration_s) / duration}%`,
      }));
    }
  }
  $('timeline').max = String(duration);
  $('timeline').disabled = false;
  $('play').disabled = false;
  hook.duration = duration;
  tick();
}

// Bring every element in line with the clock; the clock holds while an element
// that should play has nothing to play yet (a seek or a slow link).
function tick() {
  let t = now();
  if (playing && t >= duration) {
    pause();
    t = duration;
  }
  let waiting = false;
  const panes = new Map();
  for (const p of players) {
    const local = t - p.start;
    const active = local >= 0 && local < p.end - p.start;
    if (p.pane) panes.set(p.pane, panes.get(p.pane) || active);
    if (!active) {
      if (!p.el.paused) p.el.pause();
      p.el.hidden = p.pane !== null;
      continue;
    }
    p.el.hidden = false;
    if (!playing) {
      if (!p.el.paused) p.el.pause();
      if (Math.abs(p.el.currentTime - local) > NUDGE_S) p.el.currentTime = local;
      continue;
    }
    const drift = p.el.currentTime - local;
    if (Math.abs(drift) > SEEK_S) {
      p.el.currentTime = local;
      p.el.playbackRate = 1;
    } else if (Math.abs(drift) > NUDGE_S) {
      p.el.playbackRate = drift > 0 ? 0.9 : 1.1; // ahead: slower; behind: faster
    } else {
      p.el.playbackRate = 1;
    }
    if (p.el.paused) p.el.play().catch((e) => { $('message').textContent = `${e.message}`; });
    const nearEnd = Number.isFinite(p.el.duration) && local > p.el.duration - 0.5;
    if (p.el.readyState < 3 && !nearEnd) waiting = true; // HAVE_FUTURE_DATA
  }
  for (const [pane, active] of panes) pane.classList.toggle('idle', !active);
  if (playing && waiting) {
    if (!holding) holding = performance.now();
    if (performance.now() - holding < MAX_HOLD_MS) setClock(t); // hold: no time passes
  } else {
    holding = 0;
  }
  if (!dragging) $('timeline').value = String(t);
  $('time').textContent = `${fmt(t)} / ${fmt(duration)}`;
  hook.playing = playing;
  hook.waiting = waiting;
  hook.players = players.map((p) => ({
    file: p.track.file, kind: p.track.kind, source: p.track.source, role: p.track.role,
    active: !p.el.hidden && !(p.el.paused && playing), currentTime: p.el.currentTime,
    expected: t - p.start, readyState: p.el.readyState, width: p.el.videoWidth || 0,
  }));
}

function play() {
  if (base >= duration) setClock(0);
  setClock(base);
  playing = true;
  $('play').textContent = '❚❚ 暂停 (Pause)';
  tick();
}

function pause() {
  setClock(now());
  playing = false;
  $('play').textContent = '▶ 播放 (Play)';
  for (const p of players) if (!p.el.paused) p.el.pause();
}

function seek(t) {
  setClock(t);
  for (const p of players) {
    const local = base - p.start;
    if (local >= 0 && local < p.end - p.start) p.el.currentTime = local;
  }
  tick();
}

hook.time = () => now();
hook.seek = seek;
hook.play = play;
hook.pause = pause;

$('play').addEventListener('click', () => (playing ? pause() : play()));
$('timeline').addEventListener('pointerdown', () => { dragging = true; });
$('timeline').addEventListener('pointerup', () => { dragging = false; });
$('timeline').addEventListener('input', () => seek(Number($('timeline').value)));

if (!id || !credential) {
  setState('unauthorized', '无权限 (not allowed)');
  $('message').textContent = '链接需要 ?id= 和 ?token= 或 ?key= (the link needs ?id= and ?token= or ?key=)';
} else {
  load().then((detail) => {
    if (!detail.manifest) throw new Error('录像没有清单 (the recording has no manifest)');
    build(detail);
    setState('ready', detail.recording.status === 'recovered' ? '已恢复 (recovered)' : '就绪 (ready)');
    setInterval(tick, TICK_MS);
  }).catch((e) => {
    if (e.status === 401 || e.status === 403) setState('unauthorized', '无权限 (not allowed)');
    else setState('error', '失败 (error)');
    $('message').textContent = e.message;
  });
}
