// Runs (one JSONL file each): accuracy against the labels, mean reward and |margin|, turns and frames per episode,
// how episodes ended, and small histograms. Tick two runs to compare them sample by sample.
import { h, api, link, go, fmt, pct, meter, histogram, badge } from '../lib.js';

export async function renderRuns(el) {
  const runs = await api('/api/runs');
  const picked = [];
  const compareBtn = h('button', { class: 'primary', disabled: true, id: 'compare-btn',
    onclick: () => go('compare', { a: picked[0], b: picked[1] }) }, 'Compare 2 runs');
  const pick = (run, box) => {
    if (box.checked) { picked.push(run); if (picked.length > 2) { const old = picked.shift(); el.querySelector(`input[data-run="${CSS.escape(old)}"]`).checked = false; } }
    else picked.splice(picked.indexOf(run), 1);
    compareBtn.disabled = picked.length !== 2;
    compareBtn.textContent = picked.length === 2 ? `Compare ${picked[0]} → ${picked[1]}` : 'Compare 2 runs';
  };
  if (!runs.length) {
    el.append(h('div', { class: 'empty' }, 'No .jsonl trace files found under this folder.'));
    return null;
  }
  el.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Runs'), h('span', { class: 'muted' }, `${runs.length} run${runs.length > 1 ? 's' : ''} · one JSONL file each`),
      h('span', { class: 'spacer' }), compareBtn),
    h('div', { class: 'table-wrap' }, h('table', { class: 'runs', id: 'runs' },
      h('thead', {}, h('tr', {}, ['', 'run', 'samples', 'accuracy', 'per dimension', 'mean reward', 'mean |margin|',
        'turns / ep', 'frames / ep', 'ended', 'turns', 'frames', 'margin'].map((c) => h('th', {}, c)))),
      h('tbody', {}, runs.map((r) => h('tr', {},
        h('td', {}, h('input', { type: 'checkbox', dataset: { run: r.run }, onchange: (e) => pick(r.run, e.target), title: 'pick for comparison' })),
        h('td', {}, h('a', { href: link('samples', { run: r.run }), class: 'run-name' }, r.run),
          h('div', { class: 'muted small' }, r.modes || ''), h('a', { class: 'small', href: `/files/${encodeURI(r.run)}.jsonl`, title: 'raw JSONL' }, 'raw')),
        h('td', { class: 'num' }, r.n, r.corrupt ? h('div', {}, h('a', { href: link('samples', { run: r.run, termination: 'corrupt' }) }, badge(`${r.corrupt} bad line${r.corrupt > 1 ? 's' : ''}`, 'bad'))) : null),
        h('td', {}, h('div', { class: 'acc' }, h('strong', {}, pct(r.acc)), meter(r.acc)),
          h('div', { class: 'muted small' }, `${r.labelled} labelled · `, h('a', { href: link('samples', { run: r.run, wrong: '1' }) }, 'wrong ones'))),
        h('td', {}, h('div', { class: 'dims' }, Object.entries(r.dim_accuracy).map(([d, acc]) => h('span', { class: 'dim-acc', title: `${d} accuracy` }, h('span', {}, d), pct(acc))))),
        h('td', { class: 'num' }, fmt(r.reward, 3)),
        h('td', { class: 'num' }, fmt(r.abs_margin, 3)),
        h('td', { class: 'num' }, fmt(r.turns, 2)),
        h('td', { class: 'num' }, fmt(r.frames, 1)),
        h('td', {}, Object.entries(r.terminations).map(([k, n]) => h('div', { class: 'small' }, k === 'answer' ? k : badge(k, 'warn'), ` ${n}`)),
          r.with_tool_errors ? h('div', { class: 'small' }, h('a', { href: link('samples', { run: r.run, tool_errors: '1' }) }, `${r.with_tool_errors} with tool errors`)) : null),
        h('td', {}, histogram(r.hist_turns, { title: 'turns', width: 96 })),
        h('td', {}, histogram(r.hist_frames, { title: 'frames', color: '#59a14f', width: 96 })),
        h('td', {}, histogram(r.hist_margin, { title: 'margin', color: '#4e79a7', zero: true, width: 96 }))))))),
    h('p', { class: 'hint' }, 'Accuracy: the overall dimension’s verdict equals the human label (unanswered episodes count as wrong). ' +
      'Margin: reward of video 1 minus video 2 on the overall dimension.'));
  return null;
}
