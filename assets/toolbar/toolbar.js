// napiatke's development debug toolbar (DEBUG_TOOLBAR; never served a handle in
// production). The page carries a small handle; panels, history and plans are
// fetched from /__debug__/ when opened. htmx requests are followed through the
// X-Debug-Request-Id header of their responses, as django-debug-toolbar's History
// panel follows fetch requests. Delegated listeners only: the handle survives htmx
// swaps (hx-preserve) and history restores without being bound again.
(function () {
  'use strict';
  if (window.napiatkeDebug) { return; }
  window.napiatkeDebug = true;
  var swaps = {};
  var followed = 0;

  function root() { return document.getElementById('napiatke-debug'); }
  function base() { var r = root(); return (r && r.getAttribute('data-base')) || '/__debug__/'; }

  function load(url, into, then) {
    if (!into) { return; }
    into.setAttribute('aria-busy', 'true');
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) { return r.text(); })
      .then(function (html) { into.innerHTML = html; markSwaps(into); if (then) { then(); } })
      .catch(function (e) { into.textContent = 'debug toolbar: ' + e; })
      .then(function () { into.removeAttribute('aria-busy'); });
  }

  // What htmx did with each followed response, known only here.
  function markSwaps(within) {
    var cells = within.querySelectorAll('.ndt-swap[data-id]');
    for (var i = 0; i < cells.length; i++) {
      var s = swaps[cells[i].getAttribute('data-id')];
      if (s) { cells[i].textContent = s; }
    }
  }

  function show(id) {
    var r = root();
    if (r) { load(base() + 'requests/' + encodeURIComponent(id), r.querySelector('.ndt-current')); }
  }

  function history() {
    var r = root();
    if (r) { load(base() + 'history', r.querySelector('.ndt-history')); }
  }

  function isOpen() {
    var r = root();
    return !!r && !r.querySelector('.ndt-body').hidden;
  }

  // Open or closed survives navigation, as django-debug-toolbar's does.
  function remember(open) {
    try { window.localStorage.setItem('napiatke-debug-open', open ? '1' : '0'); } catch (e) { /* private mode */ }
  }

  function remembered() {
    try { return window.localStorage.getItem('napiatke-debug-open') === '1'; } catch (e) { return false; }
  }

  function toggle() {
    var r = root();
    if (!r) { return; }
    var body = r.querySelector('.ndt-body');
    body.hidden = !body.hidden;
    remember(!body.hidden);
    r.querySelector('.ndt-handle').setAttribute('aria-expanded', String(!body.hidden));
    if (!body.hidden) {
      show(r.getAttribute('data-request'));
      history();
    }
  }

  document.addEventListener('click', function (e) {
    var t = e.target && e.target.closest ? e.target.closest('#napiatke-debug [data-ndt]') : null;
    if (!t) { return; }
    var act = t.getAttribute('data-ndt');
    if (act === 'toggle') { toggle(); }
    else if (act === 'show') { show(t.getAttribute('data-id')); }
    else if (act === 'history') { history(); }
    else if (act === 'explain') {
      load(t.getAttribute('data-url'), t.parentNode.querySelector('.ndt-plan'));
    }
  });

  function restore() {
    if (remembered() && !isOpen()) { toggle(); }
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', restore);
  } else {
    restore();
  }

  document.addEventListener('htmx:afterRequest', function (e) {
    var d = e.detail || {};
    var xhr = d.xhr;
    var id = xhr && xhr.getResponseHeader('X-Debug-Request-Id');
    if (!id) { return; }
    var elt = d.elt && d.elt.closest ? d.elt.closest('[hx-swap]') : null;
    swaps[id] = xhr.getResponseHeader('HX-Reswap') ||
      (elt ? elt.getAttribute('hx-swap') : 'innerHTML (default)');
    followed += 1;
    var r = root();
    if (!r) { return; }
    var count = r.querySelector('.ndt-htmx-count');
    if (count) { count.textContent = ' · ' + followed + ' htmx'; }
    if (isOpen()) { history(); }
  });
})();
