//! The worker protocol: what crosses the process boundary, one JSON object per line.
//!
//! The engine writes [`Request`]s on the worker's stdin; the worker answers on its stdout with
//! [`Reply`]s: one per question, and for `run` any number of progress lines, then the log, then
//! `done` or `failed`. [`encode`] and [`decode`] are the one way either side writes and reads a line.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::stage::{InputDecl, NodeJob, OutputSpec, ParamSpec, ParamType, Params, Range, StageKind};
use crate::value::Value;

/// One request to a worker.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Every kind the worker serves.
    Describe,
    /// `StageKind::outputs` of one kind for one node's params.
    Outputs {
        /// The kind's name.
        kind: String,
        /// One node's params.
        params: Params,
    },
    /// `StageKind::environment` (and what it depends on) for one node's params.
    Environment {
        /// The kind's name.
        kind: String,
        /// One node's params.
        params: Params,
    },
    /// Runs one node; the worker answers with progress and log lines, then `done` or `failed`.
    Run(Box<RunRequest>),
}

impl Request {
    /// What is asked, for messages: `describe`, `outputs of train_svdd`, `run of NODE`.
    pub fn what(&self) -> String {
        match self {
            Request::Describe => "describe".into(),
            Request::Outputs { kind, .. } => format!("outputs of {kind}"),
            Request::Environment { kind, .. } => format!("environment of {kind}"),
            Request::Run(r) => format!("run of {} ({})", r.job.node, r.kind),
        }
    }
}

/// One node to run: the kind and the node's [`NodeJob`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The kind's name.
    pub kind: String,
    /// What the node is given.
    pub job: NodeJob,
}

/// One line a worker writes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Reply {
    /// Answers `describe`.
    Kinds {
        /// Every kind served.
        kinds: Vec<KindDesc>,
    },
    /// Answers `outputs`.
    Outputs {
        /// What [`StageKind::outputs`] returned.
        outputs: Result<Vec<OutputSpec>, String>,
    },
    /// Answers `environment`.
    Environment {
        /// What [`StageKind::environment`] returned.
        values: BTreeMap<String, String>,
        /// What [`StageKind::environment_watch`] named, as it was BEFORE `values` were computed
        /// (a file replaced meanwhile then invalidates the answer): paths with their stamps,
        /// variables with their values. `None`: ask again every time.
        read: Option<Read>,
    },
    /// [`crate::stage::Progress::set_length`] of the running node.
    Length {
        /// Steps in all.
        len: u64,
    },
    /// [`crate::stage::Progress::set_position`] of the running node.
    Position {
        /// Steps done.
        pos: u64,
    },
    /// [`crate::stage::Progress::set_message`] of the running node.
    Message {
        /// The status text.
        text: String,
    },
    /// [`crate::stage::Progress::metric`] of the running node.
    Metric {
        /// The metric's name (`loss`).
        name: String,
        /// The step (epoch).
        step: u64,
        /// Its value.
        value: f64,
    },
    /// The node's log (sent once, before `done` / `failed`).
    Log {
        /// The lines, newline-separated.
        text: String,
    },
    /// The node completed; its outputs are in its work dir.
    Done {
        /// CPU seconds (user + system) the worker and the child processes it waited for used
        /// while running the node; absent where the worker does not measure it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_s: Option<f64>,
    },
    /// The node did not complete.
    Failed {
        /// Why, as [`crate::stage::StageError`]'s message.
        error: String,
        /// It stopped because it was interrupted.
        cancelled: bool,
    },
    /// A request the worker could not read or answer.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// One protocol line (newline included) for `msg`.
/// Errors: only a value serde cannot encode (a map with non-string keys); none of the protocol's.
pub fn encode<T: Serialize>(msg: &T) -> Result<String, serde_json::Error> {
    let mut line = serde_json::to_string(msg)?;
    line.push('\n');
    Ok(line)
}

/// The message on one protocol line (trailing newline or not).
/// Errors: a line that is not JSON, or not a message of this type (the error says where).
pub fn decode<T: DeserializeOwned>(line: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(line.trim_end_matches(['\n', '\r']))
}

