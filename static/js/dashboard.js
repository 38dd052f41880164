// The operator's dashboard: today per location, the cameras connected now, compliance by hour (today) and
// by day (the chosen range), and the passages of the last minutes; all from the history API (/api/*).
//
// Live updates by polling every POLL_MS, not server-sent events: a passage reaches the history only once
// it has ended, each poll is a few small indexed reads in the server's bounded history threads, and a
// poll needs no connection held open per dashboard (nor a push path from the history writer), passes any
// proxy, and picks up again by itself after a restart of the server or a lost network.
//
// URL options: ?location=NAME, ?from=YYYY-MM-DD, ?to=YYYY-MM-DD, ?lang=en|ko, ?token=... (the operator's).

import { fetchConfig, requestJson, serverUrl } from './connection.js';
import { element } from './dom.js';
import {
  formatClock,
  formatDate,
  formatNumber,
  formatPercent,
  formatUnit,
  labelName,
  LANG,
  t,
  translatePage,
} from './i18n.js';
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { startSinksPanel } from './sinks.js';

const POLL_MS = 5000;
/** Charts narrower than this many CSS pixels (a phone) write the day axis's dates as numbers. */
const COMPACT_AXIS_WIDTH = 500;
const RECENT_MINUTES = 10;
const RECENT_LIMIT = 200;
// The newest few passages, the rest behind "show all": on a phone 60 rows are a long scroll.
const RECENT_SHOWN = 8;
const RANGE_DAYS = 30;
const DAY_MS = 86_400_000;
const CSV_LIMIT = 10_000; // the newest passages a passages CSV holds (as texts.js's dash.csvLimit says)

const byId = (id) => document.getElementById(id);
const ui = {
  updated: byId('updated'),
  filters: byId('filters'),
  location: byId('location'),
  from: byId('from'),
  to: byId('to'),
  csvSummary: byId('csv-summary'),
  csvPassages: byId('csv-passages'),
  csvLimit: byId('csv-limit'),
  notice: byId('notice'),
  todayHeading: byId('today-heading'),
  todayCards: byId('today-cards'),
  todayEmpty: byId('today-empty'),
  cameras: byId('cameras'),
  camerasEmpty: byId('cameras-empty'),
  dayHeading: byId('day-heading'),
  recentHeading: byId('recent-heading'),
  recentNote: byId('recent-note'),
  recentBody: document.querySelector('#recent tbody'),
  recentTable: byId('recent'),
  recentMore: byId('recent-more'),
  recentEmpty: byId('recent-empty'),
};

const params = new URLSearchParams(window.location.search);
const knownLocations = new Set();
const charts = {};
let config = null;
let today = null;
let filters = { location: params.get('location') ?? '', from: params.get('from'), to: params.get('to') };
// A range from the URL that is no range (reversed, or not dates): said once, the default range used.
let filterProblem = urlRangeProblem();
// Whether the range is the default one (the last RANGE_DAYS days up to today): it follows today's date,
// so that a dashboard left open past midnight shows the new day.
let defaultRange = !isDate(filters.from) && !isDate(filters.to);
let polling = null;

function urlRangeProblem() {
  const { from, to } = filters;
  const given = from !== null || to !== null;
  const bad = (from !== null && !isDate(from)) || (to !== null && !isDate(to)) || (isDate(from) && isDate(to) && to < from);
  if (!given || !bad) return null;
  filters.from = null;
  filters.to = null;
  return { key: 'dash.badRange', values: { reason: `${from || '?'} – ${to || '?'}` } };
}

/** `YYYY-MM-DD` plus `days`, in calendar days (no time zone involved). */
function addDays(isoDate, days) {
  const [year, month, day] = isoDate.split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day) + days * DAY_MS).toISOString().slice(0, 10);
}

/** A real calendar date `YYYY-MM-DD` (not 2026-02-30). */
function isDate(text) {
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const parsed = Date.parse(`${text}T00:00:00Z`);
  return !Number.isNaN(parsed) && new Date(parsed).toISOString().slice(0, 10) === text;
}

/** The offset of the server's zone from UTC at `epochMs`, in ms (from Intl: each day its own offset). */
function zoneOffsetMs(epochMs) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: today.tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(epochMs));
  const part = (type) => Number(parts.find((entry) => entry.type === type).value);
  const asUtc = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

