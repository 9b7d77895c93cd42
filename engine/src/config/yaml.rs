//! A YAML tree that remembers the line and column of every node, so validation can point into the file.
//!
//! serde_yaml (and its forks) stop at the first error and lose positions once deserialised; the
//! validator needs every position to report all errors at once, so we build our own marked tree
//! from yaml-rust2's event stream.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::value::Value;

/// 1-based line and column in the source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, from 1 (0 for values from the command line).
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

/// A YAML node and the position where it starts.
#[derive(Clone, Debug)]
pub struct Node {
    /// Where the node starts in the file.
    pub pos: Pos,
    /// The node's content.
    pub kind: NodeKind,
}

/// What a node holds: a scalar, a sequence or a mapping.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// A scalar: a plain one typed by the YAML 1.2 core schema, a quoted one always a string.
    Scalar(Value),
    /// A sequence's items, in order.
    Seq(Vec<Node>),
    /// A mapping's (key, value) pairs, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a string scalar; `None` for any other node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Human name of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(v) => v.type_name(),
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "mapping",
        }
    }

    /// Converts a scalar or a list of scalars into a plain value.
    pub fn to_value(&self) -> Option<Value> {
        match &self.kind {
            NodeKind::Scalar(v) => Some(v.clone()),
            NodeKind::Seq(items) => items.iter().map(Node::to_value).collect::<Option<Vec<_>>>().map(Value::List),
            NodeKind::Map(_) => None,
        }
    }
}

/// A YAML error: a syntax error, which stops the parse, or a problem (duplicate key, out-of-range integer) that does not.
#[derive(Debug)]
pub struct ParseError {
    /// Where the problem is in the file.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: &'static str,
}

impl ParseError {
    fn too_deep(pos: Pos) -> Self {
        ParseError {
            pos,
            message: format!("values are nested more than {MAX_DEPTH} levels deep; a pipeline needs a handful"),
            hint: "simplify this part of the file",
        }
    }
}

/// Parses one YAML document. An empty document is an empty mapping. Duplicate keys and
/// out-of-range integers do not stop the parse: they come back as the second element so they are
/// reported with every other error.
pub fn parse(src: &str) -> Result<(Node, Vec<ParseError>), ParseError> {
    // Block nesting the parser would follow by recursion (`- - - ... x` on one line, or ever
    // deeper indentation) is refused before parsing: a stack overflow aborts the process.
    for (i, line) in src.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let mut rest = &line[indent..];
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            rest = r.trim_start_matches(' ');
            dashes += 1;
        }
        if dashes > MAX_DEPTH || indent > 8 * MAX_DEPTH {
            return Err(ParseError::too_deep(Pos { line: i + 1, col: indent + 1 }));
        }
    }
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(src);
    // Every document is read, so a second one (after `---`) is reported rather than ignored.
    parser.load(&mut b, true).map_err(|e| ParseError {
        pos: (*e.marker()).into(),
        message: format!("YAML syntax error: {}", e.info()),
        hint: "check indentation and quoting around this spot",
    })?;
    if let Some(fatal) = b.fatal {
        return Err(fatal);
    }
    let root = b.root.unwrap_or(Node { pos: Pos { line: 1, col: 1 }, kind: NodeKind::Map(Vec::new()) });
    Ok((root, b.problems))
}

/// Bounds that keep a hostile file from taking unbounded time or memory: values produced by
/// expanding aliases (a few hundred bytes of nested aliases can otherwise expand to gigabytes),
/// and nesting depth.
const MAX_ALIAS_VALUES: usize = 100_000;
const MAX_DEPTH: usize = 128;

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, usize)>,
    pending_key: Vec<Option<Node>>,
    /// The string keys seen so far in each open mapping (duplicate checks in constant time).
    seen_keys: Vec<std::collections::HashSet<String>>,
    /// Anchored nodes with their size in values.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    /// Errors that do not stop the parse (duplicate keys, out-of-range integers).
    problems: Vec<ParseError>,
    documents: usize,
    alias_values: usize,
    /// An error after which the rest of the stream is not read.
    fatal: Option<ParseError>,
}

