//! `pipe report`: ONE self-contained HTML file (no network, no external file) with what a person
//! looks at after a run: the results tables (sortable, filterable; mean ± sample std over seeds
//! where a `seed` column varies), the published markdown and figures, per-epoch loss curves, the
//! stage graph coloured by state, why each node is not fresh, and the run history.
//!
//! What goes in is found by convention, never by stage kind: a published `.parquet` output is a
//! results table, a published `.md` is text, a published `.png` / `.svg` is a figure (the SVG when
//! both exist), and an output named `history` (or a `history.*` file) with `epoch` and `loss`
//! columns is a training history. Results of nodes that are not fresh come from their last run and are marked stale.
//!
//! Whatever a stage publishes, the page runs nothing and loads nothing but its own: raw HTML in
//! published markdown is shown as text, every link target from it passes one check
//! (`user_url`: web and relative URLs only), an image in it is shown only where it is a figure
//! the report embeds anyway (any other becomes a link), and a Content-Security-Policy refuses every
//! load from anywhere and every script but the report's own two (named by their SHA-256).

mod parcoords;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use polars::prelude::*;

use crate::graph::Graph;
use crate::plan::{Freshness, NodeStatus};
use crate::store::{Attempt, FailureKind, RunRecord, Store, Tally};
use crate::value::Value;

/// Everything the report shows, gathered by the command.
pub struct Inputs<'a> {
    /// The pipeline's `name:`.
    pub name: &'a str,
    /// The pipeline file, as typed.
    pub file: &'a Path,
    pub graph: &'a Graph,
    /// Every node's state, in the graph's order ([`crate::plan::status`]).
    pub status: &'a [NodeStatus],
    pub store: &'a Store,
    /// The pipeline's namespace in the store (its refs: each node's last run).
    pub namespace: &'a str,
    /// This pipeline's runs, oldest first.
    pub runs: &'a [RunRecord],
    /// When the report was written (RFC 3339, UTC).
    pub generated: &'a str,
    /// The pipeline's `compare:`: each results table's cells against its baseline, under the table.
    pub compare: Option<&'a crate::config::spec::CompareSpec>,
}

/// One node's stored output, as the report reads it.
struct Artifact {
    node: String,
    stage: String,
    coords: Vec<(String, Value)>,
    /// The output's file name (`table.parquet`, `Mnist_ROC_Curve.png`).
    file: String,
    /// Where the pipeline publishes it, if it does.
    published: Option<PathBuf>,
    /// The stored object (absent: not in this machine's store).
    path: Option<PathBuf>,
    /// From a node that is not fresh (its last run's result).
    stale: bool,
    /// A training history: the output is named `history` or its file is `history.*`.
    history: bool,
}

/// The report as one HTML document, its Content-Security-Policy first in `<head>`. Never fails:
/// an output that cannot be read is named in its place.
pub fn render(r: &Inputs<'_>) -> String {
    let arts = artifacts(r);
    let axes: BTreeSet<String> = r.graph.order().iter().flat_map(|&i| r.graph.node(i).coords.iter().map(|(k, _)| k.clone())).collect();
    let mut body = String::new();
    let tally = counts(r.status);
    let _ = write!(
        body,
        "<header><h1>{}</h1><p class=meta>{} &middot; written {} &middot; store {}</p><p class=chips>{}</p></header>",
        esc(r.name),
        esc(&r.file.display().to_string()),
        esc(r.generated),
        esc(&r.store.describe()),
        [("fresh", tally[0]), ("stale", tally[1]), ("missing", tally[2])]
            .iter()
            .map(|(s, n)| format!("<span class='chip {s}'>{n} {s}</span>"))
            .collect::<String>()
    );
    body.push_str("<nav><a href='#results'>Results</a><a href='#figures'>Figures</a><a href='#loss'>Loss curves</a><a href='#graph'>Stage graph</a><a href='#stale'>Not fresh</a><a href='#failures'>Failures</a><a href='#runs'>Runs</a></nav>");

    body.push_str("<section id=results><h2>Results</h2>");
    let tables: Vec<&Artifact> = arts.iter().filter(|a| a.published.is_some() && a.file.ends_with(".parquet")).collect();
    if tables.is_empty() {
        body.push_str("<p class=empty>This pipeline publishes no Parquet table.</p>");
    }
    for a in tables {
        body.push_str(&results_table(a, &axes, r.compare));
    }
    for a in arts.iter().filter(|a| a.published.is_some() && a.file.ends_with(".md")) {
        let Some(text) = a.path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) else { continue };
        let _ = write!(body, "<details class=md><summary>{}{}</summary>", esc(&shown(a)), stale_badge(a));
        let here = a.published.as_deref().and_then(Path::parent).unwrap_or(Path::new(""));
        let html = markdown(&text, &|url| embedded_figure(&arts, here, url));
        let _ = write!(body, "<div class=prose>{html}</div></details>");
    }
    body.push_str("</section>");

    body.push_str("<section id=figures><h2>Figures</h2>");
    body.push_str(&figures(&arts));
    body.push_str("</section>");

    body.push_str("<section id=loss><h2>Loss curves</h2>");
    body.push_str(&running_curves(r));
    body.push_str(&loss_curves(&arts));
    body.push_str("</section>");

    body.push_str("<section id=graph><h2>Stage graph</h2>");
    body.push_str(&stage_graph(r));
    body.push_str("</section>");

    // Nodes whose last attempt at their current key failed: the error and the whole log kept.
    let failed: Vec<(String, Attempt)> =
        r.status.iter().filter_map(|s| Some((s.node.clone(), r.store.attempt(s.key.as_deref()?).filter(|a| !a.cancelled)?))).collect();
    body.push_str("<section id=stale><h2>Not fresh</h2>");
    body.push_str(&not_fresh(r.status, &failed));
    body.push_str("</section>");

    body.push_str("<section id=failures><h2>Failures</h2>");
    body.push_str(&failures(&failed));
    body.push_str("</section>");

    body.push_str("<section id=runs><h2>Runs</h2>");
    body.push_str(&run_history(r.runs));
    body.push_str("</section>");

    // The policy comes first in <head>, so that it governs everything after it.
    format!(
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><meta http-equiv=Content-Security-Policy content=\"{}\">\
         <meta name=viewport content='width=device-width, initial-scale=1'>\
         <meta name=generator content='pipe {}'><title>{} &middot; pipe report</title><style>{CSS}</style>\
         <script>{ERRORS_JS}</script></head><body>{body}<script>{JS}</script></body></html>\n",
        content_security_policy(),
        env!("CARGO_PKG_VERSION"),
        esc(r.name),
    )
}

/// The report's Content-Security-Policy: nothing is loaded from anywhere (images only from the
/// `data:` URIs the report embeds, styles only inline), and the only scripts that run are the
/// report's own two inline ones, named by their SHA-256 (so a script that reached the page some
/// other way is refused); no form, no `<base>`, no connection, no frame, no plugin.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src {} {}; style-src 'unsafe-inline'; img-src data:; font-src 'none'; connect-src 'none'; \
         media-src 'none'; object-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; form-action 'none'; base-uri 'none'",
        script_hash(ERRORS_JS),
        script_hash(JS)
    )
}

