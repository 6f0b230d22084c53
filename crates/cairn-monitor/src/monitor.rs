//! Live monitoring of served models:
//!
//! - [`PredictionLog`]: predictions (inputs, outputs, model version, latency, request id) are
//!   copied into a bounded staging area of columns, from which a writer thread makes Parquet
//!   files (`predictions/model=M/version=V/date=D/hour=H/<first ms>-<last ms>-<nanos>-<pid>.parquet`).
//!   Recording never waits for the writer: when the area is full the record is dropped and
//!   counted.
//! - [`Monitor`]: a model version's training reference (a stored [`Dataset`] plus which
//!   columns are features), drift of a time window of logged inputs against it, ground-truth
//!   labels posted by request id and the accuracy/error metrics they give over time, alert
//!   rules and the alerts that fired. References, labels, rules and events live in the
//!   metadata store ([`MonitoringStore`]); the prediction log is files under the home.
//!
//! Logged columns: `_request_id`, `_row` (row within the request), `_timestamp_ms`,
//! `_latency_us`, one column per input value (`x` for a one-column tensor, `x[j]` otherwise)
//! and one per output value (`_output:probability`, `_output:probability[j]`).
use crate::{Error, Result};
use arrow_array::builder::NullBufferBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Schema};
use cairn_core::monitoring::{
    StoredAlertEvent, StoredAlertRule, StoredLabel, StoredReference, LABEL_LOOKUP_BATCH,
};
use cairn_core::paths::ArtifactPath;
use cairn_core::ArtifactStore;
use cairn_core::MonitoringStore;
use cairn_quality::drift::{self, Dataset, DriftOptions, DriftReport, Sample};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The values of one logged tensor, flat, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Floating-point values.
    Float(Vec<f64>),
    /// Integers (booleans as 0/1).
    Int(Vec<i64>),
    /// Text.
    Text(Vec<String>),
}

impl Values {
    fn as_ref(&self) -> ValuesRef<'_> {
        match self {
            Values::Float(v) => ValuesRef::F64(v),
            Values::Int(v) => ValuesRef::I64(v),
            Values::Text(v) => ValuesRef::Text(v),
        }
    }
}

/// The values of a tensor as the server already holds them: the log widens them on its own
/// thread, never on the request's.
#[derive(Debug, Clone, Copy)]
pub enum ValuesRef<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit floats.
    F64(&'a [f64]),
    /// 32-bit integers.
    I32(&'a [i32]),
    /// 64-bit integers.
    I64(&'a [i64]),
    /// Booleans (logged as 0/1).
    Bool(&'a [bool]),
    /// Text.
    Text(&'a [String]),
}

/// The Parquet type a tensor's values are logged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Text,
}

impl ValuesRef<'_> {
    fn len(&self) -> usize {
        match self {
            ValuesRef::F32(v) => v.len(),
            ValuesRef::F64(v) => v.len(),
            ValuesRef::I32(v) => v.len(),
            ValuesRef::I64(v) => v.len(),
            ValuesRef::Bool(v) => v.len(),
            ValuesRef::Text(v) => v.len(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            ValuesRef::F32(_) | ValuesRef::F64(_) => Kind::Float,
            ValuesRef::I32(_) | ValuesRef::I64(_) | ValuesRef::Bool(_) => Kind::Int,
            ValuesRef::Text(_) => Kind::Text,
        }
    }

    /// Value `i` as a float (integers widen; text has none).
    fn float(&self, i: usize) -> Option<f64> {
        match self {
            ValuesRef::F32(v) => Some(f64::from(v[i])),
            ValuesRef::F64(v) => Some(v[i]),
            ValuesRef::I32(v) => Some(f64::from(v[i])),
            ValuesRef::I64(v) => Some(v[i] as f64),
            ValuesRef::Bool(v) => Some(f64::from(u8::from(v[i]))),
            ValuesRef::Text(_) => None,
        }
    }

    /// Value `i` as an integer (floats and text have none).
    fn int(&self, i: usize) -> Option<i64> {
        match self {
            ValuesRef::I32(v) => Some(i64::from(v[i])),
            ValuesRef::I64(v) => Some(v[i]),
            ValuesRef::Bool(v) => Some(i64::from(v[i])),
            _ => None,
        }
    }
}

/// One input or output tensor of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedTensor {
    /// Tensor name.
    pub name: String,
    /// Its shape; the first dimension is the rows of the request.
    pub shape: Vec<usize>,
    /// Its values.
    pub values: Values,
}

impl LoggedTensor {
    /// A view of it for [`PredictionLog::record_tensors`].
    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef {
            name: &self.name,
            shape: &self.shape,
            values: self.values.as_ref(),
        }
    }
}

/// A tensor of an answered request, borrowed from the server's own.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Its shape; the first dimension is the rows of the request.
    pub shape: &'a [usize],
    /// Its values, flat, row-major.
    pub values: ValuesRef<'a>,
}

impl TensorRef<'_> {
    fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row, or `None` when the values do not fill the shape.
    fn width(&self) -> Option<usize> {
        let rows = self.rows();
        let n = self.values.len();
        if rows == 0 || !n.is_multiple_of(rows) {
            return None;
        }
        Some(n / rows)
    }
}

/// Column names of a tensor with `width` values per row.
fn tensor_columns(prefix: &str, name: &str, width: usize) -> Vec<String> {
    if width == 1 {
        vec![format!("{prefix}{name}")]
    } else {
        (0..width).map(|j| format!("{prefix}{name}[{j}]")).collect()
    }
}

/// Prefix of output columns in the prediction log.
pub const OUTPUT_PREFIX: &str = "_output:";

/// One answered request.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The request id (the caller's, or one the server made).
    pub request_id: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// When it was answered.
    pub timestamp_ms: i64,
    /// Time spent answering, in microseconds.
    pub latency_us: i64,
    /// Request tensors.
    pub inputs: Vec<LoggedTensor>,
    /// Answer tensors.
    pub outputs: Vec<LoggedTensor>,
}

/// How the prediction log buffers and writes.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// Rows staged and not yet written; beyond this, records are dropped (and counted).
    pub capacity: usize,
    /// Staged rows that trigger a write (at most half the capacity, so requests are still
    /// staged while the writer comes).
    pub flush_rows: usize,
    /// Longest a record waits before it is written.
    pub flush_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            capacity: 100_000,
            flush_rows: 50_000,
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// Counters of the prediction log, exported by the server.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Records staged for writing.
    pub accepted: AtomicU64,
    /// Records dropped because the staging area was full.
    pub dropped: AtomicU64,
    /// Rows written to Parquet.
    pub rows_written: AtomicU64,
    /// Failed file writes (their rows are lost; the message is in `last_error`).
    pub write_errors: AtomicU64,
    /// The last write error, until the server reports it in its log.
    pub last_error: Mutex<Option<String>>,
}

/// Rows waiting for the writer, per model version and hour, already in columns: a request
/// appends its values to vectors that the writer empties and hands back (two stagings take
/// turns), so once they have grown, recording allocates nothing per request and frees
/// nothing on another thread. Growing them on the request's thread had cost milliseconds
/// (measured in docs/benchmarks.md, bench/serving): every column of a file doubled in the same
/// request, and a fresh staging grew again for every file.
#[derive(Default)]
struct Staging {
    files: Vec<((String, String, i64), Staged)>,
    rows: usize,
    oldest: Option<Instant>,
    /// Rows a new file reserves room for up front.
    reserve: usize,
}

impl Staging {
    fn stage(&mut self, model: &str, version: &str, hour: i64) -> &mut Staged {
        let same = |m: &String, v: &String| m == model && v == version;
        let at = match self
            .files
            .iter()
            .position(|((m, v, h), _)| *h == hour && same(m, v))
        {
            Some(at) => at,
            // A new hour takes over an emptied file of the same version: its columns and
            // buffers fit.
            None => match self
                .files
                .iter()
                .position(|((m, v, _), staged)| staged.len() == 0 && same(m, v))
            {
                Some(at) => {
                    self.files[at].0 .2 = hour;
                    at
                }
                None => {
                    self.files.push((
                        (model.to_owned(), version.to_owned(), hour),
                        Staged::with_capacity(self.reserve),
                    ));
                    self.files.len() - 1
                }
            },
        };
        &mut self.files[at].1
    }

    fn with_reserve(capacity: usize) -> Staging {
        Staging {
            reserve: capacity.min(RESERVE_ROWS),
            ..Staging::default()
        }
    }

    /// Empties every file for reuse, keeping its buffers; a file that held no rows since the
    /// last time is let go (its version or hour has gone quiet).
    fn recycle(&mut self) {
        self.files.retain(|(_, staged)| staged.len() > 0);
        for (_, staged) in &mut self.files {
            staged.clear();
        }
        self.rows = 0;
        self.oldest = None;
    }
}

/// The rows of one future log file.
#[derive(Default)]
struct Staged {
    /// Request ids (UTF-8), end to end, and where each starts and the last ends: an Arrow
    /// string column's two buffers, moved into the file's array and back, not copied.
    request_ids: Vec<u8>,
    request_id_offsets: Vec<i32>,
    row_numbers: Vec<i64>,
    timestamps: Vec<i64>,
    latencies: Vec<i64>,
    /// The tensors' values as the requests handed them over, one block per layout.
    blocks: Vec<Block>,
    /// Each column, and whether this file's rows wrote to it: built by the writer from the
    /// blocks.
    columns: Vec<(String, Builder, bool)>,
    index: HashMap<String, usize>,
    /// Rows a new column reserves room for.
    reserve: usize,
}

impl Staged {
    fn with_capacity(rows: usize) -> Staged {
        Staged {
            request_ids: Vec::with_capacity(rows * 16),
            request_id_offsets: {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                offsets
            },
            row_numbers: Vec::with_capacity(rows),
            timestamps: Vec::with_capacity(rows),
            latencies: Vec::with_capacity(rows),
            reserve: rows,
            ..Staged::default()
        }
    }

    fn len(&self) -> usize {
        self.row_numbers.len()
    }

    /// Empties the file and keeps its buffers.
    fn clear(&mut self) {
        self.request_ids.clear();
        self.request_id_offsets.clear();
        self.request_id_offsets.push(0);
        self.row_numbers.clear();
        self.timestamps.clear();
        self.latencies.clear();
        // A layout no request of this file sent is let go; the others keep their memory.
        self.blocks.retain(|b| b.used);
        for block in &mut self.blocks {
            block.values.clear();
            block.rows.clear();
            block.used = false;
        }
        for (_, builder, used) in &mut self.columns {
            builder.clear();
            *used = false;
        }
    }

    /// Appends one answered request; returns its rows. Each tensor's values are copied as
    /// they are, in one piece, into the block of its layout: the writer makes columns of them.
    fn append(
        &mut self,
        request_id: &str,
        timestamp_ms: i64,
        latency_us: i64,
        inputs: &[TensorRef],
        outputs: &[TensorRef],
    ) -> usize {
        let rows = inputs.first().map_or(1, TensorRef::rows);
        let start = self.len();
        for r in 0..rows {
            self.request_ids.extend_from_slice(request_id.as_bytes());
            // `fits` keeps the ids of a file under 2 GiB.
            self.request_id_offsets
                .push(i32::try_from(self.request_ids.len()).unwrap_or(i32::MAX));
            self.row_numbers.push(r as i64);
            self.timestamps.push(timestamp_ms);
            self.latencies.push(latency_us);
        }
        let tensors = inputs
            .iter()
            .map(|t| (false, t))
            .chain(outputs.iter().map(|t| (true, t)));
        for (output, tensor) in tensors {
            let Some(width) = tensor.width() else {
                continue;
            };
            if tensor.rows() != rows {
                continue;
            }
            let block = match self
                .blocks
                .iter()
                .position(|b| b.holds(output, tensor, width))
            {
                Some(at) => &mut self.blocks[at],
                None => {
                    self.blocks
                        .push(Block::new(output, tensor, width, self.reserve));
                    let last = self.blocks.len() - 1;
                    &mut self.blocks[last]
                }
            };
            block.values.extend(&tensor.values);
            block.rows.extend(start..start + rows);
            block.used = true;
        }
        rows
    }

    /// Builds the file's columns from its blocks, on the writer's thread: row by row, so a
    /// column that two layouts write to (a tensor sent as floats, then as integers) keeps its
    /// rows in order.
    fn build_columns(&mut self) {
        let (blocks, columns, index) = (&mut self.blocks, &mut self.columns, &mut self.index);
        let mut at: Vec<Vec<usize>> = Vec::with_capacity(blocks.len());
        for block in blocks.iter() {
            let prefix = if block.output { OUTPUT_PREFIX } else { "" };
            let kind = block.values.kind();
            at.push(
                tensor_columns(prefix, &block.name, block.width)
                    .into_iter()
                    .map(|name| {
                        *index.entry(name.clone()).or_insert_with(|| {
                            columns.push((name, Builder::new(kind, 0), false));
                            columns.len() - 1
                        })
                    })
                    .collect(),
            );
        }
        // A column only one block writes to (the usual case: a model gets the same tensors
        // every time) is filled from that block in one pass; the others row by row.
        let mut feeders = vec![0u32; columns.len()];
        for c in at.iter().flatten() {
            feeders[*c] += 1;
        }
        let alone: Vec<bool> = at
            .iter()
            .zip(blocks.iter())
            .map(|(cs, b)| !b.values.is_text() && cs.iter().all(|&c| feeders[c] == 1))
            .collect();
        for ((block, cs), _) in blocks.iter().zip(&at).zip(&alone).filter(|(_, a)| **a) {
            for (j, &c) in cs.iter().enumerate() {
                let (_, column, used) = &mut columns[c];
                *used = true;
                block.values.fill(column, &block.rows, block.width, j);
            }
        }
        let mut next = vec![0usize; blocks.len()];
        for row in 0..self.row_numbers.len() {
            for (b, block) in blocks.iter().enumerate() {
                let k = next[b];
                if alone[b] || block.rows.get(k) != Some(&row) {
                    continue;
                }
                next[b] += 1;
                for (j, &c) in at[b].iter().enumerate() {
                    let (_, column, used) = &mut columns[c];
                    *used = true;
                    column.pad(row);
                    block.values.push_onto(column, k * block.width + j);
                }
            }
        }
    }

