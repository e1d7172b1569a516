//! Leases: how several gearmand-rs share one database without running a job twice because
//! of the sharing.
//!
//! Each server's row in `gearmand_rs_owners` says until when (database clock) its rows are
//! its own. The keeper thread renews it every quarter of the lease period; an expired lease
//! is never renewed (the statement requires `lease_until > now()`), so once a lease has run
//! out it stays out. A group commit writes only while the lease holds, under a key-share
//! lock on the owner row, so a takeover waits for (or skips) an owner whose commit runs.
//!
//! Takeover: each round the keeper also looks for owners whose lease ran out, locks their
//! rows in `gearmand_rs_owners` (`FOR UPDATE SKIP LOCKED`, so two live servers never take
//! the same owner), moves that owner's jobs to itself and deletes the owner, in one
//! transaction. Only after that commits are the jobs handed to this server's core
//! ([`Adopted`](crate::store::Adopted)). A restarting server takes its own lease in the same
//! transaction that reads its rows, so it either gets them back or finds them gone, never
//! both.
//!
//! Self-fencing: the server's lease runs, by the database clock, until at least the moment
//! it *sent* its last successful renewal plus the period. The [`LeaseClock`] keeps that
//! send time on this machine's monotonic clock; a watchdog exits the process
//! ([`EXIT_LEASE_LOST`]) once nine tenths of the period have passed without a renewal, so
//! the server has stopped handing out jobs before any other server may take them.

use super::rows::{adopted, RowIds};
use super::schema;
use crate::store::seam::{error_chain, Adopted};
use ::postgres::{Client, NoTls};
use gearman_core::server::JobRecord;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Exit status when the lease is lost (EX_TEMPFAIL): a supervisor restarts the server,
/// which then rejoins with whatever rows are still in its name.
pub const EXIT_LEASE_LOST: i32 = 75;

/// Until when, on this machine's clock, this server may act on its lease.
pub(crate) struct LeaseClock {
    period: Duration,
    valid_until: Mutex<Instant>,
}

impl LeaseClock {
    pub(super) fn new(sent: Instant, period: Duration) -> LeaseClock {
        LeaseClock {
            period,
            valid_until: Mutex::new(sent + Self::usable(period)),
        }
    }

    /// The part of a period this server acts on, leaving a tenth for clock rate drift.
    fn usable(period: Duration) -> Duration {
        period * 9 / 10
    }

    /// A renewal sent at `sent` succeeded.
    pub(super) fn renewed(&self, sent: Instant) {
        let mut until = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        *until = (*until).max(sent + Self::usable(self.period));
    }

