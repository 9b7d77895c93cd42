//! `pipe report`: one self-contained HTML file, checked in a headless Chromium (the table's rows,
//! sorting, filtering, every image decoded, no script error), and the values it prints: the mean
//! and sample std over seeds of a results table whose numbers the test chose.

mod common;
use common::Workspace;
use polars::prelude::*;

/// AUC per (mu2, seed): mean 0.92 ± 0.02 for mu2 = 0 and 0.82 ± 0.026458 for mu2 = 0.5.
const AUC: [(&str, [f64; 3]); 2] = [("0.0", [0.90, 0.92, 0.94]), ("0.5", [0.80, 0.81, 0.85])];

fn write_parquet(path: &std::path::Path, mut df: DataFrame) {
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut df).unwrap();
}

/// Per (mu2, seed) a metrics table and a training history; the pipeline copies them in.
fn workspace(name: &str) -> Workspace {
    let ws = Workspace::new(name);
    std::fs::create_dir_all(ws.dir.join("data")).unwrap();
    for (mu2, aucs) in AUC {
        for (seed, auc) in aucs.iter().enumerate() {
            // `oracle`: one diverged seed (NaN) for mu2 = 0, which the report must name.
            let oracle = if mu2 == "0.0" { [f64::NAN, 0.6, 0.8][seed] } else { 0.5 };
            let m = df!("auc" => [*auc], "f1" => [0.7 + seed as f64 / 100.0], "oracle" => [oracle]).unwrap();
            write_parquet(&ws.dir.join(format!("data/metrics-{mu2}-{seed}.parquet")), m);
            let epochs: Vec<i64> = (1..=20).collect();
            let loss: Vec<f64> = epochs.iter().map(|e| 10.0 / *e as f64 + seed as f64 * 0.1).collect();
            write_parquet(&ws.dir.join(format!("data/history-{mu2}-{seed}.parquet")), df!("epoch" => epochs, "loss" => loss).unwrap());
        }
    }
    ws.write(
        "p.yaml",
        r#"name: tiny
compare: {metric: auc, baseline: {mu2: 0.0}}
stages:
  train:
    kind: command
    matrix: {mu2: [0.0, 0.5], seed: [0, 1, 2]}
    params:
      cmd: "cp data/history-${matrix.mu2}-${matrix.seed}.parquet ${outputs.history.parquet} && cp data/metrics-${matrix.mu2}-${matrix.seed}.parquet ${outputs.metrics.parquet}"
      outputs: [history.parquet, metrics.parquet]
  results:
    kind: concat
    inputs: {tables: {from: train.metrics.parquet, gather: true}}
    publish: {table: results/tiny.parquet}
  figure:
    kind: command
    params:
      cmd: "printf '<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"20\"><rect width=\"40\" height=\"20\" fill=\"teal\"/></svg>' > ${outputs.fig.svg}"
      outputs: [fig.svg]
    publish: {fig.svg: Deliverables/tiny/fig.svg}
  notes:
    kind: command
    params:
      cmd: "printf '# Notes\\n\\n**bold** <script>document.title=\"pwned\"</script>\\n' > ${outputs.notes.md}"
      outputs: [notes.md]
    publish: {notes.md: Deliverables/tiny/notes.md}
"#,
    );
    ws
}

/// A headless Chromium, or None (the test says it skipped) when none is installed and neither CI
/// nor PIPE_REQUIRE_BROWSER asks for every test.
fn chromium(test: &str) -> Option<String> {
    let found =
        std::env::var("PIPE_TEST_BROWSER").ok().into_iter().chain(["chromium", "chromium-browser", "google-chrome"].map(String::from)).find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if found.is_none() {
        let how =
            "this test renders the report in a headless Chromium: `apt-get install chromium` (scripts/test.sh installs it), or set PIPE_TEST_BROWSER";
        if std::env::var_os("CI").is_some() || std::env::var_os("PIPE_REQUIRE_BROWSER").is_some() {
            panic!("no Chromium found: {how}");
        }
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED browser test `{test}`: {how}");
    }
    found
}

