// gantry dashboard: polls the JSON API once a second and re-renders in place.
// No framework: every value from the API goes into the page through textContent or
// setAttribute, never through innerHTML (rules and labels are user input).
'use strict';
(() => {
  const POLL_MS = 1000;          // one poll a second: never more often
  const FETCH_TIMEOUT_MS = 1500; // a slow poll is abandoned, so polls are never 2 s apart
  const MAX_PAGES = 50;
  const TOKEN_KEY = 'gantry.token';
  const DASH = '–';

  window.__gantryRenders = 0;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) add(el, k);
      else if (k instanceof Node) el.appendChild(k);
      else el.appendChild(document.createTextNode(String(k)));
    }
  }

  // ---------------------------------------------------------------- formatting
  const nf = new Intl.NumberFormat('en-US');
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const str = (v) => (v === null || v === undefined ? '' : String(v));
  const arr = (v) => (Array.isArray(v) ? v : []);
  const fmtInt = (v) => (isNum(v) ? nf.format(Math.round(v)) : DASH);
  function fmtRate(v) {
    if (!isNum(v)) return DASH;
    if (v === 0) return '0';
    if (v < 10) return v.toFixed(2);
    if (v < 1000) return v.toFixed(1);
    return nf.format(Math.round(v));
  }
  const fmtPct = (v) => (isNum(v) ? (v * 100).toFixed(1) + '%' : DASH);
  function fmtMs(v) {
    if (!isNum(v)) return DASH;
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return nf.format(Math.round(v));
  }
  function ago(ts) {
    const t = Date.parse(ts);
    if (!Number.isFinite(t)) return DASH;
    const s = Math.max(0, (Date.now() - t) / 1000);
    if (s < 1) return 'just now';
    if (s < 60) return Math.floor(s) + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  const timeEl = (ts) => (ts ? h('time', { datetime: ts, title: ts, 'data-ago': ts }, ago(ts)) : DASH);
  function errRateCell(v) {
    const cls = !isNum(v) || v === 0 ? 'num' : v >= 0.05 ? 'num bad-text' : 'num warn-text';
    return h('td', { class: cls }, fmtPct(v));
  }
  const num = (v, fmt) => h('td', { class: 'num' }, fmt(v));

  function statusBadge(status) {
    const s = str(status) || 'unknown';
    const cls = s === 'enabled' ? 'ok' : s === 'warning' ? 'warn' : s === 'disabled' ? 'bad' : 'muted';
    return h('span', { class: 'badge ' + cls }, s);
  }
  function healthBadge(health) {
    const s = str(health) || 'UNKNOWN';
    const cls = s === 'UP' ? 'ok' : s === 'DOWN' ? 'bad' : s === 'DRAINING' ? 'warn' : 'muted';
    return h('span', { class: 'badge solid ' + cls }, s);
  }
  function errorList(errors) {
    const list = arr(errors);
    if (!list.length) return null;
    return h('ul', { class: 'errs' }, list.map((e) => h('li', null, str(e))));
  }
  function codeChips(codes) {
    const entries = Object.entries(codes && typeof codes === 'object' ? codes : {});
    if (!entries.length) return h('span', { class: 'muted' }, 'no calls yet');
    entries.sort((a, b) => (b[1] || 0) - (a[1] || 0));
    return h('span', { class: 'chips' }, entries.map(([code, n]) => {
      const good = code === 'OK' || /^HTTP [23]/.test(code);
      return h('span', { class: 'chip ' + (good ? 'ok' : 'bad') }, code + ' ', h('b', null, fmtInt(n)));
    }));
  }
  // Router.service is usually the bare name; the services API names it name@provider.
  function serviceRef(service, provider) {
    const s = str(service);
    return s.includes('@') || !provider ? s : s + '@' + provider;
  }
  const serviceHref = (name) => '#/services/' + encodeURIComponent(name);
  const routersHref = (q) => '#/routers?q=' + encodeURIComponent(q);
  const contains = (q, ...vals) => vals.some((v) => str(v).toLowerCase().includes(q));

  // ---------------------------------------------------------------- sortable tables
  const sortState = {
    routers: { key: 'name', dir: 1 },
    errors: { key: 'severity', dir: 1 },
  };
  function cmp(a, b) {
    const an = a === null || a === undefined || a === '';
    const bn = b === null || b === undefined || b === '';
    if (an || bn) return an && bn ? 0 : an ? 1 : -1; // blanks last
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
  }
  function sortRows(table, cols, rows) {
    const st = sortState[table];
    const col = cols.find((c) => c.key === st.key);
    if (!col || !col.val) return rows;
    return rows.map((r, i) => [r, i])
      .sort((x, y) => cmp(col.val(x[0]), col.val(y[0])) * st.dir || x[1] - y[1])
      .map((x) => x[0]);
  }
  function thead(table, cols) {
    const st = table ? sortState[table] : null;
    return h('thead', null, h('tr', null, cols.map((c) => {
      const sortable = st && c.val;
      const active = sortable && st.key === c.key;
      return h('th', {
        class: [c.num ? 'num' : '', sortable ? 'sortable' : '', active ? 'sorted' : ''].join(' ').trim() || null,
        'data-sort-table': sortable ? table : null,
        'data-sort-key': sortable ? c.key : null,
        title: c.title || (sortable ? 'Sort by ' + c.label : null),
        'aria-sort': active ? (st.dir > 0 ? 'ascending' : 'descending') : null,
      }, c.label, active ? (st.dir > 0 ? ' ▲' : ' ▼') : '');
    })));
  }
  document.addEventListener('click', (ev) => {
    const th = ev.target.closest && ev.target.closest('th[data-sort-table]');
    if (!th) return;
    const st = sortState[th.dataset.sortTable];
    const key = th.dataset.sortKey;
    if (st.key === key) st.dir = -st.dir;
    else { st.key = key; st.dir = 1; }
    render();
  });

  // ---------------------------------------------------------------- state
  const S = {
    route: null,
    data: {},          // key -> last good response (kept when a poll fails)
    lastOk: 0,         // Date.now() of the last good poll
    failing: false,
    failDetail: '',
    auth: null,        // null | 'required' | 'rejected'
    lastKey: null,     // what the view was last rendered from (skip identical renders)
    loaded: false,
  };

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }
  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives for this poll only */ }
  }

  // ---------------------------------------------------------------- routing
  function parseRoute() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const qi = raw.indexOf('?');
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const params = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
    const parts = path.split('/').filter(Boolean);
    let name = '';
    try { name = decodeURIComponent(parts.slice(1).join('/')); } catch (_) { name = parts.slice(1).join('/'); }
    if (!parts.length) return { view: 'overview', params };
    if (parts[0] === 'routers' && parts.length === 1) return { view: 'routers', params };
    if (parts[0] === 'services' && parts.length === 1) return { view: 'services', params };
    if (parts[0] === 'services') return { view: 'service', name, params };
    if (parts[0] === 'errors' && parts.length === 1) return { view: 'errors', params };
    return { view: 'notfound', params };
  }

  const FILTERS = {
    routers: { q: 'routers-search', status: 'routers-status' },
    services: { q: 'services-search', status: 'services-status' },
    errors: { q: 'errors-search', kind: 'errors-kind', severity: 'errors-severity' },
  };
  const NAV_OF = { overview: 'overview', routers: 'routers', services: 'services', service: 'services', errors: 'errors' };
  const TITLES = { overview: 'Overview', routers: 'Routers', services: 'Services', service: 'Service', errors: 'Errors', notfound: 'Not found' };

  function onRoute() {
    S.route = parseRoute();
    const view = S.route.view;
    for (const sec of document.querySelectorAll('main > section[data-view]')) {
      sec.hidden = sec.dataset.view !== view;
    }
    for (const a of document.querySelectorAll('#nav a[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === NAV_OF[view]);
    }
    // #/routers?q=rg&status=warning pre-fills the view's filters.
    const f = FILTERS[view];
    if (f) {
      for (const [param, id] of Object.entries(f)) {
        const v = S.route.params.get(param);
        if (v !== null) $(id).value = v;
      }
    }
    // A service opened from the list shows at once; the poll then fetches it on its own.
    if (view === 'service' && S.data['service:' + S.route.name] === undefined) {
      const known = arr(S.data.services).find((x) => x && x.name === S.route.name);
      if (known) S.data['service:' + S.route.name] = known;
    }
    window.scrollTo(0, 0);
    render();
    // Data this view has never had arrives with the next poll (at most 1 s away).
  }
  window.addEventListener('hashchange', onRoute);

  for (const f of Object.values(FILTERS)) {
    for (const id of Object.values(f)) {
      $(id).addEventListener('input', () => render());
      $(id).addEventListener('change', () => render());
    }
  }
  document.addEventListener('keydown', (ev) => {
    if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
    const f = S.route && FILTERS[S.route.view];
    if (f) { ev.preventDefault(); $(f.q).focus(); }
  });

  // ---------------------------------------------------------------- fetching
  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function getJSON(path, signal) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, { headers, signal, cache: 'no-store', credentials: 'same-origin' });
    if (!res.ok) {
      let msg = res.status + ' ' + res.statusText;
      try {
        const j = await res.json();
        if (j && typeof j.message === 'string') msg = res.status + ': ' + j.message;
      } catch (_) { /* not JSON */ }
      throw new HttpError(res.status, msg);
    }
    return { body: await res.json(), headers: res.headers };
  }
  // Lists are paged (X-Next-Page is the next page, or 1 when there is none).
  async function getList(path, signal) {
    let out = [];
    let page = 1;
    for (let i = 0; i < MAX_PAGES; i++) {
      const { body, headers } = await getJSON(page === 1 ? path : path + '?page=' + page, signal);
      if (!Array.isArray(body)) throw new Error(path + ': expected a JSON array');
      out = out.concat(body);
      const next = parseInt(headers.get('X-Next-Page') || '1', 10);
      if (!(next > page)) break;
      page = next;
    }
    return out;
  }
  const LISTS = {
    entrypoints: 'api/entrypoints',
    routers: 'api/http/routers',
    services: 'api/http/services',
    errors: 'api/errors',
  };
  function needs(route) {
    switch (route.view) {
      case 'overview': return ['overview', 'entrypoints'];
      case 'routers': return ['overview', 'routers'];
      case 'services': return ['overview', 'services'];
      case 'service': return ['overview', 'service:' + route.name];
      case 'errors': return ['overview', 'errors'];
      default: return ['overview'];
    }
  }
  async function fetchKey(key, signal) {
    if (key === 'overview') return (await getJSON('api/overview', signal)).body;
    if (key.startsWith('service:')) {
      const name = key.slice('service:'.length);
      try {
        return (await getJSON('api/http/services/' + encodeURIComponent(name), signal)).body;
      } catch (e) {
        if (e.status === 404) return { notFound: true, message: e.message };
        throw e;
      }
    }
    if (key === 'entrypoints') {
      // Only the overview's extra table: a gantry without this endpoint still shows the rest.
      try { return await getList(LISTS[key], signal); } catch (e) {
        if (e instanceof HttpError && e.status !== 401) return [];
        throw e;
      }
    }
    return getList(LISTS[key], signal);
  }

  let timer = null;
  let lastStart = 0;
  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    lastStart = performance.now();
    const keys = needs(S.route);
    const ctrl = new AbortController();
    const abort = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    try {
      const results = await Promise.all(keys.map((k) => fetchKey(k, ctrl.signal)));
      keys.forEach((k, i) => { S.data[k] = results[i]; });
      S.failing = false;
      S.auth = null;
      S.lastOk = Date.now();
    } catch (e) {
      ctrl.abort(); // the poll's other requests are moot now
      if (e && e.status === 401) {
        S.auth = getToken() ? 'rejected' : 'required';
        S.failing = false;
      } else {
        S.failing = true;
        S.failDetail = e && e.name === 'AbortError' ? '(no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s)'
          : e && e.status ? '(' + e.message + ')' : '(' + str(e && e.message) + ')';
      }
    } finally {
      clearTimeout(abort);
      polling = false;
    }
    try {
      renderChrome();
      render();
    } catch (e) {
      console.error('gantry dashboard: render failed', e);
    }
    clearTimeout(timer);
    // (+10 ms: timer and network jitter never bring two polls closer than 1 s)
    timer = setTimeout(poll, Math.max(0, lastStart + POLL_MS + 10 - performance.now()));
  }

  // ---------------------------------------------------------------- auth form
  $('auth').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('auth-token').value.trim();
    if (!t) return;
    setToken(t);
    $('auth-token').value = '';
    $('auth-msg').textContent = 'Checking token…';
  });
  $('auth-clear').addEventListener('click', () => {
    setToken('');
    $('auth-msg').textContent = 'Token forgotten.';
  });

  // ---------------------------------------------------------------- chrome (header, banners)
  function navCount(id, n, bad, warn) {
    const el = $(id);
    el.textContent = isNum(n) ? fmtInt(n) : '';
    el.className = 'count' + (bad ? ' bad' : warn ? ' warn' : '');
    el.title = bad ? bad + ' with errors' : warn ? warn + ' with warnings' : '';
  }
  function renderChrome() {
    const o = S.data.overview;
    if (o) {
      const http = o.http || {};
      const r = http.routers || {};
      const s = http.services || {};
      const sv = http.servers || {};
      navCount('nav-routers', r.total, r.errors, r.warnings);
      navCount('nav-services', s.total, s.errors || sv.down, s.warnings || sv.draining);
      navCount('nav-errors', (o.errors || 0) + (o.warnings || 0), o.errors, o.warnings);
      $('version').textContent = (o.version ? 'v' + o.version : '') + (o.zone ? ' · ' + str(o.zone) : '');
      document.title = (sv.down ? '(' + sv.down + ' down) ' : '') + 'gantry — ' + (TITLES[S.route.view] || '');
    }
    $('banner').hidden = !S.failing;
    document.body.classList.toggle('stale', S.failing);
    $('banner-detail').textContent = S.failing
      ? S.failDetail + (S.lastOk ? ' — showing data from ' + ago(new Date(S.lastOk).toISOString()) : '')
      : '';
    const auth = $('auth');
    const wasHidden = auth.hidden;
    auth.hidden = !S.auth;
    if (S.auth) {
      $('auth-msg').textContent = S.auth === 'rejected'
        ? 'The token was refused (401). Enter another token:'
        : 'This gantry needs an API token (401). Enter it:';
      if (wasHidden) $('auth-token').focus();
    }
    updateLive();
  }
  function updateLive() {
    const live = $('live');
    live.classList.toggle('down', S.failing || !!S.auth);
    live.classList.toggle('up', !S.failing && !S.auth && S.lastOk > 0);
    let text = 'connecting…';
    if (S.auth) text = 'needs a token';
    else if (S.failing) text = 'unreachable';
    else if (S.lastOk) {
      const o = S.data.overview;
      const s = Math.floor((Date.now() - S.lastOk) / 1000);
      text = 'live · updated ' + (s < 1 ? 'just now' : s + 's ago') + (o && isNum(o.generation) ? ' · gen ' + o.generation : '');
    }
    $('live-text').textContent = text;
  }
  // Relative times tick on their own; no fetch, no re-render.
  setInterval(() => {
    for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(el.getAttribute('data-ago'));
    updateLive();
  }, 1000);

  // ---------------------------------------------------------------- render
  function filterState(view) {
    const f = FILTERS[view];
    if (!f) return null;
    const out = {};
    for (const [k, id] of Object.entries(f)) out[k] = $(id).value;
    return out;
  }
  function render() {
    const route = S.route;
    const view = route.view;
    const keys = needs(route).filter((k) => k !== 'overview' || view === 'overview');
    const have = keys.every((k) => S.data[k] !== undefined);
    const key = JSON.stringify([view, route.name || '', filterState(view), sortState,
      keys.map((k) => S.data[k])]);
    if (key === S.lastKey) return;
    S.lastKey = key;
    const fn = VIEWS[view];
    if (fn) fn(have);
    window.__gantryRenders += 1;
    if (have && !S.loaded && view !== 'notfound') {
      S.loaded = true;
      document.body.setAttribute('data-loaded', 'true');
    }
  }
  function fill(id, ...kids) {
    const el = $(id);
    el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false)
      .map((k) => (k instanceof Node ? k : document.createTextNode(String(k)))));
  }
  const loading = () => h('p', { class: 'empty' }, S.failing ? 'Waiting for gantry…' : 'Loading…');
  const shown = (id, n, total) => { $(id).textContent = n === total ? total + ' shown' : n + ' of ' + total + ' shown'; };

  // ---- overview
  function card(title, href, big, bigUnit, parts) {
    return h('a', { class: 'card', href },
      h('div', { class: 'card-title' }, title),
      h('div', { class: 'card-big' }, big, bigUnit ? h('span', { class: 'unit' }, bigUnit) : null),
      h('div', { class: 'card-parts' }, parts.map(([label, value, cls]) =>
        h('span', { class: 'part ' + (cls || '') }, h('b', null, value), ' ' + label))));
  }
  const partCls = (n, cls) => (isNum(n) && n > 0 ? cls : 'zero');

  function viewOverview(have) {
    const o = S.data.overview;
    if (!have || !o) return fill('overview-content', loading());
    const http = o.http || {};
    const r = http.routers || {};
    const s = http.services || {};
    const sv = http.servers || {};
    const st = o.stats || {};
    const cards = h('div', { class: 'cards' },
      card('Routers', '#/routers', fmtInt(r.total), '', [
        ['warnings', fmtInt(r.warnings), partCls(r.warnings, 'warn')],
        ['errors', fmtInt(r.errors), partCls(r.errors, 'bad')]]),
      card('Services', '#/services', fmtInt(s.total), '', [
        ['warnings', fmtInt(s.warnings), partCls(s.warnings, 'warn')],
        ['errors', fmtInt(s.errors), partCls(s.errors, 'bad')]]),
      card('Servers', '#/services', fmtInt(sv.total), '', [
        ['up', fmtInt(sv.up), partCls(sv.up, 'ok')],
        ['down', fmtInt(sv.down), partCls(sv.down, 'bad')],
        ['draining', fmtInt(sv.draining), partCls(sv.draining, 'warn')]]),
      card('Traffic', '#/routers', fmtRate(st.requestRate), 'req/s', [
        ['errors', fmtPct(st.errorRate), isNum(st.errorRate) && st.errorRate > 0 ? 'bad' : 'zero'],
        ['p50', fmtMs(st.p50Ms) + ' ms', ''],
        ['p99', fmtMs(st.p99Ms) + ' ms', '']]),
      card('Config errors', '#/errors', h('span', { class: o.errors > 0 ? 'bad-text' : null }, fmtInt(o.errors)), '', [
        ['warnings', fmtInt(o.warnings), o.warnings > 0 ? 'warn' : 'zero'],
        ['generation', fmtInt(o.generation), ''],
        ['providers', fmtInt(arr(o.providers).length), '']]));

    const provCols = [
      { label: 'Provider' }, { label: 'Health' }, { label: 'Last refresh' }, { label: 'Last success' },
      { label: 'Duration ms', num: true }, { label: 'Tasks', num: true }, { label: 'Refreshes', num: true },
      { label: 'Failures', num: true }, { label: 'API calls (last refresh)' }, { label: 'API calls (total)' },
      { label: 'Last error' }];
    const calls = (m) => {
      const e = Object.entries(m && typeof m === 'object' ? m : {});
      if (!e.length) return h('span', { class: 'muted' }, DASH);
      return h('span', { class: 'chips' }, e.map(([k, n]) => h('span', { class: 'chip' }, k + ' ', h('b', null, fmtInt(n)))));
    };
    const providers = arr(o.providerStatus);
    const provTable = providers.length ? h('table', { class: 'grid' }, thead(null, provCols), h('tbody', null,
      providers.map((p) => h('tr', { 'data-provider': str(p.name) },
        h('td', { class: 'name' }, str(p.name)),
        h('td', null, h('span', { class: 'badge solid ' + (p.healthy ? 'ok' : 'bad') }, p.healthy ? 'HEALTHY' : 'FAILING')),
        h('td', null, timeEl(p.lastRefresh)),
        h('td', null, timeEl(p.lastSuccess)),
        num(p.durationMs, fmtMs), num(p.tasks, fmtInt), num(p.refreshes, fmtInt),
        h('td', { class: 'num' + (p.failures > 0 ? ' bad-text' : '') }, fmtInt(p.failures)),
        h('td', null, calls(p.apiCalls)),
        h('td', null, calls(p.totalApiCalls)),
        h('td', { class: 'msg' + (p.lastError ? ' bad-text' : ' muted') }, p.lastError ? str(p.lastError) : 'none'))))
    ) : h('p', { class: 'empty' }, 'No provider reports yet.');

    const eps = arr(S.data.entrypoints);
    const epCols = [{ label: 'Entrypoint' }, { label: 'Address' }, { label: 'Requests', num: true },
      { label: 'In-flight', num: true }, { label: 'Req/s', num: true }, { label: 'Error rate', num: true },
      { label: 'p50 ms', num: true }, { label: 'p99 ms', num: true }, { label: 'Status codes' }];
    const epTable = eps.length ? h('table', { class: 'grid' }, thead(null, epCols), h('tbody', null,
      eps.map((e) => {
        const x = e.stats || {};
        return h('tr', { 'data-entrypoint': str(e.name) },
          h('td', { class: 'name' }, str(e.name)), h('td', { class: 'mono' }, str(e.address)),
          num(x.requests, fmtInt), num(x.inFlight, fmtInt), num(x.requestRate, fmtRate), errRateCell(x.errorRate),
          num(x.p50Ms, fmtMs), num(x.p99Ms, fmtMs), h('td', null, codeChips(x.grpcStatus)));
      }))) : h('p', { class: 'empty' }, 'No entrypoints.');

    fill('overview-content',
      cards,
      h('h2', null, 'Providers'), provTable,
      h('h2', null, 'Entrypoints'), epTable,
      h('h2', null, 'All calls'),
      h('p', { class: 'totals' }, h('span', null, h('b', null, fmtInt(st.requests)), ' requests, '),
        h('span', null, h('b', null, fmtInt(st.errors)), ' errors, '),
        h('span', null, h('b', null, fmtInt(st.inFlight)), ' in flight '), codeChips(st.grpcStatus)));
  }

  // ---- routers
  const routerCols = [
    { key: 'status', label: 'Status', val: (r) => ({ disabled: 0, warning: 1, enabled: 2 }[r.status] ?? 3) },
    { key: 'name', label: 'Name', val: (r) => r.name },
    { key: 'rule', label: 'Rule', val: (r) => r.rule },
    { key: 'service', label: 'Service', val: (r) => r.service },
    { key: 'entryPoints', label: 'Entrypoints', val: (r) => arr(r.entryPoints).join(',') },
    { key: 'priority', label: 'Priority', num: true, val: (r) => r.priority },
    { key: 'requests', label: 'Requests', num: true, val: (r) => (r.stats || {}).requests },
    { key: 'rate', label: 'Req/s', num: true, val: (r) => (r.stats || {}).requestRate },
    { key: 'errorRate', label: 'Error rate', num: true, val: (r) => (r.stats || {}).errorRate },
    { key: 'p99', label: 'p99 ms', num: true, val: (r) => (r.stats || {}).p99Ms },
  ];
  function viewRouters(have) {
    if (!have) return fill('routers-content', loading());
    const all = arr(S.data.routers);
    const f = filterState('routers');
    const q = f.q.trim().toLowerCase();
    const rows = sortRows('routers', routerCols, all.filter((r) =>
      (!f.status || r.status === f.status) &&
      (!q || contains(q, r.name, r.rule, r.service, r.provider, arr(r.entryPoints).join(' '),
        arr(r.tasks).join(' '), arr(r.error).join(' ')))));
    shown('routers-shown', rows.length, all.length);
    if (!rows.length) {
      return fill('routers-content', h('p', { class: 'empty' },
        all.length ? 'No router matches the filter.' : 'No routers configured.'));
    }
    const body = h('tbody');
    for (const r of rows) {
      const x = r.stats || {};
      const svc = serviceRef(r.service, r.provider);
      body.appendChild(h('tr', { 'data-router': str(r.name), 'data-status': str(r.status), class: 'st-' + str(r.status) },
        h('td', null, statusBadge(r.status)),
        h('td', { class: 'name' }, str(r.name), r.tls ? h('span', { class: 'tag', title: 'TLS' }, 'TLS') : null,
          r.retry ? h('span', { class: 'tag', title: 'retries answered calls: ' + fmtInt(r.retry.attempts) + ' more attempt(s)' }, 'retry') : null),
        h('td', { class: 'mono rule' }, str(r.rule)),
        h('td', null, svc ? h('a', { href: serviceHref(svc) }, svc) : DASH),
        h('td', null, arr(r.entryPoints).join(', ') || DASH),
        num(r.priority, fmtInt), num(x.requests, fmtInt), num(x.requestRate, fmtRate),
        errRateCell(x.errorRate), num(x.p99Ms, fmtMs)));
      const errs = errorList(r.error);
      if (errs) body.appendChild(h('tr', { class: 'errrow' }, h('td'), h('td', { colspan: routerCols.length - 1 }, errs)));
    }
    fill('routers-content', h('table', { class: 'grid' }, thead('routers', routerCols), body));
  }

  // ---- services
  function serverTable(servers, detail) {
    const cols = [{ label: 'Health' }, { label: 'URL' }, { label: 'Task' }, { label: 'Zone' },
      { label: 'Weight', num: true }, { label: 'In-flight', num: true }, { label: 'Requests', num: true },
      { label: 'Req/s', num: true }, { label: 'Error rate', num: true }, { label: 'p50 ms', num: true },
      { label: 'p99 ms', num: true }, { label: 'Connected' }];
    if (detail) cols.push({ label: 'Status codes' });
    if (!servers.length) return h('p', { class: 'empty small' }, 'No servers.');
    const colgroup = detail ? null : h('colgroup', null, ['health', 'url', 'task', 'zone', 'weight', 'inflight',
      'requests', 'rate', 'err', 'p50', 'p99', 'conn'].map((c) => h('col', { class: 'c-' + c })));
    const clip = (v, cls) => h('td', { class: 'clip ' + (cls || ''), title: str(v) || null }, str(v) || DASH);
    return h('table', { class: 'grid servers' + (detail ? ' detail' : '') }, colgroup, thead(null, cols),
      h('tbody', null, servers.map((sv) => {
        const health = str(sv.health) || 'UNKNOWN';
        const platform = str(sv.platformHealth);
        const reason = str(sv.healthReason) ||
          (platform && platform !== 'HEALTHY' && platform !== 'UNKNOWN' ? 'ECS ' + platform : '');
        return h('tr', { 'data-server-url': str(sv.url), 'data-health': health, class: 'h-' + health },
          h('td', { class: 'health', title: platform ? 'ECS health: ' + platform : null },
            healthBadge(health), reason ? h('div', { class: 'reason' }, reason) : null),
          clip(sv.url, 'mono'), clip(sv.taskId, 'mono'), clip(sv.zone),
          num(sv.weight, fmtInt), num(sv.inFlight, fmtInt), num(sv.requests, fmtInt), num(sv.requestRate, fmtRate),
          errRateCell(sv.errorRate), num(sv.p50Ms, fmtMs), num(sv.p99Ms, fmtMs),
          h('td', null, sv.connected ? h('span', { class: 'ok-text' }, '● yes') : h('span', { class: 'muted' }, '○ no')),
          detail ? h('td', null, codeChips(sv.grpcStatus)) : null);
      })));
  }
  function serviceBlock(s, detail) {
    const x = s.stats || {};
    const lb = s.loadBalancer || {};
    const servers = arr(lb.servers);
    const up = servers.filter((v) => v.health === 'UP').length;
    const name = str(s.name);
    const usedBy = arr(s.usedBy);
    return h('section', { class: 'svc st-' + str(s.status), 'data-service': name, 'data-status': str(s.status) },
      h('div', { class: 'svc-head' },
        statusBadge(s.status),
        detail ? h('h1', { class: 'svc-name' }, name) : h('a', { class: 'svc-name', href: serviceHref(name) }, name),
        h('span', { class: 'meta' }, [str(s.type), lb.strategy ? str(lb.strategy) : '', s.provider ? 'provider ' + str(s.provider) : '']
          .filter(Boolean).join(' · ')),
        h('span', { class: 'meta' }, 'used by ', usedBy.length
          ? usedBy.map((u, i) => [i ? ', ' : '', h('a', { href: routersHref(u) }, str(u))]) : DASH),
        h('span', { class: 'svc-stats' },
          h('span', { class: up === servers.length ? 'ok-text' : up === 0 ? 'bad-text' : 'warn-text' },
            h('b', null, up + '/' + servers.length), ' up'),
          h('span', null, h('b', null, fmtInt(x.requests)), ' req'),
          h('span', null, h('b', null, fmtRate(x.requestRate)), ' req/s'),
          h('span', { class: isNum(x.errorRate) && x.errorRate > 0 ? 'bad-text' : null }, h('b', null, fmtPct(x.errorRate)), ' err'),
          h('span', null, 'p50 ', h('b', null, fmtMs(x.p50Ms)), ' ms'),
          h('span', null, 'p99 ', h('b', null, fmtMs(x.p99Ms)), ' ms'))),
      errorList(s.error),
      arr(s.warnings).length ? h('ul', { class: 'warnings' },
        arr(s.warnings).map((w) => h('li', { class: 'warn-text' }, '⚠ ' + str(w)))) : null,
      lb.healthCheck ? h('p', { class: 'meta' }, 'health check: ', str(lb.healthCheck.mode),
        lb.healthCheck.target ? ' ' + str(lb.healthCheck.target) : '',
        ' every ', fmtInt(lb.healthCheck.intervalMs), ' ms') : null,
      lb.zoneAffinity ? h('p', { class: 'meta' }, 'zone affinity: ', fmtInt(lb.zoneAffinity.share),
        '% of calls in gantry\'s zone while ≥ ', fmtInt(lb.zoneAffinity.minServers), ' and ≥ ',
        fmtInt(lb.zoneAffinity.minHealthyPercent), '% of its servers are up') : null,
      s.weighted
        ? h('p', { class: 'meta' }, 'version split: ', arr(s.weighted.services).map((w, i) => [i ? ' · ' : '',
          h('a', { href: serviceHref(str(w.name) + '@' + str(s.provider)) }, str(w.name)), ' ' + fmtInt(w.weight)]))
        : serverTable(servers, detail),
      detail ? h('div', { class: 'detail-extra' },
        h('p', null, h('span', { class: 'muted' }, 'Status codes: '), codeChips(x.grpcStatus)),
        arr(s.tasks).length ? h('p', null, h('span', { class: 'muted' }, 'Tasks: '), h('span', { class: 'mono' }, arr(s.tasks).join(', '))) : null)
        : null);
  }
  function viewServices(have) {
    if (!have) return fill('services-content', loading());
    const all = arr(S.data.services);
    const f = filterState('services');
    const q = f.q.trim().toLowerCase();
    const rows = all.filter((s) => (!f.status || s.status === f.status) &&
      (!q || contains(q, s.name, s.provider, arr(s.usedBy).join(' '), arr(s.tasks).join(' '), arr(s.error).join(' ')) ||
        arr((s.loadBalancer || {}).servers).some((v) => contains(q, v.url, v.taskId, v.zone, v.health, v.healthReason))));
    shown('services-shown', rows.length, all.length);
    if (!rows.length) {
      return fill('services-content', h('p', { class: 'empty' },
        all.length ? 'No service matches the filter.' : 'No services configured.'));
    }
    fill('services-content', rows.map((s) => serviceBlock(s, false)));
  }
  function viewService(have) {
    const s = S.data['service:' + S.route.name];
    if (!have || !s) return fill('service-content', loading());
    if (s.notFound) {
      return fill('service-content', h('p', { class: 'empty' }, 'No service named “', S.route.name, '”. ',
        h('a', { href: '#/services' }, 'All services')));
    }
    fill('service-content', serviceBlock(s, true));
  }

  // ---- errors
  const errorCols = [
    { key: 'severity', label: 'Severity', val: (e) => e.severity },
    { key: 'kind', label: 'Kind', val: (e) => e.kind },
    { key: 'name', label: 'Name', val: (e) => e.name },
    { key: 'provider', label: 'Provider', val: (e) => e.provider },
    { key: 'task', label: 'Task', val: (e) => e.task },
    { key: 'label', label: 'Label', val: (e) => e.label },
    { key: 'message', label: 'Message', val: (e) => e.message },
  ];
  function viewErrors(have) {
    if (!have) return fill('errors-content', loading());
    const all = arr(S.data.errors);
    const f = filterState('errors');
    const q = f.q.trim().toLowerCase();
    const rows = sortRows('errors', errorCols, all.filter((e) => (!f.kind || e.kind === f.kind) &&
      (!f.severity || e.severity === f.severity) &&
      (!q || contains(q, e.kind, e.name, e.provider, e.task, e.label, e.message))));
    shown('errors-shown', rows.length, all.length);
    if (!rows.length) {
      return fill('errors-content', h('p', { class: 'empty' + (all.length ? '' : ' good') },
        all.length ? 'No error matches the filter.' : 'No errors: every router, service, task and provider is fine.'));
    }
    fill('errors-content', h('table', { class: 'grid' }, thead('errors', errorCols), h('tbody', null, rows.map((e) => {
      const name = str(e.name);
      let link = null;
      if (name && e.kind === 'router') link = routersHref(name);
      else if (name && e.kind === 'service') link = serviceHref(name.includes('@') || !e.provider ? name : name + '@' + e.provider);
      const warning = e.severity === 'warning';
      return h('tr', { 'data-error-kind': str(e.kind), 'data-error-name': name, 'data-severity': str(e.severity), 'data-label': str(e.label) },
        h('td', null, h('span', { class: 'badge ' + (warning ? 'warn' : 'bad'), title: warning ? 'ignored label: nothing is disabled' : 'the object is disabled' }, warning ? 'warning' : 'error')),
        h('td', null, h('span', { class: 'badge muted' }, str(e.kind) || DASH)),
        h('td', { class: 'name' }, link ? h('a', { href: link }, name) : name || DASH),
        h('td', null, str(e.provider) || DASH),
        h('td', { class: 'mono' }, str(e.task) || DASH),
        h('td', { class: 'mono' }, str(e.label) || DASH),
        h('td', { class: 'msg' }, str(e.message)));
    }))));
  }

  const VIEWS = {
    overview: viewOverview,
    routers: viewRouters,
    services: viewServices,
    service: viewService,
    errors: viewErrors,
    notfound: () => {},
  };

  // ---------------------------------------------------------------- start
  onRoute();
  poll();
})();
