//! Reply correlation for a client connection. All transitions live in this file; the table
//! below is the source of truth.
//!
//! | server sends | matched by | effect |
//! |---|---|---|
//! | JOB_CREATED | FIFO head, must await `Created` | foreground: attach the request to the handle; background: done |
//! | STATUS_RES | FIFO head, must await `Status` | done |
//! | STATUS_RES_UNIQUE | FIFO head, must await `StatusUnique` | done |
//! | ECHO_RES | FIFO head, must await `Echo` | done |
//! | OPTION_RES | FIFO head, must await `Option` | done |
//! | ERROR | FIFO head, if any (libgearman assumes an ERROR replaces one reply) | done, reported as a server error |
//! | WORK_STATUS / DATA / WARNING | handle, next submitter in rotation | reported |
//! | WORK_COMPLETE / FAIL / EXCEPTION | handle, next submitter in rotation | reported, submitter detached, done |
//! | WORK_* for an unknown handle | — | ignored (admin `cancel job` sends WORK_COMPLETE after WORK_FAIL) |
//! | anything else | — | protocol violation, connection fails |
//!
//! Why rotation: when gearmand coalesces several foreground submissions of one connection
//! onto one job, it sends every WORK_* packet once per submission, back to back. Handing
//! copy *i* to submitter *i* gives each submission its own complete stream. A request that
//! timed out or was forgotten stays in the rotation as a ghost that absorbs its copies.

use super::ClientEvent;
use crate::error::{ConnError, ProtocolError};
use crate::machine::RequestId;
use crate::proto::{Packet, PacketType, Response};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

/// The request id used for requests the connection sends on its own (the `exceptions`
/// option from the config). Replies to it produce no event.
pub(crate) const INTERNAL: RequestId = RequestId(0);

/// Which handle-less reply a request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Created { foreground: bool },
    Status,
    StatusUnique,
    Echo,
    Option,
}

#[derive(Debug, Default)]
struct Attached {
    submitters: Vec<RequestId>,
    cursor: usize,
}

impl Attached {
    /// The submitter the next copy of a packet belongs to.
    fn next(&mut self, terminal: bool) -> Option<RequestId> {
        if self.cursor >= self.submitters.len() {
            self.cursor = 0;
        }
        if terminal {
            if self.cursor < self.submitters.len() {
                Some(self.submitters.remove(self.cursor))
            } else {
                None
            }
        } else {
            let req = self.submitters.get(self.cursor).copied();
            self.cursor += 1;
            req
        }
    }
}

/// Matches replies to requests.
#[derive(Debug, Default)]
pub(crate) struct Correlator {
    fifo: VecDeque<(RequestId, Expect)>,
    attached: HashMap<Bytes, Attached>,
    /// Requests whose events the application still wants, with their deadline.
    live: HashMap<RequestId, Option<Instant>>,
    deadlines: BTreeSet<(Instant, RequestId)>,
}

impl Correlator {
    /// Records a request sent to the server that expects a handle-less reply.
    pub(crate) fn expect(&mut self, req: RequestId, expect: Expect) {
        self.fifo.push_back((req, expect));
        if req != INTERNAL {
            self.live.insert(req, None);
        }
    }

    /// Live requests (waiting for any reply or result).
    pub(crate) fn outstanding(&self) -> usize {
        self.live.len()
    }

    pub(crate) fn set_deadline(&mut self, req: RequestId, deadline: Instant) {
        if let Some(slot) = self.live.get_mut(&req) {
            if let Some(old) = slot.replace(deadline) {
                self.deadlines.remove(&(old, req));
            }
            self.deadlines.insert((deadline, req));
        }
    }

    /// Stops reporting anything for `req`; its replies are still consumed.
    pub(crate) fn forget(&mut self, req: RequestId) -> bool {
        match self.live.remove(&req) {
            Some(deadline) => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, req));
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Requests whose deadline is due, now forgotten.
    pub(crate) fn expire(&mut self, now: Instant, events: &mut VecDeque<ClientEvent>) {
        while let Some(&(at, req)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.forget(req);
            events.push_back(ClientEvent::TimedOut { req });
        }
    }

    pub(crate) fn is_live(&self, req: RequestId) -> bool {
        self.live.contains_key(&req)
    }

    /// Marks `req` done and says whether it should be reported.
    fn finish(&mut self, req: RequestId) -> bool {
        self.forget(req)
    }

