//! `aisle import FORMAT PATH`: streams a product feed into Postgres in batches (constant memory),
//! upserting by id. Every rejected row is reported with its row number, line and reason while the
//! good rows land; the run and its rejects are recorded in `import_runs`.

mod csvrows;
mod flipkart;
mod jsonl;
mod merchant;
mod pylit;

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::error::CatalogError;
use super::model::{ImportCounts, NewProduct, ProductDraft, Reject};
use super::repo;

/// Rejects kept in `import_runs.rejects`; all of them still go to the caller's sink.
const STORED_REJECTS: usize = 1_000;

/// A feed layout `aisle import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The Flipkart CSV export (uniq_id, product_category_tree, product_specifications, ...).
    Flipkart,
    /// A Google Merchant Center style TSV/CSV feed.
    Merchant,
    /// One JSON product object per line.
    Jsonl,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Flipkart => "flipkart",
            Self::Merchant => "merchant",
            Self::Jsonl => "jsonl",
        }
    }
}

/// One row read from a feed.
pub struct SourceRow {
    pub row: u64,
    pub line: u64,
    pub draft: Result<ProductDraft, RowError>,
}

/// Why a row could not be read; `id` when the row got far enough to have one.
pub struct RowError {
    pub id: Option<String>,
    pub reason: String,
}

/// How an import runs.
pub struct ImportOptions {
    pub batch_rows: usize,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
}

/// The outcome of an import.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub run_id: i64,
    pub format: &'static str,
    pub source: String,
    #[serde(flatten)]
    pub counts: ImportCounts,
    pub seconds: f64,
}

enum Message {
    Batch(Vec<NewProduct>),
    Reject(Reject),
}

/// Imports the feed at `path`. `on_reject` sees every rejected row as it happens.
pub async fn import_file(
    pool: &PgPool,
    format: Format,
    path: &Path,
    options: &ImportOptions,
    on_reject: impl FnMut(&Reject),
) -> Result<ImportReport, CatalogError> {
    let file = File::open(path)
        .map_err(|e| CatalogError::Feed(format!("cannot open {}: {e}", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = if options.progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {wide_bar} {msg} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let read = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: file,
        read: read.clone(),
    };
    let source = path.display().to_string();
    let report = import_reader(
        pool,
        format,
        reader,
        &source,
        options,
        on_reject,
        |counts| {
            progress.set_position(read.load(Ordering::Relaxed));
            progress.set_message(format!(
                "{} rows, {} rejected",
                counts.rows, counts.rejected
            ));
        },
    )
    .await;
    progress.finish_and_clear();
    report
}

/// Imports from any reader (a file, stdin, a test buffer).
pub async fn import_reader<R: Read + Send + 'static>(
    pool: &PgPool,
    format: Format,
    input: R,
    source: &str,
    options: &ImportOptions,
    mut on_reject: impl FnMut(&Reject),
    mut on_progress: impl FnMut(&ImportCounts),
) -> Result<ImportReport, CatalogError> {
    let started = std::time::Instant::now();
    let rows = match format {
        Format::Flipkart => flipkart::rows(input),
        Format::Merchant => merchant::rows(input),
        Format::Jsonl => jsonl::rows(input),
    }
    .map_err(CatalogError::Feed)?;
    let run_id = repo::start_import_run(pool, format.name(), source).await?;

    // The parser runs on a blocking thread; a small channel bounds what is in flight.
    let (tx, mut rx) = mpsc::channel::<Message>(4);
    let batch_rows = options.batch_rows.max(1);
    let reader = tokio::task::spawn_blocking(move || read_rows(rows, batch_rows, &tx));

    let mut counts = ImportCounts::default();
    let mut stored_rejects = Vec::new();
    let mut failure = None;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Reject(reject) => {
                counts.rows += 1;
                counts.rejected += 1;
                on_reject(&reject);
                if stored_rejects.len() < STORED_REJECTS {
                    stored_rejects.push(reject);
                }
            }
            Message::Batch(batch) => {
                counts.rows += batch.len() as u64;
                let batch = dedupe(batch, &mut counts);
                match repo::upsert_products(pool, &batch, format.name()).await {
                    Ok((inserted, updated)) => {
                        counts.inserted += inserted;
                        counts.updated += updated;
                        counts.unchanged += batch.len() as u64 - inserted - updated;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        on_progress(&counts);
    }
    drop(rx);
    let _ = reader.await;
    repo::finish_import_run(pool, run_id, &counts, &stored_rejects).await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(ImportReport {
        run_id,
        format: format.name(),
        source: source.to_owned(),
        counts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn read_rows(
    rows: Box<dyn Iterator<Item = SourceRow> + Send>,
    batch_rows: usize,
    tx: &mpsc::Sender<Message>,
) {
    let mut batch = Vec::with_capacity(batch_rows);
    for SourceRow { row, line, draft } in rows {
        let message = match draft.and_then(|d| {
            let id = d.id.trim().to_owned();
            d.validate().map_err(|reason| RowError {
                id: (!id.is_empty()).then_some(id),
                reason,
            })
        }) {
            Ok(product) => {
                batch.push(product);
                if batch.len() < batch_rows {
                    continue;
                }
                Message::Batch(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(batch_rows),
                ))
            }
            Err(RowError { id, reason }) => Message::Reject(Reject {
                row,
                line,
                id,
                reason,
            }),
        };
        if tx.blocking_send(message).is_err() {
            return; // the writer stopped (database error); it reports why
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Message::Batch(batch));
    }
}

/// Keeps the last row for each id within a batch (Postgres cannot upsert one id twice in a
/// statement); earlier duplicates count as updated, since the later row overwrites them.
fn dedupe(batch: Vec<NewProduct>, counts: &mut ImportCounts) -> Vec<NewProduct> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(batch.len());
    let mut out: Vec<NewProduct> = Vec::with_capacity(batch.len());
    for p in batch {
        match index.get(&p.id) {
            Some(&i) => {
                counts.updated += 1;
                out[i] = p;
            }
            None => {
                index.insert(p.id.clone(), out.len());
                out.push(p);
            }
        }
    }
    out
}

struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
