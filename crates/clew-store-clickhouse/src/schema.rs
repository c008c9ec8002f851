//! The schema Clew keeps in ClickHouse, created and migrated by Clew, versioned per server.
//!
//! - `spans`: one row per span, partitioned by tenant and UTC day, sorted for search (tenant,
//!   service, span name, start). Filtered fields are plain columns; attributes of span and
//!   resource are also kept as parallel key/value arrays by type, for SQL; the encoded
//!   attributes, events, links, resource and scope keep every OTLP field.
//! - `trace_index`: trace ID → the day and time range of its spans, filled by a materialized
//!   view on `spans`, sorted by trace ID: trace by ID reads it first, then only the days and
//!   time range it names.
//! - `rollups`: the per-minute aggregates behind the service map and RED metrics.
//!
//! With a cluster, each shard gets the tables above with a `_local` suffix and `Distributed`
//! tables over them take the plain names; spans and the trace index are sharded by trace ID,
//! so a trace lives on one shard and the index rows of a trace sit beside its spans.
//! Everything runs on ClickHouse 18.16 and on current releases: no `Map`, no skip indexes, no
//! `TTL` (retention drops day partitions).

use crate::client::{quote, ClickHouseError, Client};

/// Names of the tables queries read and inserts write (`spans`...), and of the tables that hold
/// the data on each server (`spans_local`... in a cluster; the same tables otherwise).
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) database: String,
    pub(crate) cluster: Option<String>,
}

impl Tables {
    fn name(&self, table: &str, local: bool) -> String {
        let suffix = if local && self.cluster.is_some() { "_local" } else { "" };
        format!("`{}`.`{table}{suffix}`", self.database)
    }

    pub(crate) fn spans(&self) -> String {
        self.name("spans", false)
    }

    pub(crate) fn spans_local(&self) -> String {
        self.name("spans", true)
    }

    pub(crate) fn trace_index(&self) -> String {
        self.name("trace_index", false)
    }

    pub(crate) fn trace_index_local(&self) -> String {
        self.name("trace_index", true)
    }

    pub(crate) fn rollups(&self) -> String {
        self.name("rollups", false)
    }

    /// The tables whose day partitions hold a tenant's data, as each server names them.
    pub(crate) fn partitioned_local(&self) -> [String; 3] {
        [self.spans_local(), self.trace_index_local(), self.name("rollups", true)]
    }

    /// The bare names of [`Self::partitioned_local`], as `system.parts` lists them.
    pub(crate) fn partitioned_local_names(&self) -> [String; 3] {
        let suffix = if self.cluster.is_some() { "_local" } else { "" };
        ["spans", "trace_index", "rollups"].map(|t| format!("{t}{suffix}"))
    }
}

/// Typed key/value arrays of one attribute set (`attr` for spans, `res` for resources).
fn attribute_columns(prefix: &str) -> String {
    format!(
        "{prefix}_str_keys Array(String), {prefix}_str_values Array(String), \
         {prefix}_int_keys Array(String), {prefix}_int_values Array(Int64), \
         {prefix}_float_keys Array(String), {prefix}_float_values Array(Float64), \
         {prefix}_bool_keys Array(String), {prefix}_bool_values Array(UInt8), \
         {prefix}_other_keys Array(String)"
    )
}

pub(crate) const SPAN_COLUMNS: &str =
    "tenant, day, trace_id, span_id, parent_span_id, trace_state, flags, name, kind, \
     start_unix_nano, end_unix_nano, status_code, status_message, service_name, resource, scope, attributes, \
     dropped_attributes_count, events, dropped_events_count, links, dropped_links_count, \
     attr_str_keys, attr_str_values, attr_int_keys, attr_int_values, attr_float_keys, attr_float_values, \
     attr_bool_keys, attr_bool_values, attr_other_keys, \
     res_str_keys, res_str_values, res_int_keys, res_int_values, res_float_keys, res_float_values, \
     res_bool_keys, res_bool_values, res_other_keys";

pub(crate) const ROLLUP_COLUMNS: &str =
    "tenant, day, minute, family, service, name, kind, dim_names, dim_values, count, errors, duration_sum, latency";

