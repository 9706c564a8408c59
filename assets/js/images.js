// Drop an image's blurred placeholder once the image itself has loaded, so it never
// shows through transparent pixels. Load events do not bubble: listen in the capture
// phase, once for the whole page (htmx-swapped images included).
document.addEventListener("load", function (e) {
  var t = e.target;
  if (t && t.tagName === "IMG" && t.hasAttribute("data-placeholder")) {
    t.style.backgroundImage = "none";
  }
}, true);
// Those that finished before this (deferred) script ran.
document.querySelectorAll("img[data-placeholder]").forEach(function (img) {
  if (img.complete) img.style.backgroundImage = "none";
});
