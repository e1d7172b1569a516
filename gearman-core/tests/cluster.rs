//! The three machines together in memory: the server, real client connections and real
//! worker connections, joined by links that re-chunk every byte stream at seeded random
//! points, under a virtual clock. No sockets, no threads.

use bytes::Bytes;
use gearman_core::client::{ClientConfig, ClientConnection, ClientEvent};
use gearman_core::machine::Machine;
use gearman_core::proto::{Priority, SubmitJob, SubmitMode};
use gearman_core::server::{ConnId, PeerInfo, Server, ServerConfig};
use gearman_core::worker::{WorkerConfig, WorkerConnection, WorkerEvent};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

struct Cluster {
    server: Server,
    clients: Vec<(ClientConnection, ConnId)>,
    workers: Vec<(WorkerConnection, ConnId)>,
    now: Instant,
    rng: u64,
    client_events: Vec<Vec<ClientEvent>>,
}

impl Cluster {
    fn new(seed: u64, clients: usize, workers: usize, max_in_flight: usize) -> Cluster {
        let now = Instant::now();
        let mut config = ServerConfig::new(now, 1_700_000_000);
        config.handle_prefix = "H:mem".into();
        let mut server = Server::new(config, now);
        let peer = |i| PeerInfo {
            fd: i,
            ip: "127.0.0.1".into(),
        };
        let clients = (0..clients)
            .map(|i| {
                (
                    ClientConnection::new(ClientConfig::default()),
                    server.accept(peer(i as u64), now),
                )
            })
            .collect();
        let workers = (0..workers)
            .map(|i| {
                let config = WorkerConfig {
                    max_in_flight,
                    ..WorkerConfig::default()
                };
                (
                    WorkerConnection::new(config),
                    server.accept(peer(100 + i as u64), now),
                )
            })
            .collect();
        Cluster {
            server,
            clients,
            workers,
            now,
            rng: seed | 1,
            client_events: vec![Vec::new(); 8],
        }
    }

    fn cut(&mut self, len: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        1 + (self.rng as usize % len.clamp(1, 23))
    }

    /// Delivers `bytes` in random pieces, to the server from `conn`.
    fn deliver_to_server(&mut self, conn: ConnId, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.cut(rest.len()).min(rest.len());
            self.server.handle_input(conn, &rest[..n], self.now);
            rest = &rest[n..];
        }
    }

    /// Moves bytes until nothing moves; `work` answers each assigned job. Bounded: a
    /// livelock fails the test instead of hanging it.
    fn run_until_idle(&mut self, work: &mut dyn FnMut(&mut WorkerConnection, Bytes, Bytes)) {
        for _ in 0..10_000 {
            let mut moved = false;
            let mut out = Vec::new();
            for i in 0..self.clients.len() {
                out.clear();
                if self.clients[i].0.poll_transmit(&mut out) > 0 {
                    moved = true;
                    let conn = self.clients[i].1;
                    let bytes = out.clone();
                    self.deliver_to_server(conn, &bytes);
                }
            }
            for i in 0..self.workers.len() {
                out.clear();
                if self.workers[i].0.poll_transmit(&mut out) > 0 {
                    moved = true;
                    let conn = self.workers[i].1;
                    let bytes = out.clone();
                    self.deliver_to_server(conn, &bytes);
                }
            }
            while let Some(conn) = self.server.poll_writable() {
                out.clear();
                let _ = self.server.poll_transmit(conn, &mut out);
                moved = true;
                let bytes = out.clone();
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = self.cut(rest.len()).min(rest.len());
                    if let Some((c, _)) = self.clients.iter_mut().find(|(_, id)| *id == conn) {
                        c.handle_input(&rest[..n], self.now)
                            .expect("client accepts server bytes");
                    } else if let Some((w, _)) = self.workers.iter_mut().find(|(_, id)| *id == conn)
                    {
                        w.handle_input(&rest[..n], self.now)
                            .expect("worker accepts server bytes");
                    }
                    rest = &rest[n..];
                }
            }
            for (i, (c, _)) in self.clients.iter_mut().enumerate() {
                while let Some(e) = c.poll_event() {
                    self.client_events[i].push(e);
                    moved = true;
                }
            }
            for (w, _) in self.workers.iter_mut() {
                while let Some(e) = w.poll_event() {
                    if let WorkerEvent::JobAssigned(job) = e {
                        work(w, job.handle, job.data);
                        moved = true;
                    }
                }
            }
            self.server.check_invariants().expect("server invariants");
            if !moved {
                return;
            }
        }
        panic!("livelock: the cluster never went idle");
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
    }
}

