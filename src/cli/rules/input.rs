//! Reading rule files for `traptor rules import`: JSON lines (one rule hash per line, as the
//! original's `rule_extract.py jsonfile` read them) or CSV with a header row.

use std::path::Path;

use traptor_core::rules::fields_from_json;

use super::csv;

/// The two file formats of import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, fields as in the Redis hash.
    Jsonl,
    /// A header row naming the fields, then one rule per row.
    Csv,
}

impl Format {
    /// The explicit choice, else `csv` for a `.csv` file, else `jsonl`.
    pub fn for_path(explicit: Option<Format>, path: &Path) -> Format {
        explicit.unwrap_or_else(|| {
            let is_csv = path
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
            if is_csv {
                Format::Csv
            } else {
                Format::Jsonl
            }
        })
    }
}

/// One rule read from a file, by the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRule {
    pub line: usize,
    pub fields: Vec<(String, String)>,
}

/// A line that yields no rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Reads every rule of a document; bad lines become errors, the rest are kept. `Err` when the
/// file as a whole is unusable (a CSV without a usable header).
pub fn read(text: &str, format: Format) -> Result<(Vec<InputRule>, Vec<LineError>), LineError> {
    match format {
        Format::Jsonl => Ok(read_jsonl(text)),
        Format::Csv => {
            let (records, errors) = csv::parse(text).map_err(|e| LineError {
                line: e.line,
                message: e.message,
            })?;
            Ok((
                records
                    .into_iter()
                    .map(|r| InputRule {
                        line: r.line,
                        fields: r.fields,
                    })
                    .collect(),
                errors
                    .into_iter()
                    .map(|e| LineError {
                        line: e.line,
                        message: e.message,
                    })
                    .collect(),
            ))
        }
    }
}

fn read_jsonl(text: &str) -> (Vec<InputRule>, Vec<LineError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| format!("not valid JSON ({e}); each line must be one rule object"))
            .and_then(|value| fields_from_json(&value).map_err(|problem| problem.to_string()));
        match parsed {
            Ok(fields) => rules.push(InputRule {
                line: line_number,
                fields,
            }),
            Err(message) => errors.push(LineError {
                line: line_number,
                message,
            }),
        }
    }
    (rules, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_become_string_fields_and_bad_lines_are_numbered() {
        let text = "{\"rule_id\": 12347, \"value\": \"happy\"}\n\n{oops\n[1]\n{\"rule_id\": \"2\", \"value\": \"x\"}\n";
        let (rules, errors) = read(text, Format::Jsonl).unwrap();
        assert_eq!(rules.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 5]);
        assert_eq!(
            rules[0].fields[0],
            ("rule_id".to_owned(), "12347".to_owned())
        );
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
        assert!(errors[0].message.contains("not valid JSON"), "{errors:?}");
        assert!(errors[1].message.contains("object"), "{errors:?}");
    }

    #[test]
    fn the_format_follows_the_extension_unless_given() {
        assert_eq!(Format::for_path(None, Path::new("rules.CSV")), Format::Csv);
        assert_eq!(
            Format::for_path(None, Path::new("rules.jsonl")),
            Format::Jsonl
        );
        assert_eq!(
            Format::for_path(Some(Format::Csv), Path::new("rules.json")),
            Format::Csv
        );
    }
}
