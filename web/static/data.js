// hpcml dashboard: a profile report drawn as charts with the vendored
// ECharts (vendor/echarts, Apache-2.0). The server embeds the report's JSON
// in <script type="application/json" id="report-data">, in the shape
// docs/profile.md describes, cut to the charted columns; an undefined
// statistic is null there, never NaN. Each element with data-chart gets one
// chart. No framework and no build step.
(function () {
  'use strict';

  var dataEl = document.getElementById('report-data');
  if (!dataEl) return;
  if (!window.echarts) {
    console.error('data.js: ECharts did not load');
    return;
  }
  var rep = JSON.parse(dataEl.textContent);
  var charts = [];

  var BLUE = '#3b82f6';
  var BLUE_DARK = '#1e40af';
  var BOX_FILL = '#dbeafe';
  var AMBER = '#f59e0b';
  var MUTED = '#6b7280';
  var LINE = '#e5e7eb';
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  // ---- formatting ----

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  var plain = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 6 });
  var compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumSignificantDigits: 3 });
  // num writes a statistic for a tooltip; axisNum an axis label.
  function num(v) {
    if (v === null || v === undefined) return '—';
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
  function pct(share) {
    if (share > 0 && share < 0.001) return '<0.1%';
    return (100 * share).toFixed(1) + '%';
  }
  function shown(value) {
    return value === '' ? '(empty)' : value;
  }

  // ---- charts ----

  // Tooltips are plain text in a box styled by ECharts: formatters return
  // escaped HTML without style attributes (the page's CSP allows none).
  function tooltip(formatter) {
    return {
      trigger: 'item',
      confine: true,
      formatter: formatter,
      textStyle: { fontFamily: FONT, fontSize: 12.5 },
    };
  }

  function draw(el, option) {
    option.animation = false;
    option.textStyle = { fontFamily: FONT };
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: 'canvas' });
    chart.setOption(option, true);
    if (charts.indexOf(chart) < 0) charts.push(chart);
    el.setAttribute('data-drawn', 'true');
    return chart;
  }

  function valueAxis(extra) {
    var axis = {
      type: 'value',
      axisLabel: { color: MUTED, formatter: axisNum, hideOverlap: true },
      axisLine: { onZero: false },
      splitLine: { lineStyle: { color: LINE } },
    };
    return Object.assign(axis, extra || {});
  }

  // Missing values: the share of rows each column misses.
  function missingChart(el) {
    var cols = rep.columns;
    var shares = cols.map(function (c) { return +(100 * c.missing_share).toFixed(4); });
    var none = shares.every(function (s) { return s === 0; });
    draw(el, {
      grid: { left: 8, right: 16, top: 20, bottom: 8 },
      xAxis: {
        type: 'category',
        data: cols.map(function (c) { return c.name; }),
        axisLabel: {
          color: MUTED, interval: cols.length <= 40 ? 0 : 'auto',
          rotate: cols.length > 8 ? 40 : 0, width: 110, overflow: 'truncate',
        },
        axisTick: { alignWithLabel: true },
      },
      yAxis: valueAxis({
        min: 0, max: none ? 100 : null,
        axisLabel: { color: MUTED, formatter: function (v) { return v + '%'; } },
      }),
      series: [{
        type: 'bar',
        data: shares,
        itemStyle: { color: AMBER, borderRadius: [3, 3, 0, 0] },
        barMaxWidth: 36,
        label: {
          show: cols.length <= 24, position: 'top', color: MUTED, fontSize: 11,
          formatter: function (p) { return p.value > 0 ? pct(p.value / 100) : ''; },
        },
      }],
      tooltip: tooltip(function (p) {
        var c = cols[p.dataIndex];
        return esc(c.name) + '<br>' + pct(c.missing_share) + ' missing (' + count(c.missing) + ' of ' + count(rep.rows) + ' rows)';
      }),
    });
  }

  // Correlations: a heatmap of Pearson or Spearman, -1 blue to +1 red.
  function corrData(method) {
    var m = rep.correlations[method] || [];
    var out = [];
    for (var i = 0; i < m.length; i++) {
      for (var j = 0; j < m[i].length; j++) {
        var v = m[i][j];
        out.push([j, i, v === null ? '-' : +v.toFixed(4)]);
      }
    }
    return out;
  }

  function corrChart(el, method) {
    var names = rep.correlations.columns;
    var k = names.length;
    el.style.height = Math.max(340, Math.min(900, 110 + 24 * k)) + 'px';
    var label = { color: MUTED, interval: 0, width: 110, overflow: 'truncate' };
    draw(el, {
      grid: { left: 8, right: 16, top: 8, bottom: 56 },
      xAxis: {
        type: 'category', data: names, splitArea: { show: false },
        axisLabel: Object.assign({ rotate: k > 8 ? 40 : 0 }, label, { interval: k <= 40 ? 0 : 'auto' }),
      },
      yAxis: {
        type: 'category', data: names, inverse: true,
        axisLabel: Object.assign({}, label, { interval: k <= 40 ? 0 : 'auto' }),
      },
      visualMap: {
        type: 'continuous', min: -1, max: 1, calculable: false, orient: 'horizontal',
        left: 'center', bottom: 0, itemHeight: 160, itemWidth: 12, text: ['+1', '−1'],
        textStyle: { color: MUTED },
        inRange: { color: ['#1d4ed8', '#93c5fd', '#f8fafc', '#fca5a5', '#b91c1c'] },
      },
      series: [{
        type: 'heatmap',
        data: corrData(method),
        label: {
          show: k <= 12, fontSize: 11,
          formatter: function (p) { return p.value[2] === '-' ? '' : p.value[2].toFixed(2); },
        },
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: '#111827', borderWidth: 1 } },
      }],
      tooltip: tooltip(function (p) {
        var v = p.value[2];
        return esc(names[p.value[1]]) + ' × ' + esc(names[p.value[0]]) + '<br>' +
          (method === 'spearman' ? 'Spearman ' : 'Pearson ') + (v === '-' ? 'undefined' : v.toFixed(3));
      }),
    });
    el.setAttribute('data-method', method);
  }

  function corrToggle(el) {
    var group = document.getElementById('corr-method');
    var note = document.getElementById('corr-note');
    var pearsonNote = note ? note.textContent : '';
    if (!group) return;
    group.addEventListener('click', function (ev) {
      var tab = ev.target.closest('[data-corr]');
      if (!tab) return;
      ev.preventDefault();
      var method = tab.getAttribute('data-corr');
      group.querySelectorAll('[data-corr]').forEach(function (t) {
        t.setAttribute('aria-selected', t === tab ? 'true' : 'false');
      });
      if (note) note.textContent = method === 'spearman' ? note.getAttribute('data-spearman') : pearsonNote;
      corrChart(el, method);
    });
  }

  // Scatter: two columns of the row sample, chosen with the two selects.
  function scatterChart(el) {
    var s = rep.sample;
    var xs = document.getElementById('scatter-x');
    var ys = document.getElementById('scatter-y');
    function redraw() {
      var xi = +xs.value;
      var yi = +ys.value;
      var pts = [];
      s.rows.forEach(function (r) {
        if (r[xi] !== null && r[yi] !== null) pts.push([r[xi], r[yi]]);
      });
      var xname = s.columns[xi];
      var yname = s.columns[yi];
      draw(el, {
        grid: { left: 8, right: 20, top: 16, bottom: 8 },
        xAxis: valueAxis({ scale: true, name: xname, nameLocation: 'middle', nameGap: 26, nameTextStyle: { color: MUTED } }),
        yAxis: valueAxis({ scale: true, name: yname, nameLocation: 'middle', nameGap: 44, nameTextStyle: { color: MUTED } }),
        series: [{
          type: 'scatter', data: pts, symbolSize: 5, large: pts.length > 2000,
          itemStyle: { color: BLUE, opacity: 0.55 },
        }],
        tooltip: tooltip(function (p) {
          return esc(xname) + ': ' + num(p.value[0]) + '<br>' + esc(yname) + ': ' + num(p.value[1]);
        }),
      });
      el.setAttribute('data-x', xname);
      el.setAttribute('data-y', yname);
      el.setAttribute('data-points', String(pts.length));
      var note = document.getElementById('scatter-count');
      if (note) note.textContent = count(pts.length) + ' of ' + count(s.rows.length) + ' sampled rows have both values.';
    }
    xs.addEventListener('change', redraw);
    ys.addEventListener('change', redraw);
    redraw();
  }

  // A numeric column: its histogram and, on the same x scale below it, a
  // box plot (box 25%-75%, the median, whiskers at 5% and 95%) with the
  // min and max as dots.
  function numericChart(el, col) {
    var n = col.numeric;
    var h = n.histogram;
    var lo = h.edges[0];
    var hi = h.edges[h.edges.length - 1];
    var pad = lo === hi ? (Math.abs(lo) * 0.05 || 0.5) : 0;
    var last = h.counts.length - 1;
    var bins = h.counts.map(function (c, i) {
      var a = h.edges[i];
      var b = h.edges[i + 1];
      return a === b ? [a - pad, b + pad, c, a, b] : [a, b, c, a, b];
    });
    var x = { min: lo - pad, max: hi + pad };
    var q = [n['5%'], n['25%'], n['50%'], n['75%'], n['95%']];
    var box = q.every(function (v) { return v !== null; });
    var series = [{
      type: 'custom',
      name: 'histogram',
      xAxisIndex: 0, yAxisIndex: 0,
      data: bins,
      encode: { x: [0, 1], y: 2 },
      renderItem: function (params, api) {
        var top = api.coord([api.value(0), api.value(2)]);
        var bottom = api.coord([api.value(1), 0]);
        var w = bottom[0] - top[0];
        var gap = w > 4 ? 1 : 0;
        return {
          type: 'rect',
          shape: { x: top[0] + gap / 2, y: top[1], width: Math.max(w - gap, 1), height: bottom[1] - top[1] },
          style: { fill: BLUE },
        };
      },
    }];
    if (box) {
      series.push({
        type: 'boxplot',
        name: 'quantiles',
        xAxisIndex: 1, yAxisIndex: 1,
        data: [q],
        boxWidth: [14, 26],
        itemStyle: { color: BOX_FILL, borderColor: BLUE_DARK, borderWidth: 1.5 },
      });
    }
    series.push({
      type: 'scatter',
      name: 'extremes',
      xAxisIndex: 1, yAxisIndex: 1,
      data: [{ name: 'min', value: [n.min, 0] }, { name: 'max', value: [n.max, 0] }],
      symbolSize: 7,
      itemStyle: { color: BLUE_DARK },
    });
    draw(el, {
      grid: [
        { left: 52, right: 18, top: 10, height: 150, outerBoundsMode: 'none' },
        { left: 52, right: 18, top: 170, height: 34, outerBoundsMode: 'none' },
      ],
      xAxis: [
        valueAxis({ gridIndex: 0, min: x.min, max: x.max, axisLabel: { show: false }, axisTick: { show: false } }),
        valueAxis({ gridIndex: 1, min: x.min, max: x.max, splitLine: { show: false } }),
      ],
      yAxis: [
        valueAxis({ gridIndex: 0, minInterval: 1 }),
        { type: 'category', gridIndex: 1, data: [col.name], axisLabel: { show: false }, axisTick: { show: false }, axisLine: { show: false } },
      ],
      series: series,
      tooltip: tooltip(function (p) {
        if (p.seriesName === 'histogram') {
          var v = p.value;
          return '[' + num(v[3]) + ', ' + num(v[4]) + (p.dataIndex === last ? ']' : ')') + '<br>' +
            count(v[2]) + (h.exact ? '' : ' (±)') + ' values';
        }
        if (p.seriesName === 'quantiles') {
          return '95%: ' + num(q[4]) + '<br>75%: ' + num(q[3]) + '<br>50%: ' + num(q[2]) +
            '<br>25%: ' + num(q[1]) + '<br>5%: ' + num(q[0]);
        }
        return p.name + ': ' + num(p.value[0]);
      }),
    });
  }

  // A categorical or boolean column: its most frequent values.
  function topChart(el, col) {
    var tv = col.top_values.slice().reverse(); // the most frequent on top
    el.style.height = Math.max(150, 26 * tv.length + 40) + 'px';
    draw(el, {
      grid: { left: 8, right: 56, top: 8, bottom: 8 },
      xAxis: valueAxis({ minInterval: 1 }),
      yAxis: {
        type: 'category',
        data: tv.map(function (t) { return shown(t.value); }),
        axisLabel: { color: MUTED, interval: 0, width: 140, overflow: 'truncate' },
        axisTick: { show: false },
      },
      series: [{
        type: 'bar',
        data: tv.map(function (t) { return t.count; }),
        itemStyle: { color: BLUE, borderRadius: [0, 3, 3, 0] },
        barMaxWidth: 18,
        label: {
          show: true, position: 'right', color: MUTED, fontSize: 11,
          formatter: function (p) { return pct(tv[p.dataIndex].share); },
        },
      }],
      tooltip: tooltip(function (p) {
        var t = tv[p.dataIndex];
        return esc(shown(t.value)) + '<br>' + count(t.count) + (col.top_values_error_bound ? '+' : '') +
          ' of ' + count(col.count) + ' values (' + pct(t.share) + ')';
      }),
    });
  }

  // ---- wiring ----

  function each(selector, fn) {
    document.querySelectorAll(selector).forEach(function (el) {
      try {
        fn(el);
      } catch (e) {
        el.setAttribute('data-error', String(e));
        console.error('data.js: drawing ' + (el.id || el.getAttribute('data-chart')) + ': ' + e);
      }
    });
  }

  function start() {
    each('[data-chart="missing"]', missingChart);
    each('[data-chart="correlations"]', function (el) {
      corrChart(el, 'pearson');
      corrToggle(el);
    });
    each('[data-chart="scatter"]', scatterChart);
    each('[data-chart="numeric"]', function (el) {
      numericChart(el, rep.columns[+el.getAttribute('data-column')]);
    });
    each('[data-chart="top"]', function (el) {
      topChart(el, rep.columns[+el.getAttribute('data-column')]);
    });
    var pending = 0;
    window.addEventListener('resize', function () {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(function () {
        charts.forEach(function (c) { c.resize(); });
      });
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
