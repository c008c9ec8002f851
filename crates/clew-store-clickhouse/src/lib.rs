//! The ClickHouse storage backend: the same [`Storage`] the embedded engine implements, over
//! one ClickHouse server or a cluster of shards, for Clew nodes that keep no state of their own.
//!
//! Writes are batched: a node gathers the requests that arrive while it waits (up to
//! [`ClickHouseOptions::batch_max_spans`] or [`ClickHouseOptions::batch_max_wait`]), sends them
//! in one `INSERT`, retries it while ClickHouse is unreachable or busy (up to
//! [`ClickHouseOptions::insert_timeout`]), and only then answers each request. A request is
//! acknowledged once ClickHouse has accepted its spans (in a cluster, once every shard has:
//! `insert_distributed_sync`), so a node holds nothing a client was told is stored, and can be
//! killed at any time; requests whose batch failed get "retry later".
//!
//! Search compiles span conditions to SQL (see `sql`); trace by ID reads the trace index
//! first. The per-minute rollups are computed as batches are stored (`clew-rollup`) and
//! inserted beside them; a call whose two spans pass through different nodes, or whose second
//! span arrives after the pairing window, counts as two one-sided aggregates, as on one node
//! across the window.

mod client;
mod rowbinary;
mod rows;
mod schema;
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use clew_model::{day_name, day_of, rows_from_batch, SpanBatch, SpanRow, TenantId, TraceId, NANOS_PER_DAY};
use clew_rollup::{Builder, BuilderOptions, Family, Key, Latency, Observations, Rollup, RollupQuery, Stats};
use clew_storage::{
    Catalog, DayUsage, FindRequest, Operation, Result, SpanWriter, Storage, StorageError, Target, TimeRange, TraceHit,
    TraceReader, Value, WriteReceipt,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

pub use client::ClickHouseError;
use client::{quote, Client};
use rowbinary::{Reader, Writer};
use schema::{Tables, ROLLUP_COLUMNS, SPAN_COLUMNS};

/// How to reach ClickHouse and how to write to it.
#[derive(Clone, Debug)]
pub struct ClickHouseOptions {
    /// The HTTP interface queries and inserts go to, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// The cluster (as ClickHouse's `remote_servers` names it) whose shards hold the data;
    /// `None`: `url` holds everything.
    pub cluster: Option<String>,
    /// With a cluster, the HTTP interface of every shard, where Clew creates the local tables
    /// and measures and drops partitions.
    pub shards: Vec<String>,
    /// A batch is sent once it holds this many spans...
    pub batch_max_spans: usize,
    /// ...or, when the last batch went out less than this long ago, once this long has
    /// passed since (at most one batch per wait; a batch after a quiet spell goes at once).
    pub batch_max_wait: Duration,
    /// An insert ClickHouse cannot take is retried for this long before its requests fail.
    pub insert_timeout: Duration,
    /// Longest a query may take.
    pub query_timeout: Duration,
    /// Encoded spans that may wait for ClickHouse at once; beyond, writes get "retry later".
    pub max_pending_bytes: usize,
    /// Create or migrate the schema when opening (else: refuse to start on an old schema).
    pub migrate: bool,
    pub rollups: BuilderOptions,
}

impl ClickHouseOptions {
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: String::new(),
            password: String::new(),
            cluster: None,
            shards: Vec::new(),
            batch_max_spans: 100_000,
            batch_max_wait: Duration::from_millis(100),
            insert_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(60),
            max_pending_bytes: 512 << 20,
            migrate: true,
            rollups: BuilderOptions::default(),
        }
    }

    fn tables(&self) -> Tables {
        Tables { database: self.database.clone(), cluster: self.cluster.clone() }
    }

    fn clients(&self) -> std::result::Result<(Client, Vec<Client>), String> {
        if self.database.is_empty() || !self.database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("ClickHouse database name {:?}: use letters, digits and underscores", self.database));
        }
        let client = |url: &str| Client::new(url, &self.user, &self.password, self.query_timeout);
        let main = client(&self.url)?;
        let shards = match (&self.cluster, self.shards.is_empty()) {
            (None, _) => vec![main.clone()],
            (Some(cluster), true) => {
                return Err(format!(
                    "ClickHouse cluster {cluster:?}: list the HTTP URL of each of its shards (clickhouse.shards)"
                ))
            }
            (Some(_), false) => self.shards.iter().map(|url| client(url)).collect::<std::result::Result<_, _>>()?,
        };
        Ok((main, shards))
    }
}

