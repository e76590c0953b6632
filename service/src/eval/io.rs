//! Cases as CSV and JSONL files, promptfoo-style.
//!
//! CSV: one case per row. A column named `__description` is the case's description;
//! columns named `__expected`, `__expected1`, `__expected2`... hold one assertion each,
//! written `type: value`, `type(threshold): value` or `type` alone (`not-` works;
//! `grade` is `llm-rubric`); `latency: 2000` and `cost: 0.01` set the threshold; a cell
//! that names no known type is an `equals` of its whole text. A value that is a JSON
//! array or object is read as JSON (lists for `contains-any`, schemas). Every other
//! column is a variable, its cell the value (text). Assertions CSV cannot write (weights,
//! `word-count` bounds, a judge's `provider`) need JSONL.
//!
//! A cell that starts with `=`, `+`, `-`, `@`, a tab or CR is written with a leading `'`,
//! so a spreadsheet shows it as text instead of running it as a formula; reading removes
//! that `'` again, so a file survives the round trip.
//!
//! JSONL: one case per line, as JSON: `{"description", "vars", "assert"}`.

use domain::eval::{Assertion, Case};
use serde_json::{Map, Value};

use super::assertions;
use crate::{Result, ServiceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(ServiceError::BadRequest(format!("format must be csv or jsonl (got '{other}')"))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

fn invalid(message: String) -> ServiceError {
    ServiceError::rule("invalid_import", message)
}

pub fn read(format: Format, text: &str) -> Result<Vec<Case>> {
    match format {
        Format::Csv => from_csv(text),
        Format::Jsonl => from_jsonl(text),
    }
}

pub fn write(format: Format, cases: &[Case]) -> Result<String> {
    match format {
        Format::Csv => to_csv(cases),
        Format::Jsonl => Ok(to_jsonl(cases)),
    }
}

fn from_jsonl(text: &str) -> Result<Vec<Case>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Case>(line).map_err(|e| {
                invalid(format!(
                    "line {}: not a case ({e}); each line is {{\"description\", \"vars\", \"assert\"}}",
                    i + 1
                ))
            })
        })
        .collect()
}

fn to_jsonl(cases: &[Case]) -> String {
    cases.iter().filter_map(|c| serde_json::to_string(c).ok()).map(|line| line + "\n").collect()
}

fn is_expected(column: &str) -> bool {
    column.strip_prefix("__expected").is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
}

fn from_csv(text: &str) -> Result<Vec<Case>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| invalid(format!("the header row cannot be read: {e}")))?.clone();
    let mut cases = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.map_err(|e| invalid(format!("row {row}: {e}")))?;
        let mut case = Case { description: String::new(), vars: Map::new(), asserts: Vec::new() };
        for (column, cell) in headers.iter().zip(record.iter().map(unquote_formula)) {
            if column == "__description" {
                case.description = cell.to_owned();
            } else if is_expected(column) {
                if !cell.trim().is_empty() {
                    case.asserts.push(parse_expected(cell).map_err(|e| invalid(format!("row {row}, {column}: {e}")))?);
                }
            } else if column.starts_with("__") {
                return Err(invalid(format!(
                    "column '{column}' is not known: use __description, __expected (or __expected1, __expected2...), or a variable name"
                )));
            } else {
                case.vars.insert(column.to_owned(), Value::String(cell.to_owned()));
            }
        }
        cases.push(case);
    }
    Ok(cases)
}

/// `type`, `type: value` or `type(threshold): value`; anything else is `equals`.
fn parse_expected(cell: &str) -> std::result::Result<Assertion, String> {
    let equals = || Assertion {
        kind: "equals".into(),
        value: Some(Value::String(cell.to_owned())),
        weight: None,
        threshold: None,
        min: None,
        max: None,
        provider: None,
    };
    let (head, value) = match cell.split_once(':') {
        Some((head, value)) => (head.trim(), Some(value.trim())),
        None => (cell.trim(), None),
    };
    let (name, threshold) = match head.split_once('(') {
        Some((name, rest)) => {
            let t = rest.strip_suffix(')').and_then(|t| t.trim().parse::<f64>().ok());
            match t {
                Some(t) => (name.trim(), Some(t)),
                None => return Ok(equals()),
            }
        }
        None => (head, None),
    };
    let kind = match name {
        "grade" => "llm-rubric".to_owned(),
        "not-grade" => "not-llm-rubric".to_owned(),
        other => other.to_owned(),
    };
    if !assertions::is_known_type(&kind) {
        return Ok(equals());
    }
    let plain = kind.trim_start_matches("not-");
    let mut a = Assertion { kind: kind.clone(), threshold, ..equals() };
    a.value = None;
    match (plain, value) {
        ("latency" | "cost", Some(v)) => {
            a.threshold = Some(v.parse::<f64>().map_err(|_| format!("{kind} needs a number, like {kind}: 2000"))?);
        }
        (_, Some(v)) => {
            let json = serde_json::from_str::<Value>(v).ok().filter(|j| j.is_array() || j.is_object());
            a.value = Some(json.unwrap_or_else(|| Value::String(v.to_owned())));
        }
        (_, None) => {}
    }
    Ok(a)
}

