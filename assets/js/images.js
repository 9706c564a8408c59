// Drop an image's blurred placeholder layer (the `.ph-blur` image stacked under it)
// once the image itself has loaded, so it never shows through transparent pixels.
// Load events do not bubble: listen in the capture phase, once for the whole page
// (htmx-swapped images included).
function napiatkeDropPlaceholder(img) {
  var ph = img.closest(".ph");
  var blur = ph && ph.querySelector(".ph-blur");
  if (blur) blur.remove();
}
document.addEventListener("load", function (e) {
  var t = e.target;
  if (t && t.tagName === "IMG" && t.hasAttribute("data-placeholder")) {
    napiatkeDropPlaceholder(t);
  }
}, true);
// Those that finished before this (deferred) script ran.
document.querySelectorAll("img[data-placeholder]").forEach(function (img) {
  if (img.complete) napiatkeDropPlaceholder(img);
});