fn unavailable(context: &str, error: ClickHouseError) -> StorageError {
    if error.is_transient() {
        StorageError::Unavailable {
            context: context.into(),
            retry_after: Duration::from_secs(5),
            source: Box::new(error),
        }
    } else {
        StorageError::internal(context, error)
    }
}

/// Checks every server's version and brings its schema to the newest version; returns, per
/// server, the versions applied (for `clew admin migrate`).
pub async fn migrate(options: &ClickHouseOptions) -> Result<Vec<(String, Vec<u32>)>> {
    let (_, shards) = options.clients().map_err(|e| StorageError::internal("configure ClickHouse", e))?;
    let tables = options.tables();
    let mut applied = Vec::new();
    for shard in &shards {
        schema::check_version(shard).await.map_err(|e| StorageError::internal("check ClickHouse's version", e))?;
        let versions = schema::migrate(shard, &tables)
            .await
            .map_err(|e| unavailable(&format!("migrate the schema on {}", shard.url), e))?;
        applied.push((shard.url.clone(), versions));
    }
    Ok(applied)
}

/// Spans over ClickHouse. Cloning shares the store.
pub struct ClickHouseStore {
    inner: Arc<Inner>,
    batcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    client: Client,
    shards: Vec<Client>,
    tables: Tables,
    options: ClickHouseOptions,
    commands: mpsc::UnboundedSender<Command>,
    pending: Arc<Semaphore>,
    closed: AtomicBool,
    ready: AtomicBool,
}

/// What the batcher is asked to do.
enum Command {
    Write(PendingWrite),
    /// Insert the rollups computed so far.
    Flush(oneshot::Sender<Result<()>>),
    /// End a tenant's rollup waits, dropping what they add to a day about to be deleted.
    ForgetDay {
        tenant: TenantId,
        day: u32,
        done: oneshot::Sender<Result<()>>,
    },
    Close(oneshot::Sender<Result<()>>),
}

struct PendingWrite {
    tenant: TenantId,
    rows: Bytes,
    spans: usize,
    observed: Observations,
    done: oneshot::Sender<Result<WriteReceipt>>,
    _permit: OwnedSemaphorePermit,
}

