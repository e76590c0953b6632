//! Templates: Jinja syntax through minijinja, rendered strictly and within limits.
//!
//! Strict means the caller supplies exactly the variables a template uses: a missing one
//! and (unless allowed) an unknown one are errors that name them. Limits mean a runaway
//! template (a huge loop, an exploding string) is stopped by minijinja's fuel and an
//! output cap instead of holding a worker.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// How much a single render may do.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Bytes a render may produce.
    pub max_output: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self { max_output: 1 << 20 }
    }
}

/// minijinja instructions one render may execute: far above any real prompt, far below
/// what would hold a worker for long.
pub const FUEL: u64 = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TemplateError {
    /// The template does not parse. `location` names the part of a chat prompt
    /// (`messages[1]`); `line` and `column` count from 1 within it.
    #[error("template syntax error{} at line {line}, column {column}: {message}", location.as_deref().map(|l| format!(" in {l}")).unwrap_or_default())]
    Syntax { message: String, line: u32, column: u32, location: Option<String> },
    /// The variables given do not match the variables the template uses.
    #[error("{}", variables_message(missing, unknown))]
    Variables { missing: Vec<String>, unknown: Vec<String> },
    /// The template ran past its fuel or output limit.
    #[error("the template did too much work while rendering ({0}); simplify loops or shorten the output")]
    TooExpensive(String),
    /// Any other failure while rendering (a filter applied to the wrong kind of value...).
    #[error("the template could not be rendered: {0}")]
    Render(String),
}

fn variables_message(missing: &[String], unknown: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing variables: {}", missing.join(", ")));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown variables (the template does not use them): {}", unknown.join(", ")));
    }
    parts.join("; ")
}

/// Names minijinja resolves itself and that are therefore never variables of a prompt.
const GLOBALS: &[&str] =
    &["range", "dict", "namespace", "debug", "loop", "self", "super", "caller", "varargs", "kwargs"];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are plain text, not HTML: never escape.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(FUEL));
        env
    })
}

fn position(source: &str, err: &minijinja::Error) -> (u32, u32) {
    let line = err.line().unwrap_or(1) as u32;
    let column = match err.range() {
        Some(range) => {
            let start = range.start.min(source.len());
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            source[line_start..start].chars().count() as u32 + 1
        }
        None => 1,
    };
    (line, column)
}

fn syntax_error(source: &str, err: &minijinja::Error, location: Option<&str>) -> TemplateError {
    let (line, column) = position(source, err);
    TemplateError::Syntax {
        message: err.detail().map(str::to_owned).unwrap_or_else(|| err.kind().to_string()),
        line,
        column,
        location: location.map(str::to_owned),
    }
}

/// Parses `source` and returns the variables it reads from outside, sorted.
/// `location` names the template inside a chat prompt for error messages.
pub fn variables(source: &str, location: Option<&str>) -> Result<BTreeSet<String>, TemplateError> {
    let template = environment().template_from_str(source).map_err(|e| syntax_error(source, &e, location))?;
    Ok(template.undeclared_variables(false).into_iter().filter(|name| !GLOBALS.contains(&name.as_str())).collect())
}

/// Checks the supplied variable names against the ones a template uses.
pub fn check_variables<'a>(
    used: &BTreeSet<String>,
    supplied: impl IntoIterator<Item = &'a String>,
    allow_unknown: bool,
) -> Result<(), TemplateError> {
    let supplied: BTreeSet<&String> = supplied.into_iter().collect();
    let missing: Vec<String> = used.iter().filter(|v| !supplied.contains(v)).cloned().collect();
    let unknown: Vec<String> = if allow_unknown {
        Vec::new()
    } else {
        supplied.iter().filter(|v| !used.contains(v.as_str())).map(|v| v.to_string()).collect()
    };
    if missing.is_empty() && unknown.is_empty() { Ok(()) } else { Err(TemplateError::Variables { missing, unknown }) }
}

/// A writer that refuses to grow past a cap, so output size is bounded while rendering,
/// not after.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.overflowed = true;
            return Err(io::Error::other("output cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders one template with `vars`. Variable strictness is checked by the caller
/// (`check_variables`) over the whole prompt first; this renders what it is given.
pub fn render(
    source: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    limits: RenderLimits,
    location: Option<&str>,
) -> Result<String, TemplateError> {
    render_in(environment(), source, vars, limits, location)
}

/// Renders like [`render`], serving each `{% include "name@ref" %}` from `sources`
/// (the stored text of every prompt the template includes, by `name@ref`) through
/// minijinja's loader.
pub fn render_with(
    source: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    limits: RenderLimits,
    location: Option<&str>,
    sources: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    if sources.is_empty() {
        return render(source, vars, limits, location);
    }
    let mut env = environment().clone();
    let sources = sources.clone();
    env.set_loader(move |name| Ok(sources.get(name).cloned()));
    render_in(&env, source, vars, limits, location)
}

/// Line and column (from 1) of a byte offset in `source`.
pub fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() as u32 + 1)
}

