//! The group-commit runner against the in-memory store with injected failures (no SQLite):
//! acknowledgements follow the commit, a failed commit refuses its inserts and loses
//! nothing acknowledged, deletes survive a failed commit, and concurrent inserts share
//! commits. With several lanes, commits overlap but a job's changes stay in order; with a
//! sync step, acknowledgements wait for it and the next group is written meanwhile.

use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use gearman_server::store::memory::{MemoryControl, MemoryOptions, MemoryStore};
use gearman_server::store::StoreHandle;
use std::sync::mpsc;
use std::time::Duration;

const ACK_WAIT: Duration = Duration::from_secs(30);

fn record(id: u64, priority: Priority) -> JobRecord {
    JobRecord {
        durable_id: id,
        function: Bytes::from_static(b"f"),
        unique: Bytes::from(format!("u{id}")),
        priority,
        data: Bytes::from(format!("job {id}")),
        when: None,
        reducer: None,
    }
}

fn start(jobs: Vec<JobRecord>) -> (StoreHandle, Vec<JobRecord>, MemoryControl) {
    start_with(jobs, MemoryOptions::default())
}

fn start_with(
    jobs: Vec<JobRecord>,
    options: MemoryOptions,
) -> (StoreHandle, Vec<JobRecord>, MemoryControl) {
    let (store, control) = MemoryStore::with_options(jobs, options);
    let (handle, loaded) = StoreHandle::start(store).expect("the runner starts");
    (handle, loaded, control)
}

fn lanes(lanes: usize) -> MemoryOptions {
    MemoryOptions {
        lanes,
        ..MemoryOptions::default()
    }
}

/// Queues an insert; its outcome arrives on the returned channel.
fn insert(store: &StoreHandle, id: u64) -> mpsc::Receiver<Result<(), String>> {
    let (tx, rx) = mpsc::channel();
    store.insert(
        record(id, Priority::Normal),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx
}

fn ack(rx: &mpsc::Receiver<Result<(), String>>) -> Result<(), String> {
    rx.recv_timeout(ACK_WAIT).expect("an acknowledgement")
}

fn stored_ids(control: &MemoryControl) -> Vec<u64> {
    control.jobs().iter().map(|r| r.durable_id).collect()
}

#[test]
fn start_loads_jobs_in_priority_then_arrival_order() {
    let jobs = vec![
        record(3, Priority::Low),
        record(1, Priority::Normal),
        record(4, Priority::High),
        record(2, Priority::Normal),
    ];
    let (_store, loaded, _) = start(jobs);
    let order: Vec<u64> = loaded.iter().map(|r| r.durable_id).collect();
    assert_eq!(order, [4, 1, 2, 3]);
}

#[test]
fn acknowledgement_waits_for_the_commit() {
    let (store, _, control) = start(Vec::new());
    control.hold();
    let rx = insert(&store, 1);
    assert!(control.wait_started(1, ACK_WAIT), "the commit starts");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "acknowledged before the commit finished"
    );
    assert!(stored_ids(&control).is_empty());
    control.release();
    assert_eq!(ack(&rx), Ok(()));
    assert_eq!(stored_ids(&control), [1]);
}

#[test]
fn failed_commit_refuses_its_inserts_and_keeps_what_was_acknowledged() {
    let (store, _, control) = start(Vec::new());
    assert_eq!(ack(&insert(&store, 1)), Ok(()));
    control.fail_next(1);
    let refused = ack(&insert(&store, 2)).expect_err("the failed commit's insert is refused");
    assert!(
        refused.contains("memory store") && refused.contains("injected"),
        "{refused}"
    );
    assert_eq!(ack(&insert(&store, 3)), Ok(()));
    assert_eq!(stored_ids(&control), [1, 3]);
    assert_eq!(store.commits(), 2, "the failed commit is not counted");
}

#[test]
fn deletes_of_a_failed_commit_are_retried() {
    let (store, _, control) = start(vec![record(1, Priority::Normal)]);
    control.hold();
    let held = insert(&store, 2);
    assert!(control.wait_started(1, ACK_WAIT));
    // Queued behind the held commit: they form the next group.
    store.remove(1);
    let behind = insert(&store, 3);
    control.fail_next(2);
    control.release();
    assert!(ack(&held).is_err());
    assert!(ack(&behind).is_err());
    assert_eq!(stored_ids(&control), [1], "failed commits wrote nothing");
    assert_eq!(ack(&insert(&store, 4)), Ok(()));
    assert_eq!(
        stored_ids(&control),
        [4],
        "the delete from the failed group went with the next commit"
    );
    let groups = control.groups();
    assert_eq!(groups.last().map(|g| (g.inserts, g.removes)), Some((1, 1)));
}

#[test]
fn a_failed_delete_is_retried_without_new_traffic() {
    let (store, _, control) = start(vec![record(1, Priority::Normal)]);
    control.fail_next(1);
    store.remove(1);
    assert!(
        eventually(|| store.commit_stats().report().failures == 1),
        "the delete's commit did not fail"
    );
    assert!(store.commit_stats().report().last_failed);
    // Nothing else is queued: the runner retries the delete on its own.
    assert!(
        eventually(|| stored_ids(&control).is_empty()),
        "the finished job stayed stored until other traffic came"
    );
    assert!(eventually(|| !store.commit_stats().report().last_failed));
}