/// A CSP hash source for an inline script: `'sha256-` + base64 of the SHA-256 of its text + `'`.
fn script_hash(script: &str) -> String {
    use sha2::Digest as _;
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes())))
}

/// Whether a URL taken from published content may appear in the report as a link target, and
/// then as what: the URL as written into the page, or `None` where it may not appear.
///
/// It decides on the URL the browser would follow. The writer escapes the attribute, so the
/// browser reads back this very string; the URL standard then drops leading and trailing C0
/// controls and spaces and every ASCII tab and newline, and reads the scheme case-insensitively.
/// That cleaned form is what is checked and what is returned. Allowed: `http:`, `https:` and
/// `mailto:`, and URLs without a scheme (a relative path, `#fragment`, `?query`, `//host/...`).
/// Refused: every other scheme (`javascript:`, `vbscript:`, `data:`, `file:`, `blob:`, ...), and
/// anything before the first `/`, `?` or `#` that holds a `:` after a non-scheme or a `&`, so no
/// character reference or escape can spell a scheme that the check did not see.
fn user_url(raw: &str) -> Option<String> {
    let url: String = raw.trim_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let head = url.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if head.contains('&') {
        return None;
    }
    match head.split_once(':') {
        None => Some(url),
        Some((scheme, _)) if ["http", "https", "mailto"].iter().any(|s| scheme.eq_ignore_ascii_case(s)) => Some(url),
        Some(_) => None,
    }
}

/// The `data:` URI of a figure the report embeds (a published PNG or SVG) that a relative `url`
/// in the markdown published in the folder `here` names, if any.
fn embedded_figure(arts: &[Artifact], here: &Path, url: &str) -> Option<String> {
    if url.starts_with(['/', '\\']) || url.contains(':') {
        return None;
    }
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let wanted = lexical(&here.join(path));
    let a = arts
        .iter()
        .find(|a| (a.file.ends_with(".png") || a.file.ends_with(".svg")) && a.published.as_deref().is_some_and(|p| lexical(p) == wanted))?;
    data_uri(a)
}

/// `path` with its `.` components dropped and each `..` taking the one before it off.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A published figure's bytes as a `data:` URI (None where the object is not in this store).
fn data_uri(a: &Artifact) -> Option<String> {
    let bytes = std::fs::read(a.path.as_ref()?).ok()?;
    let mime = if a.file.ends_with(".svg") { "image/svg+xml" } else { "image/png" };
    Some(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes)))
}

/// Published markdown as HTML that runs nothing and loads nothing.
///
/// Raw HTML in it is shown as text. Every link target passes [`user_url`]: one it refuses leaves
/// the link's text without a link. An image is shown only where `figure` gives the `data:` URI of
/// a figure the report embeds anyway; any other image (remote, `data:`, a file the report does not
/// hold) becomes a link to its URL with the alt text (or the URL) as its text, or plain text where
/// [`user_url`] refuses the URL or it sits inside another link.
fn markdown(text: &str, figure: &dyn Fn(&str) -> Option<String>) -> String {
    use pulldown_cmark::{CowStr, Event, LinkType, Tag, TagEnd};
    /// What an open link or image closes with.
    enum Open {
        /// Its own end tag.
        Kept,
        /// Nothing: it was dropped, its text stays.
        Dropped,
        /// An image shown as a link (or as text): the end of the link, and the URL as text where
        /// the image had no alt text.
        Image { linked: bool, url: String, empty: bool },
    }
    let mut open: Vec<Open> = Vec::new();
    let mut links = 0usize;
    let mut events: Vec<Event<'_>> = Vec::new();
    for e in pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES) {
        if matches!(e, Event::Text(_) | Event::Code(_) | Event::Html(_) | Event::InlineHtml(_)) {
            for o in &mut open {
                if let Open::Image { empty, .. } = o {
                    *empty = false;
                }
            }
        }
        match e {
            Event::Html(t) | Event::InlineHtml(t) => events.push(Event::Text(t)),
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                // An e-mail autolink is written as `mailto:` + its address.
                let seen = if link_type == LinkType::Email { format!("mailto:{dest_url}") } else { dest_url.to_string() };
                match user_url(&seen) {
                    Some(url) if links == 0 => {
                        let dest_url = if link_type == LinkType::Email { dest_url } else { CowStr::from(url) };
                        events.push(Event::Start(Tag::Link { link_type, dest_url, title, id }));
                        links += 1;
                        open.push(Open::Kept);
                    }
                    _ => open.push(Open::Dropped),
                }
            }
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                let url = user_url(&dest_url);
                if let Some(src) = url.as_deref().and_then(figure) {
                    events.push(Event::Start(Tag::Image { link_type, dest_url: src.into(), title, id }));
                    open.push(Open::Kept);
                } else {
                    let linked = url.is_some() && links == 0;
                    if let (true, Some(url)) = (linked, &url) {
                        let title = format!("image not embedded (the report loads nothing from outside itself): {url}");
                        events.push(Event::Start(Tag::Link {
                            link_type: LinkType::Inline,
                            dest_url: url.clone().into(),
                            title: title.into(),
                            id: id.clone(),
                        }));
                        links += 1;
                    }
                    open.push(Open::Image { linked, url: url.unwrap_or_else(|| dest_url.to_string()), empty: true });
                }
            }
            Event::End(end @ (TagEnd::Link | TagEnd::Image)) => match open.pop() {
                Some(Open::Kept) => {
                    if end == TagEnd::Link {
                        links -= 1;
                    }
                    events.push(Event::End(end));
                }
                Some(Open::Image { linked, url, empty }) => {
                    if empty {
                        events.push(Event::Text(url.into()));
                    }
                    if linked {
                        links -= 1;
                        events.push(Event::End(TagEnd::Link));
                    }
                }
                Some(Open::Dropped) | None => {}
            },
            e => events.push(e),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Where a state is counted in a `[fresh, stale, missing]` tally.
fn slot(state: Freshness) -> usize {
    match state {
        Freshness::Fresh => 0,
        Freshness::Stale => 1,
        Freshness::Missing => 2,
    }
}

/// Fresh, stale, missing.
fn counts(status: &[NodeStatus]) -> [usize; 3] {
    let mut c = [0; 3];
    for s in status {
        c[slot(s.state)] += 1;
    }
    c
}

/// Every output of every node with a result: the fresh one, else the last run's.
fn artifacts(r: &Inputs<'_>) -> Vec<Artifact> {
    let mut out = Vec::new();
    for (&i, s) in r.graph.order().iter().zip(r.status) {
        let node = r.graph.node(i);
        debug_assert_eq!(node.id, s.node);
        let (key, stale) = match (s.state, &s.key) {
            (Freshness::Fresh, Some(k)) => (Some(k.clone()), false),
            _ => (r.store.get_ref(r.namespace, &node.id), true),
        };
        let Some(rec) = key.and_then(|k| r.store.record(&k).ok().flatten()) else { continue };
        for o in &node.outputs {
            let Some(obj) = rec.outputs.get(&o.name) else { continue };
            let path = Some(r.store.object_path(obj)).filter(|p| p.is_file());
            let published = node.publish.iter().find(|(name, _)| *name == o.name).map(|(_, dest)| {
                if dest.to_string_lossy().ends_with('/') {
                    dest.join(&o.file)
                } else {
                    dest.clone()
                }
            });
            let history = o.name == "history" || Path::new(&o.file).file_stem().is_some_and(|s| s == "history");
            let file = o.file.clone();
            out.push(Artifact {
                node: node.id.clone(),
                stage: node.stage.clone(),
                coords: node.coords.clone(),
                file,
                published,
                path,
                stale,
                history,
            });
        }
    }
    out
}

