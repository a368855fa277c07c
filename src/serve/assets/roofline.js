/* roofline.js -- the Kitchen's live roofline plot, drawn as SVG elements
 * (log-log: arithmetic intensity in FLOP/byte against GFLOP/s).  The roof
 * is the device's measured ceilings: bandwidth x intensity up to the ridge,
 * then the compute peak.  Each valid iteration with a positive intensity
 * and throughput is one point (circle.rl-point, data-iter), the best one
 * ringed and labelled, joined in iteration order by a path.  The same rules
 * as the report's roofline_svg(), so the page and the export agree.
 * Text goes in through textContent only. */
(function () {
  'use strict';

  var NS = 'http://www.w3.org/2000/svg';
  var W = 600, H = 380, L = 66, R = 18, T = 18, B = 48;

  function el(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function num(x) { return typeof x === 'number' && isFinite(x) ? x : NaN; }

  /* The measured ceilings: the device's, else the first valid report's. */
  function ceilings(device, iterations, dtype) {
    var c = (device && device.ceilings) || {}, peak = NaN, bw = num(c.bandwidth_gbs);
    var pg = c.peak_gflops;
    if (pg && typeof pg === 'object') peak = num(pg[dtype || 'f32']) || num(pg.f32);
    else peak = num(pg);
    for (var i = 0; i < iterations.length && !(peak > 0 && bw > 0); i++) {
      var rep = iterations[i].report;
      if (iterations[i].status !== 'valid' || !rep) continue;
      if (!(peak > 0)) peak = num(rep.peak_gflops);
      if (!(bw > 0)) bw = num(rep.bandwidth_gbs);
    }
    return {peak: peak, bw: bw};
  }

  function points(iterations) {
    var out = [];
    iterations.forEach(function (it) {
      if (it.status !== 'valid' || !it.report) return;
      var x = num(it.report.intensity);
      var y = num(it.gflops);
      if (!(y > 0)) y = num(it.report.gflops);
      if (x > 0 && y > 0) out.push({iter: it.iter, x: x, y: y, it: it});
    });
    out.sort(function (a, b) { return a.iter - b.iter; });
    return out;
  }

  function decadeRange(values, padLow, padHigh) {
    var lo = Math.min.apply(null, values) / padLow, hi = Math.max.apply(null, values) * padHigh;
    var a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    if (b <= a) b = a + 1;
    return [a, b];
  }

  function fmtDecade(e, unit) {
    var v = Math.pow(10, e);
    if (unit === 'T') v /= 1000;
    if (v >= 1e6 || v < 1e-3) return '1e' + (unit === 'T' ? e - 3 : e);
    return String(Number(v.toPrecision(3)));
  }

  function fmtPerf(g) {
    return g >= 1000 ? (g / 1000).toPrecision(3) + ' TFLOP/s' : g.toPrecision(3) + ' GFLOP/s';
  }

  /* Draw into container (emptied first).  opts: {device, iterations,
   * bestIter, dtype, selected}.  Returns the number of points drawn. */
  function render(container, opts) {
    while (container.firstChild) container.removeChild(container.firstChild);
    var iterations = opts.iterations || [];
    var c = ceilings(opts.device, iterations, opts.dtype);
    var pts = points(iterations);
    var svg = el('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img',
                         'aria-label': 'roofline plot', 'class': 'roofline'});
    container.appendChild(svg);
    var hasRoof = c.peak > 0 && c.bw > 0;
    if (!hasRoof && !pts.length) {
      svg.appendChild(el('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle', 'class': 'rl-empty'},
                         'No measurement yet: points appear as iterations are profiled.'));
      return 0;
    }
    var ridge = hasRoof ? c.peak / c.bw : NaN;
    var xs = pts.map(function (p) { return p.x; }), ys = pts.map(function (p) { return p.y; });
    if (hasRoof) { xs.push(ridge); ys.push(c.peak); }
    var xr = decadeRange(xs, 3, 3), yr = decadeRange(ys, 3, 1.5);
    var unit = hasRoof && c.peak >= 1000 ? 'T' : 'G';
    function px(x) { return L + (Math.log10(x) - xr[0]) / (xr[1] - xr[0]) * (W - L - R); }
    function py(y) { return H - B - (Math.log10(y) - yr[0]) / (yr[1] - yr[0]) * (H - T - B); }

    var e;
    for (e = xr[0]; e <= xr[1]; e++) {
      svg.appendChild(el('line', {x1: px(Math.pow(10, e)), x2: px(Math.pow(10, e)), y1: T, y2: H - B, 'class': 'rl-grid'}));
      svg.appendChild(el('text', {x: px(Math.pow(10, e)), y: H - B + 16, 'text-anchor': 'middle', 'class': 'rl-tick'},
                         fmtDecade(e, 'G')));
    }
    for (e = yr[0]; e <= yr[1]; e++) {
      svg.appendChild(el('line', {x1: L, x2: W - R, y1: py(Math.pow(10, e)), y2: py(Math.pow(10, e)), 'class': 'rl-grid'}));
      svg.appendChild(el('text', {x: L - 6, y: py(Math.pow(10, e)) + 4, 'text-anchor': 'end', 'class': 'rl-tick'},
                         fmtDecade(e, unit)));
    }
    svg.appendChild(el('line', {x1: L, x2: L, y1: T, y2: H - B, 'class': 'rl-axis'}));
    svg.appendChild(el('line', {x1: L, x2: W - R, y1: H - B, y2: H - B, 'class': 'rl-axis'}));
    svg.appendChild(el('text', {x: (L + W - R) / 2, y: H - 10, 'text-anchor': 'middle', 'class': 'rl-label'},
                       'arithmetic intensity (FLOP/byte)'));
    svg.appendChild(el('text', {x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', 'class': 'rl-label',
                                transform: 'rotate(-90 14 ' + (T + H - B) / 2 + ')'},
                       unit === 'T' ? 'TFLOP/s' : 'GFLOP/s'));

    if (hasRoof) {
      var x0 = Math.pow(10, xr[0]), x1 = Math.pow(10, xr[1]);
      var d = [];
      var yStart = Math.min(c.peak, c.bw * x0);
      d.push(px(x0) + ',' + py(Math.max(yStart, Math.pow(10, yr[0]))));
      if (ridge > x0 && ridge < x1) d.push(px(ridge) + ',' + py(c.peak));
      d.push(px(x1) + ',' + py(c.peak));
      /* Below the plot's floor the memory roof is clipped at the axis. */
      if (c.bw * x0 < Math.pow(10, yr[0])) d[0] = px(Math.pow(10, yr[0]) / c.bw) + ',' + py(Math.pow(10, yr[0]));
      svg.appendChild(el('polyline', {points: d.join(' '), 'class': 'rl-roof'}));
      if (ridge > x0 && ridge < x1)
        svg.appendChild(el('line', {x1: px(ridge), x2: px(ridge), y1: py(c.peak), y2: H - B, 'class': 'rl-ridge'}));
      svg.appendChild(el('text', {x: W - R - 4, y: py(c.peak) - 6, 'text-anchor': 'end', 'class': 'rl-roof-label'},
                         'compute peak ' + fmtPerf(c.peak)));
      var lx = Math.max(x0 * 1.3, Math.pow(10, yr[0]) / c.bw * 1.3);
      if (lx < ridge)
        svg.appendChild(el('text', {x: px(lx) + 4, y: py(Math.min(c.bw * lx, c.peak)) - 8, 'class': 'rl-roof-label',
                                    transform: 'rotate(' + slopeAngle(px, py, c, lx) + ' ' + (px(lx) + 4) + ' ' + (py(c.bw * lx) - 8) + ')'},
                           'memory ' + c.bw.toPrecision(3) + ' GB/s'));
    }

    if (pts.length > 1)
      svg.appendChild(el('polyline', {points: pts.map(function (p) { return px(p.x) + ',' + py(p.y); }).join(' '),
                                      'class': 'rl-path'}));
    pts.forEach(function (p) {
      var best = p.iter === opts.bestIter;
      var circle = el('circle', {cx: px(p.x), cy: py(p.y), r: best ? 7 : 4.5,
                                 'class': 'rl-point point' + (best ? ' best' : ''), 'data-iter': p.iter});
      var pct = num(p.it.roofline_pct);
      circle.appendChild(el('title', {}, '#' + p.iter + ' ' + (p.it.label || '') + '\n' + fmtPerf(p.y) +
                                         ' at ' + p.x.toPrecision(3) + ' FLOP/byte' +
                                         (pct >= 0 ? ', ' + pct.toFixed(1) + '% of roofline' : '')));
      svg.appendChild(circle);
      svg.appendChild(el('text', {x: px(p.x) + (best ? 10 : 7), y: py(p.y) - (best ? 8 : 6), 'class': 'rl-point-label'},
                         String(p.iter)));
    });
    return pts.length;
  }

  /* The on-screen angle of the memory roof (slope 1 in log-log space). */
  function slopeAngle(px, py, c, x) {
    var dx = px(x * 10) - px(x), dy = py(c.bw * x * 10) - py(c.bw * x);
    return Math.atan2(dy, dx) * 180 / Math.PI;
  }

  window.EmileRoofline = {render: render, points: points};
})();
