//! Everything sent with `\0RES` magic: what clients and workers receive.

use super::args::{parse_u32, strip_trailing_nul, Args, Part};
use super::error::{PacketError, ProtocolError};
use super::packet::sealed::Parts;
use super::types::*;
use super::{Frame, Magic, PacketType};
use bytes::Bytes;

/// A packet sent by the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Response {
    /// NOOP: wake up and grab.
    Noop,
    /// NO_JOB.
    NoJob,
    /// JOB_CREATED.
    JobCreated {
        /// The job's handle.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        handle: Bytes,
    },
    /// JOB_ASSIGN, JOB_ASSIGN_UNIQ or JOB_ASSIGN_ALL.
    JobAssign(JobAssign),
    /// WORK_STATUS.
    WorkStatus(WorkStatus),
    /// WORK_DATA.
    WorkData(WorkPayload),
    /// WORK_WARNING.
    WorkWarning(WorkPayload),
    /// WORK_COMPLETE.
    WorkComplete(WorkPayload),
    /// WORK_EXCEPTION.
    WorkException(WorkPayload),
    /// WORK_FAIL (a trailing NUL, which gearmand sends after downgrading an exception, is
    /// dropped on parse).
    WorkFail {
        /// Job handle.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::fail_handle))]
        handle: Bytes,
    },
    /// ECHO_RES.
    EchoRes {
        /// The echoed bytes.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        data: Bytes,
    },
    /// ERROR.
    Error {
        /// Return-code name without `GEARMAN_`, e.g. `QUEUE_ERROR`.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        code: Bytes,
        /// Human-readable text.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        text: Bytes,
    },
    /// STATUS_RES.
    StatusRes(StatusRes),
    /// STATUS_RES_UNIQUE.
    StatusResUnique(StatusResUnique),
    /// OPTION_RES.
    OptionRes {
        /// The option, echoed.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        name: Bytes,
    },
}

fn flag(b: bool) -> Part<'static> {
    Part::Unsigned(u64::from(b))
}