#[test]
fn inserts_queued_during_a_commit_share_the_next_one() {
    let (store, _, control) = start(Vec::new());
    control.hold();
    let first = insert(&store, 0);
    assert!(control.wait_started(1, ACK_WAIT));
    let rest: Vec<_> = (1..=100).map(|id| insert(&store, id)).collect();
    control.release();
    assert_eq!(ack(&first), Ok(()));
    for rx in &rest {
        assert_eq!(ack(rx), Ok(()));
    }
    let inserts: Vec<usize> = control.groups().iter().map(|g| g.inserts).collect();
    assert_eq!(inserts, [1, 100]);
    assert_eq!(store.commits(), 2);
}

#[test]
fn slow_commits_serve_concurrent_submitters_with_shared_commits() {
    let (store, _, control) = start(Vec::new());
    control.set_delay(Duration::from_millis(5));
    let store = std::sync::Arc::new(store);
    let submitters: Vec<_> = (0..8u64)
        .map(|c| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..25u64 {
                    assert_eq!(ack(&insert(&store, c * 100 + n)), Ok(()));
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().expect("a submitter");
    }
    assert_eq!(control.jobs().len(), 200);
    let groups = control.groups();
    assert_eq!(groups.iter().map(|g| g.inserts).sum::<usize>(), 200);
    assert!(
        groups.len() <= 100,
        "{} commits for 200 inserts from 8 submitters: groups are not shared",
        groups.len()
    );
}

#[test]
fn close_commits_and_acknowledges_everything_queued() {
    let (store, _, control) = start(Vec::new());
    control.set_delay(Duration::from_millis(20));
    let pending: Vec<_> = (0..10).map(|id| insert(&store, id)).collect();
    store.remove(0);
    store.close();
    for rx in &pending {
        assert_eq!(
            rx.try_recv(),
            Ok(Ok(())),
            "acknowledged before close returned"
        );
    }
    assert_eq!(stored_ids(&control), (1..10).collect::<Vec<_>>());
}

#[test]
fn a_second_lane_commits_while_the_first_is_held() {
    let (store, _, control) = start_with(Vec::new(), lanes(2));
    control.hold();
    let first = insert(&store, 1);
    assert!(control.wait_started(1, ACK_WAIT));
    let second = insert(&store, 2);
    assert!(
        control.wait_started(2, ACK_WAIT),
        "the second insert waited for the first commit instead of taking the free lane"
    );
    control.release();
    assert_eq!(ack(&first), Ok(()));
    assert_eq!(ack(&second), Ok(()));
    assert_eq!(control.most_at_once(), 2);
    assert_eq!(stored_ids(&control), [1, 2]);
}

#[test]
fn a_remove_waits_for_its_insert_on_another_lane() {
    let (store, _, control) = start_with(Vec::new(), lanes(2));
    control.hold();
    // A late write: the job ends while its insert is still being committed.
    let inserted = insert(&store, 1);
    assert!(control.wait_started(1, ACK_WAIT));
    store.remove(1);
    let other = insert(&store, 2);
    assert!(
        control.wait_started(2, ACK_WAIT),
        "job 2 takes the free lane"
    );
    assert!(
        !control.wait_started(3, Duration::from_millis(200)),
        "the remove of job 1 started while its insert was in flight"
    );
    control.release();
    assert_eq!(ack(&inserted), Ok(()));
    assert_eq!(ack(&other), Ok(()));
    store.close();
    assert_eq!(
        stored_ids(&control),
        [2],
        "job 1's remove ran after its insert"
    );
    // The two inserts end in either order; the remove went in a commit of its own, after.
    let groups = control.groups();
    assert_eq!(groups.len(), 3, "{groups:?}");
    let remove = groups.iter().position(|g| (g.inserts, g.removes) == (0, 1));
    assert!(remove.is_some_and(|at| at > 0), "{groups:?}");
}

#[test]
fn acknowledgement_waits_for_the_sync_and_the_next_group_is_written_meanwhile() {
    let options = MemoryOptions {
        syncer: true,
        ..MemoryOptions::default()
    };
    let (store, _, control) = start_with(Vec::new(), options);
    control.hold_syncs();
    let first = insert(&store, 1);
    assert!(
        eventually(|| control.syncs() >= 1),
        "the first group's sync started"
    );
    assert!(
        first.recv_timeout(Duration::from_millis(200)).is_err(),
        "acknowledged before its sync finished"
    );
    // The store is free again: the next group is written while the first is synced.
    let second = insert(&store, 2);
    assert!(
        control.wait_started(2, ACK_WAIT),
        "the second group was not written"
    );
    assert!(second.recv_timeout(Duration::from_millis(100)).is_err());
    control.release_syncs();
    assert_eq!(ack(&first), Ok(()));
    assert_eq!(ack(&second), Ok(()));
    assert!(control.syncs() <= 2);
}

/// Whether `check` holds within the acknowledgement wait.
fn eventually(check: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + ACK_WAIT;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn submitters_split_over_two_lanes_merge_into_one_group_again() {
    let (store, _, control) = start_with(Vec::new(), lanes(2));
    control.set_delay(Duration::from_millis(20));
    let store = std::sync::Arc::new(store);
    // Four submitters that each wait for their commit: the first insert starts a lane
    // alone, the other three take the second lane beside it.
    let submitters: Vec<_> = (0..4u64)
        .map(|c| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..15u64 {
                    assert_eq!(ack(&insert(&store, c * 100 + n)), Ok(()));
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().expect("a submitter");
    }
    let groups = control.groups();
    assert_eq!(groups.iter().map(|g| g.inserts).sum::<usize>(), 60);
    // Kept apart, the two halves would take 30 commits; merged again, about 16.
    assert!(
        groups.len() <= 22,
        "{} commits for 60 inserts from 4 submitters: {:?}",
        groups.len(),
        groups.iter().map(|g| g.inserts).collect::<Vec<_>>()
    );
}