/// What the page does when a person uses it, run by the browser: its rows, the mu2 column after
/// sorting by AUC up and down and after filtering, the images decoded; and what it did that it must
/// not: every load it started (resource timing), every load or script the policy refused while it
/// loaded, the scheme of every image and of every link in the published markdown as the browser
/// parsed them. Then the policy itself is tried: a remote image and an inline script added after
/// the load must both be refused. The probe is put before the report's policy, so it runs itself.
const PROBE: &str = r#"<script>
(function () {
  var refused = [];
  var scheme = function (u) { try { return new URL(u, document.baseURI).protocol; } catch (e) { return 'not a URL: ' + u; } };
  document.addEventListener('securitypolicyviolation', function (e) { refused.push(e.effectiveDirective + ' ' + e.blockedURI); });
  window.addEventListener('load', function () {
    var r = {ready: document.documentElement.dataset.ready || null};
    try {
      var t = document.querySelector('table.results');
      var visible = function () { return Array.prototype.filter.call(t.tBodies[0].rows, function (x) { return !x.hidden; }); };
      var heads = Array.prototype.map.call(t.tHead.rows[0].cells, function (c) { return c.textContent; });
      var col = function (name) { return visible().map(function (x) { return x.cells[heads.indexOf(name)].textContent; }); };
      r.heads = heads;
      r.mu2 = col('mu2');
      t.tHead.rows[0].cells[heads.indexOf('auc')].click();
      r.ascending = col('mu2');
      t.tHead.rows[0].cells[heads.indexOf('auc')].click();
      r.descending = col('mu2');
      var f = document.querySelector('input.filter');
      f.value = '0.5';
      f.dispatchEvent(new Event('input'));
      r.filtered = col('mu2');
      r.images = Array.prototype.map.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; });
      // Parallel coordinates: brush the metric's axis (the last) from its top to its middle.
      var pc = document.querySelector('svg.parcoords');
      if (pc) {
        r.pc_axes = Array.prototype.map.call(pc.querySelectorAll('g.axis text.name'), function (t) { return t.textContent; });
        r.pc_lines = pc.querySelectorAll('polyline').length;
        var axes = pc.querySelectorAll('g.axis'), b = axes[axes.length - 1].querySelector('rect.brush').getBoundingClientRect();
        var mouse = function (type, y) { return new MouseEvent(type, {clientX: b.left + b.width / 2, clientY: y, bubbles: true}); };
        axes[axes.length - 1].querySelector('rect.brush').dispatchEvent(mouse('mousedown', b.top));
        window.dispatchEvent(mouse('mousemove', b.top + b.height / 2));
        window.dispatchEvent(mouse('mouseup', b.top + b.height / 2));
        r.pc_kept = Array.prototype.map.call(pc.querySelectorAll('polyline:not(.off)'), function (l) { return l.querySelector('title').textContent; }).sort();
        r.pc_caption = document.querySelector('figure.parcoords .selected').textContent;
      }
    } catch (e) { r.probe_error = String(e); }
    r.image_schemes = Array.prototype.map.call(document.images, function (i) { return scheme(i.src); });
    r.link_schemes = Array.prototype.map.call(document.querySelectorAll('.prose a'), function (a) { return a.protocol; });
    r.embeds = document.querySelectorAll('iframe, frame, object, embed, form, base, link, [onerror], [onload], [onclick]').length;
    r.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    r.refused_while_loading = refused.slice();
    r.title = document.title;
    r.errors = window.__errors;
    var img = new Image();
    img.src = 'http://127.0.0.1:{PORT}/after-load.png';
    document.body.appendChild(img);
    var s = document.createElement('script');
    s.textContent = 'window.__injected = 1;';
    document.body.appendChild(s);
    setTimeout(function () {
      r.injected = window.__injected || null;
      r.refused_after_load = refused.slice(r.refused_while_loading.length).sort();
      r.resources_after_load = performance.getEntriesByType('resource').map(function (e) { return e.name; });
      var pre = document.createElement('pre');
      pre.id = 'probe';
      pre.textContent = JSON.stringify(r);
      document.body.appendChild(pre);
    }, 500);
  });
})();
</script>"#;

