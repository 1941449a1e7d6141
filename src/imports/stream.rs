//! Reading an uploaded import file while it streams from storage, a batch at a time, with
//! constant memory: [`StreamRead`] turns the object's byte stream into a blocking
//! [`Read`] (run on the blocking pool), and [`read_batches`] cuts CSV or NDJSON rows into
//! [`Chunk`]s of the generic formats' [`Table`] for the same parsers the CLI uses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::generic::{Format, Table, csv_reason};
use super::report::RowError;

/// A line of NDJSON longer than this is refused (the file is refused as unreadable).
pub const MAX_NDJSON_LINE_BYTES: u64 = 1024 * 1024;

/// A byte stream (an object being downloaded) read as a blocking [`Read`]. Only for use
/// on a blocking thread (`spawn_blocking`): each refill waits on the runtime.
pub struct StreamRead<S> {
    rt: Handle,
    stream: S,
    buf: Bytes,
}

impl<S> StreamRead<S> {
    pub fn new(rt: Handle, stream: S) -> Self {
        Self { rt, stream, buf: Bytes::new() }
    }
}

impl<S, E> Read for StreamRead<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.buf = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}

/// How an upload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 CSV with a header row (the header is line 1).
    Csv,
    /// One JSON object per line, keys named like the CSV columns (line 1 is the first row).
    Ndjson,
}

/// A batch of rows, in file order.
pub(crate) struct Chunk {
    pub table: Table,
    /// The last line in the batch: a restarted job skips the lines up to it.
    pub last_line: u64,
    /// Data rows in the batch, good or bad.
    pub rows: u64,
}

/// Why reading stopped early.
#[derive(Debug)]
pub enum ReadError {
    /// The file can never be imported (a bad header, an overlong line): fail the job.
    Refused(String),
    /// Reading failed (storage): worth a retry.
    Io(anyhow::Error),
}

/// Builds chunks: collects rows, and cuts a batch once it is full and the row starts a new
/// group (`Format::group_by`).
struct Batcher {
    columns: HashMap<String, usize>,
    group: Option<usize>,
    batch_rows: usize,
    resume_after: u64,
    rows: Vec<(u64, csv::StringRecord)>,
    errors: Vec<RowError>,
    last_key: Option<String>,
    last_line: u64,
    out: mpsc::Sender<Chunk>,
}

impl Batcher {
    fn len(&self) -> usize {
        self.rows.len() + self.errors.len()
    }

    /// Sends the batch; `false` when the receiver is gone (the job stopped).
    fn flush(&mut self) -> bool {
        if self.len() == 0 {
            return true;
        }
        let rows = self.len() as u64;
        let table =
            Table::from_parts(self.columns.clone(), std::mem::take(&mut self.rows), std::mem::take(&mut self.errors));
        self.out.blocking_send(Chunk { table, last_line: self.last_line, rows }).is_ok()
    }

    fn push(&mut self, line: u64, row: Result<csv::StringRecord, RowError>) -> bool {
        if line <= self.resume_after {
            return true;
        }
        let key = match (&row, self.group) {
            (Ok(r), Some(i)) => r.get(i).map(str::to_owned),
            _ => None,
        };
        let boundary = self.group.is_none() || key.is_none() || key != self.last_key;
        if self.len() >= self.batch_rows && boundary && !self.flush() {
            return false;
        }
        if key.is_some() {
            self.last_key = key;
        }
        self.last_line = line;
        match row {
            Ok(r) => self.rows.push((line, r)),
            Err(e) => self.errors.push(e),
        }
        true
    }
}

/// Reads `input` (blocking) in batches of at least `batch_rows` rows (more only to keep a
/// group whole), skipping lines up to `resume_after`, and sends each batch to `out`.
/// Returns when the input ends or `out` is closed. Errors: [`ReadError`].
pub(crate) fn read_batches(
    input: impl Read,
    encoding: Encoding,
    format: Format,
    batch_rows: usize,
    resume_after: u64,
    out: mpsc::Sender<Chunk>,
) -> Result<(), ReadError> {
    let mut batcher = Batcher {
        columns: HashMap::new(),
        group: None,
        batch_rows: batch_rows.max(1),
        resume_after,
        rows: Vec::new(),
        errors: Vec::new(),
        last_key: None,
        last_line: resume_after,
        out,
    };
    match encoding {
        Encoding::Csv => read_csv(input, format, &mut batcher)?,
        Encoding::Ndjson => read_ndjson(input, format, &mut batcher)?,
    }
    batcher.flush();
    Ok(())
}

fn io(e: impl Into<anyhow::Error>) -> ReadError {
    ReadError::Io(e.into())
}

