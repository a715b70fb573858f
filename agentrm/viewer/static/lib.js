// Small helpers shared by the views: DOM building, API calls, formatting, colours, tooltips, the lightbox and
// tiny SVG histograms. No framework and no build step: the browser loads these ES modules as they are.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') {
      for (const [sk, sv] of Object.entries(v)) {
        if (sk.startsWith('--')) el.style.setProperty(sk, sv); else el.style[sk] = sv;
      }
    }
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === '' || v === false) continue;
    q.set(k, v === true ? '1' : v);
  }
  return q.toString();
}

export async function api(path, params) {
  const qs = query(params);
  const res = await fetch(path + (qs ? '?' + qs : ''));
  if (!res.ok) {
    let detail = res.statusText;
    try { const d = (await res.json()).detail; detail = typeof d === 'string' ? d : JSON.stringify(d); } catch { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.json();
}

export const link = (view, params) => `#/${view}` + (query(params) ? '?' + query(params) : '');
export const go = (view, params) => { location.hash = link(view, params); };

export function fmt(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return Number(x).toFixed(digits);
}
export const signed = (x, d = 2) => (x === null || x === undefined ? '—' : (x > 0 ? '+' : '') + fmt(x, d));
export const pct = (x) => (x === null || x === undefined ? '—' : (100 * x).toFixed(1) + '%');
export const secs = (x) => (x === null || x === undefined ? '' : x < 10 ? x.toFixed(2) + 's' : x.toFixed(1) + 's');

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#e15759', '#76b7b2', '#edc948', '#ff9da7',
  '#9c755f', '#8cd17d'];
export const OVERVIEW_COLOR = '#8792a8';
export const turnColor = (t) => PALETTE[(Math.max(1, t) - 1) % PALETTE.length];

export function badge(text, kind = '') { return h('span', { class: `badge ${kind}` }, text); }
export function outcome(correct, status) {
  if (status && status !== 'ok') return badge(status === 'torn' ? 'torn' : 'corrupt', 'bad');
  if (correct === 1) return badge('right', 'good');
  if (correct === 0) return badge('wrong', 'bad');
  return badge('unlabelled', 'muted');
}

export function frameUrl(run, line, video, index, size = 'thumb') {
  return '/api/frame?' + query({ run, line, video, index, size });
}

// ---- tooltip ---------------------------------------------------------------------------------------------
let tip = null;
export function showTip(ev, content) {
  if (!tip) { tip = h('div', { class: 'tooltip', role: 'tooltip' }); document.body.append(tip); }
  tip.replaceChildren(content);
  tip.hidden = false;
  moveTip(ev);
}
export function moveTip(ev) {
  if (!tip || tip.hidden) return;
  const pad = 14, r = tip.getBoundingClientRect();
  let x = ev.clientX + pad, y = ev.clientY + pad;
  if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - pad;
  if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - pad;
  tip.style.left = `${x}px`; tip.style.top = `${y}px`;
}
export function hideTip() { if (tip) tip.hidden = true; }

// ---- frames and the lightbox -----------------------------------------------------------------------------
// `ctx` = {run, line}; `ref` = a FrameRef from the trace; `frames` = the list the lightbox pages through.
export function frameCaption(ref, turn) {
  const who = turn === 0 || turn === undefined ? 'overview' : `turn ${turn}`;
  return `video ${ref.video} · frame ${ref.index} · ${secs(ref.timestamp_s)} · ${who}`;
}

export function thumb(ctx, ref, opts = {}) {
  const { turn, frames, evicted, mini } = opts;
  const img = h('img', {
    src: frameUrl(ctx.run, ctx.line, ref.video, ref.index), alt: `video ${ref.video} frame ${ref.index}`,
    decoding: 'async', draggable: false,
  });
  const fig = h('figure', {
    class: `thumb${mini ? ' mini' : ''}${evicted ? ' evicted' : ''}`,
    style: { '--turn': turn ? turnColor(turn) : OVERVIEW_COLOR },
    title: `${frameCaption(ref, turn)} — ${ref.detail} ${ref.width}×${ref.height}, ${ref.tokens} tokens` +
      (evicted ? ' (evicted)' : ''),
    onclick: () => openLightbox(ctx, frames || [{ ref, turn }], (frames || []).findIndex(
      (f) => f.ref.video === ref.video && f.ref.index === ref.index && f.turn === turn)),
  }, img, mini ? null : h('figcaption', {}, `v${ref.video} #${ref.index}`, h('span', {}, secs(ref.timestamp_s))));
  img.addEventListener('error', () => {
    fig.classList.add('broken');
    fetch(img.src).then((r) => r.json()).then((j) => { fig.title = j.detail || 'frame unavailable'; })
      .catch(() => {});
  });
  return fig;
}

let box = null;
export function openLightbox(ctx, frames, start) {
  if (!box) {
    box = h('div', { class: 'lightbox', id: 'lightbox', onclick: (e) => { if (e.target === box) closeLightbox(); } });
    document.body.append(box);
  }
  let i = Math.max(0, start);
  const render = () => {
    const { ref, turn } = frames[i];
    box.replaceChildren(h('div', { class: 'lightbox-inner' },
      h('img', { src: frameUrl(ctx.run, ctx.line, ref.video, ref.index, 'large'), alt: frameCaption(ref, turn) }),
      h('div', { class: 'lightbox-caption' },
        h('span', { class: 'dot', style: { background: turn ? turnColor(turn) : OVERVIEW_COLOR } }),
        frameCaption(ref, turn), h('span', { class: 'muted' },
          ` · model saw ${ref.width}×${ref.height} (${ref.detail}, ${ref.tokens} tokens)`),
        frames.length > 1 ? h('span', { class: 'muted' }, ` · ${i + 1}/${frames.length} (← →)`) : null,
        h('button', { class: 'close', onclick: closeLightbox, title: 'Close (Esc)' }, '×'))));
  };
  box.onkey = (e) => {
    if (e.key === 'Escape') closeLightbox();
    else if (e.key === 'ArrowRight' && i < frames.length - 1) { i++; render(); }
    else if (e.key === 'ArrowLeft' && i > 0) { i--; render(); }
    else return false;
    return true;
  };
  render();
  box.hidden = false;
}
export function closeLightbox() { if (box) box.hidden = true; }
export function lightboxKey(e) { return box && !box.hidden ? box.onkey(e) || true : false; }

// ---- small charts ----------------------------------------------------------------------------------------
export function histogram(hist, { width = 120, height = 30, color = '#4e79a7', title = '', zero = false } = {}) {
  const counts = hist.counts || [];
  const el = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'hist' });
  if (!counts.length) return el;
  const max = Math.max(...counts), bw = width / counts.length;
  counts.forEach((c, i) => {
    const bh = max ? (c / max) * (height - 2) : 0;
    const lo = hist.edges[i], hi = hist.edges[i + 1];
    const rect = svg('rect', { x: i * bw + 0.5, y: height - bh, width: Math.max(1, bw - 1), height: bh,
      fill: zero && hi <= 0 ? '#e15759' : color, rx: 1 });
    rect.append(svg('title', {}, document.createTextNode(`${title} ${fmt(lo, 2)}…${fmt(hi, 2)}: ${c}`)));
    el.append(rect);
  });
  if (zero && hist.edges[0] < 0 && hist.edges[hist.edges.length - 1] > 0) {
    const x = (-hist.edges[0]) / (hist.edges[hist.edges.length - 1] - hist.edges[0]) * width;
    el.append(svg('line', { x1: x, x2: x, y1: 0, y2: height, stroke: '#333', 'stroke-dasharray': '2,2' }));
  }
  return el;
}

export function meter(value, { good = true } = {}) {
  const v = value === null || value === undefined ? 0 : Math.max(0, Math.min(1, value));
  return h('span', { class: 'meter' }, h('span', { class: good ? 'fill' : 'fill bad', style: { width: `${v * 100}%` } }));
}

// A signed value drawn as a bar growing left (negative) or right (positive) from the middle.
export function diverging(value, scale) {
  const v = value === null || value === undefined ? 0 : Math.max(-1, Math.min(1, value / (scale || 1)));
  const style = v >= 0 ? { left: '50%', width: `${v * 50}%` } : { left: `${50 + v * 50}%`, width: `${-v * 50}%` };
  return h('span', { class: 'diverging' }, h('span', { class: v >= 0 ? 'pos' : 'neg', style }));
}