/// A kind's interface as the engine sees it, in a form that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindDesc {
    /// [`StageKind::name`].
    pub name: String,
    /// [`StageKind::version`].
    pub version: u32,
    /// [`StageKind::params`].
    pub params: Vec<ParamDesc>,
    /// `None`: any input names (like `command`); else (name, required).
    pub inputs: Option<Vec<(String, bool)>>,
    /// [`StageKind::reads_input_identity`].
    pub reads_input_identity: bool,
}

/// A [`ParamSpec`] that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDesc {
    /// [`ParamSpec::name`].
    pub name: String,
    /// [`ParamSpec::ty`].
    pub ty: TypeDesc,
    /// Required params have no default (`null` is a default of its own).
    pub required: bool,
    /// [`ParamSpec::default`] of an optional param.
    pub default: Value,
    /// [`ParamSpec::help`].
    pub help: String,
    /// [`ParamSpec::location`].
    pub location: bool,
    /// [`ParamSpec::horizon`].
    #[serde(default)]
    pub horizon: bool,
    /// [`Range::min`].
    pub min: Option<(f64, bool)>,
    /// [`Range::max`].
    pub max: Option<(f64, bool)>,
}

/// A [`ParamType`] that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeDesc {
    /// [`ParamType::Bool`].
    Bool,
    /// [`ParamType::Int`].
    Int,
    /// [`ParamType::Float`].
    Float,
    /// [`ParamType::Str`].
    Str,
    /// [`ParamType::Choice`].
    Choice(Vec<String>),
    /// [`ParamType::List`].
    List(Box<TypeDesc>),
}

impl TypeDesc {
    fn of(t: &ParamType) -> Self {
        match t {
            ParamType::Bool => TypeDesc::Bool,
            ParamType::Int => TypeDesc::Int,
            ParamType::Float => TypeDesc::Float,
            ParamType::Str => TypeDesc::Str,
            ParamType::Choice(c) => TypeDesc::Choice(c.iter().map(|s| s.to_string()).collect()),
            ParamType::List(t) => TypeDesc::List(Box::new(TypeDesc::of(t))),
        }
    }

    /// The engine's type.
    pub(crate) fn to_type(&self) -> ParamType {
        match self {
            TypeDesc::Bool => ParamType::Bool,
            TypeDesc::Int => ParamType::Int,
            TypeDesc::Float => ParamType::Float,
            TypeDesc::Str => ParamType::Str,
            TypeDesc::Choice(c) => ParamType::Choice(c.iter().map(|s| s.as_str().into()).collect()),
            TypeDesc::List(t) => ParamType::List(Box::new(t.to_type())),
        }
    }
}

impl KindDesc {
    /// The interface of an in-process kind.
    pub fn of(k: &dyn StageKind) -> Self {
        KindDesc {
            name: k.name().to_string(),
            version: k.version(),
            params: k
                .params()
                .iter()
                .map(|p| ParamDesc {
                    name: p.name.to_string(),
                    ty: TypeDesc::of(&p.ty),
                    required: p.default.is_none(),
                    default: p.default.clone().unwrap_or(Value::Null),
                    help: p.help.to_string(),
                    location: p.location,
                    horizon: p.horizon,
                    min: p.range.and_then(|r| r.min),
                    max: p.range.and_then(|r| r.max),
                })
                .collect(),
            inputs: match k.inputs() {
                InputDecl::Any => None,
                InputDecl::Named(v) => Some(v.into_iter().map(|(n, r)| (n.to_string(), r)).collect()),
            },
            reads_input_identity: k.reads_input_identity(),
        }
    }

    /// The params as the engine declares them.
    pub(crate) fn param_specs(&self) -> Vec<ParamSpec> {
        self.params
            .iter()
            .map(|p| ParamSpec {
                name: p.name.as_str().into(),
                ty: p.ty.to_type(),
                default: (!p.required).then(|| p.default.clone()),
                help: p.help.as_str().into(),
                location: p.location,
                horizon: p.horizon,
                range: (p.min.is_some() || p.max.is_some()).then_some(Range { min: p.min, max: p.max }),
            })
            .collect()
    }

