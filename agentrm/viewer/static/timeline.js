// Time axes: where in each video the model looked, and when. A chart is a stack of lanes over one time scale;
// a lane holds marks (frames) placed at their timestamps, coloured by the turn that requested them (grey for the
// pinned overview). Hover a mark for its thumbnail; click it to open the frame large.
import { h, showTip, moveTip, hideTip, thumb, frameUrl, frameCaption, openLightbox, turnColor, OVERVIEW_COLOR, secs }
  from './lib.js';

function niceStep(duration) {
  const steps = [0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
  return steps.find((s) => duration / s <= 10) || 7200;
}

const pos = (t, duration) => `${Math.max(0, Math.min(100, (100 * t) / (duration || 1)))}%`;

function tickTimes(duration) {
  const step = niceStep(duration), out = [];
  for (let t = 0; t <= duration + 1e-9; t += step) out.push(Math.round(t * 1000) / 1000);
  return out;
}

function axis(duration) {
  const ticks = tickTimes(duration).map((t) => {
    const edge = t / (duration || 1) > 0.97 ? ' end' : '';
    return h('span', { class: `tick${edge}`, style: { left: pos(t, duration) } }, secs(t));
  });
  return h('div', { class: 'lane axis' }, h('div', { class: 'lane-label' }, ''), h('div', { class: 'lane-track' }, ticks));
}

const gridlines = (duration) => tickTimes(duration).slice(1)
  .map((t) => h('span', { class: 'gridline', style: { left: pos(t, duration) } }));

function mark(ctx, m, duration, frames) {
  const { ref, turn, evicted } = m;
  const color = turn ? turnColor(turn) : OVERVIEW_COLOR;
  const i = frames.indexOf(m);
  return h('span', {
    class: `mark${turn ? '' : ' overview'}${evicted ? ' evicted' : ''}`,
    style: { left: pos(ref.timestamp_s, duration), background: color },
    dataset: { video: ref.video, index: ref.index, turn: turn || 0 },
    onmouseenter: (e) => showTip(e, h('div', { class: 'tip-frame' },
      h('img', { src: frameUrl(ctx.run, ctx.line, ref.video, ref.index), alt: '' }),
      h('div', {}, frameCaption(ref, turn)))),
    onmousemove: moveTip,
    onmouseleave: hideTip,
    onclick: () => { hideTip(); openLightbox(ctx, frames, i); },
  });
}

// lanes: [{label, sub, color, extent (seconds or null), marks: [{ref, turn, evicted}], onlabel}]
export function laneChart(ctx, duration, lanes) {
  const frames = lanes.flatMap((l) => l.marks);
  return h('div', { class: 'lanes' },
    lanes.map((l) => h('div', { class: 'lane' },
      h('div', { class: 'lane-label', title: l.title || '' },
        h('span', { class: 'dot', style: { background: l.color || OVERVIEW_COLOR } }),
        l.onlabel ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); l.onlabel(); } }, l.label) : l.label,
        l.sub ? h('span', { class: 'muted' }, ` ${l.sub}`) : null),
      h('div', { class: 'lane-track' }, gridlines(duration),
        l.extent !== undefined && l.extent !== null
          ? h('span', { class: 'extent', style: { width: pos(l.extent, duration) } }) : null,
        l.marks.map((m) => mark(ctx, m, duration, frames))))),
    axis(duration));
}

// Thumbnails placed along the time axis (the overview of one video), shifted so the first and last stay inside.
export function strip(ctx, duration, marks) {
  const frames = marks;
  return h('div', { class: 'strip' },
    h('div', { class: 'lane-label' }),
    h('div', { class: 'strip-track' }, marks.map((m) => {
      const p = Math.max(0, Math.min(100, (100 * m.ref.timestamp_s) / (duration || 1)));
      const fig = thumb(ctx, m.ref, { turn: m.turn, frames });
      fig.style.left = `${p}%`;
      fig.style.transform = `translateX(-${p}%)`;
      return fig;
    })));
}

export function videoDuration(video, marks) {
  const last = Math.max(0, ...marks.map((m) => m.ref.timestamp_s));
  return video && video.duration_s ? Math.max(video.duration_s, last) : last * 1.05 || 1;
}
