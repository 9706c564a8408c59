// Written into every page (base.html), hash-allowed by the Content-Security-Policy:
// fetches the page's scripts (data-scripts: hashed URLs, in order) once the page has
// painted its largest content, so nothing competes with the document and that paint
// on a slow connection (Lighthouse's mobile preset counted 15 KB of htmx and two small
// scripts in it: 1.0-1.2 s, docs/performance.md). Until then links and forms work as
// plain links and forms; htmx takes over the page as it is when it arrives.
(function () {
  var me = document.currentScript;
  var srcs = ((me && me.getAttribute("data-scripts")) || "").split(" ").filter(Boolean);
  var done = false;
  function load() {
    if (done) return;
    done = true;
    srcs.forEach(function (src) {
      var s = document.createElement("script");
      s.src = src;
      s.async = false; // run in the order given
      document.head.appendChild(s);
    });
  }
  // The paint is known once the browser reports it (a frame's callbacks run before
  // the frame is shown, so they are too early). Browsers that report neither kind,
  // and tabs that paint nothing while hidden, get the scripts a second after load.
  var types = (window.PerformanceObserver && PerformanceObserver.supportedEntryTypes) || [];
  var type = types.indexOf("largest-contentful-paint") >= 0 ? "largest-contentful-paint"
    : types.indexOf("paint") >= 0 ? "paint" : null;
  if (type) {
    new PerformanceObserver(function (list, observer) {
      if (list.getEntries().length) {
        observer.disconnect();
        setTimeout(load, 0);
      }
    }).observe({ type: type, buffered: true });
  }
  function fallback() { setTimeout(load, 1000); }
  if (document.readyState === "complete") fallback();
  else window.addEventListener("load", fallback, { once: true });
})();
