// The live dashboard page: one self-contained HTML document (no framework, no build step, nothing
// fetched from elsewhere). It reads the admin API's /dashboard/events stream with fetch() rather
// than EventSource so the bearer token travels in a header (kept in sessionStorage, never in a URL).
// Everything from the server is inserted as text (textContent), never as HTML.
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:">
<title>balancer dashboard</title>
<style>
  :root { --bg:#0f1720; --card:#17212b; --line:#263442; --text:#dbe4ec; --dim:#8aa0b3; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; flex-wrap:wrap; align-items:center; gap:10px; padding:12px 18px; border-bottom:1px solid var(--line); background:#0b1219; position:sticky; top:0; }
  header h1 { font-size:16px; margin:0 12px 0 0; }
  .badge { padding:2px 8px; border-radius:10px; background:var(--card); border:1px solid var(--line); color:var(--dim); font-size:12px; }
  .badge b { color:var(--text); font-weight:600; }
  .badge.ok { border-color:var(--ok); } .badge.bad { border-color:var(--bad); color:var(--bad); } .badge.warn { border-color:var(--warn); }
  #banner { display:none; margin:12px 18px 0; padding:8px 12px; border:1px solid var(--bad); border-radius:6px; color:var(--bad); background:#2a1215; }
  main { display:grid; grid-template-columns: minmax(0,1fr) 340px; gap:16px; padding:16px 18px; }
  @media (max-width: 1000px) { main { grid-template-columns: 1fr; } }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; margin-bottom:14px; }
  .svc-head { display:flex; align-items:baseline; gap:12px; flex-wrap:wrap; margin-bottom:8px; }
  .svc-head h2 { margin:0; font-size:15px; }
  .figs { color:var(--dim); font-size:12px; } .figs b { color:var(--text); }
  canvas { width:100%; height:56px; display:block; margin:4px 0 8px; }
  table { width:100%; border-collapse:collapse; font-size:13px; }
  th { text-align:left; color:var(--dim); font-weight:500; border-bottom:1px solid var(--line); padding:4px 6px; }
  td { border-bottom:1px solid var(--line); padding:4px 6px; white-space:nowrap; }
  td.num { text-align:right; font-variant-numeric: tabular-nums; }
  .health span.dot { display:inline-block; width:8px; height:8px; border-radius:50%; margin-right:6px; }
  .h-up .dot { background:var(--ok); } .h-degraded .dot { background:var(--warn); } .h-down .dot, .h-failing .dot { background:var(--bad); }
  .reason { color:var(--dim); font-size:12px; margin-left:4px; white-space:normal; }
  tr.out td { opacity:.65; }
  .diff { font:12px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; border-bottom:1px solid var(--line); padding:6px 0; }
  .diff .meta { color:var(--dim); }
  .add { color:var(--ok); } .del { color:var(--bad); } .chg { color:var(--warn); }
  #login { display:none; max-width:360px; margin:80px auto; }
  #login input { width:100%; padding:8px; margin:8px 0; background:#0b1219; color:var(--text); border:1px solid var(--line); border-radius:4px; }
  #login button { padding:8px 14px; background:var(--accent); border:0; border-radius:4px; color:#04111f; font-weight:600; cursor:pointer; }
  .empty { color:var(--dim); }
  .policy { display:flex; flex-wrap:wrap; gap:6px; margin:-2px 0 6px; }
  .grp-canary { color:var(--warn); font-weight:600; }
  #logout { margin-left:auto; background:none; border:1px solid var(--line); color:var(--dim); border-radius:4px; cursor:pointer; display:none; }
</style>
</head>
<body>
<header>
  <h1>balancer</h1>
  <span class="badge" id="live">connecting</span>
  <span class="badge">mode <b id="mode">?</b></span>
  <span class="badge">generation <b id="generation">?</b></span>
  <span class="badge">workers <b id="workers">?</b></span>
  <span class="badge">table <b id="version">?</b></span>
  <span class="badge" id="consul">consul ?</span>
  <span class="badge">updated <b id="updated">never</b></span>
  <button id="logout" type="button">forget token</button>
</header>
<div id="banner"></div>
<form id="login" class="card" autocomplete="off">
  <h2>Admin token</h2>
  <p class="figs">This balancer's admin API requires a bearer token. It is kept in this tab's session storage only.</p>
  <input id="token" name="token" type="password" placeholder="token" aria-label="admin token">
  <button type="submit">Open dashboard</button>
  <p id="login-error" class="reason"></p>
