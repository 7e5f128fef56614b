//! The API keys: `[[keys]]` tables in the config, or a separate JSON keys file.

use std::path::Path;

use serde::Deserialize;
use traptor_core::oauth::Credentials;

/// One named API key. Each key carries at most one connection at a time, so the number of
/// keys bounds the number of streams. `Debug` shows the name and never the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub credentials: Credentials,
}

/// A key as written in the file, before `${VAR}` interpolation. Deliberately not `Debug`: its
/// fields may hold literal secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    pub name: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl RawKey {
    /// The key's fields by option name, in file order, for interpolation and checks.
    pub fn fields_mut(&mut self) -> [(&'static str, &mut String); 5] {
        [
            ("name", &mut self.name),
            ("consumer_key", &mut self.consumer_key),
            ("consumer_secret", &mut self.consumer_secret),
            ("access_token", &mut self.access_token),
            ("access_token_secret", &mut self.access_token_secret),
        ]
    }

    pub fn into_api_key(self) -> ApiKey {
        ApiKey {
            name: self.name,
            credentials: Credentials {
                consumer_key: self.consumer_key,
                consumer_secret: self.consumer_secret,
                access_token: self.access_token,
                access_token_secret: self.access_token_secret,
            },
        }
    }
}

/// A key in a JSON keys file. `name` is optional there (keys files made for the emulator may
/// carry none); unnamed keys are called `<file stem>-<n>`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    name: Option<String>,
    consumer_key: String,
    consumer_secret: String,
    access_token: String,
    access_token_secret: String,
}

/// Reads a keys file: a JSON array of objects with the four credential fields (and `name`).
/// The error is a complete sentence naming the file; it never quotes the file's content.
pub(crate) fn read_keys_file(path: &Path) -> Result<Vec<RawKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read keys file {}: {e}", path.display()))?;
    let keys: Vec<FileKey> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "keys file {} is not a JSON array of {{name, consumer_key, consumer_secret, \
             access_token, access_token_secret}} objects: line {}, column {}: {}",
            path.display(),
            e.line(),
            e.column(),
            // serde_json's messages about types and fields never include the values.
            e.to_string().split(" at line ").next().unwrap_or_default()
        )
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("key");
    Ok(keys
        .into_iter()
        .enumerate()
        .map(|(n, key)| RawKey {
            name: key.name.unwrap_or_else(|| format!("{stem}-{}", n + 1)),
            consumer_key: key.consumer_key,
            consumer_secret: key.consumer_secret,
            access_token: key.access_token,
            access_token_secret: key.access_token_secret,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_and_unnamed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.json");
        std::fs::write(
            &path,
            r#"[{"name":"a","consumer_key":"ck","consumer_secret":"cs","access_token":"at","access_token_secret":"ats"},
               {"consumer_key":"ck2","consumer_secret":"cs2","access_token":"at2","access_token_secret":"ats2"}]"#,
        )
        .unwrap();
        let keys = read_keys_file(&path).unwrap();
        let names: Vec<_> = keys.iter().map(|k| k.name.clone()).collect();
        assert_eq!(names, ["a", "pool-2"]);
        assert_eq!(
            keys[1]
                .clone()
                .into_api_key()
                .credentials
                .access_token_secret,
            "ats2"
        );
    }

    #[test]
    fn a_bad_keys_file_names_the_file_and_not_the_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, r#"[{"name":"a","consumer_key":"SECRETVALUE"}]"#).unwrap();
        let error = read_keys_file(&path).err().unwrap();
        assert!(error.contains("keys.json"), "{error}");
        assert!(error.contains("consumer_secret"), "{error}");
        assert!(!error.contains("SECRETVALUE"), "{error}");
    }
}
