//! Observability, stage "dashboard and alerts": the pure scanners of tests/observability.rs.
//!
//! serde_json is not a dependency, so the dashboard, the rules and Prometheus's API answers are
//! read with small hand-written scanners and substring checks; these are regular enough for that.

use anyhow::Context;

/// What `$__rate_interval` becomes. At a 1 s scrape interval a 30 s window holds the whole
/// worker run's tail, so every rate has samples when the queries are evaluated right after it.
pub const RATE_WINDOW: &str = "30s";

/// Every `"expr": "..."` string value in a JSON text, unescaped. A hand-written scanner: it
/// walks string literals properly, so an `"expr"` inside another string is not a key.
pub fn dashboard_exprs(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = JsonStrings::new(json);
    while let Some((value, after)) = strings.next_string() {
        if value != "expr" {
            continue;
        }
        let rest = json[after..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue; // a string value "expr", not a key
        };
        if rest.trim_start().starts_with('"')
            && let Some((expr, _)) = strings.next_string()
        {
            out.push(expr);
        }
    }
    out
}

/// Iterates over the JSON string literals of a text, unescaping them.
pub struct JsonStrings<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> JsonStrings<'a> {
    pub fn new(text: &'a str) -> Self {
        JsonStrings { text, pos: 0 }
    }

    /// The next string literal and the byte offset just past its closing quote.
    pub fn next_string(&mut self) -> Option<(String, usize)> {
        let start = self.pos + self.text[self.pos..].find('"')? + 1;
        let mut out = String::new();
        let mut chars = self.text[start..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = start + i + 1;
                    return Some((out, self.pos));
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String =
                            (0..4).filter_map(|_| chars.next().map(|c| c.1)).collect();
                        let code = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other), // \" \\ \/
                },
                c => out.push(c),
            }
        }
        None
    }
}

/// The `expr:` of every rule in a rules file. The rules are one plain YAML scalar per line; the
/// caller checks the count against the number of rules, so a multi-line expr cannot slip by.
pub fn rule_exprs(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|line| line.trim_start().strip_prefix("expr:"))
        .map(|expr| {
            let expr = expr.trim();
            let unquoted = expr
                .strip_prefix('\'')
                .and_then(|e| e.strip_suffix('\''))
                .map(|e| e.replace("''", "'"));
            unquoted.unwrap_or_else(|| expr.to_owned())
        })
        .collect()
}

/// Every `lockroute_[a-z_]+` word in a text.
pub fn lockroute_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("lockroute_").map(|i| i + from) {
        let mut end = i + "lockroute_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded_by_word =
            i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if !preceded_by_word {
            out.push(text[i..end].trim_end_matches('_').to_owned());
        }
        from = end;
    }
    out.sort();
    out.dedup();
    out
}

