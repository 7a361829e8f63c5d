// The force-directed drawing on a canvas (d3 v5 from Debian's node-d3 for the layout, zoom and
// drag). Canvas, not SVG, so 5,000 nodes and 10,000 links pan and zoom smoothly: one path per
// colour, labels and arrows only when zoomed in far enough to read them, nodes outside the view
// skipped. The layout runs in slices of at most ~12 ms per frame and stops when it settles.
// Nothing here ever becomes HTML: names are drawn with fillText.
'use strict';

class GraphView {
  constructor(canvas, options) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.onSelect = options.onSelect || (() => {});
    this.colorOf = options.colorOf;
    this.nodes = [];
    this.links = [];
    this.byId = new Map();
    this.selected = null;
    this.neighbours = new Set();
    this.transform = d3.zoomIdentity;
    this.pendingDraw = false;
    this.running = false;
    this.timings = {};
    this.lastDrawMs = 0;
    this.simulation = d3.forceSimulation()
      .force('link', d3.forceLink().id(d => d.id))
      .force('charge', d3.forceManyBody())
      .force('x', d3.forceX().strength(0.04))
      .force('y', d3.forceY().strength(0.04))
      .stop();
    this.zoom = d3.zoom().scaleExtent([0.02, 24]).on('zoom', () => {
      this.transform = d3.event.transform;
      this.requestDraw();
    });
    const view = this;
    const selection = d3.select(canvas);
    selection.call(d3.drag()
      .container(canvas)
      .subject(() => view.nodeAt(d3.event.x, d3.event.y))
      .on('start', () => {
        if (view.radial) return;
        const node = d3.event.subject;
        node.fx = node.x; node.fy = node.y;
        view.dragging = node;
        view.simulation.alphaTarget(0.2);
        view.wake();
      })
      .on('drag', () => {
        const node = d3.event.subject;
        const [x, y] = view.transform.invert([d3.event.x, d3.event.y]);
        // A neighbourhood's rings stay put: only the dragged node moves.
        if (view.radial) { node.x = x; node.y = y; } else { node.fx = x; node.fy = y; }
        view.requestDraw();
      })
      .on('end', () => {
        if (view.radial) return;
        const node = d3.event.subject;
        node.fx = null; node.fy = null;
        view.dragging = null;
        view.simulation.alphaTarget(0);
      }));
    selection.call(this.zoom).on('dblclick.zoom', null);
    canvas.addEventListener('click', event => {
      const rect = canvas.getBoundingClientRect();
      const node = view.nodeAt(event.clientX - rect.left, event.clientY - rect.top);
      if (node) view.onSelect(node);
    });
    canvas.addEventListener('mousemove', event => {
      const rect = canvas.getBoundingClientRect();
      const node = view.nodeAt(event.clientX - rect.left, event.clientY - rect.top);
      canvas.title = node ? `${node.name} (${node.entityType}, ${node.team})` : '';
      canvas.style.cursor = node ? 'pointer' : 'grab';
    });
    window.addEventListener('resize', () => this.resize());
    this.resize();
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.width * ratio);
    this.canvas.height = Math.round(this.height * ratio);
    this.ratio = ratio;
    this.requestDraw();
  }

  radius(node) { return 3 + (node.significance || 5) * 0.7; }

  /// The node under a point in canvas pixels, if any.
  nodeAt(px, py) {
    const [x, y] = this.transform.invert([px, py]);
    let best = null, bestDistance = Infinity;
    const slack = 4 / this.transform.k;
    for (const node of this.nodes) {
      const dx = node.x - x, dy = node.y - y;
      const distance = dx * dx + dy * dy;
      const r = this.radius(node) + slack;
      if (distance <= r * r && distance < bestDistance) { best = node; bestDistance = distance; }
    }
    return best;
  }

  /// Where a node is drawn, in canvas pixels (for tests and tooltips).
  screenPosition(id) {
    const node = this.byId.get(id);
    if (!node) return null;
    const [x, y] = this.transform.apply([node.x, node.y]);
    return { x, y };
  }

  /// Replaces the drawing's data. Nodes already drawn keep their positions and new neighbours of
  /// a known node start next to it — unless `fresh` (a new view: a focus, or back to the
  /// overview), which starts from the given positions or a new layout. `focus` is the node whose
  /// neighbourhood this is, if any (its name and its neighbours' are labelled first).
  setData(nodes, links, { fit = false, fresh: newView = false, focus = null } = {}) {
    const old = newView ? new Map() : this.byId;
    this.focus = focus;
    // A neighbourhood is drawn in rings around its centre, one band per hop, nothing on top of
    // anything; it does not move unless dragged.
    this.radial = Boolean(focus);
    this.byId = new Map();
    for (const node of nodes) {
      const previous = old.get(node.id);
      if (previous) {
        node.x = previous.x; node.y = previous.y; node.vx = previous.vx; node.vy = previous.vy;
      } else if (old.size > 0) {
        // Positions computed by the server fit a drawing from scratch only; a node added to a
        // drawing starts next to its neighbours instead.
        delete node.x; delete node.y;
      }
      this.byId.set(node.id, node);
    }
    // Rings again when the neighbourhood is new or gained a node (a live refresh): a node placed
    // by hand elsewhere would sit on top of another.
    if (this.radial && (newView || nodes.some(n => n.x === undefined))) this.radialLayout(nodes, links, focus);
    const validLinks = links.filter(l => this.byId.has(l.source) && this.byId.has(l.target));
    for (const link of validLinks) {
      const a = this.byId.get(link.source), b = this.byId.get(link.target);
      if (a.x === undefined && b.x !== undefined) { a.x = b.x + (Math.random() - 0.5) * 30; a.y = b.y + (Math.random() - 0.5) * 30; }
      if (b.x === undefined && a.x !== undefined) { b.x = a.x + (Math.random() - 0.5) * 30; b.y = a.y + (Math.random() - 0.5) * 30; }
    }
    const fresh = nodes.filter(n => n.x === undefined).length;
    this.nodes = nodes;
    this.links = validLinks;
    const n = nodes.length;
    const large = n > 1500;
    this.frameBudgetMs = large ? 40 : 12;
    this.simulation.nodes(nodes);
    this.simulation.force('link').links(validLinks).distance(large ? 18 : 45).strength(large ? 0.4 : 0.7).iterations(1);
    this.simulation.force('charge').strength(large ? -12 : -90).theta(large ? 1.5 : 0.9).distanceMax(large ? 150 : 500);
    this.simulation.alphaDecay(large ? 0.06 : 0.0228).alphaMin(large ? 0.005 : 0.001).velocityDecay(large ? 0.5 : 0.4);
    // Nothing new to place (positions from the server, or from the drawing before): no layout.
    this.simulation.alpha(fresh === 0 || this.radial ? 0 : fresh > n / 2 ? 1 : Math.max(0.3, fresh / Math.max(1, n)));
    this.neighbours = this.neighbourSet(this.selected);
    this.focusNeighbours = this.neighbourSet(focus);
    this.orderLabels();
    this.fitPending = fit || fresh > n / 2 || (old.size === 0 && n > 0);
    this.canvas.dataset.nodes = String(n);
    this.canvas.dataset.links = String(validLinks.length);
    this.canvas.dataset.state = 'layout';
    this.timings.layoutStart = performance.now();
    this.wake();
  }

  /// Places a neighbourhood in rings around `focus`: the nodes one hop away in the first band of
  /// rings, two hops in the next, and so on; each ring holds as many as fit without touching,
  /// grouped by type and most significant first; a node further out sits near the angle of the
  /// node that links it in.
  radialLayout(nodes, links, focus) {
    const byId = new Map(nodes.map(n => [n.id, n]));
    const adjacent = new Map();
    for (const l of links) {
      const s = typeof l.source === 'object' ? l.source.id : l.source;
      const t = typeof l.target === 'object' ? l.target.id : l.target;
      if (!byId.has(s) || !byId.has(t)) continue;
      if (!adjacent.has(s)) adjacent.set(s, []);
      if (!adjacent.has(t)) adjacent.set(t, []);
      adjacent.get(s).push(t);
      adjacent.get(t).push(s);
    }
    const hop = new Map(), parent = new Map();
    const centre = byId.get(focus);
    let frontier = centre ? [centre.id] : [];
    if (centre) hop.set(centre.id, 0);
    while (frontier.length) {
      const next = [];
      for (const id of frontier) {
        for (const other of adjacent.get(id) || []) {
          if (hop.has(other)) continue;
          hop.set(other, hop.get(id) + 1);
          parent.set(other, id);
          next.push(other);
        }
      }
      frontier = next;
    }
    const maxHop = Math.max(0, ...hop.values());
    for (const n of nodes) if (!hop.has(n.id)) hop.set(n.id, maxHop + 1);
    const angle = new Map();
    const gap = 2 * this.radius({ significance: 10 }) + 4;
    let radius = 0;
    if (centre) { centre.x = 0; centre.y = 0; angle.set(centre.id, 0); }
    for (let h = 1; h <= maxHop + 1; h++) {
      const band = nodes.filter(n => hop.get(n.id) === h);
      if (!band.length) continue;
      const parentAngle = n => angle.get(parent.get(n.id)) ?? 0;
      band.sort((a, b) => h === 1
        ? (a.entityType < b.entityType ? -1 : a.entityType > b.entityType ? 1 : 0) || (b.significance || 0) - (a.significance || 0) || (a.name < b.name ? -1 : 1)
        : parentAngle(a) - parentAngle(b) || (b.significance || 0) - (a.significance || 0));
      radius += h === 1 ? Math.max(60, gap * 3) : gap * 2;
      let placed = 0;
      while (placed < band.length) {
        const capacity = Math.max(1, Math.floor(2 * Math.PI * radius / gap));
        const ring = band.slice(placed, placed + capacity);
        // The last ring of a band spreads its nodes around the whole circle.
        const step = 2 * Math.PI / ring.length;
        ring.forEach((n, i) => {
          const a = i * step + (h % 2 ? 0 : step / 2);
          n.x = radius * Math.cos(a); n.y = radius * Math.sin(a);
          n.vx = 0; n.vy = 0;
          angle.set(n.id, a);
        });
        placed += ring.length;
        if (placed < band.length) radius += gap;
      }
    }
  }

  neighbourSet(id) {
    const set = new Set();
    if (!id) return set;
    for (const l of this.links) {
      const s = typeof l.source === 'object' ? l.source.id : l.source;
      const t = typeof l.target === 'object' ? l.target.id : l.target;
      if (s === id) set.add(t);
      if (t === id) set.add(s);
    }
    return set;
  }

  select(id) {
    this.selected = id;
    this.neighbours = this.neighbourSet(id);
    this.orderLabels();
    this.requestDraw();
  }

  /// The order in which names are offered a place: the selection, the focus, their neighbours,
  /// then by significance.
  orderLabels() {
    const rank = n => n.id === this.selected ? 0 : n.id === this.focus ? 1 : this.neighbours.has(n.id) ? 2 : (this.focusNeighbours && this.focusNeighbours.has(n.id)) ? 3 : 4;
    this.labelOrder = this.nodes.slice().sort((a, b) => rank(a) - rank(b) || (b.significance || 0) - (a.significance || 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /// Runs the layout in time slices until it settles. The slices are macrotasks (not animation
  /// frames), so the layout is not held to the display's frame rate; drawing happens on
  /// animation frames in between, so the page stays interactive while it runs.
  wake() {
    if (this.running) return;
    this.running = true;
    const step = () => {
      const start = performance.now();
      const simulation = this.simulation;
      while (simulation.alpha() > simulation.alphaMin() && performance.now() - start < (this.frameBudgetMs || 12)) simulation.tick();
      if (this.dragging && simulation.alpha() <= simulation.alphaMin()) simulation.tick();
      if (this.fitPending && simulation.alpha() < 0.5) this.fit(false);
      // While a large layout runs, show its progress ten times a second; interaction (zoom,
      // drag) still draws at once through requestDraw.
      if (this.nodes.length <= 1500 || performance.now() - (this.lastFrameAt || 0) > 100) this.requestDraw();
      if (simulation.alpha() > simulation.alphaMin() || this.dragging) {
        setTimeout(step, 0);
      } else {
        this.running = false;
        if (this.fitPending) this.fit(false);
        requestAnimationFrame(() => {
          this.draw();
          this.timings.settled = performance.now();
          this.canvas.dataset.state = 'settled';
          this.canvas.dispatchEvent(new CustomEvent('settled'));
        });
      }
    };
    setTimeout(step, 0);
  }

  requestDraw() {
    if (this.pendingDraw || this.benchmarking) return;
    this.pendingDraw = true;
    requestAnimationFrame(() => { this.pendingDraw = false; this.lastFrameAt = performance.now(); this.draw(); });
  }

  /// Zooms so that every node is in view.
  fit(animate = true) {
    this.fitPending = false;
    if (!this.nodes.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of this.nodes) { if (n.x < x0) x0 = n.x; if (n.x > x1) x1 = n.x; if (n.y < y0) y0 = n.y; if (n.y > y1) y1 = n.y; }
    const w = Math.max(40, x1 - x0), h = Math.max(40, y1 - y0);
    const k = Math.min(2, 0.9 / Math.max(w / this.width, h / this.height));
    const t = d3.zoomIdentity.translate(this.width / 2, this.height / 2).scale(k).translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
    const target = d3.select(this.canvas);
    (animate ? target.transition().duration(400) : target).call(this.zoom.transform, t);
  }

  zoomBy(factor) {
    d3.select(this.canvas).transition().duration(200).call(this.zoom.scaleBy, factor);
  }


  draw() {
    const started = performance.now();
    const { ctx, transform: t } = this;
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    ctx.translate(t.x, t.y);
    ctx.scale(t.k, t.k);
    // The part of the plane in view, with a margin.
    const [vx0, vy0] = t.invert([-50, -50]);
    const [vx1, vy1] = t.invert([this.width + 50, this.height + 50]);
    const inView = n => n.x >= vx0 && n.x <= vx1 && n.y >= vy0 && n.y <= vy1;

    // What is in view decides how much detail is affordable: arrows, relation types and names
    // cost a path segment or a fillText each, so they are drawn only when few enough are visible.
    const visibleNodes = [];
    for (const n of this.nodes) if (inView(n)) visibleNodes.push(n);
    const visibleLinks = [];
    for (const l of this.links) if (inView(l.source) || inView(l.target)) visibleLinks.push(l);
    ctx.lineWidth = 1 / t.k;
    ctx.strokeStyle = 'rgba(110,120,140,0.45)';
    ctx.beginPath();
    for (const l of visibleLinks) {
      ctx.moveTo(l.source.x, l.source.y);
      ctx.lineTo(l.target.x, l.target.y);
    }
    ctx.stroke();
    if (this.selected) {
      // A hub's hundreds of links highlighted at full strength would hide everything else.
      ctx.strokeStyle = this.neighbours.size > 150 ? 'rgba(26,86,176,0.25)' : 'rgba(26,86,176,0.9)';
      ctx.lineWidth = (this.neighbours.size > 150 ? 1 : 2) / t.k;
      ctx.beginPath();
      for (const l of visibleLinks) {
        if (l.source.id !== this.selected && l.target.id !== this.selected) continue;
        ctx.moveTo(l.source.x, l.source.y);
        ctx.lineTo(l.target.x, l.target.y);
      }
      ctx.stroke();
    }
    if (visibleLinks.length <= 3000 && (t.k >= 0.6 || visibleLinks.length <= 400)) {
      ctx.fillStyle = 'rgba(90,100,120,0.8)';
      ctx.beginPath();
      for (const l of visibleLinks) {
        const s = l.source, e = l.target;
        if (!inView(e)) continue;
        const dx = e.x - s.x, dy = e.y - s.y, length = Math.hypot(dx, dy) || 1;
        const ux = dx / length, uy = dy / length, r = this.radius(e);
        const tipX = e.x - ux * r, tipY = e.y - uy * r, size = 5;
        ctx.moveTo(tipX, tipY);
        ctx.lineTo(tipX - ux * size - uy * size * 0.5, tipY - uy * size + ux * size * 0.5);
        ctx.lineTo(tipX - ux * size + uy * size * 0.5, tipY - uy * size - ux * size * 0.5);
        ctx.closePath();
      }
      ctx.fill();
    }
    // Nodes, one path per colour.
    const byColor = new Map();
    for (const n of visibleNodes) {
      const color = this.colorOf(n.entityType);
      let list = byColor.get(color);
      if (!list) byColor.set(color, list = []);
      list.push(n);
    }
    const circles = list => {
      ctx.beginPath();
      for (const n of list) {
        const r = this.radius(n);
        ctx.moveTo(n.x + r, n.y);
        ctx.arc(n.x, n.y, r, 0, 2 * Math.PI);
      }
    };
    for (const [color, list] of byColor) {
      ctx.fillStyle = color;
      circles(list);
      ctx.fill();
    }
    ctx.lineWidth = 1 / t.k;
    ctx.strokeStyle = '#fff';
    if (visibleNodes.length <= 3000) {
      circles(visibleNodes);
      ctx.stroke();
    }
    if (this.selected && this.byId.has(this.selected)) {
      const n = this.byId.get(this.selected);
      ctx.strokeStyle = '#1a56b0';
      ctx.lineWidth = 3 / t.k;
      ctx.beginPath();
      ctx.arc(n.x, n.y, this.radius(n) + 3 / t.k, 0, 2 * Math.PI);
      ctx.stroke();
    }
    this.drawLabels(visibleNodes, visibleLinks, inView);
    this.lastDrawMs = performance.now() - started;
    if (!this.timings.firstDraw && this.nodes.length) this.timings.firstDraw = performance.now();
  }

  /// Names (and, when few links are in view, relation types) in screen pixels at a fixed size,
  /// never on top of one another: each is offered a place in `labelOrder` and left out when its
  /// box would overlap one already placed — zooming in makes room for more. A hub's 2,000
  /// neighbours show as many names as fit, the most significant first, instead of a blob.
  /// `placedLabels` keeps the boxes of the last drawing (the page's tests check them).
  drawLabels(visibleNodes, visibleLinks, inView) {
    const { ctx, transform: t } = this;
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    const placed = [];
    const cellSize = 64, grid = new Map();
    const cells = (box, visit) => {
      for (let cx = Math.floor(box.x0 / cellSize); cx <= Math.floor(box.x1 / cellSize); cx++) {
        for (let cy = Math.floor(box.y0 / cellSize); cy <= Math.floor(box.y1 / cellSize); cy++) {
          if (visit(`${cx},${cy}`) === false) return false;
        }
      }
      return true;
    };
    const free = box => cells(box, key => {
      for (const other of grid.get(key) || []) {
        if (box.x0 < other.x1 && other.x0 < box.x1 && box.y0 < other.y1 && other.y0 < box.y1) return false;
      }
      return true;
    });
    const take = box => {
      placed.push(box);
      cells(box, key => { let list = grid.get(key); if (!list) grid.set(key, list = []); list.push(box); });
    };
    const inside = box => box.x1 > 0 && box.x0 < this.width && box.y1 > 0 && box.y0 < this.height;
    // Few enough in view: every visible name is offered a place; otherwise the selection and
    // neighbourhoods, then the 300 most significant in view.
    const many = visibleNodes.length > 1500;
    let offered = 0;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillStyle = '#1d2330';
    ctx.strokeStyle = 'rgba(251,251,253,0.85)';
    ctx.lineWidth = 3;
    ctx.lineJoin = 'round';
    for (const n of this.labelOrder || []) {
      if (!inView(n)) continue;
      const important = n.id === this.selected || n.id === this.focus || this.neighbours.has(n.id);
      if (many && !important && offered >= 300) break;
      offered++;
      if (n.labelWidth === undefined) n.labelWidth = ctx.measureText(n.name).width;
      const [sx, sy] = t.apply([n.x, n.y]);
      const x = sx + this.radius(n) * t.k + 3, y = sy + 4;
      const box = { id: n.id, text: n.name, x0: x - 1, y0: y - 11, x1: x + n.labelWidth + 1, y1: y + 3 };
      if (!inside(box) || !free(box)) continue;
      take(box);
      ctx.strokeText(n.name, x, y);
      ctx.fillText(n.name, x, y);
    }
    if (visibleLinks.length <= 250 && (t.k >= 0.8 || this.links.length <= 250)) {
      ctx.font = '10px system-ui, sans-serif';
      ctx.textAlign = 'left';
      ctx.fillStyle = '#6a7385';
      for (const l of visibleLinks) {
        const s = l.source, e = l.target;
        if (!inView(s) || !inView(e)) continue;
        const [ax, ay] = t.apply([s.x, s.y]), [bx, by] = t.apply([e.x, e.y]);
        const width = ctx.measureText(l.relationType).width;
        const x = (ax + bx) / 2 - width / 2, y = (ay + by) / 2 - 2;
        const box = { id: `${s.id}>${e.id}`, text: l.relationType, relation: true, x0: x - 1, y0: y - 10, x1: x + width + 1, y1: y + 3 };
        if (!inside(box) || !free(box)) continue;
        take(box);
        ctx.strokeText(l.relationType, x, y);
        ctx.fillText(l.relationType, x, y);
      }
    }
    this.placedLabels = placed;
    this.canvas.dataset.labels = String(placed.filter(b => !b.relation).length);
  }

  /// Zooms in and out over `frames` animation frames, returning every frame's interval and
  /// draw time (the benchmark's "frame time while zooming").
  benchmarkZoom(frames = 120) {
    return new Promise(resolve => {
      const intervals = [], draws = [];
      let last = performance.now(), frame = 0;
      const center = [this.width / 2, this.height / 2];
      this.benchmarking = true;
      const step = now => {
        intervals.push(now - last);
        last = now;
        const factor = frame < frames / 2 ? 1.03 : 1 / 1.03;
        this.zoom.scaleBy(d3.select(this.canvas), factor, center);
        const start = performance.now();
        this.draw();
        draws.push(performance.now() - start);
        frame++;
        if (frame < frames) requestAnimationFrame(step); else { this.benchmarking = false; resolve({ intervals: intervals.slice(1), draws }); }
      };
      requestAnimationFrame(step);
    });
  }
}

window.GraphView = GraphView;
