//! A small subset of Go's `text/template`, enough for podman-style
//! `--format` strings: field references (`{{.Repository}}`,
//! `{{.Config.Env}}`, `{{.}}`), `{{json .}}` / `{{json .Field}}`, a
//! `table ` prefix (a header row and aligned columns) and the escapes `\t`
//! and `\n`. Values are JSON values (the reports serialized).

use crate::{EngineError, Result};
use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A field path (empty: the value itself), rendered plainly or as JSON.
    Field {
        path: Vec<String>,
        json: bool,
    },
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    table: bool,
    pieces: Vec<Piece>,
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn parse_path(expr: &str, whole: &str) -> Result<Vec<String>> {
    if expr == "." {
        return Ok(Vec::new());
    }
    let Some(rest) = expr.strip_prefix('.') else {
        return Err(EngineError::Invalid(format!(
            "template: {whole:?}: unsupported action {expr:?}"
        )));
    };
    let path: Vec<String> = rest.split('.').map(str::to_string).collect();
    if path
        .iter()
        .any(|p| p.is_empty() || !p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(EngineError::Invalid(format!(
            "template: {whole:?}: bad field name {expr:?}"
        )));
    }
    Ok(path)
}

impl Template {
    /// Parses a format string.
    pub fn parse(format: &str) -> Result<Self> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        let mut pieces = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(unescape(&rest[..start])));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                EngineError::Invalid(format!("template: {format:?}: unclosed action"))
            })?;
            let action = after[..end].trim().trim_matches('-').trim();
            let words: Vec<&str> = action.split_whitespace().collect();
            let piece = match words.as_slice() {
                [f] => Piece::Field {
                    path: parse_path(f, format)?,
                    json: false,
                },
                ["json", f] => Piece::Field {
                    path: parse_path(f, format)?,
                    json: true,
                },
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "template: {format:?}: unsupported action {{{{{action}}}}}"
                    )))
                }
            };
            pieces.push(piece);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(unescape(rest)));
        }
        Ok(Self { table, pieces })
    }

    /// Whether the template had the `table` prefix.
    pub fn is_table(&self) -> bool {
        self.table
    }

    fn header(&self, headers: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, .. } => {
                    let name = path.last().map_or(".", String::as_str);
                    out.push_str(&headers(name).unwrap_or_else(|| default_header(name)));
                }
            }
        }
        out
    }

    /// Renders one value.
    pub fn render_one(&self, value: &Value) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, json } => {
                    let mut v = Some(value);
                    for k in path {
                        v = v.and_then(|v| v.get(k));
                    }
                    match (v, json) {
                        (Some(v), true) => out.push_str(&v.to_string()),
                        (None, true) => out.push_str("null"),
                        (Some(v), false) => plain(v, &mut out),
                        (None, false) => out.push_str("<no value>"),
                    }
                }
            }
        }
        out
    }

    /// Renders every row, one per line (each ending in a newline); a table
    /// gets a header row (`headers` names a field's column, else the field
    /// name in capitals) and columns aligned at tabs.
    pub fn render(&self, rows: &[Value], headers: &dyn Fn(&str) -> Option<String>) -> String {
        let mut lines = Vec::with_capacity(rows.len() + 1);
        if self.table {
            lines.push(self.header(headers));
        }
        lines.extend(rows.iter().map(|r| self.render_one(r)));
        let text = lines.join("\n");
        let mut out = if self.table { align(&text) } else { text };
        if !out.is_empty() || !rows.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// `CreatedAt` → `CREATED AT`.
fn default_header(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase();
        out.extend(c.to_uppercase());
    }
    out
}

/// Go's fmt of a value: strings bare, arrays `[a b]`, maps `map[k:v]`.
fn plain(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                plain(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                plain(x, out);
            }
            out.push(']');
        }
    }
}

/// Aligns tab-separated columns like Go's tabwriter (padding 2, at least
/// width 12 as podman sets it up); the last column is not padded.
pub fn align(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let pad = (widths[i] + 2).max(12) - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn fields_and_escapes() {
        let t = Template::parse("{{.Repository}}:{{.Tag}}\\t{{ .ID }}").expect("parse");
        let v = json!({"Repository": "localhost/foo", "Tag": "latest", "ID": "0123"});
        assert_eq!(t.render_one(&v), "localhost/foo:latest\t0123");
        assert!(!t.is_table());
    }

    #[test]
    fn nested_missing_and_lists() {
        let t = Template::parse("{{.Config.Env}} {{.Nope}} {{.Config.Cmd}}").expect("parse");
        let v = json!({"Config": {"Env": ["A=1", "B=2"], "Cmd": null}});
        assert_eq!(t.render_one(&v), "[A=1 B=2] <no value> <nil>");
    }

    #[test]
    fn json_of_value_and_field() {
        let v = json!({"Id": "x", "Names": ["a"]});
        let t = Template::parse("{{json .}}").expect("parse");
        assert_eq!(t.render_one(&v), r#"{"Id":"x","Names":["a"]}"#);
        let t = Template::parse("{{json .Names}}").expect("parse");
        assert_eq!(t.render_one(&v), r#"["a"]"#);
    }

    #[test]
    fn table_has_header_and_alignment() {
        let t = Template::parse("table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}").expect("parse");
        assert!(t.is_table());
        let rows = [
            json!({"Repository": "localhost/a-long-repository-name", "Tag": "v1", "ID": "abc"}),
            json!({"Repository": "b", "Tag": "latest", "ID": "def"}),
        ];
        let headers = |f: &str| (f == "ID").then(|| "IMAGE ID".to_string());
        let out = t.render(&rows, &headers);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("REPOSITORY"), "{out}");
        assert!(lines[0].ends_with("IMAGE ID"), "{out}");
        // Columns start at the same offsets on every line.
        let col = lines[0].find("TAG").expect("TAG");
        assert_eq!(lines[1].find("v1"), Some(col));
        assert_eq!(lines[2].find("latest"), Some(col));
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn default_headers() {
        let t = Template::parse("table {{.CreatedAt}} {{.Size}}").expect("parse");
        assert_eq!(t.render(&[], &none), "CREATED AT SIZE\n");
    }

    #[test]
    fn rejects_unsupported() {
        assert!(Template::parse("{{range .Names}}").is_err());
        assert!(Template::parse("{{.Names").is_err());
        assert!(Template::parse("{{Names}}").is_err());
        assert!(Template::parse("{{.a..b}}").is_err());
    }

    #[test]
    fn plain_text_passes_through() {
        let t = Template::parse("no actions").expect("parse");
        assert_eq!(t.render(&[json!({})], &none), "no actions\n");
    }
}