impl Response {
    /// Parses a delimited frame.
    pub fn parse(frame: &Frame) -> Result<Response, PacketError> {
        use PacketType as T;
        let ty = frame.ty;
        if frame.magic != Magic::Res {
            return Err(ProtocolError::WrongMagic {
                ty,
                magic: frame.magic,
            }
            .into());
        }
        let a = Args::split(ty, &frame.body)?;
        let num = |i: usize, field| parse_u32(ty, field, &a.get(i));
        Ok(match ty {
            T::Noop => Response::Noop,
            T::NoJob => Response::NoJob,
            T::JobCreated => Response::JobCreated { handle: a.get(0) },
            T::JobAssign => Response::JobAssign(JobAssign {
                handle: a.get(0),
                function: a.get(1),
                extras: AssignExtras::Plain,
                data: a.get(2),
            }),
            T::JobAssignUniq => Response::JobAssign(JobAssign {
                handle: a.get(0),
                function: a.get(1),
                extras: AssignExtras::Unique(a.get(2)),
                data: a.get(3),
            }),
            T::JobAssignAll => Response::JobAssign(JobAssign {
                handle: a.get(0),
                function: a.get(1),
                extras: AssignExtras::Reduce {
                    unique: a.get(2),
                    reducer: a.get(3),
                },
                data: a.get(4),
            }),
            T::WorkStatus => Response::WorkStatus(WorkStatus {
                handle: a.get(0),
                numerator: num(1, "numerator")?,
                denominator: num(2, "denominator")?,
            }),
            T::WorkData => Response::WorkData(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkWarning => Response::WorkWarning(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkComplete => Response::WorkComplete(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkException => Response::WorkException(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkFail => Response::WorkFail {
                handle: strip_trailing_nul(a.get(0)),
            },
            T::EchoRes => Response::EchoRes { data: a.get(0) },
            T::Error => Response::Error {
                code: a.get(0),
                text: a.get(1),
            },
            T::StatusRes => Response::StatusRes(StatusRes {
                handle: a.get(0),
                known: num(1, "known")? != 0,
                running: num(2, "running")? != 0,
                numerator: num(3, "numerator")?,
                denominator: num(4, "denominator")?,
            }),
            T::StatusResUnique => Response::StatusResUnique(StatusResUnique {
                unique: a.get(0),
                known: num(1, "known")? != 0,
                running: num(2, "running")? != 0,
                numerator: num(3, "numerator")?,
                denominator: num(4, "denominator")?,
                client_count: num(5, "client_count")?,
            }),
            T::OptionRes => Response::OptionRes { name: a.get(0) },
            _ => return Err(ProtocolError::Unexpected { ty }.into()),
        })
    }

    /// An ERROR packet.
    pub fn error(code: &'static str, text: &'static str) -> Response {
        Response::Error {
            code: Bytes::from_static(code.as_bytes()),
            text: Bytes::from_static(text.as_bytes()),
        }
    }
}

impl Parts for Response {
    const MAGIC: Magic = Magic::Res;

    fn with_parts<R>(&self, f: impl FnOnce(PacketType, &[Part<'_>]) -> R) -> R {
        use PacketType as T;
        use Part::{Raw, Unsigned};
        match self {
            Response::Noop => f(T::Noop, &[]),
            Response::NoJob => f(T::NoJob, &[]),
            Response::JobCreated { handle } => f(T::JobCreated, &[Raw(handle)]),
            Response::JobAssign(j) => match &j.extras {
                AssignExtras::Plain => f(
                    T::JobAssign,
                    &[Raw(&j.handle), Raw(&j.function), Raw(&j.data)],
                ),
                AssignExtras::Unique(u) => f(
                    T::JobAssignUniq,
                    &[Raw(&j.handle), Raw(&j.function), Raw(u), Raw(&j.data)],
                ),
                AssignExtras::Reduce { unique, reducer } => f(
                    T::JobAssignAll,
                    &[
                        Raw(&j.handle),
                        Raw(&j.function),
                        Raw(unique),
                        Raw(reducer),
                        Raw(&j.data),
                    ],
                ),
            },
            Response::WorkStatus(s) => f(
                T::WorkStatus,
                &[
                    Raw(&s.handle),
                    Unsigned(s.numerator.into()),
                    Unsigned(s.denominator.into()),
                ],
            ),
            Response::WorkData(p) => f(T::WorkData, &[Raw(&p.handle), Raw(&p.data)]),
            Response::WorkWarning(p) => f(T::WorkWarning, &[Raw(&p.handle), Raw(&p.data)]),
            Response::WorkComplete(p) => f(T::WorkComplete, &[Raw(&p.handle), Raw(&p.data)]),
            Response::WorkException(p) => f(T::WorkException, &[Raw(&p.handle), Raw(&p.data)]),
            Response::WorkFail { handle } => f(T::WorkFail, &[Raw(handle)]),
            Response::EchoRes { data } => f(T::EchoRes, &[Raw(data)]),
            Response::Error { code, text } => f(T::Error, &[Raw(code), Raw(text)]),
            Response::StatusRes(s) => f(
                T::StatusRes,
                &[
                    Raw(&s.handle),
                    flag(s.known),
                    flag(s.running),
                    Unsigned(s.numerator.into()),
                    Unsigned(s.denominator.into()),
                ],
            ),
            Response::StatusResUnique(s) => f(
                T::StatusResUnique,
                &[
                    Raw(&s.unique),
                    flag(s.known),
                    flag(s.running),
                    Unsigned(s.numerator.into()),
                    Unsigned(s.denominator.into()),
                    Unsigned(s.client_count.into()),
                ],
            ),
            Response::OptionRes { name } => f(T::OptionRes, &[Raw(name)]),
        }
    }
}
