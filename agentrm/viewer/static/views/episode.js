// One episode, two ways. "episode": a time axis per video (overview frames and every requested frame, by turn),
// then turn by turn the reasoning (collapsed), the tool call, the returned frames and the memory window (kept vs
// evicted). "pair": videos 1 and 2 side by side on one shared time axis, with the human label next to the
// model's verdicts. Both end with verdicts and head rewards per dimension.
import { h, api, link, go, fmt, signed, outcome, badge, diverging, thumb, turnColor, OVERVIEW_COLOR, secs }
  from '../lib.js';
import { listState, apiFilters, episodeParams } from './samples.js';
import { laneChart, strip, videoDuration } from '../timeline.js';

// ---- reading a trace -------------------------------------------------------------------------------------
function analyse(trace) {
  const turns = new Map();
  for (const e of trace.events) {
    if (!turns.has(e.turn)) turns.set(e.turn, []);
    turns.get(e.turn).push(e);
  }
  const windows = trace.events.filter((e) => e.kind === 'window');
  const first = windows[0], last = windows[windows.length - 1];
  const overview = (first ? first.state.groups : []).filter((g) => g.group.startsWith('overview'))
    .flatMap((g) => g.frames.map((ref) => ({ ref, turn: 0 })));
  const evictedGroups = new Set((last ? last.state.groups : []).filter((g) => g.evicted).map((g) => g.group));
  const requested = trace.events.filter((e) => e.kind === 'tool_result')
    .flatMap((e) => e.frames.map((ref) => ({ ref, turn: e.turn, evicted: evictedGroups.has(`turn-${e.turn}`) })));
  return { turns, overview, requested, all: [...overview, ...requested] };
}

function splitText(text) {
  const m = /<think>([\s\S]*?)<\/think>/.exec(text);
  const thinking = m ? m[1].trim() : '';
  const rest = (m ? text.replace(m[0], '') : text).trim();
  return { thinking, rest };
}

// ---- pieces ----------------------------------------------------------------------------------------------
function verdictTable(trace, summary) {
  const dims = trace.inputs.dims.length ? trace.inputs.dims : Object.keys(trace.verdicts || {});
  const labels = trace.inputs.labels || {}, verdicts = trace.verdicts || {}, rewards = trace.rewards || [];
  const pairwise = trace.inputs.mode === 'pairwise';
  const scale = Math.max(1, ...dims.map((d) => Math.abs((summary.scores[`m.${d}`]) || 0)));
  return h('table', { class: 'verdicts' },
    h('thead', {}, h('tr', {}, h('th', {}, 'dim'), h('th', {}, 'human label'), h('th', {}, 'model verdict'), h('th', {}, ''),
      rewards.map((_, i) => h('th', { class: 'num' }, `reward v${i + 1}`)),
      pairwise ? h('th', { class: 'num', colspan: 2 }, 'margin (v1 − v2)') : null)),
    h('tbody', {}, dims.map((d) => {
      // right/wrong as the server decides it (numbers as numbers, text case-insensitively)
      const has = d in labels, ok = has && d in verdicts ? summary.scores[`c.${d}`] === 1 : null;
      const m = summary.scores[`m.${d}`];
      return h('tr', { class: d === summary.overall ? 'overall' : '' },
        h('td', {}, d, d === summary.overall ? h('span', { class: 'muted' }, ' (overall)') : ''),
        h('td', {}, has ? String(labels[d]) : '—'), h('td', {}, d in verdicts ? String(verdicts[d]) : '—'),
        h('td', {}, ok === null ? (has ? badge('no answer', 'bad') : '') : ok ? badge('✓', 'good') : badge('✗', 'bad')),
        rewards.map((r) => h('td', { class: 'num' }, fmt(r[d], 3))),
        pairwise ? [h('td', { class: 'num' }, signed(m, 3)), h('td', {}, diverging(m, scale))] : null);
    })));
}

