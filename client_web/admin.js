// Admin page: sessions (with their attendance), the recordings library (search,
// replay, export, delete), rooms (with page links to hand out) and server counters.
// Credentials: ?token=<admin JWT> or ?key=<admin key>, sent as a bearer token.
import { $, el, params } from './common.js';

const token = params().get('token');
const key = params().get('key');
const REFRESH_MS = 5000;
const hook = (globalThis.synclass = { state: 'loading', data: {} });

function setState(state, text) {
  hook.state = state;
  document.body.dataset.state = state;
  $('status').textContent = text;
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  // an admin token and the admin key are both sent as a bearer credential
  const credential = token || key;
  if (credential) h.Authorization = `Bearer ${credential}`;
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (!res.ok) {
    // errors are {"error": {"code", "message", "field"?}}
    const detail = data && (data.error && typeof data.error === 'object' ? data.error : data);
    const err = new Error((detail && detail.message) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// Lists may come bare or wrapped ({sessions: [...]}).
function list(data, name) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[name])) return data[name];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

function fmtTime(v) {
  if (!v) return '';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString('zh-CN', { hour12: false });
}

const STATUS_ORDER = { live: 0, scheduled: 1, ended: 2 };

function renderSessions(sessions, roomsById) {
  const rows = [...sessions].sort((a, b) =>
    (STATUS_ORDER[a.status] ?? 3) - (STATUS_ORDER[b.status] ?? 3)
    || String(b.started_at || b.scheduled_at || '').localeCompare(String(a.started_at || a.scheduled_at || '')));
  $('sessions').replaceChildren(...rows.map((s) => el('tr', { 'data-session': s.id },
    el('td', {}, el('span', { class: `badge ${s.status}` }, s.status)),
    el('td', {}, s.title || ''),
    el('td', {}, s.subject || ''),
    el('td', {}, roomsById.get(s.lecture_room_id)?.name || s.lecture_room_id || ''),
    el('td', {}, fmtTime(s.started_at || s.scheduled_at)),
    el('td', {}, s.status === 'scheduled' ? '' : el('button', {
      type: 'button', class: 'attendance', style: 'background: #2b3947', onclick: () => showAttendance(s),
    }, '出勤 (Attendance)')),
  )));
  if (!rows.length) $('sessions').append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, '暂无 (none)')));
}

// --- attendance of one session (docs/protocol.md, RoomAttendance) ---------------

let attendanceSession = null; // the session whose attendance is shown, or null

// seconds -> m:ss (minutes keep counting past an hour: 75:03)
function fmtDuration(seconds) {
  const whole = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

function renderAttendance(rooms) {
  const body = $('attendance-rooms');
  body.replaceChildren(...rooms.map((r) => el('tr', { 'data-room': r.room_id },
    el('td', {}, r.school_name || r.school_id || ''),
    el('td', {}, r.room_name || r.room_id, ' ',
      el('span', { class: 'muted' }, r.role === 'teacher' ? '(主讲 lecture)' : '(听课 classroom)')),
    el('td', {}, String(r.joins)),
    el('td', {}, fmtTime(r.first_joined_at)),
    el('td', {}, r.connected_now
      ? el('span', { class: 'badge live' }, '在线 (connected now)')
      : fmtTime(r.last_left_at)),
    el('td', { 'data-seconds': r.connected_s }, fmtDuration(r.connected_s)),
  )));
  if (!rooms.length) {
    body.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, '暂无出勤记录 (nobody has joined)')));
  }
}

async function loadAttendance() {
  const session = attendanceSession;
  if (!session) return;
  try {
    const data = await api('GET', `/api/sessions/${encodeURIComponent(session.id)}/attendance`);
    if (attendanceSession?.id !== session.id) return; // another session was picked meanwhile
    hook.data.attendance = data;
    renderAttendance(list(data, 'rooms'));
    $('attendance-message').textContent = '';
  } catch (e) {
    if (attendanceSession?.id === session.id) $('attendance-message').textContent = `失败 (failed): ${e.message}`;
  }
}

