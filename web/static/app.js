// hpcml dashboard: live refresh of server-rendered fragments, and a few
// conveniences. No framework and no build step: the server renders every
// fragment with the same templates as the page, and this script swaps them in.
//
// An element with data-refresh="URL" is refreshed every 2 s while the tab is
// visible: an HTML response replaces its children, a text/plain response its
// text (logs). Elements that also have data-stop-when-terminal stop once the
// page holds an element with data-terminal (the job has ended), after one
// last refresh.
(function () {
  'use strict';

  var PERIOD_MS = 2000;
  var timer = 0;
  var busy = false;
  var loggingIn = false;
  var last = new WeakMap();

  document.documentElement.classList.add('js');

  function targets() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-refresh]'));
  }

  function setStatus(state) {
    var el = document.getElementById('live');
    if (!el) return;
    el.hidden = false;
    el.className = 'live live-' + state;
    var text = el.querySelector('.live-text');
    if (text) text.textContent = state === 'ok' ? 'live' : state === 'paused' ? 'paused' : 'offline';
    el.title = state === 'ok' ? 'refreshed ' + new Date().toLocaleTimeString() : '';
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  }

  async function refresh(el) {
    var url = el.getAttribute('data-refresh');
    if (!url) return;
    var resp = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status === 401) {
      // The session ended: log in again and come back here.
      loggingIn = true;
      window.location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      return;
    }
    if (!resp.ok) throw new Error(url + ': HTTP ' + resp.status);
    var body = await resp.text();
    if (last.get(el) === body) return;
    last.set(el, body);
    var type = resp.headers.get('Content-Type') || '';
    if (type.indexOf('text/plain') === 0) {
      var stick = nearBottom(el);
      if (el.textContent !== body) el.textContent = body;
      if (stick) el.scrollTop = el.scrollHeight;
    } else {
      el.innerHTML = body;
    }
  }

  async function round() {
    var ok = true;
    // In document order: the job's state comes before its logs, so the
    // logs read after the job ended are complete.
    for (var el of targets()) {
      if (loggingIn) return;
      try {
        await refresh(el);
      } catch (e) {
        ok = false;
      }
    }
    if (document.querySelector('[data-terminal]')) {
      document.querySelectorAll('[data-stop-when-terminal]').forEach(function (el) {
        el.removeAttribute('data-refresh');
      });
    }
    setStatus(ok ? 'ok' : 'offline');
  }

  async function tick() {
    clearTimeout(timer);
    if (busy || document.hidden || loggingIn) return;
    busy = true;
    try {
      await round();
    } finally {
      busy = false;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (document.hidden || loggingIn || targets().length === 0) return;
    timer = setTimeout(tick, PERIOD_MS);
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      clearTimeout(timer);
      if (targets().length) setStatus('paused');
    } else {
      tick();
    }
  });

  // Rows link to their job or queue; the id cell holds a real link for the
  // keyboard and the middle button.
  document.addEventListener('click', function (ev) {
    var row = ev.target.closest('tr[data-href]');
    if (!row || ev.target.closest('a, button, input, select, label, summary')) return;
    var sel = window.getSelection && window.getSelection();
    if (sel && String(sel).length > 0) return; // selecting text, not navigating
    if (ev.ctrlKey || ev.metaKey) {
      window.open(row.getAttribute('data-href'), '_blank', 'noopener');
    } else {
      window.location.assign(row.getAttribute('data-href'));
    }
  });

  // Log tabs switch without a reload (the links work without script too).
  document.addEventListener('click', function (ev) {
    var tab = ev.target.closest('[data-tab]');
    if (!tab) return;
    var group = tab.closest('[data-tabs]');
    if (!group) return;
    ev.preventDefault();
    var name = tab.getAttribute('data-tab');
    group.querySelectorAll('[data-tab]').forEach(function (t) {
      t.setAttribute('aria-selected', t === tab ? 'true' : 'false');
    });
    group.querySelectorAll('[data-pane]').forEach(function (p) {
      var show = p.getAttribute('data-pane') === name;
      p.hidden = !show;
      if (show) p.scrollTop = p.scrollHeight;
    });
    history.replaceState(null, '', tab.getAttribute('href'));
  });

  // Filters apply as soon as they change; empty ones stay out of the URL.
  document.addEventListener('change', function (ev) {
    var form = ev.target.closest('form[data-autosubmit]');
    if (form) form.requestSubmit();
  });
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches('form[data-autosubmit]')) return;
    form.querySelectorAll('select, input').forEach(function (el) {
      if (el.name && el.value === '') el.disabled = true;
    });
  });
  window.addEventListener('pageshow', function () {
    // Coming back through the history: re-enable what submit disabled.
    document.querySelectorAll('form[data-autosubmit] [disabled]').forEach(function (el) {
      el.disabled = false;
    });
  });

  function start() {
    document.querySelectorAll('pre.log').forEach(function (p) {
      p.scrollTop = p.scrollHeight;
    });
    if (targets().length) {
      setStatus('ok');
      schedule();
    }
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