fn job(function: &str, unique: &str, data: &str, p: Priority) -> SubmitJob {
    SubmitJob {
        function: Bytes::copy_from_slice(function.as_bytes()),
        unique: Bytes::copy_from_slice(unique.as_bytes()),
        mode: SubmitMode::Foreground(p),
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn reverse(w: &mut WorkerConnection, handle: Bytes, data: Bytes) {
    let mut v = data.to_vec();
    v.reverse();
    w.work_data(&handle, Bytes::from_static(b"partial"))
        .unwrap();
    w.work_complete(&handle, Bytes::from(v)).unwrap();
}

#[test]
fn many_clients_and_workers_get_every_result_under_rechunking() {
    for seed in 1..=25u64 {
        let mut c = Cluster::new(seed, 3, 2, 2);
        for (w, _) in c.workers.iter_mut() {
            w.can_do(Bytes::from_static(b"rev"), None).unwrap();
        }
        let mut expected = BTreeMap::new();
        for i in 0..3 {
            for n in 0..10 {
                let data = format!("c{i}-job{n}");
                let p = Priority::ALL[n % 3];
                let req = c.clients[i].0.submit(job("rev", "", &data, p)).unwrap();
                expected.insert((i, req), data.chars().rev().collect::<String>());
            }
        }
        c.run_until_idle(&mut reverse);
        for (i, events) in c.client_events.iter().enumerate().take(3) {
            for e in events {
                if let ClientEvent::Complete { req, data, .. } = e {
                    let want = expected
                        .remove(&(i, *req))
                        .expect("one result per submission");
                    assert_eq!(String::from_utf8_lossy(data), want, "seed {seed}");
                }
            }
            let data_events = events
                .iter()
                .filter(|e| matches!(e, ClientEvent::Data { .. }))
                .count();
            assert_eq!(
                data_events, 10,
                "seed {seed}: every job's WORK_DATA reached its client"
            );
        }
        assert!(
            expected.is_empty(),
            "seed {seed}: results missing for {expected:?}"
        );
        assert_eq!(c.server.queued_jobs() + c.server.running_jobs(), 0);
    }
}

#[test]
fn coalesced_submissions_on_one_connection_each_get_a_stream() {
    let mut c = Cluster::new(7, 1, 1, 1);
    c.workers[0]
        .0
        .can_do(Bytes::from_static(b"rev"), None)
        .unwrap();
    // Submitted before the worker can run anything, so both coalesce onto one job.
    let a = c.clients[0]
        .0
        .submit(job("rev", "same", "abc", Priority::Normal))
        .unwrap();
    let b = c.clients[0]
        .0
        .submit(job("rev", "same", "abc", Priority::Normal))
        .unwrap();
    c.run_until_idle(&mut reverse);
    let completes: Vec<_> = c.client_events[0]
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Complete { req, data, .. } => Some((*req, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        completes,
        vec![
            (a, Bytes::from_static(b"cba")),
            (b, Bytes::from_static(b"cba"))
        ]
    );
}

#[test]
fn a_worker_that_vanishes_mid_job_loses_nothing() {
    let mut c = Cluster::new(11, 1, 2, 1);
    c.workers[0]
        .0
        .can_do(Bytes::from_static(b"rev"), None)
        .unwrap();
    let req = c.clients[0]
        .0
        .submit(job("rev", "", "xyz", Priority::High))
        .unwrap();
    // Worker 0 takes the job and dies without answering.
    c.run_until_idle(&mut |_, _, _| {});
    let dead = c.workers[0].1;
    c.server.handle_eof(dead, c.now);
    c.workers.remove(0);
    c.workers[0]
        .0
        .can_do(Bytes::from_static(b"rev"), None)
        .unwrap();
    c.advance(Duration::from_millis(10));
    c.run_until_idle(&mut reverse);
    assert!(c.client_events[0]
        .iter()
        .any(|e| matches!(e, ClientEvent::Complete { req: r, data, .. } if *r == req && data[..] == b"zyx"[..])));
}
