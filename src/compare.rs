//! `pipe compare TABLE --metric M --baseline 'COL=VALUE,...'`: every cell of a results table
//! against a baseline cell, paired over a replicate axis (seeds).
//!
//! A cell is a group of rows with the same value in every identifying column. Identifying columns
//! are every column except the replicate column (`seed` by default), the `node` column (its id
//! holds the seed) and the metrics. Metrics are the float columns (as `pipe diff` decides), except
//! a float column that is a grid axis: one the `node` column's ids name as a coordinate
//! (`evaluate[dataset=mnist,mu2=0.5,seed=0]`), or one `--baseline` or `--within` names.
//!
//! The baseline of a cell is the cell that holds the `--baseline` values in the columns it names
//! and the cell's own values in every other identifying column (the same dataset, ...). The cell
//! and its baseline are paired on the replicate value; a replicate on one side only (or with a
//! null or NaN metric) is dropped from that pair. Per comparison: the mean difference (cell minus
//! baseline), its 95% Student t interval, the paired t-test's two-sided p, the Wilcoxon
//! signed-rank test's two-sided p where there are at least 6 pairs, and the t-test p adjusted by
//! Holm's step-down method over every comparison shown (or, with `--within AXIS`, over the
//! comparisons of each value of AXIS separately). The verdict is "better" or "worse" only where
//! the Holm-adjusted p is below 0.05.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use polars::prelude::*;
use serde_json::{json, Value as Json};
pub use stats::*;

/// What to compare.
#[derive(Clone, Debug)]
pub struct Options {
    /// The metric column (a float column).
    pub metric: String,
    /// The baseline cell's coordinates: (column, value), from `--baseline 'COL=VALUE,...'`.
    pub baseline: Vec<(String, String)>,
    /// The replicate column: cells are paired on its value.
    pub replicate: String,
    /// Holm's family: every comparison of one value of this column (None: all comparisons).
    pub within: Option<String>,
    /// Lower metric values are better (a loss, a false-positive rate): flips the verdict.
    pub lower_is_better: bool,
}