    fn pop(
        &mut self,
        ty: PacketType,
        want: fn(Expect) -> bool,
    ) -> Result<(RequestId, Expect), ConnError> {
        match self.fifo.front() {
            Some(&(req, expect)) if want(expect) => {
                self.fifo.pop_front();
                Ok((req, expect))
            }
            _ => Err(ProtocolError::UnsolicitedReply { ty }.into()),
        }
    }

    fn route(&mut self, handle: &Bytes, terminal: bool) -> Option<RequestId> {
        let attached = self.attached.get_mut(handle)?;
        let req = attached.next(terminal);
        if attached.submitters.is_empty() {
            self.attached.remove(handle);
        }
        req
    }

    /// Applies one reply; queues the events it produces.
    pub(crate) fn on_response(
        &mut self,
        response: Response,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), ConnError> {
        let ty = response.packet_type();
        match response {
            Response::JobCreated { handle } => {
                let (req, expect) = self.pop(ty, |e| matches!(e, Expect::Created { .. }))?;
                let foreground = matches!(expect, Expect::Created { foreground: true });
                if foreground {
                    self.attached
                        .entry(handle.clone())
                        .or_default()
                        .submitters
                        .push(req);
                }
                let report = if foreground {
                    self.is_live(req)
                } else {
                    self.finish(req)
                };
                if report {
                    events.push_back(ClientEvent::Created {
                        req,
                        handle,
                        background: !foreground,
                    });
                }
            }
            Response::StatusRes(status) => {
                let (req, _) = self.pop(ty, |e| e == Expect::Status)?;
                if self.finish(req) {
                    events.push_back(ClientEvent::StatusRes { req, status });
                }
            }
            Response::StatusResUnique(status) => {
                let (req, _) = self.pop(ty, |e| e == Expect::StatusUnique)?;
                if self.finish(req) {
                    events.push_back(ClientEvent::StatusResUnique { req, status });
                }
            }
            Response::EchoRes { data } => {
                let (req, _) = self.pop(ty, |e| e == Expect::Echo)?;
                if self.finish(req) {
                    events.push_back(ClientEvent::EchoRes { req, data });
                }
            }
            Response::OptionRes { name } => {
                let (req, _) = self.pop(ty, |e| e == Expect::Option)?;
                if self.finish(req) {
                    events.push_back(ClientEvent::OptionRes { req, name });
                }
            }
            Response::Error { code, text } => {
                let req = match self.fifo.pop_front() {
                    Some((INTERNAL, _)) | None => None,
                    Some((req, _)) => {
                        if !self.finish(req) {
                            return Ok(());
                        }
                        Some(req)
                    }
                };
                events.push_back(ClientEvent::ServerError { req, code, text });
            }
            Response::WorkStatus(s) => {
                if let Some(req) = self.route(&s.handle, false).filter(|r| self.is_live(*r)) {
                    events.push_back(ClientEvent::Status {
                        req,
                        handle: s.handle,
                        numerator: s.numerator,
                        denominator: s.denominator,
                    });
                }
            }
            Response::WorkData(p) => {
                if let Some(req) = self.route(&p.handle, false).filter(|r| self.is_live(*r)) {
                    events.push_back(ClientEvent::Data {
                        req,
                        handle: p.handle,
                        data: p.data,
                    });
                }
            }
            Response::WorkWarning(p) => {
                if let Some(req) = self.route(&p.handle, false).filter(|r| self.is_live(*r)) {
                    events.push_back(ClientEvent::Warning {
                        req,
                        handle: p.handle,
                        data: p.data,
                    });
                }
            }
            Response::WorkComplete(p) => {
                if let Some(req) = self.route(&p.handle, true).filter(|r| self.finish(*r)) {
                    events.push_back(ClientEvent::Complete {
                        req,
                        handle: p.handle,
                        data: p.data,
                    });
                }
            }
            Response::WorkException(p) => {
                if let Some(req) = self.route(&p.handle, true).filter(|r| self.finish(*r)) {
                    events.push_back(ClientEvent::Exception {
                        req,
                        handle: p.handle,
                        data: p.data,
                    });
                }
            }
            Response::WorkFail { handle } => {
                if let Some(req) = self.route(&handle, true).filter(|r| self.finish(*r)) {
                    events.push_back(ClientEvent::Failed { req, handle });
                }
            }
            _ => return Err(ProtocolError::Unexpected { ty }.into()),
        }
        Ok(())
    }

    /// Drops everything (the connection closed).
    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
        self.attached.clear();
        self.live.clear();
        self.deadlines.clear();
    }
}
