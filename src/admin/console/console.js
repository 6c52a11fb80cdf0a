// The Glasscast console: a client of the documented /v1 API and nothing else. Every action
// here is one API call that curl can make too. The bearer token is asked once and kept in
// sessionStorage (gone when the tab closes). Text from the API is only ever inserted as text.
(function () {
  "use strict";

  var TOKEN = "glasscast.token";
  var app = document.getElementById("app");
  var info = null;
  var timers = [];
  var player = null;

  // ---- DOM and formatting helpers -------------------------------------------------------

  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function badge(word) { return h("span", { class: "badge " + word, "data-state": word }, word); }
  function show() { app.textContent = ""; add(app, Array.prototype.slice.call(arguments)); }
  function bits(b) {
    if (!b) return "–";
    return b >= 1e6 ? (b / 1e6).toFixed(2) + " Mbit/s" : Math.round(b / 1e3) + " kbit/s";
  }
  function bytes(n) {
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(2) + " GiB";
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1 << 10) return Math.round(n / 1024) + " KiB";
    return n + " B";
  }
  function span(from, to) {
    var s = Math.max(0, Math.round(((to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1000));
    var hh = Math.floor(s / 3600), mm = Math.floor(s / 60) % 60, ss = s % 60;
    return (hh ? hh + "h " : "") + (hh || mm ? mm + "m " : "") + ss + "s";
  }
  function video(v) {
    if (!v) return "–";
    return v.codec + " " + v.width + "×" + v.height + (v.frameRate ? " @" + v.frameRate.toFixed(0) : "");
  }
  function audio(a) { return a ? a.codec + " " + a.sampleRate / 1000 + " kHz" : "–"; }
  function parts(p) {
    if (!p || p.meanMs === null) return "–";
    return Math.round(p.meanMs) + " ms (max " + Math.round(p.maxMs) + ", target " + p.targetMs + ")";
  }
  function streamPath(s) { return encodeURIComponent(s.userId) + "/" + encodeURIComponent(s.streamId); }
  function every(ms, f) { f(); timers.push(setInterval(f, ms)); }
  function stopAll() {
    timers.forEach(clearInterval);
    timers = [];
    if (player) { player.destroy(); player = null; }
  }
  function copyable(url, id) {
    return h("dd", {}, h("a", { href: url, target: "_blank", "data-testid": id }, url), " ",
      h("button", { class: "link", onclick: function () { navigator.clipboard && navigator.clipboard.writeText(url); } }, "copy"));
  }

  // ---- The API ---------------------------------------------------------------------------

  function ApiError(status, body) {
    this.status = status;
    this.code = body && body.error;
    this.message = (body && body.message) || "HTTP " + status;
  }
  function api(method, path, body, headers) {
    var hd = Object.assign({}, headers || {});
    var token = sessionStorage.getItem(TOKEN);
    if (token) hd.Authorization = "Bearer " + token;
    if (body !== undefined) hd["Content-Type"] = "application/json";
    return fetch("/v1" + path, { method: method, headers: hd, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) {
        if (r.status === 204) return null;
        return r.json().catch(function () { return null; }).then(function (j) {
          if (r.ok) return j;
          if (r.status === 401) {
            login(token ? "The token was refused." : "");
            sessionStorage.removeItem(TOKEN);
          }
          throw new ApiError(r.status, j);
        });
      });
  }
  function failed(where) {
    return function (e) { if (e.status !== 401) add(where, h("p", { class: "error", "data-testid": "error" }, e.message)); };
  }

  // ---- Sign-in ---------------------------------------------------------------------------

  function login(message) {
    stopAll();
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    var input = h("input", { type: "password", id: "token", autocomplete: "current-password", placeholder: "admin.token" });
    var err = h("p", { class: "error", id: "login-error", "data-testid": "login-error" }, message || "");
    show(h("form", {
      class: "login",
      onsubmit: function (ev) {
        ev.preventDefault();
        sessionStorage.setItem(TOKEN, input.value);
        start();
      },
    }, h("h1", {}, "Sign in"), h("p", { class: "muted" }, "The management API's bearer token (admin.token)."),
    input, err, h("button", { type: "submit", id: "login-submit" }, "Sign in")));
    input.focus();
  }

  function start() {
    api("GET", "/info").then(function (i) {
      info = i;
      document.getElementById("nav").hidden = false;
      document.getElementById("nav-keys").hidden = info.authMode !== "keys";
      document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN);
      document.getElementById("relay").textContent = "v" + info.version + " · ingest " + info.rtmpUrl;
      route();
    }).catch(function (e) {
      if (e.status === 401) return; // api() has shown the sign-in form
      if (e.status === 403) show(h("p", { class: "error" }, e.message));
      else show(h("p", { class: "error" }, "The relay does not answer: " + e.message));
    });
  }

  // ---- Pages -----------------------------------------------------------------------------

  function route() {
    stopAll();
    var hash = location.hash.replace(/^#\/?/, "");
    var segs = hash.split("/");
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-nav") === (segs[0] || "streams"));
    });
    if (segs[0] === "stream" && segs.length === 3) streamPage(decodeURIComponent(segs[1]), decodeURIComponent(segs[2]));
    else if (segs[0] === "keys") keysPage();
    else streamsPage();
  }

  function streamsPage() {
    var body = h("tbody", { id: "streams" });
    var showEnded = h("input", { type: "checkbox", id: "show-ended", checked: true });
    var err = h("div");
    show(h("h1", {}, "Streams"),
      h("p", { class: "muted" }, "Publish to ", h("code", {}, info.rtmpUrl + "/live/{userId}/{streamId}"),
        ". ", h("label", {}, showEnded, " show streams that ended in the last hour")),
      h("table", {}, h("thead", {}, h("tr", {}, ["Stream", "State", "Uptime", "Ingest", "Video", "Audio", "Viewers",
        "Parts", "Publisher", "Reconnects", "Outputs"].map(function (t) { return h("th", {}, t); }))), body), err);
    every(1000, function () {
      api("GET", "/streams" + (showEnded.checked ? "?ended=true" : "")).then(function (r) {
        body.textContent = "";
        if (!r.streams.length) body.appendChild(h("tr", {}, h("td", { colspan: 11, class: "muted" }, "No streams.")));
        r.streams.forEach(function (s) {
          var live = s.state !== "ended";
          var active = s.outputs.filter(function (o) { return o.status === "active"; }).length;
          body.appendChild(h("tr", { "data-stream": s.userId + "/" + s.streamId, "data-state": s.state },
            h("td", {}, live ? h("a", { href: "#/stream/" + streamPath(s) }, s.userId + " / " + s.streamId) : s.userId + " / " + s.streamId),
            h("td", {}, badge(s.state)),
            h("td", {}, span(s.startedAt, s.endedAt)),
            h("td", { "data-testid": "bitrate" }, live ? bits(s.bitrate) : "–"),
            h("td", {}, video(s.video)),
            h("td", {}, audio(s.audio)),
            h("td", {}, s.viewers),
            h("td", {}, live ? parts(s.parts) : "–"),
            h("td", {}, s.clientIp || "–"),
            h("td", {}, s.reconnects),
            h("td", {}, s.outputs.length ? active + " / " + s.outputs.length + " active" : "–")));
        });
        err.textContent = "";
      }).catch(function (e) { if (e.status !== 401) err.textContent = e.message; });
    });
  }

  function streamPage(userId, streamId) {
    var path = "/streams/" + encodeURIComponent(userId) + "/" + encodeURIComponent(streamId);
    var head = h("div");
    var urls = h("dl");
    var outs = h("tbody", { id: "outputs" });
    var recs = h("tbody", { id: "recordings" });
    var vid = h("video", { id: "player", controls: true, muted: true, autoplay: true, playsinline: true });
    var latency = h("b", { id: "latency", "data-seconds": "" }, "–");
    var stalls = h("b", { id: "stalls" }, "0");
    var playing = h("span", { id: "playing", class: "muted" }, "live");
    var err = h("div");
    var name = h("input", { id: "output-name", placeholder: "name", size: 12 });
    var url = h("input", { id: "output-url", placeholder: "rtmp(s)://host/app/key", size: 44 });
    var state = null;
    var loaded = null;
    var stallCount = 0;

    function play(src, label) {
      if (player) player.destroy();
      if (!window.Hls || !Hls.isSupported()) { playing.textContent = "this browser cannot play HLS"; return; }
      player = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
      window.glasscastPlayer = player;
      player.on(Hls.Events.ERROR, function (_e, d) {
        if (d.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) stalls.textContent = String(++stallCount);
        if (d.fatal && d.type === Hls.ErrorTypes.MEDIA_ERROR) player.recoverMediaError();
      });
      player.loadSource(src);
      player.attachMedia(vid);
      loaded = src;
      playing.textContent = label;
      latency.textContent = "–";
      latency.setAttribute("data-seconds", "");
    }

    function kick() {
      if (!confirm("End " + userId + "/" + streamId + " now? The publisher is disconnected.")) return;
      api("DELETE", path).catch(failed(err));
    }

    function addOutput(ev) {
      ev.preventDefault();
      api("POST", path + "/outputs", { url: url.value, name: name.value || "console" }, { "X-Package-Name": "console" })
        .then(function () { url.value = ""; name.value = ""; err.textContent = ""; })
        .catch(failed(err));
    }

    function removeOutput(o) {
      // Only the app that added an output may remove it: the console speaks for that app.
      api("DELETE", path + "/outputs/" + encodeURIComponent(o.outputId), undefined, { "X-Package-Name": o.addedBy })
        .catch(failed(err));
    }

    show(h("h1", {}, h("a", { href: "#/" }, "Streams"), " / ", userId + " / " + streamId), head,
      h("div", { class: "grid" },
        h("div", {}, vid,
          h("div", { class: "stats" }, h("span", {}, "Latency ", latency, " s"), h("span", {}, "Stalls ", stalls), playing)),
        h("div", {}, urls)),
      h("h2", {}, "Restream outputs"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Name", "URL", "Added by", "Status", "Error", "Sent", "Dropped", "Reconnects", ""]
        .map(function (t) { return h("th", {}, t); }))), outs),
      h("form", { class: "row", id: "add-output", onsubmit: addOutput }, name, url, h("button", { type: "submit", id: "output-add" }, "Add output")),
      h("h2", {}, "Recordings"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Started", "Duration", "State", ""].map(function (t) { return h("th", {}, t); }))), recs),
      err);

    every(1000, function () {
      api("GET", path).then(function (s) {
        if (!loaded) play(s.hlsUrl, "live");
        state = s.state;
        head.textContent = "";
        add(head, h("p", {}, badge(s.state), " since ", span(s.startedAt), " · ", bits(s.bitrate), " · ", video(s.video),
          " · ", audio(s.audio), " · ", s.viewers + " viewer(s) · publisher ", s.clientIp || "–", " · reconnects ", s.reconnects,
          " ", h("button", { class: "danger", id: "kick", onclick: kick }, "Kick publisher")));
        urls.textContent = "";
        add(urls, [h("dt", {}, "HLS"), copyable(s.hlsUrl, "hls-url"), h("dt", {}, "DASH"), copyable(s.dashUrl, "dash-url")]);
        if (info.player) add(urls, [h("dt", {}, "Player page"), copyable(s.hlsUrl.replace(/index\.m3u8$/, ""), "player-url")]);
        add(urls, [h("dt", {}, "Parts"), h("dd", {}, parts(s.parts)), h("dt", {}, "Delivery"), h("dd", {}, s.delivery.mode + " (serving: " + s.delivery.serving + ")")]);
        outs.textContent = "";
        if (!s.outputs.length) outs.appendChild(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No outputs.")));
        s.outputs.forEach(function (o) {
          var removable = o.addedBy !== "cloud" && o.addedBy !== "config";
          outs.appendChild(h("tr", { "data-output": o.outputId, "data-status": o.status },
            h("td", {}, o.name), h("td", { class: "wrap" }, o.url), h("td", {}, o.addedBy), h("td", {}, badge(o.status)),
            h("td", { class: "wrap" }, o.error || ""), h("td", {}, bytes(o.bytesSent)), h("td", {}, o.dropped), h("td", {}, o.reconnects),
            h("td", {}, h("button", {
              class: "danger", "data-remove": o.outputId, disabled: !removable,
              title: removable ? "" : "set by the " + o.addedBy + "; change it there", onclick: function () { removeOutput(o); },
            }, "Remove"))));
        });
      }).catch(function (e) {
        if (e.code !== "STREAM_NOT_FOUND") return;
        state = "ended";
        head.textContent = "";
        add(head, h("p", {}, badge("ended"), " The stream is not live."));
        outs.textContent = "";
      });
      if (info.recording) {
        api("GET", "/recordings?userId=" + encodeURIComponent(userId) + "&streamId=" + encodeURIComponent(streamId)).then(function (r) {
          recs.textContent = "";
          if (!r.recordings.length) recs.appendChild(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No recordings.")));
          r.recordings.forEach(function (x) {
            recs.appendChild(h("tr", { "data-recording": x.recordingId },
              h("td", {}, x.startedAt), h("td", {}, x.durationS.toFixed(1) + " s"), h("td", {}, badge(x.state)),
              h("td", {}, x.state === "recording" ? "" : [h("button", { class: "link", onclick: function () { play(x.hlsUrl, "recording " + x.recordingId); } }, "Play"),
                " · ", h("a", { href: x.mp4Url, download: "" }, "Download MP4")])));
          });
        }).catch(function () {});
      } else if (!recs.childNodes.length) {
        recs.appendChild(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Recording is off.")));
      }
    });
    every(500, function () {
      // Latency from PROGRAM-DATE-TIME: wall clock minus the time of the frame on screen.
      if (player && player.playingDate && !vid.paused && state !== "ended" && loaded && playing.textContent === "live") {
        var l = (Date.now() - player.playingDate.getTime()) / 1000;
        latency.textContent = l.toFixed(2);
        latency.setAttribute("data-seconds", String(l));
      }
    });
  }

  function keysPage() {
    var body = h("tbody", { id: "keys" });
    var err = h("div");
    var created = h("div", { id: "created" });
    var f = {
      user: h("input", { id: "key-user", placeholder: "userId", required: true }),
      stream: h("input", { id: "key-stream", placeholder: "streamId (any)" }),
      alias: h("input", { id: "key-alias", placeholder: "alias" }),
      ttl: h("input", { id: "key-ttl", placeholder: "ttl seconds (30 days)", type: "number", min: 1 }),
      ips: h("input", { id: "key-ips", placeholder: "allowed CIDRs, comma separated" }),
    };
    function refresh() {
      api("GET", "/keys").then(function (r) {
        body.textContent = "";
        if (!r.keys.length) body.appendChild(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No keys.")));
        r.keys.forEach(function (k) {
          body.appendChild(h("tr", { "data-key": k.keyId },
            h("td", {}, h("code", { title: k.keyId }, k.keyId.slice(0, 12) + "…")), h("td", {}, k.userId), h("td", {}, k.streamId || "any"), h("td", {}, k.alias || ""),
            h("td", {}, k.createdAt), h("td", {}, k.expiresAt), h("td", {}, k.allowIps.join(", ") || "any"),
            h("td", {}, h("button", {
              class: "danger", "data-revoke": k.keyId,
              onclick: function () { if (confirm("Revoke " + k.keyId + "? Publishers using it are refused from now on.")) api("DELETE", "/keys/" + encodeURIComponent(k.keyId)).then(refresh).catch(failed(err)); },
            }, "Revoke"))));
        });
      }).catch(failed(err));
    }
    function create(ev) {
      ev.preventDefault();
      var spec = { userId: f.user.value };
      if (f.stream.value) spec.streamId = f.stream.value;
      if (f.alias.value) spec.alias = f.alias.value;
      if (f.ttl.value) spec.ttlSeconds = Number(f.ttl.value);
      var ips = f.ips.value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
      if (ips.length) spec.allowIps = ips;
      api("POST", "/keys", spec).then(function (k) {
        created.textContent = "";
        add(created, h("div", { class: "notice" }, "Key ", h("code", {}, k.keyId), " created. Copy it now; it is not shown again: ",
          h("code", { id: "new-key" }, k.key), " (expires " + k.expiresAt + ")"));
        Object.keys(f).forEach(function (x) { f[x].value = ""; });
        refresh();
      }).catch(failed(err));
    }
    show(h("h1", {}, "Publish keys"),
      h("p", { class: "muted" }, "Publishers connect with ", h("code", {}, "?key=KEY"), " or use the key (or its alias) as the stream name. Keys are never shown again after creation."),
      h("form", { class: "row", id: "create-key", onsubmit: create }, f.user, f.stream, f.alias, f.ttl, f.ips, h("button", { type: "submit", id: "key-create" }, "Create key")),
      created,
      h("table", {}, h("thead", {}, h("tr", {}, ["Key id", "User", "Stream", "Alias", "Created", "Expires", "Allowed from", ""].map(function (t) { return h("th", {}, t); }))), body),
      err);
    refresh();
  }

  document.getElementById("logout").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN);
    login("");
  });
  window.addEventListener("hashchange", function () { if (info) route(); });
  start();
})();
