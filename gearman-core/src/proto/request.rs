//! Everything sent with `\0REQ` magic: what a server receives.

use super::args::{parse_i64, parse_u32, strip_trailing_nul, until_nul, Args, Part};
use super::error::{PacketError, ProtocolError};
use super::packet::sealed::Parts;
use super::types::*;
use super::{Frame, Magic, PacketType};
use bytes::Bytes;

/// A packet sent to the server by a client or worker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Request {
    /// CAN_DO.
    CanDo {
        /// Function name.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        function: Bytes,
    },
    /// CAN_DO_TIMEOUT: the timeout is in milliseconds, as gearmand reads it.
    CanDoTimeout {
        /// Function name.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        function: Bytes,
        /// Run-time limit in milliseconds (0 = none).
        timeout_ms: u32,
    },
    /// CANT_DO.
    CantDo {
        /// Function name.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        function: Bytes,
    },
    /// RESET_ABILITIES.
    ResetAbilities,
    /// PRE_SLEEP.
    PreSleep,
    /// GRAB_JOB, GRAB_JOB_UNIQ or GRAB_JOB_ALL.
    GrabJob(GrabMode),
    /// Any of the SUBMIT_JOB family except SCHED and REDUCE.
    Submit(SubmitJob),
    /// SUBMIT_REDUCE_JOB or SUBMIT_REDUCE_JOB_BACKGROUND.
    SubmitReduce(Box<SubmitReduceJob>),
    /// SUBMIT_JOB_SCHED (rejected by servers).
    SubmitSched(Box<SubmitJobSched>),
    /// GET_STATUS.
    GetStatus {
        /// Job handle (parsing keeps the bytes before the first NUL, as gearmand does).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        handle: Bytes,
    },
    /// GET_STATUS_UNIQUE.
    GetStatusUnique {
        /// Unique id (parsing keeps the bytes before the first NUL, as gearmand does).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        unique: Bytes,
    },
    /// ECHO_REQ.
    Echo {
        /// Bytes to echo.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        data: Bytes,
    },
    /// OPTION_REQ.
    Option {
        /// Option name (only `exceptions` exists).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        name: Bytes,
    },
    /// SET_CLIENT_ID.
    SetClientId {
        /// The id shown by the admin `workers` command.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
        id: Bytes,
    },
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
    /// WORK_FAIL.
    WorkFail {
        /// Job handle.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::fail_handle))]
        handle: Bytes,
    },
    /// ALL_YOURS (never implemented by gearmand; parsed so it can be answered).
    AllYours,
}

impl Request {
    /// Types a `\0REQ` packet may carry: everything a client or worker sends.
    pub fn is_request_type(ty: PacketType) -> bool {
        use PacketType::*;
        !matches!(
            ty,
            Unused
                | Noop
                | JobCreated
                | NoJob
                | JobAssign
                | EchoRes
                | Error
                | StatusRes
                | OptionRes
                | JobAssignUniq
                | JobAssignAll
                | StatusResUnique
        )
    }

