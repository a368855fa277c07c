/* app.js -- the Kitchen and the Tasting Room.
 *
 * One page, two views (#kitchen, #tasting; #run/N opens run N in the
 * Kitchen).  State comes from the JSON API and is kept current by the
 * server-sent events of /api/events.  Everything the server sends (kernel
 * source, the agent's words, error messages, names) reaches the page
 * through textContent or attributes, never as markup. */
(function () {
  'use strict';

  /* ---- small helpers ---- */

  function $(id) { return document.getElementById(id); }

  /* el('td', {className: 'num', title: 'x'}, 'text' | node | [..]) */
  function el(tag, props, children) {
    var e = document.createElement(tag);
    if (props) for (var k in props) if (Object.prototype.hasOwnProperty.call(props, k)) {
      if (k === 'dataset') { for (var d in props.dataset) e.dataset[d] = props.dataset[d]; }
      else e[k] = props[k];
    }
    if (children !== undefined && children !== null) {
      (Array.isArray(children) ? children : [children]).forEach(function (c) {
        if (c === null || c === undefined) return;
        e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
      });
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function num(x) { return typeof x === 'number' && isFinite(x) ? x : NaN; }

  function fmtTime(ms) {
    ms = num(ms);
    if (!(ms >= 0)) return '\u2013';
    if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
    if (ms >= 1) return ms.toFixed(2) + ' ms';
    return (ms * 1000).toFixed(1) + ' \u00b5s';
  }

  function fmtPerf(g) {
    g = num(g);
    if (!(g >= 0)) return '\u2013';
    return g >= 1000 ? (g / 1000).toFixed(2) + ' TFLOP/s' : g.toFixed(g >= 100 ? 0 : 2) + ' GFLOP/s';
  }

  function fmtPct(p) { p = num(p); return p >= 0 ? p.toFixed(1) + '%' : '\u2013'; }
  function fmtX(s) { s = num(s); return s > 0 ? s.toFixed(2) + '\u00d7' : '\u2013'; }

  function fmtWhen(c) {
    if (typeof c === 'number') return new Date(c * 1000).toLocaleString();
    if (typeof c !== 'string') return '';
    var d = new Date(c);
    return isNaN(d.getTime()) ? c : d.toLocaleString();
  }

  function firstLine(s, max) {
    s = String(s || '').split('\n')[0];
    return s.length > max ? s.slice(0, max - 1) + '\u2026' : s;
  }

  /* ---- the API ---- */

  var token = null;

  /* The token arrives once in the page's URL (?token=...); keep it for
   * this tab and take it out of the address bar. */
  function takeToken() {
    var params = new URLSearchParams(location.search);
    if (params.has('token')) {
      token = params.get('token');
      try { sessionStorage.setItem('emile-token', token); } catch (e) { /* private mode */ }
      history.replaceState(null, '', location.pathname + location.hash);
    } else {
      try { token = sessionStorage.getItem('emile-token'); } catch (e) { token = null; }
    }
  }

  function withToken(path) {
    return token ? path + (path.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token) : path;
  }

  function api(method, path, body) {
    var headers = {'Accept': 'application/json'};
    if (token) headers.Authorization = 'Bearer ' + token;
    var init = {method: method, headers: headers, cache: 'no-store'};
    if (method === 'POST') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body || {});
    }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var err = new Error((data && data.error) || ('HTTP ' + r.status));
          err.status = r.status;
          if (data && data.line) err.line = data.line;
          if (r.status === 401) showBanner('This server needs its access token: open the address it printed ' +
                                           '(the one ending in ?token=...).');
          throw err;
        }
        return data;
      });
    });
  }

  function showBanner(text) {
    var b = $('banner');
    b.textContent = text;
    b.hidden = !text;
  }

  /* ---- state ---- */

  var S = {
    ops: [], examples: [], runs: [], jobs: [],
    runId: null, run: null, iters: [], job: null,
    selected: null,        /* iteration picked in the table; null follows the latest */
    srcMode: 'source',
    pendingJob: null,      /* the cook this tab started, until its run appears */
    runByJob: {},          /* job -> run, from 'run' events (they can beat the POST reply) */
    lastEvent: 0,
    phases: {},            /* what the open run's cook does now, by worker ('-': none) */
    taste: null,
    tasting: false         /* this tab's POST /api/taste is unanswered */
  };

  /* ---- the form ---- */

  var PARAM_LABELS = {batch: 'batch', seq: 'sequence length', head_dim: 'head dim', q_heads: 'query heads',
                      kv_heads: 'KV heads', causal: 'causal', scale: 'scale'};

  function currentOp() {
    var name = $('f-op').value;
    for (var i = 0; i < S.ops.length; i++) if (S.ops[i].name === name) return S.ops[i];
    return null;
  }

  /* One input per parameter of the op.  "causal" is a checkbox; a
   * parameter whose default is 0 is derived by the op (e.g. scale =
   * 1/sqrt(head dim)) and is sent only when the user sets it. */
  function renderParams(values) {
    var box = $('f-params');
    clear(box);
    var op = currentOp();
    if (!op) return;
    Object.keys(op.params).forEach(function (name) {
      var dflt = op.params[name];
      var v = values && values[name] !== undefined ? values[name] : dflt;
      var label = PARAM_LABELS[name] || name.replace(/_/g, ' ');
      if (name === 'causal') {
        var cb = el('input', {type: 'checkbox', id: 'p-' + name, checked: !!v});
        cb.dataset.param = name;
        box.appendChild(el('label', {className: 'field check'}, [cb, label]));
        return;
      }
      var derived = dflt === 0;
      var input = el('input', {type: 'number', id: 'p-' + name, step: 'any',
                               value: derived ? '' : String(v), placeholder: derived ? 'auto' : ''});
      input.dataset.param = name;
      input.dataset.derived = derived ? '1' : '';
      box.appendChild(el('label', {className: 'field'}, [label, input]));
    });
  }

  function fillForm(task) {
    $('f-name').value = task.name || '';
    if (typeof task.op === 'string') $('f-op').value = task.op;
    $('f-dtype').value = task.dtype || 'f32';
    $('f-backend').value = task.backend || defaultBackend().name;
    $('f-target').value = task.target !== undefined ? task.target : 50;
    $('f-iters').value = task.max_iters !== undefined ? task.max_iters : 8;
    $('f-agent').value = task.agent || 'builtin';
    var cfg = task.agent_config || {};
    $('f-model').value = cfg.model || '';
    $('f-base-url').value = cfg.base_url || '';
    $('f-ref').value = task.reference_source || '';
    $('f-ref').dataset.lang = task.reference_lang || '';
    $('f-ref').dataset.path = task.reference_path || '';
    /* A PyTorch problem's own settings travel back as they came. */
    var extra = {};
    if (task.constants) extra.constants = task.constants;
    if (task.compile_floor === false) extra.compile_floor = false;
    $('f-ref').dataset.pyextra = JSON.stringify(extra);
    renderParams(task.params || {});
    onAgentChange();
    onRefInput();
  }

  function readForm() {
    var params = {};
    Array.prototype.forEach.call($('f-params').querySelectorAll('input'), function (inp) {
      var name = inp.dataset.param;
      if (inp.type === 'checkbox') { params[name] = inp.checked ? 1 : 0; return; }
      if (inp.value === '' && inp.dataset.derived) return;
      params[name] = Number(inp.value);
    });
    var task = {
      op: $('f-op').value,
      params: params,
      dtype: $('f-dtype').value,
      backend: $('f-backend').value,
      target: Number($('f-target').value),
      max_iters: Number($('f-iters').value),
      agent: $('f-agent').value,
      reference_source: $('f-ref').value,
      reference_lang: $('f-ref').dataset.lang || backendLang($('f-backend').value)
    };
    var name = $('f-name').value.trim();
    if (name) task.name = name;
    if ($('f-ref').dataset.path) task.reference_path = $('f-ref').dataset.path;
    if (task.agent !== 'builtin') {
      var cfg = {};
      if ($('f-model').value.trim()) cfg.model = $('f-model').value.trim();
      if ($('f-base-url').value.trim()) cfg.base_url = $('f-base-url').value.trim();
      task.agent_config = cfg;
    }
    return task;
  }

  function onAgentChange() { $('f-llm').hidden = $('f-agent').value === 'builtin'; }

  /* ---- a pasted PyTorch problem (KernelBench's convention) ---- */

  function isPython(text) {
    return /^\s*class\s+Model\b/m.test(text) && /^\s*def\s+get_inputs\s*\(/m.test(text);
  }

  /* The op and its parameters come from the problem itself. */
  function onRefInput() {
    var py = isPython($('f-ref').value);
    if (py) $('f-ref').dataset.lang = 'py';
    else if ($('f-ref').dataset.lang === 'py') $('f-ref').dataset.lang = '';
    $('f-op-row').hidden = py;
    $('f-params-box').hidden = py;
    problemMessage('', false);
  }

  /* Typed or pasted text is the user's own problem: the loaded file's name
   * goes, and of its constants only those the text still assigns stay. */
  function onRefEdited() {
    var ta = $('f-ref');
    if (isPython(ta.value) && ta.dataset.path && /\.py$/.test(ta.dataset.path)) {
      ta.dataset.path = '';
      var extra = JSON.parse(ta.dataset.pyextra || '{}');
      if (extra.constants) {
        Object.keys(extra.constants).forEach(function (k) {
          if (!new RegExp('^' + k + '\\s*=', 'm').test(ta.value)) delete extra.constants[k];
        });
      }
      ta.dataset.pyextra = JSON.stringify(extra);
    }
    onRefInput();
  }

  function problemMessage(text, isError) {
    var m = $('f-problem');
    m.textContent = text || '';
    m.className = 'msg' + (isError ? ' error' : '');
  }

  /* Select line n of the reference text (1-based). */
  function selectLine(n) {
    var ta = $('f-ref'), lines = ta.value.split('\n'), start = 0;
    for (var i = 0; i < n - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[n - 1] || '').length;
    ta.focus();
    ta.setSelectionRange(start, end);
    var lh = ta.scrollHeight / Math.max(lines.length, 1);
    ta.scrollTop = Math.max(0, (n - 3) * lh);
  }

  /* A worker describes the problem (its oracle runs it, never the server);
   * the page shows what it found, or the error at its line. */
  function checkProblem(task) {
    problemMessage('Checking the PyTorch problem (a worker runs it once)...', false);
    var req = {reference_source: task.reference_source, reference_path: task.reference_path || 'problem.py',
               backend: task.backend, dtype: task.dtype};
    if (task.constants) req.constants = task.constants;
    return api('POST', '/api/problem', req).then(function (r) {
      var sig = r.tensors.map(function (t) {
        return (t.output ? '-> ' : '') + t.name + ' [' + t.shape.join(', ') + '] ' + t.dtype;
      }).join(', ');
      problemMessage('Problem: op ' + r.op + (r.builtin ? ' (builtin: its ladder applies)' : ' (user-defined)') +
                     ': ' + sig + (r.vary.length ? '; validation varies ' + r.vary.join(', ') : ''), false);
      return r;
    }).catch(function (e) {
      /* "problem.py:15: get_inputs() raised ..." -> "line 15: get_inputs() raised ..." */
      var text = e.line ? 'line ' + e.line + ': ' + e.message.replace(/^[^\n]*?:\d+: /, '') : e.message;
      problemMessage(text, true);
      if (e.line) selectLine(e.line);
      throw e;
    });
  }

  function formMessage(text, isError) {
    var m = $('f-msg');
    m.textContent = text || '';
    m.className = 'msg' + (isError ? ' error' : '');
  }

  function onFile() {
    var f = $('f-file').files[0];
    if (!f) return;
    if (f.size > 512 * 1024) { formMessage('That file is over 512 KiB; a reference kernel should be smaller.', true); return; }
    f.text().then(function (text) {
      $('f-ref').value = text;
      $('f-ref').dataset.lang = /\.py$/.test(f.name) ? 'py' : /\.cuh?$/.test(f.name) ? 'cu' : 'c';
      $('f-ref').dataset.path = f.name;
      onRefInput();
      formMessage('Loaded ' + f.name + ' (' + text.length + ' characters).');
    });
  }

  function onSubmit(ev) {
    ev.preventDefault();
    var task = readForm();
    if (!task.reference_source.trim()) { formMessage('Paste or load a reference kernel first.', true); return; }
    if (task.reference_lang === 'py') {
      /* A PyTorch problem defines its own tensors and sizes. */
      delete task.op;
      delete task.params;
      var extra = JSON.parse($('f-ref').dataset.pyextra || '{}');
      for (var k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) task[k] = extra[k];
    }
    $('f-start').disabled = true;
    var checked = task.reference_lang === 'py' ? checkProblem(task) : Promise.resolve(null);
    checked.then(function () {
      formMessage('Sending the task...');
      return api('POST', '/api/cook', task);
    }).then(function (r) {
      S.pendingJob = r.job;
      /* The run may have started before this reply arrived: its 'run'
       * event was then seen with no pending job to match. */
      if (S.runByJob[r.job] !== undefined) {
        onEvent('run', {job: r.job, run: S.runByJob[r.job]});
        return;
      }
      describePending();
    }).catch(function (e) {
      formMessage(e.message, true);
    }).then(function () { $('f-start').disabled = false; });
  }

  function jobById(id) {
    for (var i = 0; i < S.jobs.length; i++) if (S.jobs[i].job === id) return S.jobs[i];
    return null;
  }

  /* The message under the form while this tab's cook waits or starts. */
  function describePending() {
    $('f-cancel').hidden = true;
    if (!S.pendingJob) return;
    var j = jobById(S.pendingJob);
    if (j && j.state === 'queued') {
      formMessage('Queued: ' + j.position + ' cook' + (j.position === 1 ? '' : 's') + ' ahead on the ' +
                  j.backend + ' device (job ' + j.job + ').');
      $('f-cancel').hidden = false;
    } else {
      formMessage('Cooking started (job ' + S.pendingJob + '); the run opens on the right.');
    }
  }

  function onCancel() {
    if (!S.pendingJob) return;
    api('POST', '/api/jobs/' + S.pendingJob + '/stop').then(function () {
      formMessage('Cancelled job ' + S.pendingJob + '.');
      S.pendingJob = null;
      $('f-cancel').hidden = true;
    }).catch(function (e) { formMessage(e.message, true); });
  }

  /* ---- the run ---- */

  function bestTime(iters, before) {
    var best = null;
    iters.forEach(function (it) {
      if (it.status !== 'valid' || !(num(it.time_ms) > 0)) return;
      if (before !== undefined && it.iter >= before) return;
      if (!best || it.time_ms < best.time_ms) best = it;
    });
    return best;
  }

  function bestIter() {
    if (S.run && typeof S.run.best_iter === 'number') return S.run.best_iter;
    var b = bestTime(S.iters);
    return b ? b.iter : -1;
  }

  /* ---- the cook's live phases (progress events) ---- */

  function clearPhases(iter) {
    Object.keys(S.phases).forEach(function (k) {
      if (iter === undefined || S.phases[k].iter === iter) delete S.phases[k];
    });
    renderPhases();
  }

  /* One progress event: the phase of its worker (or of the cook). */
  function notePhase(d) {
    var key = d.worker === undefined || d.worker === null ? '-' : String(d.worker);
    var words = (d.iter !== undefined && d.iter !== null ? 'iteration ' + d.iter + ': ' : '') + (d.phase || '');
    if (d.n) words += ' ' + d.k + '/' + d.n;
    if (d.detail) words += ' \u2014 ' + firstLine(d.detail, 120);
    if (key !== '-') words = 'worker ' + key + ': ' + words;
    S.phases[key] = {text: words, since: Date.now() - 1000 * (Number(d.elapsed_s) || 0), iter: d.iter};
    if (key !== '-') delete S.phases['-'];
    renderPhases();
  }

  function renderPhases() {
    var el = $('run-progress');
    var keys = Object.keys(S.phases).sort();
    el.hidden = keys.length === 0;
    clear(el);
    var now = Date.now();
    keys.forEach(function (k) {
      var p = S.phases[k], line = document.createElement('span');
      line.className = 'phase';
      line.textContent = p.text + ' (' + Math.max(0, Math.round((now - p.since) / 1000)) + ' s)';
      el.appendChild(line);
    });
  }
  setInterval(function () { if (Object.keys(S.phases).length) renderPhases(); }, 1000);

  /* Open run id, or (keepSelection) reload the open run after an event.
   * Only an open names the run in the address: a reload comes from the
   * server at any moment, also while the Tasting Room is shown or just
   * after its tab was clicked, and rewriting the address then would put
   * '#run/N' under the Tasting Room, or let the tab's hashchange (which
   * follows the click as a task of its own) read '#run/N' and go back to
   * the Kitchen. */
  function openRun(id, keepSelection) {
    var same = S.runId === id;
    if (!same) clearPhases();
    S.runId = id;
    if (!same || !keepSelection) S.selected = null;
    if (!keepSelection && location.hash !== '#run/' + id) history.replaceState(null, '', '#run/' + id);
    return api('GET', '/api/runs/' + id).then(function (r) {
      if (S.runId !== id) return;
      S.run = r.run;
      S.iters = r.iterations || [];
      S.job = r.job;
      renderRun();
      renderRuns();
    }).catch(function (e) {
      $('run-title').textContent = 'Run ' + id;
      $('run-summary').textContent = e.message;
    });
  }

  function paramSummary(task) {
    if (!task || !task.params) return '';
    var p = task.params, keys = ['batch', 'seq', 'q_heads', 'kv_heads', 'head_dim'];
    var short = {batch: 'B', seq: 'S', q_heads: 'Hq', kv_heads: 'Hkv', head_dim: 'D'};
    var parts = [];
    keys.forEach(function (k) { if (p[k] !== undefined) parts.push(short[k] + '=' + p[k]); });
    if (p.causal !== undefined) parts.push(p.causal ? 'causal' : 'full');
    if (!parts.length) Object.keys(p).forEach(function (k) { parts.push(k + '=' + p[k]); });
    return parts.join(' ');
  }

  function runState() {
    if (S.job && S.job.state === 'queued') return 'queued';
    return (S.run && S.run.status) || '';
  }

  function renderRun() {
    var run = S.run;
    if (!run) return;
    var task = run.task || {};
    $('run-title').textContent = 'Run ' + run.id + (task.name ? ' \u00b7 ' + task.name : '');
    var st = runState();
    var badge = $('run-status');
    badge.hidden = !st;
    badge.textContent = st;
    badge.className = 'badge ' + st;
    var active = S.job && S.job.state !== 'done';
    $('run-stop').hidden = !active;
    $('run-stop').disabled = !!(S.job && S.job.stopping);
    $('run-stop').textContent = S.job && S.job.stopping ? 'Stopping...' : 'Stop';
    $('run-resume').hidden = active || !(run.status === 'stopped' || run.status === 'failed' || run.status === 'running');
    [['run-export', '/api/runs/' + run.id + '/export'], ['run-svg', '/api/runs/' + run.id + '/svg?download=1'],
     ['run-best', '/api/runs/' + run.id + '/best']].forEach(function (a) {
      var link = $(a[0]);
      link.href = withToken(a[1]);
      link.setAttribute('download', '');
      link.hidden = a[0] === 'run-best' && !(bestIter() >= 0);
    });
    $('run-export').hidden = $('run-svg').hidden = false;

    var job = $('run-job');
    if (S.job && S.job.state === 'queued')
      job.textContent = 'Waiting for the ' + S.job.backend + ' device: ' + S.job.position + ' cook' +
                        (S.job.position === 1 ? '' : 's') + ' ahead.';
    else if (S.job && S.job.stopping) job.textContent = 'Stopping after the current candidate...';
    else if (S.job) job.textContent = 'Cooking: iterations appear as they are measured.';
    else if (run.note) job.textContent = run.note;
    else job.textContent = '';

    var parts = [task.op || '', paramSummary(task), task.dtype || '', 'on ' + (run.backend || task.backend || '?')];
    if (run.device && run.device.name) parts.push('(' + run.device.name + ')');
    parts.push('agent ' + (run.agent || task.agent || '?'));
    if (task.target) parts.push('target ' + task.target + '%');
    if (task.max_iters !== undefined) parts.push('budget ' + task.max_iters);
    var b = bestIter(), bit = null;
    S.iters.forEach(function (it) { if (it.iter === b) bit = it; });
    var sum = parts.join(' \u00b7 ');
    if (bit) sum += ' \u2014 best: #' + bit.iter + ' ' + fmtPerf(bit.gflops) + ', ' + fmtPct(bit.roofline_pct) +
                    ' of roofline, ' + fmtX(bit.speedup) + ' the reference';
    $('run-summary').textContent = sum;
    renderIters();
    renderPlot();
    renderSource();
  }

  function diagnosisCell(it) {
    var td = el('td', {className: 'diag'});
    if (it.status !== 'valid') {
      td.appendChild(el('span', {className: 'err', title: it.error || ''}, firstLine(it.error || it.status, 90)));
      return td;
    }
    var diag = (it.report && it.report.diagnosis) || [];
    diag.forEach(function (d) {
      td.appendChild(el('span', {className: 'tag', title: d.detail || ''}, d.tag || '?'));
    });
    return td;
  }

  function renderIters() {
    var body = $('iters').tBodies[0];
    clear(body);
    var best = bestIter(), shown = shownIter();
    S.iters.forEach(function (it) {
      var valid = it.status === 'valid';
      var tr = el('tr', {className: (it.iter === best ? 'best ' : '') + (valid ? '' : 'bad ') +
                                    (shown && it.iter === shown.iter ? 'selected' : '')});
      tr.dataset.iter = it.iter;
      tr.appendChild(el('td', null, String(it.iter)));
      tr.appendChild(el('td', {title: it.label || ''}, firstLine(it.label || (it.iter === 0 ? 'reference' : ''), 40)));
      tr.appendChild(el('td', {className: valid ? 'status-valid' : 'status-bad'}, it.status || ''));
      tr.appendChild(el('td', {className: 'num'}, valid ? fmtTime(it.time_ms) : '\u2013'));
      tr.appendChild(el('td', {className: 'num'}, valid ? fmtPerf(it.gflops) : '\u2013'));
      tr.appendChild(el('td', {className: 'num'}, valid ? fmtPct(it.roofline_pct) : '\u2013'));
      tr.appendChild(el('td', {className: 'num'}, valid ? fmtX(it.speedup) : '\u2013'));
      tr.appendChild(diagnosisCell(it));
      tr.appendChild(el('td', {className: 'reason', title: it.reason || ''}, firstLine(it.reason, 140)));
      tr.addEventListener('click', function () {
        S.selected = it.iter;
        renderIters();
        renderSource();
      });
      body.appendChild(tr);
    });
    if (!S.iters.length)
      body.appendChild(el('tr', null, el('td', {colSpan: 9, className: 'hint'},
        runState() === 'queued' ? 'Waiting for the device...' : 'No iteration yet: the reference is measured first.')));
  }

  function renderPlot() {
    var task = (S.run && S.run.task) || {};
    window.EmileRoofline.render($('roofline'), {device: S.run && S.run.device, iterations: S.iters,
                                                bestIter: bestIter(), dtype: task.dtype});
  }

  /* The iteration the source pane shows: the picked one, else the latest. */
  function shownIter() {
    if (S.selected !== null)
      for (var i = 0; i < S.iters.length; i++) if (S.iters[i].iter === S.selected) return S.iters[i];
    return S.iters.length ? S.iters[S.iters.length - 1] : null;
  }

  function renderSource() {
    var pre = $('src-view'), it = shownIter();
    clear(pre);
    $('src-tab-source').className = 'tab-btn' + (S.srcMode === 'source' ? ' on' : '');
    $('src-tab-diff').className = 'tab-btn' + (S.srcMode === 'diff' ? ' on' : '');
    if (!it) { $('src-label').textContent = ''; return; }
    if (S.srcMode === 'source') {
      $('src-label').textContent = 'iteration ' + it.iter + (it.label ? ' \u00b7 ' + it.label : '');
      pre.textContent = it.source || '(no source stored)';
      return;
    }
    var prev = bestTime(S.iters, it.iter);
    if (!prev) {
      $('src-label').textContent = 'iteration ' + it.iter;
      pre.textContent = 'No earlier valid iteration to compare with.';
      return;
    }
    var ops = window.EmileDiff.lines(prev.source || '', it.source || '');
    if (!ops) { pre.textContent = 'These kernels are too large to diff here.'; return; }
    var n = window.EmileDiff.render(pre, ops, 3);
    $('src-label').textContent = 'iteration ' + it.iter + ' against #' + prev.iter + ' (best before it): ' +
                                 n + ' changed line' + (n === 1 ? '' : 's');
  }

  function stopRun() {
    if (!S.runId) return;
    $('run-stop').disabled = true;
    api('POST', '/api/runs/' + S.runId + '/stop').then(function () {
      return openRun(S.runId, true);
    }).catch(function (e) { $('run-job').textContent = e.message; $('run-stop').disabled = false; });
  }

  function resumeRun(id) {
    api('POST', '/api/runs/' + id + '/resume').then(function (r) {
      if (S.runId !== id) return openRun(id);
      S.job = {job: r.job, state: r.position ? 'queued' : 'running', position: r.position, backend: r.backend};
      renderRun();
    }).catch(function (e) {
      if (S.runId === id) $('run-job').textContent = e.message;
      else alert(e.message);
    });
  }

  /* ---- past runs ---- */

  function loadRuns() {
    return api('GET', '/api/runs').then(function (r) {
      S.runs = r.runs || [];
      renderRuns();
      renderTasteRuns();
    }).catch(function () { /* the banner says why */ });
  }

  function renderRuns() {
    var body = $('runs').tBodies[0];
    clear(body);
    S.runs.forEach(function (run) {
      var task = run.task || {};
      var status = run.job && run.job.state === 'queued' ? 'queued' : run.status;
      var tr = el('tr', {className: run.id === S.runId ? 'selected' : ''});
      tr.dataset.run = run.id;
      tr.appendChild(el('td', null, String(run.id)));
      tr.appendChild(el('td', null, fmtWhen(run.created)));
      tr.appendChild(el('td', {title: task.name || ''}, [
        el('div', null, firstLine(task.name || task.op || '?', 50)),
        el('div', {className: 'hint'}, (task.op || '') + ' ' + paramSummary(task) + ' ' + (task.dtype || ''))]));
      tr.appendChild(el('td', null, run.backend || ''));
      tr.appendChild(el('td', null, run.agent || ''));
      tr.appendChild(el('td', null, el('span', {className: 'badge ' + status}, status || '')));
      tr.appendChild(el('td', {className: 'num'}, String(run.n_iters !== undefined ? run.n_iters : '')));
      tr.appendChild(el('td', {className: 'num'}, run.best ? fmtPct(run.best.roofline_pct) + ' \u00b7 ' +
                                                             fmtX(run.best.speedup) : '\u2013'));
      var actions = el('td', {className: 'num'});
      var open = el('button', {type: 'button', className: 'open'}, 'Open');
      open.addEventListener('click', function (e) { e.stopPropagation(); showView('kitchen'); openRun(run.id); });
      actions.appendChild(open);
      if (!run.job && (run.status === 'stopped' || run.status === 'failed' || run.status === 'running')) {
        var res = el('button', {type: 'button', className: 'resume'}, 'Resume');
        res.addEventListener('click', function (e) { e.stopPropagation(); resumeRun(run.id); });
        actions.appendChild(document.createTextNode(' '));
        actions.appendChild(res);
      }
      var exp = el('a', {className: 'button', href: withToken('/api/runs/' + run.id + '/export')}, 'Export');
      exp.setAttribute('download', '');
      exp.addEventListener('click', function (e) { e.stopPropagation(); });
      actions.appendChild(document.createTextNode(' '));
      actions.appendChild(exp);
      tr.appendChild(actions);
      tr.addEventListener('click', function () { openRun(run.id); window.scrollTo(0, 0); });
      body.appendChild(tr);
    });
    if (!S.runs.length)
      body.appendChild(el('tr', null, el('td', {colSpan: 9, className: 'hint'}, 'No run yet.')));
  }

  /* ---- live events ---- */

  var refreshTimer = null;
  function refreshRunsSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; loadRuns(); }, 400);
  }

  function onEvent(type, data) {
    if (type === 'jobs') {
      S.jobs = data.jobs || [];
      if (S.runId) {
        var mine = null;
        S.jobs.forEach(function (j) { if (j.run === S.runId && j.state !== 'done') mine = j; });
        S.job = mine;
        if (S.run) renderRun();
      }
      describePending();
      refreshRunsSoon();
    } else if (type === 'run') {
      S.runByJob[data.job] = data.run;
      if (data.job === S.pendingJob) {
        S.pendingJob = null;
        formMessage('Cooking run ' + data.run + '.');
        $('f-cancel').hidden = true;
        showView('kitchen');
        openRun(data.run);
      }
      refreshRunsSoon();
    } else if (type === 'iteration') {
      if (data.run === S.runId && data.iteration) {
        var it = data.iteration, replaced = false;
        for (var i = 0; i < S.iters.length; i++)
          if (S.iters[i].iter === it.iter) { S.iters[i] = it; replaced = true; }
        if (!replaced) S.iters.push(it);
        S.iters.sort(function (a, b) { return a.iter - b.iter; });
        clearPhases(it.iter);
        if (S.run) renderRun();
      }
      refreshRunsSoon();
    } else if (type === 'done') {
      if (data.job === S.pendingJob) {
        S.pendingJob = null;
        $('f-cancel').hidden = true;
        formMessage(data.status === 'cancelled' ? 'Cancelled.' :
                    'The cook ended before starting: ' + (data.error || data.status), data.status !== 'cancelled');
      }
      if (data.run && data.run === S.runId) {
        S.job = null;
        clearPhases();
        openRun(S.runId, true);
        if (data.error && data.status !== 'done') $('run-job').textContent = data.status + ': ' + data.error;
      }
      refreshRunsSoon();
    } else if (type === 'reset') {
      if (S.runId) openRun(S.runId, true);
      loadRuns();
    } else if (type === 'progress') {
      if (data.run && data.run === S.runId && data.phase) notePhase(data);
    }
  }

  function connect() {
    if (!window.EventSource) { $('live').textContent = 'no live updates'; return; }
    var es = new EventSource(withToken('/api/events'));
    ['hello', 'jobs', 'run', 'iteration', 'done', 'reset', 'progress'].forEach(function (type) {
      es.addEventListener(type, function (ev) {
        var data = null;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (ev.lastEventId) S.lastEvent = Number(ev.lastEventId);
        onEvent(type, data || {});
      });
    });
    es.onopen = function () { $('live').textContent = 'live'; $('live').className = 'live on'; };
    /* EventSource reconnects by itself (with Last-Event-ID). */
    es.onerror = function () { $('live').textContent = 'reconnecting'; $('live').className = 'live off'; };
    window.emileEvents = es;
  }

  /* ---- the tasting room ---- */

  function loadTaste() {
    return api('GET', '/api/taste').then(function (t) {
      S.taste = t;
      renderTaste();
    }).catch(function (e) { $('t-status').textContent = e.message; });
  }

  function renderTasteRuns() {
    var sel = $('t-run'), keep = sel.value;
    clear(sel);
    var any = false;
    S.runs.forEach(function (run) {
      if (!run.best || typeof run.best_iter !== 'number') return;
      any = true;
      var task = run.task || {};
      sel.appendChild(el('option', {value: String(run.id)},
        'run ' + run.id + ' \u00b7 ' + firstLine(task.name || task.op || '', 40) + ' \u00b7 #' + run.best_iter +
        ' ' + fmtPerf(run.best.gflops)));
    });
    if (!any) sel.appendChild(el('option', {value: ''}, 'no run has a valid kernel yet'));
    if (keep) sel.value = keep;
  }

  function tasteModel() {
    var id = $('t-model').value, models = (S.taste && S.taste.models) || [];
    for (var i = 0; i < models.length; i++) if (models[i].id === id) return models[i];
    return null;
  }

  function renderTaste() {
    var t = S.taste || {};
    var available = !!t.available;
    $('t-status').textContent = t.message || (available ? 'Engine ready.' : 'The engine is not built.');
    $('t-status').className = available ? 'msg' : 'notice';
    var models = $('t-model'), keep = models.value;
    clear(models);
    (t.models || []).forEach(function (m) { models.appendChild(el('option', {value: m.id}, m.name)); });
    if (!(t.models || []).length) models.appendChild(el('option', {value: ''}, 'no model (engine not built)'));
    if (keep) models.value = keep;
    ['t-run', 't-model', 't-tokens', 't-prompt', 't-start'].forEach(function (id) { $(id).disabled = !available; });
    /* An answer that comes back during a tasting must not offer a second
     * one (the server tastes one at a time). */
    if (S.tasting) $('t-start').disabled = true;
    onTasteModel();
  }

  /* Random weights have no tokenizer: their prompt is synthetic. */
  function onTasteModel() {
    var m = tasteModel();
    var text = !!(m && m.prompt_text);
    $('t-prompt').disabled = !text;
    $('t-prompt-hint').textContent = m && !text ? '\u2014 not used: random weights have no tokenizer, ' +
                                                  'so the engine makes a synthetic prompt' : '';
  }

  function showSide(prefix, side) {
    side = side || {};
    $('t-' + prefix + '-ttft').textContent = fmtTime(side.ttft_ms);
    $('t-' + prefix + '-tps').textContent = num(side.tokens_per_s) >= 0 ? side.tokens_per_s.toFixed(1) : '\u2013';
    $('t-' + prefix + '-out').textContent = side.tokens !== undefined && side.tokens !== null ?
      side.tokens + ' tokens generated' + (side.label ? ' with ' + side.label : '') : '';
  }

  function onTaste(ev) {
    ev.preventDefault();
    var req = {run: Number($('t-run').value), model: $('t-model').value, prompt: $('t-prompt').value,
               tokens: Number($('t-tokens').value)};
    S.tasting = true;
    $('t-start').disabled = true;
    showSide('ref', null);
    showSide('best', null);
    $('t-agree').className = 'msg';
    $('t-agree').textContent = 'Tasting: the engine generates with the reference, then with the kernel...';
    api('POST', '/api/taste', req).then(function (r) {
      showSide('ref', r.reference);
      showSide('best', r.candidate);
      $('t-agree').textContent = r.agree ? 'The two generations agree token for token.' :
        'The generations differ from generated token ' + r.first_divergence + ' on.';
    }).catch(function (e) {
      $('t-agree').textContent = e.message;
      $('t-agree').className = 'msg error';
    }).then(function () {
      S.tasting = false;
      $('t-start').disabled = !(S.taste && S.taste.available);
    });
  }

  /* ---- views ---- */

  function showView(name) {
    $('kitchen').hidden = name !== 'kitchen';
    $('tasting').hidden = name !== 'tasting';
    $('nav-kitchen').className = 'tab' + (name === 'kitchen' ? ' on' : '');
    $('nav-tasting').className = 'tab' + (name === 'tasting' ? ' on' : '');
    if (name === 'tasting') loadTaste();
  }

  function onHash() {
    var h = location.hash;
    var m = /^#run\/(\d+)$/.exec(h);
    if (m) { showView('kitchen'); if (Number(m[1]) !== S.runId) openRun(Number(m[1])); return; }
    showView(h === '#tasting' ? 'tasting' : 'kitchen');
  }

  /* The backends (/api/backends, the server's registry), the default first. */
  function defaultBackend() {
    var d = (S.backends || []).filter(function (b) { return b.default; })[0];
    return d || (S.backends || [])[0] || {name: '', langs: []};
  }

  /* The tag of a backend's default language: a reference's, when the page
   * has no file name to tell. */
  function backendLang(name) {
    var b = (S.backends || []).filter(function (x) { return x.name === name; })[0] || defaultBackend();
    return b.langs && b.langs.length ? b.langs[0].tag : '';
  }

  function loadForm() {
    return Promise.all([api('GET', '/api/ops'), api('GET', '/api/examples'), api('GET', '/api/backends')]).then(function (r) {
      S.ops = r[0].ops || [];
      S.examples = (r[1].examples || []).filter(function (e) { return e.task; });
      S.backends = r[2].backends || [];
      var beSel = $('f-backend');
      clear(beSel);
      S.backends.forEach(function (b) {
        beSel.appendChild(el('option', {value: b.name, title: b.device_words || ''}, b.name));
      });
      var opSel = $('f-op');
      clear(opSel);
      S.ops.forEach(function (op) { opSel.appendChild(el('option', {value: op.name, title: op.description || ''}, op.name)); });
      var exSel = $('f-example');
      S.examples.forEach(function (e, i) {
        exSel.appendChild(el('option', {value: String(i)}, e.name + ' (' + e.file + ')'));
      });
      /* A new user starts from the first example on the default backend
       * (the one every machine has). */
      var pick = -1;
      S.examples.forEach(function (e, i) { if (pick < 0 && e.task.backend === defaultBackend().name) pick = i; });
      if (pick < 0 && S.examples.length) pick = 0;
      if (pick >= 0) { exSel.value = String(pick); fillForm(S.examples[pick].task); }
      else renderParams(null);
    }).catch(function (e) { formMessage(e.message, true); });
  }

  function init() {
    takeToken();
    $('cook-form').addEventListener('submit', onSubmit);
    $('f-op').addEventListener('change', function () { renderParams(null); });
    $('f-agent').addEventListener('change', onAgentChange);
    $('f-file').addEventListener('change', onFile);
    $('f-ref').addEventListener('input', onRefEdited);
    $('f-cancel').addEventListener('click', onCancel);
    $('f-example').addEventListener('change', function () {
      var i = $('f-example').value;
      if (i !== '') fillForm(S.examples[Number(i)].task);
    });
    $('run-stop').addEventListener('click', stopRun);
    $('run-resume').addEventListener('click', function () { if (S.runId) resumeRun(S.runId); });
    $('runs-refresh').addEventListener('click', loadRuns);
    $('src-tab-source').addEventListener('click', function () { S.srcMode = 'source'; renderSource(); });
    $('src-tab-diff').addEventListener('click', function () { S.srcMode = 'diff'; renderSource(); });
    $('taste-form').addEventListener('submit', onTaste);
    $('t-model').addEventListener('change', onTasteModel);
    window.addEventListener('hashchange', onHash);
    renderPlot();
    connect();
    loadForm();
    loadRuns();
    loadTaste();
    onHash();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
