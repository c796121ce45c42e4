// lbproxy dashboard: one snapshot (GET /dashboard/api/state) rendered into cards, refreshed on every
// server-sent event; every button calls the AWS API through POST /dashboard/api/call.
// The server relates things (which grant is for which certificate and load balancer, which key seals which
// certificate, what the diagram shows: state.flow); the page looks them up by name or ARN and draws them.
// No framework, no build step, no third-party code. Data goes into the page as text nodes only.
"use strict";

(function () {
  const TOKEN_KEY = "lbproxy-dashboard-token";
  const TOKEN_HEADER = "X-Lbproxy-Dashboard-Token";
  const KMS = "TrentService";
  const LIGHTSAIL = "Lightsail_20161128";
  const CLASS_COLORS = { "2xx": "c2xx", "3xx": "c3xx", "4xx": "c4xx", "5xx": "c5xx" };

  let token = null;
  let state = null;
  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  const freshAudit = new Set();

  // -- tiny DOM helpers -------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "onclick") el.addEventListener("click", v);
      else if (k === "title") el.title = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function badge(text, kind, extra) {
    return h("span", Object.assign({ class: "badge " + (kind || "muted") }, extra || {}), text);
  }

  function empty(text) {
    return h("p", { class: "empty" }, text);
  }

  function time(t) {
    if (t === null || t === undefined || t === "") return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    if (isNaN(d.getTime())) return String(t);
    return d.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
  }

  function clock(t) {
    if (!t) return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return isNaN(d.getTime()) ? String(t) : d.toLocaleTimeString();
  }

  function shortArn(arn) {
    if (!arn) return "";
    const i = arn.lastIndexOf("/");
    const j = arn.lastIndexOf(":");
    return arn.slice(Math.max(i, j) + 1);
  }

  function principalName(arn) {
    if (!arn) return "";
    if (!arn.startsWith("arn:")) return arn; // a service principal, e.g. acm.amazonaws.com
    const tail = arn.split(":").slice(5).join(":");
    return tail || arn;
  }

  function kv(rows) {
    return h(
      "dl",
      { class: "kv" },
      rows.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    );
  }

  // -- talking to the control plane -----------------------------------------------------------------

  async function api(path, init) {
    const opts = Object.assign({ cache: "no-store" }, init || {});
    opts.headers = Object.assign({ [TOKEN_HEADER]: token }, opts.headers || {});
    const resp = await fetch(path, opts);
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      const err = new Error((body && (body.message || body.Message)) || resp.statusText);
      err.status = resp.status;
      err.code = body && body.__type;
      throw err;
    }
    return body;
  }

  async function call(target, params, what, button) {
    if (button) button.disabled = true;
    try {
      await api("/dashboard/api/call", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ target, params }),
      });
      toast(what + ": done (" + target + ")", "ok");
    } catch (e) {
      toast(what + " failed: " + (e.code ? e.code + ": " : "") + e.message, "bad");
      if (button) button.disabled = false;
    }
    scheduleRefresh(0);
  }

  function toast(text, kind) {
    const t = document.getElementById("toast");
    t.textContent = text;
    t.className = "toast " + (kind || "");
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (t.hidden = true), 5000);
  }

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay === undefined ? 150 : delay);
  }

  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      state = await api("/dashboard/api/state");
      render();
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      hideNotice();
    } catch (e) {
      if (e.status === 401) showNotice("The dashboard token is missing or wrong. Open the URL the control plane printed (it ends in /?token=...).");
      else showNotice("Cannot reach the control plane: " + e.message);
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh();
      }
    }
  }

  function connect() {
    const conn = document.getElementById("conn");
    const es = new EventSource("/dashboard/api/events?token=" + encodeURIComponent(token));
    es.onopen = () => {
      conn.textContent = "live";
      conn.className = "badge ok";
      scheduleRefresh(0);
    };
    es.onerror = () => {
      conn.textContent = "reconnecting";
      conn.className = "badge warn";
    };
    es.addEventListener("control", () => scheduleRefresh());
    es.addEventListener("keystate", () => scheduleRefresh());
    es.addEventListener("audit", (msg) => {
      try {
        const rec = JSON.parse(msg.data);
        freshAudit.add(auditKey(rec));
        prependAudit(rec);
      } catch (e) {
        /* a malformed line is skipped */
      }
      scheduleRefresh();
    });
  }

  function showNotice(text) {
    const n = document.getElementById("notice");
    n.textContent = text;
    n.hidden = false;
  }

  function hideNotice() {
    document.getElementById("notice").hidden = true;
  }

  // -- reading the snapshot --------------------------------------------------------------------

  function lbNamed(name) {
    return state.loadBalancers.find((lb) => lb.name === name) || null;
  }

  function keyLabel(key) {
    return key.aliases && key.aliases.length ? key.aliases[0] : key.keyId;
  }

  function keyStateBadge(ks) {
    const st = (ks && ks.state) || "NONE";
    if (st === "LOADED" && ks.degraded) return badge("LOADED · DEGRADED", "warn", { "data-keystate": st, "data-degraded": "true" });
    if (st === "LOADED") return badge("LOADED · in memory", "ok", { "data-keystate": st });
    if (st === "WIPED") return badge("WIPED", "bad", { "data-keystate": st });
    if (st === "NONE") return badge("NO KEY", "muted", { "data-keystate": st });
    return badge(st, "warn", { "data-keystate": st });
  }

  // The story to draw, as the server worked it out (state.flow): the certificate in use, the key that seals
  // it, the grant made for it, the load balancer that decrypts through that grant.
  function story() {
    const f = state.flow;
    const key = state.keys.find((k) => k.arn === f.keyArn) || null;
    const cert = state.certificates.find((c) => c.arn === f.certificateArn) || null;
    const grant = key ? key.grants.find((g) => g.grantId === f.grantId) || null : null;
    const lb = f.loadBalancer ? lbNamed(f.loadBalancer) : null;
    return { cert, key, grant, lbName: f.loadBalancer, dataPlane: lb ? lb.keyState : null };
  }

  // -- rendering -------------------------------------------------------------------------------

  function render() {
    renderFlow();
    renderLoadBalancers();
    renderKeys();
    renderCerts();
    renderAudit();
  }

  function flowBox(kind, title, main, lines, badgeEl) {
    return h(
      "div",
      { class: "fbox " + kind },
      h("div", { class: "ftitle" }, title),
      h("div", { class: "fmain" }, main),
      badgeEl || null,
      h("ul", { class: "flines" }, (lines || []).filter(Boolean).map((l) => h("li", {}, l))),
    );
  }

  function arrow(label) {
    return h("div", { class: "farrow" }, h("span", {}, label || ""));
  }

  function renderFlow() {
    const el = document.getElementById("flow");
    const s = story();
    if (!s.key) {
      el.replaceChildren(empty("No keys yet."));
      return;
    }
    const master = flowBox(
      "master",
      "Master key (KMS)",
      keyLabel(s.key),
      [s.key.manager === "AWS" ? "AWS managed" : "customer managed", "never leaves the key service", s.key.rotation ? "rotates yearly" : null],
      badge(s.key.state, s.key.state === "Enabled" ? "ok" : "bad"),
    );
    const dataKey = flowBox(
      "datakey",
      "Data key",
      "AES-256",
      ["from GenerateDataKey", "stored only encrypted under the master key", s.cert ? "context aws:acm:arn = this certificate" : null],
      badge("encrypted", "info"),
    );
    const sealed = flowBox(
      "sealed",
      "Encrypted private key",
      s.cert ? s.cert.domain : "(no certificate yet)",
      [s.cert ? s.cert.keyAlgorithm : null, "AES-256-GCM under the data key", "cannot be downloaded"],
      s.cert ? badge(s.cert.status, s.cert.status === "ISSUED" ? "ok" : "warn") : null,
    );
    const grant = s.grant
      ? flowBox(
          "grant",
          "Grant",
          s.grant.name || shortArn(s.grant.grantId).slice(0, 12),
          [
            "to " + principalName(s.grant.grantee),
            "allows " + s.grant.operations.join(", "),
            s.grant.constraints ? "only under its encryption context" : null,
          ],
          badge("ACTIVE", "ok", { "data-grant-state": "ACTIVE" }),
        )
      : flowBox("grant none", "Grant", "none", ["nobody may decrypt"], badge("NO GRANT", "bad", { "data-grant-state": "NONE" }));
    const dp = s.dataPlane;
    const lb = flowBox(
      "dataplane",
      "Load balancer (data plane)",
      s.lbName || "(none)",
      [
        dp && dp.state === "LOADED" ? "private key decrypted into memory only" : null,
        dp && dp.state === "WIPED" ? "key wiped: the key-holding workers exited" : null,
        dp && dp.since ? "since " + clock(dp.since) : null,
        dp && dp.fingerprint ? "cert " + dp.fingerprint.slice(0, 23) : null,
      ],
      keyStateBadge(dp),
    );
    el.replaceChildren(
      h("div", { class: "frow" }, master, arrow("wraps"), dataKey, arrow("encrypts"), sealed),
      h("div", { class: "frow second" }, grant, arrow("lets decrypt"), lb),
    );
  }

  function renderKeys() {
    const el = document.getElementById("keys");
    const keys = state.keys;
    if (!keys.length) {
      el.replaceChildren(empty("No keys."));
      return;
    }
    el.replaceChildren(
      ...keys.map((k) =>
        h(
          "div",
          { class: "item", "data-key-id": k.keyId },
          h(
            "div",
            { class: "item-head" },
            h("strong", {}, keyLabel(k)),
            badge(k.state, k.state === "Enabled" ? "ok" : k.state === "PendingDeletion" ? "bad" : "warn"),
            badge(k.manager === "AWS" ? "AWS managed" : "customer", "muted"),
            k.rotation ? badge("rotation on", "info") : null,
          ),
          h("div", { class: "mono dim" }, k.keyId),
          k.description ? h("div", { class: "dim" }, k.description) : null,
          k.grants.length
            ? h(
                "table",
                { class: "grants" },
                h("thead", {}, h("tr", {}, h("th", {}, "Grant"), h("th", {}, "Grantee"), h("th", {}, "Operations"), h("th", {}, "Constraints"), h("th", {}, ""))),
                h("tbody", {}, k.grants.map((g) => grantRow(k, g))),
              )
            : h("p", { class: "empty" }, "No grants: only the key policy's principals may use this key."),
        ),
      ),
    );
  }

  function grantRow(key, g) {
    const ctx = g.constraints ? Object.entries(g.constraints) : [];
    return h(
      "tr",
      { "data-grant-id": g.grantId },
      h(
        "td",
        {},
        h("div", {}, g.name || "(unnamed)"),
        h("div", { class: "mono dim", title: g.grantId }, g.grantId.slice(0, 12) + "…"),
        g.retiringPrincipal ? h("div", { class: "dim" }, "retired by " + principalName(g.retiringPrincipal)) : null,
        g.loadBalancer ? h("div", { class: "dim", "data-grant-load-balancer": g.loadBalancer }, "for load balancer " + g.loadBalancer) : null,
      ),
      h("td", { class: "mono" }, principalName(g.grantee)),
      h("td", {}, g.operations.map((op) => badge(op, "muted"))),
      h(
        "td",
        { class: "mono small" },
        ctx.length
          ? ctx.map(([kind, pairs]) =>
              h("div", {}, h("div", { class: "dim" }, kind), Object.entries(pairs).map(([a, b]) => h("div", {}, a + " = " + shortArn(b)))),
            )
          : "none",
      ),
      h(
        "td",
        {},
        h(
          "button",
          {
            class: "danger",
            "data-action": "revoke",
            title: "TrentService.RevokeGrant",
            onclick: (ev) => call(KMS + ".RevokeGrant", { KeyId: key.keyId, GrantId: g.grantId }, "Revoke grant", ev.currentTarget),
          },
          "Revoke",
        ),
      ),
    );
  }

  function renderCerts() {
    const el = document.getElementById("certs");
    const certs = state.certificates;
    if (!certs.length) {
      el.replaceChildren(empty("No certificates."));
      return;
    }
    el.replaceChildren(
      ...certs.map((c) => {
        return h(
          "div",
          { class: "item", "data-certificate": c.arn },
          h("div", { class: "item-head" }, h("strong", {}, c.domain), badge(c.status, c.status === "ISSUED" ? "ok" : c.status === "PENDING_VALIDATION" ? "warn" : "bad")),
          kv([
            ["Names", (c.names || []).join(", ")],
            ["Expires", time(c.notAfter)],
            ["Key", c.keyAlgorithm],
            ["Sealed under", c.sealedUnderAliases[0] || shortArn(c.sealedUnder)],
            ["In use by", c.usedBy.map((u) => u.loadBalancer || shortArn(u.arn)).join(", ") || "nothing"],
          ]),
        );
      }),
    );
  }

  function renderLoadBalancers() {
    const el = document.getElementById("lbs");
    const lbs = state.loadBalancers;
    if (!lbs.length) {
      el.replaceChildren(empty("No load balancers yet."));
      return;
    }
    el.replaceChildren(...lbs.map(renderLoadBalancer));
  }

  function keyStateLines(d) {
    return kv([
      ["Key state since", d && d.since ? time(d.since) : ""],
      ["Certificate", d && (d.certificateName || shortArn(d.certificateArn))],
      ["Fingerprint", d && d.fingerprint ? h("span", { class: "mono small" }, d.fingerprint) : ""],
      ["Workers", d && d.workersExpected ? d.workers + " of " + d.workersExpected + " serving" : ""],
      ["Degraded", d && d.degraded ? h("span", { class: "warn-text", "data-degraded-reason": "" }, d.degraded) : ""],
      ["Worker restarts", d && d.restarts ? String(d.restarts) + (d.lastExit ? " (last: " + d.lastExit + ")" : "") : ""],
    ]);
  }

  function renderLoadBalancer(lb) {
    const attrs = lb.configurationOptions || {};
    const redirect = lb.httpsRedirectionEnabled === true || attrs.HttpsRedirectionEnabled === "true";
    // Where the data plane really listens (its report), not Lightsail's publicPorts 80/443.
    const dpListeners = (lb.keyState && lb.keyState.listeners) || [];
    const listeners = dpListeners.length
      ? dpListeners.map((url) =>
          h("span", { class: "listener", "data-listener": url }, url + (url.startsWith("https") ? " (TLS terminated here)" : "") + " → instances"),
        )
      : [h("span", { class: "listener dim" }, "the data plane has not reported its listeners yet")];
    const certs = lb.tlsCertificates;
    const dp = lb.keyState;
    return h(
      "div",
      { class: "lb", "data-load-balancer": lb.name },
      h(
        "div",
        { class: "item-head" },
        h("strong", { class: "big" }, lb.name),
        badge(lb.state || "unknown", lb.state === "active" ? "ok" : "warn"),
        h("span", { class: "dim" }, lb.dnsName || ""),
      ),
      h(
        "div",
        { class: "lb-grid" },
        h(
          "div",
          {},
          h("h3", {}, "Listeners"),
          h("div", { class: "listeners" }, listeners),
          h("h3", {}, "Attributes"),
          kv([
            ["TLS policy", lb.tlsPolicyName || attrs.TlsPolicyName || ""],
            ["Health check", lb.healthCheckPath || attrs.HealthCheckPath || ""],
            ["Stickiness", attrs.SessionStickinessEnabled === "true" ? "on, " + (attrs.SessionStickiness_LB_CookieDurationSeconds || "?") + " s" : "off"],
            [
              "HTTPS redirect",
              h(
                "span",
                {},
                badge(redirect ? "on" : "off", redirect ? "info" : "muted"),
                " ",
                h(
                  "button",
                  {
                    "data-action": "toggle-redirect",
                    onclick: (ev) =>
                      call(
                        LIGHTSAIL + ".UpdateLoadBalancerAttribute",
                        { loadBalancerName: lb.name, attributeName: "HttpsRedirectionEnabled", attributeValue: redirect ? "false" : "true" },
                        "HTTPS redirect " + (redirect ? "off" : "on"),
                        ev.currentTarget,
                      ),
                  },
                  redirect ? "Turn off" : "Turn on",
                ),
              ),
            ],
          ]),
          h("h3", {}, "Data plane key"),
          h("div", { class: "keystate-line" }, keyStateBadge(dp)),
          keyStateLines(dp),
        ),
        h(
          "div",
          {},
          h("h3", {}, "Instances"),
          renderInstances(lb),
          h("h3", {}, "TLS certificates"),
          certs.length ? h("ul", { class: "plain" }, certs.map((c) => certLine(lb, c))) : empty("None."),
        ),
        h("div", {}, h("h3", {}, "Requests per minute"), chart(lb.requests)),
      ),
    );
  }

  function renderInstances(lb) {
    const hs = lb.instanceHealthSummary || [];
    if (!hs.length) return empty("No instances attached.");
    const kind = { healthy: "ok", unhealthy: "bad", initial: "info", draining: "warn", unused: "muted", unavailable: "bad" };
    return h(
      "table",
      { class: "instances" },
      h(
        "tbody",
        {},
        hs.map((i) =>
          h(
            "tr",
            { "data-instance": i.instanceName },
            h("td", {}, i.instanceName),
            h("td", { class: "mono small", "data-instance-address": "" }, (lb.instanceAddresses || {})[i.instanceName] || ""),
            h("td", {}, badge(i.instanceHealth || "unknown", kind[i.instanceHealth] || "muted")),
            h("td", { class: "dim small" }, i.instanceHealthReason || ""),
          ),
        ),
      ),
    );
  }

  function certLine(lb, c) {
    const attached = !!c.isAttached;
    const params = { loadBalancerName: lb.name, certificateName: c.name };
    // lbproxy's detach keeps the certificate (Lightsail itself detaches only by deleting it or attaching another).
    const buttons = attached
      ? h(
          "button",
          {
            class: "danger",
            "data-action": "detach",
            title: "detach (lbproxy extension): the grant is retired",
            onclick: (ev) => call("lbproxy.DetachLoadBalancerTlsCertificate", params, "Detach certificate", ev.currentTarget),
          },
          "Detach",
        )
      : h(
          "button",
          {
            "data-action": "attach",
            onclick: (ev) => call(LIGHTSAIL + ".AttachLoadBalancerTlsCertificate", params, "Attach certificate", ev.currentTarget),
          },
          "Attach",
        );
    return h(
      "li",
      { "data-tls-certificate": c.name },
      h("strong", {}, c.name),
      " ",
      badge(attached ? "attached" : "not attached", attached ? "ok" : "muted"),
      " ",
      badge(c.status || "", c.status === "ISSUED" ? "ok" : "warn"),
      h("span", { class: "dim" }, " " + (c.domainName || "")),
      " ",
      buttons,
    );
  }

  // A stacked bar per minute (2xx/3xx/4xx/5xx), inline SVG.
  function chart(req) {
    const W = 300;
    const H = 110;
    const pad = { l: 28, r: 4, t: 8, b: 18 };
    const n = req.minutes.length;
    const classes = Object.keys(req.series);
    const totals = req.minutes.map((_, i) => classes.reduce((s, c) => s + req.series[c][i], 0));
    const max = Math.max(1, ...totals);
    const bw = (W - pad.l - pad.r) / n;
    const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
    const bars = [];
    req.minutes.forEach((m, i) => {
      let acc = 0;
      for (const c of classes) {
        const v = req.series[c][i];
        if (!v) continue;
        bars.push(
          svg("rect", { x: pad.l + i * bw + 1, y: y(acc + v), width: Math.max(1, bw - 2), height: y(acc) - y(acc + v), class: CLASS_COLORS[c] || "" }, svg("title", {}, clock(m) + " " + c + ": " + v)),
        );
        acc += v;
      }
    });
    const total = totals.reduce((a, b) => a + b, 0);
    return h(
      "div",
      { class: "chart" },
      svg(
        "svg",
        { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "requests per minute by status class" },
        svg("line", { x1: pad.l, y1: y(0), x2: W - pad.r, y2: y(0), class: "axis" }),
        svg("text", { x: pad.l - 4, y: y(max) + 4, class: "tick", "text-anchor": "end" }, String(max)),
        svg("text", { x: pad.l - 4, y: y(0), class: "tick", "text-anchor": "end" }, "0"),
        svg("text", { x: pad.l, y: H - 4, class: "tick" }, "-" + n + " min"),
        svg("text", { x: W - pad.r, y: H - 4, class: "tick", "text-anchor": "end" }, "now"),
        bars,
      ),
      h(
        "div",
        { class: "legend" },
        classes.map((c) => h("span", {}, h("i", { class: "sw " + (CLASS_COLORS[c] || "") }), c + " " + req.series[c].reduce((a, b) => a + b, 0))),
        h("span", { class: "dim" }, total + " requests"),
      ),
    );
  }

  // -- the audit trail -------------------------------------------------------------------------

  function auditKey(rec) {
    return (rec.requestID || "") + "|" + (rec.eventTime || "") + "|" + (rec.eventName || "");
  }

  function auditLine(rec) {
    const who = principalName((rec.userIdentity || {}).arn);
    const src = (rec.eventSource || "").replace(".amazonaws.com", "");
    const params = rec.requestParameters || {};
    const target = params.grantId ? "grant " + String(params.grantId).slice(0, 12) + "…" : params.keyId || params.certificateArn || params.loadBalancerName || "";
    const key = auditKey(rec);
    const li = h(
      "li",
      { class: freshAudit.has(key) ? "fresh" : "", "data-event": rec.eventName || "" },
      h("span", { class: "when mono" }, rec.eventTime ? rec.eventTime.replace("T", " ").replace("Z", "") : ""),
      h("span", { class: "src" }, src),
      h("strong", { title: rec.eventName || "" }, rec.eventName || ""),
      h("span", { class: "mono small", title: String(target) }, shortArn(String(target))),
      h("span", { class: "who" }, who),
      h("span", {}, rec.userAgent === "lbproxy-dashboard" ? badge("dashboard", "info") : null),
      h("span", { class: "outcome" }, rec.errorCode ? badge(rec.errorCode, "bad", { title: rec.errorMessage || "" }) : badge("ok", "ok")),
    );
    return li;
  }

  function renderAudit() {
    const el = document.getElementById("audit");
    const recs = state.audit.slice().reverse();
    el.replaceChildren(...(recs.length ? recs.map(auditLine) : [h("li", { class: "empty" }, "No API calls yet.")]));
  }

  function prependAudit(rec) {
    const el = document.getElementById("audit");
    const first = el.firstElementChild;
    if (first && first.classList.contains("empty")) first.remove();
    el.prepend(auditLine(rec));
    while (el.children.length > 80) el.lastElementChild.remove();
  }

  // -- start -----------------------------------------------------------------------------------

  function start() {
    const url = new URL(window.location.href);
    const fromUrl = url.searchParams.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash); // keep it out of history and screenshots
    }
    token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showNotice("Open the dashboard with the URL the control plane printed (it ends in /?token=...).");
      document.getElementById("conn").textContent = "no token";
      return;
    }
    // The state the page came with (opened with its token): painted before anything is fetched.
    const initial = document.getElementById("initial-state");
    if (initial) {
      try {
        state = JSON.parse(initial.textContent);
        render();
        document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      } catch (e) {
        /* fall back to the fetch below */
      }
      initial.remove();
    }
    refresh();
    connect();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
