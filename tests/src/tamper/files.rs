//! Reading and writing the suite's files (`cases.tsv`, `valid.proof`, `tampered/`).

use std::path::Path;

use anyhow::{anyhow, Result};

use super::{Case, ACTION, GENERATED};

/// Write the suite: `valid.proof`, `tampered/*.proof`, `action*.json` and `cases.tsv`.
///
/// # Errors
/// I/O errors.
pub fn write_suite(dir: &Path, cases: &[Case]) -> Result<()> {
    let tampered = dir.join("tampered");
    if tampered.exists() {
        std::fs::remove_dir_all(&tampered)?;
    }
    std::fs::create_dir_all(&tampered)?;
    std::fs::write(dir.join("action.json"), ACTION)?;
    std::fs::write(
        dir.join("action-other.json"),
        br#"{"amount":120, "vendor":"acme"}"#,
    )?;
    let mut tsv = format!(
        "# {GENERATED}\n# file\texit\texpected substring of the human output\textra args\n"
    );
    for c in cases {
        std::fs::write(dir.join(&c.file), &c.bytes)?;
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            c.file,
            c.exit,
            c.expect,
            c.args.join(" ")
        ));
    }
    std::fs::write(dir.join("cases.tsv"), tsv)?;
    Ok(())
}

/// One row of `cases.tsv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// File relative to the suite dir.
    pub file: String,
    /// Expected exit code.
    pub exit: u8,
    /// Expected substring.
    pub expect: String,
    /// Extra args.
    pub args: Vec<String>,
}

/// Read `cases.tsv`.
///
/// # Errors
/// I/O or format errors.
pub fn read_rows(dir: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(dir.join("cases.tsv"))?;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            match cols.as_slice() {
                [file, exit, expect, args] => Ok(Row {
                    file: (*file).to_owned(),
                    exit: exit.parse()?,
                    expect: (*expect).to_owned(),
                    args: args.split_whitespace().map(str::to_owned).collect(),
                }),
                _ => Err(anyhow!("bad cases.tsv line {l:?}")),
            }
        })
        .collect()
}
