//! The policy files of the configured directory ([`policy_files`]): `*.toml` files whose top
//! level has `name` and `rules` (module docs of [`super`]).

use std::path::{Path, PathBuf};

use super::RegistryError;

/// The policy files of `dir`, sorted by path, with their text.
pub(super) fn policy_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, RegistryError> {
    let io = |source| RegistryError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_policy_file_name(p))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path).map_err(|source| RegistryError::Io {
            path: path.clone(),
            source,
        })?;
        if looks_like_policy(&source) {
            out.push((path, source));
        }
    }
    Ok(out)
}

fn is_policy_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    path.is_file()
        && name.ends_with(".toml")
        && !name.ends_with(".cases.toml")
        && !name.ends_with(".suite.toml")
}

/// A policy file has top-level `name` and `rules`; suites and other TOML files do not.
fn looks_like_policy(source: &str) -> bool {
    match toml::from_str::<toml::Table>(source) {
        Ok(t) => t.contains_key("name") && t.contains_key("rules"),
        // Let the compiler report the located syntax error.
        Err(_) => true,
    }
}
