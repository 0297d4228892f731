//! Streaming `records.jsonl` (spec `evidence-package.md` §5).

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::canonical::parse_canonical;
use super::source::DigestCheck;
use super::PackageError;

/// Path of the records file.
pub(super) const RECORDS: &str = "records.jsonl";
/// Longest line accepted (a record is bounded by the server's request-body limit).
pub const MAX_RECORD_LINE: u64 = 4 << 20;

/// One line: the log index and the private record (`None` for a policy statement).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordLine {
    /// Log index.
    pub index: u64,
    /// The private record as the server serves it, or `None`.
    pub record: Option<Value>,
}

/// Iterator of [`super::Package::records`]: one [`RecordLine`] per index of `[start, end)`, in
/// order. Each line must be canonical JSON `{"index":i,"record":R}` ending in `\n`; after the
/// last line the file must end, and its size and SHA-256 must match the manifest. The first
/// error ends the iteration.
pub struct Records<'a> {
    reader: BufReader<Box<dyn Read + 'a>>,
    check: Option<DigestCheck>,
    next: u64,
    end: u64,
    line: Vec<u8>,
}

impl<'a> Records<'a> {
    pub(super) fn new(
        reader: Box<dyn Read + 'a>,
        check: DigestCheck,
        start: u64,
        end: u64,
    ) -> Self {
        Records {
            reader: BufReader::new(reader),
            check: Some(check),
            next: start,
            end,
            line: Vec::new(),
        }
    }

    fn fail(
        &mut self,
        line: u64,
        reason: impl Into<String>,
    ) -> Option<Result<RecordLine, PackageError>> {
        self.check = None;
        Some(Err(PackageError::Format {
            path: RECORDS.to_owned(),
            reason: format!("line for index {line}: {}", reason.into()),
        }))
    }

    fn read_line(&mut self) -> Result<usize, String> {
        self.line.clear();
        let mut limited = (&mut self.reader).take(MAX_RECORD_LINE + 1);
        let n = limited
            .read_until(b'\n', &mut self.line)
            .map_err(|e| format!("read error: {e}"))?;
        if n as u64 > MAX_RECORD_LINE {
            return Err(format!("longer than {MAX_RECORD_LINE} bytes"));
        }
        if let Some(c) = self.check.as_mut() {
            c.update(&self.line);
        }
        Ok(n)
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RecordLine, PackageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.check.as_ref()?;
        let index = self.next;
        let n = match self.read_line() {
            Ok(n) => n,
            Err(reason) => return self.fail(index, reason),
        };
        if index >= self.end {
            if n != 0 {
                return self.fail(index, "a line after the last index of the period");
            }
            // End of file: the digest decides.
            return self.check.take().and_then(|c| c.finish().err()).map(Err);
        }
        if n == 0 {
            return self.fail(index, "missing (file ends early)");
        }
        let Some(body) = self.line.strip_suffix(b"\n") else {
            return self.fail(index, "no newline at the end of the line");
        };
        let value = match parse_canonical(body) {
            Ok(v) => v,
            Err(reason) => return self.fail(index, reason),
        };
        let Value::Object(map) = value else {
            return self.fail(index, "not a JSON object");
        };
        if map.len() != 2 {
            return self.fail(index, "fields other than index and record");
        }
        if map.get("index").and_then(Value::as_u64) != Some(index) {
            return self.fail(index, "index is not the next index of the period");
        }
        let record = match map.get("record") {
            Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            _ => return self.fail(index, "record is neither an object nor null"),
        };
        self.next += 1;
        Some(Ok(RecordLine { index, record }))
    }
}

impl std::fmt::Debug for Records<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("next", &self.next)
            .field("end", &self.end)
            .field("path", &self.check.as_ref().map(DigestCheck::path))
            .finish()
    }
}