impl ClickHouseStore {
    /// Connects, checks every server's version and schema (migrating it when
    /// [`ClickHouseOptions::migrate`]), and starts the batcher.
    pub async fn open(options: ClickHouseOptions) -> Result<Self> {
        let (client, shards) = options.clients().map_err(|e| StorageError::internal("configure ClickHouse", e))?;
        let tables = options.tables();
        for shard in &shards {
            schema::check_version(shard).await.map_err(|e| StorageError::internal("check ClickHouse's version", e))?;
            let current = schema::current_version(shard, &tables)
                .await
                .map_err(|e| unavailable(&format!("read the schema version on {}", shard.url), e))?;
            let latest = schema::latest_version();
            if current > latest {
                return Err(StorageError::internal(
                    "check the ClickHouse schema",
                    format!(
                        "{} holds schema version {current} of database {}, newer than this Clew knows ({latest}); upgrade Clew",
                        shard.url, tables.database
                    ),
                ));
            }
            if current < latest {
                if !options.migrate {
                    return Err(StorageError::internal(
                        "check the ClickHouse schema",
                        format!(
                            "{} holds schema version {current} of database {}; run `clew admin migrate` to bring it to {latest}",
                            shard.url, tables.database
                        ),
                    ));
                }
                schema::migrate(shard, &tables)
                    .await
                    .map_err(|e| unavailable(&format!("migrate the schema on {}", shard.url), e))?;
            }
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            client,
            shards,
            tables,
            pending: Arc::new(Semaphore::new(options.max_pending_bytes.max(1))),
            options,
            commands,
            closed: AtomicBool::new(false),
            ready: AtomicBool::new(true),
        });
        let batcher = Batcher::new(inner.clone());
        let task = tokio::spawn(batcher.run(receiver));
        Ok(Self { inner, batcher: Mutex::new(Some(task)) })
    }

    /// Pings every server; what each answered.
    pub async fn health(&self) -> Vec<(String, std::result::Result<(), String>)> {
        let mut out = Vec::new();
        let mut servers = vec![&self.inner.client];
        servers.extend(self.inner.shards.iter().filter(|s| s.url != self.inner.client.url));
        for server in servers {
            let result = server.run("SELECT 1").await.map(drop).map_err(|e| e.to_string());
            out.push((server.url.clone(), result));
        }
        out
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (done, answer) = oneshot::channel();
        self.inner.commands.send(command(done)).map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    async fn query(&self, context: &str, sql: String) -> Result<Bytes> {
        self.inner.client.run(&sql).await.map_err(|e| unavailable(context, e))
    }

    fn tenant_days(&self, tenant: &TenantId, range: TimeRange) -> String {
        format!(
            "tenant = {} AND day >= {} AND day <= {}",
            quote(tenant.as_str()),
            date(day_of(range.start)),
            date(day_of(range.end.saturating_sub(1).max(range.start)))
        )
    }

    /// Days and time range of each of `trace_ids` (that `tenant` has) from the trace index.
    async fn locate(&self, tenant: &TenantId, trace_ids: &[TraceId]) -> Result<Vec<(u16, u64, u64)>> {
        let sql = format!(
            "SELECT toUInt16(day), min(start_unix_nano), max(end_unix_nano) FROM {} \
             WHERE tenant = {} AND trace_id IN ({}) GROUP BY day FORMAT RowBinary",
            self.inner.tables.trace_index(),
            quote(tenant.as_str()),
            id_list(trace_ids)
        );
        let body = self.query("look up traces by ID", sql).await?;
        let mut r = Reader::new(&body);
        let mut days = Vec::new();
        while !r.is_empty() {
            days.push((r.u16().map_err(corrupt)?, r.u64().map_err(corrupt)?, r.u64().map_err(corrupt)?));
        }
        Ok(days)
    }

    async fn read_traces(&self, tenant: &TenantId, trace_ids: &[TraceId]) -> Result<Vec<SpanRow>> {
        let days = self.locate(tenant, trace_ids).await?;
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = days.iter().map(|(day, _, _)| date(u32::from(*day))).collect();
        let start = days.iter().map(|d| d.1).min().unwrap_or(0);
        let end = days.iter().map(|d| d.2).max().unwrap_or(u64::MAX);
        // PREWHERE: the trace IDs select the rows before any other column is read (left to
        // itself, ClickHouse may read every column of the day first).
        let sql = format!(
            "SELECT {} FROM {} PREWHERE trace_id IN ({}) AND start_unix_nano >= {start} \
             AND start_unix_nano <= {end} WHERE tenant = {} AND day IN ({}) FORMAT RowBinary",
            rows::READ_COLUMNS,
            self.inner.tables.spans(),
            id_list(trace_ids),
            quote(tenant.as_str()),
            list.join(", "),
        );
        let body = self.query("read traces", sql).await?;
        let mut rows = rows::read_spans(&body).map_err(corrupt)?;
        // An insert retried after ClickHouse took it but did not answer stores rows twice.
        rows.sort_by_key(|r| (r.trace_id, r.span_id, r.start_unix_nano));
        rows.dedup();
        Ok(rows)
    }

    /// `(partition, day, table, rows, bytes)` of the partitions on every shard, only `tenant`'s
    /// when given.
    async fn parts(&self, tenant: Option<&TenantId>) -> Result<Vec<(String, u32, String, u64, u64)>> {
        let names: Vec<String> = self.inner.tables.partitioned_local_names().iter().map(|n| quote(n)).collect();
        let prefix = tenant.map(|t| format!("('{}',", t.as_str()));
        let filter = prefix
            .as_ref()
            .map(|p| format!(" AND substring(partition, 1, {}) = {}", p.len(), quote(p)))
            .unwrap_or_default();
        let sql = format!(
            "SELECT partition, toUInt16(min_date), table, sum(rows), sum(bytes_on_disk) FROM system.parts \
             WHERE database = {} AND active AND table IN ({}){filter} GROUP BY partition, min_date, table \
             FORMAT RowBinary",
            quote(&self.inner.tables.database),
            names.join(", ")
        );
        let mut out = Vec::new();
        for shard in &self.inner.shards {
            let body = shard.run(&sql).await.map_err(|e| unavailable("measure stored days", e))?;
            let mut r = Reader::new(&body);
            while !r.is_empty() {
                out.push((
                    r.string().map_err(corrupt)?,
                    u32::from(r.u16().map_err(corrupt)?),
                    r.string().map_err(corrupt)?,
                    r.u64().map_err(corrupt)?,
                    r.u64().map_err(corrupt)?,
                ));
            }
        }
        Ok(out)
    }

    async fn values_of(
        &self,
        column: &str,
        array_join: &str,
        filter: &str,
        scope: &str,
        kind: ValueKind,
    ) -> Result<Vec<(Value, u64)>> {
        let sql = format!(
            "SELECT {column} AS v, count() AS c FROM {}{array_join} WHERE {scope}{filter} \
             GROUP BY v ORDER BY c DESC LIMIT 1000 FORMAT RowBinary",
            self.inner.tables.spans()
        );
        let body = self.query("list attribute values", sql).await?;
        let mut r = Reader::new(&body);
        let mut out = Vec::new();
        while !r.is_empty() {
            let value = match kind {
                ValueKind::Str => Value::Str(r.string().map_err(corrupt)?),
                ValueKind::Int => Value::Int(r.i64().map_err(corrupt)?),
                ValueKind::Float => Value::Float(r.f64().map_err(corrupt)?),
                ValueKind::Bool => Value::Bool(r.u8().map_err(corrupt)? != 0),
            };
            out.push((value, r.u64().map_err(corrupt)?));
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum ValueKind {
    Str,
    Int,
    Float,
    Bool,
}

fn corrupt(e: rowbinary::Truncated) -> StorageError {
    StorageError::Corrupt { location: "ClickHouse result".into(), reason: e.to_string() }
}

fn date(day: u32) -> String {
    format!("toDate({})", quote(&day_name(day)))
}

fn id_list(trace_ids: &[TraceId]) -> String {
    let ids: Vec<String> = trace_ids.iter().map(|id| format!("unhex('{}')", id.to_hex())).collect();
    ids.join(", ")
}

/// The tenant a partition (`('tenant','2024-06-01')`) belongs to.
fn partition_tenant(partition: &str) -> Option<&str> {
    partition.strip_prefix("('")?.split("','").next()
}

#[async_trait]
impl SpanWriter for ClickHouseStore {
    async fn write(&self, tenant: &TenantId, batch: SpanBatch) -> Result<WriteReceipt> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let rows = rows_from_batch(&batch);
        if rows.is_empty() {
            return Ok(WriteReceipt::default());
        }
        let mut body = Writer::default();
        rows::write_spans(&mut body, tenant, &rows);
        let bytes = u32::try_from(body.buf.len()).unwrap_or(u32::MAX);
        let permit =
            self.inner.pending.clone().try_acquire_many_owned(bytes).map_err(|_| StorageError::Overloaded {
                reason: format!(
                    "{} MiB of spans already wait for ClickHouse",
                    self.inner.options.max_pending_bytes >> 20
                ),
                retry_after: Duration::from_secs(2),
            })?;
        let observed = Observations::of_batch(&self.inner.options.rollups, &batch);
        let spans = rows.len();
        drop(rows);
        self.ask(|done| {
            Command::Write(PendingWrite {
                tenant: tenant.clone(),
                rows: Bytes::from(body.buf),
                spans,
                observed,
                done,
                _permit: permit,
            })
        })
        .await
    }
}

#[async_trait]
impl TraceReader for ClickHouseStore {
    async fn trace(&self, tenant: &TenantId, trace_id: TraceId) -> Result<Vec<SpanRow>> {
        self.read_traces(tenant, &[trace_id]).await
    }

    async fn traces(&self, tenant: &TenantId, trace_ids: &[TraceId]) -> Result<Vec<Vec<SpanRow>>> {
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_trace: HashMap<TraceId, Vec<SpanRow>> = HashMap::new();
        for row in self.read_traces(tenant, trace_ids).await? {
            by_trace.entry(row.trace_id).or_default().push(row);
        }
        Ok(trace_ids.iter().map(|id| by_trace.remove(id).unwrap_or_default()).collect())
    }

    async fn find(&self, tenant: &TenantId, request: &FindRequest) -> Result<Vec<TraceHit>> {
        let range = request.range;
        if range.end <= range.start {
            return Ok(Vec::new());
        }
        let days = self.tenant_days(tenant, range);
        let conditions: Vec<String> = request.conditions.iter().map(sql::condition).collect();
        let in_range = format!("start_unix_nano >= {} AND start_unix_nano < {}", range.start, range.end);
        let spans_local = self.inner.tables.spans_local();
        let matching = match conditions.as_slice() {
            [] => format!("SELECT trace_id FROM {spans_local} WHERE {days} AND {in_range}"),
            [one] => format!("SELECT trace_id FROM {spans_local} WHERE {days} AND {in_range} AND ({one})"),
            many => format!(
                "SELECT trace_id FROM {spans_local} WHERE {days} AND {in_range} AND ({}) GROUP BY trace_id HAVING {}",
                many.join(" OR "),
                many.iter().map(|c| format!("countIf({c}) > 0")).collect::<Vec<_>>().join(" AND ")
            ),
        };
        let sql = format!(
            "SELECT trace_id, min(start_unix_nano), max(end_unix_nano) FROM {} WHERE {days} AND trace_id IN \
             ({matching}) GROUP BY trace_id FORMAT RowBinary",
            self.inner.tables.trace_index()
        );
        let body = self.query("search spans", sql).await?;
        let mut r = Reader::new(&body);
        let mut hits = Vec::new();
        while !r.is_empty() {
            let id = r.fixed::<16>().map_err(corrupt)?;
            let (start_unix_nano, end_unix_nano) = (r.u64().map_err(corrupt)?, r.u64().map_err(corrupt)?);
            if let Ok(trace_id) = TraceId::from_bytes(id) {
                hits.push(TraceHit { trace_id, start_unix_nano, end_unix_nano });
            }
        }
        Ok(hits)
    }

    async fn catalog(&self, tenant: &TenantId, range: TimeRange) -> Result<Catalog> {
        let days = self.tenant_days(tenant, range);
        let spans = self.inner.tables.spans();
        let sql = format!(
            "SELECT service_name, name, kind FROM {spans} WHERE {days} GROUP BY service_name, name, kind FORMAT RowBinary"
        );
        let body = self.query("list services and operations", sql).await?;
        let mut r = Reader::new(&body);
        let mut catalog = Catalog::default();
        while !r.is_empty() {
            let service = r.string().map_err(corrupt)?;
            let name = r.string().map_err(corrupt)?;
            catalog.operations.push(Operation { service, name, kind: r.i32().map_err(corrupt)? });
        }
        catalog.operations.sort();
        for prefix in ["attr", "res"] {
            let sql = format!(
                "SELECT DISTINCT arrayJoin(arrayConcat({p}_str_keys, {p}_int_keys, {p}_float_keys, {p}_bool_keys, \
                 {p}_other_keys)) AS k FROM {spans} WHERE {days} FORMAT RowBinary",
                p = prefix
            );
            let body = self.query("list attribute names", sql).await?;
            let mut r = Reader::new(&body);
            let mut names = Vec::new();
            while !r.is_empty() {
                names.push(r.string().map_err(corrupt)?);
            }
            names.sort();
            names.dedup();
            if prefix == "attr" {
                catalog.span_attributes = names;
            } else {
                catalog.resource_attributes = names;
            }
        }
        Ok(catalog)
    }

    async fn values(&self, tenant: &TenantId, range: TimeRange, target: &Target, limit: usize) -> Result<Vec<Value>> {
        let scope = format!(
            "{} AND start_unix_nano >= {} AND start_unix_nano < {}",
            self.tenant_days(tenant, range),
            range.start,
            range.end
        );
        let intrinsic = |column: &str, kind| (column.to_owned(), String::new(), String::new(), kind);
        let attributes = |prefix: &str, key: &str| {
            [("str", ValueKind::Str), ("int", ValueKind::Int), ("float", ValueKind::Float), ("bool", ValueKind::Bool)]
                .map(|(t, kind)| {
                    (
                        "x_v".to_owned(),
                        format!(" ARRAY JOIN {prefix}_{t}_keys AS x_k, {prefix}_{t}_values AS x_v"),
                        format!(" AND x_k = {}", quote(key)),
                        kind,
                    )
                })
                .to_vec()
        };
        let queries = match target {
            Target::Name => vec![intrinsic("name", ValueKind::Str)],
            Target::Service => vec![intrinsic("service_name", ValueKind::Str)],
            Target::StatusMessage => vec![intrinsic("status_message", ValueKind::Str)],
            Target::Kind => vec![intrinsic("toInt64(kind)", ValueKind::Int)],
            Target::Status => vec![intrinsic("toInt64(status_code)", ValueKind::Int)],
            Target::Duration => vec![intrinsic(
                "toInt64(if(end_unix_nano > start_unix_nano, end_unix_nano - start_unix_nano, 0))",
                ValueKind::Int,
            )],
            Target::SpanAttribute(key) => attributes("attr", key),
            Target::ResourceAttribute(key) => attributes("res", key),
            Target::AnyAttribute(key) => {
                let mut both = attributes("attr", key);
                both.extend(attributes("res", key));
                both
            }
        };
        let mut counted: Vec<(Value, u64)> = Vec::new();
        for (column, array_join, filter, kind) in queries {
            for (value, count) in self.values_of(&column, &array_join, &filter, &scope, kind).await? {
                match counted.iter_mut().find(|(v, _)| *v == value) {
                    Some(entry) => entry.1 += count,
                    None => counted.push((value, count)),
                }
            }
        }
        counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.to_string().cmp(&b.0.to_string())));
        Ok(counted.into_iter().take(limit).map(|(v, _)| v).collect())
    }

    async fn rollups(&self, tenant: &TenantId, query: &RollupQuery) -> Result<Rollup> {
        let mut out = query.output();
        if query.end_minute <= query.start_minute {
            return Ok(out);
        }
        let minute_nanos = clew_rollup::MINUTE_NANOS;
        let range = TimeRange {
            start: u64::from(query.start_minute) * minute_nanos,
            end: u64::from(query.end_minute) * minute_nanos,
        };
        let mut filter = format!("minute >= {} AND minute < {}", query.start_minute, query.end_minute);
        if !query.families.is_empty() {
            let codes: Vec<String> = query.families.iter().map(|f| f.code().to_string()).collect();
            filter.push_str(&format!(" AND family IN ({})", codes.join(", ")));
        }
        if let Some(service) = &query.service {
            filter.push_str(&format!(" AND service = {}", quote(service)));
        }
        let sql = format!(
            "SELECT minute, family, service, name, kind, dim_names, dim_values, count, errors, duration_sum, latency \
             FROM {} WHERE {} AND {filter} FORMAT RowBinary",
            self.inner.tables.rollups(),
            self.tenant_days(tenant, range)
        );
        let body = self.query("read rollups", sql).await?;
        let dimensions = self.inner.options.rollups.dimensions.clone();
        let mut stored = Rollup::new(dimensions.clone());
        let mut r = Reader::new(&body);
        while !r.is_empty() {
            let minute = r.u32().map_err(corrupt)?;
            let family = Family::from_code(r.u8().map_err(corrupt)?);
            let service: Arc<str> = Arc::from(r.string().map_err(corrupt)?);
            let name: Arc<str> = Arc::from(r.string().map_err(corrupt)?);
            let kind = r.i32().map_err(corrupt)?;
            let names = r.array(|r| r.string()).map_err(corrupt)?;
            let values = r.array(|r| r.string()).map_err(corrupt)?;
            let stats = Stats {
                count: r.f64().map_err(corrupt)?,
                errors: r.f64().map_err(corrupt)?,
                duration_sum: r.f64().map_err(corrupt)?,
                latency: Latency::decode(r.bytes().map_err(corrupt)?)
                    .map_err(|reason| StorageError::Corrupt { location: "rollups".into(), reason })?,
            };
            let Some(family) = family else { continue };
            let dims = dimensions
                .iter()
                .map(|d| names.iter().position(|n| n == d).and_then(|i| values.get(i)).map(|v| Arc::from(v.as_str())))
                .collect();
            stored.merge_entry(Key { minute, family, service, name, kind, dims }, &stats);
        }
        stored.select_into(query, &mut out);
        Ok(out)
    }

    fn rollup_dimensions(&self) -> clew_storage::Dimensions {
        self.inner.options.rollups.kept_dimensions()
    }
}