fn read_csv(input: impl Read, format: Format, batcher: &mut Batcher) -> Result<(), ReadError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) if e.is_io_error() => return Err(io(e)),
        Err(e) => return Err(ReadError::Refused(format!("cannot read the header row: {}", csv_reason(&e)))),
    };
    batcher.columns =
        Table::columns(&headers, format.required, format.optional).map_err(|e| ReadError::Refused(format!("{e:#}")))?;
    batcher.group = format.group_by.and_then(|g| batcher.columns.get(g).copied());
    let mut record = csv::StringRecord::new();
    loop {
        let row = match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => Ok(record.clone()),
            Err(e) if e.is_io_error() => return Err(io(e)),
            Err(e) => Err(RowError::at(e.position().map(|p| p.line()), csv_reason(&e))),
        };
        let line = match &row {
            Ok(r) => r.position().map_or(0, |p| p.line()),
            Err(e) => e.line.unwrap_or(0),
        };
        if !batcher.push(line, row) {
            return Ok(());
        }
    }
}

fn read_ndjson(input: impl Read, format: Format, batcher: &mut Batcher) -> Result<(), ReadError> {
    let names: Vec<&str> = format.required.iter().chain(format.optional).copied().collect();
    batcher.columns = names.iter().enumerate().map(|(i, n)| ((*n).to_owned(), i)).collect();
    batcher.group = format.group_by.and_then(|g| batcher.columns.get(g).copied());
    let mut reader = BufReader::new(input);
    let mut text = String::new();
    let mut line = 0u64;
    loop {
        text.clear();
        let n = (&mut reader).take(MAX_NDJSON_LINE_BYTES + 1).read_line(&mut text).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                ReadError::Refused(format!("line {} is not valid UTF-8", line + 1))
            } else {
                io(e)
            }
        })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if n as u64 > MAX_NDJSON_LINE_BYTES {
            return Err(ReadError::Refused(format!("line {line} is longer than {MAX_NDJSON_LINE_BYTES} bytes")));
        }
        if text.trim().is_empty() {
            continue;
        }
        let row = ndjson_row(text.trim(), &names).map_err(|e| RowError::at(Some(line), e));
        if !batcher.push(line, row) {
            return Ok(());
        }
    }
}

/// One NDJSON object as a record with a value per known column (`""` when absent).
fn ndjson_row(text: &str, names: &[&str]) -> Result<csv::StringRecord, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("is not a JSON object: {e}"))?;
    let mut values = vec![String::new(); names.len()];
    for (key, value) in object {
        let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(&key)) else {
            return Err(format!("unknown field {key:?}; the fields are {}", names.join(",")));
        };
        values[i] = match value {
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            _ => return Err(format!("{key}: must be a string or a number")),
        };
    }
    Ok(csv::StringRecord::from(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::generic;

    fn batches(input: &str, encoding: Encoding, entity: &str, size: usize, resume: u64) -> Vec<(u64, u64, usize)> {
        let format = generic::format(entity).expect("format");
        let (tx, mut rx) = mpsc::channel(1000);
        read_batches(input.as_bytes(), encoding, format, size, resume, tx).map_err(|e| format!("{e:?}")).expect("read");
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push((c.last_line, c.rows, c.table.rows_read() as usize));
        }
        out
    }

    #[test]
    fn csv_is_cut_into_batches_that_resume_after_a_line() {
        let csv = "sku,name,price,currency\nA,a,1,USD\nB,b,1,USD\nC,c,1,USD\nD,d,1,USD\nE,e,1,USD\n";
        assert_eq!(batches(csv, Encoding::Csv, "products", 2, 0), vec![(3, 2, 2), (5, 2, 2), (6, 1, 1)]);
        assert_eq!(batches(csv, Encoding::Csv, "products", 2, 3), vec![(5, 2, 2), (6, 1, 1)]);
    }

    #[test]
    fn an_orders_lines_stay_in_one_batch() {
        let head = "order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity\n";
        let row = |n: &str| format!("{n},a@b.example,2016-01-01,delivered,USD,S,x,1,1\n");
        let csv = format!("{head}{}{}{}{}", row("1"), row("2"), row("2"), row("3"));
        assert_eq!(batches(&csv, Encoding::Csv, "orders", 2, 0), vec![(4, 3, 3), (5, 1, 1)]);
    }

    #[test]
    fn ndjson_rows_map_onto_the_columns_and_bad_lines_are_row_errors() {
        let nd = "{\"sku\":\"A\",\"name\":\"a\",\"price\":1.5,\"currency\":\"USD\"}\n\nnot json\n{\"pirce\":1}\n";
        let format = generic::format("products").expect("format");
        let (tx, mut rx) = mpsc::channel(10);
        read_batches(nd.as_bytes(), Encoding::Ndjson, format, 100, 0, tx).map_err(|e| format!("{e:?}")).expect("read");
        let chunk = rx.try_recv().expect("one batch");
        let (batch, errors) = (format.parse)(&chunk.table);
        assert_eq!(batch.products.len(), 1);
        assert_eq!(batch.products[0].price_minor, 150);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![Some(3), Some(4)]);
    }

    #[test]
    fn a_csv_with_a_wrong_header_is_refused() {
        let format = generic::format("products").expect("format");
        let (tx, _rx) = mpsc::channel(10);
        let read = read_batches("sku,pirce\n".as_bytes(), Encoding::Csv, format, 10, 0, tx);
        assert!(matches!(read, Err(ReadError::Refused(_))));
    }
}
