//! Streaming CSV/TSV rows with named columns, for the importers. One bad row (wrong field count from
//! broken quoting, invalid UTF-8) becomes an error for that row only; reading goes on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use csv::{ByteRecord, StringRecord};

/// A data row whose fields are valid UTF-8 and whose field count matches the header.
pub struct Row {
    record: StringRecord,
}

impl Row {
    /// The trimmed value of column `i`, `None` when empty.
    pub fn at(&self, i: Option<usize>) -> Option<&str> {
        i.and_then(|i| self.record.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A CSV or TSV file (the delimiter is sniffed from the header line) read one record at a time.
pub struct CsvRows<R: Read> {
    reader: csv::Reader<BufReader<R>>,
    columns: HashMap<String, usize>,
    width: usize,
    row: u64,
    record: ByteRecord,
    done: bool,
}

/// A header name as matched: lower-case, trimmed, without a Merchant Center `g:` prefix or a BOM.
fn header_key(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_start_matches('\u{feff}').trim().to_lowercase();
    s.strip_prefix("g:").unwrap_or(&s).to_owned()
}

impl<R: Read> CsvRows<R> {
    pub fn new(inner: R) -> Result<Self, String> {
        let mut buffered = BufReader::with_capacity(256 * 1024, inner);
        let first_line = {
            let buf = buffered
                .fill_buf()
                .map_err(|e| format!("cannot read the file: {e}"))?;
            let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
            buf[..end].to_vec()
        };
        let tabs = first_line.iter().filter(|&&b| b == b'\t').count();
        let commas = first_line.iter().filter(|&&b| b == b',').count();
        let delimiter = if tabs > commas { b'\t' } else { b',' };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(buffered);
        let headers = reader
            .byte_headers()
            .map_err(|e| format!("cannot read the header: {e}"))?
            .clone();
        if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
            return Err("the file has no header row".into());
        }
        let columns: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .rev()
            .map(|(i, h)| (header_key(h), i))
            .collect();
        Ok(Self {
            reader,
            width: headers.len(),
            columns,
            row: 0,
            record: ByteRecord::new(),
            done: false,
        })
    }

    /// The index of a column by any of its names.
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.columns.get(*n).copied())
    }

    /// Fails naming the first missing column.
    pub fn require(&self, names: &[&str]) -> Result<(), String> {
        match names.iter().find(|n| !self.columns.contains_key(**n)) {
            Some(n) => Err(format!("the header has no {n:?} column")),
            None => Ok(()),
        }
    }

    /// The next row: `(row number, line, row or reason)`; `None` at the end of the file.
    pub fn next_row(&mut self) -> Option<(u64, u64, Result<Row, String>)> {
        if self.done {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.row += 1;
                let line = self.record.position().map_or(0, |p| p.line());
                Some((self.row, line, self.decode()))
            }
            Err(e) => {
                // An I/O error ends the file; it is reported as the next row's failure.
                self.done = true;
                self.row += 1;
                Some((self.row, 0, Err(format!("reading stopped: {e}"))))
            }
        }
    }

    fn decode(&self) -> Result<Row, String> {
        if self.record.len() != self.width {
            return Err(format!(
                "expected {} fields, found {} (check the quoting)",
                self.width,
                self.record.len()
            ));
        }
        match StringRecord::from_byte_record(self.record.clone()) {
            Ok(record) => Ok(Row { record }),
            Err(e) => {
                let field = e.utf8_error().field();
                let name = self
                    .columns
                    .iter()
                    .find(|(_, i)| **i == field)
                    .map_or_else(|| format!("#{}", field + 1), |(n, _)| n.clone());
                Err(format!(
                    "field {name:?} is not valid UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ))
            }
        }
    }
}