/// Why nothing was compared. Each names the column or value and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("--baseline `{0}`: expected COLUMN=VALUE[,COLUMN=VALUE...], e.g. --baseline 'method=radius,mu2=0'")]
    BaselineSyntax(String),
    #[error("--baseline names column `{0}` twice")]
    BaselineTwice(String),
    #[error("no column `{metric}` in the table")]
    UnknownMetric { metric: String, metrics: Vec<String> },
    #[error("`{metric}` is not a metric: {why}")]
    NotAMetric { metric: String, why: String, metrics: Vec<String> },
    #[error("no replicate column `{replicate}` in the table (its columns: {})", columns.join(", "))]
    NoReplicate { replicate: String, columns: Vec<String> },
    #[error("no column `{column}` in the table ({what})")]
    UnknownColumn { column: String, what: &'static str, identifying: Vec<String> },
    #[error("`{column}` cannot be {what}: {why}")]
    NotIdentifying { column: String, what: &'static str, why: String },
    #[error("--baseline {column}={value}: no row has that value; `{column}` holds {}", shown(present))]
    BaselineValue { column: String, value: String, present: Vec<String> },
    #[error("--baseline {column}={value}: `{column}` is a numeric column and `{value}` is not a number")]
    BaselineNotNumber { column: String, value: String },
    #[error("--baseline {0}: no cell holds all of these values together")]
    BaselineCombination(String),
    #[error("every cell is a baseline cell: there is nothing to compare with it")]
    NothingToCompare,
    #[error("cell {cell} has {rows} rows with {replicate}={value}")]
    DuplicateReplicate { cell: String, replicate: String, value: String, rows: usize },
    #[error("{0}")]
    TooFewPairs(Box<TooFewPairs>),
}

/// A cell and its baseline with fewer than 2 replicates in common.
#[derive(Debug, thiserror::Error)]
#[error("{cell} and its baseline {baseline} share {pairs} {replicate} value(s) with a {metric} on both sides ({replicate}: {} in the cell, {} in the baseline); a paired comparison needs at least 2", shown(cell_has), shown(baseline_has))]
pub struct TooFewPairs {
    pub cell: String,
    pub baseline: String,
    pub replicate: String,
    pub metric: String,
    pub pairs: usize,
    pub cell_has: Vec<String>,
    pub baseline_has: Vec<String>,
}

impl CompareError {
    /// The process exit code: 7 (NOT_FOUND) for a column, value or replicate the table lacks, 2
    /// (USAGE) for arguments that cannot mean anything.
    pub fn exit_code(&self) -> i32 {
        use CompareError::*;
        match self {
            UnknownMetric { .. } | NoReplicate { .. } | UnknownColumn { .. } | BaselineValue { .. } | BaselineCombination(_) | TooFewPairs(_) => {
                crate::exit::NOT_FOUND
            }
            BaselineSyntax(_)
            | BaselineTwice(_)
            | NotAMetric { .. }
            | NotIdentifying { .. }
            | BaselineNotNumber { .. }
            | NothingToCompare
            | DuplicateReplicate { .. } => crate::exit::USAGE,
        }
    }
}

impl crate::error::Hint for CompareError {
    fn hint(&self) -> Option<String> {
        use CompareError::*;
        Some(match self {
            BaselineSyntax(_) | BaselineTwice(_) => "give each identifying column once, its value after `=`, pairs separated by commas".into(),
            UnknownMetric { metrics, .. } | NotAMetric { metrics, .. } if metrics.is_empty() => {
                "the table has no metric to compare: no float column that is not a grid axis or the replicate".into()
            }
            UnknownMetric { metrics, .. } | NotAMetric { metrics, .. } => format!("pass --metric with one of the metric (float) columns: {}", metrics.join(", ")),
            NoReplicate { .. } => "pass --replicate COLUMN: the column whose values pair rows of two cells (a seed, a fold)".into(),
            UnknownColumn { identifying, .. } => format!("the identifying columns are: {}", identifying.join(", ")),
            NotIdentifying { .. } => "name an identifying column (a text or integer column, or a grid axis)".into(),
            BaselineValue { column, .. } => format!("give --baseline one of the values `{column}` holds"),
            BaselineNotNumber { column, .. } => format!("give `{column}` a number, e.g. {column}=0"),
            BaselineCombination(_) => "`pipe query \"SELECT DISTINCT ... FROM results\"` lists the cells the table holds; pick one of them".into(),
            NothingToCompare => "name fewer columns in --baseline: the columns it leaves out are held equal, the ones it names are compared".into(),
            DuplicateReplicate { .. } => "a column that tells these rows apart is not identifying: a float column that is a grid axis is one only when the `node` column's ids name it or --baseline names it; or the table holds a run twice".into(),
            TooFewPairs(e) => format!("run the missing {0} values for both cells, or pick a baseline with the same {0} values", e.replicate),
        })
    }
}

/// Up to 12 values, comma-separated, and how many more there are.
fn shown(v: &[String]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let head = v.iter().take(12).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > 12 {
        format!("{head}, ... ({} in all)", v.len())
    } else {
        head
    }
}

/// `--baseline 'method=radius,mu2=0'` as (column, value) pairs.
pub fn parse_baseline(s: &str) -> Result<Vec<(String, String)>, CompareError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in s.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| CompareError::BaselineSyntax(s.to_string()))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(CompareError::BaselineSyntax(s.to_string()));
        }
        if out.iter().any(|(c, _)| c == k) {
            return Err(CompareError::BaselineTwice(k.to_string()));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// One value of an identifying column: as text (how cells are told apart) and typed, for JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Coord {
    pub text: String,
    pub json: Json,
}

/// One cell: its coordinates (one per identifying column, in [`Outcome::columns`] order) and the
/// metric's mean, sample standard deviation (n - 1; NaN for one value) and count over its
/// replicates whose metric is a number.
#[derive(Clone, Debug)]
pub struct Cell {
    pub coords: Vec<Coord>,
    pub n: usize,
    pub mean: f64,
    pub std: f64,
}

/// The verdict of one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    NoDifferenceShown,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoDifferenceShown => "no difference shown",
        }
    }
}

/// One cell against its baseline.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub cell: Cell,
    pub baseline: Cell,
    /// Replicate values present (with a number) on both sides: the pairs.
    pub pairs: usize,
    /// Replicate values dropped from the pairs: on one side only, or a null or NaN metric.
    pub dropped: Vec<Coord>,
    /// Mean of the paired differences (cell minus baseline) and their sample std.
    pub diff_mean: f64,
    pub diff_std: f64,
    /// The 95% Student t interval of the mean difference (pairs - 1 degrees of freedom).
    pub ci: (f64, f64),
    /// The paired t statistic (infinite or NaN where every difference is the same).
    pub t: f64,
    /// Two-sided p of the paired t-test.
    pub p_t: f64,
    /// Where there are at least [`WILCOXON_MIN_PAIRS`] pairs and a difference is not zero.
    pub wilcoxon: Option<Wilcoxon>,
    /// The Holm family: `all`, or `AXIS=VALUE` with --within.
    pub family: String,
    pub family_size: usize,
    /// `p_t` adjusted by Holm's method within the family.
    pub p_holm: f64,
    pub verdict: Verdict,
}