fn render_in(
    env: &Environment<'_>,
    source: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    limits: RenderLimits,
    location: Option<&str>,
) -> Result<String, TemplateError> {
    let template = env.template_from_str(source).map_err(|e| syntax_error(source, &e, location))?;
    let mut out = Capped { buf: Vec::new(), cap: limits.max_output, overflowed: false };
    let ctx = minijinja::Value::from_serialize(vars);
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => {}
        Err(_) if out.overflowed => {
            return Err(TemplateError::TooExpensive(format!("output over {} bytes", limits.max_output)));
        }
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::OutOfFuel => TemplateError::TooExpensive("out of fuel".into()),
                ErrorKind::SyntaxError => syntax_error(source, &e, location),
                _ => {
                    let where_ = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                    TemplateError::Render(format!("{}{where_}", e.detail().unwrap_or(&e.kind().to_string())))
                }
            });
        }
    }
    String::from_utf8(out.buf).map_err(|_| TemplateError::Render("output is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_variables_but_not_locals_or_globals() {
        let src = "{% set greeting = 'Hi' %}{{ greeting }} {{ customer.name|upper }}\
                   {% for item in items %}{{ item }}{{ loop.index }}{% endfor %}\
                   {% for i in range(2) %}{{ i }}{% endfor %}{% if vip %}!{% endif %}";
        assert_eq!(variables(src, None).unwrap(), set(&["customer", "items", "vip"]));
    }

    #[test]
    fn renders_conditionals_loops_and_filters() {
        let src = "Hello {{ customer|title }}{% if vip %}, valued guest{% endif %}:\
                   {% for o in orders %} #{{ o }}{% endfor %}";
        let out = render(
            src,
            &vars(json!({"customer": "ada lovelace", "vip": true, "orders": [1, 2]})),
            RenderLimits::default(),
            None,
        )
        .unwrap();
        assert_eq!(out, "Hello Ada Lovelace, valued guest: #1 #2");
    }

    #[test]
    fn does_not_escape_html() {
        let out = render("{{ x }}", &vars(json!({"x": "<b>&</b>"})), RenderLimits::default(), None).unwrap();
        assert_eq!(out, "<b>&</b>");
    }

    #[test]
    fn strict_variables_name_missing_and_unknown() {
        let used = set(&["a", "b"]);
        let supplied = [String::from("b"), String::from("c")];
        assert_eq!(
            check_variables(&used, &supplied, false),
            Err(TemplateError::Variables { missing: vec!["a".into()], unknown: vec!["c".into()] })
        );
        assert_eq!(
            check_variables(&used, &supplied, true),
            Err(TemplateError::Variables { missing: vec!["a".into()], unknown: vec![] })
        );
        let all = [String::from("a"), String::from("b")];
        assert_eq!(check_variables(&used, &all, false), Ok(()));
    }

    #[test]
    fn a_missing_nested_value_is_an_error_not_an_empty_string() {
        let err =
            render("{{ customer.name }}", &vars(json!({"customer": {}})), RenderLimits::default(), None).unwrap_err();
        assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = variables("line one\nHello {{ name }\n", Some("messages[1]")).unwrap_err();
        match err {
            TemplateError::Syntax { line, column, location, .. } => {
                assert_eq!(line, 2);
                assert!((7..=15).contains(&column), "column {column}");
                assert_eq!(location.as_deref(), Some("messages[1]"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(variables("{% if x %}open", None), Err(TemplateError::Syntax { .. })));
        assert!(matches!(variables("{% endfor %}", None), Err(TemplateError::Syntax { .. })));
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let src = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let err = render(src, &Map::new(), RenderLimits::default(), None).unwrap_err();
        assert!(matches!(err, TemplateError::TooExpensive(_)), "{err:?}");
    }

    #[test]
    fn output_is_capped() {
        let limits = RenderLimits { max_output: 1000 };
        let err = render("{% for i in range(5000) %}{{ s }}{% endfor %}", &vars(json!({"s": "abc"})), limits, None)
            .unwrap_err();
        assert!(matches!(err, TemplateError::TooExpensive(_)), "{err:?}");
    }

    #[test]
    fn string_repetition_cannot_exhaust_memory() {
        let limits = RenderLimits::default();
        let result = render("{{ 'x' * 100000000000 }}", &Map::new(), limits, None);
        assert!(result.is_err(), "{:?}", result.map(|s| s.len()));
    }
}
