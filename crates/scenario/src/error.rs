//! Typed errors of the simulator. Every variant names the place (file and line, or TOML key path)
//! and the reason, so that a user can fix the input without reading code.

use std::path::PathBuf;

/// A problem in a CSV file (profile or price series), with its 1-based line number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct CsvError {
    pub file: String,
    /// 1-based line number in the file (the header is line 1); 0 when the file as a whole is at fault.
    pub line: u64,
    pub reason: String,
}

impl CsvError {
    pub fn new(file: &str, line: u64, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            reason: reason.into(),
        }
    }
}

/// A problem in the site TOML: the key path (e.g. `tariff.periods[1].start`) and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Everything that can stop a simulation before or while it runs.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A TOML syntax or schema error; `toml` puts the line, column and key in its message.
    #[error("{file}: {message}")]
    Toml { file: String, message: String },
    /// A file named by the site (or the site itself) cannot be read. The OS error is part of the
    /// message, not a separate source, so that it is printed once.
    #[error("cannot read {}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file larger than its bound (issue 13 item 7: `/dev/zero` as a site grew without bound).
    #[error("{}: larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    /// `--example NAME` names no built-in site.
    #[error("no built-in example site is called {name:?}; there are: {known}")]
    UnknownExample { name: String, known: String },
    /// The gateway controller refused the site or its settings (messages name the field).
    #[error("{file}: {message}")]
    Controller { file: String, message: String },
}