/// A local HTTP server that answers every request with 404 and keeps its first line: the one
/// address the hostile content and the probe point their remote loads at, so that any load the
/// page does reach the network is seen (and answered, so the page still finishes loading).
struct Server {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve() -> Server {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let first = match std::str::from_utf8(&buf[..n]) {
                Ok(text) => text.lines().next().unwrap_or_default().to_string(),
                Err(_) => format!("{n} bytes that are not HTTP (a TLS handshake?)"),
            };
            seen.lock().unwrap().push(first);
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Server { port, requests }
}

/// Opens the report in the headless `browser` with [`PROBE`] put right after `<meta charset>`,
/// before the report's policy, and returns what the probe saw; asserts that no request reached
/// `server`, the report's own scripts ran and the page loaded nothing.
fn probe(ws: &Workspace, browser: &str, html: &str, server: &Server) -> serde_json::Value {
    let at = "<meta charset=utf-8>";
    assert!(html.contains(&format!("{at}<meta http-equiv=Content-Security-Policy content=")), "the policy comes first, right after the charset");
    let port = server.port;
    ws.write("probed.html", &html.replacen(at, &format!("{at}{}", PROBE.replace("{PORT}", &port.to_string())), 1));
    let mut child = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", ws.dir.join("probed.html").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the browser did not finish the page in 120 s; requests that reached the network: {:?}", server.requests.lock().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dom = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).to_string();
    let json =
        dom.split("<pre id=\"probe\">").nth(1).and_then(|s| s.split("</pre>").next()).unwrap_or_else(|| panic!("the probe did not run:\n{dom}"));
    let r: serde_json::Value =
        serde_json::from_str(&json.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")).unwrap();
    // Nothing reached the network.
    assert_eq!(*server.requests.lock().unwrap(), Vec::<String>::new(), "requests from the page reached 127.0.0.1:{port}; {r}");
    // The report's own scripts ran, and nothing else was loaded or refused while it loaded.
    assert_eq!(r["errors"], serde_json::json!([]), "script errors: {r}");
    assert!(r.get("probe_error").is_none(), "{r}");
    assert_eq!(r["ready"], "1", "the report's script ran: {r}");
    assert_eq!(r["resources"], serde_json::json!([]), "the page loaded something: {r}");
    assert_eq!(r["refused_while_loading"], serde_json::json!([]), "the page tried to load or run something: {r}");
    assert_eq!(r["embeds"], 0, "no frame, object, form, base, link or event handler attribute: {r}");
    assert!(r["image_schemes"].as_array().unwrap().iter().all(|s| s == "data:"), "every image is embedded: {r}");
    // The policy refuses what the page did not bring, even when it is added later.
    assert_eq!(r["injected"], serde_json::Value::Null, "an inline script added to the page ran: {r}");
    assert_eq!(
        r["refused_after_load"],
        serde_json::json!([format!("img-src http://127.0.0.1:{port}/after-load.png"), "script-src-elem inline"]),
        "the policy refuses a remote image and a script it does not know: {r}"
    );
    // A refused load is still listed as a resource (that failed): so an empty list while the page
    // loaded means that nothing was even tried.
    assert_eq!(r["resources_after_load"], serde_json::json!([format!("http://127.0.0.1:{port}/after-load.png")]), "{r}");
    assert_eq!(r["mu2"], serde_json::json!(["0.0", "0.5"]));
    assert_eq!(r["ascending"], serde_json::json!(["0.5", "0.0"]), "sorted by mean AUC, ascending");
    assert_eq!(r["descending"], serde_json::json!(["0.0", "0.5"]), "then descending");
    assert_eq!(r["filtered"], serde_json::json!(["0.5"]), "the filter keeps the matching row");
    r
}

/// A start tag: its name and its attributes as (name, value).
type Tag = (String, Vec<(String, String)>);

/// Every start tag in `html` as (tag name, its attributes as (name, value)), lower-cased names
/// and values as the browser reads them (quotes off, character references decoded). The text of
/// `<script>` and `<style>` elements is skipped; anywhere else a `<` the report writes as text is
/// `&lt;`, so each `<` followed by a letter starts a tag.
fn tags(html: &str) -> Vec<Tag> {
    let decode = |v: &str| {
        v.replace("&#x27;", "'").replace("&#39;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    };
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name_end = rest.find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut a = &rest[name_end..];
        loop {
            a = a.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
            if a.is_empty() || a.starts_with('>') {
                break;
            }
            let n_end = a.find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>').unwrap_or(a.len());
            let attr = a[..n_end].to_ascii_lowercase();
            a = &a[n_end..];
            let mut value = String::new();
            if let Some(v) = a.strip_prefix('=') {
                let (raw, after) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let close = v[1..].find(q).map(|j| j + 1).unwrap_or(v.len());
                        (&v[1..close], &v[(close + 1).min(v.len())..])
                    }
                    _ => {
                        let close = v.find(|c: char| c.is_ascii_whitespace() || c == '>').unwrap_or(v.len());
                        (&v[..close], &v[close..])
                    }
                };
                value = decode(raw);
                a = after;
            }
            attrs.push((attr, value));
        }
        rest = a.strip_prefix('>').unwrap_or(a);
        if name == "script" || name == "style" {
            let close = format!("</{name}>");
            rest = rest.find(&close).map(|j| &rest[j + close.len()..]).unwrap_or("");
        }
        out.push((name, attrs));
    }
    out
}