/** The start of a date in the server's zone, as epoch seconds, with that date's own UTC offset (DST). */
function dayStartSeconds(isoDate) {
  const midnightUtc = Date.parse(`${isoDate}T00:00:00Z`);
  let guess = midnightUtc;
  try {
    // Twice: the offset at the first guess may be the other side of a change of offset.
    for (let i = 0; i < 2; i += 1) guess = midnightUtc - zoneOffsetMs(guess);
  } catch {
    guess = Date.parse(`${isoDate}T00:00:00${today.since.slice(-6)}`);
  }
  return guess / 1000;
}

/** A location as the operator reads it: the server's name of a camera given no ?location= is translated. */
function locationName(name) {
  return name === config?.unnamedLocation ? t('dash.unnamed') : name;
}

function locationQuery() {
  return filters.location ? { location: filters.location } : {};
}

function showNotice(key, values = {}) {
  ui.notice.textContent = t(key, values);
  ui.notice.hidden = false;
}

/** What a failed API read means for the operator; `null` for a failure that is not the history's. */
function noticeFor(error) {
  if (error.status === 401 || error.status === 403) return 'dash.forbidden';
  if (error.reason === 'history_off') return 'dash.historyOff';
  if (error.reason === 'history_busy') return 'dash.busy';
  if (error.reason === 'history_unavailable' || error.kind === 'unreachable') return 'dash.unreachable';
  if (error.reason === 'bad_query') return 'dash.badQuery';
  return null;
}

function api(path, query = {}) {
  return requestJson(`api/${path}`, {}, query);
}

/** A time of day in the server's zone, with its seconds or (an hour's start) without. */
function formatTime(iso, { seconds = true } = {}) {
  return formatClock(new Date(iso), { seconds, timeZone: today?.tz });
}

function formatDay(isoDate) {
  return formatDate(new Date(`${isoDate}T12:00:00Z`), {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    timeZone: 'UTC',
  });
}

function peopleOf(counts) {
  return config.labels.reduce((sum, label) => sum + (counts[label] ?? 0), 0);
}

/** The share of a bucket's or a day's people with a compliant label (/config's `compliantLabels`). */
function complianceOf(counts) {
  const people = peopleOf(counts);
  if (people === 0) return null;
  return config.compliantLabels.reduce((sum, label) => sum + (counts[label] ?? 0), 0) / people;
}

// ---- Today ------------------------------------------------------------------------------------------

function todayCard(entry) {
  const card = element('article', 'card');
  card.dataset.location = entry.location;
  card.append(element('h3', '', locationName(entry.location)));
  const rate = element('p', 'rate', formatPercent(entry.compliance));
  rate.dataset.role = 'compliance';
  card.append(rate, element('p', 'rate-label', t('dash.compliance')));
  const figures = element('dl', 'figures');
  const add = (key, name, value) => {
    const item = element('div');
    if (key !== 'people') item.dataset.label = key;
    item.dataset.key = key;
    item.append(element('dt', '', name), element('dd', '', formatNumber(value)));
    figures.append(item);
  };
  add('people', t('dash.people'), entry.people);
  for (const label of config.labels) add(label, labelName(label, config), entry[label] ?? 0);
  card.append(figures);
  return card;
}

function showToday() {
  ui.todayHeading.textContent = t('dash.today', { date: formatDay(today.date) });
  const shown = today.locations.filter((entry) => !filters.location || entry.location === filters.location);
  ui.todayCards.replaceChildren(...shown.map(todayCard));
  ui.todayEmpty.textContent = t('dash.noPassages');
  ui.todayEmpty.hidden = shown.length > 0;
}

// ---- Cameras now ------------------------------------------------------------------------------------

function showCameras(live) {
  const cameras = live.cameras.filter((camera) => !filters.location || camera.location === filters.location);
  ui.cameras.replaceChildren(
    ...cameras.map((camera) => {
      const item = element('li');
      item.dataset.location = camera.location;
      const name = element('span', '', locationName(camera.location));
      const verdict = element(
        'span',
        'verdict',
        camera.verdict ? labelName(camera.verdict, config) : t('dash.verdict.none'),
      );
      if (camera.verdict) verdict.dataset.label = camera.verdict;
      const detail = element(
        'span',
        'muted',
        `${t('dash.cameraFaces', { count: formatNumber(camera.faces) })} · ` +
          t('dash.cameraSince', { time: formatTime(camera.since) }),
      );
      item.append(name, verdict, detail);
      return item;
    }),
  );
  ui.camerasEmpty.hidden = cameras.length > 0;
}

// ---- Charts -----------------------------------------------------------------------------------------

