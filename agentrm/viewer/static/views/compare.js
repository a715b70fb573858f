// Two runs, sample by sample (matched by sample id): which answers a change fixed, which it broke, and how the
// margin moved. #/compare?a=RUN&b=RUN&show=changed
import { h, api, link, go, signed, pct, badge, outcome, diverging } from '../lib.js';

const SHOW = [['changed', 'changed'], ['fixed', 'fixed'], ['broken', 'broken'], ['both_wrong', 'both wrong'], ['all', 'all']];

export async function renderCompare(el, params) {
  const info = await api('/api/info');
  const a = params.get('a') || info.runs[0], b = params.get('b') || info.runs[1] || info.runs[0];
  const show = params.get('show') || 'changed';
  const pickers = h('div', { class: 'toolbar' },
    h('label', { class: 'control' }, h('span', {}, 'A'), h('select', { id: 'cmp-a', onchange: (e) => go('compare', { a: e.target.value, b, show }) },
      info.runs.map((r) => h('option', { value: r, selected: r === a }, r)))),
    h('span', { class: 'arrow' }, '→'),
    h('label', { class: 'control' }, h('span', {}, 'B'), h('select', { id: 'cmp-b', onchange: (e) => go('compare', { a, b: e.target.value, show }) },
      info.runs.map((r) => h('option', { value: r, selected: r === b }, r)))),
    h('span', { class: 'spacer' }),
    h('div', { class: 'tabs' }, SHOW.map(([k, label]) => h('a', { class: k === show ? 'active' : '', href: link('compare', { a, b, show: k }) }, label))));
  el.append(h('div', { class: 'page-head' }, h('h1', {}, 'Compare runs')), pickers);
  if (!a || !b) { el.append(h('div', { class: 'empty' }, 'Needs two runs.')); return null; }
  const res = await api('/api/compare', { a, b });
  const c = res.counts;
  const delta = res.accuracy.a !== null && res.accuracy.b !== null ? res.accuracy.b - res.accuracy.a : null;
  el.append(h('div', { class: 'tiles' },
    tile('accuracy', `${pct(res.accuracy.a)} → ${pct(res.accuracy.b)}`, delta === null ? '' : `${delta >= 0 ? '+' : ''}${(100 * delta).toFixed(1)} pts`, delta > 0 ? 'good' : delta < 0 ? 'bad' : ''),
    tile('fixed', c.fixed, 'wrong in A, right in B', 'good'),
    tile('broken', c.broken, 'right in A, wrong in B', 'bad'),
    tile('both right', c.both_right, ''), tile('both wrong', c.both_wrong, ''),
    tile('not matched', `${res.only_a} / ${res.only_b}`, 'only in A / only in B')));
  const rows = res.rows.filter((r) => show === 'all' || (show === 'changed' ? r.change === 'fixed' || r.change === 'broken' : r.change === show));
  const scale = Math.max(1, ...rows.map((r) => Math.abs(r.delta_margin || 0)));
  const ep = (run, x) => link('episode', { run, line: x.line, lrun: run });
  el.append(h('div', { class: 'table-wrap' }, h('table', { class: 'compare', id: 'compare' },
    h('thead', {}, h('tr', {}, ['sample', 'label', 'change', 'A verdict', 'B verdict', 'A margin', 'B margin', 'Δ margin', '', 'A turns', 'B turns'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', { class: r.change },
      h('td', { class: 'sample' }, r.sample_id), h('td', {}, r.label ?? '—'),
      h('td', {}, r.change === 'fixed' ? badge('fixed', 'good') : r.change === 'broken' ? badge('broken', 'bad') : badge(r.change.replace('_', ' '), 'muted')),
      h('td', {}, h('a', { href: ep(a, r.a) }, r.a.verdict ?? '—'), ' ', outcome(r.a.correct)),
      h('td', {}, h('a', { href: ep(b, r.b) }, r.b.verdict ?? '—'), ' ', outcome(r.b.correct)),
      h('td', { class: 'num' }, signed(r.a.margin)), h('td', { class: 'num' }, signed(r.b.margin)),
      h('td', { class: 'num' }, signed(r.delta_margin)), h('td', {}, diverging(r.delta_margin, scale)),
      h('td', { class: 'num' }, r.a.num_turns), h('td', { class: 'num' }, r.b.num_turns)))
      : h('tr', {}, h('td', { colspan: 11, class: 'empty' }, 'No samples in this group.'))))));
  return null;
}

function tile(label, value, sub, kind = '') {
  return h('div', { class: `tile ${kind}` }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, String(value)),
    h('div', { class: 'tile-sub' }, sub));
}