    /// Whether a request of `rows` rows with this id still fits the file's id column (whose
    /// offsets are 32-bit).
    fn fits(&self, request_id: &str, rows: usize) -> bool {
        request_id
            .len()
            .checked_mul(rows)
            .and_then(|n| n.checked_add(self.request_ids.len()))
            .is_some_and(|n| n <= i32::MAX as usize)
    }

    /// The staged rows as one Parquet file, in `out` (emptied first); `None` when there are
    /// none. The columns' vectors are moved into the Arrow arrays and taken back once the file
    /// is encoded, so the writer neither copies them nor touches fresh memory for them.
    fn encode(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        let rows = self.len();
        if rows == 0 {
            return Ok(None);
        }
        self.build_columns();
        for block in &mut self.blocks {
            block.values.clear();
            block.rows.clear();
        }
        let first = self.timestamps.iter().copied().min().unwrap_or(0);
        let last = self.timestamps.iter().copied().max().unwrap_or(0);
        let ids = StringArray::try_new(
            OffsetBuffer::new(std::mem::take(&mut self.request_id_offsets).into()),
            Buffer::from_vec(std::mem::take(&mut self.request_ids)),
            None,
        )
        .map_err(|e| Error::Invalid(format!("prediction log request ids: {e}")))?;
        let ids = Arc::new(ids);
        let meta = [
            ("_row", &mut self.row_numbers),
            ("_timestamp_ms", &mut self.timestamps),
            ("_latency_us", &mut self.latencies),
        ]
        .map(|(name, values)| {
            let array = Arc::new(Int64Array::new(std::mem::take(values).into(), None));
            (name, array)
        });
        let mut fields = vec![Field::new("_request_id", DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![ids.clone()];
        for (name, array) in &meta {
            fields.push(Field::new(*name, DataType::Int64, false));
            arrays.push(array.clone());
        }
        // A column no record of this file wrote to (its tensor came in an earlier file) is
        // left out, as it would be from a fresh file.
        let mut taken = Vec::new();
        for (at, (name, builder, _)) in self.columns.iter_mut().enumerate().filter(|c| c.1 .2) {
            builder.pad(rows);
            let array = builder.take_array();
            fields.push(Field::new(name.as_str(), array.data_type(), true));
            arrays.push(array.array_ref());
            taken.push((at, array));
        }
        let written = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::Invalid(format!("prediction log: {e}")))
            .and_then(|batch| {
                out.clear();
                write_parquet(&[batch], out)
            });
        // The batch is gone: each array is the only holder of its buffers again.
        let (offsets, bytes) = match Arc::into_inner(ids).map(StringArray::into_parts) {
            Some((offsets, bytes, _)) => (Some(offsets.into_inner().into_inner()), Some(bytes)),
            None => (None, None),
        };
        self.request_id_offsets = reclaim(offsets, rows + 1);
        self.request_ids = reclaim(bytes, rows * 16);
        self.request_id_offsets.clear();
        self.request_id_offsets.push(0);
        self.request_ids.clear();
        let [row_numbers, timestamps, latencies] = meta.map(|(_, array)| {
            let values = Arc::into_inner(array).map(|a| a.into_parts().1.into_inner());
            let mut values = reclaim(values, rows);
            values.clear();
            values
        });
        (self.row_numbers, self.timestamps, self.latencies) = (row_numbers, timestamps, latencies);
        for (at, array) in taken {
            self.columns[at].1.put_back(array, rows);
        }
        written?;
        Ok(Some((first, last, rows)))
    }
}

/// A vector back from the Arrow buffer it was moved into; a new one of `capacity` if the
/// buffer is still shared (it is not, once the file's batch is dropped).
fn reclaim<T: arrow_buffer::ArrowNativeType>(buffer: Option<Buffer>, capacity: usize) -> Vec<T> {
    buffer
        .and_then(|b| b.into_vec().ok())
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// The writer side of the prediction log. Dropping it writes what is staged.
pub struct PredictionLog {
    staging: Arc<Mutex<Staging>>,
    capacity: usize,
    /// Flush requests to the writer; dropped to stop it.
    flushes: Option<SyncSender<SyncSender<()>>>,
    counters: Arc<LogCounters>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl PredictionLog {
    /// Starts the writer thread for `monitor`'s prediction log store.
    pub fn start(monitor: &Monitor, options: LogOptions) -> Result<PredictionLog> {
        let logs = monitor.logs.clone();
        let (flushes, requests) = sync_channel(64);
        let counters = Arc::new(LogCounters::default());
        let capacity = options.capacity.max(1);
        let staging = Arc::new(Mutex::new(Staging::with_reserve(capacity)));
        let (shared_counters, shared_staging) = (counters.clone(), staging.clone());
        let writer = std::thread::Builder::new()
            .name("cairn-prediction-log".into())
            .spawn(move || {
                lower_priority();
                write_loop(
                    &requests,
                    &shared_staging,
                    &*logs,
                    options,
                    &shared_counters,
                )
            })
            .map_err(|e| Error::io(Path::new("prediction log writer"), e))?;
        Ok(PredictionLog {
            staging,
            capacity,
            flushes: Some(flushes),
            counters,
            writer: Some(writer),
        })
    }

    /// Stages a prediction for writing; never blocks on the writer. Returns false (and
    /// counts it) when the staging area is full.
    pub fn record(&self, prediction: Prediction) -> bool {
        let inputs: Vec<TensorRef> = prediction.inputs.iter().map(LoggedTensor::as_ref).collect();
        let outputs: Vec<TensorRef> = prediction
            .outputs
            .iter()
            .map(LoggedTensor::as_ref)
            .collect();
        self.record_tensors(
            &prediction.request_id,
            &prediction.model,
            &prediction.version,
            prediction.timestamp_ms,
            prediction.latency_us,
            &inputs,
            &outputs,
        )
    }

    /// Stages one answered request from borrowed tensors: the request thread copies its
    /// values into the staged columns and allocates nothing of its own. Returns false (and
    /// counts it) when the staging area is full.
    #[allow(clippy::too_many_arguments)]
    pub fn record_tensors(
        &self,
        request_id: &str,
        model: &str,
        version: &str,
        timestamp_ms: i64,
        latency_us: i64,
        inputs: &[TensorRef],
        outputs: &[TensorRef],
    ) -> bool {
        let mut staging = lock(&self.staging);
        if staging.rows >= self.capacity {
            drop(staging);
            self.counters.dropped.fetch_add(1, Relaxed);
            return false;
        }
        let hour = timestamp_ms.div_euclid(HOUR_MS);
        let staged = staging.stage(model, version, hour);
        if !staged.fits(request_id, inputs.first().map_or(1, TensorRef::rows)) {
            drop(staging);
            self.counters.dropped.fetch_add(1, Relaxed);
            return false;
        }
        let rows = staged.append(request_id, timestamp_ms, latency_us, inputs, outputs);
        staging.rows += rows;
        staging.oldest.get_or_insert_with(Instant::now);
        drop(staging);
        self.counters.accepted.fetch_add(1, Relaxed);
        true
    }

    /// Writes everything staged so far and returns once it is stored. Blocks.
    pub fn flush(&self) {
        let Some(flushes) = &self.flushes else {
            return;
        };
        let (done, wait) = sync_channel(1);
        if flushes.send(done).is_ok() {
            let _ = wait.recv();
        }
    }

    /// The log's counters.
    pub fn counters(&self) -> &LogCounters {
        &self.counters
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.flushes.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19): encoding a batch of the log
/// takes tens of milliseconds, and a request that shares its core must not wait for it. The idle
/// scheduling class (SCHED_IDLE) was measured too (docs/benchmarks.md): no better tail latency,
/// and under saturation the writer starved and dropped three to seven times as many records.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "prediction log writer keeps its priority");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_loop(
    requests: &Receiver<SyncSender<()>>,
    staging: &Mutex<Staging>,
    logs: &dyn ArtifactStore,
    options: LogOptions,
    counters: &LogCounters,
) {
    // Half the capacity at most, so requests keep being logged while the writer, which polls,
    // comes to take a full staging.
    let trigger = options.flush_rows.min(options.capacity / 2).max(1);
    // The writer polls on a short tick instead of being woken: a wake-up per request would
    // cost a futex call and a context switch on the cores that serve.
    let tick = options.flush_interval.min(POLL_TICK);
    // The requests' staging and this one take turns: the writer swaps them, encodes the full
    // one and empties it, buffers kept, for the next swap.
    let mut taken = Staging::with_reserve(options.capacity.max(1));
    // The last file's bytes stay allocated: the next file, of about the same size, is encoded
    // into memory already mapped instead of a buffer grown from nothing (copied as it grows,
    // each new page zeroed by the kernel).
    let mut encoded = Vec::new();
    loop {
        std::thread::sleep(tick);
        let mut flushes = Vec::new();
        let disconnected = loop {
            match requests.try_recv() {
                Ok(done) => flushes.push(done),
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        let swapped = {
            let mut staged = lock(staging);
            let due = staged
                .oldest
                .is_some_and(|t| t.elapsed() >= options.flush_interval);
            let swap = disconnected || due || staged.rows >= trigger || !flushes.is_empty();
            if swap {
                std::mem::swap(&mut *staged, &mut taken);
            }
            swap
        };
        // Only a staging just taken is written and emptied: emptying the spare again on an idle
        // tick would let go of the files (and buffers) it keeps for the next turn.
        if swapped {
            write_taken(logs, &mut taken, &mut encoded, counters);
        }
        for done in flushes {
            let _ = done.send(());
        }
        if disconnected {
            return;
        }
    }
}

/// Writes the files of a staging just taken from the requests, then empties it for reuse.
fn write_taken(
    logs: &dyn ArtifactStore,
    taken: &mut Staging,
    encoded: &mut Vec<u8>,
    counters: &LogCounters,
) {
    for ((model, version, hour), staged) in &mut taken.files {
        match write_staged(logs, model, version, *hour, staged, encoded) {
            Ok(written) => {
                counters.rows_written.fetch_add(written as u64, Relaxed);
            }
            Err(e) => {
                counters.write_errors.fetch_add(1, Relaxed);
                *lock(&counters.last_error) = Some(e.to_string());
            }
        }
    }
    taken.recycle();
}

/// Longest the writer sleeps between looks at the staging area.
const POLL_TICK: Duration = Duration::from_millis(20);

/// Rows a new staged file reserves room for (at most the log's capacity), so its columns do
/// not grow request by request.
const RESERVE_ROWS: usize = 1 << 16;

/// The values of one tensor layout (input or output, name, width and type) in a file, row
/// after row, as the requests handed them over.
struct Block {
    output: bool,
    name: String,
    width: usize,
    values: RowValues,
    /// The file's row each `width` values belong to.
    rows: Vec<usize>,
    /// Whether a request sent this layout since the staging was last emptied.
    used: bool,
}

impl Block {
    fn new(output: bool, tensor: &TensorRef, width: usize, reserve_rows: usize) -> Block {
        let capacity = reserve_rows.saturating_mul(width);
        let values = match tensor.values {
            ValuesRef::F32(_) => RowValues::F32(Vec::with_capacity(capacity)),
            ValuesRef::F64(_) => RowValues::F64(Vec::with_capacity(capacity)),
            ValuesRef::I32(_) => RowValues::I32(Vec::with_capacity(capacity)),
            ValuesRef::I64(_) => RowValues::I64(Vec::with_capacity(capacity)),
            ValuesRef::Bool(_) => RowValues::Bool(Vec::with_capacity(capacity)),
            ValuesRef::Text(_) => RowValues::Text(String::new(), Vec::new()),
        };
        Block {
            output,
            name: tensor.name.to_owned(),
            width,
            values,
            rows: Vec::with_capacity(reserve_rows),
            used: false,
        }
    }

    fn holds(&self, output: bool, tensor: &TensorRef, width: usize) -> bool {
        self.output == output
            && self.width == width
            && self.values.same_type(&tensor.values)
            && self.name == tensor.name
    }
}

/// A block's values, in the type the server held them in.
enum RowValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    /// Texts end to end, and where each ends: no allocation per value.
    Text(String, Vec<usize>),
}

impl RowValues {
    fn same_type(&self, values: &ValuesRef) -> bool {
        matches!(
            (self, values),
            (RowValues::F32(_), ValuesRef::F32(_))
                | (RowValues::F64(_), ValuesRef::F64(_))
                | (RowValues::I32(_), ValuesRef::I32(_))
                | (RowValues::I64(_), ValuesRef::I64(_))
                | (RowValues::Bool(_), ValuesRef::Bool(_))
                | (RowValues::Text(..), ValuesRef::Text(_))
        )
    }

    /// Appends `values`, which must be of the same type (see [`RowValues::same_type`]).
    fn extend(&mut self, values: &ValuesRef) {
        match (self, values) {
            (RowValues::F32(v), ValuesRef::F32(x)) => v.extend_from_slice(x),
            (RowValues::F64(v), ValuesRef::F64(x)) => v.extend_from_slice(x),
            (RowValues::I32(v), ValuesRef::I32(x)) => v.extend_from_slice(x),
            (RowValues::I64(v), ValuesRef::I64(x)) => v.extend_from_slice(x),
            (RowValues::Bool(v), ValuesRef::Bool(x)) => v.extend_from_slice(x),
            (RowValues::Text(text, ends), ValuesRef::Text(x)) => {
                for value in x.iter() {
                    text.push_str(value);
                    ends.push(text.len());
                }
            }
            _ => {}
        }
    }

    fn is_text(&self) -> bool {
        matches!(self, RowValues::Text(..))
    }

    /// Fills column `j` of a block of `width` values per row from these values, each row
    /// at its place in `rows` (rows in between are left empty).
    fn fill(&self, column: &mut Builder, rows: &[usize], width: usize, j: usize) {
        match self {
            RowValues::F32(v) => fill_numbers(column, v, rows, width, j),
            RowValues::F64(v) => fill_numbers(column, v, rows, width, j),
            RowValues::I32(v) => fill_numbers(column, v, rows, width, j),
            RowValues::I64(v) => fill_numbers(column, v, rows, width, j),
            RowValues::Bool(v) => fill_numbers(column, v, rows, width, j),
            RowValues::Text(..) => {
                for (k, &row) in rows.iter().enumerate() {
                    column.pad(row);
                    self.push_onto(column, k * width + j);
                }
            }
        }
    }

    fn kind(&self) -> Kind {
        match self {
            RowValues::F32(_) | RowValues::F64(_) => Kind::Float,
            RowValues::I32(_) | RowValues::I64(_) | RowValues::Bool(_) => Kind::Int,
            RowValues::Text(..) => Kind::Text,
        }
    }

    /// Value `i` pushed onto a column.
    fn push_onto(&self, column: &mut Builder, i: usize) {
        match self {
            RowValues::F32(v) => column.push(&ValuesRef::F32(v), i),
            RowValues::F64(v) => column.push(&ValuesRef::F64(v), i),
            RowValues::I32(v) => column.push(&ValuesRef::I32(v), i),
            RowValues::I64(v) => column.push(&ValuesRef::I64(v), i),
            RowValues::Bool(v) => column.push(&ValuesRef::Bool(v), i),
            RowValues::Text(text, ends) => {
                let start = if i == 0 { 0 } else { ends[i - 1] };
                column.push_text(&text[start..ends[i]]);
            }
        }
    }

    fn clear(&mut self) {
        match self {
            RowValues::F32(v) => v.clear(),
            RowValues::F64(v) => v.clear(),
            RowValues::I32(v) => v.clear(),
            RowValues::I64(v) => v.clear(),
            RowValues::Bool(v) => v.clear(),
            RowValues::Text(text, ends) => {
                text.clear();
                ends.clear();
            }
        }
    }
}

/// A number type the server's tensors hold, as the log's columns store it.
trait Number: Copy {
    const FLOAT: bool;
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
}

impl Number for f32 {
    const FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
}

impl Number for f64 {
    const FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
}

impl Number for i32 {
    const FLOAT: bool = false;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl Number for i64 {
    const FLOAT: bool = false;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_i64(self) -> i64 {
        self
    }
}

impl Number for bool {
    const FLOAT: bool = false;
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

/// Column `j` of row-major `values` (`width` per row) appended to a number column, each at
/// its row: what [`Builder::push`] does value by value, in one loop per column.
fn fill_numbers<T: Number>(
    column: &mut Builder,
    values: &[T],
    rows: &[usize],
    width: usize,
    j: usize,
) {
    if T::FLOAT {
        column.widen_to_float();
    }
    let picked = rows.iter().zip(values.iter().skip(j).step_by(width));
    match column {
        Builder::Float(v, nulls) => place(v, nulls, picked, T::to_f64),
        Builder::Int(v, nulls) => place(v, nulls, picked, T::to_i64),
        Builder::Text(..) => {
            for &row in rows {
                column.pad(row + 1);
            }
        }
    }
}

/// Each picked value converted and put at its row of a number column, rows in between left
/// empty.
fn place<'a, T: Number + 'a, V: Copy + Default>(
    column: &mut Vec<V>,
    nulls: &mut NullBufferBuilder,
    picked: impl Iterator<Item = (&'a usize, &'a T)>,
    convert: impl Fn(T) -> V,
) {
    for (&row, &x) in picked {
        if column.len() < row {
            nulls.append_n_nulls(row - column.len());
            column.resize(row, V::default());
        }
        column.push(convert(x));
        nulls.append_non_null();
    }
}

/// A column being built from records whose tensors may differ; emptied and reused file after
/// file. Numbers are kept plain, with a validity mask that stays unallocated until a record
/// leaves the column empty: a request writes 8 bytes per value, and the writer copies a column
/// into its Arrow array in one move.
enum Builder {
    Float(Vec<f64>, NullBufferBuilder),
    Int(Vec<i64>, NullBufferBuilder),
    /// Texts end to end, and each value's span in them.
    Text(String, Vec<Option<(usize, usize)>>),
}

impl Builder {
    fn len(&self) -> usize {
        match self {
            Builder::Float(v, _) => v.len(),
            Builder::Int(v, _) => v.len(),
            Builder::Text(_, v) => v.len(),
        }
    }

    /// Empty values up to `len` rows.
    fn pad(&mut self, len: usize) {
        let missing = len.saturating_sub(self.len());
        if missing == 0 {
            return;
        }
        match self {
            Builder::Float(v, nulls) => {
                v.resize(len, 0.0);
                nulls.append_n_nulls(missing);
            }
            Builder::Int(v, nulls) => {
                v.resize(len, 0);
                nulls.append_n_nulls(missing);
            }
            Builder::Text(_, v) => v.resize(len, None),
        }
    }

    fn clear(&mut self) {
        match self {
            Builder::Float(v, nulls) => {
                v.clear();
                *nulls = NullBufferBuilder::new(v.capacity());
            }
            Builder::Int(v, nulls) => {
                v.clear();
                *nulls = NullBufferBuilder::new(v.capacity());
            }
            Builder::Text(text, v) => {
                text.clear();
                v.clear();
            }
        }
    }

    /// An integer column that meets floats becomes a float column.
    fn widen_to_float(&mut self) {
        if let Builder::Int(ints, nulls) = self {
            let mut floats = Vec::with_capacity(ints.capacity());
            floats.extend(ints.iter().map(|&n| n as f64));
            let nulls = std::mem::replace(nulls, NullBufferBuilder::new(0));
            *self = Builder::Float(floats, nulls);
        }
    }

    fn push(&mut self, values: &ValuesRef, i: usize) {
        if values.kind() == Kind::Float {
            self.widen_to_float();
        }
        match (self, values) {
            (builder @ Builder::Text(..), ValuesRef::Text(v)) => builder.push_text(&v[i]),
            (Builder::Float(c, nulls), v) if v.kind() != Kind::Text => match v.float(i) {
                Some(x) => {
                    c.push(x);
                    nulls.append_non_null();
                }
                None => {
                    c.push(0.0);
                    nulls.append_null();
                }
            },
            (Builder::Int(c, nulls), v) if v.kind() == Kind::Int => match v.int(i) {
                Some(n) => {
                    c.push(n);
                    nulls.append_non_null();
                }
                None => {
                    c.push(0);
                    nulls.append_null();
                }
            },
            (other, _) => {
                let len = other.len() + 1;
                other.pad(len);
            }
        }
    }

    /// A text value; a number column gets an empty value instead.
    fn push_text(&mut self, value: &str) {
        match self {
            Builder::Text(text, spans) => {
                let start = text.len();
                text.push_str(value);
                spans.push(Some((start, text.len())));
            }
            other => {
                let len = other.len() + 1;
                other.pad(len);
            }
        }
    }

    fn new(kind: Kind, rows: usize) -> Builder {
        match kind {
            Kind::Float => Builder::Float(Vec::with_capacity(rows), NullBufferBuilder::new(rows)),
            Kind::Int => Builder::Int(Vec::with_capacity(rows), NullBufferBuilder::new(rows)),
            Kind::Text => Builder::Text(String::new(), Vec::with_capacity(rows)),
        }
    }

    /// The column's values as an Arrow array: numbers are moved, not copied, and come back
    /// with [`Builder::put_back`]; texts are copied (the builder keeps them).
    fn take_array(&mut self) -> TakenColumn {
        match self {
            Builder::Float(v, nulls) => TakenColumn::Float(Arc::new(Float64Array::new(
                std::mem::take(v).into(),
                nulls.finish(),
            ))),
            Builder::Int(v, nulls) => TakenColumn::Int(Arc::new(Int64Array::new(
                std::mem::take(v).into(),
                nulls.finish(),
            ))),
            Builder::Text(text, spans) => {
                let values: StringArray =
                    spans.iter().map(|s| s.map(|(a, b)| &text[a..b])).collect();
                TakenColumn::Text(Arc::new(values))
            }
        }
    }

    /// Empties the column, taking back the vector [`Builder::take_array`] moved out (a new
    /// one of `capacity` if the array is still shared).
    fn put_back(&mut self, taken: TakenColumn, capacity: usize) {
        fn values<T: arrow_array::ArrowPrimitiveType>(
            array: Arc<arrow_array::PrimitiveArray<T>>,
            capacity: usize,
        ) -> Vec<T::Native> {
            let buffer = Arc::into_inner(array).map(|a| a.into_parts().1.into_inner());
            let mut values = reclaim(buffer, capacity);
            values.clear();
            values
        }
        match (&mut *self, taken) {
            (Builder::Float(v, _), TakenColumn::Float(array)) => *v = values(array, capacity),
            (Builder::Int(v, _), TakenColumn::Int(array)) => *v = values(array, capacity),
            _ => {}
        }
        self.clear();
    }
}

/// A column moved into an Arrow array for encoding.
enum TakenColumn {
    Float(Arc<Float64Array>),
    Int(Arc<Int64Array>),
    Text(ArrayRef),
}

impl TakenColumn {
    fn data_type(&self) -> DataType {
        match self {
            TakenColumn::Float(_) => DataType::Float64,
            TakenColumn::Int(_) => DataType::Int64,
            TakenColumn::Text(_) => DataType::Utf8,
        }
    }

    fn array_ref(&self) -> ArrayRef {
        match self {
            TakenColumn::Float(a) => a.clone(),
            TakenColumn::Int(a) => a.clone(),
            TakenColumn::Text(a) => a.clone(),
        }
    }
}

/// Writes the staged rows of one model version and hour to the log store as one Parquet
/// file (the store writes atomically). Returns the rows written.
fn write_staged(
    logs: &dyn ArtifactStore,
    model: &str,
    version: &str,
    hour: i64,
    staged: &mut Staged,
    encoded: &mut Vec<u8>,
) -> Result<usize> {
    let Some((first, last, rows)) = staged.encode(encoded)? else {
        return Ok(0);
    };
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{first}-{last}-{unique}-{}.parquet", std::process::id());
    let path = hour_partition(model, version, hour)?.join(&file_path(&name)?);
    logs.put(&path, &mut encoded.as_slice())
        .map_err(|e| Error::Invalid(format!("prediction log {}: {e}", path.as_string())))?;
    Ok(rows)
}

/// What one encoded log file holds: its first and last answer times, and rows.
type Encoded = (i64, i64, usize);

/// Record batches of one schema as a Parquet file's bytes.
fn parquet_bytes(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_parquet(batches, &mut bytes)?;
    Ok(bytes)
}

/// Record batches of one schema as a Parquet file, appended to `out`.
fn write_parquet(batches: &[RecordBatch], out: &mut Vec<u8>) -> Result<()> {
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(());
    };
    // No dictionaries (request ids are unique, features mostly so) and statistics per column
    // chunk only: the writer shares the serving cores, so it does the least work.
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .build();
    let fail = |e: parquet::errors::ParquetError| Error::Invalid(format!("prediction log: {e}"));
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(out, schema, Some(props)).map_err(fail)?;
    for batch in batches {
        writer.write(batch).map_err(fail)?;
    }
    writer.close().map_err(fail)?;
    Ok(())
}

/// The first and last answer times (ms) of a prediction log file, from its name
/// (`<first>-<last>-<nanos>-<pid>.parquet`, as [`write_predictions`] names it, or
/// `<first>-<last>-compacted-<nanos>.parquet`); `None` for any other file.
fn file_span(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut parts = stem.split('-').map(str::parse::<i64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(first)), Some(Ok(last))) => Some((first, last)),
        _ => None,
    }
}

/// Whether a log file is the result of compacting its hour.
fn is_compacted(name: &str) -> bool {
    name.split('-').nth(2) == Some("compacted")
}

/// One hour, in milliseconds: the log's partitions.
pub const HOUR_MS: i64 = 3_600_000;

/// Top folder of the prediction log in its store.
pub const PREDICTIONS_DIR: &str = "predictions";

/// A model or version name as a partition value: [`path_component`] with `~` for `%`, so no
/// reader that decodes `%XX` can turn it into a separator or `..`.
pub fn partition_value(name: &str) -> String {
    path_component(name).replace('%', "~")
}

fn file_path(raw: &str) -> Result<ArtifactPath> {
    ArtifactPath::parse(raw).map_err(|e| Error::Invalid(e.to_string()))
}

/// `predictions/model=M/version=V`.
fn version_partition(model: &str, version: &str) -> Result<ArtifactPath> {
    file_path(&format!(
        "{PREDICTIONS_DIR}/model={}/version={}",
        partition_value(model),
        partition_value(version)
    ))
}

/// `date=YYYY-MM-DD/hour=HH` of an hour number (hours since the epoch).
fn hour_suffix(hour: i64) -> String {
    let (y, m, d) = cairn_core::dates::civil_from_days(hour.div_euclid(24));
    format!("date={y:04}-{m:02}-{d:02}/hour={:02}", hour.rem_euclid(24))
}

/// `predictions/model=M/version=V/date=YYYY-MM-DD/hour=HH` of an hour number.
fn hour_partition(model: &str, version: &str, hour: i64) -> Result<ArtifactPath> {
    Ok(version_partition(model, version)?.join(&file_path(&hour_suffix(hour))?))
}

/// The hour number of a `date=...` and `hour=...` pair of partition names.
fn hour_of(date: &str, hour: &str) -> Option<i64> {
    let date = date.strip_prefix("date=")?;
    let hour: i64 = hour.strip_prefix("hour=")?.parse().ok()?;
    let mut parts = date.split('-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    (0..24)
        .contains(&hour)
        .then(|| cairn_core::dates::days_from_civil(y, m, d) * 24 + hour)
}

/// A model or version name as one safe path component: ASCII letters, digits, `-`, `_` and
/// inner `.` stay; every other byte becomes `%XX`, so no name can climb out of its folder.
pub fn path_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// A model version's training reference.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// The columns compared for drift, in the order the model takes them.
    pub features: Vec<String>,
    /// The label column, if the data has one.
    pub target: Option<String>,
    /// Where the reference was read from.
    pub source: String,
    /// Its values.
    pub dataset: Dataset,
}

/// Ground truth for one row of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The request the prediction answered.
    pub request_id: String,
    /// Row within the request.
    #[serde(default)]
    pub row: i64,
    /// The true value: a number or a class name.
    pub label: serde_json::Value,
    /// When it was recorded.
    #[serde(default)]
    pub timestamp_ms: i64,
}

/// Recorded labels by (request id, row).
pub type Labels = HashMap<(String, i64), serde_json::Value>;

/// The most rows of a window kept for drift: beyond it, a uniform random sample of this size
/// (reservoir sampling) stands for the window, so a query's memory is bounded by the sample,
/// not by the traffic logged (a KS or chi-squared test on 200,000 rows is as decisive as on
/// millions).
pub const WINDOW_SAMPLE_ROWS: usize = 200_000;

/// Logged predictions of one model version in a time window: every row, or a uniform sample
/// of [`WINDOW_SAMPLE_ROWS`] of them when there are more ([`Window::rows`] counts them all).
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Start (inclusive) and end (exclusive), in ms since the epoch.
    pub from_ms: i64,
    /// End of the window.
    pub to_ms: i64,
    /// Rows logged in the window (more than `keys.len()` when sampled).
    pub rows: u64,
    /// (request id, row) of each logged row.
    pub keys: Vec<(String, i64)>,
    /// When each row was answered.
    pub timestamps: Vec<i64>,
    /// Input columns, in the order first seen.
    pub inputs: Vec<(String, Column)>,
    /// Output columns (without the `_output:` prefix).
    pub outputs: Vec<(String, Column)>,
}

/// One logged column; missing values are NaN (numbers) or `None` (text).
#[derive(Debug, Clone)]
pub enum Column {
    /// Numbers, and whether every file stored them as integers.
    Numbers(Vec<f64>, bool),
    /// Text.
    Text(Vec<Option<String>>),
}

/// One value of a [`Column`].
enum Cell {
    Number(f64),
    Text(Option<String>),
}

impl Column {
    fn cell(&self, i: usize) -> Cell {
        match self {
            Column::Numbers(v, _) => Cell::Number(v.get(i).copied().unwrap_or(f64::NAN)),
            Column::Text(v) => Cell::Text(v.get(i).cloned().flatten()),
        }
    }