/** Buckets of one location, or of all of them summed, oldest first: [{start, counts}]. */
function combine(buckets) {
  const byStart = new Map();
  for (const bucket of buckets) {
    if (filters.location && bucket.location !== filters.location) continue;
    const key = Date.parse(bucket.start);
    const entry = byStart.get(key) ?? { start: bucket.start, at: key, counts: {} };
    for (const label of config.labels) entry.counts[label] = (entry.counts[label] ?? 0) + (bucket[label] ?? 0);
    byStart.set(key, entry);
  }
  return [...byStart.values()].sort((a, b) => a.at - b.at);
}

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chartOptions(kind, range, width) {
  const text = themeColour('--text-muted');
  const grid = themeColour('--grid');
  const accent = themeColour('--accent');
  const good = themeColour('--with-mask');
  const tick = (seconds) =>
    kind === 'hour'
      ? formatDate(new Date(seconds * 1000), { hour: 'numeric', timeZone: today.tz })
      : formatDate(new Date(seconds * 1000), { month: 'short', day: 'numeric', timeZone: today.tz });
  // On a phone the written-out dates of the day axis ("11월 12일") run into each other: numbers there.
  const compactDay = (seconds) =>
    formatDate(new Date(seconds * 1000), { month: 'numeric', day: 'numeric', timeZone: today.tz });
  const axisTick = (u) => (kind === 'day' && u.width < COMPACT_AXIS_WIDTH ? compactDay : tick);
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), today.tz),
    scales: {
      x: { time: true, range: () => range },
      rate: { range: () => [0, 100] },
      people: { range: (u, min, max) => [0, Math.max(1, max ?? 1)] },
    },
    axes: [
      // Wide enough apart that dates written out in Korean do not run into each other on a phone.
      { ...axis, space: kind === 'hour' ? 50 : 80, values: (u, splits) => splits.map(axisTick(u)) },
      { ...axis, scale: 'rate', label: t('dash.rateAxis'), values: (u, splits) => splits.map((v) => `${v}%`) },
      { ...axis, scale: 'people', side: 1, label: t('dash.peopleAxis'), grid: { show: false } },
    ],
    series: [
      {
        label: kind === 'hour' ? t('dash.hour') : t('dash.day'),
        value: (u, seconds) => (seconds == null ? '–' : tick(seconds)),
      },
      {
        label: t('dash.peopleAxis'),
        scale: 'people',
        stroke: accent,
        fill: `${accent}55`,
        paths: uPlot.paths.bars({ size: [0.6, 48] }),
        points: { show: false },
        value: (u, v) => formatNumber(v),
      },
      {
        label: t('dash.rateAxis'),
        scale: 'rate',
        stroke: good,
        width: 2,
        // Points only: a line would invent a rate for the hours or days without anyone in between.
        paths: () => null,
        points: { show: true, size: 9, fill: good },
        value: (u, v) => (v == null ? '–' : `${formatNumber(v, 0)}%`),
      },
    ],
    // Series names only: the values at the cursor read as missing data ("–") and cannot be hovered on a
    // phone; the caption and the table carry the figures.
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
  };
}

function chartTable(table, kind, rows) {
  const head = element('tr');
  for (const name of [kind === 'hour' ? t('dash.hour') : t('dash.day'), t('dash.people'), t('dash.compliance')]) {
    const cell = element('th', '', name);
    cell.scope = 'col';
    head.append(cell);
  }
  for (const label of config.labels) {
    const cell = element('th', '', labelName(label, config));
    cell.scope = 'col';
    head.append(cell);
  }
  const body = rows.map((row) => {
    const line = element('tr');
    const when =
      kind === 'hour' ? formatTime(row.start, { seconds: false }) : formatDay(row.start.slice(0, 10));
    line.append(
      element('th', '', when),
      element('td', '', formatNumber(peopleOf(row.counts))),
      element('td', '', formatPercent(complianceOf(row.counts))),
      ...config.labels.map((label) => element('td', '', formatNumber(row.counts[label]))),
    );
    return line;
  });
  table.replaceChildren(element('thead'), element('tbody'));
  table.tHead.append(head);
  table.tBodies[0].append(...body);
}

/** One chart (`hour` or `day`) of `rows` over `range` [from, to] in epoch seconds, and its text. */
function drawChart(kind, rows, range, caption) {
  const figure = byId(`chart-${kind}`);
  const canvas = figure.querySelector('.chart-canvas');
  const data = [
    rows.map((row) => row.at / 1000),
    rows.map((row) => peopleOf(row.counts)),
    rows.map((row) => {
      const share = complianceOf(row.counts);
      return share === null ? null : Math.round(share * 1000) / 10;
    }),
  ];
  const key = JSON.stringify([data, range, LANG]);
  figure.dataset.points = String(rows.length);
  figure.querySelector('.chart-caption').textContent = caption;
  chartTable(byId(`table-${kind}`), kind, rows);
  const existing = charts[kind];
  if (existing?.key === key) return;
  existing?.plot.destroy();
  const width = Math.max(240, canvas.clientWidth || figure.clientWidth);
  charts[kind] = { key, plot: new uPlot(chartOptions(kind, range, width), data, canvas), rows, range, caption };
}