function header(data, mode, st, nav) {
  const { trace, summary, run, line } = data;
  const other = mode === 'episode' ? 'pair' : 'episode';
  return h('div', { class: 'episode-head' },
    h('div', { class: 'crumbs' },
      h('a', { href: link('samples', { ...st, sel: `${run}:${line}` }), id: 'back' }, '← samples'),
      h('span', { class: 'muted' }, ` ${run} · line ${line}`),
      nav),
    h('div', { class: 'title-row' },
      h('h1', {}, trace.id), outcome(summary.correct, 'ok'),
      trace.termination && trace.termination !== 'answer' ? badge(trace.termination, 'warn') : null,
      h('span', { class: 'facts' },
        `label ${summary.label ?? '—'} · model ${summary.verdict ?? '—'}`,
        summary.margin !== null && summary.margin !== undefined ? ` · margin ${signed(summary.margin, 3)}` : '',
        ` · ${trace.num_turns} turns · ${trace.frames_viewed} frames viewed`),
      h('span', { class: 'spacer' }),
      h('div', { class: 'tabs' },
        h('a', { class: mode === 'episode' ? 'active' : '', href: link('episode', { ...episodeParams(st, run, line) }) }, 'Episode'),
        h('a', { class: mode === 'pair' ? 'active' : '', href: link('pair', { ...episodeParams(st, run, line) }), title: `p: ${other} view` }, 'Pairwise'))),
    h('p', { class: 'prompt' }, trace.inputs.prompt));
}

function videoTitle(v) {
  const name = (v.path || '').split('/').pop();
  return h('div', { class: 'video-title' }, h('strong', {}, `Video ${v.video}`), h('span', { class: 'muted' },
    ` ${name}` + (v.duration_s ? ` · ${secs(v.duration_s)} · ${v.num_frames} frames @ ${fmt(v.fps, 3).replace(/\.?0+$/, '')} fps · ${v.width}×${v.height}` : '')),
    v.found === false ? badge('video file not found', 'bad') : null);
}

function timelines(ctx, data, a, scrollTo) {
  return data.videos.map((v) => {
    const mine = (l) => l.filter((m) => m.ref.video === v.video);
    const duration = videoDuration(v, mine(a.all));
    const turns = [...new Set(mine(a.requested).map((m) => m.turn))].sort((x, y) => x - y);
    const lanes = [{ label: 'overview', sub: 'pinned', marks: mine(a.overview), color: OVERVIEW_COLOR },
      ...turns.map((t) => ({ label: `turn ${t}`, color: turnColor(t), onlabel: () => scrollTo(t),
        marks: mine(a.requested).filter((m) => m.turn === t),
        sub: mine(a.requested).some((m) => m.turn === t && m.evicted) ? 'evicted' : '' }))];
    if (!mine(a.all).length) {
      return h('div', { class: 'video-timeline', dataset: { video: v.video } }, videoTitle(v),
        h('p', { class: 'muted' }, 'The trace shows no frames of this video.'));
    }
    return h('div', { class: 'video-timeline', dataset: { video: v.video } }, videoTitle(v),
      strip(ctx, duration, mine(a.overview)), laneChart(ctx, duration, lanes));
  });
}

function windowState(ctx, ev) {
  const s = ev.state, evicted = s.groups.filter((g) => g.evicted).length;
  const frames = s.groups.flatMap((g) => g.frames.map((ref) => ({ ref, turn: turnOf(g.group) })));
  return h('div', { class: 'window-state' },
    h('div', { class: 'window-head' }, h('strong', {}, ev.turn === 0 ? 'Memory window (initial)' : 'Memory window after this turn'),
      h('span', { class: 'muted' }, ` ${s.frames} frames · ${s.visual_tokens} visual tokens in context` +
        (evicted ? ` · ${evicted} group${evicted > 1 ? 's' : ''} evicted` : ''))),
    h('div', { class: 'groups' }, s.groups.map((g) => {
      const t = turnOf(g.group);
      return h('div', { class: `group${g.evicted ? ' evicted' : ''}${g.pinned ? ' pinned' : ''}`,
        style: { '--turn': t ? turnColor(t) : OVERVIEW_COLOR }, dataset: { group: g.group } },
        h('div', { class: 'group-head' }, g.group,
          g.pinned ? badge('pinned', 'muted') : null, g.evicted ? badge('evicted', 'bad') : badge('kept', 'good')),
        h('div', { class: 'group-frames' }, g.frames.map((ref) => thumb(ctx, ref, { turn: t, frames, evicted: g.evicted, mini: true }))));
    })));
}
const turnOf = (group) => (group.startsWith('turn-') ? Number(group.slice(5)) : 0);