impl Comparison {
    /// The pairs, and how many replicates were dropped from them: `5`, `4 (1 dropped)`.
    pub fn pairs_text(&self) -> String {
        if self.dropped.is_empty() {
            self.pairs.to_string()
        } else {
            format!("{} ({} dropped)", self.pairs, self.dropped.len())
        }
    }

    /// The Wilcoxon p and its method, or why there is none: `0.0312 (exact)`, `- (n < 6)`.
    pub fn wilcoxon_text(&self) -> String {
        match &self.wilcoxon {
            Some(w) => format!("{} ({})", pval(w.p), w.method.name()),
            None if self.pairs < WILCOXON_MIN_PAIRS => format!("- (n < {WILCOXON_MIN_PAIRS})"),
            None => "- (all zero)".into(),
        }
    }
}

/// What `pipe compare` computed.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub metric: String,
    pub replicate: String,
    /// The identifying columns, in table order.
    pub columns: Vec<String>,
    /// The baseline coordinates as given.
    pub baseline: Vec<(String, String)>,
    pub within: Option<String>,
    pub lower_is_better: bool,
    /// Every comparison, grouped by baseline (in the table's order of first appearance).
    pub rows: Vec<Comparison>,
    /// Cells whose group (their values in the columns --baseline does not name) has no baseline cell.
    pub unmatched: Vec<Cell>,
}

/// The column names a `node` column's ids hold as grid coordinates (`stage[a=1,b=x]`).
fn node_axes(df: &DataFrame) -> BTreeSet<String> {
    let mut axes = BTreeSet::new();
    let Ok(c) = df.column("node") else { return axes };
    let Ok(s) = c.str() else { return axes };
    for id in s.into_iter().flatten() {
        let (Some(a), Some(b)) = (id.find('['), id.rfind(']')) else { continue };
        if a < b {
            for part in id[a + 1..b].split(',') {
                if let Some((k, _)) = part.split_once('=') {
                    axes.insert(k.trim().to_string());
                }
            }
        }
    }
    axes
}

/// A column's values as text: strings as they are, anything else as polars prints it.
fn texts(c: &Column) -> Vec<String> {
    match c.cast(&DataType::String).as_ref().map(|s| s.str()) {
        Ok(Ok(s)) => s.into_iter().map(|v| v.unwrap_or("null").to_string()).collect(),
        _ => (0..c.len()).map(|i| c.get(i).map(|v| v.to_string()).unwrap_or_else(|_| "null".into())).collect(),
    }
}

/// A column's values as [`Coord`]s: numbers and booleans typed in JSON, anything else a string.
fn coords(c: &Column) -> Vec<Coord> {
    let dt = c.dtype().clone();
    texts(c)
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let null = matches!(c.get(i), Ok(AnyValue::Null));
            let json = if null {
                Json::Null
            } else if dt.is_integer() {
                text.parse::<i64>().map(Json::from).or_else(|_| text.parse::<u64>().map(Json::from)).unwrap_or_else(|_| Json::from(text.clone()))
            } else if dt.is_float() {
                text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Json::Number).unwrap_or_else(|| Json::from(text.clone()))
            } else if dt == DataType::Boolean {
                Json::Bool(text == "true")
            } else {
                Json::from(text.clone())
            };
            Coord { text, json }
        })
        .collect()
}

