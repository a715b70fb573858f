// The sample table: filters, sortable columns (per-dimension rewards included), paging and keyboard navigation.
// Its state lives in the URL (#/samples?run=&wrong=1&sort=m.OA&desc=1...), so every filtered list is a link, and the
// episode view carries the same list along so its j/k/n keys walk this list.
import { h, api, link, go, fmt, signed, outcome, diverging, badge } from '../lib.js';

export const FILTER_KEYS = ['wrong', 'label', 'margin_min', 'margin_max', 'turns_min', 'turns_max', 'tool_errors',
  'termination', 'q'];
export const PAGE = 100;
const ALL = '*';

// The list a view was opened from: filters, sort and page, with its run under `runKey`.
export function listState(params, runKey = 'run') {
  const st = { run: params.get(runKey) || '' };
  for (const k of [...FILTER_KEYS, 'sort', 'desc', 'offset']) if (params.get(k)) st[k] = params.get(k);
  return st;
}
export const apiFilters = (st) => {
  const out = { run: st.run === ALL ? '' : st.run };
  for (const k of [...FILTER_KEYS, 'sort', 'desc']) if (st[k]) out[k] = st[k];
  return out;
};
export function episodeParams(st, run, line, pos) {
  const { run: lrun, ...rest } = st;
  const offset = pos === undefined || pos === null ? rest.offset : String(Math.floor(pos / PAGE) * PAGE);
  return { run, line, lrun, ...rest, offset };
}

function columns(facets, allRuns) {
  const pairwise = facets.videos >= 2;
  const cols = [
    { label: '#', sort: 'line', cls: 'num', cell: (r) => r.line },
    allRuns ? { label: 'run', sort: 'run', cell: (r) => r.run } : null,
    { label: 'sample', sort: 'sample_id', cls: 'sample', cell: (r) => r.sample_id || '—' },
    { label: 'outcome', sort: 'correct', cell: (r) => outcome(r.correct, r.status) },
    { label: 'label', sort: 'label', cell: (r) => r.label ?? '—' },
    { label: 'verdict', sort: 'verdict', cell: (r) => r.verdict ?? '—' },
    pairwise ? { label: 'margin', sort: 'margin', cls: 'num', title: 'reward(video 1) − reward(video 2), overall dim',
      cell: (r) => h('span', { class: 'with-bar' }, signed(r.margin), diverging(r.margin, 2)) } : null,
    ...facets.dims.map((d) => {
      const key = pairwise ? `m.${d}` : `r1.${d}`;
      return { label: pairwise ? `Δ${d}` : `r ${d}`, sort: key, cls: 'num dim',
        title: pairwise ? `${d}: reward(video 1) − reward(video 2)` : `${d} reward`,
        cell: (r) => {
          const v = r.scores[key];
          const ok = r.scores[`c.${d}`];
          return h('span', { class: ok === 0 ? 'dim-wrong' : '', title: pairwise && v !== undefined
            ? `${d}: ${fmt(r.scores[`r1.${d}`], 3)} vs ${fmt(r.scores[`r2.${d}`], 3)}${ok === 0 ? ' (verdict ≠ label)' : ''}`
            : '' }, pairwise ? signed(v) : fmt(v));
        } };
    }),
    { label: 'turns', sort: 'turns', cls: 'num', cell: (r) => r.num_turns ?? '—' },
    { label: 'frames', sort: 'frames', cls: 'num', cell: (r) => r.frames_viewed ?? '—' },
    { label: 'tool err', sort: 'tool_errors', cls: 'num',
      cell: (r) => (r.tool_errors ? badge(String(r.tool_errors), 'warn') : r.tool_errors ?? '—') },
    { label: 'end', sort: 'termination', cell: (r) => (r.termination && r.termination !== 'answer'
      ? badge(r.termination, 'warn') : r.termination || '—') },
  ];
  return cols.filter(Boolean);
}

function control(label, input) { return h('label', { class: 'control' }, h('span', {}, label), input); }