fn shown(a: &Artifact) -> String {
    a.published.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("{} {}", a.node, a.file))
}

fn stale_badge(a: &Artifact) -> &'static str {
    if a.stale {
        " <span class='chip stale' title='the node is not fresh: this is its last run'>stale</span>"
    } else {
        ""
    }
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the tables print it: integers whole, others to 4 decimals (1 above 1,000), and
/// below 0.001 in scientific notation (never a 0.0000 that is not zero).
fn num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{x:.0}")
    } else if x.abs() >= 1000.0 {
        format!("{x:.1}")
    } else if x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// Mean and sample standard deviation (n - 1; 0 for one value) of the finite values.
fn mean_std(v: &[f64]) -> (f64, f64, usize) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    (mean, var.sqrt(), n)
}

/// Row `i` of column `c` as a table cell shows it ("" for null).
fn text(c: &Column, i: usize) -> String {
    match c.get(i) {
        Ok(AnyValue::Null) | Err(_) => String::new(),
        Ok(AnyValue::String(s)) => s.to_string(),
        Ok(v) => v.to_string(),
    }
}

/// One results table: grouped over seeds (mean ± std, n) when a `seed` column (the replicate axis
/// `compare:` names) varies, else row by row. Key columns: text columns and the grid's axes; every
/// other numeric column is a metric. With `compare:`, the comparisons follow the table.
fn results_table(a: &Artifact, axes: &BTreeSet<String>, compare: Option<&crate::config::spec::CompareSpec>) -> String {
    let replicate = compare.map_or("seed", |c| c.replicate());
    let over = if replicate == "seed" { "seeds".to_string() } else { format!("{replicate} values") };
    let title = format!("<h3>{}{}</h3>", esc(&shown(a)), stale_badge(a));
    let Some(path) = &a.path else {
        return format!("{title}<p class=empty>Not in this machine's store (`pipe pull` fetches it from a remote store).</p>");
    };
    let df = match crate::query::load(path) {
        Ok(df) => df,
        Err(e) => return format!("{title}<p class=empty>Cannot read it: {}</p>", esc(&e.to_string())),
    };
    let numeric = |c: &Column| c.dtype().is_primitive_numeric() || matches!(c.dtype(), DataType::Boolean);
    let mut keys: Vec<&Column> = Vec::new();
    let mut metrics: Vec<&Column> = Vec::new();
    let mut seed = None;
    for c in df.get_columns() {
        let name = c.name().as_str();
        if name == "node" {
            continue;
        } else if name == replicate {
            seed = Some(c);
        } else if axes.contains(name) || !numeric(c) {
            keys.push(c);
        } else {
            metrics.push(c);
        }
    }
    let floats: Vec<Vec<f64>> = metrics
        .iter()
        .map(|c| match c.cast(&DataType::Float64) {
            Ok(f) => f.f64().map(|ca| ca.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()).unwrap_or_default(),
            Err(_) => vec![f64::NAN; df.height()],
        })
        .collect();
    // Groups of rows with the same key columns, in order of first appearance.
    let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for i in 0..df.height() {
        let k: Vec<String> = keys.iter().map(|c| text(c, i)).collect();
        match index.get(&k) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(k.clone(), groups.len());
                groups.push((k, vec![i]));
            }
        }
    }
    // Rows are averaged over seeds only where each group holds each seed once (its rows differ in
    // nothing but the seed); otherwise every row is shown as it is.
    let seeds_distinct = seed.is_some_and(|s| {
        groups.iter().all(|(_, rows)| {
            let seen: BTreeSet<String> = rows.iter().map(|&i| text(s, i)).collect();
            seen.len() == rows.len()
        })
    });
    let over_seeds = seeds_distinct && groups.iter().any(|(_, rows)| rows.len() > 1);
    let shown_rows = if over_seeds { groups.len() } else { df.height() };
    let mut out = title;
    let _ = write!(
        out,
        "<p class=note>{} rows{}{}. Click a column to sort; type to filter (each word must start a cell).</p>\
         <input class=filter type=search placeholder='filter rows, e.g. mnist mahalanobis' aria-label='filter rows'>",
        df.height(),
        if over_seeds { format!(", {} groups: mean &plusmn; sample std over {over} (n = {over})", groups.len()) } else { String::new() },
        if shown_rows > MAX_ROWS { format!("; the first {MAX_ROWS} shown (all of them: `pipe query`)") } else { String::new() }
    );
    out.push_str("<div class=scroll><table class='sortable results'><thead><tr>");
    for c in &keys {
        let _ = write!(out, "<th>{}</th>", esc(c.name()));
    }
    if over_seeds {
        out.push_str("<th class=num>n</th>");
    } else if let Some(s) = seed {
        let _ = write!(out, "<th class=num>{}</th>", esc(s.name()));
    }
    for c in &metrics {
        let _ = write!(out, "<th class=num>{}</th>", esc(c.name()));
    }
    out.push_str("</tr></thead><tbody>");
    let node_col = df.column("node").ok();
    let rows: Vec<(Vec<String>, Vec<usize>)> =
        if over_seeds { groups } else { (0..df.height()).map(|i| (keys.iter().map(|c| text(c, i)).collect(), vec![i])).collect() };
    for (k, members) in rows.into_iter().take(MAX_ROWS) {
        let title = match (node_col, members.as_slice()) {
            (Some(n), [one]) => format!(" title='{}'", esc(&text(n, *one))),
            _ => String::new(),
        };
        let _ = write!(out, "<tr{title}>");
        for v in &k {
            let _ = write!(out, "<td data-v='{}'>{}</td>", esc(v), esc(v));
        }
        if over_seeds {
            let _ = write!(out, "<td class=num data-v='{0}'>{0}</td>", members.len());
        } else if let Some(s) = seed {
            let v = text(s, members[0]);
            let _ = write!(out, "<td class=num data-v='{v}'>{v}</td>", v = esc(&v));
        }
        for f in &floats {
            let vals: Vec<f64> = members.iter().map(|&i| f[i]).collect();
            let (mean, std, n) = mean_std(&vals);
            let sort = if mean.is_finite() { mean.to_string() } else { String::new() };
            // A seed whose value is NaN or infinite (a diverged run) is named, never dropped silently.
            let missing = if over_seeds && n < vals.len() {
                let bad: Vec<String> = vals.iter().filter(|v| !v.is_finite()).map(|v| num(*v)).collect();
                format!(" <span class=bad title='not finite: {}'>({n} of {} finite)</span>", bad.join(", "), vals.len())
            } else {
                String::new()
            };
            if !over_seeds {
                let _ = write!(out, "<td class=num data-v='{sort}'>{}</td>", num(vals[0]));
            } else if n > 1 {
                let _ = write!(out, "<td class=num data-v='{sort}'>{} <span class=pm>&plusmn; {}</span>{missing}</td>", num(mean), num(std));
            } else {
                let _ = write!(out, "<td class=num data-v='{sort}'>{}{missing}</td>", num(mean));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    // The grid at a glance: an axis per grid parameter (and the seed), the metric last.
    let params: Vec<&str> = keys.iter().map(|c| c.name().as_str()).filter(|n| axes.contains(*n)).chain(seed.map(|s| s.name().as_str())).collect();
    let wanted = compare.map_or("auc", |c| c.metric.as_str());
    let metric = metrics.iter().map(|c| c.name().as_str()).find(|n| *n == wanted).or_else(|| metrics.first().map(|c| c.name().as_str()));
    if let Some(view) = metric.filter(|_| df.height() <= MAX_ROWS).and_then(|m| parcoords::view(&df, &params, m)) {
        out.push_str(&view);
    }
    if let Some(c) = compare {
        out.push_str(&comparisons(&df, c, &shown(a)));
    }
    out
}

/// The `compare:` of one results table: what `pipe compare TABLE --metric M --baseline ...` prints,
/// as a sortable table (each baseline cell, then every cell compared with it), or why the table
/// is not compared.
fn comparisons(df: &DataFrame, c: &crate::config::spec::CompareSpec, table: &str) -> String {
    use crate::compare::{num, pval, signed, Options, WILCOXON_MIN_PAIRS};
    if df.column(&c.metric).is_err() {
        return format!(
            "<p class=note>Not compared: the table has no column <code>{}</code> (the pipeline's <code>compare.metric</code>).</p>",
            esc(&c.metric)
        );
    }
    let baseline: Vec<(String, String)> = c.baseline.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
    let opts = Options {
        metric: c.metric.clone(),
        baseline: baseline.clone(),
        replicate: c.replicate().to_string(),
        within: c.within.as_ref().map(|w| w.0.clone()),
        lower_is_better: c.lower_is_better,
    };
    let given = baseline.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    // The command that prints the same numbers, where `--baseline` can say the values (it splits
    // on `,` and `=`).
    let command = if baseline.iter().any(|(_, v)| v.contains([',', '='])) {
        "(none: a baseline value holding `,` or `=` cannot be given to `pipe compare --baseline`)".to_string()
    } else {
        format!(
            "pipe compare {} --metric {} --baseline {}{}{}{}",
            shell_word(table),
            shell_word(&c.metric),
            shell_word(&given),
            if c.replicate() == "seed" { String::new() } else { format!(" --replicate {}", shell_word(c.replicate())) },
            c.within.as_ref().map(|w| format!(" --within {}", shell_word(&w.0))).unwrap_or_default(),
            if c.lower_is_better { " --lower-is-better" } else { "" }
        )
    };
    let o = match crate::compare::compare(df, &opts) {
        Ok(o) => o,
        Err(e) => {
            let hint = crate::error::Hint::hint(&e).map(|h| format!(" ({h})")).unwrap_or_default();
            return format!(
                "<p class=empty>Not compared, by the pipeline's <code>compare:</code>: {}{}</p>",
                esc(&pipeline_terms(&e.to_string())),
                esc(&pipeline_terms(&hint))
            );
        }
    };
    let family = match &o.within {
        Some(w) => format!("within each value of {w}"),
        None => format!("over the {} comparison{} below", o.rows.len(), if o.rows.len() == 1 { "" } else { "s" }),
    };
    let mut out = format!(
        "<h4>{metric}: each cell against its baseline ({given})</h4><p class=note>Paired on {rep}: each cell minus the cell with \
         {given} and the cell's own other coordinates; mean &plusmn; sample std and n per cell; the mean difference's 95% Student t \
         interval; the paired t-test's p, the Wilcoxon signed-rank p from {WILCOXON_MIN_PAIRS} pairs on, and the t-test p adjusted by \
         Holm's method {family}; a verdict only where the adjusted p is below 0.05 ({dir} is better). The same numbers: \
         <code>{cmd}</code>.{cap}</p><div class=scroll><table class='sortable results compare'><thead><tr>",
        metric = esc(&o.metric),
        given = esc(&given),
        rep = esc(&o.replicate),
        family = esc(&family),
        dir = if o.lower_is_better { "lower" } else { "higher" },
        cmd = esc(&command),
        cap = if o.rows.len() > MAX_ROWS {
            format!(" The first {MAX_ROWS} of {} comparisons are shown (all of them: the command).", o.rows.len())
        } else {
            String::new()
        },
    );
    for col in &o.columns {
        let _ = write!(out, "<th>{}</th>", esc(col));
    }
    for h in ["n", "mean &plusmn; std", "pairs", "difference", "95% interval", "p (t)", "p (Wilcoxon)", "p (Holm)"] {
        let _ = write!(out, "<th class=num>{h}</th>");
    }
    out.push_str("<th>verdict</th></tr></thead><tbody>");
    let cell = |out: &mut String, cell: &crate::compare::Cell| {
        for x in &cell.coords {
            let _ = write!(out, "<td data-v='{0}'>{0}</td>", esc(&x.text));
        }
        let _ = write!(
            out,
            "<td class=num data-v='{n}'>{n}</td><td class=num data-v='{m}'>{} <span class=pm>&plusmn; {}</span></td>",
            num(cell.mean),
            num(cell.std),
            n = cell.n,
            m = if cell.mean.is_finite() { cell.mean.to_string() } else { String::new() },
        );
    };
    let mut last: Option<&Vec<crate::compare::Coord>> = None;
    for r in o.rows.iter().take(MAX_ROWS) {
        if last != Some(&r.baseline.coords) {
            out.push_str("<tr class=baseline>");
            cell(&mut out, &r.baseline);
            out.push_str("<td class=num></td><td class=num data-v=''>baseline</td><td></td><td></td><td></td><td></td><td></td></tr>");
            last = Some(&r.baseline.coords);
        }
        out.push_str("<tr>");
        cell(&mut out, &r.cell);
        let finite = |x: f64| if x.is_finite() { x.to_string() } else { String::new() };
        let _ = write!(
            out,
            "<td class=num data-v='{}'>{}</td><td class=num data-v='{}'>{}</td><td class=num>[{}, {}]</td><td class=num data-v='{}'>{}</td>\
             <td class=num>{}</td><td class=num data-v='{}'>{}</td><td class='verdict {}'>{}</td></tr>",
            r.pairs,
            esc(&r.pairs_text()),
            finite(r.diff_mean),
            signed(r.diff_mean),
            signed(r.ci.0),
            signed(r.ci.1),
            finite(r.p_t),
            pval(r.p_t),
            esc(&r.wilcoxon_text()),
            finite(r.p_holm),
            pval(r.p_holm),
            r.verdict.name().replace(' ', "-"),
            r.verdict.name(),
        );
    }
    out.push_str("</tbody></table></div>");
    let shown = o.rows.iter().filter(|r| r.verdict != crate::compare::Verdict::NoDifferenceShown).count();
    let _ = write!(out, "<p class=note>{shown} of {} comparisons differ after Holm's correction.", o.rows.len());
    for note in o.dropped_notes().chain(o.unmatched_notes()).take(MAX_ROWS) {
        let _ = write!(out, " {}.", esc(&note));
    }
    out.push_str("</p>");
    out
}

/// A word a POSIX shell reads back as itself: as it is where every character is plain, else in
/// single quotes (a `'` in it written `'\''`).
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=,:+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `pipe compare`'s message in the pipeline file's terms: its options are `compare:`'s fields.
fn pipeline_terms(s: &str) -> String {
    s.replace("pass --metric with", "set `compare.metric` to")
        .replace("pass --replicate COLUMN", "set `compare.replicate` to the axis")
        .replace("--baseline", "`compare.baseline`")
        .replace("the --within axis", "`compare.within`")
        .replace("--within", "`compare.within`")
        .replace("--metric", "`compare.metric`")
}

/// The most rows a results table shows (a report stays a page, not a dump; `pipe query` has all).
const MAX_ROWS: usize = 2000;

/// Published figures, embedded as data URIs (an SVG in place of a PNG of the same name).
fn figures(arts: &[Artifact]) -> String {
    let images: Vec<&Artifact> = arts.iter().filter(|a| a.published.is_some() && (a.file.ends_with(".png") || a.file.ends_with(".svg"))).collect();
    let stems: BTreeSet<(String, String)> =
        images.iter().filter(|a| a.file.ends_with(".svg")).map(|a| (a.node.clone(), a.file.trim_end_matches(".svg").to_string())).collect();
    let mut out = String::new();
    let mut stage = "";
    for a in images {
        if a.file.ends_with(".png") && stems.contains(&(a.node.clone(), a.file.trim_end_matches(".png").to_string())) {
            continue;
        }
        if a.stage != stage {
            if !stage.is_empty() {
                out.push_str("</div>");
            }
            stage = &a.stage;
            out.push_str("<div class=gallery>");
        }
        let caption = format!("{}{}", esc(&shown(a)), stale_badge(a));
        match data_uri(a) {
            Some(src) => {
                let _ = write!(out, "<figure><img loading=lazy alt='{}' src='{src}'><figcaption>{caption}</figcaption></figure>", esc(&a.file));
            }
            None => {
                let _ = write!(out, "<figure class=empty><figcaption>{caption}: not in this machine's store</figcaption></figure>");
            }
        }
    }
    if stage.is_empty() {
        out.push_str("<p class=empty>This pipeline publishes no PNG or SVG figure.</p>");
    } else {
        out.push_str("</div>");
    }
    out
}

/// A training history's (epoch, loss) points, or why there are none.
fn history(path: &Path) -> Result<Vec<(f64, f64)>, String> {
    let df = crate::query::load(path).map_err(|e| e.to_string())?;
    let col = |n: &str| -> Result<Vec<f64>, String> {
        let c = df.column(n).map_err(|_| format!("no `{n}` column"))?.cast(&DataType::Float64).map_err(|e| e.to_string())?;
        Ok(c.f64().map_err(|e| e.to_string())?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    Ok(col("epoch")?.into_iter().zip(col("loss")?).filter(|(e, l)| e.is_finite() && l.is_finite()).collect())
}

/// Per-epoch loss per stage that has `history` outputs: one panel per value of the first text
/// coordinate that varies (the dataset), lines coloured by the coordinate with the fewest values
/// that varies besides (e.g. mu2), log-scaled loss when it spans more than a decade.
fn loss_curves(arts: &[Artifact]) -> String {
    let mut by_stage: BTreeMap<&str, Vec<&Artifact>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for a in arts.iter().filter(|a| a.history) {
        if !by_stage.contains_key(a.stage.as_str()) {
            order.push(&a.stage);
        }
        by_stage.entry(&a.stage).or_default().push(a);
    }
    if order.is_empty() {
        return "<p class=empty>No node of this pipeline has a `history` output (a table with `epoch` and `loss` columns).</p>".into();
    }
    let mut out = String::new();
    for stage in order {
        let list = &by_stage[stage];
        let values =
            |k: &str| -> BTreeSet<String> { list.iter().filter_map(|a| a.coords.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_string())).collect() };
        let names: BTreeSet<&str> = list.iter().flat_map(|a| a.coords.iter().map(|(k, _)| k.as_str())).collect();
        let varying: Vec<&str> = names.iter().copied().filter(|k| values(k).len() > 1).collect();
        let panel = varying.iter().copied().find(|k| list.iter().any(|a| a.coords.iter().any(|(n, v)| n == k && matches!(v, Value::Str(_)))));
        let colour = varying.iter().copied().filter(|k| Some(*k) != panel && *k != "seed").min_by_key(|k| values(k).len());
        let coord = |a: &Artifact, k: Option<&str>| -> String {
            k.and_then(|k| a.coords.iter().find(|(n, _)| n == k)).map(|(_, v)| v.to_string()).unwrap_or_default()
        };
        let mut panels: Vec<(String, Vec<&Artifact>)> = Vec::new();
        for a in list {
            let p = coord(a, panel);
            match panels.iter_mut().find(|(k, _)| *k == p) {
                Some((_, v)) => v.push(a),
                None => panels.push((p, vec![a])),
            }
        }
        let _ = write!(out, "<h3>{}</h3><div class=gallery>", esc(stage));
        for (p, members) in panels {
            let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            let mut problems = Vec::new();
            for a in &members {
                match a.path.as_deref().map(history) {
                    Some(Ok(points)) if !points.is_empty() => lines.push((coord(a, colour), points)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => problems.push(format!("{}: {e}", a.node)),
                    None => problems.push(format!("{}: not in this machine's store", a.node)),
                }
            }
            let title = match panel {
                Some(k) => format!("{stage}, {k}={p}"),
                None => stage.to_string(),
            };
            let svg = match chart(&title, colour, &lines) {
                Ok(svg) => svg,
                Err(e) => {
                    problems.push(e);
                    String::new()
                }
            };
            let stale = members.iter().any(|a| a.stale);
            let img = if svg.is_empty() {
                String::new()
            } else {
                let b64 = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
                format!("<img alt='loss per epoch, {}' src='data:image/svg+xml;base64,{b64}'>", esc(&title))
            };
            let _ = write!(
                out,
                "<figure>{img}<figcaption>{} ({} runs){}{}</figcaption></figure>",
                esc(&title),
                lines.len(),
                if stale { " <span class='chip stale'>includes stale runs</span>" } else { "" },
                problems.iter().map(|p| format!("<br><span class=bad>{}</span>", esc(p))).collect::<String>()
            );
        }
        out.push_str("</div>");
    }
    out
}

/// The curves so far of this pipeline's nodes that are running now (their `running/<key>.json`,
/// [`crate::live`]), one chart each, marked running: a report written during a run shows them.
fn running_curves(r: &Inputs<'_>) -> String {
    let keys: BTreeSet<&str> = r.status.iter().filter_map(|s| s.key.as_deref()).collect();
    let mut out = String::new();
    for run in crate::live::running(r.store.root()).into_iter().filter(|x| keys.contains(x.key.as_str())) {
        for (metric, points) in &run.curves {
            let lines = vec![(String::new(), points.iter().map(|&(x, y)| (x as f64, y)).filter(|(_, y)| y.is_finite()).collect::<Vec<_>>())];
            let title = format!("{}: {metric}", run.node);
            let img = match chart(&title, None, &lines) {
                Ok(svg) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
                    format!("<img alt='{} per epoch so far, {}' src='data:image/svg+xml;base64,{b64}'>", esc(metric), esc(&run.node))
                }
                Err(e) => format!("<span class=bad>{}</span>", esc(&e)),
            };
            let _ = write!(
                out,
                "<figure class=running>{img}<figcaption>{} <span class='chip running'>running</span> {}</figcaption></figure>",
                esc(&title),
                esc(&run.describe())
            );
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("<h3>Running now</h3><div class=gallery>{out}</div>")
}

/// Colours of the loss curves (Okabe & Ito's colour-blind-safe palette).
const PALETTE: [(u8, u8, u8); 8] =
    [(0, 114, 178), (230, 159, 0), (0, 158, 115), (213, 94, 0), (204, 121, 167), (86, 180, 233), (0, 0, 0), (240, 228, 66)];

/// The bundled font, so the curves' labels are measured the same everywhere.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// One loss chart as SVG: `lines` are (colour group, points); log10 loss when the values span more
/// than a decade and are all positive.
fn chart(title: &str, colour_by: Option<&str>, lines: &[(String, Vec<(f64, f64)>)]) -> Result<String, String> {
    use plotters::prelude::*;
    static FONTS: std::sync::Once = std::sync::Once::new();
    FONTS.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let all = || lines.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    if !x0.is_finite() || !y0.is_finite() {
        return Err(format!("{title}: no points"));
    }
    let log = y0 > 0.0 && y1 / y0 > 10.0;
    let t = |y: f64| if log { y.log10() } else { y };
    let (ty0, ty1) = (t(y0), t(y1));
    let pad = ((ty1 - ty0) * 0.05).max(1e-9);
    let groups: Vec<&String> = {
        let set: BTreeSet<&String> = lines.iter().map(|(g, _)| g).collect();
        let mut v: Vec<&String> = set.into_iter().collect();
        v.sort_by(|a, b| a.parse::<f64>().ok().zip(b.parse::<f64>().ok()).map(|(x, y)| x.total_cmp(&y)).unwrap_or_else(|| a.cmp(b)));
        v
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 320)).into_drawing_area();
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(x0..x1.max(x0 + 1.0), (ty0 - pad)..(ty1 + pad))
            .map_err(|x| e(&x))?;
        c.configure_mesh()
            .light_line_style(WHITE)
            .x_desc("epoch")
            .y_desc(if log { "loss (log scale)" } else { "loss" })
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| significant(if log { 10f64.powf(*v) } else { *v }))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|x| e(&x))?;
        let alpha = if lines.len() > 12 { 0.35 } else { 0.9 };
        for (gi, g) in groups.iter().enumerate() {
            let (r, gg, b) = PALETTE[gi % PALETTE.len()];
            let style = RGBColor(r, gg, b).mix(alpha).stroke_width(if lines.len() > 12 { 1 } else { 2 });
            let mut first = true;
            for (_, points) in lines.iter().filter(|(k, _)| k == *g) {
                let s = c.draw_series(LineSeries::new(points.iter().map(|(x, y)| (*x, t(*y))), style)).map_err(|x| e(&x))?;
                if first && colour_by.is_some() {
                    let label = format!("{}={g}", colour_by.unwrap_or_default());
                    s.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(r, gg, b).stroke_width(2)));
                    first = false;
                }
            }
        }
        if colour_by.is_some() {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 11))
                .draw()
                .map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
    }
    Ok(svg)
}

