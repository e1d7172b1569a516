//! Permission checks before a request is acted on ([`crate::acl`]): each connection keeps
//! its identity and the grants the ACL in force gives it; without an ACL everything is
//! allowed. A refusal is answered (ERROR packet or `ERR` admin line naming the
//! permission), reported as [`ServerEvent::Refused`], and the connection carries on.

use super::framing::Inbound;
use super::output::Outbound;
use super::{ConnId, Server, ServerEvent};
use crate::acl::{Acl, Grants, Identity, Permission};
use crate::proto::{Request, Response};
use bytes::Bytes;

/// Who a connection is and, under an ACL, what it may do.
#[derive(Clone, Debug)]
pub(crate) struct Access {
    pub(crate) identity: Identity,
    /// `None`: no ACL in force, everything allowed.
    grants: Option<Grants>,
}

impl Access {
    pub(crate) fn new(identity: Identity, acl: Option<&Acl>) -> Access {
        let grants = acl.map(|acl| acl.grants_for(&identity));
        Access { identity, grants }
    }

    fn allows(&self, permission: Permission, function: &[u8]) -> bool {
        self.grants
            .as_ref()
            .is_none_or(|g| g.allows(permission, function))
    }
}

/// What a request needs: the permission and, for submit/register, the function names.
fn needed(inbound: &Inbound) -> Option<(Permission, [Option<&Bytes>; 2])> {
    match inbound {
        Inbound::Request(Request::CanDo { function })
        | Inbound::Request(Request::CanDoTimeout { function, .. }) => {
            Some((Permission::Register, [Some(function), None]))
        }
        Inbound::Request(Request::Submit(s)) => {
            Some((Permission::Submit, [Some(&s.function), None]))
        }
        Inbound::Request(Request::SubmitSched(s)) => {
            Some((Permission::Submit, [Some(&s.function), None]))
        }
        Inbound::Request(Request::SubmitReduce(s)) => {
            Some((Permission::Submit, [Some(&s.function), Some(&s.reducer)]))
        }
        Inbound::Admin(command) => Permission::for_admin(command).map(|p| (p, [None, None])),
        _ => None,
    }
}

/// `ERR` admin lines carry one word per field; spaces and control bytes become `+`.
fn admin_word(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '+'
            } else {
                c
            }
        })
        .collect()
}

impl Server {
    /// Puts an ACL in force (or, with `None`, allows everything again), for new and open
    /// connections alike: a worker loses the registrations the new ACL no longer grants it
    /// (the jobs it runs stay with it).
    pub fn set_acl(&mut self, acl: Option<Acl>) {
        let mut revoked = Vec::new();
        for id in self.conns.sorted_ids() {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            let s = &mut c.session;
            s.access = Access::new(s.access.identity.clone(), acl.as_ref());
            for a in c.worker.abilities() {
                let name = self
                    .jobs
                    .function(a.function)
                    .map_or(&[][..], |f| &f.name[..]);
                if !s.access.allows(Permission::Register, name) {
                    revoked.push((id, a.function));
                }
            }
        }
        for (conn, function) in revoked {
            self.revoke_ability(conn, function);
        }
        self.acl = acl;
    }

    /// The identity `conn` was accepted as.
    pub fn identity(&self, conn: ConnId) -> Option<&Identity> {
        self.conns.get(conn).map(|c| &c.session.access.identity)
    }

    /// Whether `conn` may have `inbound` acted on; a refusal is answered and reported here.
    pub(super) fn permitted(&mut self, conn: ConnId, inbound: &Inbound) -> bool {
        let Some((permission, functions)) = needed(inbound) else {
            return true;
        };
        let Some(access) = self.conns.get(conn).map(|c| &c.session.access) else {
            return false;
        };
        let refused_function = match functions {
            [None, None] => (!access.allows(permission, b"")).then(Bytes::new),
            names => names
                .into_iter()
                .flatten()
                .find(|f| !access.allows(permission, f))
                .cloned(),
        };
        let Some(function) = refused_function else {
            return true;
        };
        let identity = access.identity.to_string();
        if matches!(inbound, Inbound::Admin(_)) {
            let line = format!(
                "ERR PERMISSION_DENIED {}+not+permitted+for+{}\r\n",
                permission,
                admin_word(&identity)
            );
            self.queue_out(conn, Outbound::Encoded(line.into_bytes()));
        } else {
            let mut text = format!("{permission} not permitted for {identity}: ").into_bytes();
            text.extend_from_slice(&function);
            self.send(
                conn,
                Response::Error {
                    code: Bytes::from_static(b"PERMISSION_DENIED"),
                    text: text.into(),
                },
            );
        }
        self.events.push_back(ServerEvent::Refused {
            conn,
            identity,
            permission,
            function,
        });
        false
    }
}