    /// Sets row `i` (within the column's length) to `cell`, or to missing when the kinds
    /// differ.
    fn set(&mut self, i: usize, cell: Option<Cell>) {
        match (self, cell) {
            (Column::Numbers(v, _), Some(Cell::Number(x))) => v[i] = x,
            (Column::Numbers(v, _), _) => v[i] = f64::NAN,
            (Column::Text(v), Some(Cell::Text(t))) => v[i] = t,
            (Column::Text(v), _) => v[i] = None,
        }
    }

    fn empty_like(&self) -> Column {
        match self {
            Column::Numbers(_, integer) => Column::Numbers(Vec::new(), *integer),
            Column::Text(_) => Column::Text(Vec::new()),
        }
    }

    fn pad(&mut self, len: usize) {
        match self {
            Column::Numbers(v, _) => v.resize(len, f64::NAN),
            Column::Text(v) => v.resize(len, None),
        }
    }

    fn sample(&self) -> Sample {
        match self {
            Column::Numbers(v, integer) => {
                let mut values: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                let missing = (v.len() - values.len()) as u64;
                values.sort_unstable_by(f64::total_cmp);
                Sample::Numbers {
                    values,
                    integer: *integer && missing == 0,
                    missing,
                }
            }
            Column::Text(v) => {
                let mut counts = BTreeMap::new();
                let mut missing = 0;
                for s in v {
                    match s {
                        Some(s) => *counts.entry(s.clone()).or_insert(0) += 1,
                        None => missing += 1,
                    }
                }
                Sample::Labels {
                    counts,
                    missing,
                    boolean: false,
                }
            }
        }
    }
}

/// Drift of a window against the reference.
#[derive(Debug, Clone)]
pub struct WindowDrift {
    /// The window's bounds and rows.
    pub from_ms: i64,
    /// End of the window.
    pub to_ms: i64,
    /// Rows logged in the window; the report compares a uniform sample of
    /// [`WINDOW_SAMPLE_ROWS`] of them when there are more.
    pub rows: u64,
    /// The column-by-column report.
    pub report: DriftReport,
}

/// Accuracy or error of labelled predictions over one time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBucket {
    /// Bucket start (inclusive), ms.
    pub from_ms: i64,
    /// Bucket end (exclusive), ms.
    pub to_ms: i64,
    /// Rows predicted.
    pub predictions: u64,
    /// Rows with a label.
    pub labeled: u64,
    /// Share of labelled rows predicted right (classification).
    pub accuracy: Option<f64>,
    /// Mean absolute error (regression).
    pub mae: Option<f64>,
    /// Root mean squared error (regression).
    pub rmse: Option<f64>,
}