    /// Parses a delimited frame.
    pub fn parse(frame: &Frame) -> Result<Request, PacketError> {
        use PacketType as T;
        let ty = frame.ty;
        if frame.magic != Magic::Req {
            return Err(ProtocolError::WrongMagic {
                ty,
                magic: frame.magic,
            }
            .into());
        }
        if !Self::is_request_type(ty) {
            return Err(ProtocolError::Unexpected { ty }.into());
        }
        let a = Args::split(ty, &frame.body)?;
        let submit = |mode| {
            Request::Submit(SubmitJob {
                function: a.get(0),
                unique: a.get(1),
                mode,
                data: a.get(2),
            })
        };
        Ok(match ty {
            T::CanDo => Request::CanDo { function: a.get(0) },
            T::CanDoTimeout => Request::CanDoTimeout {
                function: a.get(0),
                timeout_ms: parse_u32(ty, "timeout", &a.get(1))?,
            },
            T::CantDo => Request::CantDo { function: a.get(0) },
            T::ResetAbilities => Request::ResetAbilities,
            T::PreSleep => Request::PreSleep,
            T::GrabJob => Request::GrabJob(GrabMode::Plain),
            T::GrabJobUniq => Request::GrabJob(GrabMode::Uniq),
            T::GrabJobAll => Request::GrabJob(GrabMode::All),
            T::SubmitJob => submit(SubmitMode::Foreground(Priority::Normal)),
            T::SubmitJobHigh => submit(SubmitMode::Foreground(Priority::High)),
            T::SubmitJobLow => submit(SubmitMode::Foreground(Priority::Low)),
            T::SubmitJobBg => submit(SubmitMode::Background(Priority::Normal)),
            T::SubmitJobHighBg => submit(SubmitMode::Background(Priority::High)),
            T::SubmitJobLowBg => submit(SubmitMode::Background(Priority::Low)),
            T::SubmitJobEpoch => Request::Submit(SubmitJob {
                function: a.get(0),
                unique: a.get(1),
                mode: SubmitMode::Epoch(parse_i64(ty, "epoch", &a.get(2))?),
                data: a.get(3),
            }),
            T::SubmitReduceJob | T::SubmitReduceJobBackground => {
                Request::SubmitReduce(Box::new(SubmitReduceJob {
                    function: a.get(0),
                    unique: a.get(1),
                    reducer: a.get(2),
                    aggregator: a.get(3),
                    background: ty == T::SubmitReduceJobBackground,
                    data: a.get(4),
                }))
            }
            T::SubmitJobSched => Request::SubmitSched(Box::new(SubmitJobSched {
                function: a.get(0),
                unique: a.get(1),
                schedule: [a.get(2), a.get(3), a.get(4), a.get(5), a.get(6)],
                data: a.get(7),
            })),
            T::GetStatus => Request::GetStatus {
                handle: until_nul(a.get(0)),
            },
            T::GetStatusUnique => Request::GetStatusUnique {
                unique: until_nul(a.get(0)),
            },
            T::EchoReq => Request::Echo { data: a.get(0) },
            T::OptionReq => Request::Option { name: a.get(0) },
            T::SetClientId => Request::SetClientId { id: a.get(0) },
            T::WorkStatus => Request::WorkStatus(WorkStatus {
                handle: a.get(0),
                numerator: parse_u32(ty, "numerator", &a.get(1))?,
                denominator: parse_u32(ty, "denominator", &a.get(2))?,
            }),
            T::WorkData => Request::WorkData(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkWarning => Request::WorkWarning(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkComplete => Request::WorkComplete(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkException => Request::WorkException(WorkPayload {
                handle: a.get(0),
                data: a.get(1),
            }),
            T::WorkFail => Request::WorkFail {
                handle: strip_trailing_nul(a.get(0)),
            },
            T::AllYours => Request::AllYours,
            _ => return Err(ProtocolError::Unexpected { ty }.into()),
        })
    }
}

impl Parts for Request {
    const MAGIC: Magic = Magic::Req;

    fn with_parts<R>(&self, f: impl FnOnce(PacketType, &[Part<'_>]) -> R) -> R {
        use PacketType as T;
        use Part::{Raw, Signed, Unsigned};
        match self {
            Request::CanDo { function } => f(T::CanDo, &[Raw(function)]),
            Request::CanDoTimeout {
                function,
                timeout_ms,
            } => f(
                T::CanDoTimeout,
                &[Raw(function), Unsigned((*timeout_ms).into())],
            ),
            Request::CantDo { function } => f(T::CantDo, &[Raw(function)]),
            Request::ResetAbilities => f(T::ResetAbilities, &[]),
            Request::PreSleep => f(T::PreSleep, &[]),
            Request::GrabJob(GrabMode::Plain) => f(T::GrabJob, &[]),
            Request::GrabJob(GrabMode::Uniq) => f(T::GrabJobUniq, &[]),
            Request::GrabJob(GrabMode::All) => f(T::GrabJobAll, &[]),
            Request::Submit(s) => {
                let ty = match s.mode {
                    SubmitMode::Foreground(Priority::Normal) => T::SubmitJob,
                    SubmitMode::Foreground(Priority::High) => T::SubmitJobHigh,
                    SubmitMode::Foreground(Priority::Low) => T::SubmitJobLow,
                    SubmitMode::Background(Priority::Normal) => T::SubmitJobBg,
                    SubmitMode::Background(Priority::High) => T::SubmitJobHighBg,
                    SubmitMode::Background(Priority::Low) => T::SubmitJobLowBg,
                    SubmitMode::Epoch(when) => {
                        return f(
                            T::SubmitJobEpoch,
                            &[Raw(&s.function), Raw(&s.unique), Signed(when), Raw(&s.data)],
                        )
                    }
                };
                f(ty, &[Raw(&s.function), Raw(&s.unique), Raw(&s.data)])
            }
            Request::SubmitReduce(s) => f(
                if s.background {
                    T::SubmitReduceJobBackground
                } else {
                    T::SubmitReduceJob
                },
                &[
                    Raw(&s.function),
                    Raw(&s.unique),
                    Raw(&s.reducer),
                    Raw(&s.aggregator),
                    Raw(&s.data),
                ],
            ),
            Request::SubmitSched(s) => {
                let [m, h, dm, mo, dw] = &s.schedule;
                f(
                    T::SubmitJobSched,
                    &[
                        Raw(&s.function),
                        Raw(&s.unique),
                        Raw(m),
                        Raw(h),
                        Raw(dm),
                        Raw(mo),
                        Raw(dw),
                        Raw(&s.data),
                    ],
                )
            }
            Request::GetStatus { handle } => f(T::GetStatus, &[Raw(handle)]),
            Request::GetStatusUnique { unique } => f(T::GetStatusUnique, &[Raw(unique)]),
            Request::Echo { data } => f(T::EchoReq, &[Raw(data)]),
            Request::Option { name } => f(T::OptionReq, &[Raw(name)]),
            Request::SetClientId { id } => f(T::SetClientId, &[Raw(id)]),
            Request::WorkStatus(s) => f(
                T::WorkStatus,
                &[
                    Raw(&s.handle),
                    Unsigned(s.numerator.into()),
                    Unsigned(s.denominator.into()),
                ],
            ),
            Request::WorkData(p) => f(T::WorkData, &[Raw(&p.handle), Raw(&p.data)]),
            Request::WorkWarning(p) => f(T::WorkWarning, &[Raw(&p.handle), Raw(&p.data)]),
            Request::WorkComplete(p) => f(T::WorkComplete, &[Raw(&p.handle), Raw(&p.data)]),
            Request::WorkException(p) => f(T::WorkException, &[Raw(&p.handle), Raw(&p.data)]),
            Request::WorkFail { handle } => f(T::WorkFail, &[Raw(handle)]),
            Request::AllYours => f(T::AllYours, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_request_stays_small() {
        // Every parsed packet is moved from the decoder to its handler by value: the rare
        // submit kinds with many fields are boxed so they do not set the size of all.
        let size = std::mem::size_of::<Request>();
        assert!(size <= 128, "size_of::<Request>() is {size}");
    }
}