function turnCard(ctx, t, events) {
  const body = [];
  for (const e of events) {
    if (e.kind === 'model') {
      const { thinking, rest } = splitText(e.text);
      const preview = (thinking || rest).replace(/\s+/g, ' ').slice(0, 140);
      body.push(h('details', { class: 'reasoning' },
        h('summary', {}, h('span', { class: 'label' }, 'Reasoning'), h('span', { class: 'muted preview' }, preview + (preview.length >= 140 ? '…' : ''))),
        h('pre', {}, e.text)));
    } else if (e.kind === 'tool_call') {
      body.push(h('div', { class: 'tool-call' }, h('span', { class: 'label' }, 'Tool call'),
        h('code', {}, `${e.name}(${Object.entries(e.arguments).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')})`)));
    } else if (e.kind === 'tool_result') {
      const frames = e.frames.map((ref) => ({ ref, turn: t }));
      body.push(h('div', { class: 'tool-result' },
        h('div', {}, h('span', { class: 'label' }, 'Returned'), h('span', { class: 'muted' }, ` ${e.text}`),
          e.repeated ? badge('repeated call', 'warn') : null),
        h('div', { class: 'frames' }, e.frames.map((ref) => thumb(ctx, ref, { turn: t, frames })))));
    } else if (e.kind === 'tool_error') {
      body.push(h('div', { class: 'alert bad' }, h('strong', {}, `Tool error (${e.name}): `), e.message));
    } else if (e.kind === 'parse_error') {
      body.push(h('div', { class: 'alert warn' }, h('strong', {}, `Format error (${e.error}): `), e.message));
    } else if (e.kind === 'limit') {
      body.push(h('div', { class: 'alert warn' }, h('strong', {}, `Limit ${e.limit}: `), e.message));
    } else if (e.kind === 'answer') {
      body.push(h('div', { class: 'answer' }, h('span', { class: 'label' }, 'Answer'),
        Object.entries(e.verdicts).map(([d, v]) => h('span', { class: 'chip' }, `${d}: ${v}`))));
    } else if (e.kind === 'window') {
      body.push(windowState(ctx, e));
    }
  }
  const model = events.find((e) => e.kind === 'model');
  return h('section', { class: 'turn card', id: `turn-${t}`, style: { '--turn': t ? turnColor(t) : OVERVIEW_COLOR } },
    h('div', { class: 'turn-head' }, h('span', { class: 'turn-no' }, t === 0 ? 'Start' : `Turn ${t}`),
      model ? h('span', { class: 'muted' }, `${model.prompt_tokens} prompt · ${model.completion_tokens} completion tokens · ${secs(model.latency_s)} · ${model.finish_reason}`)
        : h('span', { class: 'muted' }, 'initial context: the pinned overview of each video')),
    body);
}

// ---- pairwise: side by side on one time axis -------------------------------------------------------------
function sideBySide(ctx, data, a) {
  const videos = data.videos;
  const duration = Math.max(...videos.map((v) => videoDuration(v, a.all.filter((m) => m.ref.video === v.video))));
  const lanes = videos.map((v) => ({ label: `Video ${v.video}`, sub: v.duration_s ? secs(v.duration_s) : '',
    extent: v.duration_s || null, color: '#5b6478', marks: a.all.filter((m) => m.ref.video === v.video) }));
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => duration / s <= 10) || 1200;
  const bins = Math.max(1, Math.ceil(duration / step - 1e-9));
  const seen = new Map();
  for (const m of a.all) seen.set(`${m.ref.video}:${m.ref.index}`, m); // a requested frame shows as requested
  const uniq = [...seen.values()].sort((x, y) => x.ref.timestamp_s - y.ref.timestamp_s);
  const rows = [];
  for (let b = 0; b < bins; b++) {
    const lo = b * step, hi = (b + 1) * step;
    const inBin = (v) => uniq.filter((m) => m.ref.video === v.video && m.ref.timestamp_s >= lo && (m.ref.timestamp_s < hi || b === bins - 1));
    rows.push(h('tr', {}, h('th', { class: 'bin' }, `${secs(lo)}–${secs(hi)}`),
      videos.map((v) => h('td', {}, h('div', { class: 'frames' },
        inBin(v).map((m) => thumb(ctx, m.ref, { turn: m.turn, frames: uniq, evicted: m.evicted })))))));
  }
  return [
    h('section', { class: 'card' }, h('h2', {}, 'Shared time axis'), laneChart(ctx, duration, lanes)),
    h('section', { class: 'card' }, h('h2', {}, 'Side by side', h('span', { class: 'muted' }, ' · every frame the model saw, by time · border: grey = overview, colour = turn · faded = evicted by the end')),
      h('table', { class: 'side-by-side' }, h('thead', {}, h('tr', {}, h('th', {}, 'time'), videos.map((v) => h('th', {}, videoTitle(v))))),
        h('tbody', {}, rows))),
  ];
}