/// The metric names of every sample line in a Prometheus text exposition.
pub fn exposed_names(exposition: &str) -> Vec<String> {
    let mut names: Vec<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a referenced name is exported: itself, or a histogram's base name whose `_bucket`
/// series is exported.
pub fn is_exported(name: &str, exposed: &[String]) -> bool {
    exposed
        .iter()
        .any(|e| e == name || *e == format!("{name}_bucket"))
}

/// The dashboard's template variable queries, `label_values(<selector>, <label>)`, as the PromQL
/// that returns the same label values: `count by (<label>) (<selector>)`.
pub fn variable_queries(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = JsonStrings::new(json);
    while let Some((value, after)) = strings.next_string() {
        if value != "definition" || !json[after..].trim_start().starts_with(':') {
            continue;
        }
        let Some((definition, _)) = strings.next_string() else {
            break;
        };
        let translated = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .and_then(|d| d.rsplit_once(','))
            .map(|(selector, label)| format!("count by ({}) ({})", label.trim(), selector.trim()));
        out.push(translated.unwrap_or(definition));
    }
    out
}

/// Every `"uid": "..."` value in the dashboard.
pub fn uids(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = JsonStrings::new(json);
    while let Some((value, after)) = strings.next_string() {
        if value == "uid"
            && json[after..].trim_start().starts_with(':')
            && let Some((uid, _)) = strings.next_string()
        {
            out.push(uid);
        }
    }
    out
}

/// A dashboard query made runnable outside Grafana: the variables Grafana fills in, replaced.
pub fn runnable(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_WINDOW)
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant-query answer from Prometheus: valid or not, and its series' values.
#[derive(Debug)]
pub struct Answer {
    pub success: bool,
    pub series: usize,
    pub values: Vec<f64>,
    pub body: String,
}

impl Answer {
    pub fn parse(body: String) -> Answer {
        let success = body.contains("\"status\":\"success\"");
        let series = body.matches("\"metric\":").count();
        // Each vector sample is `"value":[<time>,"<value>"]`.
        let values = body
            .split("\"value\":[")
            .skip(1)
            .filter_map(|rest| rest.split_once(",\"")?.1.split_once('"'))
            .filter_map(|(v, _)| v.parse().ok())
            .collect();
        Answer {
            success,
            series,
            values,
            body,
        }
    }

    pub fn has_positive_value(&self) -> bool {
        self.values.iter().any(|v| v.is_finite() && *v > 0.0)
    }
}

/// The body of a `Transfer-Encoding: chunked` response.
pub fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("chunk size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).context("chunk shorter than its size")?;
        out.push_str(chunk);
        body = rest[size..]
            .strip_prefix("\r\n")
            .context("chunk terminator")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_exprs_unescape_quotes_and_skip_non_keys() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{"expr": "up"}"#, &["up"]),
            (
                r#"{"expr":"a{x=\"y\"}","legendFormat":"{{x}}"}"#,
                &[r#"a{x="y"}"#],
            ),
            (r#"{"title": "expr", "expr": "b"}"#, &["b"]),
            (
                r#"{"description": "\"expr\": \"no\"", "expr": "c\\d"}"#,
                &[r"c\d"],
            ),
            (r#"{"expr": "e\u0041"}"#, &["eA"]),
            (r#"{"nothing": 1}"#, &[]),
        ];
        for (json, want) in cases {
            assert_eq!(dashboard_exprs(json), *want, "{json}");
        }
    }

    #[test]
    fn variable_queries_translate_label_values() {
        let json =
            r#"{"definition": "label_values(m{job=~\"$job\"}, instance)", "x": "definition"}"#;
        assert_eq!(
            variable_queries(json),
            [r#"count by (instance) (m{job=~"$job"})"#]
        );
    }

    #[test]
    fn rule_exprs_read_plain_and_single_quoted_scalars() {
        let yaml = "  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: 'x{a=''b''} > 1'\n";
        assert_eq!(rule_exprs(yaml), ["up == 0", "x{a='b'} > 1"]);
    }

    #[test]
    fn lockroute_names_finds_whole_words_only() {
        let text =
            "rate(lockroute_routed_total{x}) xlockroute_no lockroute_mode_ lockroute_bytes_total";
        assert_eq!(
            lockroute_names(text),
            [
                "lockroute_bytes_total",
                "lockroute_mode",
                "lockroute_routed_total"
            ]
        );
    }

    #[test]
    fn answer_parse_counts_series_and_values() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.5,"0.25"]},{"metric":{},"value":[1.5,"NaN"]}]}}"#;
        let a = Answer::parse(body.to_owned());
        assert!(a.success);
        assert_eq!(a.series, 2);
        assert_eq!(a.values.len(), 2);
        assert!(a.has_positive_value());
        let error = Answer::parse(r#"{"status":"error","errorType":"bad_data"}"#.to_owned());
        assert!(!error.success && error.series == 0);
    }

    #[test]
    fn percent_encode_and_dechunk_round_trip_the_http_bits() {
        assert_eq!(
            percent_encode("a{b=\"c\"}[5s]"),
            "a%7Bb%3D%22c%22%7D%5B5s%5D"
        );
        assert_eq!(percent_encode("x y+~"), "x%20y%2B~");
        assert_eq!(
            dechunk("3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            "abcde"
        );
        assert!(dechunk("5\r\nab").is_err());
    }
}