/// Live monitoring: the prediction log in an artifact store (a folder or a bucket), and the
/// shared state (references, labels, alert rules and events) in the metadata store.
#[derive(Clone)]
pub struct Monitor {
    logs: Arc<dyn ArtifactStore>,
    state: Arc<dyn MonitoringStore>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Monitoring with its prediction log in `logs` (under `predictions/`) and shared state in
    /// `state`.
    pub fn open(logs: Arc<dyn ArtifactStore>, state: Arc<dyn MonitoringStore>) -> Monitor {
        Monitor { logs, state }
    }

    /// Where the prediction log lives.
    pub fn logs(&self) -> &Arc<dyn ArtifactStore> {
        &self.logs
    }

    /// The store of shared state.
    pub fn state(&self) -> &Arc<dyn MonitoringStore> {
        &self.state
    }

    /// Reads `data` (CSV/TSV/Parquet) and stores it as the training reference of `model`
    /// `version`. Features are `features`, or every column but `target`.
    pub fn set_reference(
        &self,
        model: &str,
        version: &str,
        data: &Path,
        target: Option<&str>,
        features: Option<Vec<String>>,
    ) -> Result<Reference> {
        let dataset = Dataset::read(data)?;
        let names: Vec<&str> = dataset.columns.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(t) = target {
            if !names.contains(&t) {
                return Err(Error::Invalid(format!(
                    "{}: no target column {t:?} (columns: {})",
                    data.display(),
                    names.join(", ")
                )));
            }
        }
        let features = match features {
            Some(f) if !f.is_empty() => {
                if let Some(missing) = f.iter().find(|c| !names.contains(&c.as_str())) {
                    return Err(Error::Invalid(format!(
                        "{}: no feature column {missing:?} (columns: {})",
                        data.display(),
                        names.join(", ")
                    )));
                }
                f
            }
            _ => names
                .iter()
                .filter(|n| Some(**n) != target)
                .map(|n| n.to_string())
                .collect(),
        };
        if features.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no feature columns",
                data.display()
            )));
        }
        let reference = Reference {
            model: model.into(),
            version: version.into(),
            features,
            target: target.map(str::to_owned),
            source: data.display().to_string(),
            dataset,
        };
        self.state.put_reference(&StoredReference {
            model: reference.model.clone(),
            version: reference.version.clone(),
            features: reference.features.clone(),
            target: reference.target.clone(),
            source: reference.source.clone(),
            rows: reference.dataset.rows as i64,
            values: reference.dataset.to_bytes()?,
            created_ms: now_ms(),
        })?;
        Ok(reference)
    }

    /// The training reference of `model` `version`, if one was stored.
    pub fn reference(&self, model: &str, version: &str) -> Result<Option<Reference>> {
        let Some(stored) = self.state.get_reference(model, version)? else {
            return Ok(None);
        };
        let what = format!("the reference of {model} version {version}");
        Ok(Some(Reference {
            dataset: Dataset::from_bytes(&stored.values, &what)?,
            model: stored.model,
            version: stored.version,
            features: stored.features,
            target: stored.target,
            source: stored.source,
        }))
    }

    /// Every (model, version) with a stored reference.
    pub fn referenced_versions(&self) -> Result<Vec<(String, String)>> {
        Ok(self.state.referenced_versions()?)
    }

    /// The predictions of `model` `version` answered in `[from_ms, to_ms)`.
    pub fn window(&self, model: &str, version: &str, from_ms: i64, to_ms: i64) -> Result<Window> {
        let mut window = Window {
            from_ms,
            to_ms,
            ..Window::default()
        };
        let mut sampler = Sampler::new(from_ms, to_ms);
        for file in self.window_files(model, version, from_ms, to_ms)? {
            read_window_file(&*self.logs, &file, from_ms, to_ms, |batch| {
                sampler.add(&mut window, batch);
                Ok(())
            })?;
        }
        Ok(window)
    }

    /// Lists a folder of the log store; a folder that is not there is empty.
    fn listed(&self, dir: &ArtifactPath) -> Result<Vec<cairn_core::ArtifactEntry>> {
        Ok(self.logs.list(dir)?)
    }

    /// The hour partitions of a version's log from hour `first` to hour `last` (hour
    /// numbers, inclusive), oldest first. Only the dates in range are listed, so a short
    /// window costs a few listings however long the log is kept.
    fn hours(
        &self,
        version_dir: &ArtifactPath,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, ArtifactPath)>> {
        let mut hours = Vec::new();
        for date in self.listed(version_dir)?.into_iter().filter(|e| e.is_dir) {
            let Some(midnight) = hour_of(&date.path, "hour=0") else {
                continue;
            };
            if midnight + 23 < first || midnight > last {
                continue;
            }
            let date_dir = version_dir.join(&file_path(&date.path)?);
            for hour in self.listed(&date_dir)?.into_iter().filter(|e| e.is_dir) {
                if let Some(n) =
                    hour_of(&date.path, &hour.path).filter(|n| (first..=last).contains(n))
                {
                    hours.push((n, date_dir.join(&file_path(&hour.path)?)));
                }
            }
        }
        hours.sort_by_key(|(n, _)| *n);
        Ok(hours)
    }

    /// The files of an hour partition that hold its rows: a compacted file stands for every
    /// file written before it (they are deleted after it is written; a reader in between must
    /// not count their rows twice).
    fn hour_files(&self, hour_dir: &ArtifactPath) -> Result<Vec<(String, (i64, i64))>> {
        let entries = self.listed(hour_dir)?;
        let compacted_at = entries
            .iter()
            .filter(|e| is_compacted(&e.path))
            .filter_map(|e| {
                e.path
                    .split('-')
                    .nth(3)?
                    .split('.')
                    .next()?
                    .parse::<u128>()
                    .ok()
            })
            .max();
        let mut files: Vec<(String, (i64, i64))> = entries
            .into_iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| file_span(&e.path).map(|span| (e.path, span)))
            .filter(|(name, _)| match compacted_at {
                None => true,
                Some(at) => {
                    is_compacted(name)
                        || name
                            .split('-')
                            .nth(2)
                            .and_then(|n| n.parse::<u128>().ok())
                            .is_some_and(|written| written > at)
                }
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// The files of a version's log that may hold rows of `[from_ms, to_ms)`, oldest first.
    fn window_files(
        &self,
        model: &str,
        version: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ArtifactPath>> {
        let version_dir = version_partition(model, version)?;
        let (first_hour, last_hour) =
            (from_ms.div_euclid(HOUR_MS), (to_ms - 1).div_euclid(HOUR_MS));
        let mut files = Vec::new();
        for (_, dir) in self.hours(&version_dir, first_hour, last_hour)? {
            for (name, (first, last)) in self.hour_files(&dir)? {
                if last >= from_ms && first < to_ms {
                    files.push(dir.join(&file_path(&name)?));
                }
            }
        }
        Ok(files)
    }

    /// Every (model partition, version partition) folder of the log.
    fn version_dirs(&self) -> Result<Vec<ArtifactPath>> {
        let top = file_path(PREDICTIONS_DIR)?;
        let mut out = Vec::new();
        for model in self.listed(&top)?.into_iter().filter(|e| e.is_dir) {
            let model_dir = top.join(&file_path(&model.path)?);
            for version in self.listed(&model_dir)?.into_iter().filter(|e| e.is_dir) {
                out.push(model_dir.join(&file_path(&version.path)?));
            }
        }
        Ok(out)
    }

    /// Deletes logged predictions older than `before_ms`: whole hour partitions when every
    /// row is older, single files at the edge. Returns how many files were deleted.
    pub fn prune_predictions(&self, before_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        for version_dir in self.version_dirs()? {
            for (hour, dir) in
                self.hours(&version_dir, i64::MIN / 2, before_ms.div_euclid(HOUR_MS))?
            {
                if (hour + 1) * HOUR_MS <= before_ms {
                    deleted += self.listed(&dir)?.len();
                    match self.logs.delete(&dir) {
                        Ok(()) | Err(cairn_core::Error::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else if hour * HOUR_MS < before_ms {
                    for (name, (_, last)) in self.hour_files(&dir)? {
                        if last < before_ms {
                            self.logs.delete(&dir.join(&file_path(&name)?))?;
                            deleted += 1;
                        }
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Merges the files of each hour partition in `[from_ms, before_ms)` that ended before
    /// `before_ms` into one file (`<first>-<last>-compacted-<nanos>.parquet`), then deletes
    /// the files merged. Hours already down to one file are left alone. Returns how many hours
    /// were compacted.
    pub fn compact_predictions(&self, from_ms: i64, before_ms: i64) -> Result<usize> {
        let mut compacted = 0;
        let (first, last) = (from_ms.div_euclid(HOUR_MS), before_ms.div_euclid(HOUR_MS));
        for version_dir in self.version_dirs()? {
            for (hour, dir) in self.hours(&version_dir, first, last)? {
                if (hour + 1) * HOUR_MS > before_ms {
                    continue;
                }
                let files = self.hour_files(&dir)?;
                if files.len() < 2 {
                    continue;
                }
                let mut batches = Vec::new();
                for (name, _) in &files {
                    batches.extend(read_log_batches(&*self.logs, &dir.join(&file_path(name)?))?);
                }
                let batches = unify(batches)?;
                let first = files.iter().map(|(_, (f, _))| *f).min().unwrap_or(0);
                let last = files.iter().map(|(_, (_, l))| *l).max().unwrap_or(0);
                let unique = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let merged = dir.join(&file_path(&format!(
                    "{first}-{last}-compacted-{unique}.parquet"
                ))?);
                let bytes = parquet_bytes(&batches)?;
                self.logs.put(&merged, &mut bytes.as_slice())?;
                for (name, _) in &files {
                    match self.logs.delete(&dir.join(&file_path(name)?)) {
                        Ok(()) | Err(cairn_core::Error::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                compacted += 1;
            }
        }
        Ok(compacted)
    }

    /// Drift of the inputs logged in `[from_ms, to_ms)` against the version's reference.
    pub fn drift(
        &self,
        model: &str,
        version: &str,
        from_ms: i64,
        to_ms: i64,
        options: &DriftOptions,
    ) -> Result<WindowDrift> {
        let window = self.window(model, version, from_ms, to_ms)?;
        self.window_drift(model, version, &window, options)
    }

    /// Drift of an already read window against the version's reference.
    pub fn window_drift(
        &self,
        model: &str,
        version: &str,
        window: &Window,
        options: &DriftOptions,
    ) -> Result<WindowDrift> {
        let reference = self.reference(model, version)?.ok_or_else(|| {
            Error::Invalid(format!(
                "model {model:?} version {version:?} has no training reference; set one with `cairn monitor reference models:/{model}/{version} DATA`"
            ))
        })?;
        let current = current_dataset(window, &reference.features)?;
        let report = drift::compare(&reference.dataset, &current, options)?;
        Ok(WindowDrift {
            from_ms: window.from_ms,
            to_ms: window.to_ms,
            rows: window.rows,
            report,
        })
    }

    /// Records ground-truth labels durably (committed before returning).
    pub fn record_labels(&self, labels: &[Label]) -> Result<()> {
        let stored: Vec<StoredLabel> = labels
            .iter()
            .map(|l| StoredLabel {
                request_id: l.request_id.clone(),
                row: l.row,
                value: l.label.to_string(),
                timestamp_ms: l.timestamp_ms,
            })
            .collect();
        Ok(self.state.record_labels(&stored)?)
    }

    /// The labels of the requests in `keys` (request id, row), found by request id.
    pub fn labels_for(&self, keys: &[(String, i64)]) -> Result<Labels> {
        let mut ids: Vec<String> = keys.iter().map(|(id, _)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut labels = Labels::new();
        for chunk in ids.chunks(LABEL_LOOKUP_BATCH) {
            for l in self.state.labels_for(chunk)? {
                // A label the store holds is JSON the monitor wrote; anything else is skipped.
                if let Ok(value) = serde_json::from_str(&l.value) {
                    labels.insert((l.request_id, l.row), value);
                }
            }
        }
        Ok(labels)
    }

    /// Deletes labels recorded before `before_ms`; answers how many.
    pub fn prune_labels(&self, before_ms: i64) -> Result<u64> {
        Ok(self.state.prune_labels(before_ms)?)
    }

    /// Accuracy (classification) or MAE/RMSE (regression) of the labelled predictions in
    /// `[from_ms, to_ms)`, in buckets of `bucket_ms`: the log is read batch by batch, and each
    /// batch's labels are looked up by its request ids.
    pub fn metrics(
        &self,
        model: &str,
        version: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<MetricBucket>> {
        let mut buckets = MetricBuckets::new(from_ms, to_ms, bucket_ms)?;
        for file in self.window_files(model, version, from_ms, to_ms)? {
            read_window_file(&*self.logs, &file, from_ms, to_ms, |batch| {
                let labels = self.labels_for(&batch.keys)?;
                buckets.add(&batch, &labels);
                Ok(())
            })?;
        }
        Ok(buckets.finish())
    }

    /// The alert rules, by name.
    pub fn alert_rules(&self) -> Result<Vec<AlertRule>> {
        self.state
            .alert_rules()?
            .into_iter()
            .map(|stored| {
                let origin = format!("alert rule {:?}", stored.name);
                let raw: RawRule = serde_yaml::from_str(&stored.body)
                    .map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
                AlertRule::from_raw(raw)
            })
            .collect()
    }

    /// Adds (or replaces, by name) a rule.
    pub fn add_alert_rule(&self, rule: AlertRule) -> Result<()> {
        let body = serde_yaml::to_string(&rule.raw()).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self.state.put_alert_rule(&StoredAlertRule {
            name: rule.name,
            body,
        })?)
    }

    /// Adds (or replaces, by name) every rule of a rules file (`alerts:` list, YAML), all
    /// checked before any is stored.
    pub fn add_alert_rules_from(&self, text: &str, origin: &str) -> Result<usize> {
        let rules = AlertRule::parse_file(text, origin)?;
        let n = rules.len();
        for rule in rules {
            self.add_alert_rule(rule)?;
        }
        Ok(n)
    }

    /// Records an alert firing or resolving (committed before returning); answers its id.
    pub fn record_alert(&self, event: &AlertEvent) -> Result<i64> {
        let body = serde_json::to_string(event).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self.state.record_alert_event(&StoredAlertEvent {
            rule: event.alert.clone(),
            model: event.model.clone(),
            version: event.version.clone(),
            at_ms: event.at_ms,
            body,
        })?)
    }

    /// Writes a recorded event again with what its webhook answered.
    pub fn set_alert_outcome(&self, id: i64, event: &AlertEvent) -> Result<()> {
        let body = serde_json::to_string(event).map_err(|e| Error::Invalid(e.to_string()))?;
        self.state.update_alert_event(id, &body)?;
        Ok(())
    }

    /// Recorded alert events, oldest first: every one, or the newest `limit`.
    pub fn alert_events(&self, limit: Option<usize>) -> Result<Vec<AlertEvent>> {
        Ok(self
            .state
            .alert_events(limit)?
            .iter()
            .filter_map(|e| serde_json::from_str(&e.body).ok())
            .collect())
    }
}

/// Accuracy (classification) or MAE/RMSE (regression) of a window's labelled predictions, in
/// buckets of `bucket_ms`. (For a sampled window, of its sample; [`Monitor::metrics`] streams
/// every row.)
pub fn window_metrics(
    window: &Window,
    bucket_ms: i64,
    labels: &Labels,
) -> Result<Vec<MetricBucket>> {
    let mut buckets = MetricBuckets::new(window.from_ms, window.to_ms, bucket_ms)?;
    buckets.add(window, labels);
    Ok(buckets.finish())
}

/// What the metrics of one bucket need, accumulated row by row: classification and regression
/// sums both, since which one applies is known only when every label has been seen.
#[derive(Clone, Default)]
struct BucketSums {
    predictions: u64,
    labeled: u64,
    right: u64,
    abs_error: f64,
    squared_error: f64,
}

/// Metric buckets filled batch by batch: memory is the buckets, not the rows.
struct MetricBuckets {
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    sums: Vec<BucketSums>,
    /// Whether every label seen so far names a class.
    classification: bool,
}

impl MetricBuckets {
    fn new(from_ms: i64, to_ms: i64, bucket_ms: i64) -> Result<Self> {
        if bucket_ms <= 0 || to_ms <= from_ms {
            return Err(Error::Invalid(
                "a metrics window needs a positive bucket and an end after its start".into(),
            ));
        }
        let buckets = ((to_ms - from_ms + bucket_ms - 1) / bucket_ms).min(100_000) as usize;
        Ok(MetricBuckets {
            from_ms,
            to_ms,
            bucket_ms,
            sums: vec![BucketSums::default(); buckets],
            classification: true,
        })
    }

    fn add(&mut self, window: &Window, labels: &Labels) {
        let predicted = predictions_of(window);
        for (i, key) in window.keys.iter().enumerate() {
            let b = ((window.timestamps[i] - self.from_ms) / self.bucket_ms) as usize;
            let Some(sums) = self.sums.get_mut(b) else {
                continue;
            };
            sums.predictions += 1;
            if let (Some(label), Some(p)) = (labels.get(key), predicted.get(i)) {
                sums.labeled += 1;
                self.classification &= is_class(label);
                sums.right += u64::from(p.matches_class(label));
                let error = p.value() - label.as_f64().unwrap_or(f64::NAN);
                sums.abs_error += error.abs();
                sums.squared_error += error * error;
            }
        }
    }

    fn finish(self) -> Vec<MetricBucket> {
        let (from_ms, to_ms, bucket_ms) = (self.from_ms, self.to_ms, self.bucket_ms);
        let classification = self.classification;
        self.sums
            .into_iter()
            .enumerate()
            .map(|(b, s)| {
                let from = from_ms + b as i64 * bucket_ms;
                let mut bucket = MetricBucket {
                    from_ms: from,
                    to_ms: (from + bucket_ms).min(to_ms),
                    predictions: s.predictions,
                    labeled: s.labeled,
                    accuracy: None,
                    mae: None,
                    rmse: None,
                };
                if s.labeled > 0 {
                    let n = s.labeled as f64;
                    if classification {
                        bucket.accuracy = Some(s.right as f64 / n);
                    } else {
                        bucket.mae = Some(s.abs_error / n);
                        bucket.rmse = Some((s.squared_error / n).sqrt());
                    }
                }
                bucket
            })
            .collect()
    }
}

/// Keeps a uniform random sample of at most `capacity` ([`WINDOW_SAMPLE_ROWS`]) rows of a window read
/// batch by batch (Vitter's algorithm R), seeded by the window so a query repeats.
struct Sampler {
    state: u64,
    capacity: usize,
}

impl Sampler {
    fn new(from_ms: i64, to_ms: i64) -> Self {
        Sampler {
            state: (from_ms as u64).rotate_left(17) ^ (to_ms as u64) ^ 0x9e37_79b9_7f4a_7c15,
            capacity: WINDOW_SAMPLE_ROWS,
        }
    }

    /// splitmix64: a uniform number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((u128::from(z) * u128::from(n)) >> 64) as u64
    }

    /// Adds `batch`'s rows to `window`: appended while there is room, then each replacing a
    /// random kept row with the probability that keeps the sample uniform.
    fn add(&mut self, window: &mut Window, batch: Window) {
        // Which of the batch's columns feeds each of the window's (by name), found once.
        let mut feeds: Vec<Vec<Option<usize>>> = Vec::with_capacity(2);
        for (lists, batch_lists) in [
            (&mut window.inputs, &batch.inputs),
            (&mut window.outputs, &batch.outputs),
        ] {
            for (name, column) in batch_lists {
                match lists.iter_mut().find(|(n, _)| n == name) {
                    Some((_, kept)) => {
                        // Integers only while every file stored them as integers.
                        if let (Column::Numbers(_, integer), Column::Numbers(_, false)) =
                            (kept, column)
                        {
                            *integer = false;
                        }
                    }
                    None => lists.push((name.clone(), column.empty_like())),
                }
            }
            feeds.push(
                lists
                    .iter()
                    .map(|(name, _)| batch_lists.iter().position(|(n, _)| n == name))
                    .collect(),
            );
        }
        for i in 0..batch.keys.len() {
            window.rows += 1;
            let at = if window.keys.len() < self.capacity {
                window.keys.push(batch.keys[i].clone());
                window.timestamps.push(batch.timestamps[i]);
                window.keys.len() - 1
            } else {
                let r = self.below(window.rows) as usize;
                if r >= self.capacity {
                    continue;
                }
                window.keys[r] = batch.keys[i].clone();
                window.timestamps[r] = batch.timestamps[i];
                r
            };
            let len = window.keys.len();
            for ((lists, batch_lists), feed) in [
                (&mut window.inputs, &batch.inputs),
                (&mut window.outputs, &batch.outputs),
            ]
            .into_iter()
            .zip(&feeds)
            {
                for ((_, column), from) in lists.iter_mut().zip(feed) {
                    column.pad(len);
                    column.set(at, from.map(|b| batch_lists[b].1.cell(i)));
                }
            }
        }
    }
}

/// Reads one log file batch by batch, handing each batch's rows in `[from_ms, to_ms)` to
/// `each` as a small window of its own (the file is never held whole).
/// A log file's record batches.
fn read_log_batches(logs: &dyn ArtifactStore, path: &ArtifactPath) -> Result<Vec<RecordBatch>> {
    let (mut reader, size) = logs.open(path)?;
    let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(Path::new(&path.as_string()), e))?;
    let bad = |e: parquet::errors::ParquetError| {
        Error::Invalid(format!(
            "{}: not a prediction log file ({e})",
            path.as_string()
        ))
    };
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(bad)?
        .with_batch_size(65_536)
        .build()
        .map_err(bad)?;
    batches
        .map(|b| b.map_err(|e| Error::Invalid(format!("{}: {e}", path.as_string()))))
        .collect()
}

/// Batches of several log files (their columns may differ: a model's inputs changed, or one
/// file saw an output the other did not) as batches of one schema, the union of their
/// columns, missing values null.
fn unify(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let mut fields: Vec<Field> = Vec::new();
    for batch in &batches {
        for field in batch.schema().fields() {
            match fields.iter_mut().find(|f| f.name() == field.name()) {
                Some(known) if known.data_type() != field.data_type() => {
                    // Integers met floats: the column becomes floats, as the writer does.
                    *known = Field::new(field.name(), DataType::Float64, true);
                }
                Some(_) => {}
                None => fields.push(field.as_ref().clone().with_nullable(true)),
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    batches
        .into_iter()
        .map(|batch| {
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    None => arrow_array::new_null_array(field.data_type(), batch.num_rows()),
                    Some(c) if c.data_type() == field.data_type() => c.clone(),
                    Some(c) => {
                        let ints = c.as_primitive::<Int64Type>();
                        Arc::new(Float64Array::from_iter(
                            ints.iter().map(|v| v.map(|n| n as f64)),
                        ))
                    }
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| Error::Invalid(format!("prediction log: {e}")))
        })
        .collect()
}

fn read_window_file(
    logs: &dyn ArtifactStore,
    path: &ArtifactPath,
    from_ms: i64,
    to_ms: i64,
    mut each: impl FnMut(Window) -> Result<()>,
) -> Result<()> {
    let batches = read_log_batches(logs, path)?;
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let find = |n: &str| names.iter().position(|c| c == n);
    let (Some(id_at), Some(row_at), Some(ts_at)) =
        (find("_request_id"), find("_row"), find("_timestamp_ms"))
    else {
        return Err(Error::Invalid(format!(
            "{}: not a prediction log file",
            path.as_string()
        )));
    };
    for batch in batches {
        let mut window = Window {
            from_ms,
            to_ms,
            ..Window::default()
        };
        let ids = batch.column(id_at).as_string::<i32>();
        let rows = batch.column(row_at).as_primitive::<Int64Type>();
        let stamps = batch.column(ts_at).as_primitive::<Int64Type>();
        let keep: Vec<usize> = (0..batch.num_rows())
            .filter(|&i| {
                let t = stamps.value(i);
                t >= window.from_ms && t < window.to_ms
            })
            .collect();
        if keep.is_empty() {
            continue;
        }
        let start = window.keys.len();
        for &i in &keep {
            window.keys.push((ids.value(i).to_owned(), rows.value(i)));
            window.timestamps.push(stamps.value(i));
        }
        let len = window.keys.len();
        for (c, name) in names.iter().enumerate() {
            let (list, name) = if let Some(out) = name.strip_prefix(OUTPUT_PREFIX) {
                (&mut window.outputs, out)
            } else if name.starts_with('_') {
                continue;
            } else {
                (&mut window.inputs, name.as_str())
            };
            let array = batch.column(c);
            let at = match list.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    let mut column = match array.data_type() {
                        DataType::Utf8 => Column::Text(Vec::new()),
                        dt => Column::Numbers(Vec::new(), *dt == DataType::Int64),
                    };
                    column.pad(start);
                    list.push((name.to_owned(), column));
                    list.len() - 1
                }
            };
            let column = &mut list[at].1;
            column.pad(start);
            match column {
                Column::Numbers(values, integer) => {
                    if let Some(a) = array.as_primitive_opt::<Float64Type>() {
                        *integer = false;
                        values.extend(keep.iter().map(|&i| {
                            if a.is_null(i) {
                                f64::NAN
                            } else {
                                a.value(i)
                            }
                        }));
                    } else if let Some(a) = array.as_primitive_opt::<Int64Type>() {
                        values.extend(keep.iter().map(|&i| {
                            if a.is_null(i) {
                                f64::NAN
                            } else {
                                a.value(i) as f64
                            }
                        }));
                    }
                }
                Column::Text(values) => {
                    if let Some(a) = array.as_string_opt::<i32>() {
                        values.extend(
                            keep.iter()
                                .map(|&i| (!a.is_null(i)).then(|| a.value(i).to_owned())),
                        );
                    }
                }
            }
            column.pad(len);
        }
        for (_, c) in window.inputs.iter_mut().chain(window.outputs.iter_mut()) {
            c.pad(len);
        }
        window.rows = len as u64;
        each(window)?;
    }
    Ok(())
}

/// The window's inputs as a dataset named like the reference's features: by name when every
/// feature was logged under its own name, otherwise by position when the counts agree (a
/// model taking one `[N, k]` tensor logs `x[0]`..`x[k-1]`).
fn current_dataset(window: &Window, features: &[String]) -> Result<Dataset> {
    if window.keys.is_empty() {
        return Err(Error::Invalid(format!(
            "no predictions were logged between {} and {} (ms since the epoch)",
            window.from_ms, window.to_ms
        )));
    }
    let by_name = features
        .iter()
        .all(|f| window.inputs.iter().any(|(n, _)| n == f));
    let columns: Vec<(String, Sample)> = if by_name {
        features
            .iter()
            .filter_map(|f| window.inputs.iter().find(|(n, _)| n == f))
            .map(|(n, c)| (n.clone(), c.sample()))
            .collect()
    } else if window.inputs.len() == features.len() {
        features
            .iter()
            .zip(&window.inputs)
            .map(|(f, (_, c))| (f.clone(), c.sample()))
            .collect()
    } else {
        return Err(Error::Invalid(format!(
            "the logged inputs ({}) do not match the reference's features ({})",
            window
                .inputs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            features.join(", ")
        )));
    };
    Ok(Dataset {
        rows: window.keys.len() as u64,
        columns,
    })
}

/// What a model answered for one row, reduced to one value.
#[derive(Debug)]
enum Predicted {
    /// One number: a regression value, an integer class, or a probability of class 1.
    Number { value: f64, integer: bool },
    /// The index of the largest of several scores.
    Argmax(usize),
    /// A class name.
    Text(String),
}

impl Predicted {
    fn value(&self) -> f64 {
        match self {
            Predicted::Number { value, .. } => *value,
            Predicted::Argmax(i) => *i as f64,
            Predicted::Text(_) => f64::NAN,
        }
    }

    fn matches_class(&self, label: &serde_json::Value) -> bool {
        match (self, label) {
            (Predicted::Text(p), serde_json::Value::String(l)) => p == l,
            (Predicted::Text(p), l) => {
                l.as_bool()
                    .is_some_and(|b| p == if b { "True" } else { "False" })
                    || l.as_f64().is_some_and(|f| p.parse::<f64>() == Ok(f))
            }
            (Predicted::Argmax(i), l) => l.as_f64() == Some(*i as f64),
            (Predicted::Number { value, integer }, l) => {
                let Some(l) = l.as_f64() else {
                    return false;
                };
                if *integer || value.fract() == 0.0 && !(0.0..1.0).contains(value) {
                    *value == l
                } else {
                    // A probability of class 1.
                    f64::from(u8::from(*value >= 0.5)) == l
                }
            }
        }
    }
}

fn is_class(label: &serde_json::Value) -> bool {
    match label {
        serde_json::Value::String(_) | serde_json::Value::Bool(_) => true,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// The first output tensor of each row, reduced to a [`Predicted`].
fn predictions_of(window: &Window) -> Vec<Predicted> {
    let Some((first, _)) = window.outputs.first() else {
        return Vec::new();
    };
    let base = first.split('[').next().unwrap_or(first).to_owned();
    let parts: Vec<&Column> = window
        .outputs
        .iter()
        .filter(|(n, _)| n == &base || n.starts_with(&format!("{base}[")))
        .map(|(_, c)| c)
        .collect();
    (0..window.keys.len())
        .map(|i| match parts.as_slice() {
            [Column::Text(v)] => Predicted::Text(v[i].clone().unwrap_or_default()),
            [Column::Numbers(v, integer)] => Predicted::Number {
                value: v[i],
                integer: *integer,
            },
            many => {
                let mut best = (0, f64::NEG_INFINITY);
                for (j, c) in many.iter().enumerate() {
                    if let Column::Numbers(v, _) = c {
                        if v[i] > best.1 {
                            best = (j, v[i]);
                        }
                    }
                }
                Predicted::Argmax(best.0)
            }
        })
        .collect()
}

/// What an alert rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertMetric {
    /// Share of drifted columns.
    DriftShare,
    /// 1 when the dataset drifted, else 0.
    DatasetDrift,
    /// One column's drift score.
    DriftScore(String),
    /// Accuracy of labelled predictions.
    Accuracy,
    /// Mean absolute error of labelled predictions.
    Mae,
    /// Root mean squared error of labelled predictions.
    Rmse,
}

impl AlertMetric {
    /// Parses `drift_share`, `dataset_drift`, `drift_score:COLUMN`, `accuracy`, `mae`, `rmse`.
    pub fn parse(s: &str) -> Result<AlertMetric> {
        Ok(match s {
            "drift_share" => AlertMetric::DriftShare,
            "dataset_drift" => AlertMetric::DatasetDrift,
            "accuracy" => AlertMetric::Accuracy,
            "mae" => AlertMetric::Mae,
            "rmse" => AlertMetric::Rmse,
            other => match other.strip_prefix("drift_score:") {
                Some(c) if !c.is_empty() => AlertMetric::DriftScore(c.to_owned()),
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown alert metric {other:?} (drift_share, dataset_drift, drift_score:COLUMN, accuracy, mae, rmse)"
                    )))
                }
            },
        })
    }

    /// The name `parse` reads.
    pub fn name(&self) -> String {
        match self {
            AlertMetric::DriftShare => "drift_share".into(),
            AlertMetric::DatasetDrift => "dataset_drift".into(),
            AlertMetric::DriftScore(c) => format!("drift_score:{c}"),
            AlertMetric::Accuracy => "accuracy".into(),
            AlertMetric::Mae => "mae".into(),
            AlertMetric::Rmse => "rmse".into(),
        }
    }

    /// Whether the metric needs labels rather than drift.
    pub fn needs_labels(&self) -> bool {
        matches!(
            self,
            AlertMetric::Accuracy | AlertMetric::Mae | AlertMetric::Rmse
        )
    }

    /// The metric's value in a drift report or a metrics bucket.
    pub fn value(
        &self,
        drift: Option<&DriftReport>,
        metrics: Option<&MetricBucket>,
    ) -> Option<f64> {
        match self {
            AlertMetric::DriftShare => drift.map(|d| d.share),
            AlertMetric::DatasetDrift => drift.map(|d| f64::from(u8::from(d.dataset_drift))),
            AlertMetric::DriftScore(c) => drift.and_then(|d| {
                d.columns
                    .iter()
                    .find(|x| &x.column == c && x.method.is_some())
                    .map(|x| x.score)
            }),
            AlertMetric::Accuracy => metrics.and_then(|m| m.accuracy),
            AlertMetric::Mae => metrics.and_then(|m| m.mae),
            AlertMetric::Rmse => metrics.and_then(|m| m.rmse),
        }
    }
}

/// A rule: when `metric` of `model` (one version, or each monitored one) over the last
/// `window_seconds` goes above `above` or below `below`, the alert fires once (recorded,
/// and posted to `webhook`), and resolves when the value comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Unique name.
    pub name: String,
    /// Model name.
    pub model: String,
    /// One version, or every version with a reference.
    pub version: Option<String>,
    /// What is watched.
    pub metric: AlertMetric,
    /// Fires when the value is greater than this.
    pub above: Option<f64>,
    /// Fires when the value is less than this.
    pub below: Option<f64>,
    /// How far back the value is computed.
    pub window_seconds: u64,
    /// Where a firing is posted (JSON), if anywhere.
    pub webhook: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<serde_yaml::Value>,
    metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    alerts: Vec<RawRule>,
}

/// Default window of alert rules and gauges: one hour.
pub const DEFAULT_WINDOW_SECONDS: u64 = 3600;

/// Parses `90`, `90s`, `15m`, `1h`, `2d` as seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| Error::Invalid(format!("{s:?} is not a duration (like 90s, 15m, 1h, 2d)")))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(Error::Invalid(format!(
                "{s:?} is not a duration (like 90s, 15m, 1h, 2d)"
            )))
        }
    };
    if n == 0 {
        return Err(Error::Invalid(format!("duration {s:?} must be positive")));
    }
    // Windows become milliseconds and bucket counts downstream: keep them far from overflow.
    match n.checked_mul(scale) {
        Some(seconds) if seconds <= MAX_DURATION_SECS => Ok(seconds),
        _ => Err(Error::Invalid(format!(
            "duration {s:?} is longer than the limit of 3650d"
        ))),
    }
}

/// Longest duration taken anywhere (windows, retention): ten years.
pub const MAX_DURATION_SECS: u64 = 3650 * 86_400;

fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl AlertRule {
    fn parse_file(text: &str, origin: &str) -> Result<Vec<AlertRule>> {
        let file: RulesFile =
            serde_yaml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
        let mut rules: Vec<AlertRule> = Vec::new();
        for raw in file.alerts {
            let rule =
                AlertRule::from_raw(raw).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(Error::Invalid(format!(
                    "{origin}: two alert rules are named {:?}",
                    rule.name
                )));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    fn from_raw(raw: RawRule) -> Result<AlertRule> {
        let name = raw.name;
        let bad = |what: String| Error::Invalid(format!("alert {name:?}: {what}"));
        if raw.above.is_none() == raw.below.is_none() {
            return Err(bad("give exactly one of `above` and `below`".into()));
        }
        if raw.above.is_some_and(|v| !v.is_finite()) || raw.below.is_some_and(|v| !v.is_finite()) {
            return Err(bad("the threshold must be a finite number".into()));
        }
        let metric = AlertMetric::parse(&raw.metric).map_err(|e| bad(e.to_string()))?;
        let version = match &raw.version {
            None => None,
            Some(v) => Some(
                scalar_text(v).ok_or_else(|| bad("`version` must be a number or text".into()))?,
            ),
        };
        let window_seconds = match &raw.window {
            None => DEFAULT_WINDOW_SECONDS,
            Some(v) => {
                let text = scalar_text(v).ok_or_else(|| bad("`window` must be like 1h".into()))?;
                parse_duration(&text).map_err(|e| bad(e.to_string()))?
            }
        };
        if let Some(url) = &raw.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!("webhook {url:?} is not an http(s) URL")));
            }
        }
        if raw.model.is_empty() {
            return Err(bad("`model` is empty".into()));
        }
        Ok(AlertRule {
            name,
            model: raw.model,
            version,
            metric,
            above: raw.above,
            below: raw.below,
            window_seconds,
            webhook: raw.webhook,
        })
    }

    /// Builds a rule from its parts, checked as the rules file is.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        model: &str,
        version: Option<&str>,
        metric: &str,
        above: Option<f64>,
        below: Option<f64>,
        window: Option<&str>,
        webhook: Option<&str>,
    ) -> Result<AlertRule> {
        AlertRule::from_raw(RawRule {
            name: name.into(),
            model: model.into(),
            version: version.map(|v| serde_yaml::Value::String(v.into())),
            metric: metric.into(),
            above,
            below,
            window: window.map(|w| serde_yaml::Value::String(w.into())),
            webhook: webhook.map(str::to_owned),
        })
    }

    fn raw(&self) -> RawRule {
        RawRule {
            name: self.name.clone(),
            model: self.model.clone(),
            version: self.version.clone().map(serde_yaml::Value::String),
            metric: self.metric.name(),
            above: self.above,
            below: self.below,
            window: Some(serde_yaml::Value::String(format!(
                "{}s",
                self.window_seconds
            ))),
            webhook: self.webhook.clone(),
        }
    }

    /// The threshold, whichever side it is on.
    pub fn threshold(&self) -> f64 {
        self.above.or(self.below).unwrap_or(f64::NAN)
    }

    /// Whether `value` breaks the rule.
    pub fn breached(&self, value: f64) -> bool {
        match (self.above, self.below) {
            (Some(a), _) => value > a,
            (_, Some(b)) => value < b,
            _ => false,
        }
    }

    /// Whether the rule watches `model` `version`.
    pub fn watches(&self, model: &str, version: &str) -> bool {
        self.model == model && self.version.as_deref().is_none_or(|v| v == version)
    }
}