fn size(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(k, v)| size(k) + size(v)).sum::<usize>(),
    }
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        let Some((parent, _)) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        match &mut parent.kind {
            NodeKind::Seq(items) => items.push(node),
            NodeKind::Map(entries) => {
                let slot = self.pending_key.last_mut().expect("map has a key slot");
                match slot.take() {
                    None => *slot = Some(node),
                    Some(key) => {
                        let dup = match (key.as_str(), self.seen_keys.last_mut()) {
                            (Some(k), Some(seen)) => !seen.insert(k.to_string()),
                            _ => false,
                        };
                        if dup {
                            self.problems.push(ParseError {
                                pos: key.pos,
                                message: format!("duplicate key `{}`; each key may appear once in a mapping", key.as_str().unwrap_or("?")),
                                hint: "remove or rename one of them",
                            });
                        }
                        entries.push((key, node));
                    }
                }
            }
            NodeKind::Scalar(_) => unreachable!("scalars have no children"),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        if self.fatal.is_some() {
            return;
        }
        if self.stack.len() > MAX_DEPTH {
            self.fatal = Some(ParseError::too_deep(pos));
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
                if plain && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_err() {
                    self.problems.push(ParseError {
                        pos,
                        message: format!("integer `{text}` is out of range for a 64-bit integer (-9223372036854775808..=9223372036854775807)"),
                        hint: "quote it to use it as text (`\"...\"`), or use a number in range",
                    });
                }
                let v = if plain { Value::from_plain_scalar(&text) } else { Value::Str(text) };
                self.push_value(Node { pos, kind: NodeKind::Scalar(v) }, anchor);
            }
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fatal = Some(ParseError {
                        pos,
                        message: "a second YAML document (after `---`): a pipeline file holds one; pipe would ignore this one".into(),
                        hint: "remove the `---` and what follows, or put it in its own file",
                    });
                }
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((Node { pos, kind: NodeKind::Seq(Vec::new()) }, anchor));
                self.pending_key.push(None);
                self.seen_keys.push(Default::default());
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((Node { pos, kind: NodeKind::Map(Vec::new()) }, anchor));
                self.pending_key.push(None);
                self.seen_keys.push(Default::default());
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.pending_key.pop();
                self.seen_keys.pop();
                if let Some((node, anchor)) = self.stack.pop() {
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let n = self.anchors.get(&id).map_or(1, |(_, n)| *n);
                self.alias_values += n;
                if self.alias_values > MAX_ALIAS_VALUES {
                    self.fatal = Some(ParseError {
                        pos,
                        message: format!(
                            "aliases (`*name`) expand to more than {MAX_ALIAS_VALUES} values; write the values out, or use `${{params.NAME}}`"
                        ),
                        hint: "simplify this part of the file",
                    });
                    return;
                }
                let node = self.anchors.get(&id).map(|(n, _)| n.clone()).unwrap_or(Node { pos, kind: NodeKind::Scalar(Value::Null) });
                self.push_value(Node { pos, ..node }, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let (n, _) = parse("a:\n  b: 1.5\n  c: [x, 'y']\n").unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        let NodeKind::Map(inner) = &m[0].1.kind else { panic!() };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
        assert!(matches!(inner[0].1.kind, NodeKind::Scalar(Value::Float(f)) if f == 1.5));
        assert_eq!(inner[1].1.to_value(), Some(Value::List(vec![Value::Str("x".into()), Value::Str("y".into())])));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (_, dups) = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(dups[0].pos, Pos { line: 2, col: 1 });
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let (n, _) = parse("'1'").unwrap();
        assert!(matches!(n.kind, NodeKind::Scalar(Value::Str(_))));
    }
}
