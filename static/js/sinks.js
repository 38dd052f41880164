// The dashboard's sinks panel: where this server sends its events (MQTT, webhooks; docs/API.md "Events"),
// whether each is connected, its last delivery and how many passages wait for it, from /api/sinks.
// Self-contained: it builds its own <section> at the end of the container it is given, polls on its own,
// and stays hidden on a server that has no sink (the default).

import { requestJson } from './connection.js';
import { element } from './dom.js';
import { formatClock, formatNumber, t } from './i18n.js';

const POLL_MS = 5000;

function buildPanel(container) {
  const section = element('section', 'panel sinks');
  section.id = 'sinks-panel';
  section.hidden = true;
  section.setAttribute('aria-labelledby', 'sinks-heading');
  const heading = element('h2', '', t('dash.sinks'));
  heading.id = 'sinks-heading';
  const table = element('table', 'recent sinks-table');
  const head = table.createTHead().insertRow();
  for (const key of ['dash.sink', 'dash.sinkState', 'dash.sinkLast', 'dash.sinkQueued']) {
    head.appendChild(element('th', '', t(key))).scope = 'col';
  }
  table.createTBody();
  const note = element('p', 'note', t('dash.sinksNote'));
  section.append(heading, table, note);
  container.appendChild(section);
  return section;
}

function lastDelivery(ms) {
  if (ms === null || ms === undefined) return t('dash.sinkNever');
  return formatClock(new Date(ms));
}

function render(section, sinks) {
  section.hidden = sinks.length === 0;
  const body = section.querySelector('tbody');
  body.replaceChildren();
  for (const sink of sinks) {
    const row = body.insertRow();
    row.dataset.sink = sink.name;
    const name = row.insertCell();
    name.append(element('strong', '', sink.name), element('br'), element('span', 'muted', sink.target));
    const state = row.insertCell();
    const badge = element('span', 'sink-state', t(sink.connected ? 'dash.sinkConnected' : 'dash.sinkDisconnected'));
    badge.dataset.connected = String(sink.connected);
    state.appendChild(badge);
    if (sink.lastError) state.append(element('br'), element('span', 'muted', sink.lastError));
    row.insertCell().textContent = lastDelivery(sink.lastDeliveryMs);
    const queued = row.insertCell();
    queued.textContent = formatNumber(sink.queued);
    queued.className = 'sink-queued';
    if (sink.dropped > 0) queued.append(element('br'), element('span', 'muted', t('dash.sinkDropped', { count: formatNumber(sink.dropped) })));
  }
}

/** Add the panel to `container` and keep it current. */
export function startSinksPanel(container) {
  const section = buildPanel(container);
  const refresh = async () => {
    try {
      const body = await requestJson('api/sinks');
      render(section, Array.isArray(body.sinks) ? body.sinks : []);
    } catch (error) {
      // The dashboard says already when the server or its token is the problem; the panel just waits.
      console.warn('dashboard: sinks not read', error);
    }
    setTimeout(refresh, POLL_MS);
  };
  refresh();
  return section;
}