/// `x` to 2 significant digits, without trailing zeros (`0.032`, `6.3`, `160`).
fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (1 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{:.*}", digits, x);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if digits == 0 {
        let p = 10f64.powi(x.abs().log10().floor() as i32 - 1);
        format!("{}", (x / p).round() * p)
    } else {
        s
    }
}

/// The stage graph (one box per stage: `fresh/total`), laid out by layout-rs, boxes filled by
/// state: all fresh green, some not fresh amber, none fresh grey.
fn stage_graph(r: &Inputs<'_>) -> String {
    use layout::backends::svg::SVGWriter;
    use layout::core::base::Orientation;
    use layout::core::color::Color;
    use layout::core::style::StyleAttr;
    use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
    use layout::topo::layout::VisualGraph;

    let mut stages: Vec<(String, [usize; 3])> = Vec::new();
    for s in r.status {
        let i = match stages.iter().position(|(n, _)| *n == s.stage) {
            Some(i) => i,
            None => {
                stages.push((s.stage.clone(), [0; 3]));
                stages.len() - 1
            }
        };
        stages[i].1[slot(s.state)] += 1;
    }
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    let pos = |st: &str| stages.iter().position(|(n, _)| n == st);
    for &i in r.graph.order() {
        let to = pos(&r.graph.node(i).stage);
        for d in r.graph.dependencies(i) {
            if let (Some(a), Some(b)) = (pos(&r.graph.node(d).stage), to) {
                if a != b {
                    edges.insert((a, b));
                }
            }
        }
    }
    let mut vg = VisualGraph::new(Orientation::LeftToRight);
    let handles: Vec<_> = stages
        .iter()
        .map(|(name, [fresh, stale, missing])| {
            let total = fresh + stale + missing;
            let fill = if *fresh == total {
                0xc8e6c9ff
            } else if *fresh > 0 || *stale > 0 {
                0xffe0b2ff
            } else {
                0xe0e0e0ff
            };
            let shape = ShapeKind::new_box(&format!("{name}\n{fresh}/{total} fresh"));
            let look = StyleAttr::new(Color::new(0x455a64ff), 1, Some(Color::new(fill)), 6, 14);
            let size = layout::std_shapes::render::get_shape_size(Orientation::LeftToRight, &shape, 14, false);
            vg.add_node(Element::create(shape, look, Orientation::LeftToRight, size))
        })
        .collect();
    for (a, b) in &edges {
        vg.add_edge(Arrow::simple(""), handles[*a], handles[*b]);
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    let b64 = base64::engine::general_purpose::STANDARD.encode(svg.finalize().as_bytes());
    format!(
        "<p class=note><span class='chip fresh'>every node fresh</span> <span class='chip stale'>some not fresh</span> <span class='chip missing'>none fresh</span></p>\
         <div class=scroll><img class=dag alt='stage graph' src='data:image/svg+xml;base64,{b64}'></div>"
    )
}

/// Every node that is not fresh, with why; nodes that only wait on upstream ones are counted.
/// Each failed attempt: its node, the kind of failure (counted per kind first), when, its error
/// and, folded, its whole log (`logs/<key>.json`).
fn failures(failed: &[(String, Attempt)]) -> String {
    if failed.is_empty() {
        return "<p class=empty>No node's last attempt failed.</p>".into();
    }
    // Attempts kept by earlier versions have no kind.
    let kind = |a: &Attempt| a.kind.unwrap_or(FailureKind::Other);
    let mut per_kind: BTreeMap<FailureKind, usize> = BTreeMap::new();
    for (_, a) in failed {
        *per_kind.entry(kind(a)).or_default() += 1;
    }
    let counts: Vec<String> = per_kind.iter().map(|(k, n)| format!("<span class='chip failed'>{k}</span>{n}")).collect();
    let mut out = format!("<p class=note>Per kind of failure: {}</p>", counts.join(" "));
    for (i, (node, a)) in failed.iter().enumerate() {
        let lines = a.log.lines().count();
        let _ = write!(
            out,
            "<div class=failure id='fail-{i}'><h3><span class='chip failed'>{}</span>{}</h3><p class=meta>key {} &middot; {:.1} s</p><pre class=error>{}</pre>             <details><summary>its log ({lines} line{})</summary><pre class=log>{}</pre></details></div>",
            kind(a),
            esc(node),
            esc(&a.key[..12.min(a.key.len())]),
            a.duration_s,
            esc(&a.error),
            if lines == 1 { "" } else { "s" },
            esc(&a.log),
        );
    }
    out
}

fn not_fresh(status: &[NodeStatus], failed: &[(String, Attempt)]) -> String {
    let own: Vec<&NodeStatus> = status.iter().filter(|s| s.state != Freshness::Fresh && !s.waiting).collect();
    let waiting = status.iter().filter(|s| s.waiting).count();
    if own.is_empty() && waiting == 0 {
        return "<p class=empty>Every node is fresh.</p>".into();
    }
    let mut out = format!(
        "<p class=note>{} node{} not fresh for a reason of their own{}.</p><input class=filter type=search placeholder='filter, e.g. train missing' aria-label='filter nodes'>\
         <div class=scroll><table class=sortable><thead><tr><th>state</th><th>node</th><th>why</th></tr></thead><tbody>",
        own.len(),
        if own.len() == 1 { "" } else { "s" },
        if waiting > 0 { format!("; {waiting} more only wait on upstream nodes") } else { String::new() }
    );
    for s in own {
        // A node whose last attempt failed links to its error and log below.
        let log = match failed.iter().position(|(n, _)| *n == s.node) {
            Some(i) => format!(" <a href='#fail-{i}'>last attempt failed: its log</a>"),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<tr><td data-v='{0}'><span class='chip {0}'>{0}</span></td><td data-v='{1}'>{1}</td><td data-v='{2}'>{2}{log}</td></tr>",
            s.state.as_str(),
            esc(&s.node),
            esc(&s.reasons.join("; "))
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The pipeline's runs, newest first.
fn run_history(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "<p class=empty>No run of this pipeline in this store yet.</p>".into();
    }
    let mut out = String::from(
        "<div class=scroll><table class=sortable><thead><tr><th>run</th><th>started (UTC)</th><th>status</th><th class=num>ran</th><th class=num>cached</th>\
         <th class=num>failed</th><th class=num>skipped</th><th class=num>wall (s)</th><th>commit</th><th>host</th><th>overrides</th></tr></thead><tbody>",
    );
    for r in runs.iter().rev() {
        let t = Tally::of(&r.nodes);
        let commit = match (&r.git_commit, r.git_dirty) {
            (Some(c), Some(true)) => format!("{}+", &c[..7.min(c.len())]),
            (Some(c), _) => c[..7.min(c.len())].to_string(),
            _ => String::new(),
        };
        let started = r.started.trim_end_matches('Z').replace('T', " ");
        let _ = write!(
            out,
            "<tr><td data-v='{id}'>{id}</td><td data-v='{st}'>{st}</td><td data-v='{s}'><span class='chip {s}'>{s}</span></td>\
             <td class=num data-v='{}'>{}</td><td class=num data-v='{}'>{}</td><td class=num data-v='{}'>{}</td><td class=num data-v='{}'>{}</td><td class=num data-v='{}'>{:.1}</td>\
             <td data-v='{c}'>{c}</td><td data-v='{h}'>{h}</td><td data-v='{o}'>{o}</td></tr>",
            t.ran,
            t.ran,
            t.cached,
            t.cached,
            t.failed,
            t.failed,
            t.skipped,
            t.skipped,
            r.duration_s,
            r.duration_s,
            id = esc(&r.run_id),
            st = esc(&started),
            s = esc(&r.status),
            c = esc(&commit),
            h = esc(&r.host),
            o = esc(&r.overrides.join(" ")),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

const CSS: &str = r#"
svg.parcoords{max-width:100%;height:auto;font:11px sans-serif}
svg.parcoords polyline{fill:none;stroke-width:1.6;opacity:.85}
svg.parcoords polyline.off{stroke:#bbb;opacity:.12}
svg.parcoords line{stroke:#333}
svg.parcoords text.name{font-weight:bold;text-anchor:middle}
svg.parcoords text.tick{text-anchor:end;fill:#444}
svg.parcoords rect.brush{fill:transparent;cursor:crosshair}
svg.parcoords rect.sel{fill:rgba(0,0,0,.15);stroke:#333}
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#fff;--head:#f5f7fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1280px;padding:0 24px 48px}
header{padding:20px 0 4px}h1{margin:0;font-size:24px}h2{margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line);font-size:19px}h3{font-size:15px;margin:18px 0 6px}
.meta,.note,.empty{color:var(--muted)}.bad{color:#b00020}td.verdict.better{color:#1a7f37;font-weight:600}td.verdict.worse{color:#b00020;font-weight:600}tr.baseline td{font-style:italic}
nav{position:sticky;top:0;background:var(--bg);padding:8px 0;border-bottom:1px solid var(--line);z-index:2}nav a{margin-right:16px;color:#0b69a3;text-decoration:none}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;margin-right:6px;background:#e0e0e0}
pre.log,pre.error{max-height:24em;overflow:auto;background:#fafafa;border:1px solid #ddd;padding:.5em;font-size:85%;white-space:pre-wrap}.chip.fresh,.chip.ok{background:#c8e6c9}.chip.stale,.chip.interrupted{background:#ffe0b2}.chip.missing{background:#e0e0e0}.chip.failed{background:#ffcdd2}.chip.running{background:#bbdefb}
.filter{width:320px;max-width:100%;padding:5px 8px;margin:4px 0 8px;border:1px solid var(--line);border-radius:4px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:var(--head);position:sticky;top:0;cursor:pointer;user-select:none}th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
th[aria-sort=ascending]::after{content:" \25B2"}th[aria-sort=descending]::after{content:" \25BC"}
tbody tr:hover{background:#f0f4f8}.pm{color:var(--muted);font-size:12px}
.gallery{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}figure{margin:0;flex:0 1 auto;max-width:100%}figure img{max-width:100%;max-height:640px;height:auto;border:1px solid var(--line)}figcaption{font-size:12px;color:var(--muted)}
img.dag{max-width:100%;border:0}
details.md{margin:12px 0}details.md summary{cursor:pointer;color:#0b69a3}.prose{max-width:960px}.prose table{margin:8px 0}
"#;

/// The report's first script: it keeps every script error, for a person (and a test) to read.
const ERRORS_JS: &str = "window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message));document.documentElement.dataset.errors=window.__errors.join(' | ');});";

const JS: &str = r#"
(function(){
  document.querySelectorAll('svg.parcoords').forEach(function(svg){
    var lines=[].slice.call(svg.querySelectorAll('polyline'));
    var ys=lines.map(function(l){return l.getAttribute('data-y').split(' ').map(Number);});
    var ranges={},count=svg.parentNode.querySelector('.selected');
    function apply(){var n=0;lines.forEach(function(l,i){var on=Object.keys(ranges).every(function(k){var y=ys[i][k];return y>=ranges[k][0]&&y<=ranges[k][1];});l.classList.toggle('off',!on);if(on)n++;});count.textContent=n+' of '+lines.length+' lines';}
    function at(e){var p=svg.createSVGPoint();p.x=e.clientX;p.y=e.clientY;return p.matrixTransform(svg.getScreenCTM().inverse()).y;}
    svg.querySelectorAll('g.axis').forEach(function(g){
      var k=g.getAttribute('data-axis'),sel=g.querySelector('rect.sel'),y0=null;
      function draw(a,b){sel.setAttribute('y',Math.min(a,b));sel.setAttribute('height',Math.abs(b-a));}
      g.querySelector('rect.brush').addEventListener('mousedown',function(e){y0=at(e);e.preventDefault();});
      window.addEventListener('mousemove',function(e){if(y0!==null)draw(y0,at(e));});
      window.addEventListener('mouseup',function(e){if(y0===null)return;var y1=at(e);if(Math.abs(y1-y0)<2){delete ranges[k];draw(0,0);}else{ranges[k]=[Math.min(y0,y1),Math.max(y0,y1)];draw(y0,y1);}y0=null;apply();});
    });
  });
  function val(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;var n=Number(v);return (v.trim()!==''&&isFinite(n))?{n:n}:{s:v.toLowerCase()};}
  function cmp(a,b){if(a.n!==undefined&&b.n!==undefined)return a.n-b.n;if(a.n!==undefined)return -1;if(b.n!==undefined)return 1;return a.s<b.s?-1:a.s>b.s?1:0;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(r1,r2){var c=cmp(val(r1.cells[col]),val(r2.cells[col]));return asc?c:-c;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.querySelectorAll('input.filter').forEach(function(input){
    var el=input.nextElementSibling,table=el&&el.querySelector('table');
    if(!table)return;
    input.addEventListener('input',function(){
      var words=input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
        var cells=Array.prototype.map.call(r.cells,function(c){return c.textContent.toLowerCase();});
        if(r.title)cells.push(r.title.toLowerCase());
        var tokens=[];cells.forEach(function(c){c.split(/[\s,\[\]=]+/).forEach(function(t){if(t)tokens.push(t);});});
        r.hidden=!words.every(function(w){return tokens.some(function(t){return t.indexOf(w)===0;});});
      });
    });
  });
  document.documentElement.dataset.ready='1';
})();
"#;

/// Where `pipe report` writes when no `--output` is given.
pub fn default_output(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}-report.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s, n) = mean_std(&[0.9, 0.95, 1.0, f64::NAN]);
        assert_eq!(n, 3);
        assert!((m - 0.95).abs() < 1e-12);
        assert!((s - 0.05).abs() < 1e-12, "sample std of 0.9, 0.95, 1.0 is 0.05, got {s}");
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0, 1));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
    }

    #[test]
    fn a_script_hash_is_the_base64_sha256_csp_names() {
        assert_eq!(script_hash("alert(1)"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
    }

    #[test]
    fn only_urls_that_cannot_run_anything_pass() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " \u{1}\u{8}javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{0}javascript:alert(1)",
            "&#106;avascript:alert(1)",
            "javascript&colon;alert(1)",
            "javascript&#58;alert(1)",
            "%6Aavascript:alert(1)",
            "vbscript:msgbox(1)",
            "VBScript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "DATA:image/png;base64,AAAA",
            "file:///etc/passwd",
            "blob:https://a/b",
            "view-source:https://a",
            "jar:file:x!/y",
            "C:\\x",
            "\u{ff4a}avascript:alert(1)",
        ] {
            assert_eq!(user_url(bad), None, "{bad:?}");
        }
        for (good, shown) in [
            ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2"),
            ("HTTP://example.org", "HTTP://example.org"),
            ("mailto:a@b.c", "mailto:a@b.c"),
            ("#results", "#results"),
            ("notes/other.md", "notes/other.md"),
            ("./a:b", "./a:b"),
            ("?x=javascript:1", "?x=javascript:1"),
            ("//example.org/x.png", "//example.org/x.png"),
            (" https://exa\tmple.org ", "https://example.org"),
        ] {
            assert_eq!(user_url(good).as_deref(), Some(shown), "{good:?}");
        }
    }

    #[test]
    fn markdown_keeps_no_active_link_and_no_remote_image() {
        let md = "[a](javascript:alert(1)) [b](&#106;avascript:alert(1)) [c](<java\tscript:alert(1)>) <javascript:alert(1)> \
                  [d](data:text/html;base64,PHNjcmlwdD4=) [e](vbscript:x) [ok](https://example.org/) <https://example.org/auto>\n\n\
                  ![remote](https://example.org/x.png) ![](http://example.org/y.png) ![proto](//example.org/z.png) ![inline](data:image/png;base64,AAAA) \
                  [![nested](https://example.org/n.png)](https://example.org/page) ![fig](./fig.svg)\n\n\
                  [r]: javascript:alert(1)\n\n[ref][r] <img src=x onerror=alert(1)>\n";
        let html = markdown(md, &|url| (url == "./fig.svg").then(|| "data:image/svg+xml;base64,PHN2Zy8+".to_string()));
        for gone in ["=\"javascript", "=\"vbscript", "=\"data:text", "data:image/png", "<img src=\"http", "<img src=\"//", "<img src=x"] {
            assert!(!html.contains(gone), "{gone} in {html}");
        }
        assert_eq!(html.matches("<img").count(), 1, "only the embedded figure is an image: {html}");
        assert!(html.contains("<img src=\"data:image/svg+xml;base64,PHN2Zy8+\" alt=\"fig\" />"), "{html}");
        assert!(html.contains("<a href=\"https://example.org/\">ok</a>"), "{html}");
        assert!(html.contains("<a href=\"https://example.org/auto\">https://example.org/auto</a>"), "{html}");
        assert!(html.contains(">remote</a>") && html.contains(">http://example.org/y.png</a>") && html.contains(">proto</a>"), "{html}");
        assert!(html.contains("<a href=\"https://example.org/page\">nested</a>"), "no link inside a link: {html}");
        assert!(html.contains("<p>a b c javascript:alert(1) d e <a "), "the refused links keep their text: {html}");
        assert!(html.contains("ref &lt;img src=x onerror=alert(1)&gt;"), "{html}");
    }

    #[test]
    fn numbers_print_as_tables_do() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.96413), "0.9641");
        assert_eq!(num(1234.56), "1234.6");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(2e-6), "2.000e-6", "a small value is not printed as 0.0000");
        assert_eq!(num(f64::INFINITY), "inf");
        for (x, s) in [(158.489, "160"), (3.162, "3.2"), (0.0316, "0.032"), (10.0, "10"), (2.5, "2.5")] {
            assert_eq!(significant(x), s, "{x}");
        }
    }
}
