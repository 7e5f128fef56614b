//! Finds the line of an option in the config text, so errors found after parsing (checks and
//! interpolation) can point at the line like parse errors do.

/// An option's place: its table (`""` for the top level, `kafka`, `kafka.producer`), which
/// `[[table]]` entry for arrays of tables, and its key (`None` for the table header itself).
pub(crate) struct OptionPath<'a> {
    pub table: &'a str,
    pub index: Option<usize>,
    pub key: Option<&'a str>,
}

/// The 1-based line of the option, if it is written in the text (it may be a default).
pub(crate) fn line_of(text: &str, path: &OptionPath<'_>) -> Option<usize> {
    let mut table = String::new();
    let mut array_index: Option<usize> = None;
    let mut seen_entries = 0usize;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("[[")
            .and_then(|rest| rest.split("]]").next())
        {
            table = name.trim().to_owned();
            if table == path.table {
                array_index = Some(seen_entries);
                seen_entries += 1;
            } else {
                array_index = None;
            }
        } else if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.split(']').next())
        {
            table = name.trim().to_owned();
            array_index = None;
        } else {
            if table != path.table || array_index != path.index {
                continue;
            }
            if let Some(key) = path.key {
                if let Some(rest) = line.strip_prefix(key) {
                    if rest.trim_start().starts_with('=') {
                        return Some(number + 1);
                    }
                }
            }
            continue;
        }
        if path.key.is_none() && table == path.table && array_index == path.index {
            return Some(number + 1);
        }
    }
    None
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "slots = [\"track:0\"]\n\n[kafka]\ntopic = \"t\"\n\n[[keys]]\nname = \"a\"\n\n[[keys]]\nname = \"b\"\nconsumer_key = \"x\"\n";

    fn at(table: &str, index: Option<usize>, key: Option<&str>) -> Option<usize> {
        line_of(TEXT, &OptionPath { table, index, key })
    }

    #[test]
    fn finds_plain_options_and_headers() {
        assert_eq!(at("", None, Some("slots")), Some(1));
        assert_eq!(at("kafka", None, Some("topic")), Some(4));
        assert_eq!(at("kafka", None, None), Some(3));
        assert_eq!(at("kafka", None, Some("compression")), None);
    }

    #[test]
    fn tells_entries_of_an_array_of_tables_apart() {
        assert_eq!(at("keys", Some(0), Some("name")), Some(7));
        assert_eq!(at("keys", Some(1), Some("name")), Some(10));
        assert_eq!(at("keys", Some(1), None), Some(9));
        assert_eq!(at("keys", Some(1), Some("consumer_key")), Some(11));
    }

    #[test]
    fn counts_lines_from_one() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 99), 3);
    }
}