fn to_csv(cases: &[Case]) -> Result<String> {
    let mut vars: Vec<&String> = cases.iter().flat_map(|c| c.vars.keys()).collect();
    vars.sort();
    vars.dedup();
    let expected = cases.iter().map(|c| c.asserts.len()).max().unwrap_or(0);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["__description".into()];
    header.extend(vars.iter().map(|v| v.to_string()));
    header.extend((1..=expected).map(|i| format!("__expected{i}")));
    writer.write_record(&header).map_err(ServiceError::internal)?;
    for (i, case) in cases.iter().enumerate() {
        let mut row = vec![case.description.clone()];
        for v in &vars {
            row.push(match case.vars.get(v.as_str()) {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            });
        }
        for a in &case.asserts {
            row.push(shorthand(a).ok_or_else(|| {
                ServiceError::rule(
                    "invalid_import",
                    format!(
                        "case {} has a {} assertion that CSV cannot hold (weight, bounds or provider): export JSONL",
                        i + 1,
                        a.kind
                    ),
                )
            })?);
        }
        row.resize(header.len(), String::new());
        writer.write_record(row.iter().map(|c| quote_formula(c))).map_err(ServiceError::internal)?;
    }
    String::from_utf8(writer.into_inner().map_err(ServiceError::internal)?).map_err(ServiceError::internal)
}

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn quote_formula(cell: &str) -> String {
    if cell.starts_with(FORMULA_STARTS) { format!("'{cell}") } else { cell.to_owned() }
}

fn unquote_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

fn shorthand(a: &Assertion) -> Option<String> {
    if a.weight.is_some() || a.min.is_some() || a.max.is_some() || a.provider.is_some() {
        return None;
    }
    let plain = a.kind.trim_start_matches("not-");
    if matches!(plain, "latency" | "cost") {
        return Some(format!("{}: {}", a.kind, a.threshold?));
    }
    let head = match a.threshold {
        Some(t) => format!("{}({t})", a.kind),
        None => a.kind.clone(),
    };
    Some(match &a.value {
        None => head,
        Some(Value::String(s)) => format!("{head}: {s}"),
        Some(other) => format!("{head}: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_variables_descriptions_and_assertions() {
        let text = "__description,customer,__expected1,__expected2,__expected3\n\
                    greets,Ada,icontains: ada,\"not-contains: sorry\",latency: 2000\n\
                    json,Bob,\"contains-any: [\"\"hi\"\",\"\"hello\"\"]\",similar(0.8): Hello Bob,Hello Bob!\n";
        let cases = read(Format::Csv, text).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].description, "greets");
        assert_eq!(cases[0].vars["customer"], "Ada");
        assert_eq!(cases[0].asserts[0].kind, "icontains");
        assert_eq!(cases[0].asserts[0].value, Some(Value::String("ada".into())));
        assert_eq!(cases[0].asserts[1].kind, "not-contains");
        assert_eq!((cases[0].asserts[2].kind.as_str(), cases[0].asserts[2].threshold), ("latency", Some(2000.0)));
        assert_eq!(cases[1].asserts[0].value, Some(serde_json::json!(["hi", "hello"])));
        assert_eq!((cases[1].asserts[1].kind.as_str(), cases[1].asserts[1].threshold), ("similar", Some(0.8)));
        assert_eq!(cases[1].asserts[2].kind, "equals", "no known type: equals of the whole cell");
        assert_eq!(cases[1].asserts[2].value, Some(Value::String("Hello Bob!".into())));
    }

    #[test]
    fn csv_and_jsonl_round_trip() {
        let text =
            "__description,m,__expected1,__expected2\none,x,icontains: a,\n two,\"y, z\",is-json,not-regex(1): ^a\n";
        let cases = read(Format::Csv, text).unwrap();
        let again = read(Format::Csv, &write(Format::Csv, &cases).unwrap()).unwrap();
        assert_eq!(cases, again);
        assert_eq!(read(Format::Jsonl, &write(Format::Jsonl, &cases).unwrap()).unwrap(), cases);
    }

    #[test]
    fn formulas_are_quoted_on_the_way_out_and_unquoted_on_the_way_in() {
        let cases: Vec<Case> = serde_json::from_value(serde_json::json!([
            {"description": "=HYPERLINK(\"http://x\")", "vars": {"n": "-5"}, "assert": [{"type": "equals", "value": "@me"}]}
        ]))
        .unwrap();
        let text = write(Format::Csv, &cases).unwrap();
        assert!(text.contains("'=HYPERLINK") && text.contains("'-5"), "{text}");
        assert_eq!(read(Format::Csv, &text).unwrap(), cases);
    }

    #[test]
    fn bad_files_name_the_row() {
        let e = read(Format::Csv, "m,__expected\nx,latency: soon\n").unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("latency"), "{e}");
        let e = read(Format::Csv, "m,__weird\nx,y\n").unwrap_err().to_string();
        assert!(e.contains("__weird"), "{e}");
        let e = read(Format::Csv, "a,b\n1\n").unwrap_err().to_string();
        assert!(e.contains("row 2"), "{e}");
        let e = read(Format::Jsonl, "{\"vars\": {}}\n{nope}\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let weighted: Vec<Case> =
            serde_json::from_value(serde_json::json!([{"assert": [{"type": "contains", "value": "a", "weight": 2}]}]))
                .unwrap();
        assert!(write(Format::Csv, &weighted).unwrap_err().to_string().contains("JSONL"));
    }
}
