//! CSV of rule hashes: a header row naming the fields, then one rule per record (RFC 4180:
//! comma-separated, `"quoted"` cells with `""` for a quote, line breaks allowed inside quotes).
//!
//! A CSV cannot tell an empty field from a missing one, so empty cells are left out of the
//! hash: rules in one file may have different fields.

use std::fmt::Write;

/// One data record: the line it starts on (the header is line 1) and its fields, empty cells
/// left out, in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    pub line: usize,
    pub fields: Vec<(String, String)>,
}

/// A record that could not be read, by the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

/// Reads a whole CSV document. Returns the records that could be read and an error for each
/// that could not; an unusable header is one error for the whole file (`Err`).
pub fn parse(text: &str) -> Result<(Vec<CsvRecord>, Vec<CsvError>), CsvError> {
    let mut rows = split_rows(text.strip_prefix('\u{feff}').unwrap_or(text));
    if rows.is_empty() {
        return Err(CsvError {
            line: 1,
            message:
                "the file is empty; expected a header row naming the fields (rule_id,value,...)"
                    .into(),
        });
    }
    let header_row = rows.remove(0);
    let header = header_row.cells.map_err(|message| CsvError {
        line: header_row.line,
        message,
    })?;
    let header: Vec<String> = header
        .into_iter()
        .map(|name| name.trim().to_owned())
        .collect();
    if let Some(blank) = header.iter().position(String::is_empty) {
        return Err(CsvError {
            line: header_row.line,
            message: format!(
                "column {} of the header has no name; every column needs a field name",
                blank + 1
            ),
        });
    }
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(CsvError {
                line: header_row.line,
                message: format!("the header names the field {name:?} twice"),
            });
        }
    }

    let mut records = Vec::new();
    let mut errors = Vec::new();
    for row in rows {
        let cells = match row.cells {
            Ok(cells) => cells,
            Err(message) => {
                errors.push(CsvError {
                    line: row.line,
                    message,
                });
                continue;
            }
        };
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if cells.len() > header.len() {
            errors.push(CsvError {
                line: row.line,
                message: format!(
                    "{} cells but the header names {} fields; quote values that contain commas",
                    cells.len(),
                    header.len()
                ),
            });
            continue;
        }
        let fields = header
            .iter()
            .zip(cells)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.clone(), value))
            .collect();
        records.push(CsvRecord {
            line: row.line,
            fields,
        });
    }
    Ok((records, errors))
}

/// One row of cells and the line it starts on, or why it could not be split.
struct Row {
    line: usize,
    cells: Result<Vec<String>, String>,
}

/// Splits a document into rows of cells, honouring quotes; a row with an unterminated quote
/// swallows the rest of the document and is reported.
fn split_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start_line = line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut quoted = false; // inside a quoted cell
        let mut error = None;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    error = Some("a quoted value is not closed; check for a missing \"".to_owned());
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        cell.push(c);
                    }
                    _ => cell.push(c),
                }
                continue;
            }
            match c {
                '"' if cell.is_empty() => quoted = true,
                ',' => cells.push(std::mem::take(&mut cell)),
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => cell.push(c),
            }
        }
        cells.push(cell);
        rows.push(Row {
            line: start_line,
            cells: error.map_or(Ok(cells), Err),
        });
    }
    rows
}

/// Writes a header and rows; cells are quoted only when they must be.
pub fn write(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    write_row(&mut out, header);
    for row in rows {
        write_row(&mut out, row);
    }
    out
}

fn write_row(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let needs_quotes =
            cell.contains([',', '"', '\n', '\r']) || cell.starts_with(' ') || cell.ends_with(' ');
        if needs_quotes {
            let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(record: &CsvRecord) -> Vec<(&str, &str)> {
        record
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn reads_quotes_commas_line_breaks_and_leaves_out_empty_cells() {
        let text = "rule_id,value,tag\r\n1,happy,\n2,\"a \"\"quoted\"\", value\",t\n3,\"two\nlines\",x\n4,after,y\n";
        let (records, errors) = parse(text).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pairs(&records[0]), [("rule_id", "1"), ("value", "happy")]);
        assert_eq!(
            pairs(&records[1]),
            [
                ("rule_id", "2"),
                ("value", "a \"quoted\", value"),
                ("tag", "t")
            ]
        );
        assert_eq!(
            pairs(&records[2]),
            [("rule_id", "3"), ("value", "two\nlines"), ("tag", "x")]
        );
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(
            lines,
            [2, 3, 4, 6],
            "a record is known by the line it starts on"
        );
    }

    #[test]
    fn a_bad_record_is_reported_by_line_and_the_others_are_kept() {
        let (records, errors) = parse("rule_id,value\n1,a\n2,b,extra\n\n3,c\n4,\"open").unwrap();
        assert_eq!(records.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, 3);
        assert!(
            errors[0].message.contains("3 cells but the header names 2"),
            "{errors:?}"
        );
        assert_eq!(errors[1].line, 6);
        assert!(errors[1].message.contains("not closed"), "{errors:?}");
    }

    #[test]
    fn an_unusable_header_fails_the_whole_file() {
        assert!(parse("").unwrap_err().message.contains("header"));
        assert!(parse("rule_id,,value\n")
            .unwrap_err()
            .message
            .contains("column 2"));
        assert!(parse("value,value\n")
            .unwrap_err()
            .message
            .contains("twice"));
    }

    #[test]
    fn written_csv_reads_back_the_same() {
        let header: Vec<String> = ["rule_id", "value", "description"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            vec!["1".to_owned(), "plain".to_owned(), "has, comma".to_owned()],
            vec![
                "2".to_owned(),
                " padded ".to_owned(),
                "quote \" and\nbreak".to_owned(),
            ],
        ];
        let text = write(&header, &rows);
        let (records, errors) = parse(&text).unwrap();
        assert!(errors.is_empty());
        for (record, row) in records.iter().zip(&rows) {
            let values: Vec<&str> = record.fields.iter().map(|(_, v)| v.as_str()).collect();
            assert_eq!(values, row.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
