// A session's trajectory in the details panel: the entities `ukb learn` writes for each coding
// session (type `Session`) hold one observation per exchange, with its intent, the intent's
// confidence, its time and the concepts it was close to; their relations `produced` and `used`
// lead to the knowledge the session gave and the knowledge it drew on.
// Everything is rendered with textContent (never HTML), so transcripts cannot inject markup.
'use strict';

window.KBTrajectory = (() => {
  // One colour per intent of the taxonomy (ukb learn's SessionIntent).
  const intentColours = {
    'learning': '#4c78a8', 'debugging': '#e45756', 'feature-dev': '#54a24b', 'refactoring': '#b279a2',
    'testing': '#f58518', 'optimization': '#72b7b2', 'documentation': '#9d755d', 'exploration': '#bab0ac',
  };

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  /// The exchange steps of a Session entity, in time order (stored order when times are equal
  /// or missing).
  function steps(entity) {
    const found = entity.observations
      .map((o, index) => ({ o, index }))
      .filter(({ o }) => o.type === 'exchange' && o.metadata && o.metadata.intent);
    found.sort((a, b) => (a.o.date || '').localeCompare(b.o.date || '') || a.index - b.index);
    return found.map(({ o }) => ({
      date: o.date || '',
      intent: o.metadata.intent,
      confidence: Number(o.metadata.intent_confidence || 0),
      by: o.metadata.intent_by || '',
      goal: o.metadata.goal || '',
      concepts: o.metadata.concepts || '',
      produced: o.metadata.produced || '',
      text: o.content,
    }));
  }

  /// Fills `section` for `entity` (with `outbound` relations); hides it for other types.
  function render(section, entity, outbound, open) {
    section.replaceChildren();
    if (entity.entityType !== 'Session') { section.classList.add('hidden'); return; }
    section.classList.remove('hidden');
    const path = steps(entity);
    section.append(el('h3', 'Trajectory'));
    const goal = (entity.metadata && entity.metadata.goal) || '';
    const goalLine = el('div', goal ? `Goal: ${goal}` : 'Goal: not stated yet', 'trajectory-goal');
    goalLine.id = 'd-goal';
    section.append(goalLine);

    // Intents over time: one cell per exchange, coloured by its intent.
    const strip = el('div', null, 'intent-strip');
    strip.id = 'd-intent-strip';
    strip.setAttribute('role', 'img');
    strip.setAttribute('aria-label', `intents over time: ${path.map(s => s.intent).join(', ') || 'none'}`);
    for (const step of path) {
      const cell = el('span', null, 'intent-cell');
      cell.dataset.intent = step.intent;
      cell.style.background = intentColours[step.intent] || '#999';
      cell.style.opacity = String(0.35 + 0.65 * Math.max(0, Math.min(1, step.confidence)));
      cell.title = `${step.date || 'no time'} · ${step.intent} (${step.confidence.toFixed(2)})`;
      strip.append(cell);
    }
    section.append(strip);
    const counts = {};
    for (const step of path) counts[step.intent] = (counts[step.intent] || 0) + 1;
    const legend = el('div', null, 'intent-legend');
    for (const [intent, count] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
      const item = el('span');
      const dot = el('span', null, 'swatch');
      dot.style.background = intentColours[intent] || '#999';
      item.append(dot, el('span', ` ${intent} ${count}`));
      legend.append(item);
    }
    section.append(legend);

    const list = el('ol', null, 'trajectory-steps');
    list.id = 'd-steps';
    for (const step of path) {
      const item = el('li');
      item.dataset.intent = step.intent;
      const head = el('div', null, 'hint');
      head.textContent = [step.date, `${step.intent} (${step.confidence.toFixed(2)}${step.by ? `, by ${step.by}` : ''})`].filter(Boolean).join(' · ');
      item.append(head, el('div', step.text));
      if (step.produced) item.append(el('div', `produced: ${step.produced}`, 'hint'));
      if (step.concepts) item.append(el('div', `used: ${step.concepts}`, 'hint'));
      list.append(item);
    }
    if (!path.length) list.append(el('li', 'no exchanges recorded', 'hint'));
    section.append(list);

    for (const [title, type, id] of [['Knowledge produced', 'produced', 'd-produced'], ['Knowledge used', 'used', 'd-used']]) {
      section.append(el('h3', title));
      const links = el('ul', null, 'relations');
      links.id = id;
      for (const relation of outbound.filter(r => r.relationType === type)) {
        const item = el('li');
        const link = el('a', relation.to);
        const target = `${relation.team}:${relation.to}`;
        link.href = `?selected=${encodeURIComponent(target)}`;
        link.addEventListener('click', event => { event.preventDefault(); open(target); });
        item.append(link);
        links.append(item);
      }
      if (!links.children.length) links.append(el('li', 'none', 'hint'));
      section.append(links);
    }
  }

  return { render, steps, intentColours };
})();