/// `(attribute, value)` of every `href` and `src` in `html` (see [`tags`]).
fn url_attributes(html: &str) -> Vec<(String, String)> {
    tags(html).into_iter().flat_map(|(_, attrs)| attrs).filter(|(n, _)| n == "href" || n == "src").collect()
}

/// The report's policy, checked as text: present, first in <head>, nothing loaded from anywhere,
/// and scripts only by the SHA-256 of exactly the report's inline scripts. Returns the directives.
fn check_policy(html: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let meta = "<meta http-equiv=Content-Security-Policy content=\"";
    assert_eq!(html.matches(meta).count(), 1, "one policy");
    let content = html.split(meta).nth(1).unwrap().split('"').next().unwrap();
    let policy: std::collections::BTreeMap<String, Vec<String>> = content
        .split(';')
        .map(|d| d.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .map(|d| (d[0].clone(), d[1..].to_vec()))
        .collect();
    let none = vec!["'none'".to_string()];
    for d in ["default-src", "connect-src", "form-action", "base-uri", "object-src", "frame-src", "font-src"] {
        assert_eq!(policy.get(d), Some(&none), "{d} in {content}");
    }
    assert_eq!(policy.get("img-src"), Some(&vec!["data:".to_string()]), "{content}");
    // Every inline script, hashed here independently of the report's own code.
    let scripts: Vec<&str> = html.split("<script").skip(1).map(|s| s.split_once('>').unwrap().1.split("</script>").next().unwrap()).collect();
    assert!(!html.contains("<script src") && !html.contains("<script "), "only inline scripts without attributes");
    assert_eq!(scripts.len(), 2, "the error hook and the table script");
    let mut want: Vec<String> = scripts
        .iter()
        .map(|s| format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))))
        .collect();
    want.sort();
    let mut got = policy.get("script-src").cloned().unwrap_or_default();
    got.sort();
    assert_eq!(got, want, "script-src is the hashes of the report's own scripts, nothing else: {content}");
    policy
}