function resizeCharts() {
  for (const [kind, chart] of Object.entries(charts)) {
    const canvas = byId(`chart-${kind}`).querySelector('.chart-canvas');
    chart.plot.setSize({ width: Math.max(240, canvas.clientWidth), height: 220 });
  }
}

function redrawCharts() {
  for (const [kind, chart] of Object.entries(charts)) {
    chart.key = null;
    drawChart(kind, chart.rows, chart.range, chart.caption);
  }
}

function totalCaption(rows, from, to) {
  const counts = {};
  for (const row of rows) for (const label of config.labels) counts[label] = (counts[label] ?? 0) + row.counts[label];
  return t('dash.rangeTotal', {
    from: formatDay(from),
    to: formatDay(to),
    people: formatNumber(peopleOf(counts)),
    rate: formatPercent(complianceOf(counts)),
  });
}

// ---- Passages of the last minutes -------------------------------------------------------------------

let recentExpanded = false;
let lastRecent = null;

function toggleRecent() {
  recentExpanded = !recentExpanded;
  if (lastRecent) showRecent(lastRecent);
}

function showRecent(result) {
  ui.recentHeading.textContent = t('dash.recent', { minutes: formatNumber(RECENT_MINUTES) });
  ui.recentNote.textContent = t('dash.recentNote', { seconds: formatNumber(POLL_MS / 1000) });
  if (result.privacy) {
    ui.recentTable.hidden = true;
    ui.recentEmpty.textContent = t('dash.privacy');
    ui.recentEmpty.hidden = false;
    ui.csvPassages.hidden = true;
    ui.csvLimit.hidden = true;
    return;
  }
  ui.csvPassages.hidden = false;
  ui.csvLimit.hidden = false;
  const rows = result.passages.map((passage) => {
    const line = element('tr');
    const verdict = element('td', 'verdict', labelName(passage.label, config));
    verdict.dataset.label = passage.label;
    line.append(
      element('td', '', formatTime(passage.time)),
      element('td', '', locationName(passage.location)),
      verdict,
      element('td', '', formatUnit(passage.seconds, 1, 'unit.seconds')),
    );
    return line;
  });
  ui.recentBody.replaceChildren(...(recentExpanded ? rows : rows.slice(0, RECENT_SHOWN)));
  ui.recentMore.hidden = rows.length <= RECENT_SHOWN;
  ui.recentMore.textContent = recentExpanded
    ? t('dash.showFewer', { count: formatNumber(RECENT_SHOWN) })
    : t('dash.showMore', { count: formatNumber(rows.length) });
  lastRecent = result;
  ui.recentTable.hidden = rows.length === 0;
  ui.recentEmpty.textContent = t('dash.noRecent', { minutes: formatNumber(RECENT_MINUTES) });
  ui.recentEmpty.hidden = rows.length > 0;
}

// ---- Filters, links and the poll --------------------------------------------------------------------

function rangeQuery() {
  return { since: filters.from, until: addDays(filters.to, 1), ...locationQuery() };
}

function showLocations() {
  const chosen = filters.location;
  if (chosen) knownLocations.add(chosen);
  const options = [...knownLocations].sort((a, b) => a.localeCompare(b, LANG));
  const current = [...ui.location.options].slice(1).map((option) => option.value);
  if (JSON.stringify(current) !== JSON.stringify(options)) {
    for (const option of [...ui.location.options].slice(1)) option.remove();
    for (const name of options) ui.location.append(new Option(locationName(name), name));
  }
  ui.location.value = chosen;
}

function showLinks() {
  ui.csvSummary.href = serverUrl('api/summary.csv', { bucket: 'day', ...rangeQuery() });
  ui.csvPassages.href = serverUrl('api/passages.csv', { ...rangeQuery(), limit: String(CSV_LIMIT) });
}