/// An alert that fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The rule's name.
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// The rule's metric.
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// `above` or `below`.
    pub condition: String,
    /// The window the value was computed over.
    pub window_from_ms: i64,
    /// End of that window.
    pub window_to_ms: i64,
    /// When it happened.
    pub at_ms: i64,
    /// The webhook's answer: an HTTP status, or the error; `None` without a webhook.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// Which rules are firing for which model versions, so each crossing fires once.
#[derive(Debug, Default)]
pub struct AlertState {
    firing: BTreeMap<(String, String, String), bool>,
}

impl AlertState {
    /// Every (alert, model, version) seen, and whether it is firing, in order.
    pub fn states(&self) -> impl Iterator<Item = (&(String, String, String), bool)> {
        self.firing.iter().map(|(k, f)| (k, *f))
    }

    /// Restores the state from recorded events (the last event of each alert wins).
    pub fn from_events(events: &[AlertEvent]) -> AlertState {
        let mut state = AlertState::default();
        for e in events {
            state.firing.insert(
                (e.alert.clone(), e.model.clone(), e.version.clone()),
                e.state == "firing",
            );
        }
        state
    }

    /// Takes a new value of `rule` for `model` `version`; returns the event when the alert
    /// starts or stops firing.
    pub fn observe(
        &mut self,
        rule: &AlertRule,
        version: &str,
        value: f64,
        window: (i64, i64),
    ) -> Option<AlertEvent> {
        let breached = rule.breached(value);
        let key = (rule.name.clone(), rule.model.clone(), version.to_owned());
        let was = self.firing.get(&key).copied().unwrap_or(false);
        if breached == was {
            return None;
        }
        self.firing.insert(key, breached);
        Some(AlertEvent {
            alert: rule.name.clone(),
            state: if breached { "firing" } else { "resolved" }.into(),
            model: rule.model.clone(),
            version: version.to_owned(),
            metric: rule.metric.name(),
            value,
            threshold: rule.threshold(),
            condition: if rule.above.is_some() {
                "above"
            } else {
                "below"
            }
            .into(),
            window_from_ms: window.0,
            window_to_ms: window.1,
            at_ms: now_ms(),
            webhook: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(id: &str, ts: i64, rows: Vec<[f64; 2]>, probability: Vec<f64>) -> Prediction {
        Prediction {
            request_id: id.into(),
            model: "m".into(),
            version: "1".into(),
            timestamp_ms: ts,
            latency_us: 10,
            inputs: vec![LoggedTensor {
                name: "x".into(),
                shape: vec![rows.len(), 2],
                values: Values::Float(rows.into_iter().flatten().collect()),
            }],
            outputs: vec![LoggedTensor {
                name: "p".into(),
                shape: vec![probability.len()],
                values: Values::Float(probability),
            }],
        }
    }

    /// A batch of `n` rows numbered from `start`: input `x` and key row both the number, a
    /// text input only in odd batches (columns that come and go between files).
    fn numbered_batch(start: i64, n: i64, with_text: bool) -> Window {
        let mut inputs = vec![(
            "x".to_string(),
            Column::Numbers((start..start + n).map(|v| v as f64).collect(), true),
        )];
        if with_text {
            inputs.push((
                "t".to_string(),
                Column::Text((start..start + n).map(|v| Some(v.to_string())).collect()),
            ));
        }
        Window {
            from_ms: 0,
            to_ms: i64::MAX,
            rows: n as u64,
            keys: (start..start + n).map(|v| ("r".to_string(), v)).collect(),
            timestamps: (start..start + n).collect(),
            inputs,
            outputs: vec![],
        }
    }

    #[test]
    fn a_large_window_keeps_a_uniform_aligned_sample_of_bounded_size() {
        let mut sampler = Sampler::new(0, 1);
        sampler.capacity = 1000;
        let mut window = Window::default();
        for b in 0..50 {
            sampler.add(&mut window, numbered_batch(b * 1000, 1000, b % 2 == 1));
        }
        assert_eq!(window.rows, 50_000);
        assert_eq!(window.keys.len(), 1000);
        for (_, column) in &window.inputs {
            match column {
                Column::Numbers(v, _) => assert_eq!(v.len(), 1000),
                Column::Text(v) => assert_eq!(v.len(), 1000),
            }
        }
        // Every kept row's values are that row's: keys, timestamps and columns stay aligned.
        let Column::Numbers(x, _) = &window.inputs[0].1 else {
            panic!("x is numeric")
        };
        let Column::Text(t) = &window.inputs[1].1 else {
            panic!("t is text")
        };
        for (i, (_, row)) in window.keys.iter().enumerate() {
            assert_eq!(x[i], *row as f64);
            assert_eq!(window.timestamps[i], *row);
            let odd_batch = (row / 1000) % 2 == 1;
            assert_eq!(t[i].is_some(), odd_batch, "row {row}");
        }
        // Uniform: the sample's mean is near the population's (24,999.5; sd of the mean of
        // 1,000 draws about 456), and every fifth of the rows is represented.
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        assert!((mean - 24_999.5).abs() < 2_500.0, "mean {mean}");
        for fifth in 0..5 {
            let n = x.iter().filter(|v| (**v as i64) / 10_000 == fifth).count();
            assert!((120..=280).contains(&n), "fifth {fifth}: {n}");
        }
        // Below the capacity, every row is kept in order.
        let mut small = Window::default();
        let mut sampler = Sampler::new(0, 1);
        sampler.add(&mut small, numbered_batch(0, 10, false));
        sampler.add(&mut small, numbered_batch(10, 5, true));
        assert_eq!(small.rows, 15);
        assert_eq!(
            small.keys.iter().map(|k| k.1).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
    }

    /// A monitor on a throw-away SQLite store under `dir`.
    fn test_monitor(dir: &Path) -> Monitor {
        let store = cairn_store::SqlStore::open_sqlite(dir.join("cairn.db")).unwrap();
        let logs = cairn_store::LocalArtifactStore::new(dir.join("monitoring")).unwrap();
        Monitor::open(Arc::new(logs), Arc::new(store))
    }

    /// The writer's encode yields the core to request threads: the kernel reports it at nice 19.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_runs_at_the_lowest_priority() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let _log = PredictionLog::start(&monitor, LogOptions::default()).unwrap();
        let nice_of_writer = || -> Option<String> {
            for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                // The kernel keeps 15 bytes of a thread's name.
                if comm.trim_end() == "cairn-predictio" {
                    let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                    // Fields after the parenthesised name; nice is the 19th field overall.
                    let after = stat.rsplit_once(')')?.1;
                    return after.split_whitespace().nth(16).map(str::to_string);
                }
            }
            None
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = None;
        while std::time::Instant::now() < deadline {
            seen = nice_of_writer();
            if seen.as_deref() == Some("19") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seen.as_deref(), Some("19"), "writer thread's nice value");
    }

    /// The writer hands emptied stagings back for reuse: each file still holds only its own
    /// rows, a tensor of an earlier file leaves no column behind, and text and request ids
    /// come back as sent.
    #[test]
    fn reused_staging_writes_each_file_with_only_its_own_rows_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let log = PredictionLog::start(&monitor, LogOptions::default()).unwrap();
        let hour = HOUR_MS;
        let texts = ["first".to_string(), "second".into()];
        let record = |id: &str, ts: i64, x: &[f32], text: Option<&[String]>| {
            let mut inputs = vec![TensorRef {
                name: "x",
                shape: &[1, 2],
                values: ValuesRef::F32(x),
            }];
            if let Some(t) = text {
                inputs.push(TensorRef {
                    name: "t",
                    shape: &[1],
                    values: ValuesRef::Text(t),
                });
            }
            assert!(log.record_tensors(id, "m", "1", ts, 1, &inputs, &[]));
        };
        record("a", 10, &[1.0, 2.0], Some(&texts[..1]));
        record("b", 20, &[3.0, 4.0], Some(&texts[1..]));
        log.flush();
        // The next hour reuses the emptied file of the same version; no text this time.
        record("c-with-a-longer-id", hour + 10, &[5.0, 6.0], None);
        log.flush();
        record("d", hour + 20, &[7.0, 8.0], Some(&texts[..1]));
        log.flush();
        assert_eq!(log.counters().rows_written.load(Relaxed), 4);
        assert_eq!(log.counters().dropped.load(Relaxed), 0);

        let w = monitor.window("m", "1", 0, 2 * hour).unwrap();
        let ids: Vec<&str> = w.keys.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c-with-a-longer-id", "d"]);
        match &w.inputs.iter().find(|(n, _)| n == "x[1]").unwrap().1 {
            Column::Numbers(v, _) => assert_eq!(v, &[2.0, 4.0, 6.0, 8.0]),
            Column::Text(_) => panic!("x[1] is not text"),
        }
        match &w.inputs.iter().find(|(n, _)| n == "t").unwrap().1 {
            Column::Text(v) => assert_eq!(
                v,
                &[
                    Some("first".into()),
                    Some("second".into()),
                    None,
                    Some("first".into())
                ]
            ),
            Column::Numbers(..) => panic!("t is text"),
        }
        // Three files; the one written without text has no text column.
        let mut files = Vec::new();
        let mut dirs = vec![dir.path().join("monitoring")];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(d).unwrap().flatten() {
                if entry.path().is_dir() {
                    dirs.push(entry.path());
                } else if entry.path().extension().is_some_and(|e| e == "parquet") {
                    files.push(entry.path());
                }
            }
        }
        assert_eq!(files.len(), 3, "{files:?}");
        let mut without_text = 0;
        for file in files {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
                    .unwrap();
            let schema = reader.schema().clone();
            if schema.field_with_name("t").is_err() {
                without_text += 1;
                let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
                assert_eq!(rows, 1);
            }
        }
        assert_eq!(without_text, 1);
    }

    /// The first record batch of a Parquet file's bytes.
    fn first_batch(file: Vec<u8>) -> RecordBatch {
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
    }

    /// Encoding moves the staged vectors into the file's Arrow arrays and takes them back:
    /// the next file is staged into the same memory, with none of the last file's rows.
    #[test]
    fn encoding_takes_the_staged_vectors_back_without_copying() {
        fn addresses(staged: &Staged) -> Vec<usize> {
            let mut at = vec![
                staged.request_ids.as_ptr() as usize,
                staged.request_id_offsets.as_ptr() as usize,
                staged.row_numbers.as_ptr() as usize,
                staged.timestamps.as_ptr() as usize,
                staged.latencies.as_ptr() as usize,
            ];
            for (_, builder, _) in &staged.columns {
                at.push(match builder {
                    Builder::Float(v, _) => v.as_ptr() as usize,
                    Builder::Int(v, _) => v.as_ptr() as usize,
                    Builder::Text(t, _) => t.as_ptr() as usize,
                });
            }
            at
        }
        let mut staged = Staged::with_capacity(8);
        let mut out = Vec::new();
        let mut files = Vec::new();
        let mut after_first = None;
        for (id, x, label) in [("first", [1.0f32, 2.0], 7i64), ("second", [3.0, 4.0], 8)] {
            let inputs = [TensorRef {
                name: "x",
                shape: &[1, 2],
                values: ValuesRef::F32(&x),
            }];
            let labels = [label];
            let outputs = [TensorRef {
                name: "label",
                shape: &[1],
                values: ValuesRef::I64(&labels),
            }];
            assert_eq!(staged.append(id, 10, 1, &inputs, &outputs), 1);
            let before = addresses(&staged);
            let (_, _, rows) = staged.encode(&mut out).unwrap().unwrap();
            assert_eq!(rows, 1);
            let after = addresses(&staged);
            // The writer made the columns in the first file; every vector comes back.
            assert_eq!(after[..5], before[..5], "the same vectors, taken back");
            assert_eq!(after.len(), 5 + 3, "x[0], x[1], output label");
            assert_eq!(after, *after_first.get_or_insert_with(|| after.clone()));
            assert_eq!(staged.len(), 0);
            assert!(staged.row_numbers.capacity() >= 8);
            files.push(out.clone());
        }
        for (bytes, (id, x1, label)) in files
            .into_iter()
            .zip([("first", 2.0, 7), ("second", 4.0, 8)])
        {
            let batch = first_batch(bytes);
            assert_eq!(batch.num_rows(), 1);
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            assert_eq!(column("_request_id").as_string::<i32>().value(0), id);
            assert_eq!(column("x[1]").as_primitive::<Float64Type>().value(0), x1);
            assert_eq!(
                column("_output:label").as_primitive::<Int64Type>().value(0),
                label
            );
        }
    }

    /// A tensor sent as floats, then integers, then floats again fills one column in the
    /// order of its requests (the writer merges the layouts' blocks row by row); a tensor
    /// missing from some requests leaves their rows empty.
    #[test]
    fn a_column_two_layouts_write_to_keeps_its_rows_in_order() {
        let mut staged = Staged::with_capacity(4);
        let (a, b, c, t) = ([1.0f32], [2i64], [3.0f32], ["z".to_string()]);
        for (id, values) in [
            ("a", ValuesRef::F32(&a)),
            ("b", ValuesRef::I64(&b)),
            ("c", ValuesRef::F32(&c)),
            ("d", ValuesRef::Text(&t)),
        ] {
            let y = [10i32, 20];
            let mut inputs = vec![TensorRef {
                name: "x",
                shape: &[1],
                values,
            }];
            // `y` (in one block of its own) comes with the first and third requests only.
            if id == "a" || id == "c" {
                inputs.push(TensorRef {
                    name: "y",
                    shape: &[1, 2],
                    values: ValuesRef::I32(&y),
                });
            }
            assert_eq!(staged.append(id, 1, 1, &inputs, &[]), 1);
        }
        let mut out = Vec::new();
        staged.encode(&mut out).unwrap().unwrap();
        let batch = first_batch(out);
        let x = batch
            .column_by_name("x")
            .unwrap()
            .as_primitive::<Float64Type>();
        let got: Vec<Option<f64>> = x.iter().collect();
        assert_eq!(got, [Some(1.0), Some(2.0), Some(3.0), None]);
        let y1 = batch
            .column_by_name("y[1]")
            .unwrap()
            .as_primitive::<Int64Type>();
        let got: Vec<Option<i64>> = y1.iter().collect();
        assert_eq!(got, [Some(20), None, Some(20), None]);
    }

    #[test]
    fn borrowed_tensors_of_every_type_are_logged_as_the_server_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let log = PredictionLog::start(&monitor, LogOptions::default()).unwrap();
        let (x, flag) = ([0.5f32, 1.5, 2.5, 3.5], [true, false]);
        let (label, score, text) = ([7i32, 8], [0.25f64, 0.75], ["a".to_string(), "b".into()]);
        assert!(log.record_tensors(
            "req",
            "m",
            "1",
            1_000,
            42,
            &[
                TensorRef {
                    name: "x",
                    shape: &[2, 2],
                    values: ValuesRef::F32(&x)
                },
                TensorRef {
                    name: "flag",
                    shape: &[2],
                    values: ValuesRef::Bool(&flag)
                },
            ],
            &[
                TensorRef {
                    name: "label",
                    shape: &[2],
                    values: ValuesRef::I32(&label)
                },
                TensorRef {
                    name: "score",
                    shape: &[2, 1],
                    values: ValuesRef::F64(&score)
                },
                TensorRef {
                    name: "name",
                    shape: &[2],
                    values: ValuesRef::Text(&text)
                },
            ],
        ));
        // A second request of another layout: its missing columns are null, not shifted.
        assert!(log.record_tensors(
            "other",
            "m",
            "1",
            1_001,
            7,
            &[TensorRef {
                name: "x",
                shape: &[1, 2],
                values: ValuesRef::I64(&[4, 5])
            }],
            &[],
        ));
        log.flush();
        assert_eq!(log.counters().rows_written.load(Relaxed), 3);
        let w = monitor.window("m", "1", 0, 2_000).unwrap();
        assert_eq!(
            w.keys,
            vec![("req".into(), 0), ("req".into(), 1), ("other".into(), 0)]
        );
        let numbers = |cols: &[(String, Column)], name: &str| match &cols
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .1
        {
            Column::Numbers(v, integer) => (v.clone(), *integer),
            Column::Text(_) => panic!("{name} is text"),
        };
        assert_eq!(numbers(&w.inputs, "x[0]"), (vec![0.5, 2.5, 4.0], false));
        assert_eq!(numbers(&w.inputs, "x[1]"), (vec![1.5, 3.5, 5.0], false));
        let (flags, integer) = numbers(&w.inputs, "flag");
        assert!(integer);
        assert_eq!(flags[..2], [1.0, 0.0]);
        assert!(flags[2].is_nan());
        assert_eq!(numbers(&w.outputs, "label").0[..2], [7.0, 8.0]);
        assert_eq!(numbers(&w.outputs, "score").0[..2], [0.25, 0.75]);
        match &w.outputs.iter().find(|(n, _)| n == "name").unwrap().1 {
            Column::Text(v) => assert_eq!(v, &[Some("a".into()), Some("b".into()), None]),
            Column::Numbers(..) => panic!("name is not text"),
        }
    }