    /// The inputs as the engine declares them.
    pub(crate) fn input_decl(&self) -> InputDecl {
        match &self.inputs {
            None => InputDecl::Any,
            Some(v) => InputDecl::Named(v.iter().map(|(n, r)| (n.as_str().into(), *r)).collect()),
        }
    }
}

/// What an environment was computed from: files with their stamps, variables with their values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Read {
    /// Each watched path and what it looked like.
    pub paths: Vec<(PathBuf, Stamp)>,
    /// Each watched variable and its value.
    pub vars: Vec<(String, Option<String>)>,
}

/// What a path looked like: absent, or (size, mtime ns, inode, is a directory).
pub type Stamp = Option<(u64, i64, u64, bool)>;

/// `p`'s [`Stamp`] now.
pub fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).ok().map(|m| (m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino(), m.is_dir()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_in_one_line_each() {
        let params = Params(BTreeMap::from([("epochs".to_string(), Value::Int(3)), ("mu2".to_string(), Value::Float(0.5))]));
        let requests = [
            Request::Describe,
            Request::Outputs { kind: "train_svdd".into(), params: params.clone() },
            Request::Environment { kind: "ingest".into(), params },
        ];
        for r in &requests {
            let line = encode(r).unwrap();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
            assert_eq!(&decode::<Request>(&line).unwrap(), r);
        }
        let replies = [
            Reply::Outputs { outputs: Err("no".into()) },
            Reply::Environment { values: BTreeMap::from([("torch".into(), "2.13.0".into())]), read: Some(Read::default()) },
            Reply::Message { text: "line one\nline two".into() },
            Reply::Metric { name: "loss".into(), step: 3, value: 0.125 },
            Reply::Failed { error: "boom".into(), cancelled: false },
            Reply::Done { cpu_s: None },
            Reply::Done { cpu_s: Some(12.5) },
        ];
        for r in &replies {
            assert_eq!(&decode::<Reply>(&encode(r).unwrap()).unwrap(), r);
        }
    }

    /// Pins the wire format both executables must agree on (a worker built from another commit).
    #[test]
    fn the_wire_format_is_tagged_snake_case() {
        assert_eq!(encode(&Request::Describe).unwrap(), "{\"op\":\"describe\"}\n");
        assert_eq!(encode(&Reply::Position { pos: 7 }).unwrap(), "{\"msg\":\"position\",\"pos\":7}\n");
        // A worker from before `cpu_s` still says it is done.
        assert_eq!(decode::<Reply>("{\"msg\":\"done\"}\r\n").unwrap(), Reply::Done { cpu_s: None });
        assert_eq!(encode(&Reply::Done { cpu_s: Some(1.5) }).unwrap(), "{\"msg\":\"done\",\"cpu_s\":1.5}\n");
        let kinds = decode::<Reply>(r#"{"msg":"kinds","kinds":[{"name":"k","version":2,"params":[],"inputs":null,"reads_input_identity":false}]}"#);
        assert!(matches!(kinds, Ok(Reply::Kinds { kinds }) if kinds[0].name == "k" && kinds[0].version == 2));
    }

    #[test]
    fn an_unreadable_line_is_an_error_not_a_message() {
        assert!(decode::<Reply>("progress 50%").is_err());
        assert!(decode::<Reply>("{\"msg\":\"no_such_message\"}").is_err());
        assert!(decode::<Request>("{\"op\":\"outputs\"}").is_err(), "a request missing its fields");
    }

    #[test]
    fn a_kind_description_gives_back_the_same_interface() {
        let desc = KindDesc::of(&crate::command::CommandStage);
        let back = decode::<KindDesc>(&encode(&desc).unwrap()).unwrap();
        assert_eq!(back, desc);
        let specs = back.param_specs();
        assert_eq!(specs.iter().map(|p| p.name.to_string()).collect::<Vec<_>>(), ["cmd", "outputs"]);
        assert!(specs[0].default.is_none() && specs[1].default == Some(Value::List(vec![])));
        assert!(matches!(back.input_decl(), InputDecl::Any));
    }
}
