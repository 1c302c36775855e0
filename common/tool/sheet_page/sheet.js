/* pixstor-azure contact sheet: filter, sort, a large view, and corrections kept in the
   browser until downloaded. Reads everything from the page's own elements (data-*). */
(function () {
  'use strict';
  var meta = JSON.parse(document.getElementById('sheet-meta').textContent);
  var grid = document.getElementById('grid');
  var cards = Array.prototype.slice.call(grid.querySelectorAll('article.card'));
  var byPath = {};
  cards.forEach(function (card) { byPath[card.dataset.path] = card; });
  var $ = function (id) { return document.getElementById(id); };
  var STORE = 'pixstor-azure-sheet:' + location.pathname;
  var SUBSTRING = { caption: true, text: true, from: true, any: true };
  var STEP = 0.005;  // a key press moves a box by this share of the picture (Shift: 10x)
  var MIN = 0.005;  // the smallest side of a box, as a share of the picture

  // ------------------------------------------------------------------ corrections

  var corrections = load();
  var order = cards.slice();  // the cards in the order shown, hidden ones included
  var shown = cards.slice();  // those not filtered out, in order
  var filters = [];
  var index = null;

  function load() {
    var found = {};
    try { found = JSON.parse(localStorage.getItem(STORE) || '{}') || {}; } catch (e) { found = {}; }
    var kept = {};
    Object.keys(found).forEach(function (path) {
      var card = byPath[path];
      // A picture whose content changed since the sheet was made: its corrections no longer fit.
      if (card && found[path] && found[path].digest === card.dataset.digest) kept[path] = found[path];
    });
    return kept;
  }

  function save() {
    try { localStorage.setItem(STORE, JSON.stringify(corrections)); } catch (e) { /* private mode: kept in this page only */ }
    var count = Object.keys(corrections).filter(function (p) { return touched(corrections[p]); }).length;
    $('corrected').textContent = count ? count + (count === 1 ? ' picture corrected' : ' pictures corrected') : 'No corrections yet';
    $('download').disabled = !count;
    $('clear').disabled = !count;
  }

  function touched(c) {
    if (!c) return false;
    var any = function (o) { return Object.keys(o || {}).some(function (k) { return o[k] && (o[k].verdict || o[k]) !== 'unmarked'; }); };
    return any(c.classes) || any(c.boxes) || (c.added_classes || []).length > 0 || (c.new_boxes || []).length > 0;
  }

  function entry(card) {
    var path = card.dataset.path;
    if (!corrections[path]) corrections[path] = { digest: card.dataset.digest, classes: {}, boxes: {}, added_classes: [], new_boxes: [] };
    return corrections[path];
  }

  function num(text) { return text === undefined || text === '' ? null : Number(text); }

  function original(card) {
    var classes = Array.prototype.map.call(card.querySelectorAll('.val[data-field="classes"]'), function (el) {
      return { label: el.dataset.value, probability: num(el.dataset.probability) };
    });
    var boxes = Array.prototype.map.call(card.querySelectorAll('.frame > .box:not(.added)'), function (el) {
      var d = el.dataset;
      return { key: d.key, kind: d.kind, label: d.label, probability: num(d.probability), color: el.style.getPropertyValue('--c'), ink: el.style.getPropertyValue('--t'),
               left: +d.left, top: +d.top, width: +d.width, height: +d.height };
    });
    return { classes: classes, boxes: boxes };
  }

  // The picture as corrected: each class and box with its verdict, the boxes' places now.
  function current(card) {
    var base = original(card), c = corrections[card.dataset.path] || {};
    var classes = base.classes.map(function (k) {
      return { label: k.label, probability: k.probability, verdict: (c.classes || {})[k.label] || 'unmarked' };
    });
    (c.added_classes || []).forEach(function (label) { classes.push({ label: label, probability: null, verdict: 'added' }); });
    var boxes = base.boxes.map(function (b) {
      var fix = (c.boxes || {})[b.key], now = Object.assign({}, b, { verdict: 'unmarked' });
      if (fix) Object.assign(now, fix);
      if (fix && fix.verdict === 'corrected') now.was = { label: b.label, left: b.left, top: b.top, width: b.width, height: b.height };
      return now;
    });
    (c.new_boxes || []).forEach(function (b, i) {
      boxes.push(Object.assign({ key: 'n' + i, kind: 'detected', probability: null, verdict: 'added', color: '#ffffff' }, b));
    });
    return { classes: classes, boxes: boxes };
  }

  function round4(x) { return Math.round(x * 10000) / 10000; }

  function download() {
    var pictures = [];
    cards.forEach(function (card) {
      var c = corrections[card.dataset.path];
      if (!touched(c)) return;
      var now = current(card);
      pictures.push({
        path: card.dataset.path,
        digest: card.dataset.digest,
        width: +card.dataset.width,
        height: +card.dataset.height,
        classes: now.classes.map(function (k) {
          var out = { label: k.label, verdict: k.verdict };
          if (k.probability !== null) out.probability = k.probability;
          return out;
        }),
        boxes: now.boxes.filter(function (b) { return b.kind === 'detected'; }).map(function (b) {
          var out = { label: b.label, verdict: b.verdict, left: round4(b.left), top: round4(b.top), width: round4(b.width), height: round4(b.height) };
          if (b.probability !== null) out.probability = b.probability;
          if (b.was) out.was = b.was;
          return out;
        })
      });
    });
    var file = {
      format: meta.format, version: meta.version,
      sheet: { made: meta.made, page: decodeURIComponent(location.pathname) },
      downloaded: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      pictures: pictures
    };
    var blob = new Blob([JSON.stringify(file, null, 1)], { type: 'application/json' });
    var link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = 'corrections.json';
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  // The card in the grid shows the corrections too: verdicts, moved and added boxes.
  function paintCard(card) {
    var c = corrections[card.dataset.path];
    card.classList.toggle('corrected', touched(c));
    var now = current(card), frame = card.querySelector('.frame');
    if (!frame) return;
    Array.prototype.forEach.call(frame.querySelectorAll('.box.added'), function (el) { el.remove(); });
    now.boxes.forEach(function (b) {
      var el = b.verdict === 'added' ? null : frame.querySelector('.box[data-key="' + b.key + '"]');
      if (!el) {
        el = document.createElement('div');
        el.className = 'box detected added';
        el.appendChild(document.createElement('span')).className = 'label';
        frame.appendChild(el);
      }
      el.dataset.verdict = b.verdict;
      place(el, b);
      el.style.setProperty('--c', b.color || '#ffffff');
      el.style.setProperty('--t', b.ink || '#000');
      el.querySelector('.label').textContent = b.label + (b.probability !== null ? ' ' + b.probability.toFixed(2) : '');
    });
  }

  function place(el, b) {
    el.style.left = (b.left * 100) + '%';
    el.style.top = (b.top * 100) + '%';
    el.style.width = (b.width * 100) + '%';
    el.style.height = (b.height * 100) + '%';
  }

  // ------------------------------------------------------------------ filter and sort

  function buildIndex() {
    if (index) return index;
    index = new Map();
    cards.forEach(function (card) { index.set(card, { fields: {}, all: (card.dataset.name + '\n' + card.dataset.path).toLowerCase() }); });
    Array.prototype.forEach.call(grid.querySelectorAll('.val'), function (el) {
      var card = el.closest('.card'), at = index.get(card), value = el.dataset.value.toLowerCase();
      (at.fields[el.dataset.field] = at.fields[el.dataset.field] || []).push(value);
      at.all += '\n' + value;
    });
    grid.querySelectorAll('.box').forEach(function (el) {
      var at = index.get(el.closest('.card'));
      if (at) at.all += '\n' + el.dataset.label.toLowerCase();
    });
    return index;
  }

  function matches(card, f) {
    var at = index.get(card), wanted = f.value.toLowerCase();
    if (!f.field) return at.all.indexOf(wanted) >= 0;
    var values = at.fields[f.field] || [];
    if (SUBSTRING[f.field]) return values.some(function (v) { return v.indexOf(wanted) >= 0; });
    return values.indexOf(wanted) >= 0;
  }

  function apply() {
    buildIndex();
    shown = [];
    order.forEach(function (card) {
      var ok = filters.every(function (f) { return matches(card, f); });
      if (card.hidden === ok) card.hidden = !ok;
      if (ok) shown.push(card);
    });
    $('count').textContent = shown.length === cards.length ? 'All ' + cards.length.toLocaleString('en') + ' pictures shown'
      : shown.length.toLocaleString('en') + ' of ' + cards.length.toLocaleString('en') + ' pictures shown';
    $('empty').hidden = shown.length > 0;
    var chips = $('chips');
    chips.textContent = '';
    filters.forEach(function (f, i) {
      var li = document.createElement('li');
      li.appendChild(document.createTextNode((f.field || 'any field') + (SUBSTRING[f.field || 'any'] ? ' has ' : ': ') + f.value));
      var remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '\u2715';
      remove.setAttribute('aria-label', 'Remove the filter ' + (f.field || 'any field') + ' ' + f.value);
      remove.addEventListener('click', function () { filters.splice(i, 1); changed(); });
      li.appendChild(remove);
      chips.appendChild(li);
    });
    roving(shown[0] && shown.indexOf(document.activeElement) < 0 ? shown[0] : null);
  }

  function confidence(card) { return card.dataset.confidence === '' ? null : Number(card.dataset.confidence); }

  function sort(how) {
    var keyed = cards.slice();
    if (how === 'least' || how === 'most') {
      var sign = how === 'least' ? 1 : -1;
      keyed.sort(function (a, b) {
        var x = confidence(a), y = confidence(b);
        if (x === null || y === null) return (x === null) - (y === null) || a.dataset.index - b.dataset.index;
        return sign * (x - y) || a.dataset.index - b.dataset.index;
      });
    } else if (how === 'problems') {
      var rank = function (c) { return c.dataset.problem ? 0 : (c.querySelector('.val[data-value="not tagged"]') ? 1 : 2); };
      keyed.sort(function (a, b) { return rank(a) - rank(b) || a.dataset.index - b.dataset.index; });
    }
    order = keyed;
    var fragment = document.createDocumentFragment();
    order.forEach(function (card) { fragment.appendChild(card); });
    grid.appendChild(fragment);
  }

  function changed() {
    var state = new URLSearchParams();
    if (filters.length) state.set('filter', JSON.stringify(filters));
    if ($('sort').value !== 'path') state.set('sort', $('sort').value);
    var hash = state.toString();
    history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search);
    apply();
  }

  function addFilter(field, value) {
    value = value.trim();
    if (!value) return;
    if (!filters.some(function (f) { return f.field === field && f.value.toLowerCase() === value.toLowerCase(); })) {
      filters.push({ field: field, value: value });
    }
    changed();
  }

  function values(field) {
    buildIndex();
    var counts = new Map();
    Array.prototype.forEach.call(grid.querySelectorAll(field ? '.val[data-field="' + field + '"]' : '.val'), function (el) {
      counts.set(el.dataset.value, (counts.get(el.dataset.value) || 0) + 1);
    });
    var list = $('values');
    list.textContent = '';
    Array.from(counts.entries()).sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); })
      .slice(0, 500).forEach(function (pair) {
        var option = document.createElement('option');
        option.value = pair[0];
        option.label = pair[1] + (pair[1] === 1 ? ' picture' : ' pictures');
        list.appendChild(option);
      });
  }

  // ------------------------------------------------------------------ the grid, by keyboard

  function roving(card) {
    if (!card) return;
    var old = grid.querySelector('.card[tabindex="0"]');
    if (old && old !== card) old.tabIndex = -1;
    card.tabIndex = 0;
  }

  function columns() {
    return getComputedStyle(grid).gridTemplateColumns.split(' ').filter(Boolean).length || 1;
  }

  grid.addEventListener('keydown', function (event) {
    var card = event.target.closest && event.target.closest('.card');
    if (!card || event.target !== card) return;
    var at = shown.indexOf(card), to = at;
    switch (event.key) {
      case 'ArrowRight': to = at + 1; break;
      case 'ArrowLeft': to = at - 1; break;
      case 'ArrowDown': to = at + columns(); break;
      case 'ArrowUp': to = at - columns(); break;
      case 'Home': to = 0; break;
      case 'End': to = shown.length - 1; break;
      case 'Enter': case ' ': event.preventDefault(); open(card); return;
      default: return;
    }
    event.preventDefault();
    to = Math.max(0, Math.min(shown.length - 1, to));
    roving(shown[to]);
    shown[to].focus();
  });

  grid.addEventListener('click', function (event) {
    var value = event.target.closest('.val');
    if (value) { addFilter(value.dataset.field, value.dataset.value); return; }
    var card = event.target.closest('.card');
    if (card) open(card);
  });

  // ------------------------------------------------------------------ the large view

  var viewer = $('viewer'), stage = $('v-stage'), vframe = $('v-frame'), vimg = $('v-img');
  var at = -1, selected = null, adding = false, drag = null;

  function open(card) {
    roving(card);
    at = shown.indexOf(card);
    if (at < 0) return;
    if (!viewer.open) viewer.showModal();
    show();
  }

  function card() { return shown[at]; }

  function show() {
    var c = card(), img = c.querySelector('img.thumb');
    $('v-title').textContent = c.dataset.name;
    $('v-pos').textContent = (at + 1) + ' of ' + shown.length;
    $('v-prev').disabled = at === 0;
    $('v-next').disabled = at === shown.length - 1;
    vimg.alt = img ? img.alt : c.dataset.name;
    if (img) {
      vimg.src = img.src;  // at once; the large picture replaces it when loaded
      var large = new Image();
      large.onload = function () { if (card() === c) vimg.src = large.src; };
      large.src = img.dataset.large;
    } else {
      vimg.removeAttribute('src');
    }
    var info = $('v-info');
    info.textContent = '';
    Array.prototype.forEach.call(c.querySelectorAll('.about dt'), function (dt) {
      info.appendChild(dt.cloneNode(true));
      info.appendChild(dt.nextElementSibling.cloneNode(true));
    });
    selected = null;
    fit();
    draw();
    viewer.focus();
  }

  function fit() {
    var c = card(), w = +c.dataset.width || 4, h = +c.dataset.height || 3;
    var room = stage.getBoundingClientRect(), pad = 24;
    var scale = Math.min((room.width - pad) / w, (room.height - pad) / h);
    vframe.style.width = Math.max(1, Math.floor(w * scale)) + 'px';
    vframe.style.height = Math.max(1, Math.floor(h * scale)) + 'px';
  }

  function draw() {
    var c = card(), now = current(c);
    Array.prototype.forEach.call(vframe.querySelectorAll('.box'), function (el) { el.remove(); });
    now.boxes.forEach(function (b) {
      var el = document.createElement('div');
      el.className = 'box ' + b.kind + (b.verdict === 'added' ? ' added' : '') + (b.top < 0.06 ? ' inside' : '');
      el.dataset.kind = b.kind;
      el.dataset.key = b.key;
      el.dataset.label = b.label;
      if (b.probability !== null) el.dataset.probability = b.probability.toFixed(4);
      ['left', 'top', 'width', 'height'].forEach(function (k) { el.dataset[k] = round4(b[k]).toFixed(4); });
      el.dataset.verdict = b.verdict;
      el.style.setProperty('--c', b.color || '#ffffff');
      el.style.setProperty('--t', b.ink || '#000');
      place(el, b);
      var label = el.appendChild(document.createElement('span'));
      label.className = 'label';
      label.textContent = b.label + (b.probability !== null ? ' ' + b.probability.toFixed(2) : '');
      if (b.kind === 'detected') {
        el.tabIndex = 0;
        el.setAttribute('role', 'button');
        el.setAttribute('aria-label', describe(b));
        ['nw', 'ne', 'sw', 'se'].forEach(function (corner) {
          el.appendChild(document.createElement('span')).className = 'handle ' + corner;
        });
      }
      vframe.appendChild(el);
    });
    side(now);
    if (selected) {
      var again = vframe.querySelector('.box[data-key="' + selected + '"]');
      if (again) again.focus();
    }
  }

  function describe(b) {
    return b.label + (b.probability !== null ? ' ' + b.probability.toFixed(2) : '') + ', ' + b.verdict;
  }

  function verdictButtons(li, verdict, set) {
    [['right', 'Right'], ['wrong', 'Wrong']].forEach(function (pair) {
      var button = li.appendChild(document.createElement('button'));
      button.type = 'button';
      button.dataset.verdict = pair[0];
      button.textContent = pair[1];
      button.setAttribute('aria-pressed', String(verdict === pair[0]));
      button.addEventListener('click', function (event) { event.stopPropagation(); set(verdict === pair[0] ? 'unmarked' : pair[0]); });
    });
  }

  function side(now) {
    var list = $('v-classes');
    list.textContent = '';
    now.classes.forEach(function (k) {
      var li = list.appendChild(document.createElement('li'));
      li.tabIndex = 0;
      li.dataset.label = k.label;
      li.dataset.verdict = k.verdict;
      var what = li.appendChild(document.createElement('span'));
      what.className = 'what';
      what.textContent = k.label + (k.probability !== null ? ' ' + k.probability.toFixed(2) : '') + (k.verdict === 'added' ? ' (added)' : '');
      if (k.verdict === 'added') {
        var remove = li.appendChild(document.createElement('button'));
        remove.type = 'button';
        remove.textContent = 'Remove';
        remove.addEventListener('click', function () { setClass(k.label, 'remove'); });
      } else {
        verdictButtons(li, k.verdict, function (v) { setClass(k.label, v); });
      }
    });
    var boxes = $('v-boxes');
    boxes.textContent = '';
    now.boxes.filter(function (b) { return b.kind === 'detected'; }).forEach(function (b) {
      var li = boxes.appendChild(document.createElement('li'));
      li.dataset.key = b.key;
      li.classList.toggle('selected', selected === b.key);
      var swatch = li.appendChild(document.createElement('span'));
      swatch.className = 'swatch';
      swatch.style.setProperty('--c', b.color || '#ffffff');
      var input = li.appendChild(document.createElement('input'));
      input.value = b.label;
      input.setAttribute('list', 'box-names');
      input.setAttribute('aria-label', 'Label of the detection ' + describe(b));
      input.addEventListener('change', function () { if (input.value.trim()) setBox(b.key, { label: input.value.trim() }); });
      var p = li.appendChild(document.createElement('span'));
      p.textContent = b.probability !== null ? b.probability.toFixed(2) : 'new';
      if (b.verdict === 'added') {
        var remove = li.appendChild(document.createElement('button'));
        remove.type = 'button';
        remove.textContent = 'Remove';
        remove.addEventListener('click', function () { removeNew(b.key); });
      } else {
        verdictButtons(li, b.verdict, function (v) { setBox(b.key, { verdict: v }); });
      }
      li.addEventListener('click', function (event) {
        if (event.target.tagName === 'BUTTON' || event.target.tagName === 'INPUT') return;
        select(b.key);
      });
    });
    var objects = now.boxes.filter(function (b) { return b.kind === 'objects'; }).length;
    $('v-hint').textContent = 'Drag a box to move it, its corners to resize it.' +
      (objects ? ' Dashed boxes are Azure AI Vision\u2019s objects: shown, not corrected.' : '');
  }

  function select(key) {
    selected = key;
    var el = vframe.querySelector('.box[data-key="' + key + '"]');
    if (el) el.focus();
    Array.prototype.forEach.call($('v-boxes').children, function (li) { li.classList.toggle('selected', li.dataset.key === key); });
  }

  function setClass(label, verdict) {
    var c = entry(card());
    if (verdict === 'remove') {
      c.added_classes = c.added_classes.filter(function (l) { return l !== label; });
    } else if (verdict === 'unmarked') {
      delete c.classes[label];
    } else {
      c.classes[label] = verdict;
    }
    commit();
  }

  // ``change`` holds a verdict, a label, or a new place; a new place or label makes it corrected.
  function setBox(key, change) {
    var c = entry(card());
    if (key.charAt(0) === 'n') {
      var fresh = c.new_boxes[+key.slice(1)];
      ['label', 'left', 'top', 'width', 'height'].forEach(function (k) { if (k in change) fresh[k] = change[k]; });
      commit();
      return;
    }
    var base = original(card()).boxes.filter(function (b) { return b.key === key; })[0];
    var fix = c.boxes[key] || {};
    if (change.verdict) {
      if (change.verdict === 'unmarked') { delete c.boxes[key]; commit(); return; }
      fix = { verdict: change.verdict };  // right or wrong: as the detector put it
    } else {
      fix = Object.assign({ label: base.label, left: base.left, top: base.top, width: base.width, height: base.height },
                          fix.verdict === 'corrected' ? fix : {}, change, { verdict: 'corrected' });
      ['left', 'top', 'width', 'height'].forEach(function (k) { fix[k] = round4(fix[k]); });
    }
    c.boxes[key] = fix;
    selected = key;
    commit();
  }

  function removeNew(key) {
    var c = entry(card());
    c.new_boxes.splice(+key.slice(1), 1);
    selected = null;
    commit();
  }

  function commit() {
    save();
    paintCard(card());
    draw();
  }

  function allRight() {
    var c = entry(card()), now = original(card());
    now.classes.forEach(function (k) { if (!c.classes[k.label]) c.classes[k.label] = 'right'; });
    now.boxes.forEach(function (b) { if (b.kind === 'detected' && !c.boxes[b.key]) c.boxes[b.key] = { verdict: 'right' }; });
    commit();
  }

  function undoHere() {
    delete corrections[card().dataset.path];
    selected = null;
    commit();
  }

  function go(step) {
    var to = at + step;
    if (to < 0 || to >= shown.length) return;
    at = to;
    roving(card());
    show();
  }

  function closeViewer() {
    if (viewer.open) viewer.close();
  }

  viewer.addEventListener('close', function () {
    var c = card();
    setAdding(false);
    if (c) { roving(c); c.focus(); }
  });

  function setAdding(on) {
    adding = on;
    stage.classList.toggle('adding', on);
    $('v-add').setAttribute('aria-pressed', String(on));
    if (on) $('v-hint').textContent = 'Drag on the picture to draw the box; it gets the label on the right.';
  }

  function fraction(event) {
    var r = vframe.getBoundingClientRect();
    return { x: (event.clientX - r.left) / r.width, y: (event.clientY - r.top) / r.height };
  }

  function clamp(v, low, high) { return Math.max(low, Math.min(high, v)); }

  function geometry(el) {
    return { left: parseFloat(el.style.left) / 100, top: parseFloat(el.style.top) / 100,
             width: parseFloat(el.style.width) / 100, height: parseFloat(el.style.height) / 100 };
  }

  vframe.addEventListener('pointerdown', function (event) {
    if (event.button !== 0) return;
    var p = fraction(event), box = event.target.closest('.box.detected');
    if (adding) {
      var el = document.createElement('div');
      el.className = 'box detected added';
      vframe.appendChild(el);
      drag = { mode: 'new', el: el, start: p };
    } else if (box) {
      var corner = event.target.classList.contains('handle') ? event.target.classList[1] : '';
      drag = { mode: corner || 'move', el: box, start: p, from: geometry(box) };
      select(box.dataset.key);
    } else {
      return;
    }
    vframe.setPointerCapture(event.pointerId);
    event.preventDefault();
  });

  vframe.addEventListener('pointermove', function (event) {
    if (!drag) return;
    var p = fraction(event), g;
    if (drag.mode === 'new') {
      var x = clamp(p.x, 0, 1), y = clamp(p.y, 0, 1);
      g = { left: Math.min(x, drag.start.x), top: Math.min(y, drag.start.y),
            width: Math.abs(x - drag.start.x), height: Math.abs(y - drag.start.y) };
    } else {
      g = moved(drag.from, drag.mode, p.x - drag.start.x, p.y - drag.start.y);
    }
    drag.now = g;
    place(drag.el, g);
  });

  function moved(from, mode, dx, dy) {
    var l = from.left, t = from.top, r = from.left + from.width, b = from.top + from.height;
    if (mode === 'move') {
      dx = clamp(dx, -l, 1 - r);
      dy = clamp(dy, -t, 1 - b);
      return { left: l + dx, top: t + dy, width: from.width, height: from.height };
    }
    if (mode.indexOf('w') >= 0) l = clamp(l + dx, 0, r - MIN);
    if (mode.indexOf('e') >= 0) r = clamp(r + dx, l + MIN, 1);
    if (mode.indexOf('n') >= 0) t = clamp(t + dy, 0, b - MIN);
    if (mode.indexOf('s') >= 0) b = clamp(b + dy, t + MIN, 1);
    return { left: l, top: t, width: r - l, height: b - t };
  }

  vframe.addEventListener('pointerup', function () {
    if (!drag) return;
    var d = drag;
    drag = null;
    if (d.mode === 'new') {
      d.el.remove();
      setAdding(false);
      if (d.now && d.now.width >= MIN && d.now.height >= MIN) addBox(d.now);
      return;
    }
    if (d.now && ['left', 'top', 'width', 'height'].some(function (k) { return Math.abs(d.now[k] - d.from[k]) > 0.0005; })) {
      setBox(d.el.dataset.key, d.now);
    }
  });

  function addBox(g) {
    var label = $('v-label').value.trim() || lastLabel || 'new';
    lastLabel = label;
    var c = entry(card());
    c.new_boxes.push({ label: label, left: round4(g.left), top: round4(g.top), width: round4(g.width), height: round4(g.height) });
    selected = 'n' + (c.new_boxes.length - 1);
    commit();
  }
  var lastLabel = '';

  viewer.addEventListener('keydown', function (event) {
    var target = event.target, key = event.key;
    if (target.tagName === 'INPUT' || target.tagName === 'SELECT') return;
    var box = target.classList && target.classList.contains('box') ? target : null;
    var cls = target.closest && target.closest('#v-classes li');
    if (key === 'PageDown') { go(1); event.preventDefault(); return; }
    if (key === 'PageUp') { go(-1); event.preventDefault(); return; }
    if (box && key.indexOf('Arrow') === 0) {
      var step = event.shiftKey ? STEP * 10 : STEP, g = geometry(box);
      var dx = key === 'ArrowRight' ? step : key === 'ArrowLeft' ? -step : 0;
      var dy = key === 'ArrowDown' ? step : key === 'ArrowUp' ? -step : 0;
      setBox(box.dataset.key, moved(g, event.altKey ? 'se' : 'move', dx, dy));
      event.preventDefault();
      return;
    }
    if (!box && !cls && (key === 'ArrowRight' || key === 'ArrowLeft')) { go(key === 'ArrowRight' ? 1 : -1); event.preventDefault(); return; }
    var verdict = { y: 'right', n: 'wrong', u: 'unmarked' }[key.toLowerCase()];
    if (verdict && box) { setBox(box.dataset.key, { verdict: verdict }); event.preventDefault(); return; }
    if (verdict && cls && cls.dataset.verdict !== 'added') { setClass(cls.dataset.label, verdict); focusClass(cls.dataset.label); event.preventDefault(); return; }
    if ((key === 'Delete' || key === 'Backspace') && box) {
      if (box.dataset.key.charAt(0) === 'n') removeNew(box.dataset.key); else setBox(box.dataset.key, { verdict: 'wrong' });
      event.preventDefault();
      return;
    }
    if (key === 'a' || key === 'A') { setAdding(!adding); event.preventDefault(); return; }
    if (key === 'r' || key === 'R') { allRight(); event.preventDefault(); }
  });

  function focusClass(label) {
    var li = Array.prototype.filter.call($('v-classes').children, function (el) { return el.dataset.label === label; })[0];
    if (li) li.focus();
  }

  vframe.addEventListener('focusin', function (event) {
    if (event.target.classList.contains('box') && event.target.dataset.key !== selected) select(event.target.dataset.key);
  });

  $('v-prev').addEventListener('click', function () { go(-1); });
  $('v-next').addEventListener('click', function () { go(1); });
  $('v-close').addEventListener('click', closeViewer);
  $('v-add').addEventListener('click', function () { setAdding(!adding); });
  $('v-allright').addEventListener('click', allRight);
  $('v-undo').addEventListener('click', undoHere);
  $('v-addclass').addEventListener('submit', function () {
    var label = $('v-newclass').value.trim();
    if (!label) return;
    var c = entry(card());
    if (c.added_classes.indexOf(label) < 0 && !original(card()).classes.some(function (k) { return k.label === label; })) c.added_classes.push(label);
    else if (c.classes[label] !== 'right') c.classes[label] = 'right';
    $('v-newclass').value = '';
    commit();
  });
  window.addEventListener('resize', function () { if (viewer.open) fit(); });

  // ------------------------------------------------------------------ the bar

  $('field').addEventListener('change', function () { values($('field').value); });
  $('value').addEventListener('focus', function () { if (!$('values').firstChild) values($('field').value); }, { once: true });
  $('value').addEventListener('keydown', function (event) {
    if (event.key === 'Enter') { event.preventDefault(); addFilter($('field').value, $('value').value); $('value').value = ''; }
  });
  $('sort').addEventListener('change', function () { sort($('sort').value); changed(); });
  $('labels').addEventListener('change', function () { document.body.classList.toggle('nolabels', !$('labels').checked); });
  $('download').addEventListener('click', download);
  $('clear').addEventListener('click', function () {
    if (!confirm('Forget every correction made on this sheet?')) return;
    var touchedCards = Object.keys(corrections).map(function (p) { return byPath[p]; });
    corrections = {};
    save();
    touchedCards.forEach(function (c) { if (c) paintCard(c); });
  });
  $('help-open').addEventListener('click', function () { $('help').showModal(); });
  $('help-close').addEventListener('click', function () { $('help').close(); });
  document.addEventListener('keydown', function (event) {
    if (event.key === '/' && !viewer.open && !/INPUT|SELECT|TEXTAREA/.test(event.target.tagName)) {
      event.preventDefault();
      $('value').focus();
    }
  });

  // Names offered when adding: every class and box label on the sheet.
  function names(selector, list) {
    var seen = {};
    Array.prototype.forEach.call(grid.querySelectorAll(selector), function (el) { seen[el.dataset.value || el.dataset.label] = 1; });
    Object.keys(seen).sort().forEach(function (name) { list.appendChild(document.createElement('option')).value = name; });
  }

  // ------------------------------------------------------------------ start

  Object.keys(corrections).forEach(function (path) { paintCard(byPath[path]); });
  save();
  var state = new URLSearchParams(location.hash.slice(1));
  try { filters = JSON.parse(state.get('filter') || '[]').filter(function (f) { return f && typeof f.value === 'string'; }); } catch (e) { filters = []; }
  var how = state.get('sort');
  if (how && $('sort').querySelector('option[value="' + how + '"]')) { $('sort').value = how; sort(how); }
  if (filters.length) apply();
  else $('count').textContent = 'All ' + cards.length.toLocaleString('en') + ' pictures shown';
  setTimeout(function () {
    names('.val[data-field="classes"]', $('class-names'));
    names('.box.detected', $('box-names'));
    buildIndex();
  }, 0);
})();
