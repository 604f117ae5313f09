/* sealscope: the colour theme, set before the first paint (loaded without defer).
 * "system" follows prefers-color-scheme; "light" / "dark" set data-theme on <html>
 * (static/sealscope.css picks colours by color-scheme). The choice is remembered in
 * localStorage; the Theme control in the header changes it. */
(function () {
  "use strict";
  var KEY = "sealscope-theme";
  function read() {
    try { return localStorage.getItem(KEY) || "system"; } catch (e) { return "system"; }
  }
  function apply(theme) {
    var root = document.documentElement;
    if (theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);
    else root.removeAttribute("data-theme");
  }
  apply(read());
  function sync() {
    var sel = document.getElementById("theme");
    if (sel) sel.value = read();
  }
  document.addEventListener("DOMContentLoaded", sync);
  window.addEventListener("pageshow", sync);
  document.addEventListener("change", function (e) {
    if (!e.target || e.target.id !== "theme") return;
    var theme = e.target.value;
    try {
      if (theme === "system") localStorage.removeItem(KEY); else localStorage.setItem(KEY, theme);
    } catch (err) { /* storage off: the choice lasts for this page */ }
    apply(theme);
  });
  window.addEventListener("storage", function (e) { if (e.key === KEY) { apply(read()); sync(); } });
})();
