// The reference for vkb-benchmark: the original VKB's architecture, a Node.js HTTP server that
// holds the whole graph in its own memory (as Graphology did) and answers the same two reads
// from it. Started by the benchmark with the same data; not part of the product.
//
//   node reference_server.js PORT shared-memory.json
'use strict';
const http = require('http');
const fs = require('fs');

const [port, file] = process.argv.slice(2);
const document = JSON.parse(fs.readFileSync(file, 'utf8'));
const team = (document.metadata && document.metadata.team) || 'default';
const entities = document.entities.map(e => ({
  id: `${team}:${e.name}`, team, name: e.name, entityType: e.entityType,
  significance: e.significance || 5, confidence: e.confidence || 1, source: e.source || 'manual',
  observations: (e.observations || []).map(o => (typeof o === 'string' ? { content: o } : o)),
}));
const byId = new Map(entities.map(e => [e.id, e]));
const outEdges = new Map();
for (const r of document.relations) {
  const from = `${team}:${r.from}`;
  if (!outEdges.has(from)) outEdges.set(from, []);
  outEdges.get(from).push({ source: from, target: `${team}:${r.to}`, relationType: r.relationType, significance: r.significance || 5 });
}
// Kept sorted once, as an index would be.
const bySignificance = entities.slice().sort((a, b) => b.significance - a.significance || (a.name < b.name ? -1 : 1));
const byName = entities.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

function summary(e) {
  return { id: e.id, team: e.team, name: e.name, entityType: e.entityType, significance: e.significance, confidence: e.confidence, source: e.source };
}

function graph(query) {
  const limit = Math.min(20000, parseInt(query.get('limit') || '5000', 10));
  const types = (query.get('type') || '').split(',').filter(Boolean);
  const chosen = [];
  let matching = 0;
  for (const e of bySignificance) {
    if (types.length && !types.includes(e.entityType)) continue;
    matching++;
    if (chosen.length < limit) chosen.push(e);
  }
  const ids = new Set(chosen.map(e => e.id));
  const links = [];
  for (const e of chosen) for (const l of outEdges.get(e.id) || []) if (ids.has(l.target)) links.push(l);
  return { nodes: chosen.map(summary), links, capped: matching > chosen.length, matching, limit };
}

function list(query) {
  const limit = Math.min(1000, parseInt(query.get('limit') || '50', 10));
  const types = (query.get('type') || '').split(',').filter(Boolean);
  const text = (query.get('q') || '').toLowerCase();
  const after = query.get('cursor') || '';
  const page = [];
  for (const e of byName) {
    if (after && e.name <= after) continue;
    if (types.length && !types.includes(e.entityType)) continue;
    if (text && !e.name.toLowerCase().includes(text) && !e.observations.some(o => o.content.toLowerCase().includes(text))) continue;
    page.push(e);
    if (page.length > limit) break;
  }
  const more = page.length > limit;
  if (more) page.pop();
  return { entities: page, nextCursor: more ? page[page.length - 1].name : null };
}

http.createServer((request, response) => {
  const url = new URL(request.url, 'http://localhost');
  let body;
  if (url.pathname === '/api/graph') body = graph(url.searchParams);
  else if (url.pathname === '/api/entities') body = list(url.searchParams);
  else if (url.pathname === '/health') body = { status: 'healthy', entities: entities.length };
  else { response.writeHead(404); response.end(); return; }
  const text = JSON.stringify(body);
  response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}).listen(Number(port), '127.0.0.1');