/// One schema version: statements, run in order, each safe to run again (a migration that
/// stopped half way is finished by the next run).
struct Migration {
    version: u32,
    description: &'static str,
    statements: fn(&Tables) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "spans, trace index (materialized view), rollups",
    statements: |t| {
        let mut statements = vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {} (tenant String, day Date, trace_id FixedString(16), \
                 span_id FixedString(8), parent_span_id String, trace_state String, flags UInt32, name String, \
                 kind Int32, start_unix_nano UInt64, end_unix_nano UInt64, status_code Int32, \
                 status_message String, service_name String, resource String, scope String, attributes String, \
                 dropped_attributes_count UInt32, events String, dropped_events_count UInt32, links String, \
                 dropped_links_count UInt32, {}, {}) \
                 ENGINE = MergeTree PARTITION BY (tenant, day) \
                 ORDER BY (tenant, service_name, name, start_unix_nano)",
                t.spans_local(),
                attribute_columns("attr"),
                attribute_columns("res")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (tenant String, day Date, trace_id FixedString(16), \
                 start_unix_nano UInt64, end_unix_nano UInt64) \
                 ENGINE = MergeTree PARTITION BY (tenant, day) ORDER BY (tenant, trace_id)",
                t.trace_index_local()
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS `{}`.`trace_index_mv` TO {} AS \
                 SELECT tenant, day, trace_id, min(start_unix_nano) AS start_unix_nano, \
                 max(end_unix_nano) AS end_unix_nano FROM {} GROUP BY tenant, day, trace_id",
                t.database,
                t.trace_index_local(),
                t.spans_local()
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (tenant String, day Date, minute UInt32, family UInt8, \
                 service String, name String, kind Int32, dim_names Array(String), dim_values Array(String), \
                 count Float64, errors Float64, duration_sum Float64, latency String) \
                 ENGINE = MergeTree PARTITION BY (tenant, day) ORDER BY (tenant, minute, family, service, name)",
                t.name("rollups", true)
            ),
        ];
        if let Some(cluster) = &t.cluster {
            let cluster = quote(cluster);
            let db = quote(&t.database);
            for (table, key) in
                [("spans", "cityHash64(trace_id)"), ("trace_index", "cityHash64(trace_id)"), ("rollups", "rand()")]
            {
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {} AS {} ENGINE = Distributed({cluster}, {db}, {}, {key})",
                    t.name(table, false),
                    t.name(table, true),
                    quote(&format!("{table}_local")),
                ));
            }
        }
        statements
    },
}];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The oldest ClickHouse Clew runs on.
const MIN_VERSION: (u32, u32) = (18, 16);

/// Checks that `client`'s server is recent enough; returns its version.
pub(crate) async fn check_version(client: &Client) -> Result<String, String> {
    let version = client.run("SELECT version() FORMAT TabSeparated").await.map_err(|e| e.to_string())?;
    let version = String::from_utf8_lossy(&version).trim().to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_VERSION {
        return Err(format!(
            "ClickHouse at {} is version {version}; Clew needs {}.{} or newer",
            client.url, MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    Ok(version)
}

/// The schema version `client`'s server holds (0: none).
pub(crate) async fn current_version(client: &Client, tables: &Tables) -> Result<u32, ClickHouseError> {
    let exists = client
        .run(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = 'schema_migrations' FORMAT TabSeparated",
            quote(&tables.database)
        ))
        .await?;
    if String::from_utf8_lossy(&exists).trim() == "0" {
        return Ok(0);
    }
    let version = client
        .run(&format!("SELECT max(version) FROM `{}`.schema_migrations FORMAT TabSeparated", tables.database))
        .await?;
    Ok(String::from_utf8_lossy(&version).trim().parse().unwrap_or(0))
}

/// Brings `client`'s server to the newest schema; returns the versions applied.
pub(crate) async fn migrate(client: &Client, tables: &Tables) -> Result<Vec<u32>, ClickHouseError> {
    client.run(&format!("CREATE DATABASE IF NOT EXISTS `{}`", tables.database)).await?;
    client
        .run(&format!(
            "CREATE TABLE IF NOT EXISTS `{}`.schema_migrations (version UInt32, description String, \
             applied_at DateTime) ENGINE = TinyLog",
            tables.database
        ))
        .await?;
    let current = current_version(client, tables).await?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in (migration.statements)(tables) {
            client.run(&statement).await?;
        }
        client
            .run(&format!(
                "INSERT INTO `{}`.schema_migrations VALUES ({}, {}, now())",
                tables.database,
                migration.version,
                quote(migration.description)
            ))
            .await?;
        tracing::info!(server = %client.url, version = migration.version, "{}", migration.description);
        applied.push(migration.version);
    }
    Ok(applied)
}
