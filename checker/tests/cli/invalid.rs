//! Every malformed policy gives exit 2 and its expected line:column, never a panic.

use serde::Deserialize;

use crate::{assert_no_panic, json, policies, run, stderr};

#[derive(Deserialize)]
struct Expected {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    line: usize,
    column: usize,
    message: String,
}

fn expected() -> Vec<Case> {
    let text = std::fs::read_to_string(policies().join("invalid/expected.toml")).unwrap();
    toml::from_str::<Expected>(&text).unwrap().case
}

#[test]
fn at_least_twenty_kinds_and_every_file_listed() {
    let cases = expected();
    assert!(cases.len() >= 20, "{}", cases.len());
    let listed: std::collections::BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    assert_eq!(listed.len(), cases.len(), "duplicate entries");
    for entry in std::fs::read_dir(policies().join("invalid")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && name != "expected.toml" {
            assert!(listed.contains(&name), "{name} has no expected location");
        }
    }
}

#[test]
fn each_is_located_with_exit_2() {
    let mut failures = Vec::new();
    for c in expected() {
        let path = policies().join("invalid").join(&c.file);
        let o = run(&["lint", path.to_str().unwrap()]);
        assert_no_panic(&o);
        let err = stderr(&o);
        let want = format!("{}:{}:{}:", path.display(), c.line, c.column);
        if o.status.code() != Some(2) {
            failures.push(format!("{}: exit {:?}", c.file, o.status.code()));
        } else if !err.contains(&want) {
            failures.push(format!(
                "{}: want {}:{}, got {}",
                c.file,
                c.line,
                c.column,
                err.lines().next().unwrap_or("")
            ));
        } else if !err.to_lowercase().contains(&c.message) {
            failures.push(format!(
                "{}: message lacks `{}`: {}",
                c.file,
                c.message,
                err.lines().next().unwrap_or("")
            ));
        } else if !err.contains('^') {
            failures.push(format!("{}: no caret line", c.file));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_errors_carry_the_location() {
    let c = &expected()[0];
    let path = policies().join("invalid").join(&c.file);
    let o = run(&["lint", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["line"], c.line);
    assert_eq!(v["column"], c.column);
}

#[test]
fn missing_file_and_binary_garbage_are_exit_2() {
    let o = run(&["lint", "/nonexistent/policy.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("garbage.toml");
    std::fs::write(&f, [0xff_u8, 0xfe, 0x00, 0x80, 0x41]).unwrap();
    let o = run(&["lint", f.to_str().unwrap()]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
}