export async function renderSamples(el, params) {
  const info = await api('/api/info');
  const st = listState(params);
  if (!st.run) st.run = info.runs[0] || ALL;
  let offset = Number(st.offset || 0), sel = params.get('sel'), rows = [], total = 0;
  const facets = await api('/api/facets', { run: st.run === ALL ? '' : st.run });
  const cols = columns(facets, st.run === ALL);

  const sync = () => {
    history.replaceState(null, '', link('samples', { ...st, offset: offset || '', sel }));
  };
  const set = (k, v) => { if (v === '' || v === false || v === null) delete st[k]; else st[k] = v; offset = 0; reload(); };
  const num = (k, ph) => h('input', { type: 'number', step: 'any', placeholder: ph, value: st[k] || '', class: 'num-input',
    onchange: (e) => set(k, e.target.value) });
  const select = (k, options, any = 'any') => h('select', { onchange: (e) => set(k, e.target.value) },
    h('option', { value: '' }, any), options.map((o) => h('option', { value: o, selected: st[k] === o }, o)));
  let timer = null;
  const search = h('input', { type: 'search', placeholder: 'search text…  (/)', value: st.q || '', class: 'search',
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => set('q', e.target.value.trim()), 250); } });
  const wrong = h('input', { type: 'checkbox', checked: !!st.wrong, id: 'f-wrong', onchange: (e) => set('wrong', e.target.checked ? '1' : '') });
  const runSel = h('select', { id: 'f-run', onchange: (e) => { go('samples', { run: e.target.value }); } },
    info.runs.map((r) => h('option', { value: r, selected: r === st.run }, r)),
    h('option', { value: ALL, selected: st.run === ALL }, '(all runs)'));

  const count = h('span', { class: 'count' });
  // every sort key, per-dimension rewards of each video included (the columns show the margins)
  const sortKeys = [['line', 'line'], ['margin', 'margin'], ['abs_margin', '|margin|'], ['reward', 'mean reward'],
    ['turns', 'turns'], ['frames', 'frames'], ['tool_errors', 'tool errors'], ['sample_id', 'sample id'],
    ...facets.dims.flatMap((d) => [...(facets.videos >= 2 ? [[`m.${d}`, `Δ ${d}`]] : []),
      ...Array.from({ length: Math.max(1, facets.videos) }, (_, i) => [`r${i + 1}.${d}`, `reward v${i + 1} ${d}`])])];
  const sortSelect = h('select', { id: 'f-sort', onchange: (e) => { st.sort = e.target.value; offset = 0; reload(); } },
    sortKeys.map(([k, label]) => h('option', { value: k, selected: (st.sort || 'line') === k }, label)));
  const descBox = h('label', { class: 'control check', title: 'descending' }, h('input', { type: 'checkbox',
    checked: !!st.desc, onchange: (e) => { if (e.target.checked) st.desc = '1'; else delete st.desc; offset = 0; reload(); } }), h('span', {}, 'desc'));
  const heads = cols.map((c) => h('th', {
    class: `${c.cls || ''} sortable`, title: c.title || `sort by ${c.label}`,
    onclick: () => {
      if ((st.sort || 'line') === c.sort) { if (st.desc) delete st.desc; else st.desc = '1'; } else { st.sort = c.sort; delete st.desc; }
      offset = 0; reload();
    },
  }, c.label));
  const thead = h('thead', {}, h('tr', {}, heads));
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });

  el.append(
    h('div', { class: 'toolbar' },
      control('Run', runSel),
      h('label', { class: 'control check', for: 'f-wrong' }, wrong, h('span', {}, 'wrong only')),
      control('Label', select('label', facets.labels)),
      control('Margin', h('span', { class: 'range' }, num('margin_min', 'min'), '–', num('margin_max', 'max'))),
      control('Turns', h('span', { class: 'range' }, num('turns_min', 'min'), '–', num('turns_max', 'max'))),
      h('label', { class: 'control check' }, h('input', { type: 'checkbox', checked: !!st.tool_errors,
        onchange: (e) => set('tool_errors', e.target.checked ? '1' : '') }), h('span', {}, 'tool errors')),
      control('End', select('termination', [...facets.terminations, ...(facets.corrupt ? ['corrupt'] : [])])),
      control('Sort', sortSelect), descBox, search, count),
    h('div', { class: 'table-wrap' }, h('table', { class: 'samples', id: 'samples' }, thead, tbody)),
    pager,
    h('p', { class: 'hint' }, h('kbd', {}, 'j'), '/', h('kbd', {}, 'k'), ' move · ', h('kbd', {}, 'Enter'), ' open · ',
      h('kbd', {}, 'n'), ' next wrong · ', h('kbd', {}, '?'), ' all keys'));

  const key = (r) => `${r.run}:${r.line}`;
  const open = (r) => go('episode', episodeParams(st, r.run, r.line, offset + rows.indexOf(r)));
  const selIndex = () => rows.findIndex((r) => key(r) === sel);

  function paint() {
    sortSelect.value = st.sort || 'line';
    descBox.querySelector('input').checked = !!st.desc;
    cols.forEach((c, i) => {
      const on = (st.sort || 'line') === c.sort;
      heads[i].classList.toggle('asc', on && !st.desc);
      heads[i].classList.toggle('desc', on && !!st.desc);
    });
    tbody.replaceChildren(...rows.map((r) => {
      const tr = h('tr', {
        class: `${r.status !== 'ok' ? 'error-row' : r.correct === 0 ? 'wrong' : ''}${key(r) === sel ? ' selected' : ''}`,
        dataset: { key: key(r) }, onclick: () => { sel = key(r); mark(); sync(); }, ondblclick: () => open(r),
      });
      if (r.status !== 'ok') {
        tr.append(h('td', { class: 'num' }, r.line), h('td', { class: 'sample' }, r.sample_id || '—'),
          h('td', {}, outcome(null, r.status)), h('td', { class: 'error-text', colspan: cols.length - (st.run === ALL ? 4 : 3) }, r.error));
        if (st.run === ALL) tr.children[1].before(h('td', {}, r.run));
        return tr;
      }
      cols.forEach((c) => {
        const v = c.cell(r);
        tr.append(h('td', { class: c.cls || '' }, c.label === 'sample'
          ? h('a', { href: link('episode', episodeParams(st, r.run, r.line, offset + rows.indexOf(r))) }, v) : v));
      });
      return tr;
    }));
    count.textContent = `${total} sample${total === 1 ? '' : 's'}`;
    pager.replaceChildren(
      h('button', { disabled: offset === 0, onclick: () => page(-1) }, '← prev'),
      h('span', {}, total ? `${offset + 1}–${Math.min(total, offset + PAGE)} of ${total}` : 'no samples match'),
      h('button', { disabled: offset + PAGE >= total, onclick: () => page(1) }, 'next →'));
  }
  function mark() {
    for (const tr of tbody.children) tr.classList.toggle('selected', tr.dataset.key === sel);
    const tr = tbody.querySelector('tr.selected');
    if (tr) tr.scrollIntoView({ block: 'nearest' });
  }
  async function reload() {
    const res = await api('/api/traces', { ...apiFilters(st), limit: PAGE, offset });
    rows = res.rows; total = res.total;
    if (selIndex() < 0) sel = rows.length ? key(rows[0]) : null;
    paint(); mark(); sync();
  }
  async function page(d) {
    const next = offset + d * PAGE;
    if (next < 0 || next >= total) return false;
    offset = next; sel = null; await reload(); return true;
  }
  async function move(d) {
    const i = selIndex();
    if (i + d >= 0 && i + d < rows.length) { sel = key(rows[i + d]); mark(); sync(); return; }
    if (await page(d)) { sel = key(rows[d > 0 ? 0 : rows.length - 1]); mark(); sync(); }
  }
  async function nextWrong(d) {
    for (let guard = 0; guard < 200; guard++) {
      const i = selIndex();
      for (let j = i + d; j >= 0 && j < rows.length; j += d) {
        if (rows[j].correct === 0) { sel = key(rows[j]); mark(); sync(); return; }
      }
      if (!(await page(d))) return;
      sel = key(rows[d > 0 ? 0 : rows.length - 1]);
      if (rows.length && (d > 0 ? rows[0] : rows[rows.length - 1]).correct === 0) { mark(); sync(); return; }
    }
  }

  await reload();
  return {
    onKey(e) {
      const r = rows[selIndex()];
      switch (e.key) {
        case 'j': case 'ArrowDown': move(1); return true;
        case 'k': case 'ArrowUp': move(-1); return true;
        case 'Enter': case 'o': if (r) open(r); return true;
        case 'n': nextWrong(1); return true;
        case 'N': nextWrong(-1); return true;
        case 'w': wrong.click(); return true;
        case '/': search.focus(); return true;
        case 'ArrowRight': page(1); return true;
        case 'ArrowLeft': page(-1); return true;
        default: return false;
      }
    },
  };
}