#[test]
fn the_report_shows_the_right_numbers_and_works_in_a_browser() {
    let ws = workspace("html-report");
    ws.ok(&["run", "p.yaml"]);
    let out = ws.pipe(&["report", "p.yaml", "-o", "report.html"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("wrote report.html (") && said.contains("9 of 9 nodes fresh"), "{said}");
    let html = ws.read("report.html");

    // Self-contained: nothing is fetched from anywhere.
    for external in ["src='http", "src=\"http", "href='http", "href=\"http", "@import", "url(http"] {
        assert!(!html.contains(external), "the report loads `{external}...`");
    }
    // Mean ± sample std over the three seeds, per mu2 (n = 3), sorted as the table reads.
    assert!(html.contains("2 groups: mean &plusmn; sample std over seeds"), "grouped over seeds");
    assert!(html.contains(">0.9200 <span class=pm>&plusmn; 0.0200</span>"), "mu2 = 0: 0.92 ± 0.02");
    assert!(html.contains(">0.8200 <span class=pm>&plusmn; 0.0265</span>"), "mu2 = 0.5: 0.82 ± 0.0265");
    // The pipeline's `compare:` under the table: mu2 = 0.5 minus mu2 = 0, paired by seed, the
    // differences -0.10, -0.11, -0.09. scipy 1.17.1: stats.ttest_rel([0.80, 0.81, 0.85], [0.90,
    // 0.92, 0.94]).pvalue = 0.003316758722356868; the 95% interval -0.1 -+ t.ppf(0.975, 2) x
    // 0.01 / sqrt(3) = [-0.12484, -0.07516]; one comparison, so Holm's p is the same; AUC lower: worse.
    assert!(html.contains("<h4>auc: each cell against its baseline (mu2=0.0)</h4>"), "the comparison follows the table");
    let row =
        html.split("<tr>").find(|r| r.contains("<td data-v='0.5'>0.5</td>") && r.contains("class='verdict")).expect("the mu2 = 0.5 comparison row");
    for want in [
        ">0.8200 <span class=pm>&plusmn; 0.0265</span>",
        ">-0.1000</td>",
        ">[-0.1248, -0.0752]</td>",
        "data-v='0.003316758722356",
        ">0.0033</td>",
        ">- (n &lt; 6)</td>",
        "<td class='verdict worse'>worse</td>",
    ] {
        assert!(row.contains(want), "`{want}` in {row}");
    }
    assert!(html.contains("<tr class=baseline><td data-v='0.0'>0.0</td><td class=num data-v='3'>3</td>"), "the baseline row");
    assert!(html.contains("1 of 1 comparisons differ after Holm's correction."), "the count");
    assert!(html.contains("<code>pipe compare results/tiny.parquet --metric auc --baseline mu2=0.0</code>"), "the command that prints the same");
    // A diverged seed is named in its cell, not dropped: mean and std of the two finite values.
    assert!(
        html.contains(">0.7000 <span class=pm>&plusmn; 0.1414</span> <span class=bad title='not finite: \u{2013}'>(2 of 3 finite)</span>"),
        "the NaN seed is counted"
    );
    // The published markdown is rendered, its raw HTML shown as text (never run).
    assert!(html.contains("<strong>bold</strong> &lt;script&gt;document.title=\"pwned\"&lt;/script&gt;"), "markdown raw HTML escaped");
    // Each section found its part: the published figure, a loss chart per stage, the stage graph,
    // this one run, and nothing stale.
    assert!(html.contains("Deliverables/tiny/fig.svg</figcaption>"));
    assert!(html.contains("<figcaption>train (6 runs)</figcaption>"), "one chart, six histories");
    assert!(html.contains("alt='stage graph'"));
    assert_eq!(html.matches("<span class='chip ok'>ok</span>").count(), 1, "one run listed");
    assert!(html.contains("Every node is fresh."));

    check_policy(&html);
    for (name, url) in url_attributes(&html) {
        assert!(name == "href" || url.starts_with("data:image/"), "{name}={url:?}: every image is embedded");
    }

    let Some(browser) = chromium("the_report_shows_the_right_numbers_and_works_in_a_browser") else { return };
    let r = probe(&ws, &browser, &html, &serve());
    assert_eq!(r["heads"], serde_json::json!(["mu2", "n", "auc", "f1", "oracle"]), "{r}");
    assert_eq!(r["title"], "tiny \u{b7} pipe report", "no script from the markdown ran");
    // The grid as parallel coordinates: mu2, seed, then AUC; brushing AUC's upper half (0.87 to
    // 0.94 of 0.80..0.94) keeps exactly the mu2 = 0 lines (0.90, 0.92, 0.94).
    assert_eq!(r["pc_axes"], serde_json::json!(["mu2", "seed", "auc"]), "{r}");
    assert_eq!(r["pc_lines"], 6, "{r}");
    assert_eq!(r["pc_kept"], serde_json::json!(["mu2=0.0, seed=0, auc=0.9000", "mu2=0.0, seed=1, auc=0.9200", "mu2=0.0, seed=2, auc=0.9400"]), "{r}");
    assert_eq!(r["pc_caption"], "3 of 6 lines", "{r}");
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 3, "the figure, the loss chart and the stage graph: {r}");
    assert!(images.iter().all(|i| i == true), "every embedded image decodes: {r}");
}