#[async_trait]
impl Storage for ClickHouseStore {
    async fn flush(&self) -> Result<()> {
        self.ask(Command::Flush).await
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.ask(Command::Close).await;
        let task = self.batcher.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }

    fn is_ready(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire) && self.inner.ready.load(Ordering::Acquire)
    }

    async fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut tenants: Vec<TenantId> = self
            .parts(None)
            .await?
            .iter()
            .filter_map(|(partition, ..)| partition_tenant(partition)?.parse().ok())
            .collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }

    async fn days(&self, tenant: &TenantId) -> Result<Vec<DayUsage>> {
        let spans_table = &self.inner.tables.partitioned_local_names()[0];
        let mut days: BTreeMap<u32, DayUsage> = BTreeMap::new();
        for (partition, day, table, rows, bytes) in self.parts(Some(tenant)).await? {
            if partition_tenant(&partition) != Some(tenant.as_str()) {
                continue;
            }
            let usage = days.entry(day).or_insert(DayUsage { day, bytes: 0, spans: 0 });
            usage.bytes += bytes;
            if table == *spans_table {
                usage.spans += rows;
            }
        }
        Ok(days.into_values().filter(|d| d.spans > 0).collect())
    }

    async fn drop_day(&self, tenant: &TenantId, day: u32) -> Result<DayUsage> {
        let tenant_clone = tenant.clone();
        self.ask(|done| Command::ForgetDay { tenant: tenant_clone, day, done }).await?;
        let freed =
            self.days(tenant).await?.into_iter().find(|d| d.day == day).unwrap_or(DayUsage { day, bytes: 0, spans: 0 });
        let partition = format!("({}, {})", quote(tenant.as_str()), quote(&day_name(day)));
        for shard in &self.inner.shards {
            for table in self.inner.tables.partitioned_local() {
                shard
                    .run(&format!("ALTER TABLE {table} DROP PARTITION {partition}"))
                    .await
                    .map_err(|e| unavailable(&format!("drop day {} of {tenant}", day_name(day)), e))?;
            }
        }
        Ok(freed)
    }
}