    #[test]
    fn logged_predictions_come_back_by_window_with_positional_feature_names() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let log = PredictionLog::start(&monitor, LogOptions::default()).unwrap();
        assert!(log.record(prediction(
            "a",
            1000,
            vec![[1.0, 2.0], [3.0, 4.0]],
            vec![0.9, 0.2]
        )));
        assert!(log.record(prediction("b", 5000, vec![[5.0, 6.0]], vec![0.7])));
        log.flush();
        assert_eq!(log.counters().rows_written.load(Relaxed), 3);
        let w = monitor.window("m", "1", 0, 2000).unwrap();
        assert_eq!(w.keys, vec![("a".into(), 0), ("a".into(), 1)]);
        let names: Vec<&str> = w.inputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x[0]", "x[1]"]);
        let current = current_dataset(&w, &["f".into(), "g".into()]).unwrap();
        assert_eq!(current.columns[1].0, "g");
        assert_eq!(
            current.columns[1].1,
            Sample::Numbers {
                values: vec![2.0, 4.0],
                integer: false,
                missing: 0
            }
        );
        let all = monitor.window("m", "1", 0, 10_000).unwrap();
        assert_eq!(all.keys.len(), 3);
        // Each flush wrote one file; the one holding rows up to 5000 ms survives a prune at 3000.
        log.record(prediction("c", 2000, vec![[7.0, 8.0]], vec![0.1]));
        log.flush();
        assert_eq!(monitor.prune_predictions(3000).unwrap(), 1);
        assert_eq!(monitor.window("m", "1", 0, 10_000).unwrap().keys.len(), 3);