</form>
<main id="app">
  <section id="services"><p class="empty">waiting for the first update...</p></section>
  <aside><div class="card"><h2 style="margin:0 0 6px;font-size:15px">Table changes</h2><div id="diffs"><p class="empty">none yet</p></div></div></aside>
</main>
<script>
(function () {
  'use strict';
  var KEY = 'balancerAdminToken';
  var $ = function (id) { return document.getElementById(id); };
  var last = null;
  var diffs = [];

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function ms(v) { return v === undefined || v === null ? '-' : (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ms'; }
  function rate(v) { return (v || 0) < 10 ? (v || 0).toFixed(1) : String(Math.round(v)); }
  function headers() {
    var t = sessionStorage.getItem(KEY);
    return t ? { Authorization: 'Bearer ' + t } : {};
  }

  function showLogin(message) {
    $('app').style.display = 'none';
    $('login').style.display = 'block';
    $('login-error').textContent = message || '';
    $('live').textContent = 'login required';
    $('token').focus();
  }
  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('token').value);
    $('token').value = '';
    $('login').style.display = 'none';
    $('app').style.display = '';
    connect();
  });
  $('logout').addEventListener('click', function () { sessionStorage.removeItem(KEY); location.reload(); });

  function chart(canvas, points) {
    var w = canvas.clientWidth || 600, h = 56, dpr = window.devicePixelRatio || 1;
    canvas.width = w * dpr; canvas.height = h * dpr;
    var g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    if (!points.length) { g.fillStyle = '#8aa0b3'; g.font = '11px sans-serif'; g.fillText('no traffic yet', 4, 14); return; }
    var maxR = 1, maxL = 1;
    points.forEach(function (p) { maxR = Math.max(maxR, p.rps); if (p.p99Ms) maxL = Math.max(maxL, p.p99Ms); });
    var n = 60, bw = w / n;
    g.fillStyle = '#2f81f7';
    points.slice(-n).forEach(function (p, i, arr) {
      var x = (n - arr.length + i) * bw, bh = (p.rps / maxR) * (h - 14);
      g.fillRect(x + 1, h - bh, Math.max(1, bw - 2), bh);
    });
    g.strokeStyle = '#d29922'; g.lineWidth = 1.5; g.beginPath();
    var started = false;
    points.slice(-n).forEach(function (p, i, arr) {
      if (!p.p99Ms) return;
      var x = (n - arr.length + i) * bw + bw / 2, y = h - (p.p99Ms / maxL) * (h - 14);
      if (!started) { g.moveTo(x, y); started = true; } else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = '#8aa0b3'; g.font = '11px sans-serif';
    g.fillText('req/s max ' + rate(maxR) + '   p99 max ' + ms(maxL), 4, 11);
  }

  function healthCell(s) {
    var td = el('td', { cls: 'health h-' + s.health, 'data-health': s.health });
    td.appendChild(el('span', { cls: 'dot' }));
    td.appendChild(document.createTextNode(s.health));
    var parts = [];
    if (s.healthReason) parts.push(s.healthReason);
    if (s.consul && (!s.healthReason || s.healthReason.indexOf('consul') < 0)) parts.push('consul ' + s.consul);
    if (s.active) parts.push('active ' + (s.active.up ? 'up' : 'down'));
    if (s.lastError && (!s.healthReason || s.healthReason.indexOf(s.lastError) < 0)) parts.push('last error: ' + s.lastError);
    if (parts.length) td.appendChild(el('span', { cls: 'reason', text: '(' + parts.join('; ') + ')' }));
    return td;
  }

  // canary split, sticky sessions and panic state of a service with a traffic policy
  function policyBadges(svc) {
    var p = svc.policy, items = [];
    if (p && p.canary) {
      var c = p.canary, how = [c.weight + '%'];
      if (c.header) how.push('header ' + c.header + (c.headerValue ? '=' + c.headerValue : c.headerPattern ? '~' + c.headerPattern : ''));
      if (c.cookie) how.push('cookie ' + c.cookie);
      items.push(el('span', { cls: 'badge warn', 'data-policy': 'canary', text: 'canary ' + how.join(', ') + ' (tag ' + c.tag + ')' }));
    }
    if (p && p.sticky) items.push(el('span', { cls: 'badge', 'data-policy': 'sticky', text: 'sticky ' + p.sticky.mode + (p.sticky.mode === 'ip' ? '' : ' ' + p.sticky.name) + (p.sticky.ttlSeconds ? ' ' + p.sticky.ttlSeconds + ' s' : '') }));
    if (svc.panic || (p && p.panicThresholdPercent)) {
      var on = !!(svc.panic && svc.panic.panicking);
      items.push(el('span', { cls: 'badge ' + (on ? 'bad' : ''), 'data-policy': 'panic', 'data-panicking': on ? 'yes' : 'no',
        text: (on ? 'PANIC: routing across all servers' : 'panic off') + (p && p.panicThresholdPercent ? ' (below ' + p.panicThresholdPercent + '% healthy)' : '') }));
    }
    return items.length ? el('div', { cls: 'policy' }, items) : null;
  }

  function bytes(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B';
  }

  // a TCP service's listeners and connection figures, and what the access rules / rate limit refused
  function edgeRow(svc) {
    var items = [];
    var t = svc.tcp;
    if (t) {
      items.push(el('span', { cls: 'badge', 'data-tcp': 'listen', text: t.protocol + ' ' + t.listen.join(' ') }));
      items.push(el('span', { cls: 'figs', 'data-tcp': 'figures', text: 'open ' + t.open + ' \u00b7 relayed ' + t.relayed + ' \u00b7 refused ' + t.refused +
        ' \u00b7 in ' + bytes(t.bytesIn) + ' \u00b7 out ' + bytes(t.bytesOut) + ' \u00b7 connect errors ' + t.connectErrors }));
    }
    var r = svc.refused;
    if (r) {
      items.push(el('span', { cls: 'badge ' + (r.denied ? 'warn' : ''), 'data-refused': 'denied', text: 'denied ' + r.denied }));
      items.push(el('span', { cls: 'badge ' + (r.limited ? 'warn' : ''), 'data-refused': 'limited', text: 'rate-limited ' + r.limited }));
    }
    return items.length ? el('div', { cls: 'policy', 'data-edge': svc.name }, items) : null;
  }

  function renderServices(state) {
    var root = $('services');
    root.textContent = '';
    if (!state.services.length) { root.appendChild(el('p', { cls: 'empty', text: 'no services in the table' })); return; }
    state.services.forEach(function (svc) {
      var card = el('div', { cls: 'card', 'data-service': svc.name });
      card.appendChild(el('div', { cls: 'svc-head' }, [
        el('h2', { text: svc.name }),
        el('span', { cls: 'figs', text: svc.algorithm + ' \u00b7 ' + svc.origin }),
        el('span', { cls: 'figs' }, [el('b', { text: rate(svc.rps) }), document.createTextNode(' req/s  p50 '), el('b', { text: ms(svc.p50Ms) }),
          document.createTextNode('  p99 '), el('b', { text: ms(svc.p99Ms) }), document.createTextNode('  in-flight '), el('b', { text: String(svc.inflight) })]),
      ]));
      var pol = policyBadges(svc);
      if (pol) card.appendChild(pol);
      var edge = edgeRow(svc);
      if (edge) card.appendChild(edge);
      var canvas = el('canvas', { height: '56' });
      card.appendChild(canvas);
      var table = el('table');
      var canary = !!(svc.policy && svc.policy.canary);
      var cols = canary ? ['server', 'group', 'weight', 'health', 'in-flight', 'req/s', 'p50', 'p99'] : ['server', 'weight', 'health', 'in-flight', 'req/s', 'p50', 'p99'];
      table.appendChild(el('thead', null, [el('tr', null, cols.map(function (h) { return el('th', { text: h }); }))]));
      var body = el('tbody');
      svc.servers.forEach(function (s) {
        var tr = el('tr', { 'data-server': svc.name + '/' + s.id, cls: s.inTable ? '' : 'out' }, [
          el('td', { text: s.id + (s.backup ? ' (backup)' : '') }),
          canary ? el('td', { cls: s.canary ? 'grp-canary' : '', 'data-group': s.canary ? 'canary' : 'stable', text: s.canary ? 'canary' : 'stable' }) : null,
          el('td', { cls: 'num', text: s.inTable ? String(s.weight) : '-' }),
          healthCell(s),
          el('td', { cls: 'num', text: String(s.inflight) }),
          el('td', { cls: 'num', text: rate(s.rps) }),
          el('td', { cls: 'num', text: ms(s.p50Ms) }),
          el('td', { cls: 'num', text: ms(s.p99Ms) }),
        ]);
        body.appendChild(tr);
      });
      if (!svc.servers.length) body.appendChild(el('tr', null, [el('td', { colspan: String(cols.length), cls: 'empty', text: 'no servers' })]));
      table.appendChild(body);
      card.appendChild(table);
      root.appendChild(card);
      chart(canvas, svc.points || []);
    });
  }

  function renderDiffs() {
    var root = $('diffs');
    root.textContent = '';
    if (!diffs.length) { root.appendChild(el('p', { cls: 'empty', text: 'none yet' })); return; }
    diffs.forEach(function (d) {
      var box = el('div', { cls: 'diff' });
      box.appendChild(el('div', { cls: 'meta', text: new Date(d.at).toLocaleTimeString() + '  ' + d.cause + '  ' + d.version.slice(0, 12) }));
      (d.lines.length ? d.lines : ['(no visible change)']).slice(0, 30).forEach(function (line) {
        var c = line.charAt(0) === '+' ? 'add' : line.charAt(0) === '-' ? 'del' : line.charAt(0) === '~' ? 'chg' : '';
        box.appendChild(el('div', { cls: c, text: line }));
      });
      root.appendChild(box);
    });
  }

  function render(state) {
    last = state;
    $('mode').textContent = state.mode;
    $('generation').textContent = String(state.generation);
    $('workers').textContent = state.workers.ready + '/' + state.workers.alive;
    $('version').textContent = state.version.slice(0, 12);
    $('updated').textContent = new Date(state.at).toLocaleTimeString();
    var c = $('consul'), banner = $('banner');
    if (!state.consul.enabled) { c.textContent = 'consul off'; c.className = 'badge'; banner.style.display = 'none'; }
    else if (state.consul.reachable) { c.textContent = 'consul reachable'; c.className = 'badge ok'; banner.style.display = 'none'; }
    else {
      c.textContent = 'consul unreachable'; c.className = 'badge bad';
      banner.textContent = 'Consul is unreachable: the balancer keeps serving the last table it had. Changes in Consul show up here once it answers again.';
      banner.style.display = 'block';
    }
    if (state.statusError) { banner.textContent = state.statusError; banner.style.display = 'block'; }
    diffs = state.diffs || diffs;
    renderServices(state);
    renderDiffs();
  }

  function setLive(text, cls) { var l = $('live'); l.textContent = text; l.className = 'badge ' + (cls || ''); }

  var retryTimer = null;
  function reconnect() {
    if (retryTimer) return;
    setLive('reconnecting', 'warn');
    retryTimer = setTimeout(function () { retryTimer = null; connect(); }, 1000);
  }

  function handleBlock(block) {
    var event = 'message', data = '';
    block.split('\n').forEach(function (line) {
      if (line.indexOf('event:') === 0) event = line.slice(6).trim();
      else if (line.indexOf('data:') === 0) data += line.slice(5).trim();
    });
    if (!data) return;
    var msg = JSON.parse(data);
    if (event === 'state') render(msg);
    else if (event === 'diff') { diffs = [msg].concat(diffs).slice(0, 20); renderDiffs(); }
  }

  function connect() {
    if (sessionStorage.getItem(KEY)) $('logout').style.display = 'inline-block';
    fetch('/dashboard/events', { headers: headers(), cache: 'no-store' }).then(function (res) {
      if (res.status === 401) { showLogin(sessionStorage.getItem(KEY) ? 'That token was refused.' : ''); sessionStorage.removeItem(KEY); return; }
      if (!res.ok || !res.body) { reconnect(); return; }
      setLive('live', 'ok');
      var reader = res.body.getReader(), dec = new TextDecoder(), buf = '';
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { reconnect(); return; }
          buf += dec.decode(r.value, { stream: true });
          var i;
          while ((i = buf.indexOf('\n\n')) >= 0) { handleBlock(buf.slice(0, i)); buf = buf.slice(i + 2); }
          return pump();
        });
      }
      return pump();
    }).catch(function () { reconnect(); });
  }
  window.addEventListener('resize', function () { if (last) renderServices(last); });
  connect();
})();
</script>
</body>
</html>
`;
