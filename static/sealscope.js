/* sealscope: the small script behind the pages (htmx does the requests).
 * - keyboard shortcuts: any element with data-key="<key>" is clicked (or focused);
 * - the maps: hover readout, drag across the page map to pick a range, click to select
 *   a page or a frame (through the #ctx form, so the URL names the selection);
 * - the help dialog, the share link, the trace file picker, the time slider's output.
 */
(function () {
  "use strict";
  var PAGE = 4096;

  function $(sel, root) { return (root || document).querySelector(sel); }
  // a field that takes text; a read-only field (the share link) or a slider does not,
  // so the shortcuts still work there (the keys the control uses itself stay its own)
  var NOT_TEXT = /^(range|checkbox|radio|button|submit|reset|color|file)$/;
  function typing(el) {
    var f = el && el.closest && el.closest("input, textarea, select, [contenteditable=true]");
    if (!f) return null;
    if (f.tagName === "INPUT" && (f.readOnly || NOT_TEXT.test(f.type))) return null;
    return f;
  }
  function ownKey(el, key) {
    if (!el || !el.matches) return false;
    if (/^(Enter| )$/.test(key)) return el.matches("input, select, button, a, summary");
    return /^(Arrow|Page|Home$|End$)/.test(key) && el.matches("input, select");
  }

  // -- the #ctx form: the view's state, submitted by htmx (hx-get, hx-push-url) --------
  function setParam(form, name, value) {
    var input = form.querySelector('[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value === null || value === undefined ? "" : String(value);
  }
  function go(changes) {
    var form = $("#ctx");
    if (!form) return;
    changes.goto = changes.goto || ""; // a click on a map keeps its window
    Object.keys(changes).forEach(function (k) { setParam(form, k, changes[k]); });
    if (window.htmx) { window.htmx.trigger(form, "submit"); } else { form.submit(); }
  }
  // empty fields stay out of the URL
  document.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.verb !== "get") return;
    var p = e.detail.parameters;
    Object.keys(p).forEach(function (k) { if (p[k] === "") delete p[k]; });
  });

  // -- keyboard --------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      var open = $("dialog[open]");
      if (open) { open.close(); return; }
    }
    if (typing(e.target) || $("dialog[open]") || ownKey(e.target, e.key)) return;
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === "=") key = "+"; // the + key without shift
    if ((key === "+" || key === "-") && pointer) {
      var over = $('.track[data-kind="' + pointer.kind + '"]');
      if (over) { e.preventDefault(); zoomAt(over, pointer.x, key === "+" ? 0.5 : 2); return; }
    }
    var el = document.querySelector('[data-key="' + (key === '"' ? '\\"' : key) + '"]');
    if (!el || el.matches(".disabled, :disabled")) return;
    e.preventDefault();
    if (el.hasAttribute("data-focus")) { el.focus(); if (el.select) el.select(); return; }
    el.click();
  });

  // -- help, share, import ---------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target : null;
    if (!t) return;
    if (t.closest("[data-help-open]")) { var d = $("#help"); if (d && !d.open) d.showModal(); }
    if (t.closest("[data-copy-share]")) {
      var url = location.href;
      if (navigator.clipboard) navigator.clipboard.writeText(url).catch(function () {});
      var s = $("[data-share]"); if (s) { s.value = url; s.select(); }
    }
    if (t.closest("[data-zoom-range]")) {
      var r = range();
      if (r) go({ start: r[0], end: r[1] + 1, page: "" });
    }
  });
  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("[data-trace-file]") || !input.files.length) return;
    var reader = new FileReader();
    reader.onload = function () {
      var text = input.form.querySelector("textarea[name=trace]");
      if (text) text.value = String(reader.result);
    };
    reader.readAsText(input.files[0]);
  });
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (t.matches && t.matches(".tt-slider")) {
      var out = t.form.querySelector(".tt-out");
      if (out) out.textContent = t.value + " / " + t.max;
    }
    if (t.matches && t.matches("[data-range-from], [data-range-to]")) { picked = true; drawPick(); }
  });

  // -- the maps --------------------------------------------------------------------------
  function indexAt(track, x) {
    var r = track.getBoundingClientRect();
    var s = Number(track.dataset.start), e = Number(track.dataset.end);
    var f = Math.min(Math.max((x - r.left) / r.width, 0), 0.999999);
    return Math.min(e - 1, Math.floor(s + f * (e - s)));
  }
  function range() {
    var a = $("[data-range-from]"), b = $("[data-range-to]");
    if (!a || !b || a.value === "" || b.value === "") return null;
    var lo = Number(a.value), hi = Number(b.value);
    return hi >= lo ? [lo, hi] : null;
  }
  var picked = false; // the range is drawn once the user picks one
  function drawPick() {
    var track = $('.track[data-kind="pages"]'), r = picked ? range() : null;
    var hint = $("[data-range-bytes]");
    if (hint) {
      hint.textContent = r ? "bytes: offset " + r[0] * PAGE + ", len " + (r[1] - r[0] + 1) * PAGE +
        " (" + (r[1] - r[0] + 1) + " page" + (r[1] > r[0] ? "s" : "") + ")" : "";
    }
    if (!track) return;
    var pick = track.querySelector(".pick");
    var s = Number(track.dataset.start), e = Number(track.dataset.end);
    if (!pick || !r || r[1] < s || r[0] >= e) { if (pick) pick.hidden = true; return; }
    var lo = Math.max(r[0], s), hi = Math.min(r[1] + 1, e);
    pick.style.left = ((lo - s) / (e - s)) * 100 + "%";
    pick.style.width = ((hi - lo) / (e - s)) * 100 + "%";
    pick.hidden = false;
  }
  function describe(track, ev) {
    var i = indexAt(track, ev.clientX), bar = ev.target.closest(".b");
    var pages = track.dataset.kind === "pages";
    var text = (pages ? "page " : "frame ") + i.toLocaleString("en");
    if (bar && bar.dataset.p) {
      text += " · pfn " + (Number(bar.dataset.p) + i - Number(bar.dataset.s)).toLocaleString("en");
    }
    if (bar && bar.title) text += " — " + bar.title;
    else if (track.dataset.density !== undefined) text += " — " + heatWords(track, ev.clientX);
    return text;
  }

  // -- density: each pixel column of a wide map as a heat scale ------------------------
  // data-density: per column (data-cols of them over [start, end)) the pages present or
  // frames used; data-marks: what they are (page flags as letters h l d m w; frames:
  // their file's fd + 1, "m" for several files, "c" for no open file). A column with
  // anything in it gets at least the scale's lowest step: nothing present is ever lost.
  function colour(track, expr) {
    var probe = track.querySelector(".probe");
    if (!probe) {
      probe = document.createElement("span");
      probe.className = "probe";
      probe.hidden = true;
      track.appendChild(probe);
    }
    probe.style.color = expr;
    return getComputedStyle(probe).color;
  }
  function buckets(track, width) {
    // the columns each of `width` pixels covers: [c0, c1)
    var n = Number(track.dataset.cols), out = [];
    for (var x = 0; x < width; x++) {
      var c0 = Math.floor(x * n / width);
      out.push([c0, Math.max(c0 + 1, Math.floor((x + 1) * n / width))]);
    }
    return out;
  }
  function bucket(track, counts, marks, c0, c1) {
    var sum = 0, seen = {};
    for (var c = c0; c < c1; c++) {
      sum += counts[c] || 0;
      var m = marks[c];
      if (m) seen[m] = true;
    }
    return { sum: sum, marks: Object.keys(seen) };
  }
  function parse(track) {
    return {
      counts: (track.dataset.density || "").split(",").map(Number),
      marks: (track.dataset.marks || "").split(","),
      span: (Number(track.dataset.end) - Number(track.dataset.start)) / Number(track.dataset.cols)
    };
  }
  function heat(track) {
    if (track.dataset.density === undefined) return;
    var canvas = track.querySelector("canvas.heat");
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.className = "heat";
      canvas.setAttribute("aria-hidden", "true");
      track.insertBefore(canvas, track.firstChild);
    }
    var dpr = window.devicePixelRatio || 1;
    var W = Math.max(1, Math.round(track.clientWidth * dpr));
    var H = Math.max(1, Math.round(track.clientHeight * dpr));
    canvas.width = W;
    canvas.height = H;
    var ctx = canvas.getContext("2d"), d = parse(track), pages = track.dataset.kind === "pages";
    var palette = {};
    function paint(expr) { return palette[expr] || (palette[expr] = colour(track, expr)); }
    var strip = Math.max(1, Math.round(H * 0.3));
    buckets(track, W).forEach(function (b, x) {
      var got = bucket(track, d.counts, d.marks, b[0], b[1]);
      if (!got.sum) return;
      var cap = Math.max(1, (b[1] - b[0]) * d.span);
      ctx.globalAlpha = Math.min(1, 0.3 + 0.7 * Math.log1p(got.sum) / Math.log1p(cap));
      var m = got.marks.join("");
      if (pages) {
        ctx.fillStyle = paint(m.indexOf("h") >= 0 ? "var(--huge)" : "var(--present)");
        ctx.fillRect(x, 0, 1, H);
        ctx.globalAlpha = 1;
        if (m.indexOf("l") >= 0) { ctx.fillStyle = paint("var(--locked)"); ctx.fillRect(x, 0, 1, strip); }
        if (m.indexOf("m") >= 0) { ctx.fillStyle = paint("var(--mapped)"); ctx.fillRect(x, H - strip, 1, strip); }
        return;
      }
      var one = got.marks.length === 1 && /^\d+$/.test(got.marks[0]);
      if (one) {
        ctx.fillStyle = paint("var(--fd" + ((Number(got.marks[0]) - 1) % 6) + ")");
        ctx.fillRect(x, 0, 1, H);
      } else { // several files, or frames of no open file: striped
        ctx.fillStyle = paint("var(--muted)");
        for (var y = 0; y < H; y += 4 * dpr) ctx.fillRect(x, y, 1, 2 * dpr);
      }
    });
  }
  function heats() { document.querySelectorAll(".track[data-density]").forEach(heat); }
  function heatWords(track, clientX) {
    var r = track.getBoundingClientRect(), d = parse(track);
    var x = Math.min(Math.max(Math.floor(clientX - r.left), 0), Math.max(0, Math.round(r.width) - 1));
    var b = buckets(track, Math.max(1, Math.round(r.width)))[x];
    if (!b) return "";
    var got = bucket(track, d.counts, d.marks, b[0], b[1]);
    var s = Number(track.dataset.start), w = Number(track.dataset.end) - s, n = Number(track.dataset.cols);
    var lo = s + Math.ceil(b[0] * w / n), hi = s + Math.ceil(b[1] * w / n) - 1;
    var pages = track.dataset.kind === "pages";
    var what = pages ? " present" : " in use";
    var words = (pages ? "pages " : "frames ") + lo.toLocaleString("en") + "\u2013" + hi.toLocaleString("en") +
      ": " + got.sum.toLocaleString("en") + what + " of " + (hi - lo + 1).toLocaleString("en");
    var m = got.marks.join("");
    if (pages) {
      [["h", "huge"], ["l", "locked"], ["d", "dirty"], ["m", "mapped"], ["w", "waited on"]].forEach(function (k) {
        if (m.indexOf(k[0]) >= 0) words += ", some " + k[1];
      });
    } else if (got.marks.length > 1 || m === "m") {
      words += ", of several files";
    }
    return words;
  }
  var resizing = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(heats, 100);
  });
  document.addEventListener("change", function (e) {
    if (e.target && e.target.id === "theme") heats();
  });
  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) mq.addEventListener("change", heats);
  }

  // -- zoom around the cursor: the wheel, and + / - over a map ---------------------------
  function zoomAt(track, clientX, f) {
    var s = Number(track.dataset.start), e = Number(track.dataset.end);
    var total = Number(track.dataset.total), pages = track.dataset.kind === "pages";
    var r = track.getBoundingClientRect();
    var frac = Math.min(Math.max((clientX - r.left) / r.width, 0), 1);
    var at = s + frac * (e - s);
    var w = Math.min(total, Math.max(pages ? 8 : 16, Math.round((e - s) * f)));
    if (w === e - s) return;
    var lo = Math.max(0, Math.min(Math.round(at - frac * w), total - w));
    go(pages ? { start: lo, end: lo + w } : { fstart: lo, fend: lo + w });
  }
  var wheelAt = 0, pointer = null, scrolledAt = 0;
  // a scroll of the page that passes over a map goes on scrolling; a wheel that starts
  // over a map (the page still) zooms it
  window.addEventListener("scroll", function () { scrolledAt = Date.now(); }, { passive: true });
  document.addEventListener("wheel", function (e) {
    var track = e.target.closest && e.target.closest(".track");
    if (!track || e.ctrlKey || !e.deltaY || Date.now() - scrolledAt < 400) return;
    e.preventDefault();
    var now = Date.now();
    if (now - wheelAt < 250) return; // one zoom step per flick of the wheel
    wheelAt = now;
    zoomAt(track, e.clientX, e.deltaY < 0 ? 0.5 : 2);
  }, { passive: false });
  document.addEventListener("pointerover", function (e) {
    var track = e.target.closest && e.target.closest(".track");
    pointer = track ? { kind: track.dataset.kind, x: e.clientX } : null;
  });

  var drag = null;
  document.addEventListener("pointerdown", function (e) {
    var track = e.target.closest && e.target.closest(".track");
    if (!track || e.button !== 0) return;
    drag = { track: track, x: e.clientX, from: indexAt(track, e.clientX), moved: false };
    track.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  document.addEventListener("pointermove", function (e) {
    var track = drag ? drag.track : e.target.closest && e.target.closest(".track");
    pointer = track ? { kind: track.dataset.kind, x: e.clientX } : null;
    if (!track) return;
    var hover = $('[data-hover="' + track.dataset.kind + '"]');
    if (hover) hover.textContent = describe(track, e);
    if (!drag || track.dataset.kind !== "pages") return;
    if (Math.abs(e.clientX - drag.x) > 3) drag.moved = true;
    if (!drag.moved) return;
    var i = indexAt(track, e.clientX);
    var a = $("[data-range-from]"), b = $("[data-range-to]");
    if (a && b) {
      a.value = Math.min(drag.from, i);
      b.value = Math.max(drag.from, i);
      picked = true;
      drawPick();
    }
  });
  document.addEventListener("pointerup", function (e) {
    if (!drag) return;
    var d = drag;
    drag = null;
    if (d.moved && d.track.dataset.kind === "pages") return;
    var i = indexAt(d.track, e.clientX);
    if (d.track.dataset.kind === "pages") {
      go({ page: i, frame: "" });
    } else {
      go({ frame: i, page: "" });
    }
  });

  // -- live: the event stream refreshes #view (the #live element's hx-trigger) ----------
  // Skip a refresh the view already shows (an action's answer carries the new view),
  // and hold it while the user drags or types in the view; a rewind always refreshes.
  var seen = 0, forced = false, held = false;
  document.addEventListener("sse:message", function (e) {
    seen = Math.max(seen, Number(e.detail && e.detail.lastEventId) || 0);
  });
  document.addEventListener("sse:rewind", function () { forced = true; });
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (!e.detail.elt || e.detail.elt.id !== "live") return;
    var view = $("#view"), active = document.activeElement;
    var busy = drag || (view && typing(active) && view.contains(active));
    if (busy) { held = true; e.preventDefault(); return; }
    var shown = view ? Number(view.dataset.events) : -1;
    var preview = view && view.dataset.shown !== view.dataset.seq;
    if (!forced && !preview && shown >= seen) { e.preventDefault(); return; }
    forced = false;
  });
  function release() {
    if (!held) return;
    held = false;
    var live = $("#live");
    if (live && window.htmx) window.htmx.trigger(live, "sse:message", {});
  }
  document.addEventListener("pointerup", function () { setTimeout(release, 0); });
  document.addEventListener("focusout", function () { setTimeout(release, 0); });

  // -- a walkthrough's autoplay: Next step by itself, every `speed` seconds ----------------
  var SPEED_KEY = "sealscope-walk-speed", play = { on: false, timer: 0 };
  function storedSpeed() {
    try { return localStorage.getItem(SPEED_KEY); } catch (e) { return null; }
  }
  function playSync() {
    var b = $("[data-autoplay]"), sel = $("#walk-speed"), saved = storedSpeed();
    if (sel && saved && sel.querySelector('option[value="' + saved + '"]')) sel.value = saved;
    if (!b) { play.on = false; clearTimeout(play.timer); return; }
    b.textContent = play.on ? "\u275a\u275a Pause" : "\u25b6 Play";
    b.setAttribute("aria-pressed", String(play.on));
  }
  function schedule() {
    clearTimeout(play.timer);
    if (!play.on) return;
    var sel = $("#walk-speed"), wait = (sel ? Number(sel.value) : 2) * 1000;
    play.timer = setTimeout(function () {
      var next = $("#walk .walk-nav a.primary, #walk .walk-nav button.primary");
      if (!play.on) return;
      if (!next) { play.on = false; playSync(); return; } // the end
      next.click();
    }, wait);
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-autoplay]");
    if (!b) return;
    play.on = !play.on;
    playSync();
    schedule();
  });
  document.addEventListener("change", function (e) {
    if (!e.target || e.target.id !== "walk-speed") return;
    try { localStorage.setItem(SPEED_KEY, e.target.value); } catch (err) { /* this page only */ }
    schedule();
  });
  document.addEventListener("htmx:afterSettle", function () { playSync(); schedule(); });

  // -- charts over the op log: hover reads out, a click previews that op, a drag compares -
  function chartOp(svg, x) {
    var r = svg.getBoundingClientRect(), n = Number(svg.closest(".charts").dataset.ops);
    return Math.round(Math.min(Math.max((x - r.left) / r.width, 0), 1) * n);
  }
  var brush = null;
  document.addEventListener("pointerdown", function (e) {
    var svg = e.target.closest && e.target.closest(".chart svg");
    if (!svg || e.button !== 0) return;
    brush = { svg: svg, x: e.clientX, from: chartOp(svg, e.clientX) };
    svg.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  document.addEventListener("pointermove", function (e) {
    var svg = brush ? brush.svg : e.target.closest && e.target.closest(".chart svg");
    if (!svg) return;
    var n = chartOp(svg, e.clientX), fig = svg.closest(".chart");
    var values = (fig.dataset.values || "").split(","), out = $(".chart-readout");
    if (out) out.textContent = fig.dataset.title + " after op " + n + ": " + Number(values[n] || 0).toLocaleString("en");
    if (!brush) return;
    var rect = svg.querySelector(".brush"), ops = Number(svg.closest(".charts").dataset.ops) || 1;
    var a = Math.min(brush.from, n), b = Math.max(brush.from, n);
    rect.setAttribute("x", String(1000 * a / ops));
    rect.setAttribute("width", String(1000 * (b - a) / ops));
    rect.hidden = false;
  });
  document.addEventListener("pointerup", function (e) {
    if (!brush) return;
    var b = brush, root = b.svg.closest(".charts"), n = chartOp(b.svg, e.clientX);
    brush = null;
    var q = root.dataset.query ? "&" + root.dataset.query : "";
    if (Math.abs(e.clientX - b.x) > 4 && n !== b.from) {
      location.href = root.dataset.base + "/versus?a=" + Math.min(b.from, n) + "&b=" + Math.max(b.from, n) + q;
    } else {
      location.href = root.dataset.base + "?at=" + n + q;
    }
  });

  // -- after every swap ------------------------------------------------------------------
  function settle() {
    drawPick();
    heats();
    var s = $("[data-share]");
    if (s) s.value = location.href;
  }
  document.addEventListener("htmx:afterSettle", settle);
  document.addEventListener("htmx:pushedIntoHistory", settle);
  document.addEventListener("htmx:replacedInHistory", settle);
  document.addEventListener("DOMContentLoaded", settle);
  document.addEventListener("DOMContentLoaded", playSync);
  // a phone: the action groups start closed (but the first), so the maps stay close
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.matchMedia || !window.matchMedia("(max-width: 700px)").matches) return;
    document.querySelectorAll(".actions details").forEach(function (d, i) { if (i) d.open = false; });
  });
  // a failure htmx does not swap (network, 5xx): say so where results go
  function failed(e) {
    var box = $("#result [role=status]");
    if (box) box.textContent = "The request failed (" + ((e.detail.xhr && e.detail.xhr.status) || "network") + "); try again.";
  }
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:responseError", failed);
})();
