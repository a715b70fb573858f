// The viewer's entry point: a hash router (every view is a deep link: #/runs, #/samples?..., #/episode?run=&line=,
// #/pair?..., #/compare?a=&b=), global keys and the help overlay. Views render into a fresh element and may return
// {onKey(event) -> handled}.
import { h, lightboxKey, hideTip } from './lib.js';
import { renderRuns } from './views/runs.js';
import { renderSamples } from './views/samples.js';
import { renderEpisode } from './views/episode.js';
import { renderCompare } from './views/compare.js';

const ROUTES = {
  runs: renderRuns,
  samples: renderSamples,
  episode: (el, p) => renderEpisode(el, p, 'episode'),
  pair: (el, p) => renderEpisode(el, p, 'pair'),
  compare: renderCompare,
};

const KEYS = [
  ['Samples', [['j / k', 'next / previous row'], ['Enter', 'open the episode'], ['n / N', 'next / previous wrong answer'],
    ['w', 'toggle “wrong only”'], ['/', 'search'], ['← →', 'previous / next page']]],
  ['Episode & pairwise', [['j / k', 'next / previous sample of the list'], ['n / N', 'next / previous wrong answer'],
    ['p', 'switch episode ↔ pairwise view'], ['r', 'expand / collapse all reasoning'], ['[ ]', 'previous / next turn'],
    ['u or Esc', 'back to the sample table']]],
  ['Frames', [['click', 'enlarge'], ['← →', 'previous / next frame'], ['Esc', 'close']]],
];

let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return { view: path || 'runs', params: new URLSearchParams(qs || '') };
}

async function route() {
  hideTip();
  const { view, params } = parseHash();
  const render = ROUTES[view] || ROUTES.runs;
  document.querySelectorAll('#nav a').forEach((a) => {
    const v = a.dataset.view;
    a.classList.toggle('active', v === view || (v === 'samples' && (view === 'episode' || view === 'pair')));
  });
  const el = h('div', { class: `view view-${view}` });
  document.getElementById('view').replaceChildren(el);
  current = null;
  try {
    current = (await render(el, params)) || null;
  } catch (err) {
    el.append(h('div', { class: 'error-box' }, h('strong', {}, 'Could not load this view. '), String(err.message || err)));
    console.error(err);
  }
  // keys go to `current`, set only now: mark the view ready (for the hash it shows) so scripts driving the page
  // (the browser tests) wait for this instead of for the first rendered element
  el.classList.add('ready');
  el.dataset.hash = location.hash;
}

function helpPanel() {
  const sections = KEYS.map(([title, rows]) => h('section', {}, h('h3', {}, title),
    h('table', { class: 'keys' }, rows.map(([k, what]) => h('tr', {}, h('td', {}, h('kbd', {}, k)), h('td', {}, what))))));
  return h('div', { class: 'panel' }, h('h2', {}, 'Keyboard'), sections,
    h('p', { class: 'muted' }, 'Every view is a link: copy the address bar to share exactly this view.'));
}

function toggleHelp(force) {
  let help = document.getElementById('help');
  if (!help) {
    help = h('div', { id: 'help', class: 'overlay', hidden: true }, helpPanel());
    help.addEventListener('click', (e) => { if (e.target === help) toggleHelp(false); });
    document.body.append(help);
  }
  help.hidden = force === undefined ? !help.hidden : !force;
}

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (lightboxKey(e)) { e.preventDefault(); return; }
  const el = document.activeElement;
  const typing = el && (el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' ||
    (el.tagName === 'INPUT' && !['checkbox', 'radio', 'button'].includes(el.type)));
  if (typing) {
    if (e.key === 'Escape') document.activeElement.blur();
    return;
  }
  if (e.key === '?') { toggleHelp(); return; }
  if (e.key === 'Escape' && document.getElementById('help') && !document.getElementById('help').hidden) {
    toggleHelp(false); return;
  }
  if (current && current.onKey && current.onKey(e)) e.preventDefault();
});

document.getElementById('help-btn').addEventListener('click', () => toggleHelp());
window.addEventListener('hashchange', route);
route();
