//! The consumers' SQL: offsets and their claim, processed event ids, dead letters.

use std::collections::HashSet;

use sqlx::Row;
use uuid::Uuid;

use crate::db::{self, Arg, Backend, Db, SqlBuilder, WriteTx};
use crate::events::bus::{COLUMNS, Envelope};

/// A consumer's offset, claimed for one round. On PostgreSQL it holds the transaction in
/// which the offset row is locked; [`advance`] commits it.
pub(super) struct Claim {
    pub last_seq: i64,
    tx: Option<WriteTx>,
}

/// Claims `consumer`'s offset for a round: `None` when another replica holds it
/// (PostgreSQL, `FOR UPDATE SKIP LOCKED`). A consumer seen for the first time starts after
/// the newest published event.
pub(super) async fn claim(db: &Db, consumer: &str) -> Result<Option<Claim>, sqlx::Error> {
    if let Some(c) = try_claim(db, consumer).await? {
        return Ok(Some(c));
    }
    // Locked by another replica, or missing: only a missing row is created.
    let exists = sqlx::query("SELECT 1 AS one FROM consumer_offsets WHERE consumer = $1")
        .bind(consumer)
        .fetch_optional(db.pool())
        .await?
        .is_some();
    if exists {
        return Ok(None);
    }
    create_offset(db, consumer).await?;
    try_claim(db, consumer).await
}

/// Creates `consumer`'s offset at the newest published event, unless it has one.
pub(super) async fn create_offset(db: &Db, consumer: &str) -> Result<(), sqlx::Error> {
    let _permit = db.write_permit().await?;
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) \
         SELECT $1, last_seq, $2 FROM relay_cursor WHERE id = 1 ON CONFLICT (consumer) DO NOTHING",
    )
    .bind(consumer)
    .bind(db::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn try_claim(db: &Db, consumer: &str) -> Result<Option<Claim>, sqlx::Error> {
    match db.backend() {
        Backend::Postgres => {
            let mut tx = db.begin_write().await?;
            let row = sqlx::query("SELECT last_seq FROM consumer_offsets WHERE consumer = $1 FOR UPDATE SKIP LOCKED")
                .bind(consumer)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(r) => Ok(Some(Claim { last_seq: r.try_get("last_seq")?, tx: Some(tx) })),
                None => {
                    tx.rollback().await?;
                    Ok(None)
                }
            }
        }
        Backend::Sqlite => {
            let row = sqlx::query("SELECT last_seq FROM consumer_offsets WHERE consumer = $1")
                .bind(consumer)
                .fetch_optional(db.pool())
                .await?;
            row.map(|r| Ok(Claim { last_seq: r.try_get("last_seq")?, tx: None })).transpose()
        }
    }
}

/// Moves the offset to `to` (if it is past the claimed one) and releases the claim. On
/// SQLite the move is a compare-and-set against the claimed offset, so an operator's reset
/// during the round wins.
pub(super) async fn advance(db: &Db, consumer: &str, claim: Claim, to: i64) -> Result<(), sqlx::Error> {
    let Claim { last_seq, tx } = claim;
    match tx {
        Some(mut tx) => {
            if to > last_seq {
                sqlx::query("UPDATE consumer_offsets SET last_seq = $1, updated_at = $2 WHERE consumer = $3")
                    .bind(to)
                    .bind(db::now())
                    .bind(consumer)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        None if to > last_seq => {
            let _permit = db.write_permit().await?;
            sqlx::query(
                "UPDATE consumer_offsets SET last_seq = $1, updated_at = $2 WHERE consumer = $3 AND last_seq = $4",
            )
            .bind(to)
            .bind(db::now())
            .bind(consumer)
            .bind(last_seq)
            .execute(db.pool())
            .await
            .map(|_| ())
        }
        None => Ok(()),
    }
}

/// Up to `limit` published events after the claimed offset, in publish order. On
/// PostgreSQL read on the claim's connection: a round holds one pooled connection, not two
/// (with a pool of one, a second would wait for the first forever).
pub(super) async fn events_after(db: &Db, claim: &mut Claim, limit: i64) -> Result<Vec<Envelope>, sqlx::Error> {
    let q =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2")))
            .bind(claim.last_seq)
            .bind(limit);
    let rows = match claim.tx.as_mut() {
        Some(tx) => q.fetch_all(&mut **tx).await?,
        None => q.fetch_all(db.pool()).await?,
    };
    rows.iter().map(Envelope::from_row).collect()
}

/// Which of `ids` `consumer` has handled already (on the claim's connection, as above).
pub(super) async fn processed(
    db: &Db,
    claim: &mut Claim,
    consumer: &str,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut b = SqlBuilder::new("SELECT event_id FROM processed_events WHERE consumer = ");
    let c = b.arg(Arg::Text(consumer.to_owned()));
    b.push(&c);
    b.push(" AND event_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        let p = b.arg(Arg::Text(id.to_string()));
        b.push(&p);
    }
    b.push(")");
    let rows = match claim.tx.as_mut() {
        Some(tx) => b.build().fetch_all(&mut **tx).await?,
        None => b.build().fetch_all(db.pool()).await?,
    };
    rows.iter().map(|r| db::parse_id(&r.try_get::<String, _>("event_id")?)).collect()
}

/// Records that `consumer` handled `event_id` (again is fine).
pub(super) async fn mark_processed(db: &Db, consumer: &str, event_id: Uuid) -> Result<(), sqlx::Error> {
    // On SQLite, queue behind the process's writers instead of polling SQLite's busy lock.
    let _permit = db.write_permit().await?;
    sqlx::query(
        "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id.to_string())
    .bind(db::now())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// Dead-letters `event` for `consumer`: updates its open dead letter (the event failed
/// again after a redelivery) or adds one.
pub(super) async fn dead_letter(
    db: &Db,
    consumer: &str,
    event: &Envelope,
    error: &str,
    attempts: u32,
) -> Result<(), sqlx::Error> {
    let _permit = db.write_permit().await?;
    let now = db::now();
    let updated = sqlx::query(
        "UPDATE dead_letters SET error = $1, attempts = $2, failed_at = $3 \
         WHERE consumer = $4 AND event_id = $5 AND replayed_at IS NULL",
    )
    .bind(error)
    .bind(i64::from(attempts))
    .bind(&now)
    .bind(consumer)
    .bind(event.id.to_string())
    .execute(db.pool())
    .await?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (id, consumer, event_id, event_type, envelope, error, attempts, failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(db::new_id().to_string())
    .bind(consumer)
    .bind(event.id.to_string())
    .bind(&event.event_type)
    .bind(event.to_json())
    .bind(error)
    .bind(i64::from(attempts))
    .bind(&now)
    .execute(db.pool())
    .await
    .map(|_| ())
}
