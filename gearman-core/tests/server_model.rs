//! Model-based test: random operations against the server machine and a deliberately naive
//! reference model. After every step: the server's own invariants, every client's exact
//! replies, the legality of every assignment (highest priority first, FIFO within a
//! function), `status` output, and that no accepted job is lost.

mod support;

use gearman_core::proto::{
    GrabMode, Priority, Request, Response, StatusRes, SubmitJob, SubmitMode, WorkPayload,
    WorkStatus,
};
use gearman_core::server::ConnId;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use support::{b, Net};

const SLOTS: usize = 5;
const FUNCTIONS: [&str; 2] = ["f0", "f1"];

#[derive(Clone, Debug)]
enum Op {
    Submit {
        slot: usize,
        function: usize,
        unique: usize,
        priority: usize,
        background: bool,
    },
    CanDo {
        slot: usize,
        function: usize,
    },
    CantDo {
        slot: usize,
        function: usize,
    },
    Grab {
        slot: usize,
    },
    PreSleep {
        slot: usize,
    },
    Report {
        slot: usize,
        kind: usize,
    },
    GetStatus {
        slot: usize,
        job: usize,
    },
    Disconnect {
        slot: usize,
    },
    AdminStatus {
        slot: usize,
    },
    Tick {
        millis: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        4 => (slot.clone(), 0..2usize, 0..3usize, 0..3usize, any::<bool>()).prop_map(|(slot, function, unique, priority, background)| Op::Submit { slot, function, unique, priority, background }),
        2 => (slot.clone(), 0..2usize).prop_map(|(slot, function)| Op::CanDo { slot, function }),
        1 => (slot.clone(), 0..2usize).prop_map(|(slot, function)| Op::CantDo { slot, function }),
        3 => slot.clone().prop_map(|slot| Op::Grab { slot }),
        1 => slot.clone().prop_map(|slot| Op::PreSleep { slot }),
        3 => (slot.clone(), 0..5usize).prop_map(|(slot, kind)| Op::Report { slot, kind }),
        1 => (slot.clone(), 0..8usize).prop_map(|(slot, job)| Op::GetStatus { slot, job }),
        1 => slot.clone().prop_map(|slot| Op::Disconnect { slot }),
        1 => slot.clone().prop_map(|slot| Op::AdminStatus { slot }),
        1 => (0..3000u64).prop_map(|millis| Op::Tick { millis }),
    ]
}

/// A lost job goes back to its queue in arrival order: handles count up from 1.
fn handle_number(h: &str) -> u64 {
    h.rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
enum MState {
    Queued,
    Running(usize),
}

#[derive(Debug, Clone)]
struct MJob {
    function: String,
    unique: String,
    priority: Priority,
    background: bool,
    listeners: Vec<usize>,
    state: MState,
    status: (u32, u32),
    seq: u64,
}

/// The naive model: BTreeMaps everywhere, linear scans.
#[derive(Default)]
struct Model {
    jobs: BTreeMap<String, MJob>,
    next_handle: u64,
    seq: u64,
    /// Registrations per slot and function (duplicates counted).
    abilities: [BTreeMap<String, usize>; SLOTS],
    held: [Vec<String>; SLOTS],
    seen_functions: BTreeSet<String>,
    expected: [VecDeque<Response>; SLOTS],
}

impl Model {
    fn queued(&self, f: &str, p: Priority) -> Vec<(&String, &MJob)> {
        let mut v: Vec<_> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.function == f && j.priority == p && j.state == MState::Queued)
            .collect();
        v.sort_by_key(|(_, j)| j.seq);
        v
    }

    fn best_priority_for(&self, slot: usize) -> Option<Priority> {
        Priority::ALL.into_iter().find(|&p| {
            self.abilities[slot]
                .keys()
                .any(|f| !self.queued(f, p).is_empty())
        })
    }

    fn tell_listeners(&mut self, handle: &str, packet: Response) {
        if let Some(j) = self.jobs.get(handle) {
            for &l in &j.listeners.clone() {
                self.expected[l].push_back(packet.clone());
            }
        }
    }

    /// A worker lost its job: back to the queue tail, or dropped if nobody waits for it.
    fn requeue(&mut self, handle: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(j) = self.jobs.get_mut(handle) {
            if j.listeners.is_empty() && !j.background {
                self.jobs.remove(handle);
            } else {
                j.state = MState::Queued;
                j.status = (0, 0);
                j.seq = seq;
            }
        }
    }

    fn status_text(&self) -> String {
        let mut out = String::new();
        for f in &self.seen_functions {
            let total = self.jobs.values().filter(|j| &j.function == f).count();
            let running = self
                .jobs
                .values()
                .filter(|j| &j.function == f && matches!(j.state, MState::Running(_)))
                .count();
            let workers: usize = self
                .abilities
                .iter()
                .map(|a| a.get(f).copied().unwrap_or(0))
                .sum();
            out += &format!("{f}\t{total}\t{running}\t{workers}\n");
        }
        out + ".\n"
    }
}

