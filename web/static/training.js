// hpcml dashboard: a training run drawn as charts with the vendored ECharts
// (vendor/echarts, Apache-2.0). The server embeds the run's metric points
// so far in <script type="application/json" id="training-data">, in the
// shape of GET /api/v1/training/{id}/metrics (docs/training.md). While the
// run's job has not ended, this script asks the dashboard every 2 s for the
// points after those it has (/ui/training/{id}/metrics?from=N, behind the
// session cookie like the rest of the dashboard) and appends them; when the
// job's state changes it swaps in the run's header and evaluation as the
// server renders them (/ui/training/{id}); once the job has ended it stops.
// A data-parallel run (run.workers ranks) also gets each rank's throughput
// and its compute and communication time per window, from the step
// points' rank{r}_… values. No framework and no build step.
(function () {
  'use strict';

  var dataEl = document.getElementById('training-data');
  if (!dataEl) return;
  if (!window.echarts) {
    console.error('training.js: ECharts did not load');
    return;
  }
  var run = JSON.parse(dataEl.textContent);
  var points = run.points; // every point so far, in the order the run made them
  var state = run.state;
  var live = run.live;
  var workers = run.workers || 0; // data-parallel ranks; 0 for a run of one

  var PERIOD_MS = 2000;
  var timer = 0;
  var busy = false;
  var leaving = false;
  var charts = [];

  var BLUE = '#3b82f6';
  var AMBER = '#f59e0b';
  var GREEN = '#16a34a';
  var MUTED = '#6b7280';
  var LINE = '#e5e7eb';
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  // ---- formatting ----

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  var plain = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 5 });
  var compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumSignificantDigits: 3 });
  function num(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e15)) return v.toPrecision(4);
    return plain.format(v);
  }
  function axisNum(v) {
    var a = Math.abs(v);
    if (a !== 0 && a < 1e-3) return v.toExponential(1);
    return compact.format(v);
  }
  function count(n) {
    return Number(n).toLocaleString('en-US');
  }
  // scaled writes v in the largest of units (factor, name; largest
  // first) that leaves it ≥ 1, with fmt.
  function scaled(units, fmt) {
    return function (v) {
      var a = Math.abs(v);
      for (var i = 0; i < units.length - 1; i++) {
        if (a === 0 || a >= units[i][0]) return fmt(v / units[i][0]) + ' ' + units[i][1];
      }
      var u = units[units.length - 1];
      return fmt(v / u[0]) + ' ' + u[1];
    };
  }
  var SECONDS = [[1, 's'], [1e-3, 'ms'], [1e-6, 'µs']];
  var GBPS = [[1, 'GB/s'], [1e-3, 'MB/s'], [1e-6, 'kB/s']];

  // ---- line charts of the metrics ----

  // Each chart's lines: the points of one kind (step windows or epochs)
  // that have a value of one key (or that get computes from the point's
  // values). Validation is per epoch, drawn with a dot at the epoch's last
  // step. A line with a stack is drawn as an area on those before it; one
  // with axis 1 against a second y-axis, on the right; the tooltip writes
  // its values with fmt, or followed by its unit.
  var LINES = {
    loss: [
      { name: 'training loss', kind: 'step', key: 'loss', color: BLUE },
      { name: 'validation loss', kind: 'epoch', key: 'val_loss', color: AMBER, dots: true },
    ],
    accuracy: [
      { name: 'training accuracy', kind: 'step', key: 'accuracy', color: BLUE },
      { name: 'validation accuracy', kind: 'epoch', key: 'val_accuracy', color: AMBER, dots: true },
    ],
    rmse: [
      { name: 'validation RMSE', kind: 'epoch', key: 'val_rmse', color: AMBER, dots: true },
    ],
    throughput: [
      { name: 'samples/s', kind: 'step', key: 'samples_per_sec', color: GREEN },
    ],
  };

  // meanOverRanks is the mean over the ranks of the values
  // rank{r}_<suffix> that a point has (undefined if it has none).
  function meanOverRanks(suffix) {
    return function (vals) {
      var sum = 0;
      var n = 0;
      for (var r = 0; r < workers; r++) {
        var v = vals['rank' + r + '_' + suffix];
        if (typeof v === 'number') {
          sum += v;
          n++;
        }
      }
      return n ? sum / n : undefined;
    };
  }

  if (workers > 1) {
    // One line per rank, in ECharts' palette.
    LINES.ranks = [];
    for (var r = 0; r < workers; r++) {
      LINES.ranks.push({ name: 'rank ' + r, kind: 'step', key: 'rank' + r + '_samples_per_sec', unit: 'samples/s' });
    }
    // Per window, the mean rank's compute time with its exposed wait for
    // the gradients' all-reduce stacked on it, and the all-reduce
    // bandwidth on the right. The tooltip adds the time the all-reduces
    // took, which overlaps the backward pass but for the wait.
    LINES.comm = [
      { name: 'compute', kind: 'step', get: meanOverRanks('compute_seconds'), color: BLUE, stack: 'time', fmt: scaled(SECONDS, num),
        extra: 'comm_seconds', extraName: 'time in all-reduce (overlaps compute)' },
      { name: 'exposed all-reduce wait', kind: 'step', get: meanOverRanks('comm_wait_seconds'), color: AMBER, stack: 'time',
        fmt: scaled(SECONDS, num) },
      { name: 'all-reduce bandwidth (right)', kind: 'step', key: 'allreduce_gbps', color: GREEN, axis: 1, dashed: true,
        fmt: scaled(GBPS, num) },
    ];
  }

  // values picks [step, value, epoch] of one line out of the points (and
  // the line's extra value, if it has one, fourth).
  function values(line) {
    var out = [];
    for (var i = 0; i < points.length; i++) {
      var p = points[i];
      if (p.kind !== line.kind || !p.values) continue;
      var v = line.get ? line.get(p.values) : p.values[line.key];
      if (typeof v !== 'number') continue;
      var d = [p.step, v, p.epoch];
      if (line.extra && typeof p.values[line.extra] === 'number') d.push(p.values[line.extra]);
      out.push(d);
    }
    return out;
  }

  function legend(lines) {
    var l = { show: lines.length > 1, top: 0, right: 8, textStyle: { color: MUTED }, itemWidth: 16, itemHeight: 8 };
    // Many ranks' lines: one row that scrolls.
    if (lines.length > 6) l = Object.assign(l, { type: 'scroll', left: 8 });
    return l;
  }

  function lineOption(name) {
    var lines = LINES[name];
    if (!lines) throw new Error('no lines for the chart ' + name);
    var data = lines.map(values);
    var total = data.reduce(function (n, d) { return n + d.length; }, 0);
    var y = {
      type: 'value', scale: true,
      axisLabel: { color: MUTED, formatter: axisNum, hideOverlap: true },
      splitLine: { lineStyle: { color: LINE } },
    };
    if (name === 'accuracy') {
      y = Object.assign(y, {
        scale: false, max: 1,
        min: function (v) { return Math.max(0, Math.floor(v.min * 10) / 10); },
      });
    }
    if (name === 'comm') {
      // Seconds from 0 on the left, GB/s on the right.
      y = [
        Object.assign(y, { scale: false, min: 0, axisLabel: Object.assign({}, y.axisLabel, { formatter: scaled(SECONDS, axisNum) }) }),
        {
          type: 'value', min: 0, position: 'right',
          axisLabel: { color: MUTED, formatter: scaled(GBPS, axisNum), hideOverlap: true },
          splitLine: { show: false },
        },
      ];
    }
    return {
      total: total,
      option: {
        animation: false,
        textStyle: { fontFamily: FONT },
        grid: { left: 8, right: 18, top: lines.length > 1 ? 32 : 14, bottom: 8 },
        legend: legend(lines),
        xAxis: {
          type: 'value', min: 0, name: 'step', nameLocation: 'end', nameGap: 6,
          nameTextStyle: { color: MUTED, align: 'right', verticalAlign: 'top', padding: [18, 0, 0, 0] },
          axisLabel: { color: MUTED, formatter: axisNum, hideOverlap: true },
          splitLine: { show: false },
        },
        yAxis: y,
        series: lines.map(function (l, i) {
          var s = {
            type: 'line', name: l.name, data: data[i],
            showSymbol: !!l.dots, symbol: 'circle', symbolSize: 6,
            lineStyle: { width: l.dots ? 2 : 1.5 },
            itemStyle: {},
            // LTTB keeps different points of each line: stacked lines
            // must keep all of theirs to stack window on window.
            sampling: l.dots || l.stack ? undefined : 'lttb',
            connectNulls: true,
          };
          if (l.color) s.lineStyle.color = s.itemStyle.color = l.color;
          if (l.dashed) s.lineStyle.type = 'dashed';
          if (l.stack) {
            s.stack = l.stack;
            s.areaStyle = { opacity: 0.3 };
          }
          if (l.axis) s.yAxisIndex = l.axis;
          return s;
        }),
        graphic: [{
          type: 'text', left: 'center', top: 'middle', invisible: total > 0, silent: true,
          style: { text: live ? 'Waiting for the first metrics…' : 'No metrics.', fill: MUTED, fontSize: 13, fontFamily: FONT },
        }],
        tooltip: {
          trigger: 'axis', confine: true,
          textStyle: { fontFamily: FONT, fontSize: 12.5 },
          // Plain text: the page's CSP allows no style attributes, which
          // ECharts' default markers have.
          formatter: function (params) {
            if (!params.length) return '';
            var v = params[0].value;
            var text = ['step ' + count(v[0]) + ' · epoch ' + v[2]];
            params.forEach(function (p) {
              var l = lines[p.seriesIndex] || {};
              var fmt = l.fmt || function (x) { return num(x) + (l.unit ? ' ' + l.unit : ''); };
              text.push(esc(p.seriesName) + ': ' + fmt(p.value[1]) +
                (p.value[0] !== v[0] ? ' (step ' + count(p.value[0]) + ')' : ''));
              if (l.extra && typeof p.value[3] === 'number') {
                text.push(esc(l.extraName) + ': ' + fmt(p.value[3]));
              }
            });
            return text.join('<br>');
          },
        },
      },
    };
  }

  function drawLines(el) {
    var name = el.getAttribute('data-chart');
    var o = lineOption(name);
    var chart = echarts.getInstanceByDom(el);
    if (!chart) {
      chart = echarts.init(el, null, { renderer: 'canvas' });
      charts.push(chart);
    }
    chart.setOption(o.option);
    el.setAttribute('data-drawn', 'true');
    el.setAttribute('data-points', String(o.total));
  }

  // ---- the confusion matrix ----

  function drawConfusion() {
    var el = document.getElementById('chart-confusion');
    var dataEl = document.getElementById('training-eval-data');
    if (!el || !dataEl) return;
    var cm = JSON.parse(dataEl.textContent);
    var names = cm.classes;
    var k = names.length;
    var cells = [];
    var most = 0;
    var support = cm.matrix.map(function (row) {
      return row.reduce(function (a, b) { return a + b; }, 0);
    });
    for (var t = 0; t < k; t++) {
      for (var p = 0; p < k; p++) {
        var n = cm.matrix[t][p];
        most = Math.max(most, n);
        cells.push([p, t, n]);
      }
    }
    el.style.height = Math.max(320, Math.min(900, 120 + 26 * k)) + 'px';
    var label = { color: MUTED, interval: k <= 40 ? 0 : 'auto', width: 90, overflow: 'truncate' };
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: 'canvas' });
    if (charts.indexOf(chart) < 0) charts.push(chart);
    chart.setOption({
      animation: false,
      textStyle: { fontFamily: FONT },
      grid: { left: 8, right: 72, top: 28, bottom: 8 },
      xAxis: {
        type: 'category', data: names, name: 'predicted', nameLocation: 'middle', nameGap: k > 8 ? 56 : 30,
        nameTextStyle: { color: MUTED }, splitArea: { show: false },
        axisLabel: Object.assign({ rotate: k > 8 ? 40 : 0 }, label),
      },
      yAxis: {
        type: 'category', data: names, inverse: true, name: 'true', nameLocation: 'start',
        nameTextStyle: { color: MUTED, align: 'right' }, axisLabel: label,
      },
      visualMap: {
        type: 'continuous', min: 0, max: Math.max(1, most), calculable: false, orient: 'vertical',
        right: 0, top: 'middle', itemHeight: 140, itemWidth: 10, text: [count(most), '0'],
        textStyle: { color: MUTED },
        inRange: { color: ['#f8fafc', '#bfdbfe', '#3b82f6', '#1e3a8a'] },
      },
      series: [{
        type: 'heatmap',
        data: cells,
        label: { show: k <= 15, fontSize: 11, formatter: function (p) { return count(p.value[2]); } },
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: '#111827', borderWidth: 1 } },
      }],
      tooltip: {
        trigger: 'item', confine: true,
        textStyle: { fontFamily: FONT, fontSize: 12.5 },
        formatter: function (p) {
          var t = p.value[1];
          var share = support[t] ? ' (' + (100 * p.value[2] / support[t]).toFixed(1) + '% of ' + esc(names[t]) + ')' : '';
          return 'true ' + esc(names[t]) + ', predicted ' + esc(names[p.value[0]]) + '<br>' +
            count(p.value[2]) + ' examples' + share;
        },
      },
    }, true);
    el.setAttribute('data-drawn', 'true');
    el.setAttribute('data-classes', String(k));
  }

  function each(selector, fn) {
    document.querySelectorAll(selector).forEach(function (el) {
      try {
        fn(el);
      } catch (e) {
        el.setAttribute('data-error', String(e));
        console.error('training.js: drawing ' + el.id + ': ' + e);
      }
    });
  }

  // showProgress says where the run is, in the header's progress field
  // (there while the job has not ended).
  function showProgress() {
    var last = points[points.length - 1];
    var progress = document.getElementById('run-progress');
    if (progress && last) {
      progress.textContent = 'epoch ' + last.epoch + ' of ' + run.epochs + ' · step ' + count(last.step);
    }
  }

  function redraw() {
    each('[data-chart="loss"], [data-chart="accuracy"], [data-chart="rmse"], [data-chart="throughput"], ' +
      '[data-chart="ranks"], [data-chart="comm"]', drawLines);
    showProgress();
  }

  // ---- live ----

  function login() {
    // The session ended: log in again and come back here.
    leaving = true;
    window.location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
  }

  async function get(url) {
    var resp = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status === 401) {
      login();
      return null;
    }
    if (!resp.ok) throw new Error(url + ': HTTP ' + resp.status);
    return resp;
  }

  async function metrics(from) {
    var resp = await get(run.metrics_url + '?from=' + from);
    return resp && resp.json();
  }

  // swapParts replaces the header and the evaluation with the server's
  // rendering of them now (the job's state, the model link, the report).
  async function swapParts() {
    var resp = await get(run.fragment_url);
    if (!resp) return;
    var tpl = document.createElement('template');
    tpl.innerHTML = await resp.text();
    var old = document.getElementById('chart-confusion');
    if (old && echarts.getInstanceByDom(old)) {
      var c = echarts.getInstanceByDom(old);
      charts.splice(charts.indexOf(c), 1);
      c.dispose();
    }
    ['training-head', 'training-eval'].forEach(function (id) {
      var fresh = tpl.content.getElementById(id);
      var here = document.getElementById(id);
      if (fresh && here) here.replaceWith(fresh);
    });
    // The server renders the header without reading the metrics.
    showProgress();
    try {
      drawConfusion();
    } catch (e) {
      console.error('training.js: drawing the confusion matrix: ' + e);
    }
  }

  async function round() {
    var m = await metrics(points.length);
    if (!m) return;
    if (m.total < points.length) {
      // The run resumed from a checkpoint and rewrote the points after
      // it: start again.
      points = [];
      m = await metrics(0);
      if (!m) return;
      redraw();
    }
    if (m.points.length) {
      points = points.concat(m.points);
      redraw();
    }
    // The metrics were read after the state: once it is terminal they
    // are complete, and so is the rest of the run.
    if (m.state !== state || (m.terminal && !document.querySelector('#training-head[data-terminal]'))) {
      await swapParts(); // throws on failure: the next round tries again
      state = m.state;
    }
    if (m.terminal) {
      live = false;
      if (!points.length) redraw(); // "No metrics." rather than waiting for them
    }
  }

  async function tick() {
    clearTimeout(timer);
    if (busy || document.hidden || leaving || !live) return;
    busy = true;
    try {
      await round();
    } catch (e) {
      // The server is away or the run unreadable for now: try again at
      // the next tick (the header's live indicator says whether the
      // server answers).
    } finally {
      busy = false;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (document.hidden || leaving || !live) return;
    timer = setTimeout(tick, PERIOD_MS);
  }

  document.addEventListener('visibilitychange', function () {
    if (!live) return;
    if (document.hidden) {
      clearTimeout(timer);
    } else {
      tick();
    }
  });

  function start() {
    redraw();
    try {
      drawConfusion();
    } catch (e) {
      var el = document.getElementById('chart-confusion');
      if (el) el.setAttribute('data-error', String(e));
      console.error('training.js: drawing the confusion matrix: ' + e);
    }
    var pending = 0;
    window.addEventListener('resize', function () {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(function () {
        charts.forEach(function (c) { c.resize(); });
      });
    });
    if (live) schedule();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