function readFilters() {
  const from = ui.from.value;
  const to = ui.to.value;
  if (!isDate(from) || !isDate(to) || to < from) {
    showNotice('dash.badRange', { reason: `${from || '?'} – ${to || '?'}` });
    return false;
  }
  // Showing the default range again keeps it the default (it goes on following today's date).
  defaultRange = today !== null && to === today.date && from === addDays(today.date, -(RANGE_DAYS - 1));
  filters = { location: ui.location.value, from, to };
  filterProblem = null;
  const url = new URL(window.location.href);
  for (const [name, value] of Object.entries({ location: filters.location, from, to })) {
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
  }
  window.history.replaceState(null, '', url);
  return true;
}

/** The filters' dates once today is known: the default range ends today; a chosen one is kept. */
function settleRange() {
  for (const entry of today.locations) knownLocations.add(entry.location);
  if (defaultRange) filters.from = null;
  if (defaultRange || !isDate(filters.to)) filters.to = today.date;
  if (!isDate(filters.from)) filters.from = addDays(filters.to, -(RANGE_DAYS - 1));
  ui.from.value = filters.from;
  ui.to.value = filters.to;
}

/** Today by hour and the range by day, from /api/summary. */
async function drawCharts() {
  const [hours, days] = await Promise.all([
    api('summary', { bucket: 'hour', since: today.date, until: addDays(today.date, 1), ...locationQuery() }),
    api('summary', { bucket: 'day', ...rangeQuery() }),
  ]);
  for (const bucket of days.buckets) knownLocations.add(bucket.location);
  const hourRows = combine(hours.buckets);
  drawChart('hour', hourRows, [dayStartSeconds(today.date), dayStartSeconds(addDays(today.date, 1))],
    totalCaption(hourRows, today.date, today.date));
  const dayRows = combine(days.buckets);
  drawChart('day', dayRows, [dayStartSeconds(filters.from), dayStartSeconds(addDays(filters.to, 1))],
    totalCaption(dayRows, filters.from, filters.to));
}

/** The passages of the last RECENT_MINUTES; a privacy-mode server keeps none. */
async function loadRecent() {
  const since = new Date(Date.now() - RECENT_MINUTES * 60_000).toISOString();
  try {
    const recent = await api('passages', { since, limit: String(RECENT_LIMIT), ...locationQuery() });
    showRecent({ passages: recent.passages });
  } catch (error) {
    if (error.reason !== 'counts_only') throw error;
    showRecent({ privacy: true });
  }
}

/** The first problem of a refresh (or of the filters) in the notice; the history panels hidden without history. */
function showProblem(problem) {
  document.body.dataset.state = problem ? problem.key.replace('dash.', '') : 'ok';
  if (problem) showNotice(problem.key, problem.values);
  else ui.notice.hidden = true;
  for (const hidden of document.querySelectorAll('.panel[data-needs-history]')) {
    hidden.hidden = problem?.key === 'dash.historyOff';
  }
}

/** Every panel once: each step that fails notes its problem and the others still show. */
async function refresh() {
  let problem = null;
  const attempt = async (step) => {
    try {
      await step();
    } catch (error) {
      const key = noticeFor(error);
      if (!key) throw error;
      problem ??= { key, values: { reason: error.message } };
    }
  };
  await attempt(async () => {
    today = await api('today');
  });
  await attempt(async () => showCameras(await api('live')));
  if (today) {
    settleRange();
    showToday();
    showLinks();
    ui.dayHeading.textContent = t('dash.byDay', { from: formatDay(filters.from), to: formatDay(filters.to) });
    await attempt(drawCharts);
    await attempt(loadRecent);
  }
  showLocations();
  showProblem(problem ?? filterProblem);
  ui.updated.textContent = t('dash.updated', { time: formatTime(new Date().toISOString()) });
}

function schedule() {
  clearTimeout(polling);
  polling = setTimeout(async () => {
    await poll();
  }, POLL_MS);
}

async function poll() {
  try {
    config ??= await fetchConfig();
    await refresh();
  } catch (error) {
    showNotice(noticeFor(error) ?? 'dash.unreachable', { reason: error.message });
    console.warn('dashboard: refresh failed', error);
  }
  schedule();
}

async function init() {
  translatePage();
  for (const link of [byId('lang-en'), byId('lang-ko')]) {
    const url = new URL(window.location.href);
    url.searchParams.set('lang', link.hreflang);
    link.href = url.toString();
    if (link.hreflang === LANG) link.setAttribute('aria-current', 'true');
  }
  ui.recentMore.addEventListener('click', toggleRecent);
  ui.filters.addEventListener('submit', (event) => {
    event.preventDefault();
    if (readFilters()) poll();
  });
  window.addEventListener('resize', resizeCharts);
  window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', redrawCharts);
  startSinksPanel(document.querySelector('main.dash'));
  await poll();
}

init();