/// The one task that inserts: gathers writes into batches, keeps the rollup builders, inserts
/// their aggregates after the spans they come from.
struct Batcher {
    inner: Arc<Inner>,
    builders: HashMap<TenantId, Builder>,
    /// Aggregates not inserted yet, by tenant.
    rollups: HashMap<TenantId, Rollup>,
    builder_options: Arc<BuilderOptions>,
    /// When the last batch of spans was sent.
    last_insert: Option<tokio::time::Instant>,
}

impl Batcher {
    fn new(inner: Arc<Inner>) -> Self {
        let builder_options = Arc::new(inner.options.rollups.clone());
        Self { inner, builders: HashMap::new(), rollups: HashMap::new(), builder_options, last_insert: None }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next: Option<Command> = None;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => command,
                        None => return,
                    },
                    _ = tick.tick() => {
                        self.expire();
                        let _ = self.insert_rollups().await;
                        continue;
                    }
                },
            };
            match command {
                Command::Write(first) => {
                    let mut batch = vec![first];
                    let mut spans = batch[0].spans;
                    // A batch goes out at most once per wait: at once after a quiet spell,
                    // else with everything that arrived since the last one.
                    let now = tokio::time::Instant::now();
                    let deadline =
                        self.last_insert.map_or(now, |last| last + self.inner.options.batch_max_wait).max(now);
                    while spans < self.inner.options.batch_max_spans {
                        match tokio::time::timeout_at(deadline, commands.recv()).await {
                            Ok(Some(Command::Write(write))) => {
                                spans += write.spans;
                                batch.push(write);
                            }
                            Ok(Some(other)) => {
                                next = Some(other);
                                break;
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                    self.write(batch).await;
                }
                Command::Flush(done) => {
                    let _ = done.send(self.insert_rollups().await);
                }
                Command::ForgetDay { tenant, day, done } => {
                    self.end_waits(Some(&tenant));
                    if let Some(pending) = self.rollups.get_mut(&tenant) {
                        pending
                            .entries
                            .retain(|key, _| day_of(u64::from(key.minute) * clew_rollup::MINUTE_NANOS) != day);
                    }
                    let _ = done.send(self.insert_rollups().await);
                }
                Command::Close(done) => {
                    self.end_waits(None);
                    let _ = done.send(self.insert_rollups().await);
                    return;
                }
            }
        }
    }

    /// Ends the waits that are over.
    fn expire(&mut self) {
        let now = Instant::now();
        for (tenant, builder) in &mut self.builders {
            builder.expire(now, pending(&mut self.rollups, &self.builder_options, tenant));
        }
    }

    /// Ends every wait of `only` (of every tenant when `None`), keeping what that adds.
    fn end_waits(&mut self, only: Option<&TenantId>) {
        for (tenant, builder) in &mut self.builders {
            if only.is_none_or(|t| t == tenant) {
                pending(&mut self.rollups, &self.builder_options, tenant).merge(builder.finish());
            }
        }
    }

    async fn write(&mut self, batch: Vec<PendingWrite>) {
        let mut body = Vec::with_capacity(batch.iter().map(|w| w.rows.len()).sum());
        for write in &batch {
            body.extend_from_slice(&write.rows);
        }
        let insert = format!("INSERT INTO {} ({SPAN_COLUMNS}) FORMAT RowBinary", self.inner.tables.spans());
        self.last_insert = Some(tokio::time::Instant::now());
        match self.insert(&insert, Bytes::from(body)).await {
            Ok(()) => {
                // The spans are stored: their aggregates go in before the writers hear so, so
                // that what was acknowledged is counted. Aggregates ClickHouse does not take
                // now stay for the next attempt; the spans stay acknowledged.
                let now = Instant::now();
                let mut done = Vec::with_capacity(batch.len());
                for write in batch {
                    let options = &self.builder_options;
                    let builder =
                        self.builders.entry(write.tenant.clone()).or_insert_with(|| Builder::new(options.clone()));
                    builder.add_observed(write.observed, now, pending(&mut self.rollups, options, &write.tenant));
                    done.push((write.done, write.spans));
                }
                let _ = self.insert_rollups().await;
                for (done, spans) in done {
                    let _ = done.send(Ok(WriteReceipt { spans }));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = batch.len(), "ClickHouse did not take a batch of spans");
                let transient = e.is_transient();
                let message = e.to_string();
                for write in batch {
                    let error = if transient {
                        StorageError::Unavailable {
                            context: "insert spans into ClickHouse".into(),
                            retry_after: Duration::from_secs(5),
                            source: message.clone().into(),
                        }
                    } else {
                        StorageError::internal("insert spans into ClickHouse", message.clone())
                    };
                    let _ = write.done.send(Err(error));
                }
            }
        }
    }

    /// Sends `rows`, retrying while ClickHouse says "later", up to the insert timeout.
    async fn insert(&self, statement: &str, rows: Bytes) -> std::result::Result<(), ClickHouseError> {
        let deadline = Instant::now() + self.inner.options.insert_timeout;
        let settings: &[(&str, &str)] =
            if self.inner.tables.cluster.is_some() { &[("insert_distributed_sync", "1")] } else { &[] };
        let mut delay = Duration::from_millis(100);
        loop {
            match self.inner.client.insert(statement, settings, rows.clone()).await {
                Ok(()) => {
                    self.inner.ready.store(true, Ordering::Release);
                    return Ok(());
                }
                Err(e) if e.is_transient() && Instant::now() + delay < deadline => {
                    self.inner.ready.store(false, Ordering::Release);
                    tracing::warn!(error = %e, retry_in = ?delay, "ClickHouse cannot take an insert now");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Inserts the aggregates computed so far; on failure they stay for the next attempt.
    async fn insert_rollups(&mut self) -> Result<()> {
        let mut w = Writer::default();
        let mut any = false;
        for (tenant, rollup) in &self.rollups {
            for (key, stats) in &rollup.entries {
                any = true;
                write_rollup(&mut w, tenant, &rollup.dimensions, key, stats);
            }
        }
        if !any {
            return Ok(());
        }
        let insert = format!("INSERT INTO {} ({ROLLUP_COLUMNS}) FORMAT RowBinary", self.inner.tables.rollups());
        match self.insert(&insert, Bytes::from(w.buf)).await {
            Ok(()) => {
                self.rollups.clear();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "ClickHouse did not take the rollups; they are kept for the next attempt");
                Err(unavailable("insert rollups into ClickHouse", e))
            }
        }
    }
}

/// The aggregates of `tenant` not inserted yet.
fn pending<'a>(
    rollups: &'a mut HashMap<TenantId, Rollup>,
    options: &BuilderOptions,
    tenant: &TenantId,
) -> &'a mut Rollup {
    rollups.entry(tenant.clone()).or_insert_with(|| Rollup::new(options.dimensions.clone()))
}

fn write_rollup(w: &mut Writer, tenant: &TenantId, dimensions: &[String], key: &Key, stats: &Stats) {
    let (names, values): (Vec<&str>, Vec<&str>) =
        dimensions.iter().zip(&key.dims).filter_map(|(name, value)| Some((name.as_str(), value.as_deref()?))).unzip();
    w.bytes(tenant.as_str().as_bytes());
    let day = u64::from(key.minute) * clew_rollup::MINUTE_NANOS / NANOS_PER_DAY;
    w.u16(u16::try_from(day).unwrap_or(u16::MAX));
    w.u32(key.minute);
    w.u8(key.family.code());
    w.bytes(key.service.as_bytes());
    w.bytes(key.name.as_bytes());
    w.i32(key.kind);
    w.array(&names, |w, n| w.bytes(n.as_bytes()));
    w.array(&values, |w, v| w.bytes(v.as_bytes()));
    w.f64(stats.count);
    w.f64(stats.errors);
    w.f64(stats.duration_sum);
    w.bytes(&stats.latency.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_name_their_tenant() {
        assert_eq!(partition_tenant("('team-a.prod','2024-06-01')"), Some("team-a.prod"));
        assert_eq!(partition_tenant("2024-06-01"), None);
    }
}