function showAttendance(session) {
  attendanceSession = session;
  hook.data.attendance = null;
  $('attendance-title').textContent = session.title || session.id;
  $('attendance-rooms').replaceChildren();
  $('attendance-message').textContent = '加载中 (loading)';
  $('attendance').hidden = false;
  $('attendance').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  loadAttendance();
}

// The CSV needs the bearer header, which a plain link cannot send: fetch it
// and hand the browser a Blob URL to save.
async function downloadCsv(ev) {
  ev.preventDefault();
  const session = attendanceSession;
  if (!session) return;
  try {
    const res = await fetch(`/api/sessions/${encodeURIComponent(session.id)}/attendance.csv`, { headers: headers() });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try { message = (await res.json()).error.message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: `attendance-${session.id}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    $('attendance-message').textContent = `下载失败 (download failed): ${e.message}`;
  }
}

$('attendance-csv').addEventListener('click', downloadCsv);
$('attendance-close').addEventListener('click', () => {
  attendanceSession = null;
  hook.data.attendance = null;
  $('attendance').hidden = true;
});

// --- library: recorded lessons (docs/protocol.md, "Recordings") ------------------------

const REC_LABELS = { recording: '录制中 (recording)', complete: '完成 (complete)', recovered: '已恢复 (recovered)' };
const exportsById = new Map(); // recording id -> {job, message, url}

function fmtBytes(n) {
  const v = Number(n) || 0;
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)} GB`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)} MB`;
  return `${Math.round(v / 1e3)} kB`;
}

function credentialParam() {
  return token ? `token=${encodeURIComponent(token)}` : `key=${encodeURIComponent(key)}`;
}

// a local date (from <input type=date>) -> the ISO time of its local midnight
function localDay(value, nextDay = false) {
  const d = new Date(`${value}T00:00:00`);
  if (nextDay) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

function libraryQuery() {
  const q = new URLSearchParams();
  for (const [id, name] of [['lib-school', 'school_id'], ['lib-room', 'room_id'], ['lib-teacher', 'teacher'],
    ['lib-subject', 'subject'], ['lib-q', 'q']]) {
    const v = $(id).value.trim();
    if (v) q.set(name, v);
  }
  if ($('lib-from').value) q.set('from', localDay($('lib-from').value));
  if ($('lib-to').value) q.set('to', localDay($('lib-to').value, true)); // through the end of that day
  return q.toString();
}

function fillSelect(select, items, label) {
  const chosen = select.value;
  const have = new Set([...select.options].map((o) => o.value));
  const want = new Set(['', ...items.map((i) => i.id)]);
  if (have.size === want.size && [...want].every((v) => have.has(v))) return;
  select.replaceChildren(el('option', { value: '' }, '全部 (all)'),
    ...items.map((i) => el('option', { value: i.id }, label(i))));
  select.value = want.has(chosen) ? chosen : '';
}

function exportCell(r) {
  const state = exportsById.get(r.id) || {};
  const cell = el('span', { class: 'export', 'data-export': state.job ? state.job.status : '' });
  if (state.url) cell.append(el('a', { href: state.url, download: `lesson-${r.id}.mp4` }, '下载 MP4 (Download)'));
  else if (state.job && state.job.status === 'running') cell.append(`导出中 (exporting) ${Math.round(state.job.progress * 100)} %`);
  else if (r.status !== 'recording') {
    cell.append(el('button', { type: 'button', onclick: () => startExport(r) }, '导出 MP4 (Export)'));
  }
  if (state.message) cell.append(' ', el('span', { class: 'muted' }, state.message));
  return cell;
}

function renderLibrary(recordings) {
  const body = $('recordings');
  body.replaceChildren(...recordings.map((r) => el('tr', { 'data-recording': r.id },
    el('td', {}, el('span', { class: `badge ${r.status}` }, REC_LABELS[r.status] || r.status)),
    el('td', {}, r.title || ''),
    el('td', {}, r.subject || ''),
    el('td', {}, r.teacher_name || ''),
    el('td', {}, [r.school_name, r.room_name].filter(Boolean).join(' · ')),
    el('td', {}, fmtTime(r.started_at)),
    el('td', { 'data-seconds': r.duration_s }, fmtDuration(r.duration_s)),
    el('td', {}, fmtBytes(r.bytes)),
    el('td', {}, el('span', { class: 'actions' },
      el('a', { href: `replay.html?id=${encodeURIComponent(r.id)}&${credentialParam()}`, target: '_blank', rel: 'noopener', class: 'replay' }, '回放 (Replay)'),
      exportCell(r),
      r.status === 'recording' ? '' : el('button', { type: 'button', class: 'danger', onclick: () => deleteRecording(r) }, '删除 (Delete)'),
    )),
  )));
  if (!recordings.length) body.append(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, '暂无录像 (no recordings)')));
}

async function loadLibrary() {
  try {
    const data = await api('GET', `/api/recordings?${libraryQuery()}`);
    hook.data.recordings = list(data, 'recordings');
    renderLibrary(hook.data.recordings);
    $('library-message').textContent = '';
  } catch (e) {
    $('library-message').textContent = `失败 (failed): ${e.message}`;
  }
}

async function startExport(r) {
  exportsById.set(r.id, { message: '…' });
  renderLibrary(hook.data.recordings || []);
  try {
    let job = await api('POST', `/api/recordings/${encodeURIComponent(r.id)}/export`);
    exportsById.set(r.id, { job });
    for (let i = 0; i < 7200 && job.status === 'running'; i++) { // bounded: two hours of polling
      renderLibrary(hook.data.recordings || []);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      job = await api('GET', `/api/exports/${encodeURIComponent(job.id)}`);
      exportsById.set(r.id, { job });
    }
    if (job.status === 'done') {
      // the detail hands out the file's URL with a short-lived access token
      const detail = await api('GET', `/api/recordings/${encodeURIComponent(r.id)}`);
      exportsById.set(r.id, { job, url: detail.export && detail.export.url });
    } else {
      exportsById.set(r.id, { job, message: `导出失败 (export failed): ${job.error || job.status}` });
    }
  } catch (e) {
    exportsById.set(r.id, { message: `导出失败 (export failed): ${e.message}` });
  }
  renderLibrary(hook.data.recordings || []);
}

async function deleteRecording(r) {
  if (!globalThis.confirm(`删除录像 “${r.title}”? (Delete this recording for good?)`)) return;
  try {
    await api('DELETE', `/api/recordings/${encodeURIComponent(r.id)}`);
    exportsById.delete(r.id);
    await loadLibrary();
  } catch (e) {
    $('library-message').textContent = `删除失败 (delete failed): ${e.message}`;
  }
}

$('library-search').addEventListener('submit', (ev) => { ev.preventDefault(); loadLibrary(); });

function pageFor(role) {
  return role === 'teacher' ? 'teacher.html' : 'classroom.html';
}

function roleFor(room) {
  return room.kind === 'lecture' ? 'teacher' : 'classroom';
}

async function mintLink(room, cell) {
  const role = roleFor(room);
  cell.replaceChildren('…');
  try {
    const data = await api('POST', '/api/tokens', { room_id: room.id, role });
    // the server says which page the token opens (prefixed with its public URL when set)
    const base = new URL('.', globalThis.location.href);
    const url = data.url
      ? new URL(data.url, globalThis.location.href).href
      : new URL(`${pageFor(role)}?token=${encodeURIComponent(data.token)}`, base).href;
    const input = el('input', { type: 'text', readonly: '', value: url });
    const copy = el('button', {
      type: 'button',
      onclick: async () => {
        input.select();
        try { await navigator.clipboard.writeText(url); copy.textContent = '已复制 (copied)'; } catch (e) {
          document.execCommand && document.execCommand('copy');
        }
      },
    }, '复制 (Copy)');
    cell.replaceChildren(el('div', { class: 'link-row' }, input), copy,
      el('a', { href: url, target: '_blank', rel: 'noopener' }, ' 打开 (open)'));
  } catch (e) {
    cell.replaceChildren(`失败 (failed): ${e.message}`);
  }
}

function renderRooms(rooms, schoolsById) {
  // keep links already minted: rebuild only rows for rooms we have not drawn
  const body = $('rooms');
  const drawn = new Set([...body.querySelectorAll('tr[data-room]')].map((tr) => tr.dataset.room));
  for (const room of rooms) {
    if (drawn.has(String(room.id))) continue;
    const cell = el('td', {});
    const role = roleFor(room);
    cell.append(el('button', { type: 'button', class: 'primary', onclick: () => mintLink(room, cell) },
      role === 'teacher' ? '生成主讲链接 (Teacher link)' : '生成听课链接 (Classroom link)'));
    body.append(el('tr', { 'data-room': room.id },
      el('td', {}, schoolsById.get(room.school_id)?.name || room.school_id || ''),
      el('td', {}, room.name || room.id),
      el('td', {}, role === 'teacher' ? '主讲 (lecture)' : '听课 (classroom)'),
      cell));
  }
}

function flatten(obj, prefix = '', out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, name, out);
    else out.push([name, Array.isArray(v) ? v.length : v]);
  }
  return out;
}

function renderStats(stats) {
  $('stats').replaceChildren(...flatten(stats).map(([k, v]) =>
    el('div', { class: 'stat', 'data-stat': k }, el('b', {}, typeof v === 'number' ? v.toLocaleString() : String(v)), k)));
}

async function refresh() {
  try {
    const [schools, rooms, sessions] = await Promise.all([
      api('GET', '/api/schools'), api('GET', '/api/rooms'), api('GET', '/api/sessions'),
    ]);
    const schoolList = list(schools, 'schools');
    const roomList = list(rooms, 'rooms');
    const sessionList = list(sessions, 'sessions');
    hook.data = { schools: schoolList, rooms: roomList, sessions: sessionList };
    const schoolsById = new Map(schoolList.map((s) => [s.id, s]));
    const roomsById = new Map(roomList.map((r) => [r.id, r]));
    renderSessions(sessionList, roomsById);
    renderRooms(roomList, schoolsById);
    fillSelect($('lib-school'), schoolList, (sc) => sc.name || sc.id);
    fillSelect($('lib-room'), roomList.filter((r) => r.kind === 'lecture'),
      (r) => [schoolsById.get(r.school_id)?.name, r.name].filter(Boolean).join(' · '));
    if (![...exportsById.values()].some((x) => x.job && x.job.status === 'running')) await loadLibrary();
    if (attendanceSession) {
      // follow the session's newest state (a live lesson's times count up)
      attendanceSession = sessionList.find((s) => s.id === attendanceSession.id) || attendanceSession;
      await loadAttendance();
    }
    try {
      const stats = await api('GET', '/api/stats');
      hook.data.stats = stats;
      renderStats(stats);
    } catch (e) {
      $('stats').replaceChildren(el('span', { class: 'muted' }, `(${e.message})`));
    }
    $('message').textContent = '';
    setState('ready', `已更新 (updated) ${new Date().toLocaleTimeString('zh-CN', { hour12: false })}`);
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      setState('unauthorized', '无权限 (not allowed)');
      $('message').textContent = '链接中的 token 或 key 无效 (the token or key in the link is not valid)';
      return false;
    }
    setState('error', '连接失败 (error)');
    $('message').textContent = e.message;
  }
  return true;
}

async function loop() {
  if (await refresh()) setTimeout(loop, REFRESH_MS);
}

if (!token && !key) {
  setState('unauthorized', '无权限 (not allowed)');
  $('message').textContent = '链接需要 ?token= 或 ?key= (the link needs ?token= or ?key=)';
} else {
  loop();
}