struct Harness {
    net: Net,
    conns: [ConnId; SLOTS],
    model: Model,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let mut net = Net::new(seed);
        let conns = std::array::from_fn(|_| net.connect());
        Harness {
            net,
            conns,
            model: Model::default(),
        }
    }

    fn apply(&mut self, op: &Op) {
        let m = &mut self.model;
        match op.clone() {
            Op::Submit {
                slot,
                function,
                unique,
                priority,
                background,
            } => {
                let f = FUNCTIONS[function].to_string();
                let u = if unique == 0 {
                    String::new()
                } else {
                    format!("u{unique}")
                };
                let p = Priority::ALL[priority];
                let mode = if background {
                    SubmitMode::Background(p)
                } else {
                    SubmitMode::Foreground(p)
                };
                m.seen_functions.insert(f.clone());
                let existing = (!u.is_empty())
                    .then(|| {
                        m.jobs
                            .iter()
                            .find(|(_, j)| j.function == f && j.unique == u)
                            .map(|(h, _)| h.clone())
                    })
                    .flatten();
                let handle = match existing {
                    Some(h) => {
                        let j = m.jobs.get_mut(&h).expect("model job");
                        j.background |= background;
                        if !background {
                            j.listeners.push(slot);
                        }
                        h
                    }
                    None => {
                        m.next_handle += 1;
                        m.seq += 1;
                        let h = format!("H:test:{}", m.next_handle);
                        m.jobs.insert(
                            h.clone(),
                            MJob {
                                function: f.clone(),
                                unique: u.clone(),
                                priority: p,
                                background,
                                listeners: if background { vec![] } else { vec![slot] },
                                state: MState::Queued,
                                status: (0, 0),
                                seq: m.seq,
                            },
                        );
                        h
                    }
                };
                m.expected[slot].push_back(Response::JobCreated { handle: b(&handle) });
                self.net.send(
                    self.conns[slot],
                    Request::Submit(SubmitJob {
                        function: b(&f),
                        unique: b(&u),
                        mode,
                        data: b("data"),
                    }),
                );
            }
            Op::CanDo { slot, function } => {
                let f = FUNCTIONS[function];
                *m.abilities[slot].entry(f.to_string()).or_default() += 1;
                m.seen_functions.insert(f.to_string());
                self.net
                    .send(self.conns[slot], Request::CanDo { function: b(f) });
            }
            Op::CantDo { slot, function } => {
                let f = FUNCTIONS[function];
                m.abilities[slot].remove(f);
                let mut lost: Vec<String> = m.held[slot]
                    .iter()
                    .filter(|h| m.jobs.get(*h).is_some_and(|j| j.function == f))
                    .cloned()
                    .collect();
                lost.sort_by_key(|h| handle_number(h));
                m.held[slot].retain(|h| !lost.contains(h));
                for h in lost {
                    m.requeue(&h);
                }
                self.net
                    .send(self.conns[slot], Request::CantDo { function: b(f) });
            }
            Op::Grab { slot } => {
                let best = m.best_priority_for(slot);
                self.net
                    .send(self.conns[slot], Request::GrabJob(GrabMode::Uniq));
                let replies: Vec<Response> = self
                    .net
                    .recv(self.conns[slot])
                    .into_iter()
                    .filter(|r| *r != Response::Noop)
                    .collect();
                let m = &mut self.model;
                match (best, replies.as_slice()) {
                    (None, [Response::NoJob]) => {}
                    (Some(p), [Response::JobAssign(a)]) => {
                        let h = String::from_utf8_lossy(&a.handle).into_owned();
                        let f = String::from_utf8_lossy(&a.function).into_owned();
                        let oldest = m.queued(&f, p).first().map(|(h, _)| (*h).clone());
                        assert_eq!(
                            oldest.as_deref(),
                            Some(h.as_str()),
                            "assigned job must be the oldest of the best priority"
                        );
                        assert!(m.abilities[slot].contains_key(&f));
                        m.jobs.get_mut(&h).expect("model job").state = MState::Running(slot);
                        m.held[slot].push(h);
                    }
                    (best, other) => {
                        panic!("grab: model expected priority {best:?}, server sent {other:?}")
                    }
                }
            }
            Op::PreSleep { slot } => self.net.send(self.conns[slot], Request::PreSleep),
            Op::Report { slot, kind } => {
                let Some(h) = m.held[slot].first().cloned() else {
                    return;
                };
                let handle = b(&h);
                let payload = || WorkPayload {
                    handle: handle.clone(),
                    data: b("r"),
                };
                let (req, to_clients, terminal) = match kind {
                    0 => (
                        Request::WorkData(payload()),
                        Response::WorkData(payload()),
                        false,
                    ),
                    1 => {
                        let s = WorkStatus {
                            handle: handle.clone(),
                            numerator: 1,
                            denominator: 2,
                        };
                        m.jobs.get_mut(&h).expect("model job").status = (1, 2);
                        (
                            Request::WorkStatus(s.clone()),
                            Response::WorkStatus(s),
                            false,
                        )
                    }
                    2 => (
                        Request::WorkComplete(payload()),
                        Response::WorkComplete(payload()),
                        true,
                    ),
                    3 => (
                        Request::WorkFail {
                            handle: handle.clone(),
                        },
                        Response::WorkFail {
                            handle: handle.clone(),
                        },
                        true,
                    ),
                    _ => (
                        Request::WorkException(payload()),
                        Response::WorkFail {
                            handle: handle.clone(),
                        },
                        true,
                    ),
                };
                m.tell_listeners(&h, to_clients);
                if terminal {
                    m.jobs.remove(&h);
                    m.held[slot].retain(|x| *x != h);
                }
                self.net.send(self.conns[slot], req);
            }
            Op::GetStatus { slot, job } => {
                let h = format!("H:test:{}", job + 1);
                let j = m.jobs.get(&h);
                m.expected[slot].push_back(Response::StatusRes(StatusRes {
                    handle: b(&h),
                    known: j.is_some(),
                    running: j.is_some_and(|j| matches!(j.state, MState::Running(_))),
                    numerator: j.map_or(0, |j| j.status.0),
                    denominator: j.map_or(0, |j| j.status.1),
                }));
                self.net
                    .send(self.conns[slot], Request::GetStatus { handle: b(&h) });
            }
            Op::Disconnect { slot } => {
                m.abilities[slot].clear();
                m.expected[slot].clear();
                let mut held = std::mem::take(&mut m.held[slot]);
                held.sort_by_key(|h| handle_number(h));
                for h in held {
                    m.requeue(&h);
                }
                let mut abandoned = vec![];
                for (h, j) in m.jobs.iter_mut() {
                    j.listeners.retain(|&l| l != slot);
                    if j.listeners.is_empty() && !j.background && j.state == MState::Queued {
                        abandoned.push(h.clone());
                    }
                }
                for h in abandoned {
                    m.jobs.remove(&h);
                }
                self.net.eof(self.conns[slot]);
                self.conns[slot] = self.net.connect();
            }
            Op::AdminStatus { slot } => {
                let expected = m.status_text();
                assert_eq!(self.net.admin(self.conns[slot], "status\r\n"), expected);
            }
            Op::Tick { millis } => self.net.advance(Duration::from_millis(millis)),
        }
        self.check();
    }

    fn check(&mut self) {
        self.net.check();
        for slot in 0..SLOTS {
            let got: Vec<Response> = self
                .net
                .recv(self.conns[slot])
                .into_iter()
                .filter(|r| *r != Response::Noop)
                .collect();
            let want: Vec<Response> = self.model.expected[slot].drain(..).collect();
            assert_eq!(got, want, "replies to slot {slot}");
        }
        let live = self.net.server.queued_jobs() + self.net.server.running_jobs();
        assert_eq!(
            live,
            self.model.jobs.len(),
            "accepted jobs lost or invented"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn server_agrees_with_the_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..120)) {
        let mut h = Harness::new(seed);
        for op in &ops {
            h.apply(op);
        }
    }
}