/// Every cell of `df` against its baseline cell (see the module documentation).
pub fn compare(df: &DataFrame, opts: &Options) -> Result<Outcome, CompareError> {
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let axes = node_axes(df);
    let named: BTreeSet<&str> = opts.baseline.iter().map(|(c, _)| c.as_str()).chain(opts.within.as_deref()).collect();
    let is_float = |n: &str| df.column(n).is_ok_and(|c| c.dtype().is_float());
    let metrics: Vec<String> =
        names.iter().filter(|n| is_float(n) && !axes.contains(*n) && !named.contains(n.as_str()) && **n != opts.replicate).cloned().collect();

    // The metric.
    if !names.contains(&opts.metric) {
        return Err(CompareError::UnknownMetric { metric: opts.metric.clone(), metrics });
    }
    if !metrics.contains(&opts.metric) {
        let why = if opts.metric == opts.replicate {
            "it is the replicate column".to_string()
        } else if !is_float(&opts.metric) {
            format!("it is a {} column, not a float column", df.column(&opts.metric).map(|c| c.dtype().to_string()).unwrap_or_default())
        } else if named.contains(opts.metric.as_str()) {
            "--baseline or --within names it as a coordinate".to_string()
        } else {
            "it is a grid axis (the `node` column's ids name it)".to_string()
        };
        return Err(CompareError::NotAMetric { metric: opts.metric.clone(), why, metrics });
    }
    // The replicate axis.
    if !names.contains(&opts.replicate) {
        return Err(CompareError::NoReplicate { replicate: opts.replicate.clone(), columns: names });
    }
    let columns: Vec<String> = names.iter().filter(|n| *n != "node" && **n != opts.replicate && !metrics.contains(n)).cloned().collect();
    // The baseline's and --within's columns: identifying ones.
    let check = |c: &str, what: &'static str| -> Result<usize, CompareError> {
        if let Some(i) = columns.iter().position(|x| x == c) {
            return Ok(i);
        }
        let why = if c == opts.replicate {
            format!("it is the replicate column, the one cells are paired on ({what} names a cell)")
        } else if c == "node" {
            "the `node` column names one row (its id holds the replicate); name the grid coordinates instead".to_string()
        } else if metrics.iter().any(|m| m == c) {
            "it is a metric (a float column)".to_string()
        } else {
            return Err(CompareError::UnknownColumn { column: c.to_string(), what, identifying: columns.clone() });
        };
        Err(CompareError::NotIdentifying { column: c.to_string(), what, why })
    };
    let mut base_idx: Vec<(usize, &str)> = Vec::new();
    for (c, v) in &opts.baseline {
        base_idx.push((check(c, "a --baseline column")?, v.as_str()));
    }
    let within_idx = match &opts.within {
        Some(w) => {
            let i = check(w, "the --within axis")?;
            if base_idx.iter().any(|(j, _)| *j == i) {
                return Err(CompareError::NotIdentifying {
                    column: w.clone(),
                    what: "the --within axis",
                    why: "--baseline names it, so a cell and its baseline differ in it".into(),
                });
            }
            Some(i)
        }
        None => None,
    };

    // Per row: its cell's coordinates, replicate and metric.
    let cols: Vec<Vec<Coord>> = columns.iter().map(|c| coords(df.column(c).expect("listed"))).collect();
    let reps: Vec<Coord> = coords(df.column(&opts.replicate).expect("checked"));
    let values: Vec<Option<f64>> = match df.column(&opts.metric).expect("checked").cast(&DataType::Float64) {
        Ok(c) => c.f64().map(|ca| ca.into_iter().map(|v| v.filter(|x| x.is_finite())).collect()).unwrap_or_default(),
        Err(_) => vec![None; df.height()],
    };

    // Each baseline value must be one the column holds (numbers compared as numbers: mu2=0 is 0.0).
    let numeric: Vec<bool> = columns.iter().map(|c| df.column(c).is_ok_and(|c| c.dtype().is_primitive_numeric())).collect();
    let mut wanted: Vec<(usize, BaselineValue)> = Vec::new();
    for &(i, v) in &base_idx {
        let want = if numeric[i] {
            let x = v.parse::<f64>().map_err(|_| CompareError::BaselineNotNumber { column: columns[i].clone(), value: v.to_string() })?;
            BaselineValue::Number(x)
        } else {
            BaselineValue::Text(v.to_string())
        };
        if !cols[i].iter().any(|c| want.matches(&c.text)) {
            let mut present: Vec<String> = Vec::new();
            for c in &cols[i] {
                if !present.contains(&c.text) {
                    present.push(c.text.clone());
                }
            }
            return Err(CompareError::BaselineValue { column: columns[i].clone(), value: v.to_string(), present });
        }
        wanted.push((i, want));
    }

    // Cells, in order of first appearance: coordinates -> (replicate text -> (coord, value)).
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut cells: Vec<RawCell> = Vec::new();
    for r in 0..df.height() {
        let key: Vec<String> = cols.iter().map(|c| c[r].text.clone()).collect();
        let at = *index.entry(key).or_insert_with(|| {
            cells.push((cols.iter().map(|c| c[r].clone()).collect(), Vec::new()));
            cells.len() - 1
        });
        let (coords, reps_of) = &mut cells[at];
        if reps_of.iter().any(|(c, _)| c.text == reps[r].text) {
            let rows = (0..df.height()).filter(|&q| reps[q].text == reps[r].text && cols.iter().all(|c| c[q].text == c[r].text)).count();
            return Err(CompareError::DuplicateReplicate {
                cell: label(&columns, coords),
                replicate: opts.replicate.clone(),
                value: reps[r].text.clone(),
                rows,
            });
        }
        reps_of.push((reps[r].clone(), values[r]));
    }
    let summary = |(coords, reps_of): &RawCell| -> Cell {
        let v: Vec<f64> = reps_of.iter().filter_map(|(_, x)| *x).collect();
        let (mean, std) = if v.is_empty() { (f64::NAN, f64::NAN) } else { mean_std(&v) };
        Cell { coords: coords.clone(), n: v.len(), mean, std }
    };

    // Groups: the values of the columns --baseline does not name; each group's baseline cell.
    let group_key = |coords: &[Coord]| -> Vec<String> {
        coords.iter().enumerate().filter(|(i, _)| !base_idx.iter().any(|(j, _)| j == i)).map(|(_, c)| c.text.clone()).collect()
    };
    let is_baseline = |coords: &[Coord]| wanted.iter().all(|(i, w)| w.matches(&coords[*i].text));
    let mut groups: Vec<(Vec<String>, Option<usize>, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<Vec<String>, usize> = HashMap::new();
    for (ci, (coords, _)) in cells.iter().enumerate() {
        let key = group_key(coords);
        let g = *group_of.entry(key.clone()).or_insert_with(|| {
            groups.push((key, None, Vec::new()));
            groups.len() - 1
        });
        if is_baseline(coords) {
            groups[g].1 = Some(ci);
        } else {
            groups[g].2.push(ci);
        }
    }
    if groups.iter().all(|(_, b, _)| b.is_none()) {
        let given = opts.baseline.iter().map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(",");
        return Err(CompareError::BaselineCombination(given));
    }

    let mut rows: Vec<Comparison> = Vec::new();
    let mut unmatched: Vec<Cell> = Vec::new();
    for (_, base, members) in &groups {
        let Some(b) = *base else {
            unmatched.extend(members.iter().map(|&ci| summary(&cells[ci])));
            continue;
        };
        let (bcell, breps) = (&cells[b], &cells[b].1);
        for &ci in members {
            let (ccoords, creps) = (&cells[ci].0, &cells[ci].1);
            let mut d: Vec<f64> = Vec::new();
            let mut dropped: Vec<Coord> = Vec::new();
            for (rep, x) in creps {
                match (x, breps.iter().find(|(r, _)| r.text == rep.text).and_then(|(_, y)| *y)) {
                    (Some(x), Some(y)) => d.push(x - y),
                    _ => dropped.push(rep.clone()),
                }
            }
            dropped.extend(breps.iter().filter(|(r, _)| !creps.iter().any(|(c, _)| c.text == r.text)).map(|(r, _)| r.clone()));
            if d.len() < 2 {
                let has = |reps_of: &[(Coord, Option<f64>)]| reps_of.iter().filter(|(_, x)| x.is_some()).map(|(r, _)| r.text.clone()).collect();
                return Err(CompareError::TooFewPairs(Box::new(TooFewPairs {
                    cell: label(&columns, ccoords),
                    baseline: label(&columns, &bcell.0),
                    replicate: opts.replicate.clone(),
                    metric: opts.metric.clone(),
                    pairs: d.len(),
                    cell_has: has(creps),
                    baseline_has: has(breps),
                })));
            }
            let (diff_mean, diff_std) = mean_std(&d);
            let (t, p_t, ci_) = paired_t(&d);
            let wilcoxon = if d.len() >= WILCOXON_MIN_PAIRS { wilcoxon(&d) } else { None };
            let family = match within_idx {
                Some(w) => format!("{}={}", columns[w], ccoords[w].text),
                None => "all".to_string(),
            };
            rows.push(Comparison {
                cell: summary(&cells[ci]),
                baseline: summary(bcell),
                pairs: d.len(),
                dropped,
                diff_mean,
                diff_std,
                ci: ci_,
                t,
                p_t,
                wilcoxon,
                family,
                family_size: 0,
                p_holm: f64::NAN,
                verdict: Verdict::NoDifferenceShown,
            });
        }
    }
    if rows.is_empty() {
        return Err(CompareError::NothingToCompare);
    }
    // Holm within each family.
    let mut families: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        families.entry(r.family.clone()).or_default().push(i);
    }
    for members in families.into_values() {
        let adjusted = holm(&members.iter().map(|&i| rows[i].p_t).collect::<Vec<_>>());
        for (&i, p) in members.iter().zip(adjusted) {
            let r = &mut rows[i];
            r.family_size = members.len();
            r.p_holm = p;
            r.verdict = if p < ALPHA && r.diff_mean != 0.0 {
                if (r.diff_mean > 0.0) != opts.lower_is_better {
                    Verdict::Better
                } else {
                    Verdict::Worse
                }
            } else {
                Verdict::NoDifferenceShown
            };
        }
    }
    Ok(Outcome {
        metric: opts.metric.clone(),
        replicate: opts.replicate.clone(),
        columns,
        baseline: opts.baseline.clone(),
        within: opts.within.clone(),
        lower_is_better: opts.lower_is_better,
        rows,
        unmatched,
    })
}