        monitor
            .record_labels(&[
                Label {
                    request_id: "a".into(),
                    row: 0,
                    label: 1.into(),
                    timestamp_ms: 0,
                },
                Label {
                    request_id: "a".into(),
                    row: 1,
                    label: 1.into(),
                    timestamp_ms: 0,
                },
                Label {
                    request_id: "b".into(),
                    row: 0,
                    label: 1.into(),
                    timestamp_ms: 0,
                },
            ])
            .unwrap();
        let buckets = monitor.metrics("m", "1", 0, 10_000, 4000).unwrap();
        assert_eq!(buckets.len(), 3);
        assert_eq!((buckets[0].predictions, buckets[0].labeled), (2, 2));
        assert_eq!(buckets[0].accuracy, Some(0.5));
        assert_eq!(buckets[1].accuracy, Some(1.0));
        assert_eq!(buckets[2].labeled, 0);
    }

    #[test]
    fn the_log_is_partitioned_by_model_version_and_hour_and_compacts_per_hour() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let log = PredictionLog::start(&monitor, LogOptions::default()).unwrap();
        // 2024-03-01 10:59:59.000 and 11:00:00.500 UTC: one flush, two hours, two files.
        let ten = (cairn_core::dates::days_from_civil(2024, 3, 1) * 24 + 10) * HOUR_MS;
        log.record(prediction(
            "a",
            ten + HOUR_MS - 1_000,
            vec![[1.0, 2.0]],
            vec![0.1],
        ));
        log.record(prediction(
            "b",
            ten + HOUR_MS + 500,
            vec![[3.0, 4.0]],
            vec![0.2],
        ));
        log.flush();
        // More flushes into hour 10, one with an extra output column (the schemas differ).
        log.record(prediction(
            "c",
            ten + 5,
            vec![[5.0, 6.0], [7.0, 8.0]],
            vec![0.3, 0.4],
        ));
        log.flush();
        let mut wide = prediction("d", ten + 10, vec![[9.0, 10.0]], vec![0.5]);
        wide.outputs.push(LoggedTensor {
            name: "label".into(),
            shape: vec![1],
            values: Values::Int(vec![1]),
        });
        log.record(wide);
        log.flush();
        let root = dir.path().join("monitoring/predictions/model=m/version=1");
        let hour10 = root.join("date=2024-03-01/hour=10");
        let hour11 = root.join("date=2024-03-01/hour=11");
        let count = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
        assert_eq!((count(&hour10), count(&hour11)), (3, 1));
        let everything = |m: &Monitor| {
            let w = m
                .window("m", "1", ten - HOUR_MS, ten + 3 * HOUR_MS)
                .unwrap();
            let mut keys = w.keys.clone();
            keys.sort();
            keys
        };
        let before = everything(&monitor);
        assert_eq!(before.len(), 5);
        // A window of one hour opens only that hour's files.
        assert_eq!(
            monitor
                .window("m", "1", ten + HOUR_MS, ten + 2 * HOUR_MS)
                .unwrap()
                .rows,
            1
        );
        // Hour 10 ended before the cut-off: its three files become one; hour 11 did not.
        assert_eq!(
            monitor
                .compact_predictions(ten - HOUR_MS, ten + HOUR_MS + 1)
                .unwrap(),
            1
        );
        assert_eq!((count(&hour10), count(&hour11)), (1, 1));
        let merged = std::fs::read_dir(&hour10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        assert!(
            merged.to_string_lossy().contains("-compacted-"),
            "{merged:?}"
        );
        assert_eq!(everything(&monitor), before);
        // The merged file keeps the union of the columns.
        let w = monitor.window("m", "1", ten, ten + HOUR_MS).unwrap();
        assert!(
            w.outputs.iter().any(|(n, _)| n == "label"),
            "{:?}",
            w.outputs
        );
        // Compacting again changes nothing.
        assert_eq!(
            monitor
                .compact_predictions(ten - HOUR_MS, ten + HOUR_MS + 1)
                .unwrap(),
            0
        );
        // Retention removes whole hours.
        assert_eq!(monitor.prune_predictions(ten + HOUR_MS).unwrap(), 1);
        assert!(!hour10.exists());
        assert_eq!(everything(&monitor), vec![("b".to_string(), 0)]);
        // Names that are not path-safe become safe partition values.
        assert_eq!(partition_value("fraud/v2"), "fraud~2Fv2");
        assert_eq!(partition_value("a~b"), "a~7Eb");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = test_monitor(dir.path());
        let log = PredictionLog::start(
            &monitor,
            LogOptions {
                capacity: 1,
                flush_rows: 1_000_000,
                flush_interval: Duration::from_secs(3600),
            },
        )
        .unwrap();
        let accepted = (0..2000)
            .filter(|i| log.record(prediction(&i.to_string(), 1, vec![[0.0, 0.0]], vec![0.5])))
            .count() as u64;
        log.flush();
        let c = log.counters();
        assert_eq!(c.accepted.load(Relaxed), accepted);
        assert_eq!(c.accepted.load(Relaxed) + c.dropped.load(Relaxed), 2000);
        assert!(c.dropped.load(Relaxed) > 0);
        assert_eq!(c.rows_written.load(Relaxed), accepted);
    }

    #[test]
    fn names_cannot_leave_their_folder() {
        for name in ["..", ".", "a/b", "/etc", "", "a\\b"] {
            let c = path_component(name);
            assert!(
                !c.contains('/') && !c.contains('\\') && c != ".." && c != "." && !c.is_empty(),
                "{name} -> {c}"
            );
        }
        assert_eq!(path_component("iris-v2.1"), "iris-v2.1");
    }

    #[test]
    fn rules_are_checked_and_fire_once_per_crossing() {
        let bad = [
            (
                "alerts: [{name: a, model: m, metric: drift_share}]",
                "exactly one",
            ),
            (
                "alerts: [{name: a, model: m, metric: nope, above: 1}]",
                "unknown alert metric",
            ),
            (
                "alerts: [{name: a, model: m, metric: mae, above: 1, window: 5x}]",
                "not a duration",
            ),
            (
                "alerts: [{name: a, model: m, metric: mae, above: 1, webhook: ftp://x}]",
                "not an http",
            ),
            (
                "alerts: [{name: a, model: m, metric: mae, above: 1, colour: red}]",
                "unknown field",
            ),
        ];
        for (text, says) in bad {
            let e = AlertRule::parse_file(text, "alerts.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        let rules = AlertRule::parse_file(
            "alerts:\n  - {name: drift, model: m, version: 3, metric: drift_share, above: 0.3, window: 15m}\n",
            "alerts.yaml",
        )
        .unwrap();
        let rule = &rules[0];
        assert_eq!(rule.version.as_deref(), Some("3"));
        assert_eq!(rule.window_seconds, 900);
        assert!(rule.watches("m", "3") && !rule.watches("m", "4"));
        let mut state = AlertState::default();
        assert!(state.observe(rule, "3", 0.1, (0, 1)).is_none());
        let fired = state.observe(rule, "3", 0.5, (0, 1)).unwrap();
        assert_eq!(fired.state, "firing");
        assert!(state.observe(rule, "3", 0.6, (0, 1)).is_none());
        assert_eq!(
            state.observe(rule, "3", 0.2, (0, 1)).unwrap().state,
            "resolved"
        );
        let restored = AlertState::from_events(&[fired]);
        assert!(restored.firing.values().all(|f| *f));
    }
}
