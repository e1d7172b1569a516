//! The packet-type table: one row per Gearman packet number, the only place arity lives.

use std::fmt;

/// Which way a packet travels, from its 4-byte magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Magic {
    /// `"\0REQ"`: sent to the server by clients and workers.
    Req,
    /// `"\0RES"`: sent by the server.
    Res,
}

impl Magic {
    /// The four magic bytes on the wire.
    pub const fn bytes(self) -> &'static [u8; 4] {
        match self {
            Magic::Req => b"\0REQ",
            Magic::Res => b"\0RES",
        }
    }
}

macro_rules! packet_types {
    ($( $variant:ident = $id:literal, $name:literal, $argc:literal, $data:literal; )*) => {
        /// A Gearman packet type (numbers 1 to 42 of the protocol).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[allow(missing_docs)]
        pub enum PacketType {
            $( $variant = $id, )*
        }

        impl PacketType {
            /// Every packet type, in numeric order.
            pub const ALL: &'static [PacketType] = &[ $( PacketType::$variant, )* ];

            /// Looks a type number up; `None` for 0 and anything above 42.
            pub const fn from_u32(id: u32) -> Option<PacketType> {
                match id {
                    $( $id => Some(PacketType::$variant), )*
                    _ => None,
                }
            }

            /// The protocol name, e.g. `"SUBMIT_JOB_BG"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( PacketType::$variant => $name, )*
                }
            }

            /// `(argc, has_data)` exactly as gearmand's `gearmand_command_info_list`:
            /// with `has_data`, `argc` NUL-terminated arguments are followed by opaque data;
            /// without it, the last of the `argc` arguments is the unterminated remainder.
            pub const fn arity(self) -> (usize, bool) {
                match self {
                    $( PacketType::$variant => ($argc, $data), )*
                }
            }
        }
    };
}

packet_types! {
    CanDo = 1, "CAN_DO", 1, false;
    CantDo = 2, "CANT_DO", 1, false;
    ResetAbilities = 3, "RESET_ABILITIES", 0, false;
    PreSleep = 4, "PRE_SLEEP", 0, false;
    Unused = 5, "UNUSED", 0, false;
    Noop = 6, "NOOP", 0, false;
    SubmitJob = 7, "SUBMIT_JOB", 2, true;
    JobCreated = 8, "JOB_CREATED", 1, false;
    GrabJob = 9, "GRAB_JOB", 0, false;
    NoJob = 10, "NO_JOB", 0, false;
    JobAssign = 11, "JOB_ASSIGN", 2, true;
    WorkStatus = 12, "WORK_STATUS", 3, false;
    WorkComplete = 13, "WORK_COMPLETE", 1, true;
    WorkFail = 14, "WORK_FAIL", 1, false;
    GetStatus = 15, "GET_STATUS", 1, false;
    EchoReq = 16, "ECHO_REQ", 0, true;
    EchoRes = 17, "ECHO_RES", 0, true;
    SubmitJobBg = 18, "SUBMIT_JOB_BG", 2, true;
    Error = 19, "ERROR", 2, false;
    StatusRes = 20, "STATUS_RES", 5, false;
    SubmitJobHigh = 21, "SUBMIT_JOB_HIGH", 2, true;
    SetClientId = 22, "SET_CLIENT_ID", 1, false;
    CanDoTimeout = 23, "CAN_DO_TIMEOUT", 2, false;
    AllYours = 24, "ALL_YOURS", 0, false;
    WorkException = 25, "WORK_EXCEPTION", 1, true;
    OptionReq = 26, "OPTION_REQ", 1, false;
    OptionRes = 27, "OPTION_RES", 1, false;
    WorkData = 28, "WORK_DATA", 1, true;
    WorkWarning = 29, "WORK_WARNING", 1, true;
    GrabJobUniq = 30, "GRAB_JOB_UNIQ", 0, false;
    JobAssignUniq = 31, "JOB_ASSIGN_UNIQ", 3, true;
    SubmitJobHighBg = 32, "SUBMIT_JOB_HIGH_BG", 2, true;
    SubmitJobLow = 33, "SUBMIT_JOB_LOW", 2, true;
    SubmitJobLowBg = 34, "SUBMIT_JOB_LOW_BG", 2, true;
    SubmitJobSched = 35, "SUBMIT_JOB_SCHED", 7, true;
    SubmitJobEpoch = 36, "SUBMIT_JOB_EPOCH", 3, true;
    SubmitReduceJob = 37, "SUBMIT_REDUCE_JOB", 4, true;
    SubmitReduceJobBackground = 38, "SUBMIT_REDUCE_JOB_BACKGROUND", 4, true;
    GrabJobAll = 39, "GRAB_JOB_ALL", 0, false;
    JobAssignAll = 40, "JOB_ASSIGN_ALL", 4, true;
    GetStatusUnique = 41, "GET_STATUS_UNIQUE", 1, false;
    StatusResUnique = 42, "STATUS_RES_UNIQUE", 6, false;
}

impl PacketType {
    /// The type number on the wire.
    pub const fn id(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_and_numbered() {
        assert_eq!(PacketType::ALL.len(), 42);
        for (i, ty) in PacketType::ALL.iter().enumerate() {
            assert_eq!(ty.id() as usize, i + 1);
            assert_eq!(PacketType::from_u32(ty.id()), Some(*ty));
        }
        assert_eq!(PacketType::from_u32(0), None);
        assert_eq!(PacketType::from_u32(43), None);
    }
}
