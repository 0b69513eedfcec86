// runledger dashboard: live updates without a page reload. The run page
// listens to its run's Server-Sent Events and swaps in the server-rendered
// live part when the progress changes; the overview re-reads its live part
// every few seconds while a run it shows is unfinished. No dependencies.
(function () {
  'use strict';

  function swap(el, url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { el.innerHTML = html; }) // server-rendered, escaped by html/template
      .catch(function () { /* keep the last view; the next event retries */ });
  }

  function runPage(live) {
    var terminal = ['succeeded', 'failed', 'cancelled', 'timed_out', 'skipped'];
    var busy = false, again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      swap(live, live.dataset.part).then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
    }
    function forms(status) {
      var done = terminal.indexOf(status) >= 0;
      var cancel = document.getElementById('cancel-form');
      var retry = document.getElementById('retry-form');
      if (cancel) { cancel.hidden = done; }
      if (retry) { retry.hidden = !done; }
      live.dataset.status = status;
    }
    var es = new EventSource(live.dataset.events);
    es.addEventListener('progress', function (ev) {
      var p = JSON.parse(ev.data);
      var pct = p.total ? Math.floor(p.finished * 100 / p.total) : 0;
      var shown = document.getElementById('run-progress');
      if (shown) { shown.textContent = pct + '% · ' + p.finished + ' of ' + p.total + ' items finished'; }
      forms(p.status);
      refresh();
    });
    es.addEventListener('done', function () {
      es.close();
      refresh();
    });
  }

  function overview(el) {
    setInterval(function () {
      if (document.visibilityState === 'visible') { swap(el, el.dataset.part); }
    }, 2000);
  }

  document.addEventListener('DOMContentLoaded', function () {
    var live = document.getElementById('live');
    if (live && live.dataset.events) { runPage(live); }
    var ov = document.getElementById('overview-live');
    if (ov && ov.dataset.part) { overview(ov); }
  });
})();
