//! Tables as the ecosystem writes them: `tests/data/pyarrow-types.parquet` was written by pyarrow
//! (26.0) with one column of each type pandas/pyarrow produce for ordinary tables: ints of every
//! width, unsigned too (uint64 beyond i64), float32, booleans, strings, dictionary strings, dates,
//! timestamps with and without a time zone, a decimal, an all-null column, and nulls in most.
//! `pipe query` reads and renders it in every format, values exact; `concat` gathers it.

mod common;
use common::Workspace;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyarrow-types.parquet")
}

fn query(ws: &Workspace, sql: &str, results: &str, format: &str) -> String {
    let out = ws.pipe(&["query", sql, "--results", results, "--format", format]);
    assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn query_reads_and_renders_every_column_type_pyarrow_writes() {
    let ws = Workspace::new("pyarrow-types");
    let f = fixture().display().to_string();
    let csv = query(&ws, "SELECT * FROM results", &f, "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "i8,i16,i32,i64,u8,u16,u32,u64,f32,f64,b,s,dict,d,ts,tsz,dec,nulls");
    assert!(
        lines[1]
            .starts_with("1,300,70000,1099511627776,255,65535,4000000000,9223372036854775813,0.5,0.1,true,a,mnist,2026-11-30,2026-11-30T07:12:46"),
        "{csv}"
    );
    assert!(lines[1].contains(",0.9814,"), "the decimal keeps its digits: {csv}");
    assert!(lines[2].starts_with("-2,-2,2,2,0,1,1,1,1.25,2.5,false,,fashion-mnist,1970-01-01,,,-1.5000,"), "{csv}");

    let json = query(&ws, "SELECT u64, dict, d, tsz, dec FROM results", &f, "json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["u64"], serde_json::json!(9223372036854775813u64));
    assert_eq!(v[1]["dict"], "fashion-mnist");
    assert_eq!(v[0]["d"], "2026-11-30");
    assert_eq!(v[0]["dec"], "0.9814");
    assert!(v[2]["dec"].is_null());

    let table = query(&ws, "SELECT u8, dict, dec FROM results WHERE u8 > 100", &f, "table");
    assert!(table.contains("255") && table.contains("mnist") && table.contains("0.9814") && !table.contains("fashion"), "{table}");

    // SQL over the narrow and unsigned columns computes in their values.
    let sums = query(&ws, "SELECT sum(u16) AS s16, max(u64) AS m64, sum(i8) AS s8 FROM results", &f, "csv");
    assert_eq!(sums.lines().nth(1).unwrap(), "65538,9223372036854775813,-1", "{sums}");
}

#[test]
fn concat_gathers_a_pyarrow_table() {
    let ws = Workspace::new("pyarrow-concat");
    ws.write(
        "pipeline.yaml",
        &format!(
            r#"
stages:
  make:
    kind: command
    matrix: {{x: [1, 2]}}
    params: {{cmd: "cp {} ${{outputs.t.parquet}}", outputs: [t.parquet]}}
  all:
    kind: concat
    inputs: {{tables: {{from: make.t.parquet, gather: true}}}}
    publish: {{table: all.parquet}}
"#,
            fixture().display()
        ),
    );
    ws.ok(&["run", "pipeline.yaml"]);
    let csv = query(&ws, "SELECT x, u64, dict, dec FROM results ORDER BY x, u8", "all.parquet", "csv");
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "x,u64,dict,dec",
            "1,1,fashion-mnist,-1.5000",
            "1,2,mnist,",
            "1,9223372036854775813,mnist,0.9814",
            "2,1,fashion-mnist,-1.5000",
            "2,2,mnist,",
            "2,9223372036854775813,mnist,0.9814"
        ],
        "{csv}"
    );
}