// ---- the view --------------------------------------------------------------------------------------------
export async function renderEpisode(el, params, mode) {
  const run = params.get('run'), line = Number(params.get('line'));
  const st = listState(params, 'lrun');
  if (!st.run) st.run = run;
  const ctx = { run, line };
  const [data, nb] = await Promise.all([
    api('/api/trace', { run, line }),
    api('/api/neighbors', { at_run: run, at_line: line, ...apiFilters(st) }).catch(() => null),
  ]);
  const jump = (k) => { if (nb && nb[k]) go(mode, episodeParams(st, nb[k].run, nb[k].line, nb[k].pos)); };
  const nav = h('span', { class: 'nav' },
    nb && nb.pos !== null ? h('span', { class: 'muted' }, ` · ${nb.pos + 1} of ${nb.total} in list`) : null,
    h('button', { disabled: !nb || !nb.prev, onclick: () => jump('prev'), title: 'k' }, '↑ prev'),
    h('button', { disabled: !nb || !nb.next, onclick: () => jump('next'), title: 'j' }, '↓ next'),
    h('button', { disabled: !nb || !nb.next_wrong, onclick: () => jump('next_wrong'), title: 'n' }, 'next wrong'));
  const keys = (e) => {
    const map = { j: 'next', k: 'prev', n: 'next_wrong', N: 'prev_wrong' };
    if (map[e.key]) { jump(map[e.key]); return true; }
    if (e.key === 'u' || e.key === 'Escape') { location.hash = link('samples', { ...st, sel: `${run}:${line}` }); return true; }
    return false;
  };
  if (data.status !== 'ok') {
    el.append(h('div', { class: 'crumbs' }, h('a', { href: link('samples', st) }, '← samples'), nav),
      h('div', { class: 'error-box' }, h('h1', {}, `${run} · line ${line} is not a valid trace`), h('p', {}, data.error),
        h('pre', { class: 'raw' }, data.raw)));
    return { onKey: keys };
  }
  const a = analyse(data.trace);
  const scrollTo = (t) => {
    const card = el.querySelector(`#turn-${t}`);
    if (card) { card.scrollIntoView({ behavior: 'smooth', block: 'start' }); card.classList.add('flash'); setTimeout(() => card.classList.remove('flash'), 900); }
  };
  el.append(header(data, mode, st, nav));
  const final = h('section', { class: 'card' }, h('h2', {}, 'Verdicts and head rewards'), verdictTable(data.trace, data.summary),
    data.trace.error ? h('div', { class: 'alert bad' }, data.trace.error) : null);
  if (mode === 'pair') {
    el.append(final, ...sideBySide(ctx, data, a));
  } else {
    el.append(h('section', { class: 'card' }, h('h2', {}, 'Where the model looked',
      h('span', { class: 'muted' }, ' · grey: pinned overview; colours: frames requested per turn (faded: evicted by the end)')),
    timelines(ctx, data, a, scrollTo)));
    const turns = [...a.turns.keys()].sort((x, y) => x - y);
    el.append(h('div', { class: 'turns' }, turns.map((t) => turnCard(ctx, t, a.turns.get(t)))), final);
  }
  let turnIdx = -1;
  const turnIds = [...a.turns.keys()].sort((x, y) => x - y);
  return {
    onKey(e) {
      if (keys(e)) return true;
      if (e.key === 'p') { go(mode === 'episode' ? 'pair' : 'episode', episodeParams(st, run, line)); return true; }
      if (e.key === 'r') {
        const all = [...el.querySelectorAll('details.reasoning')];
        const open = !all.every((d) => d.open);
        all.forEach((d) => { d.open = open; });
        return true;
      }
      if ((e.key === ']' || e.key === '[') && turnIds.length && mode === 'episode') {
        turnIdx = Math.max(0, Math.min(turnIds.length - 1, turnIdx + (e.key === ']' ? 1 : -1)));
        scrollTo(turnIds[turnIdx]);
        return true;
      }
      return false;
    },
  };
}
