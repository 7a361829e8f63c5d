// VKB's page: filters, search, details with history, shareable URLs, drag-and-drop import,
// live refresh. Every text from the graph goes into the page with textContent (never innerHTML),
// and the Content-Security-Policy allows scripts from VKB only.
'use strict';

(function () {
  const $ = id => document.getElementById(id);
  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  };
  const format = n => Number(n).toLocaleString('en-US');
  // Query strings with spaces as %20: the server percent-decodes but does not read '+' as a space.
  const qs = params => params.toString().replace(/\+/g, '%20');

  if (typeof d3 === 'undefined') {
    const banner = $('banner');
    banner.textContent = 'The drawing library (d3) did not load: install Debian\'s node-d3 on the VKB host (scripts/setup-system.sh) or set KB_VKB_D3_PATH.';
    banner.classList.remove('hidden');
    $('graph').dataset.state = 'error';
    return;
  }

  // MARK: state and URL

  const state = {
    teams: [], types: [], relationTypes: [], source: '', selected: null, focus: null, depth: 1, q: '', mode: 'hybrid',
  };
  const searchModes = ['hybrid', 'semantic', 'keyword'];
  const known = { types: [], relationTypes: [], teams: [], lastUpdateMs: null, feedSeq: null, hiddenTypes: new Set(), hiddenRelationTypes: new Set() };
  const history = { items: [], index: -1 };

  function readURL() {
    const p = new URLSearchParams(location.search);
    const list = key => (p.get(key) || '').split(',').filter(Boolean);
    state.teams = list('teams');
    known.hiddenTypes = new Set(list('hideTypes'));
    known.hiddenRelationTypes = new Set(list('hideRelationTypes'));
    state.source = p.get('source') || '';
    state.selected = p.get('selected') || null;
    state.focus = p.get('focus') || null;
    state.depth = Math.min(3, Math.max(1, parseInt(p.get('depth') || '1', 10) || 1));
    state.q = p.get('q') || '';
    state.mode = searchModes.includes(p.get('mode')) ? p.get('mode') : 'hybrid';
  }

  function writeURL() {
    const p = new URLSearchParams();
    if (state.teams.length) p.set('teams', state.teams.join(','));
    if (known.hiddenTypes.size) p.set('hideTypes', [...known.hiddenTypes].join(','));
    if (known.hiddenRelationTypes.size) p.set('hideRelationTypes', [...known.hiddenRelationTypes].join(','));
    if (state.source) p.set('source', state.source);
    if (state.selected) p.set('selected', state.selected);
    if (state.focus) p.set('focus', state.focus);
    if (state.depth !== 1) p.set('depth', String(state.depth));
    if (state.q) p.set('q', state.q);
    if (state.mode !== 'hybrid') p.set('mode', state.mode);
    const query = p.toString();
    window.history.replaceState(null, '', query ? `?${query}` : location.pathname);
  }

  // MARK: HTTP

  // The token (KB_AUTH_TOKEN), asked once per tab the first time VKB answers 401 (reads need it
  // too unless the operator opened reads with KB_VKB_PUBLIC_READS), kept in this tab's
  // sessionStorage and sent as a bearer header on every API call.
  let token = sessionStorage.getItem('vkb-token');
  let tokenPrompt = null;
  let tokenDeclined = false;

  function askForToken() {
    if (!tokenPrompt) {
      tokenPrompt = Promise.resolve().then(() => {
        const given = tokenDeclined ? null : window.prompt('This VKB needs its token (KB_AUTH_TOKEN):');
        if (given) {
          token = given;
          sessionStorage.setItem('vkb-token', given);
        } else {
          tokenDeclined = true;
        }
        tokenPrompt = null;
        return Boolean(given);
      });
    }
    return tokenPrompt;
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Accept: 'application/json' }, options.headers || {});
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, Object.assign({}, options, { headers }));
    } catch (error) {
      if (error.name !== 'AbortError') showBanner(`VKB is not answering (${error.message}). Retrying…`);
      throw error;
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (response.status === 401 && !options.retried) {
      if (token && headers.Authorization !== `Bearer ${token}`) {
        return api(path, Object.assign({}, options, { retried: true }));
      }
      if (token) {
        token = null;
        sessionStorage.removeItem('vkb-token');
      }
      if (await askForToken()) {
        return api(path, Object.assign({}, options, { retried: true }));
      }
    }
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error.message : `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.field = body && body.error ? body.error.field : undefined;
      error.code = body && body.error ? body.error.code : undefined;
      if (response.status === 503 && error.code !== 'search_unavailable') showBanner(`Graph store unavailable: ${error.message}`);
      throw error;
    }
    hideBanner();
    return body;
  }

  function showBanner(message) {
    const banner = $('banner');
    banner.textContent = message;
    banner.classList.remove('hidden');
  }
  function hideBanner() { $('banner').classList.add('hidden'); }
  function showNotice(message) {
    const notice = $('notice');
    notice.textContent = message;
    notice.classList.toggle('hidden', !message);
  }

  // MARK: colours and legend

  const palette = d3.schemeTableau10.concat(d3.schemeSet2, d3.schemeDark2);
  const colors = new Map();
  function colorOf(type) {
    if (!colors.has(type)) colors.set(type, palette[colors.size % palette.length]);
    return colors.get(type);
  }

  function swatch(type) {
    const s = el('span', null, 'swatch');
    s.style.background = colorOf(type);
    return s;
  }

  function renderLegend(nodes) {
    const counts = new Map();
    for (const n of nodes) counts.set(n.entityType, (counts.get(n.entityType) || 0) + 1);
    const legend = $('legend');
    legend.replaceChildren();
    for (const [type, count] of [...counts].sort((a, b) => b[1] - a[1])) {
      const row = el('div');
      row.append(swatch(type), el('span', `${type} (${format(count)})`));
      legend.append(row);
    }
  }

  // MARK: filters

  function renderFilters(stats, teams) {
    const teamSelect = $('filter-teams');
    teamSelect.replaceChildren();
    for (const team of teams) {
      const option = el('option', `${team.team} (${format(team.entities)})`);
      option.value = team.team;
      option.selected = state.teams.includes(team.team);
      teamSelect.append(option);
    }
    $('filter-source').value = state.source;
    renderChecklist($('filter-types'), Object.keys(stats.entitiesByType).sort(), known.hiddenTypes, true);
    renderChecklist($('filter-relation-types'), Object.keys(stats.relationsByType).sort(), known.hiddenRelationTypes, false);
  }

  function renderChecklist(container, names, hidden, withSwatch) {
    container.replaceChildren();
    for (const name of names) {
      const label = el('label');
      const box = el('input');
      box.type = 'checkbox';
      box.checked = !hidden.has(name);
      box.dataset.name = name;
      box.addEventListener('change', () => {
        if (box.checked) hidden.delete(name); else hidden.add(name);
        writeURL();
        loadGraph();
      });
      label.append(box);
      if (withSwatch) label.append(swatch(name));
      label.append(el('span', name));
      container.append(label);
    }
  }

  $('filter-teams').addEventListener('change', () => {
    state.teams = [...$('filter-teams').selectedOptions].map(o => o.value);
    writeURL();
    refreshAll();
  });
  $('filter-source').addEventListener('change', () => {
    state.source = $('filter-source').value;
    writeURL();
    loadGraph();
  });
  $('depth').addEventListener('input', () => {
    state.depth = parseInt($('depth').value, 10);
    $('depth-value').textContent = String(state.depth);
    writeURL();
    if (state.focus) loadGraph();
  });
  // Focus mode: a node's neighbourhood drawn alone, laid out afresh; this button goes back to
  // the overview.
  $('show-all').addEventListener('click', () => {
    state.focus = null;
    state.selected = null;
    view.select(null);
    writeURL();
    loadGraph();
  });

  // MARK: loading

  const view = new GraphView($('graph'), { colorOf, onSelect: node => selectEntity(node.id, { focus: true }) });
  window.vkb = { view, state, ready: false, timings: { navigation: 0 } };

  function graphQuery() {
    const p = new URLSearchParams();
    for (const team of state.teams) p.append('team', team);
    const types = known.types.filter(t => !known.hiddenTypes.has(t));
    if (known.hiddenTypes.size) p.set('type', types.length ? types.join(',') : '\u0000none');
    const relationTypes = known.relationTypes.filter(t => !known.hiddenRelationTypes.has(t));
    if (known.hiddenRelationTypes.size) p.set('relationType', relationTypes.length ? relationTypes.join(',') : '\u0000none');
    if (state.source) p.set('source', state.source);
    return p;
  }

  async function loadStats() {
    const p = new URLSearchParams();
    for (const team of state.teams) p.append('team', team);
    const [stats, teams] = await Promise.all([api(`/api/stats?${qs(p)}`), api('/api/teams')]);
    known.types = Object.keys(stats.entitiesByType).sort();
    known.relationTypes = Object.keys(stats.relationsByType).sort();
    known.lastUpdateMs = stats.lastUpdateMs;
    if (known.feedSeq === null || stats.feedHeadSeq > known.feedSeq) known.feedSeq = stats.feedHeadSeq;
    // A long poll for other teams would hide this selection's changes until it ends: ask again.
    if (following && following.teams !== state.teams.join('\u0000')) following.controller.abort();
    $('stat-entities').textContent = format(stats.entities);
    $('stat-relations').textContent = format(stats.relations);
    $('stat-types').textContent = format(stats.types);
    $('stat-teams').textContent = format(stats.teams);
    renderFilters(stats, teams.teams);
    return stats;
  }

  let graphRequest = 0;
  // What the drawing shows: the overview (null) or the neighbourhood of a node ('team:name').
  let shownFocus;
  async function loadGraph({ fit = false } = {}) {
    const mine = ++graphRequest;
    const p = graphQuery();
    if ([...p.values()].includes('\u0000none')) {
      view.setData([], [], { fit });
      renderLegend([]);
      showNotice('Every type is filtered out.');
      return;
    }
    // A new overview (the first, or back from a focus) comes laid out by the server (layout=1),
    // so it is drawn at once however large; a refresh of the same view keeps the
    // positions already on screen and places only what is new.
    let focus = state.focus;
    // A focus is a new view when its node, depth or filters change: its rings are laid out again.
    const view_ = focus ? `${focus}\u0000${state.depth}\u0000${qs(p)}` : null;
    const fresh = shownFocus === undefined || shownFocus !== view_;
    const query = new URLSearchParams(p);
    // (A focus is laid out in rings by the page itself.)
    if ((fresh || !view.nodes.length) && !focus) query.set('layout', '1');
    if (focus) {
      query.set('focus', focus);
      query.set('depth', String(state.depth));
    }
    let graph;
    try {
      graph = await api(`/api/graph?${qs(query)}`);
    } catch (error) {
      if (!(focus && error.status === 404)) throw error;
      // The focused entity is gone: back to the overview.
      if (mine !== graphRequest) return;
      state.focus = null;
      writeURL();
      return loadGraph({ fit: true });
    }
    if (mine !== graphRequest) return;
    window.vkb.timings.dataLoaded = performance.now();
    view.setData(graph.nodes, graph.links, { fit: fit || fresh, fresh, focus });
    shownFocus = view_;
    renderFocus(focus, graph);
    renderLegend(graph.nodes);
    const notices = [];
    if (!focus && graph.capped) notices.push(`Showing the ${format(graph.nodes.length)} most significant of ${format(graph.matching)} entities; search or click a node to focus on its neighbourhood.`);
    if (focus && graph.capped) notices.push(`The neighbourhood of ${focus} is cut at ${format(graph.nodes.length)} of ${format(graph.matching)} entities.`);
    if (!graph.nodes.length && !focus && !known.hiddenTypes.size && !state.source) notices.push('No knowledge here yet: add some with `ukb add-entity` or `ukb import`, or drop a shared-memory JSON file on this page.');
    showNotice(notices.join(' '));
  }

  function renderFocus(focus, graph) {
    const status = $('focus-status');
    $('show-all').disabled = !focus;
    $('graph').dataset.focus = focus || '';
    if (!focus) {
      status.textContent = 'The overview: click a node to focus on its neighbourhood.';
      return;
    }
    status.textContent = `Focus on ${splitId(focus)[1]} (${splitId(focus)[0]}), depth ${state.depth}: ${format(graph.nodes.length)} entities, ${format(graph.links.length)} relations.`;
  }

  async function refreshAll(options = {}) {
    try {
      await loadStats();
      await loadGraph(options);
      if (state.selected) await showDetails(state.selected, { quiet: true });
      window.vkb.ready = true;
    } catch (error) {
      $('graph').dataset.state = 'error';
      if (error.status !== 503) showBanner(`Could not load the graph: ${error.message}`);
    }
  }

  // MARK: selection, details, history

  async function selectEntity(id, { focus = false, fromHistory = false } = {}) {
    state.selected = id;
    if (focus) state.focus = id;
    if (!fromHistory) {
      history.items = history.items.slice(0, history.index + 1);
      if (history.items[history.index] !== id) { history.items.push(id); history.index = history.items.length - 1; }
    }
    updateHistoryButtons();
    writeURL();
    view.select(id);
    await showDetails(id);
    if (focus) await loadGraph();
  }

  function updateHistoryButtons() {
    $('back').disabled = history.index <= 0;
    $('forward').disabled = history.index >= history.items.length - 1;
  }
  $('back').addEventListener('click', () => {
    if (history.index > 0) { history.index--; selectEntity(history.items[history.index], { focus: true, fromHistory: true }); }
  });
  $('forward').addEventListener('click', () => {
    if (history.index < history.items.length - 1) { history.index++; selectEntity(history.items[history.index], { focus: true, fromHistory: true }); }
  });

  function splitId(id) {
    const colon = id.indexOf(':');
    return [id.slice(0, colon), id.slice(colon + 1)];
  }

  async function showDetails(id, { quiet = false } = {}) {
    const [team, name] = splitId(id);
    let found;
    try {
      found = await api(`/api/entities/${encodeURIComponent(team)}/${encodeURIComponent(name)}`);
    } catch (error) {
      if (!quiet) showNotice(`${id}: ${error.message}`);
      $('details-body').classList.add('hidden');
      $('details-empty').classList.remove('hidden');
      return;
    }
    const e = found.entity;
    $('details-empty').classList.add('hidden');
    $('details-body').classList.remove('hidden');
    $('d-name').textContent = e.name;
    $('d-type').replaceChildren(swatch(e.entityType), el('span', ` ${e.entityType}`));
    $('d-team').textContent = e.team;
    $('d-source').textContent = e.source === 'auto' ? 'automatic' : 'manual';
    $('d-confidence').textContent = String(e.confidence);
    $('d-significance').textContent = String(e.significance);
    $('d-created').textContent = e.created_at || '–';
    $('d-modified').textContent = e.last_modified || '–';
    const observations = $('d-observations');
    observations.replaceChildren();
    for (const o of e.observations) {
      const item = el('li', o.content);
      if (o.type || o.date) item.append(el('div', [o.type, o.date].filter(Boolean).join(' · '), 'hint'));
      observations.append(item);
    }
    if (!e.observations.length) observations.append(el('li', 'none', 'hint'));
    // A coding session (ukb learn): its intents over time and the knowledge it used and produced.
    window.KBTrajectory.render($('d-trajectory'), e, found.outbound, target => selectEntity(target, { focus: true }));
    renderRelations($('d-outbound'), found.outbound, r => `${r.team}:${r.to}`, r => `${r.relationType} → ${r.to}`);
    renderRelations($('d-inbound'), found.inbound, r => `${r.team}:${r.from}`, r => `${r.from} → ${r.relationType}`);
    showSimilar(id);
  }

  // "Similar knowledge": the entities nearest in meaning to this one, in its team.
  let similarRequest = 0;
  async function showSimilar(id) {
    const mine = ++similarRequest;
    const list = $('d-similar');
    const [team, name] = splitId(id);
    list.dataset.state = 'loading';
    let found = null, problem = null;
    try {
      found = await api(`/api/similar?${qs(new URLSearchParams({ team, name, limit: '8' }))}`);
    } catch (error) {
      problem = error.status === 404 ? 'not indexed yet' : `unavailable: ${error.message}`;
    }
    if (mine !== similarRequest) return;
    list.replaceChildren();
    if (found) {
      for (const result of found.results) list.append(entityItem(result.entity, result.score));
      if (!found.results.length) list.append(el('li', 'none', 'hint'));
    } else {
      list.append(el('li', problem, 'hint'));
    }
    list.dataset.state = found ? 'loaded' : 'unavailable';
  }

  function renderRelations(list, relations, target, label) {
    list.replaceChildren();
    for (const r of relations) {
      const item = el('li');
      const link = el('a', label(r));
      link.href = `?selected=${encodeURIComponent(target(r))}`;
      link.addEventListener('click', event => { event.preventDefault(); selectEntity(target(r), { focus: true }); });
      item.append(link);
      list.append(item);
    }
    if (!relations.length) list.append(el('li', 'none', 'hint'));
  }

  // MARK: search

  $('search-form').addEventListener('submit', async event => {
    event.preventDefault();
    state.q = $('search').value.trim();
    state.mode = $('search-mode').value;
    writeURL();
    await runSearch();
  });

  // The same search as `ukb search`: by meaning and words (the default), meaning alone or words
  // alone. When search by meaning is unavailable, VKB answers with a word search and the page
  // says so.
  async function runSearch() {
    const section = $('search-results-section');
    const list = $('search-results');
    const degraded = $('search-degraded');
    list.replaceChildren();
    degraded.classList.add('hidden');
    if (!state.q) { section.classList.add('hidden'); return; }
    section.classList.remove('hidden');
    const p = new URLSearchParams({ q: state.q, limit: '30', mode: state.mode });
    for (const team of state.teams) p.append('team', team);
    let found;
    try {
      found = await api(`/api/search?${qs(p)}`);
    } catch (error) {
      list.append(el('li', error.message, 'hint'));
      return;
    }
    if (found.degraded) {
      degraded.textContent = `Degraded: ${found.degradedReason || 'search by meaning is unavailable'}.`;
      degraded.classList.remove('hidden');
    }
    list.dataset.mode = found.mode;
    list.dataset.degraded = String(Boolean(found.degraded));
    for (const result of found.results) list.append(entityItem(result.entity, result.score));
    if (!found.results.length) list.append(el('li', `Nothing matches “${state.q}”.`, 'hint'));
  }

  /// A list item linking to an entity (search results, similar knowledge).
  function entityItem(entity, score) {
    const item = el('li');
    const link = el('a', entity.name);
    link.href = `?selected=${encodeURIComponent(entity.id)}`;
    link.dataset.id = entity.id;
    link.addEventListener('click', event => { event.preventDefault(); selectEntity(entity.id, { focus: true }); });
    item.append(link, el('span', ` ${entity.entityType} · ${entity.team}`, 'hint'));
    if (typeof score === 'number') item.append(el('span', ` ${score.toFixed(2)}`, 'score'));
    return item;
  }

  // MARK: zoom buttons

  $('zoom-in').addEventListener('click', () => view.zoomBy(1.5));
  $('zoom-out').addEventListener('click', () => view.zoomBy(1 / 1.5));
  $('zoom-fit').addEventListener('click', () => view.fit(true));

  // MARK: drag-and-drop import

  let pendingImport = null;
  document.addEventListener('dragover', event => { event.preventDefault(); $('drop-overlay').classList.remove('hidden'); });
  document.addEventListener('dragleave', event => { if (!event.relatedTarget) $('drop-overlay').classList.add('hidden'); });
  document.addEventListener('drop', async event => {
    event.preventDefault();
    $('drop-overlay').classList.add('hidden');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) await previewImport(await file.text(), file.name);
  });

  async function previewImport(text, fileName) {
    const dialog = $('import-dialog');
    $('import-title').textContent = `Import ${fileName}`;
    $('import-sample').replaceChildren();
    $('import-confirm').disabled = true;
    dialog.classList.remove('hidden');
    try {
      const preview = await api('/api/import?dryRun=true', { method: 'POST', body: text });
      pendingImport = text;
      $('import-summary').textContent = `${format(preview.entities)} entities (${format(preview.newEntities)} new, ${format(preview.existingEntities)} already there) and ${format(preview.relations)} relations into ${preview.teams.join(', ') || 'no team'}.`;
      for (const s of preview.sample) $('import-sample').append(el('li', `${s.name} (${s.entityType}, ${s.team})`));
      $('import-confirm').disabled = false;
    } catch (error) {
      pendingImport = null;
      $('import-summary').textContent = `This file cannot be imported: ${error.field ? error.field + ': ' : ''}${error.message}`;
    }
  }
  window.vkb.previewImport = previewImport;

  $('import-cancel').addEventListener('click', () => { pendingImport = null; $('import-dialog').classList.add('hidden'); });
  $('import-confirm').addEventListener('click', async () => {
    if (!pendingImport) return;
    $('import-confirm').disabled = true;
    try {
      const result = await api('/api/import', { method: 'POST', body: pendingImport });
      $('import-dialog').classList.add('hidden');
      showNotice(`Imported: ${format(result.entitiesCreated)} new and ${format(result.entitiesUpdated)} updated entities, ${format(result.relationsCreated)} new relations.`);
      pendingImport = null;
      await refreshAll();
    } catch (error) {
      $('import-summary').textContent = `Import failed: ${error.message}`;
    }
  });

  // MARK: live refresh

  // Follows the graph store's change feed (/api/changes, a long poll): a write anywhere in the
  // teams shown redraws at once, without polling. The cursor starts at the feed head read with
  // the stats (before the graph, so nothing written in between is missed); a cursor the feed
  // no longer covers (410) or a store restarted from a backup reloads everything.
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  let following = null;
  async function follow() {
    for (;;) {
      try {
        if (known.feedSeq === null || !window.vkb.ready) {
          await refreshAll({ fit: !window.vkb.ready });
          if (known.feedSeq === null || !window.vkb.ready) { await sleep(2000); continue; }
        }
        const p = new URLSearchParams();
        for (const team of state.teams) p.append('team', team);
        p.set('after', String(known.feedSeq));
        p.set('wait', '25000');
        const teamsAsked = state.teams.join('\u0000');
        following = { teams: teamsAsked, controller: new AbortController() };
        const feed = await api(`/api/changes?${qs(p)}`, { signal: following.controller.signal });
        following = null;
        if (teamsAsked !== state.teams.join('\u0000')) continue;
        known.feedSeq = Math.max(known.feedSeq, feed.next);
        if (feed.changes.length) {
          await refreshAll();
          await sleep(500);
        }
      } catch (error) {
        following = null;
        if (error.name === 'AbortError') continue;
        if (error.status === 410) { known.feedSeq = null; continue; }
        // The banner says what is wrong; try again shortly.
        await sleep(2000);
      }
    }
  }

  // MARK: start

  readURL();
  $('depth').value = String(state.depth);
  $('depth-value').textContent = String(state.depth);
  $('search').value = state.q;
  $('search-mode').value = state.mode;
  if (state.selected) { history.items = [state.selected]; history.index = 0; view.selected = state.selected; }
  refreshAll({ fit: true }).then(() => { if (state.q) runSearch(); follow(); });
})();