/// Published markdown with hostile links, images and raw HTML (tests/data/report-hostile.md; its
/// remote URLs point at `{PORT}`, the test's own [`Server`]).
const HOSTILE: &str = include_str!("data/report-hostile.md");

#[test]
fn published_markdown_runs_nothing_and_loads_nothing() {
    let server = serve();
    let port = server.port;
    let ws = workspace("html-report-hostile");
    ws.write("data/hostile.md", &HOSTILE.replace("{PORT}", &port.to_string()));
    let yaml = ws.read("p.yaml")
        + "  hostile:\n    kind: command\n    params:\n      cmd: \"cp data/hostile.md ${outputs.notes.md}\"\n      outputs: [notes.md]\n    \
           publish: {notes.md: Deliverables/tiny/hostile.md}\n";
    ws.write("p.yaml", &yaml);
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["report", "p.yaml", "-o", "report.html"]);
    let html = ws.read("report.html");
    check_policy(&html);

    // Every URL in the page, as the browser reads it: images only the report's own data: URIs,
    // links only to the web or a relative path, none of them to a script.
    let fig = {
        use base64::Engine as _;
        format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(ws.read("Deliverables/tiny/fig.svg")))
    };
    let urls = url_attributes(&html);
    for (name, url) in &urls {
        let lower: String = url.to_ascii_lowercase().chars().filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control()).collect();
        for bad in ["javascript:", "vbscript:", "data:text", "file:", "&#", "&colon"] {
            assert!(!lower.contains(bad), "{name}={url:?} survived");
        }
        if name == "src" {
            assert!(url.starts_with("data:image/svg+xml;base64,") || url.starts_with("data:image/png;base64,"), "src={url:?} is not embedded");
        }
    }
    let prose = html.split("Deliverables/tiny/hostile.md</summary><div class=prose>").nth(1).unwrap().split("</div></details>").next().unwrap();
    let links: Vec<String> = url_attributes(prose).into_iter().filter(|(n, _)| n == "href").map(|(_, u)| u).collect();
    assert_eq!(
        links,
        [
            "https://example.org/docs?a=1&b=2".to_string(),
            "other.md#part".to_string(),
            format!("http://127.0.0.1:{port}/http.png"),
            format!("https://127.0.0.1:{port}/https.png"),
            format!("//127.0.0.1:{port}/proto.png"),
            "https://example.org/page".to_string(),
        ],
        "the safe links, and each remote image as a link to it: {prose}"
    );
    let images: Vec<String> = url_attributes(prose).into_iter().filter(|(n, _)| n == "src").map(|(_, u)| u).collect();
    assert_eq!(images, [fig], "one image: the published figure the notes name, embedded: {prose}");
    // The links the report refused keep their text; raw HTML is text.
    for text in [
        "Links that must not survive: plain,\nmixed case, entity,\nhex entity, named colon,\nleading space, tab inside,\nhtml page,\nvb, VB upper, file,",
        "an autolink javascript:alert(1), and a reference.",
        ">remote http</a>",
        ">//127.0.0.1:",
        "inline data\n",
        "<a href=\"https://example.org/page\">linked remote</a>",
        "&lt;img src=x onerror=\"document.title='pwned-img'\"&gt;",
        "&lt;iframe src=",
        "&lt;script&gt;document.title='pwned-script'&lt;/script&gt;",
    ] {
        assert!(prose.contains(text), "{text:?} not in {prose}");
    }
    assert_eq!(html.matches("<img").count(), 4, "the figure twice, the loss chart, the stage graph");
    // Raw HTML is never markup: no element that embeds or sends, no event handler attribute.
    for (name, attrs) in tags(&html) {
        assert!(!["iframe", "frame", "object", "embed", "form", "base", "link"].contains(&name.as_str()), "<{name}> in the page");
        assert!(!attrs.iter().any(|(a, _)| a.starts_with("on") || a == "srcset" || a == "formaction"), "<{name} {attrs:?}> in the page");
    }

    let Some(browser) = chromium("published_markdown_runs_nothing_and_loads_nothing") else { return };
    let r = probe(&ws, &browser, &html, &server);
    assert_eq!(r["title"], "tiny \u{b7} pipe report", "no script from the markdown ran: {r}");
    assert_eq!(r["images"], serde_json::json!([true, true, true, true]), "the figure twice, the loss chart, the stage graph: {r}");
    assert_eq!(
        r["link_schemes"],
        // `//host:port/...` read against the report's file: URL is no valid URL at all (a file:
        // URL has no port): its scheme is empty.
        serde_json::json!(["https:", "file:", "http:", "https:", ":", "https:"]),
        "the links in the notes as the browser parsed them: {r}"
    );
}