    fn expired(&self) -> bool {
        Instant::now() >= *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lease is gone (expired, or another server took our rows): stop at once.
pub(super) fn lost(name: &str, owner: &str) -> ! {
    tracing::error!(
        "{name}: the lease of owner {owner:?} was not renewed in time; exiting so that \
         another server can run its jobs (they are all in the database)"
    );
    eprintln!("gearmand-rs: {name}: lease of owner {owner:?} lost; exiting");
    std::process::exit(EXIT_LEASE_LOST);
}

/// What the keeper thread needs.
pub(super) struct KeeperSetup {
    pub(super) pg: ::postgres::Config,
    pub(super) name: String,
    pub(super) owner: String,
    pub(super) period: Duration,
    pub(super) clock: Arc<LeaseClock>,
    pub(super) rows: RowIds,
    pub(super) adopted: UnboundedSender<Adopted>,
}

/// The keeper and watchdog threads; [`Keeper::stop`] ends both.
pub(super) struct Keeper {
    stop: mpsc::Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Keeper {
    pub(super) fn start(setup: KeeperSetup) -> std::io::Result<Keeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let (watch_stop, watch_stopped) = mpsc::channel::<()>();
        let clock = setup.clock.clone();
        let (name, owner) = (setup.name.clone(), setup.owner.clone());
        let watchdog = std::thread::Builder::new()
            .name("gearmand-rs-lease-watchdog".into())
            .spawn(move || loop {
                match watch_stopped.recv_timeout(Duration::from_millis(50)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if clock.expired() {
                            lost(&name, &owner);
                        }
                    }
                    _ => return,
                }
            })?;
        let keeper = std::thread::Builder::new()
            .name("gearmand-rs-lease".into())
            .spawn(move || {
                run(setup, stopped);
                let _ = watch_stop.send(());
            })?;
        Ok(Keeper {
            stop,
            threads: vec![keeper, watchdog],
        })
    }

    pub(super) fn stop(self) {
        drop(self.stop);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run(setup: KeeperSetup, stopped: mpsc::Receiver<()>) {
    let round = (setup.period / 4).max(Duration::from_millis(100));
    let mut client: Option<Client> = None;
    let mut backoff = crate::store::reconnect::Backoff::default();
    loop {
        if client.as_ref().is_some_and(Client::is_closed) {
            client = None;
        }
        if client.is_none() && backoff.ready().is_ok() {
            match setup.pg.connect(NoTls) {
                Ok(c) => {
                    backoff.succeeded();
                    client = Some(c);
                }
                Err(e) => {
                    backoff.failed();
                    tracing::warn!(
                        "{}: lease keeper cannot connect: {}",
                        setup.name,
                        error_chain(&e)
                    );
                }
            }
        }
        let mut wait = round;
        if let Some(c) = client.as_mut() {
            if let Err(e) = keep(c, &setup) {
                tracing::warn!("{}: lease renewal failed: {}", setup.name, error_chain(&e));
                if c.is_closed() {
                    client = None;
                    backoff.failed();
                }
                // Try again soon: the lease runs out whatever we do.
                wait = round.min(Duration::from_millis(200));
            }
        } else {
            wait = round.min(Duration::from_millis(200));
        }
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// One round: renew our lease, then take over the rows of owners whose lease ran out.
fn keep(client: &mut Client, setup: &KeeperSetup) -> Result<(), ::postgres::Error> {
    let sent = Instant::now();
    let renewed = client.execute(
        "UPDATE gearmand_rs_owners SET lease_until = now() + $2::int8 * interval '1 millisecond'
         WHERE owner = $1 AND lease_until > now()",
        &[&setup.owner, &(setup.period.as_millis() as i64)],
    )?;
    if renewed == 0 {
        lost(&setup.name, &setup.owner);
    }
    setup.clock.renewed(sent);
    let (dead, jobs) = take_over(client, &setup.owner)?;
    if dead.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        "{}: took over {} job(s) of {} whose lease ran out: {}",
        setup.name,
        jobs.len(),
        if dead.len() == 1 { "server" } else { "servers" },
        dead.join(", ")
    );
    if !jobs.is_empty() {
        // Counted (gearman_store_jobs_taken_over) once the core has them. The core is gone only when the server is stopping; the rows stay ours in the
        // database and the next owner takes them.
        let _ = setup.adopted.send(adopted(jobs, setup.rows.clone()));
    }
    Ok(())
}

/// Moves the rows of every expired owner to `owner` and deletes those owners, in one
/// transaction. Returns the owners taken over and their jobs.
#[allow(clippy::type_complexity)]
fn take_over(
    client: &mut Client,
    owner: &str,
) -> Result<(Vec<String>, Vec<(i64, JobRecord)>), ::postgres::Error> {
    let mut tx = client.transaction()?;
    let dead: Vec<String> = tx
        .query(
            "SELECT owner FROM gearmand_rs_owners WHERE lease_until < now() AND owner <> $1
             FOR UPDATE SKIP LOCKED",
            &[&owner],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if dead.is_empty() {
        tx.commit()?;
        return Ok((dead, Vec::new()));
    }
    let rows = tx.query(
        &format!(
            "UPDATE gearmand_rs_jobs SET owner = $1, server_job = 0 WHERE owner = ANY($2)
             RETURNING {}",
            schema::JOB_COLUMNS
        ),
        &[&owner, &dead],
    )?;
    tx.execute(
        "DELETE FROM gearmand_rs_owners WHERE owner = ANY($1)",
        &[&dead],
    )?;
    let mut jobs = rows
        .iter()
        .map(schema::job_of)
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    jobs.sort_by_key(|(row, r)| (r.priority, *row));
    Ok((dead, jobs))
}
