// Small helpers shared by the page modules (DOM side; no socket code here).

export const STATE_LABELS = {
  idle: '未连接 (offline)',
  connecting: '连接中 (connecting)',
  waiting: '已连接 (connected)',
  live: '直播中 (live)',
  reconnecting: '重新连接中 (reconnecting)',
  closed: '已断开 (closed)',
  unauthorized: '链接无效 (invalid link)',
};

export function params() {
  return new URLSearchParams(globalThis.location.search);
}

export function $(id) {
  return document.getElementById(id);
}

// Mirror the client's state on <body data-state> (styles and tests wait on it).
export function reflectState(client, extra = {}) {
  const hook = (globalThis.synclass = { client, state: client.state, ...extra });
  // the layer each received consumer forwards now: {consumer_id: layer}, null = paused for bandwidth
  Object.defineProperty(hook, 'layers', { enumerable: true, get: () => Object.fromEntries(client.layers || []) });
  document.body.dataset.state = client.state;
  client.addEventListener('state', (ev) => {
    hook.state = ev.detail.state;
    document.body.dataset.state = ev.detail.state;
  });
  return hook;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