#[test]
fn the_report_marks_stale_results_and_never_overwrites_a_file_it_did_not_write() {
    let ws = workspace("html-report-stale");
    ws.ok(&["run", "p.yaml"]);
    // A user's own file where the report would go is kept.
    ws.write("mine.html", "my notes");
    let out = ws.pipe(&["report", "p.yaml", "-o", "mine.html"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report mine.html: a file pipe did not write is there; not overwritten"));
    assert_eq!(ws.read("mine.html"), "my notes");
    // Its own report it replaces; once edited by hand, only with --overwrite.
    ws.ok(&["report", "p.yaml", "-o", "r.html"]);
    ws.ok(&["report", "p.yaml", "-o", "r.html"]);
    ws.write("r.html", "edited");
    assert!(!ws.pipe(&["report", "p.yaml", "-o", "r.html"]).status.success());
    assert_eq!(ws.read("r.html"), "edited");
    ws.ok(&["report", "p.yaml", "-o", "r.html", "--overwrite"]);
    // Never over a file a stage publishes; `-o DIR` writes NAME-report.html into the folder.
    let out = ws.pipe(&["report", "p.yaml", "-o", "./Deliverables/tiny/fig.svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is published by figure; the report does not replace it"));
    assert!(ws.read("Deliverables/tiny/fig.svg").starts_with("<svg"));
    std::fs::create_dir_all(ws.dir.join("reports")).unwrap();
    ws.ok(&["report", "p.yaml", "-o", "reports"]);
    assert!(ws.read("reports/tiny-report.html").contains("<title>tiny"));

    // One seed's command edited: its node and the results are stale, shown from their last run
    // with the reason; the report runs nothing.
    let yaml = ws.read("p.yaml").replace("&& cp data/metrics", "&& cp -f data/metrics");
    ws.write("p.yaml", &yaml);
    ws.ok(&["report", "p.yaml", "-o", "r.html"]);
    let html = ws.read("r.html");
    assert!(html.contains("results/tiny.parquet <span class='chip stale'"), "the table is marked stale");
    assert!(html.contains("0.9200 <span class=pm>&plusmn; 0.0200</span>"), "its last values are shown");
    assert!(html.contains("<td data-v='train[mu2=0.0,seed=0]'>train[mu2=0.0,seed=0]</td><td data-v='params.cmd changed"), "the reason is given");
    assert_eq!(ws.nodes_in("ran").len(), 9, "the report ran nothing (the last run is still the first)");
}

#[test]
fn a_pipeline_that_declares_its_report_gets_it_after_every_run() {
    let ws = workspace("html-report-declared");
    let yaml = ws.read("p.yaml").replacen("name: tiny\n", "name: tiny\nreport: out/\n", 1);
    ws.write("p.yaml", &yaml);
    // A file pipe never wrote at that path is kept in the store's backups/ first, as publish does.
    ws.write("out/report.html", "a user's page");
    let stderr = ws.ok(&["run", "p.yaml", "train[mu2=0.5]"]);
    assert!(
        stderr.contains("wrote out/report.html (") && stderr.contains("3 of 9 nodes fresh"),
        "after a run narrowed to targets, the whole pipeline: {stderr}"
    );
    assert!(stderr.contains("out/report.html was not written by pipe; the previous file is kept at"), "{stderr}");
    let backups: Vec<_> = std::fs::read_dir(ws.store().join("backups")).unwrap().collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(backups[0].as_ref().unwrap().path()).unwrap(), "a user's page");
    assert!(ws.read("out/report.html").contains("<title>tiny &middot; pipe report</title>"));
    // Every run rewrites it; edited by hand, it is kept unless --overwrite.
    ws.ok(&["run", "p.yaml"]);
    assert!(ws.read("out/report.html").contains("Every node is fresh."));
    ws.write("out/report.html", "edited");
    let out = ws.pipe(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(4), "the run's results are kept, the report is not written");
    assert!(String::from_utf8_lossy(&out.stderr).contains("report out/report.html: the file was edited since pipe published it"));
    assert_eq!(ws.read("out/report.html"), "edited");
    ws.ok(&["run", "p.yaml", "--overwrite"]);
    assert!(ws.read("out/report.html").contains("Every node is fresh."));

    // A path outside the workspace, or one a stage publishes, is refused at its line.
    for (report, says) in [("../x.html", "leaves the workspace"), ("Deliverables/tiny/fig.svg", "a stage publishes that path")] {
        ws.write("bad.yaml", &yaml.replacen("report: out/", &format!("report: {report}"), 1));
        let out = ws.pipe(&["status", "bad.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("bad.yaml:2:9") && err.contains(says), "{err}");
    }
}

#[test]
fn the_declared_report_is_rewritten_while_the_run_goes() {
    let ws = Workspace::new("html-report-live");
    ws.write(
        "p.yaml",
        "name: slow\nreport: out/\nstages:\n  fast:\n    kind: command\n    params: {cmd: \"echo a > ${outputs.a.txt}\", outputs: [a.txt]}\n  slow:\n    kind: command\n    inputs: {a: fast.a.txt}\n    params: {cmd: \"sleep 4; cat ${inputs.a} > ${outputs.b.txt}\", outputs: [b.txt]}\n",
    );
    let mut child = ws.cmd(&["run", "p.yaml"]).env("PIPE_REPORT_EVERY_S", "0.5").stderr(std::process::Stdio::null()).spawn().unwrap();
    let report = ws.dir.join("out/report.html");
    let t0 = std::time::Instant::now();
    // Written during the run: the fast node done, the slow one not yet.
    let done_fast = "<span class='chip fresh'>1 fresh</span>";
    while !std::fs::read_to_string(&report).is_ok_and(|t| t.contains(done_fast)) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before a report showing its progress was written");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "still running when read");
    assert!(child.wait().unwrap().success());
    assert!(std::fs::read_to_string(&report).unwrap().contains("Every node is fresh."));
}