/// A cell as read: its coordinates, and per replicate (in the table's order) its metric value.
type RawCell = (Vec<Coord>, Vec<(Coord, Option<f64>)>);

/// A --baseline value: compared as a number in a numeric column, as text otherwise.
enum BaselineValue {
    Number(f64),
    Text(String),
}

impl BaselineValue {
    fn matches(&self, text: &str) -> bool {
        match self {
            BaselineValue::Number(x) => text.parse::<f64>().is_ok_and(|y| y == *x),
            BaselineValue::Text(s) => s == text,
        }
    }
}

/// `dataset=mnist method=radius mu2=0.0`.
fn label(columns: &[String], coords: &[Coord]) -> String {
    columns.iter().zip(coords).map(|(c, v)| format!("{c}={}", v.text)).collect::<Vec<_>>().join(" ")
}

/// A metric value: 4 decimals, or 3 significant digits in scientific notation below 0.001.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

/// [`num`] with its sign, `+` included.
pub fn signed(x: f64) -> String {
    let s = num(x);
    if x.is_finite() && x >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// A p-value: 4 decimals, or 3 significant digits in scientific notation below 0.001.
pub fn pval(p: f64) -> String {
    if p.is_nan() {
        "-".into()
    } else if p == 0.0 {
        "0".into()
    } else if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The aligned table: per group its baseline cell, then each cell compared with it; then notes.
pub fn render_table(o: &Outcome) -> String {
    let mut head: Vec<String> = o.columns.clone();
    let stats = ["n", "mean", "std", "pairs", "diff", "95% CI of diff", "p (t)", "p (Wilcoxon)", "p (Holm)", "verdict"];
    head.extend(stats.iter().map(|s| s.to_string()));
    let keys = o.columns.len();
    let mut lines: Vec<Vec<String>> = Vec::new();
    let cell_part = |c: &Cell| -> Vec<String> {
        let mut v: Vec<String> = c.coords.iter().map(|x| x.text.clone()).collect();
        v.extend([c.n.to_string(), num(c.mean), num(c.std)]);
        v
    };
    let mut last_baseline: Option<&Vec<Coord>> = None;
    for r in &o.rows {
        if last_baseline != Some(&r.baseline.coords) {
            let mut line = cell_part(&r.baseline);
            line.push("baseline".into());
            lines.push(line);
            last_baseline = Some(&r.baseline.coords);
        }
        let mut line = cell_part(&r.cell);
        line.push(r.pairs_text());
        line.push(signed(r.diff_mean));
        line.push(format!("[{}, {}]", signed(r.ci.0), signed(r.ci.1)));
        line.push(pval(r.p_t));
        line.push(r.wilcoxon_text());
        line.push(pval(r.p_holm));
        line.push(r.verdict.name().into());
        lines.push(line);
    }
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for l in &lines {
        for (w, s) in width.iter_mut().zip(l) {
            *w = (*w).max(s.chars().count());
        }
    }
    let fmt_line = |l: &[String]| -> String {
        let mut s = String::new();
        for (i, cell) in l.iter().enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            // Numbers right-aligned: n, mean, std, pairs, diff, p (t), p (Holm).
            let right = (keys..keys + 5).contains(&i) || i == keys + 6 || i == keys + 8;
            if i > 0 {
                s.push_str("  ");
            }
            if right && cell != "baseline" {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < l.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let baseline = o.baseline.iter().map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(",");
    let family = match &o.within {
        Some(w) => format!("within each value of {w}"),
        None => format!("over all {} comparison{}", o.rows.len(), if o.rows.len() == 1 { "" } else { "s" }),
    };
    let _ = writeln!(
        out,
        "{}: each cell minus its baseline ({baseline}, same other coordinates), paired on {}; Holm-adjusted t-test p {family}; \
         verdict where it is < {ALPHA} ({} is better)",
        o.metric,
        o.replicate,
        if o.lower_is_better { "lower" } else { "higher" }
    );
    let _ = writeln!(out, "{}", fmt_line(&head));
    for l in &lines {
        let _ = writeln!(out, "{}", fmt_line(l));
    }
    for note in o.dropped_notes().chain(o.unmatched_notes()) {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

impl Outcome {
    /// Per comparison that dropped replicates: `CELL: seed 3, 4 dropped (on one side only, or no number)`.
    pub fn dropped_notes(&self) -> impl Iterator<Item = String> + '_ {
        self.rows.iter().filter(|r| !r.dropped.is_empty()).map(|r| {
            let reps = r.dropped.iter().map(|c| c.text.clone()).collect::<Vec<_>>().join(", ");
            format!("{}: {} {reps} dropped (on one side only, or no number)", label(&self.columns, &r.cell.coords), self.replicate)
        })
    }

    /// Per cell without a baseline cell: `CELL: no baseline cell holds its other coordinates; not compared`.
    pub fn unmatched_notes(&self) -> impl Iterator<Item = String> + '_ {
        self.unmatched.iter().map(|c| format!("{}: no baseline cell holds its other coordinates; not compared", label(&self.columns, &c.coords)))
    }
}

fn jnum(x: f64) -> Json {
    serde_json::Number::from_f64(x).map(Json::Number).unwrap_or(Json::Null)
}

/// The comparisons as a JSON array, every number included (null where it is undefined).
pub fn to_json(o: &Outcome) -> Json {
    let obj = |c: &Cell| -> Json { Json::Object(o.columns.iter().cloned().zip(c.coords.iter().map(|x| x.json.clone())).collect()) };
    Json::Array(
        o.rows
            .iter()
            .map(|r| {
                json!({
                    "metric": o.metric,
                    "replicate": o.replicate,
                    "cell": obj(&r.cell),
                    "baseline": obj(&r.baseline),
                    "n": r.cell.n,
                    "mean": jnum(r.cell.mean),
                    "std": jnum(r.cell.std),
                    "baseline_n": r.baseline.n,
                    "baseline_mean": jnum(r.baseline.mean),
                    "baseline_std": jnum(r.baseline.std),
                    "pairs": r.pairs,
                    "dropped": r.dropped.iter().map(|c| c.json.clone()).collect::<Vec<_>>(),
                    "diff_mean": jnum(r.diff_mean),
                    "diff_std": jnum(r.diff_std),
                    "ci_level": CONFIDENCE,
                    "ci_low": jnum(r.ci.0),
                    "ci_high": jnum(r.ci.1),
                    "t": jnum(r.t),
                    "df": r.pairs - 1,
                    "p_t": jnum(r.p_t),
                    "wilcoxon_statistic": r.wilcoxon.map(|w| jnum(w.statistic)).unwrap_or(Json::Null),
                    "p_wilcoxon": r.wilcoxon.map(|w| jnum(w.p)).unwrap_or(Json::Null),
                    "wilcoxon_method": r.wilcoxon.map(|w| Json::from(w.method.name())).unwrap_or(Json::Null),
                    "holm_family": r.family,
                    "holm_family_size": r.family_size,
                    "p_holm": jnum(r.p_holm),
                    "verdict": r.verdict.name(),
                    "lower_is_better": o.lower_is_better,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-300), "{a} != {b}");
    }

    /// scipy 1.17.1: `scipy.stats._hypotests._get_wilcoxon_distr(6) * 2**6` is
    /// [1,1,1,2,2,3,4,4,4,5,5,5,5,4,4,4,3,2,2,1,1,1], and the counts always sum to 2^n.
    #[test]
    fn signed_rank_counts_match_the_exact_distribution() {
        assert_eq!(signed_rank_counts(6), vec![1, 1, 1, 2, 2, 3, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 3, 2, 2, 1, 1, 1]);
        assert_eq!(signed_rank_counts(1), vec![1, 1]);
        for n in [10, 25, 40] {
            assert_eq!(signed_rank_counts(n).iter().sum::<u64>(), 1u64 << n);
        }
    }

    /// Exact two-sided p-values from scipy 1.17.1, `scipy.stats.wilcoxon(d, method="exact").pvalue`:
    /// d = [1, 2, 3, 4, 5, 6]: 0.03125 (R+ = 21); d = [1, -2, 3, 4, 5, 6]: 0.09375 (R+ = 19);
    /// d = [1, -2, 3, -4, 5, 6]: 0.4375 (R+ = 15); d = [-1, 2, -3, 4, -5, 6, 7, -8, 9, 10]: 0.322265625
    /// (R+ = 38); d = 1..=20 with 3, 7 and 11 negative: 0.000850677490234375 (R+ = 189);
    /// d = 1..=25 with 2, 9, 13 and 20 negative: 0.0008081197738647461 (R+ = 281).
    #[test]
    fn wilcoxon_exact_matches_scipy() {
        let cases: [(Vec<f64>, f64); 6] = [
            (vec![1., 2., 3., 4., 5., 6.], 0.03125),
            (vec![1., -2., 3., 4., 5., 6.], 0.09375),
            (vec![1., -2., 3., -4., 5., 6.], 0.4375),
            (vec![-1., 2., -3., 4., -5., 6., 7., -8., 9., 10.], 0.322265625),
            ((1..=20).map(|i| if [3, 7, 11].contains(&i) { -(i as f64) } else { i as f64 }).collect(), 0.000850677490234375),
            ((1..=25).map(|i| if [2, 9, 13, 20].contains(&i) { -(i as f64) } else { i as f64 }).collect(), 0.0008081197738647461),
        ];
        for (d, p) in cases {
            let w = wilcoxon(&d).unwrap();
            assert_eq!(w.method, WilcoxonMethod::Exact, "{d:?}");
            close(w.p, p);
        }
    }

    /// Ties, zeros or more than 25 pairs: the normal approximation, as scipy 1.17.1's
    /// `scipy.stats.wilcoxon(d, method="asymptotic").pvalue`: d = [1, 1, 2, -3, 4, 5]:
    /// 0.17177277759571152; d = [0, 1, 2, -3, 4, 5, 6]: 0.11585149752593009 (the zero dropped);
    /// d = 1..=30 with 5 and 17 negative: 1.493563929839868e-05.
    #[test]
    fn wilcoxon_normal_approximation_matches_scipy() {
        let cases: [(Vec<f64>, f64); 3] = [
            (vec![1., 1., 2., -3., 4., 5.], 0.17177277759571152),
            (vec![0., 1., 2., -3., 4., 5., 6.], 0.11585149752593009),
            ((1..=30).map(|i| if [5, 17].contains(&i) { -(i as f64) } else { i as f64 }).collect(), 1.493563929839868e-05),
        ];
        for (d, p) in cases {
            let w = wilcoxon(&d).unwrap();
            assert_eq!(w.method, WilcoxonMethod::Normal, "{d:?}");
            close(w.p, p);
        }
        assert!(wilcoxon(&[0.0, 0.0, 0.0]).is_none());
    }

    /// statsmodels 0.15.0, `multipletests(p, method="holm")[1]`:
    /// [0.01, 0.04, 0.03, 0.005] -> [0.03, 0.06, 0.06, 0.02];
    /// [0.2, 0.01, 0.6, 0.02, 0.04] -> [0.4, 0.05, 0.6, 0.08, 0.12];
    /// [0.5, 0.5] -> [1.0, 1.0].
    #[test]
    fn holm_matches_statsmodels() {
        let cases: [(Vec<f64>, Vec<f64>); 3] = [
            (vec![0.01, 0.04, 0.03, 0.005], vec![0.03, 0.06, 0.06, 0.02]),
            (vec![0.2, 0.01, 0.6, 0.02, 0.04], vec![0.4, 0.05, 0.6, 0.08, 0.12]),
            (vec![0.5, 0.5], vec![1.0, 1.0]),
        ];
        for (p, want) in cases {
            for (a, b) in holm(&p).into_iter().zip(want) {
                close(a, b);
            }
        }
    }

    #[test]
    fn baseline_parses_and_refuses_what_it_cannot_read() {
        assert_eq!(parse_baseline("method=radius, mu2=0").unwrap(), vec![("method".into(), "radius".into()), ("mu2".into(), "0".into())]);
        assert!(matches!(parse_baseline("radius"), Err(CompareError::BaselineSyntax(_))));
        assert!(matches!(parse_baseline("a=1,a=2"), Err(CompareError::BaselineTwice(_))));
    }
}
